// The web phone (docs/phones.md GET /): handsets side by side, each a client of the phones API
// (docs/phones.md) with a WebSocket for screens, dialog ends and SMS. No build step.
"use strict";

(() => {
  // -- texts: every UI string lives here (Russian by default, README.md) -------------------
  const I18N = {
    ru: {
      title: "Симулятор USSD",
      subtitle: "Наберите код на клавиатуре телефона или с клавиатуры компьютера",
      addPhone: "Добавить телефон",
      language: "Язык",
      keysHelp: "Клавиши: 0–9 * # — набор, Enter — вызов/отправить, Backspace — стереть, Esc — отбой",
      closePhone: "Убрать телефон",
      number: "Номер",
      addNumber: "Добавить номер",
      newNumber: "Новый номер",
      numberPlaceholder: "+7 916 000-00-00",
      save: "Сохранить",
      display: "Экран",
      call: "Вызов / отправить",
      backspace: "Стереть",
      end: "Отбой",
      keypad: "Клавиатура",
      inbox: "Входящие SMS",
      noSms: "Сообщений нет",
      idle: "Наберите USSD-код,\nнапример *100#",
      sending: "Запрос USSD…",
      hintCall: "Вызов",
      hintSend: "Ответить",
      ssTitle: "Сеть",
      ssNone: "переадресация, ожидание и запреты выключены",
      ssBlocked: "пароль запрета заблокирован",
      hintCancel: "Отмена",
      hintOk: "OK",
      hintClear: "Стереть",
      noNumber: "Добавьте номер",
      outcome_completed: "Сеанс USSD завершён",
      outcome_timeout: "Сеанс USSD завершён:\nвремя ожидания истекло",
      outcome_max_duration: "Сеанс USSD завершён:\nпревышена длительность",
      outcome_released: "Сеанс USSD завершён",
      outcome_replaced: "Сеанс USSD прерван\nновым запросом",
      outcome_error: "Ошибка сети",
      outcome_shutdown: "Сеть недоступна",
      err_not_ussd: "Это номер для звонка,\nа не USSD-запрос",
      err_bad_dial_string: "Неверный код",
      err_no_dialog: "Сеанс USSD уже завершён",
      err_unknown_msisdn: "Номер не зарегистрирован",
      err_bad_msisdn: "Неверный номер",
      err_provisioning_disabled: "Добавление номеров отключено в настройках",
      err_network: "Нет связи с сервером",
      err_other: "Ошибка: {message}",
      sms_queued: "в очереди",
      sms_delivered: "доставлено",
      sms_expired: "срок истёк",
      openApp: "Мой кабинет",
      record: "Записать сценарий",
      stopRecord: "Остановить запись и скачать сценарий",
      err_not_recording: "Запись уже остановлена",
      maxPhones: "Не больше {max} телефонов",
      lengthHint: "Длина ответа: {length} из {limit}",
      lengthFull: "Больше не поместится: {limit} — предел экрана USSD",
      typeHere: "Ввод с клавиатуры",
      appConsole: "Консоль приложения",
      appClear: "Очистить",
      appNoAnswer: "нет ответа",
    },
    en: {
      title: "USSD simulator",
      subtitle: "Dial a code on the phone's keypad or with your keyboard",
      addPhone: "Add phone",
      language: "Language",
      keysHelp: "Keys: 0–9 * # dial, Enter call/send, Backspace delete, Esc end",
      closePhone: "Remove phone",
      number: "Number",
      addNumber: "Add number",
      newNumber: "New number",
      numberPlaceholder: "+7 916 000-00-00",
      save: "Save",
      display: "Display",
      call: "Call / send",
      backspace: "Delete",
      end: "End",
      keypad: "Keypad",
      inbox: "SMS inbox",
      noSms: "No messages",
      idle: "Dial a USSD code,\nfor example *100#",
      sending: "USSD request…",
      hintCall: "Call",
      hintSend: "Reply",
      ssTitle: "Network",
      ssNone: "no forwarding, waiting or barring",
      ssBlocked: "barring password blocked",
      hintCancel: "Cancel",
      hintOk: "OK",
      hintClear: "Delete",
      noNumber: "Add a number",
      outcome_completed: "USSD session ended",
      outcome_timeout: "USSD session ended:\nno reply in time",
      outcome_max_duration: "USSD session ended:\ntoo long",
      outcome_released: "USSD session ended",
      outcome_replaced: "USSD session replaced\nby a new request",
      outcome_error: "Network error",
      outcome_shutdown: "Network unavailable",
      err_not_ussd: "That is a number to call,\nnot a USSD request",
      err_bad_dial_string: "Invalid code",
      err_no_dialog: "The USSD session has already ended",
      err_unknown_msisdn: "Number not registered",
      err_bad_msisdn: "Invalid number",
      err_provisioning_disabled: "Adding numbers is switched off in the configuration",
      err_network: "No connection to the server",
      err_other: "Error: {message}",
      sms_queued: "queued",
      sms_delivered: "delivered",
      sms_expired: "expired",
      openApp: "My account",
      record: "Record a scenario",
      stopRecord: "Stop recording and download the scenario",
      err_not_recording: "The recording has already stopped",
      maxPhones: "At most {max} phones",
      lengthHint: "Reply length: {length} of {limit}",
      lengthFull: "No more room: {limit} is a USSD screen's limit",
      typeHere: "Keyboard input",
      appConsole: "App console",
      appClear: "Clear",
      appNoAnswer: "no answer",
    },
  };

  const STORAGE_LANG = "ussd-sim.lang";
  const STORAGE_PHONES = "ussd-sim.phones";
  const API = "/api/v1/phones";
  const MAX_PHONES = 6;
  const MAX_EXCHANGES = 50; // app console entries kept per phone

  // A USSD string is at most 160 octets (TS 24.080): 182 septets of the GSM 7-bit alphabet
  // (extension characters take two), or 80 UCS-2 characters (TS 23.038) — as ussd/screens.py.
  const GSM7_LIMIT = 182;
  const UCS2_LIMIT = 80;
  const GSM7_BASIC = new Set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà",
  );
  const GSM7_EXTENSION = new Set("\f^{}\\[~]|€");

  // {length, limit} of a text as the gateway will size it.
  function ussdSize(text) {
    let septets = 0;
    for (const ch of text) {
      if (GSM7_BASIC.has(ch)) septets += 1;
      else if (GSM7_EXTENSION.has(ch)) septets += 2;
      else return { length: text.length, limit: UCS2_LIMIT }; // UTF-16 units, as handsets send
    }
    return { length: septets, limit: GSM7_LIMIT };
  }

  function fitsUssd(text) {
    const size = ussdSize(text);
    return size.length <= size.limit;
  }

  let lang = I18N[localStorage.getItem(STORAGE_LANG)] ? localStorage.getItem(STORAGE_LANG) : "ru";
  let operatorName = "MTS";
  let numbers = []; // known subscriber MSISDNs, from GET /api/v1/phones
  const phones = [];
  let active = null;

  function t(key, vars) {
    let text = (I18N[lang] && I18N[lang][key]) ?? I18N.ru[key] ?? key;
    for (const [name, value] of Object.entries(vars || {})) {
      text = text.replace(`{${name}}`, String(value));
    }
    return text;
  }

  function applyLanguage(root) {
    for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
    for (const el of root.querySelectorAll("[data-i18n-aria]")) {
      el.setAttribute("aria-label", t(el.dataset.i18nAria));
    }
    for (const el of root.querySelectorAll("[data-i18n-placeholder]")) {
      el.setAttribute("placeholder", t(el.dataset.i18nPlaceholder));
    }
    for (const el of root.querySelectorAll("[data-i18n-title]")) {
      el.setAttribute("title", t(el.dataset.i18nTitle));
    }
  }

  function setLanguage(next) {
    lang = next;
    localStorage.setItem(STORAGE_LANG, lang);
    document.documentElement.lang = lang;
    document.title = `${t("title")} — ussd-sim`;
    for (const button of document.querySelectorAll(".lang button")) {
      button.setAttribute("aria-pressed", String(button.dataset.lang === lang));
    }
    applyLanguage(document);
    for (const phone of phones) {
      if (phone.app) phone.app.setLanguage(lang);
      phone.fillNumbers();
      phone.renderLanguage();
      phone.render();
    }
    renderAddPhone();
  }

  // -- the phones API -----------------------------------------------------------------------
  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function api(method, path, body) {
    const options = { method, headers: {} };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, options);
    } catch (err) {
      throw new ApiError(0, "network", String(err));
    }
    let data = null;
    try {
      data = await response.json();
    } catch (_) {
      data = null;
    }
    if (!response.ok) {
      const error = (data && data.error) || {};
      throw new ApiError(response.status, error.code || `http_${response.status}`, error.message || response.statusText);
    }
    return data;
  }

  function phonePath(msisdn, action) {
    return `${API}/${encodeURIComponent(msisdn)}/${action}`;
  }

  // A local text is kept as {key, vars} and translated when drawn: a language switch
  // re-renders it instead of leaving the old language on screen.
  function errorMessage(err) {
    const key = `err_${err.code}`;
    return I18N.ru[key] ? { key } : { key: "err_other", vars: { message: err.message } };
  }

  function errorText(err) {
    const message = errorMessage(err);
    return t(message.key, message.vars);
  }

  function prettyNumber(msisdn) {
    const m = /^7(\d{3})(\d{3})(\d{2})(\d{2})$/.exec(msisdn);
    return m ? `+7 ${m[1]} ${m[2]}-${m[3]}-${m[4]}` : `+${msisdn}`;
  }

  async function loadNumbers() {
    const data = await api("GET", API);
    operatorName = data.operator || operatorName;
    numbers = data.phones.map((p) => p.msisdn);
    for (const phone of phones) phone.fillNumbers();
  }

  function savePhones() {
    localStorage.setItem(STORAGE_PHONES, JSON.stringify(phones.map((p) => p.msisdn)));
  }

  // -- one handset --------------------------------------------------------------------------
  // state: idle (typing a code) → waiting (request out) → dialog (a prompt waits for a
  // reply, docs/design.md "continue") or ended (a final screen, a local answer or an error).
  class Phone {
    constructor(msisdn) {
      const fragment = document.getElementById("phone-template").content.cloneNode(true);
      this.el = fragment.querySelector(".phone");
      this.q = (id) => this.el.querySelector(`[data-testid="${id}"]`);
      this.msisdn = null;
      this.state = "idle";
      this.input = "";
      this.screen = null; // {text, page, pages, local?, error?}
      this.session = null;
      this.seq = 0; // bumped to ignore answers to requests the user has abandoned
      this.sms = new Map();
      this.ws = null;
      this.online = false;
      this.retry = 0;
      this.disposed = false;
      this.app = null; // the "My account" app, while it is open (docs/account.md)
      this.recording = false; // the gateway records this number's session (docs/scenarios.md)
      this.full = false; // the last key or paste did not fit the screen limit
      this.numberError = null; // {key, vars} of the add-number form's error
      this.bind();
      applyLanguage(this.el);
      // "Network settings": what the network keeps for this number (docs/network.md).
      this.ss = null;
      this.ssEl = document.createElement("div");
      this.ssEl.className = "ss-status";
      this.ssEl.dataset.testid = "ss-status";
      this.q("inbox").before(this.ssEl);
      document.getElementById("phones").append(this.el);
      this.fillNumbers();
      this.setNumber(msisdn);
    }

    bind() {
      this.el.addEventListener("pointerdown", () => activate(this));
      this.el.addEventListener("focusin", () => activate(this));
      // Typing lands in a hidden field, so input methods (IME) and paste work as in any text
      // box; keys the phone handles itself are taken on keydown (onKeyDown).
      this.el.addEventListener("pointerup", (e) => {
        if (!e.target.closest("input, select, textarea, form, .app-screen, .inbox")) this.focusInput();
      });
      const ime = this.q("ime");
      ime.addEventListener("input", (e) => {
        if (!e.isComposing) this.takeTyped();
      });
      ime.addEventListener("compositionend", () => this.takeTyped());
      for (const key of this.el.querySelectorAll("[data-key]")) {
        key.addEventListener("click", () => {
          this.press(key.dataset.key);
          this.focusInput();
        });
      }
      this.q("number-select").addEventListener("change", (e) => this.setNumber(e.target.value));
      this.q("add-number").addEventListener("click", () => {
        const form = this.q("new-number-form");
        form.hidden = !form.hidden;
        if (!form.hidden) this.q("new-number-input").focus();
      });
      this.q("new-number-form").addEventListener("submit", (e) => {
        e.preventDefault();
        this.addNumber(this.q("new-number-input").value);
      });
      this.q("close-phone").addEventListener("click", () => removePhone(this));
      this.q("open-app").addEventListener("click", () => this.openApp());
      this.q("record").addEventListener("click", () => this.toggleRecording());
      this.q("app-clear").addEventListener("click", () => this.clearConsole());
    }

    // -- the app console: each request to an external app and its answer (docs/apps.md) ---
    logExchange(x) {
      const list = this.q("app-log");
      const li = document.createElement("li");
      li.className = "exchange";
      li.dataset.testid = "app-exchange";
      li.dataset.outcome = x.outcome;
      li.innerHTML =
        '<header><span class="app-status"></span><span class="app-outcome"></span>' +
        '<span class="app-latency"></span><time></time></header>' +
        '<div class="app-target"></div><pre class="app-request"></pre><pre class="app-answer"></pre>';
      const status = li.querySelector(".app-status");
      status.dataset.testid = "app-status";
      status.textContent = x.status === null ? "—" : String(x.status);
      // No status: no HTTP answer, or an SMPP app (docs/smpp.md), whose outcome says how it went.
      const bad = x.status === null
        ? x.outcome !== "continue" && x.outcome !== "end"
        : x.status < 200 || x.status > 299;
      status.classList.toggle("bad", bad);
      li.querySelector(".app-outcome").textContent = x.outcome;
      const latency = li.querySelector(".app-latency");
      latency.dataset.testid = "app-latency";
      latency.textContent = `${Math.round(x.latency_ms)} ms`;
      const time = li.querySelector("time");
      time.dateTime = new Date().toISOString();
      time.textContent = new Date().toLocaleTimeString(lang === "ru" ? "ru-RU" : "en-GB");
      li.querySelector(".app-target").textContent = `${x.app} · ${x.dialect}`;
      const request = li.querySelector(".app-request");
      request.dataset.testid = "app-request";
      request.textContent = readableRequest(x.request);
      const answer = li.querySelector(".app-answer");
      answer.dataset.testid = "app-answer";
      answer.textContent = x.answer;
      answer.classList.toggle("none", !x.answer);
      answer.dataset.empty = t("appNoAnswer");
      list.append(li); // a log: oldest first, as an app's own logs read
      while (list.children.length > MAX_EXCHANGES) list.firstElementChild.remove();
      list.scrollTop = list.scrollHeight;
      this.renderConsole();
    }

    clearConsole() {
      this.q("app-log").replaceChildren();
      this.renderConsole();
    }

    renderConsole() {
      const count = this.q("app-log").children.length;
      this.q("app-count").textContent = String(count);
      // Hidden until an app is asked, and kept once seen: clearing it leaves it open.
      if (count > 0) this.q("app-console").hidden = false;
      this.el.dataset.console = String(!this.q("app-console").hidden);
      for (const answer of this.q("app-log").querySelectorAll(".app-answer")) {
        answer.dataset.empty = t("appNoAnswer");
      }
    }

    // -- the "My account" app: over the display, for this phone's number ------------------
    // On the simulated mobile network the network vouches for the number, so the app signs
    // in without a password (docs/account.md); signing out offers number + password instead.
    openApp() {
      if (this.app || !this.msisdn || !window.UssdAccountApp) return;
      const screen = this.q("app-screen");
      screen.hidden = false;
      this.q("ime").blur(); // typing goes to the app's own fields now
      this.app = window.UssdAccountApp.mount(screen, this.msisdn, {
        lang,
        network: true,
        autoSignIn: true,
        onClose: () => this.closeApp(),
      });
      this.el.dataset.app = "open";
      activate(this);
    }

    closeApp() {
      if (!this.app) return;
      this.app.unmount();
      this.app = null;
      this.q("app-screen").hidden = true;
      delete this.el.dataset.app;
      this.el.focus({ preventScroll: true });
    }

    // -- recording: the gateway writes the scenario (ussd/recording.py), the page saves it
    async toggleRecording() {
      if (!this.msisdn) return;
      if (this.recording) return this.stopRecording(this.msisdn, true);
      try {
        await api("POST", phonePath(this.msisdn, "record"), {});
        this.recording = true;
      } catch (err) {
        this.showError(err);
      }
      this.render();
    }

    async stopRecording(msisdn, download) {
      this.recording = false;
      this.render();
      let response;
      try {
        response = await fetch(phonePath(msisdn, "record"), { method: "DELETE" });
      } catch (err) {
        if (download) this.showError(new ApiError(0, "network", String(err)));
        return;
      }
      if (!response.ok) {
        const error = ((await response.json().catch(() => null)) || {}).error || {};
        if (download) this.showError(new ApiError(response.status, error.code || "", error.message || ""));
        return;
      }
      const yaml = await response.text();
      if (download) saveFile(`scenario-${msisdn}-${stamp()}.yaml`, yaml, "text/yaml");
    }

    fillNumbers() {
      const select = this.q("number-select");
      select.replaceChildren();
      if (numbers.length === 0) {
        const option = new Option(t("noNumber"), "");
        option.disabled = true;
        select.append(option);
      }
      for (const msisdn of numbers) select.append(new Option(prettyNumber(msisdn), msisdn));
      if (this.msisdn) select.value = this.msisdn;
      this.q("operator").textContent = operatorName;
    }

    async addNumber(text) {
      this.numberError = null;
      this.renderLanguage();
      try {
        const created = await api("POST", API, { msisdn: text });
        await loadNumbers();
        this.q("new-number-form").hidden = true;
        this.q("new-number-input").value = "";
        this.setNumber(created.msisdn);
      } catch (err) {
        this.numberError = errorMessage(err);
        this.renderLanguage();
      }
    }

    // Texts drawn outside render(): the add-number error and every SMS's time and state.
    renderLanguage() {
      const message = this.numberError;
      this.q("new-number-error").textContent = message ? t(message.key, message.vars) : "";
      for (const li of this.q("sms-list").children) {
        const sms = this.sms.get(Number(li.dataset.smsId));
        if (sms) this.drawSms(li, sms);
      }
    }

    focusInput() {
      if (this.app || this.disposed) return;
      const ime = this.q("ime");
      if (document.activeElement !== ime) ime.focus({ preventScroll: true });
    }

    // What an input method or a paste put in the hidden field goes to the phone.
    takeTyped() {
      const ime = this.q("ime");
      const text = ime.value;
      ime.value = "";
      if (text && !this.app) this.typeText(text); // the app covers the keypad
    }

    typeText(text) {
      if (this.state === "waiting" || !text) return;
      if (this.state === "ended") this.reset();
      let chars;
      if (this.state === "dialog") {
        chars = text.replace(/\r\n|[\r\n\t]/g, " ");
      } else {
        // A dial string: full-width digits from an IME count as digits (NFKC), the rest goes.
        chars = text.normalize("NFKC").replace(/[^0-9*#+]/g, "");
      }
      this.full = false;
      for (const ch of chars) {
        if (!fitsUssd(this.input + ch)) {
          this.full = true; // shown, never silently dropped
          break;
        }
        this.input += ch;
      }
      this.render();
    }

    setNumber(msisdn) {
      if (!msisdn || msisdn === this.msisdn) return;
      this.closeApp();
      // A recording belongs to one number: switching numbers ends it and saves the file.
      if (this.recording) this.stopRecording(this.msisdn, true);
      this.msisdn = msisdn;
      this.el.dataset.msisdn = msisdn;
      this.q("number-select").value = msisdn;
      this.seq += 1;
      this.reset();
      this.sms.clear();
      this.q("sms-list").replaceChildren();
      this.q("fault-indicator").hidden = true;
      this.q("app-log").replaceChildren(); // the console follows the number, as the inbox does
      this.q("app-console").hidden = true;
      this.renderConsole();
      this.connect();
      savePhones();
      this.loadSs();
    }

    // GET .../ss when a number is chosen and after each final screen (send()).
    async loadSs() {
      const msisdn = this.msisdn;
      try {
        const data = await api("GET", phonePath(msisdn, "ss"));
        if (msisdn === this.msisdn) this.ss = data;
      } catch (_) {
        if (msisdn === this.msisdn) this.ss = null;
      }
      this.renderSs();
    }

    renderSs() {
      const ss = this.ss;
      this.ssEl.hidden = !ss;
      if (!ss) return;
      const parts = [];
      const seen = new Set();
      for (const f of ss.forwarding) {
        const label = `CF ${f.code}→${f.number}`;
        if (f.active && !seen.has(label)) {
          parts.push(label);
          seen.add(label);
        }
      }
      if (ss.call_waiting.length) parts.push("CW");
      const barring = [...new Set(ss.barring.map((b) => b.code))];
      if (barring.length) parts.push(`BAR ${barring.join(",")}`);
      if (ss.barring_password.blocked) parts.push(t("ssBlocked"));
      this.ssEl.textContent = `${t("ssTitle")}: ${parts.length ? parts.join(" · ") : t("ssNone")}`;
    }

    reset() {
      this.state = "idle";
      this.input = "";
      this.full = false;
      this.screen = null;
      this.session = null;
      this.render();
    }

    // WebSocket `.../events`: screens, ends and SMS for this number, whoever caused them.
    connect() {
      if (this.ws) {
        this.ws.onclose = null;
        this.ws.close();
      }
      if (!this.msisdn || this.disposed) return;
      const scheme = location.protocol === "https:" ? "wss:" : "ws:";
      const ws = new WebSocket(`${scheme}//${location.host}${phonePath(this.msisdn, "events")}`);
      this.ws = ws;
      ws.onmessage = (e) => this.onMessage(JSON.parse(e.data));
      ws.onclose = () => {
        if (this.ws !== ws || this.disposed) return;
        this.setOnline(false);
        // Back off up to 10 s; the inbox is reloaded on reconnect so nothing is missed.
        const delay = Math.min(10000, 500 * 2 ** this.retry);
        this.retry += 1;
        setTimeout(() => this.ws === ws && this.connect(), delay);
      };
    }

    setOnline(online) {
      this.online = online;
      this.q("signal").classList.toggle("offline", !online);
      this.el.dataset.online = String(online);
    }

    async loadInbox() {
      const msisdn = this.msisdn;
      const data = await api("GET", phonePath(msisdn, "sms"));
      if (msisdn !== this.msisdn) return;
      for (const sms of data.sms) this.upsertSms(sms, false);
    }

    onMessage(msg) {
      switch (msg.type) {
        case "ready":
          this.retry = 0;
          this.setOnline(true);
          this.loadInbox().catch(() => {});
          break;
        case "screen":
          // Our own requests come back here too; showing a screen twice changes nothing.
          // Screens from elsewhere (an SMPP harness on the same number) show up as well.
          if (this.state !== "idle" || this.input === "" || msg.session === this.session) {
            // Unasked for while idle: a push (docs/smpp.md "Pushes") or another transport's
            // dial. The display lights up, as a handset's does, until a key is pressed.
            if (this.state === "idle" && msg.session !== this.session) this.el.dataset.pushed = "true";
            this.showScreen(msg);
          }
          break;
        case "end":
          this.onEnd(msg);
          break;
        case "sms":
          this.upsertSms(msg, true);
          break;
        case "app":
          this.logExchange(msg);
          break;
        case "fault":
          this.showFault(msg);
          break;
        default:
          break;
      }
    }

    showFault(msg) {
      // An injected network fault hit this number (docs/network.md "Faults"): a lost SMS
      // leaves no other trace, so the status bar says so until the number changes.
      const mark = this.q("fault-indicator");
      mark.hidden = false;
      mark.dataset.kind = msg.kind;
      mark.title = `${msg.kind} (${msg.rule}, ${msg.at})`;
      mark.setAttribute("aria-label", mark.title);
    }

    onEnd(msg) {
      if (!msg.session || msg.session !== this.session) return;
      this.session = null;
      if (msg.outcome === "completed") {
        if (msg.screen) this.showScreen(msg.screen);
        if (this.state === "dialog") this.state = "ended";
        this.render();
        return;
      }
      this.seq += 1;
      this.state = "ended";
      this.input = "";
      this.screen = msg.screen && msg.screen.end
        ? { text: msg.screen.text, page: 1, pages: 1, outcome: msg.outcome }
        : { key: `outcome_${msg.outcome}`, page: 1, pages: 1, outcome: msg.outcome };
      this.render();
    }

    showScreen(screen) {
      // The same screen twice (the WebSocket and the HTTP answer both bring it, in either
      // order) must not wipe what the user has started typing at the prompt.
      const old = this.screen;
      const again = this.state === "dialog" && old && !old.key && !screen.end &&
        old.session === screen.session && old.text === screen.text && old.page === screen.page;
      this.screen = screen;
      this.session = screen.end ? null : screen.session;
      this.state = screen.end ? "ended" : "dialog";
      if (again) return this.render();
      this.input = "";
      this.full = false;
      this.render();
      this.q("screen").scrollTop = 0; // a new screen is read from its start
    }

    showError(err) {
      this.screen = { ...errorMessage(err), page: 1, pages: 1, error: true };
      this.session = null;
      this.state = "ended";
      this.render();
    }

    press(key) {
      flash(this.el.querySelector(`[data-key="${CSS.escape(key)}"]`));
      // A key press means the user has seen the phone: the new-SMS marks go away.
      this.q("sms-indicator").hidden = true;
      this.q("sms-count").classList.remove("unread");
      delete this.el.dataset.pushed;
      if (key === "call") return this.send();
      if (key === "end") return this.end();
      if (key === "back") {
        if (this.state === "ended") return this.reset();
        this.input = [...this.input].slice(0, -1).join("");
        this.full = false;
        return this.render();
      }
      if (this.state === "waiting") return;
      if (this.state === "ended") this.reset();
      this.full = !fitsUssd(this.input + key);
      if (!this.full) this.input += key;
      this.render();
    }

    async send() {
      if (this.state === "ended") return this.reset();
      if (this.state === "waiting" || !this.msisdn) return;
      const dialling = this.state === "idle";
      if (dialling && this.input === "") return;
      const text = this.input;
      const token = ++this.seq;
      if (dialling) this.session = null; // a replaced dialog's end must not land on the new one
      this.state = "waiting";
      this.input = "";
      this.full = false;
      this.render();
      try {
        // `via` names the web phone in the dialog's record (docs/operations.md).
        const body = dialling ? { text, via: "web" } : { text };
        const screen = await api("POST", phonePath(this.msisdn, dialling ? "dial" : "reply"), body);
        if (token === this.seq) this.showScreen(screen);
        if (screen.end) this.loadSs(); // an SS request may have changed what the network keeps
      } catch (err) {
        if (token === this.seq) this.showError(err);
      }
    }

    end() {
      const open = this.session !== null || this.state === "waiting";
      this.seq += 1;
      this.reset();
      if (open && this.msisdn) {
        api("POST", phonePath(this.msisdn, "release"), {}).catch(() => {});
      }
    }

    upsertSms(sms, live) {
      const known = this.sms.get(sms.id);
      this.sms.set(sms.id, sms);
      let li = this.q("sms-list").querySelector(`[data-sms-id="${sms.id}"]`);
      if (!li) {
        li = document.createElement("li");
        li.className = "sms";
        li.dataset.testid = "sms";
        li.dataset.smsId = String(sms.id);
        li.innerHTML = '<header><span class="from"></span><time></time></header><p></p><span class="state"></span>';
        // Newest first, in the DOM as on screen: the list opens on the newest SMS.
        const list = this.q("sms-list");
        const before = [...list.children].find((x) => Number(x.dataset.smsId) < sms.id);
        list.insertBefore(li, before || null);
      }
      this.drawSms(li, sms);
      if (live && !known) {
        li.classList.add("fresh");
        this.q("sms-indicator").hidden = false;
        this.q("sms-count").classList.add("unread");
        // The new SMS is at the top: scroll the list there, not the page.
        if (!li.previousElementSibling) this.q("sms-list").scrollTop = 0;
      }
      this.renderInboxCount();
    }

    drawSms(li, sms) {
      li.querySelector(".from").textContent = sms.sender_is_alpha ? sms.sender : prettyNumber(sms.sender);
      const time = li.querySelector("time");
      time.dateTime = new Date(sms.created * 1000).toISOString();
      time.textContent = new Date(sms.created * 1000).toLocaleString(lang === "ru" ? "ru-RU" : "en-GB", {
        day: "2-digit", month: "2-digit", hour: "2-digit", minute: "2-digit",
      });
      li.querySelector("p").textContent = sms.text;
      li.querySelector(".state").textContent = t(`sms_${sms.state}`);
      li.dataset.state = sms.state;
    }

    renderInboxCount() {
      const count = this.sms.size;
      this.q("sms-count").textContent = String(count);
      this.q("sms-empty").hidden = count > 0;
    }

    render() {
      this.el.dataset.state = this.state;
      if (this.ssEl) this.renderSs(); // also redrawn in the new language
      const text = this.q("screen-text");
      text.classList.toggle("idle", this.state === "idle");
      text.classList.toggle("error", Boolean(this.screen && this.screen.error));
      if (this.state === "idle") text.textContent = this.msisdn ? t("idle") : t("noNumber");
      else if (this.state === "waiting") text.textContent = t("sending");
      else if (!this.screen) text.textContent = "";
      else text.textContent = this.screen.key ? t(this.screen.key, this.screen.vars) : this.screen.text;
      // A password prompt (`secret`, docs/phones.md) shows dots, as a password field does.
      const secret = this.state === "dialog" && this.screen && this.screen.secret;
      this.q("input").textContent = secret ? "•".repeat([...this.input].length) : this.input;
      this.el.dataset.secret = String(Boolean(secret));
      // A USSN notice (`notice`, a push with reply false): the call key acknowledges it.
      const notice = this.state === "dialog" && this.screen && this.screen.notice;
      this.el.dataset.notice = String(Boolean(notice));
      const length = this.q("length");
      const size = ussdSize(this.input);
      length.hidden = this.input === "" && !this.full;
      length.textContent = `${size.length}/${size.limit}`;
      length.classList.toggle("full", this.full);
      length.title = t(this.full ? "lengthFull" : "lengthHint", size);
      length.setAttribute("aria-label", length.title);
      const line = this.q("input-line");
      line.scrollTop = line.scrollHeight; // the end of a long reply and the cursor stay in view
      const pages = this.screen && this.state !== "idle" ? this.screen.pages || 1 : 1;
      this.q("page").textContent = pages > 1 ? `${this.screen.page}/${pages}` : "";
      const hints = {
        idle: [t("hintCall"), this.input ? t("hintClear") : ""],
        waiting: ["", t("hintCancel")],
        dialog: notice ? [t("hintOk"), ""] : [t("hintSend"), t("hintCancel")],
        ended: [t("hintOk"), ""],
      }[this.state];
      const hint = this.q("hint");
      hint.replaceChildren(...hints.map((h) => Object.assign(document.createElement("span"), { textContent: h })));
      this.q("close-phone").hidden = phones.length <= 1;
      this.q("ime").setAttribute("aria-label", t("typeHere"));
      const record = this.q("record");
      record.setAttribute("aria-pressed", String(this.recording));
      record.setAttribute("aria-label", t(this.recording ? "stopRecord" : "record"));
      record.title = t(this.recording ? "stopRecord" : "record");
      this.q("rec-indicator").hidden = !this.recording;
      this.el.dataset.recording = String(this.recording);
      this.renderInboxCount();
      this.renderConsole();
    }

    dispose() {
      this.disposed = true;
      this.closeApp();
      if (this.recording) this.stopRecording(this.msisdn, false);
      if (this.ws) {
        this.ws.onclose = null;
        this.ws.close();
      }
      this.el.remove();
    }
  }

  // The request as an app developer reads it: "POST url" then the body, a form one field a
  // line and decoded (Africa's Talking's `text=1%2A2` reads `text = 1*2`), JSON indented.
  function readableRequest(request) {
    const newline = request.indexOf("\n");
    if (newline < 0) return request;
    const head = request.slice(0, newline);
    const body = request.slice(newline + 1);
    if (/^[^\s=&]+=[^\s]*$/.test(body)) {
      try {
        const lines = [...new URLSearchParams(body)].map(([k, v]) => `${k} = ${v}`);
        return [head, ...lines].join("\n");
      } catch (_) {
        return request;
      }
    }
    try {
      return `${head}\n${JSON.stringify(JSON.parse(body), null, 2)}`;
    } catch (_) {
      return request; // XML, or shortened mid-way: as sent
    }
  }

  // A download made in the page: no server round trip for the file itself.
  function saveFile(name, text, type) {
    const url = URL.createObjectURL(new Blob([text], { type }));
    const link = Object.assign(document.createElement("a"), { href: url, download: name });
    link.hidden = true;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  }

  function stamp() {
    // 2026-05-28T20-26-40: sortable and safe in a file name.
    return new Date().toISOString().slice(0, 19).replace(/:/g, "-");
  }

  function flash(button) {
    if (!button) return;
    button.classList.add("pressed");
    setTimeout(() => button.classList.remove("pressed"), 120);
  }

  function activate(phone) {
    if (active === phone) return;
    if (active) active.el.classList.remove("active");
    active = phone;
    if (phone) phone.el.classList.add("active");
  }

  function renderAddPhone() {
    const button = document.getElementById("add-phone");
    const full = phones.length >= MAX_PHONES;
    button.disabled = full;
    button.title = full ? t("maxPhones", { max: MAX_PHONES }) : "";
  }

  function addPhone(msisdn) {
    if (phones.length >= MAX_PHONES) return null;
    const used = new Set(phones.map((p) => p.msisdn));
    const pick = msisdn || numbers.find((n) => !used.has(n)) || numbers[0];
    const phone = new Phone(pick);
    phones.push(phone);
    activate(phone);
    for (const p of phones) p.render();
    renderAddPhone();
    savePhones();
    return phone;
  }

  function removePhone(phone) {
    if (phones.length <= 1) return;
    phones.splice(phones.indexOf(phone), 1);
    phone.dispose();
    if (active === phone) activate(phones[0]);
    for (const p of phones) p.render();
    renderAddPhone();
    savePhones();
  }

  // Typing goes to the active phone: digits, * # + to dial, any character in a reply.
  function onKeyDown(e) {
    if (e.ctrlKey || e.metaKey || e.altKey || !active) return;
    // An input method is composing: its keys are its own; the text comes on compositionend.
    if (e.isComposing || e.keyCode === 229) return;
    const target = e.target;
    const capture = target && target.classList && target.classList.contains("ime");
    if (!capture && target && (target.tagName === "INPUT" || target.tagName === "SELECT" || target.tagName === "TEXTAREA")) {
      return;
    }
    if (active.app) {
      // The app covers the keypad: typing goes to its fields, Escape goes back to USSD.
      if (e.key === "Escape") {
        e.preventDefault();
        active.closeApp();
      }
      return;
    }
    let key = null;
    if (e.key === "Enter") key = "call";
    else if (e.key === "Escape") key = "end";
    else if (e.key === "Backspace") key = "back";
    else if (/^[0-9*#+]$/.test(e.key)) key = e.key;
    else if (e.key.length === 1 && active.state === "dialog") key = e.key;
    if (key === null) return;
    // Enter on a focused keypad button would also "click" it; the key is handled here.
    e.preventDefault();
    active.press(key);
  }

  // Paste (Ctrl+V, or the context menu on the phone) types the clipboard's text.
  function onPaste(e) {
    if (!active || active.app) return;
    const target = e.target;
    const capture = target && target.classList && target.classList.contains("ime");
    if (!capture && target && target.closest && target.closest("input, select, textarea")) return;
    const text = e.clipboardData ? e.clipboardData.getData("text/plain") : "";
    e.preventDefault();
    active.typeText(text);
  }

  async function start() {
    setLanguage(lang);
    for (const button of document.querySelectorAll(".lang button")) {
      button.addEventListener("click", () => setLanguage(button.dataset.lang));
    }
    document.getElementById("add-phone").addEventListener("click", () => addPhone());
    document.addEventListener("keydown", onKeyDown);
    document.addEventListener("paste", onPaste);
    try {
      await loadNumbers();
    } catch (_) {
      numbers = [];
    }
    let saved = [];
    try {
      saved = JSON.parse(localStorage.getItem(STORAGE_PHONES) || "[]").filter((n) => numbers.includes(n));
    } catch (_) {
      saved = [];
    }
    if (saved.length === 0) addPhone();
    for (const msisdn of saved.slice(0, MAX_PHONES)) addPhone(msisdn);
    activate(phones[0]);
    document.body.dataset.ready = "true";
  }

  start();
})();
