// The web phone (SPEC §6 GET /): handsets side by side, each a client of the phones API
// (docs/phones.md) with a WebSocket for screens, dialog ends and SMS. No build step.
"use strict";

(() => {
  // -- texts: every UI string lives here (Russian by default, SPEC §0) -------------------
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
    },
  };

  const STORAGE_LANG = "ussd-sim.lang";
  const STORAGE_PHONES = "ussd-sim.phones";
  const API = "/api/v1/phones";
  const MAX_PHONES = 6;

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
      phone.render();
    }
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

  function errorText(err) {
    const key = `err_${err.code}`;
    return I18N.ru[key] ? t(key) : t("err_other", { message: err.message });
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
  // reply, SPEC §4 "continue") or ended (a final screen, a local answer or an error).
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
      this.app = null; // the "My account" app, while it is open (SPEC §7)
      this.recording = false; // the gateway records this number's session (SPEC §8)
      this.bind();
      applyLanguage(this.el);
      document.getElementById("phones").append(this.el);
      this.fillNumbers();
      this.setNumber(msisdn);
    }

    bind() {
      this.el.addEventListener("pointerdown", () => activate(this));
      this.el.addEventListener("focusin", () => activate(this));
      for (const key of this.el.querySelectorAll("[data-key]")) {
        key.addEventListener("click", () => this.press(key.dataset.key));
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
    }

    // -- the "My account" app: over the display, for this phone's number ------------------
    // On the simulated mobile network the network vouches for the number, so the app signs
    // in without a password (SPEC §7); signing out offers number + password instead.
    openApp() {
      if (this.app || !this.msisdn || !window.UssdAccountApp) return;
      const screen = this.q("app-screen");
      screen.hidden = false;
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

    // -- recording: the gateway writes the scenario (sim/recorder.py), the page saves it ---
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
      const errorEl = this.q("new-number-error");
      errorEl.textContent = "";
      try {
        const created = await api("POST", API, { msisdn: text });
        await loadNumbers();
        this.q("new-number-form").hidden = true;
        this.q("new-number-input").value = "";
        this.setNumber(created.msisdn);
      } catch (err) {
        errorEl.textContent = errorText(err);
      }
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
      this.connect();
      savePhones();
    }

    reset() {
      this.state = "idle";
      this.input = "";
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
            this.showScreen(msg);
          }
          break;
        case "end":
          this.onEnd(msg);
          break;
        case "sms":
          this.upsertSms(msg, true);
          break;
        default:
          break;
      }
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
      const text = msg.screen && msg.screen.end ? msg.screen.text : t(`outcome_${msg.outcome}`);
      this.seq += 1;
      this.state = "ended";
      this.input = "";
      this.screen = { text, page: 1, pages: 1, outcome: msg.outcome };
      this.render();
    }

    showScreen(screen) {
      this.screen = screen;
      this.session = screen.end ? null : screen.session;
      this.state = screen.end ? "ended" : "dialog";
      this.input = "";
      this.render();
    }

    showError(err) {
      this.screen = { text: errorText(err), page: 1, pages: 1, error: true };
      this.session = null;
      this.state = "ended";
      this.render();
    }

    press(key) {
      flash(this.el.querySelector(`[data-key="${CSS.escape(key)}"]`));
      // A key press means the user has seen the phone: the new-SMS marks go away.
      this.q("sms-indicator").hidden = true;
      this.q("sms-count").classList.remove("unread");
      if (key === "call") return this.send();
      if (key === "end") return this.end();
      if (key === "back") {
        if (this.state === "ended") return this.reset();
        this.input = this.input.slice(0, -1);
        return this.render();
      }
      if (this.state === "waiting") return;
      if (this.state === "ended") this.reset();
      if (this.input.length < 182) this.input += key;
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
      this.render();
      try {
        const screen = await api("POST", phonePath(this.msisdn, dialling ? "dial" : "reply"), { text });
        if (token === this.seq) this.showScreen(screen);
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
        // Keep arrival order by id; CSS shows the newest first.
        const after = [...this.q("sms-list").children].find((x) => Number(x.dataset.smsId) > sms.id);
        this.q("sms-list").insertBefore(li, after || null);
      }
      li.querySelector(".from").textContent = sms.sender_is_alpha ? sms.sender : prettyNumber(sms.sender);
      const time = li.querySelector("time");
      time.dateTime = new Date(sms.created * 1000).toISOString();
      time.textContent = new Date(sms.created * 1000).toLocaleString(lang === "ru" ? "ru-RU" : "en-GB", {
        day: "2-digit", month: "2-digit", hour: "2-digit", minute: "2-digit",
      });
      li.querySelector("p").textContent = sms.text;
      li.querySelector(".state").textContent = t(`sms_${sms.state}`);
      li.dataset.state = sms.state;
      if (live && !known) {
        li.classList.add("fresh");
        this.q("sms-indicator").hidden = false;
        this.q("sms-count").classList.add("unread");
      }
      this.renderInboxCount();
    }

    renderInboxCount() {
      const count = this.sms.size;
      this.q("sms-count").textContent = String(count);
      this.q("sms-empty").hidden = count > 0;
    }

    render() {
      this.el.dataset.state = this.state;
      const text = this.q("screen-text");
      text.classList.toggle("idle", this.state === "idle");
      text.classList.toggle("error", Boolean(this.screen && this.screen.error));
      if (this.state === "idle") text.textContent = this.msisdn ? t("idle") : t("noNumber");
      else if (this.state === "waiting") text.textContent = t("sending");
      else text.textContent = this.screen ? this.screen.text : "";
      this.q("input").textContent = this.input;
      const pages = this.screen && this.state !== "idle" ? this.screen.pages || 1 : 1;
      this.q("page").textContent = pages > 1 ? `${this.screen.page}/${pages}` : "";
      const hints = {
        idle: [t("hintCall"), this.input ? t("hintClear") : ""],
        waiting: ["", t("hintCancel")],
        dialog: [t("hintSend"), t("hintCancel")],
        ended: [t("hintOk"), ""],
      }[this.state];
      const hint = this.q("hint");
      hint.replaceChildren(...hints.map((h) => Object.assign(document.createElement("span"), { textContent: h })));
      this.q("close-phone").hidden = phones.length <= 1;
      const record = this.q("record");
      record.setAttribute("aria-pressed", String(this.recording));
      record.setAttribute("aria-label", t(this.recording ? "stopRecord" : "record"));
      record.title = t(this.recording ? "stopRecord" : "record");
      this.q("rec-indicator").hidden = !this.recording;
      this.el.dataset.recording = String(this.recording);
      this.renderInboxCount();
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

  function addPhone(msisdn) {
    if (phones.length >= MAX_PHONES) return null;
    const used = new Set(phones.map((p) => p.msisdn));
    const pick = msisdn || numbers.find((n) => !used.has(n)) || numbers[0];
    const phone = new Phone(pick);
    phones.push(phone);
    activate(phone);
    for (const p of phones) p.render();
    savePhones();
    return phone;
  }

  function removePhone(phone) {
    if (phones.length <= 1) return;
    phones.splice(phones.indexOf(phone), 1);
    phone.dispose();
    if (active === phone) activate(phones[0]);
    for (const p of phones) p.render();
    savePhones();
  }

  // Typing goes to the active phone: digits, * # + to dial, any character in a reply.
  function onKeyDown(e) {
    if (e.ctrlKey || e.metaKey || e.altKey || !active) return;
    const target = e.target;
    if (target && (target.tagName === "INPUT" || target.tagName === "SELECT" || target.tagName === "TEXTAREA")) {
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

  async function start() {
    setLanguage(lang);
    for (const button of document.querySelectorAll(".lang button")) {
      button.addEventListener("click", () => setLanguage(button.dataset.lang));
    }
    document.getElementById("add-phone").addEventListener("click", () => addPhone());
    document.addEventListener("keydown", onKeyDown);
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
