// "Мой МТС" app (docs/account.md): balance, package remains, services on/off,
// payments (newest first), linked numbers (tap the number at the top to switch, "+" to add),
// spending control by period and category, instalments (pay the next one), "МТС Бонус"
// (exchange points for gifts), and "Не помню пароль" on the simulated mobile network.
//
// How to mount it (no build step, no dependencies):
//   <link rel="stylesheet" href="/static/account.css">
//   <script src="/static/account.js"></script>
//   const app = window.UssdAccountApp.mount(containerElement, "79161234567", {
//     lang: "ru",        // "ru" (default) or "en"
//     network: true,     // start on the simulated mobile network (login without a password)
//     baseUrl: "",       // prefix of the API, e.g. "http://127.0.0.1:8080"
//     onClose: () => {}, // optional: shows a close button that calls it
//     autoSignIn: false, // with network: sign in at once, as an operator's app does
//   });
//   app.refresh(); app.setLanguage("en"); app.unmount();
//
// On the simulated mobile network the network vouches for the number (POST /api/v1/auth/network);
// otherwise the user signs in with number + password (POST /api/v1/auth/login), and may ask for
// a password by SMS. "Как установить пароль" sets a new password on the network's word
// (POST /api/v1/auth/network-password). The token stays in memory only. Every text is set
// with textContent. The app's own requests are free traffic: they never touch the package.
"use strict";

(() => {
  const I18N = {
    ru: {
      title: "Мой кабинет",
      welcome: "Вход в Личный кабинет",
      via: "Вход",
      viaNetwork: "Через сеть",
      viaPassword: "С паролем",
      networkHint: "Вы в сети оператора: пароль не нужен.",
      number: "Номер",
      password: "Пароль",
      signIn: "Войти",
      smsPassword: "Получить пароль по SMS",
      smsSent: "Пароль отправлен в SMS.",
      balance: "Баланс",
      rub: "руб.",
      package: "Остатки пакета",
      minutes: "мин",
      sms: "SMS",
      mb: "МБ",
      bonus: "Бонусные баллы",
      minutesLabel: "Минуты",
      smsLabel: "SMS",
      mbLabel: "Интернет",
      payments: "Последние платежи",
      noPayments: "Платежей нет",
      linked: "Привязанные номера",
      noLinked: "Привязанных номеров нет",
      linkedTo: "Этот номер привязан к кабинету {account}",
      active: "активен",
      pending: "ожидает подключения",
      since: "с {time}",
      from: "будет подключён {time}",
      remove: "Отвязать",
      addTitle: "Добавить номер",
      addNumber: "Номер",
      addPassword: "Пароль этого номера",
      add: "Добавить",
      added: "Номер {number} добавлен.",
      removed: "Номер {number} отвязан.",
      refresh: "Обновить",
      logout: "Выйти",
      close: "Закрыть",
      loading: "Загрузка…",
      err_bad_credentials: "Неверный номер или пароль.",
      err_locked: "Слишком много неверных паролей. Номер заблокирован на {minutes} мин.",
      err_rate_limited: "Пароль уже отправлен. Повторите через {seconds} с.",
      err_already_linked: "Номер уже привязан к кабинету.",
      err_self_link: "Нельзя привязать номер к собственному кабинету.",
      err_bad_msisdn: "Неверный номер.",
      err_unknown_msisdn: "Номер не зарегистрирован.",
      err_invalid_token: "Сеанс истёк, войдите снова.",
      err_unauthorized: "Войдите снова.",
      err_not_linked: "Номер не привязан к этому кабинету.",
      err_missing_field: "Заполните все поля.",
      err_network: "Нет связи с сервером.",
      err_other: "Ошибка: {message}",
      forgot: "Как установить пароль / Не помню пароль",
      forgotTitle: "Новый пароль",
      forgotHint: "Вы в сети оператора: сеть подтверждает номер. Задайте новый пароль (4–10 латинских букв и цифр).",
      forgotUssd: "Или отправьте *111*17# с этой SIM-карты.",
      newPassword: "Новый пароль",
      setAndSignIn: "Сохранить и войти",
      back: "Назад",
      passwordSet: "Пароль установлен.",
      switchNumber: "Сменить номер",
      ownNumber: "основной",
      addWithPlus: "+ Добавить номер",
      tabHome: "Главная",
      tabSpending: "Расходы",
      tabInstalments: "Рассрочка",
      tabBonus: "Бонусы",
      services: "Услуги",
      svcOn: "вкл",
      svcOff: "выкл",
      noServices: "Управляемых услуг нет",
      svc_roaming: "Роуминг",
      svc_caller_id: "АОН",
      svc_voicemail: "Голосовая почта",
      svc_mobile_internet: "Мобильный интернет",
      switchedOn: "Услуга «{name}» включена.",
      switchedOff: "Услуга «{name}» выключена.",
      spending: "Контроль расходов",
      periodFrom: "С",
      periodTo: "По",
      show: "Показать",
      total: "Итого",
      cat_calls: "Звонки",
      cat_sms: "SMS",
      cat_internet: "Интернет",
      cat_subscriptions: "Подписки",
      noCharges: "Списаний за период нет",
      instalments: "Рассрочка",
      noInstalments: "Рассрочки нет",
      paid: "Оплачено",
      due: "Осталось",
      nextPayment: "Следующий платёж {amount} руб. до {date}",
      paidOff: "Рассрочка погашена",
      payNext: "Оплатить платёж",
      instalmentPaid: "Платёж {seq} оплачен: {amount} руб.",
      schedule: "График",
      bonusTitle: "МТС Бонус",
      points: "баллов",
      exchange: "Обменять",
      exchanged: "Подарок «{gift}» получен.",
      history: "История обменов",
      noHistory: "Обменов не было",
      err_insufficient_funds: "Недостаточно средств на балансе.",
      err_insufficient_points: "Недостаточно баллов.",
      err_paid_off: "Рассрочка уже погашена.",
      err_invalid_password: "Пароль: 4–10 латинских букв и цифр.",
      err_bad_period: "Неверный период.",
      err_bad_date: "Неверная дата.",
      err_link_pending: "Номер ещё не подключён.",
    },
    en: {
      title: "My account",
      welcome: "Sign in to your account",
      via: "Sign in",
      viaNetwork: "Via network",
      viaPassword: "With password",
      networkHint: "You are on the operator's network: no password needed.",
      number: "Number",
      password: "Password",
      signIn: "Sign in",
      smsPassword: "Get a password by SMS",
      smsSent: "The password has been sent by SMS.",
      balance: "Balance",
      rub: "RUB",
      package: "Package remains",
      minutes: "min",
      sms: "SMS",
      mb: "MB",
      bonus: "Bonus points",
      minutesLabel: "Calls",
      smsLabel: "Texts",
      mbLabel: "Data",
      payments: "Last payments",
      noPayments: "No payments",
      linked: "Linked numbers",
      noLinked: "No linked numbers",
      linkedTo: "This number is linked to account {account}",
      active: "active",
      pending: "pending",
      since: "since {time}",
      from: "active from {time}",
      remove: "Unlink",
      addTitle: "Add a number",
      addNumber: "Number",
      addPassword: "That number's password",
      add: "Add",
      added: "Number {number} added.",
      removed: "Number {number} unlinked.",
      refresh: "Refresh",
      logout: "Sign out",
      close: "Close",
      loading: "Loading…",
      err_bad_credentials: "Wrong number or password.",
      err_locked: "Too many wrong passwords. The number is locked for {minutes} min.",
      err_rate_limited: "A password was sent already. Try again in {seconds} s.",
      err_already_linked: "The number is already linked to an account.",
      err_self_link: "A number cannot be linked to its own account.",
      err_bad_msisdn: "Not a valid number.",
      err_unknown_msisdn: "The number is not registered.",
      err_invalid_token: "The session has expired: sign in again.",
      err_unauthorized: "Please sign in again.",
      err_not_linked: "The number is not linked to this account.",
      err_missing_field: "Please fill in every field.",
      err_network: "Cannot reach the server.",
      err_other: "Error: {message}",
      forgot: "Set a password / Forgot password",
      forgotTitle: "New password",
      forgotHint: "You are on the operator's network: it vouches for the number. Choose a new password (4-10 Latin letters and digits).",
      forgotUssd: "Or send *111*17# from this SIM.",
      newPassword: "New password",
      setAndSignIn: "Save and sign in",
      back: "Back",
      passwordSet: "The password has been set.",
      switchNumber: "Switch number",
      ownNumber: "main",
      addWithPlus: "+ Add a number",
      tabHome: "Home",
      tabSpending: "Spending",
      tabInstalments: "Instalments",
      tabBonus: "Bonus",
      services: "Services",
      svcOn: "on",
      svcOff: "off",
      noServices: "No services to manage",
      svc_roaming: "Roaming",
      svc_caller_id: "Caller ID",
      svc_voicemail: "Voicemail",
      svc_mobile_internet: "Mobile internet",
      switchedOn: "{name} is on.",
      switchedOff: "{name} is off.",
      spending: "Spending control",
      periodFrom: "From",
      periodTo: "To",
      show: "Show",
      total: "Total",
      cat_calls: "Calls",
      cat_sms: "SMS",
      cat_internet: "Data",
      cat_subscriptions: "Subscriptions",
      noCharges: "No charges in this period",
      instalments: "Instalments",
      noInstalments: "No instalment plan",
      paid: "Paid",
      due: "Due",
      nextPayment: "Next {amount} RUB by {date}",
      paidOff: "Paid off",
      payNext: "Pay the next instalment",
      instalmentPaid: "Instalment {seq} paid: {amount} RUB.",
      schedule: "Schedule",
      bonusTitle: "MTS Bonus",
      points: "points",
      exchange: "Exchange",
      exchanged: "Gift \"{gift}\" received.",
      history: "Exchanges",
      noHistory: "No exchanges yet",
      err_insufficient_funds: "The balance is too low.",
      err_insufficient_points: "Not enough points.",
      err_paid_off: "The plan is paid off already.",
      err_invalid_password: "A password is 4-10 Latin letters and digits.",
      err_bad_period: "Not a valid period.",
      err_bad_date: "Not a valid date.",
      err_link_pending: "The number is not linked yet.",
    },
  };

  const CATEGORIES = ["calls", "sms", "internet", "subscriptions"];
  const TABS = ["home", "spending", "instalments", "bonus"];

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // +7 916 123-45-67 for Russian numbers, +<digits> otherwise.
  function pretty(msisdn) {
    const m = /^7(\d{3})(\d{3})(\d{2})(\d{2})$/.exec(String(msisdn));
    return m ? `+7 ${m[1]} ${m[2]}-${m[3]}-${m[4]}` : `+${msisdn}`;
  }

  class AccountApp {
    constructor(container, msisdn, opts) {
      this.container = container;
      this.msisdn = String(msisdn || "");
      this.opts = opts || {};
      this.lang = I18N[this.opts.lang] ? this.opts.lang : "ru";
      this.network = this.opts.network !== false;
      this.baseUrl = String(this.opts.baseUrl || "").replace(/\/$/, "");
      this.token = null;
      this.account = null;
      this.own = null; // the signed-in number's own account (its linked numbers)
      this.current = null; // the number shown: the own one or an active linked one
      this.tab = "home";
      this.data = {}; // per tab: spending, instalments, bonus of the current number
      this.period = null; // {from, to} of spending control; null: this month
      this.forgot = false; // the "set a new password" form instead of sign-in
      this.picker = false; // the number switcher is open
      // {kind: "error"|"info", text}; text is a function, so a language switch redraws it.
      this.message = null;
      this.busy = false;
      this.draft = {}; // typed numbers survive a re-render (passwords are never kept)
      this.root = el("section", { class: "ua-app", "data-role": "account-app" });
      container.append(this.root);
      this.render();
      if (this.network && this.opts.autoSignIn && this.msisdn) this.signInAs(this.msisdn, null);
    }

    t(key, fields) {
      let text = I18N[this.lang][key] ?? I18N.ru[key] ?? key;
      for (const [name, value] of Object.entries(fields || {})) {
        text = text.replace(`{${name}}`, String(value));
      }
      return text;
    }

    time(iso) {
      return new Date(iso).toLocaleString(this.lang === "ru" ? "ru-RU" : "en-GB", {
        timeZone: "UTC",
        dateStyle: "short",
        timeStyle: "short",
      }) + " UTC";
    }

    errorText(status, body, headers) {
      const error = (body && body.error) || {};
      const code = error.code || "";
      const retry = Number(headers && headers.get("Retry-After")) || 0;
      if (code === "locked") return this.t("err_locked", { minutes: Math.max(1, Math.ceil(retry / 60)) });
      if (code === "rate_limited") return this.t("err_rate_limited", { seconds: retry });
      if (I18N.ru[`err_${code}`]) return this.t(`err_${code}`);
      return this.t("err_other", { message: error.message || status });
    }

    async api(method, path, body) {
      const headers = {};
      if (body !== undefined) headers["Content-Type"] = "application/json";
      if (this.token) headers.Authorization = `Bearer ${this.token}`;
      let response;
      try {
        response = await fetch(this.baseUrl + path, {
          method,
          headers,
          body: body === undefined ? undefined : JSON.stringify(body),
        });
      } catch (exc) {
        throw { text: () => this.t("err_network") };
      }
      let data = null;
      try {
        data = await response.json();
      } catch (exc) {
        data = null;
      }
      if (!response.ok) {
        const code = data && data.error ? data.error.code : "";
        if (code === "invalid_token" || (code === "unauthorized" && this.token)) {
          this.token = null; // the token expired: back to the sign-in form
          this.account = null;
        }
        throw { text: () => this.errorText(response.status, data, response.headers) };
      }
      return data;
    }

    async run(action) {
      if (this.busy) return;
      this.busy = true;
      this.message = null;
      this.render();
      try {
        await action();
      } catch (exc) {
        this.message = { kind: "error", text: exc && exc.text ? exc.text : () => String(exc) };
      } finally {
        this.busy = false;
        this.render();
      }
    }

    // -- actions -------------------------------------------------------------------------

    signIn(form) {
      const password = this.network ? null : form.elements.password.value;
      return this.signInAs(form.elements.msisdn.value.trim(), password);
    }

    // password null: the simulated mobile network vouches for the number (docs/account.md).
    signInAs(number, password) {
      return this.run(async () => {
        const result = password === null
          ? await this.api("POST", "/api/v1/auth/network", { msisdn: number })
          : await this.api("POST", "/api/v1/auth/login", { msisdn: number, password });
        this.started(result);
        await this.load();
      });
    }

    started(result) {
      this.token = result.token;
      this.msisdn = result.msisdn;
      this.current = result.msisdn;
      this.tab = "home";
      this.data = {};
    }

    // "Не помню пароль": the network vouches for the number, the new password is set.
    setPassword(form) {
      return this.run(async () => {
        const result = await this.api("POST", "/api/v1/auth/network-password", {
          msisdn: form.elements.msisdn.value.trim(),
          password: form.elements.password.value,
        });
        this.forgot = false;
        this.started(result);
        await this.load();
        this.message = { kind: "info", text: () => this.t("passwordSet") };
      });
    }

    // `?number=` when a linked number is shown (the API checks it is this account's).
    q(path, params) {
      const query = new URLSearchParams(params || {});
      if (this.current && this.own && this.current !== this.own.msisdn) query.set("number", this.current);
      const text = query.toString();
      return text ? `${path}?${text}` : path;
    }

    switchTo(number) {
      this.picker = false;
      if (number === this.current) return this.render();
      return this.run(async () => {
        this.current = number;
        this.data = {};
        await this.load();
      });
    }

    showTab(tab) {
      if (!TABS.includes(tab)) return Promise.resolve();
      return this.run(async () => {
        this.tab = tab;
        await this.loadTab();
      });
    }

    async loadTab() {
      if (this.tab === "spending") {
        this.data.spending = await this.api("GET", this.q("/api/v1/account/spending", this.period || {}));
      } else if (this.tab === "instalments") {
        this.data.instalments = await this.api("GET", this.q("/api/v1/account/instalments"));
      } else if (this.tab === "bonus") {
        this.data.bonus = await this.api("GET", this.q("/api/v1/account/bonus"));
      }
    }

    showPeriod(form) {
      return this.run(async () => {
        this.period = { from: form.elements.from.value, to: form.elements.to.value };
        await this.loadTab();
      });
    }

    toggleService(name, on) {
      return this.run(async () => {
        await this.api("POST", this.q("/api/v1/account/services"), { name, on });
        await this.load();
        const label = this.serviceName(name);
        this.message = { kind: "info", text: () => this.t(on ? "switchedOn" : "switchedOff", { name: label }) };
      });
    }

    payInstalment(planId) {
      return this.run(async () => {
        const result = await this.api("POST", this.q(`/api/v1/account/instalments/${encodeURIComponent(planId)}/pay`));
        await this.load();
        this.message = { kind: "info", text: () => this.t("instalmentPaid", { seq: result.paid.seq, amount: Number(result.paid.amount).toFixed(2) }) };
      });
    }

    exchangeGift(gift) {
      return this.run(async () => {
        const result = await this.api("POST", this.q("/api/v1/account/bonus/exchange"), { gift });
        await this.load();
        this.message = { kind: "info", text: () => this.t("exchanged", { gift: this.giftName(result.gift) }) };
      });
    }

    serviceName(name) {
      return I18N.ru[`svc_${name}`] ? this.t(`svc_${name}`) : name;
    }

    giftName(gift) {
      const name = gift.name || {};
      return name[this.lang] || name.ru || gift.id || gift.gift;
    }

    smsPassword(form) {
      return this.run(async () => {
        const number = form.elements.msisdn.value.trim();
        await this.api("POST", "/api/v1/auth/sms-password", { msisdn: number });
        this.message = { kind: "info", text: () => this.t("smsSent") };
      });
    }

    async load() {
      this.own = await this.api("GET", "/api/v1/account");
      const linked = this.own.numbers.some((n) => n.number === this.current && n.state === "active");
      if (!linked) this.current = this.own.msisdn; // unlinked meanwhile: back to the own number
      this.account = this.current === this.own.msisdn
        ? this.own
        : await this.api("GET", this.q("/api/v1/account"));
      await this.loadTab();
    }

    refresh() {
      if (!this.token) return Promise.resolve();
      return this.run(() => this.load());
    }

    addNumber(form) {
      return this.run(async () => {
        const link = await this.api("POST", "/api/v1/account/numbers", {
          msisdn: form.elements.msisdn.value.trim(),
          password: form.elements.password.value,
        });
        this.draft.add = "";
        await this.load();
        this.message = { kind: "info", text: () => this.t("added", { number: link.number }) };
      });
    }

    removeNumber(number) {
      return this.run(async () => {
        await this.api("DELETE", `/api/v1/account/numbers/${encodeURIComponent(number)}`);
        await this.load();
        this.message = { kind: "info", text: () => this.t("removed", { number }) };
      });
    }

    logout() {
      return this.run(async () => {
        try {
          await this.api("POST", "/api/v1/auth/logout");
        } finally {
          this.token = null;
          this.account = null;
          this.own = null;
          this.current = null;
          this.data = {};
        }
      });
    }

    setLanguage(lang) {
      if (I18N[lang]) {
        this.lang = lang;
        this.render();
      }
    }

    unmount() {
      this.root.remove();
    }

    // -- views ---------------------------------------------------------------------------

    render() {
      const signedIn = Boolean(this.account);
      const header = el(
        "header",
        { class: "ua-header" },
        this.opts.onClose
          ? el("button", { type: "button", class: "ua-close", "aria-label": this.t("close"), title: this.t("close"), "data-role": "close", onclick: () => this.opts.onClose() }, "‹")
          : null,
        el(
          "div",
          { class: "ua-heading" },
          el("h2", { class: "ua-title" }, this.t("title")),
          signedIn
            ? el("button", { type: "button", class: "ua-subtitle ua-switch", "aria-expanded": String(this.picker), title: this.t("switchNumber"), "data-role": "current-number", onclick: () => { this.picker = !this.picker; this.render(); } }, `${pretty(this.account.msisdn)} ▾`)
            : null,
        ),
        el("span", { class: "ua-brand", "aria-hidden": "true" }, "*#"),
      );
      const message = this.message
        ? el("p", { class: `ua-message ua-${this.message.kind}`, role: this.message.kind === "error" ? "alert" : "status", "data-role": "message" }, this.message.text())
        : null;
      const body = signedIn ? this.accountView() : this.forgot ? this.forgotView() : this.signInView();
      if (message) body.prepend(message);
      if (signedIn) body.prepend(this.tabsView());
      if (signedIn && this.picker) body.prepend(this.pickerView());
      this.root.replaceChildren(header, body);
      // Results show at the top: a container that scrolls (a phone's screen) goes back up.
      if (message && this.container.scrollHeight > this.container.clientHeight) this.container.scrollTop = 0;
      this.root.setAttribute("aria-busy", String(this.busy));
      this.root.dataset.view = signedIn ? "account" : this.forgot ? "forgot" : "sign-in";
      this.root.dataset.tab = signedIn ? this.tab : "";
      this.root.dataset.current = signedIn ? this.account.msisdn : "";
      this.root.lang = this.lang;
    }

    signInView() {
      const choose = (network) => () => {
        this.network = network;
        this.message = null;
        this.render();
      };
      const toggle = el(
        "div",
        { class: "ua-toggle", role: "group", "aria-label": this.t("via") },
        el("button", { type: "button", "aria-pressed": String(this.network), "data-role": "via-network", onclick: choose(true) }, this.t("viaNetwork")),
        el("button", { type: "button", "aria-pressed": String(!this.network), "data-role": "via-password", onclick: choose(false) }, this.t("viaPassword")),
      );
      const form = el(
        "form",
        { class: "ua-form", "data-role": "sign-in", onsubmit: (event) => { event.preventDefault(); this.signIn(event.currentTarget); } },
        el("label", {}, this.t("number"), el("input", { name: "msisdn", type: "tel", required: true, value: this.draft.login ?? this.msisdn, autocomplete: "tel", oninput: (event) => { this.draft.login = event.target.value; } })),
        this.network
          ? el("p", { class: "ua-hint ua-network-hint" }, this.t("networkHint"))
          : el("label", {}, this.t("password"), el("input", { name: "password", type: "password", required: true, autocomplete: "current-password", maxlength: 10 })),
        el("button", { type: "submit", class: "ua-primary ua-wide", disabled: this.busy, "data-role": "sign-in-submit" }, this.busy ? this.t("loading") : this.t("signIn")),
        this.network
          ? null
          : el("button", { type: "button", class: "ua-link", disabled: this.busy, "data-role": "sms-password", onclick: (event) => this.smsPassword(event.currentTarget.form) }, this.t("smsPassword")),
        el("button", { type: "button", class: "ua-link", disabled: this.busy, "data-role": "forgot", onclick: () => { this.forgot = true; this.message = null; this.render(); } }, this.t("forgot")),
      );
      return el(
        "div",
        { class: "ua-body" },
        el("section", { class: "ua-card ua-sign-in" }, el("h3", {}, this.t("welcome")), toggle, form),
      );
    }

    accountView() {
      const a = this.account;
      const p = a.package;
      const tile = (value, unit, label) => el(
        "div",
        { class: "ua-tile" },
        el("span", { class: "ua-tile-value" }, String(value), el("small", {}, ` ${unit}`)),
        el("span", { class: "ua-tile-label" }, label),
      );
      const balance = el(
        "section",
        { class: "ua-card ua-balance-card" },
        el("span", { class: "ua-label" }, this.t("balance")),
        el("span", { class: "ua-big", "data-role": "balance" }, `${Number(a.balance).toFixed(2)} ${this.t("rub")}`),
        el(
          "span",
          { class: "ua-meta" },
          el("span", { "data-role": "msisdn" }, pretty(a.msisdn)),
          el("span", { "data-role": "bonus" }, `${this.t("bonus")}: ${a.bonus_points}`),
        ),
      );
      const remains = el(
        "section",
        { class: "ua-card" },
        el("h3", {}, this.t("package")),
        el(
          "div",
          { class: "ua-tiles", "data-role": "package" },
          tile(p.minutes, this.t("minutes"), this.t("minutesLabel")),
          tile(p.sms, this.t("sms"), this.t("smsLabel")),
          tile(p.mb, this.t("mb"), this.t("mbLabel")),
        ),
      );
      // Newest first, whatever order the server sent (ISO dates compare as text; stable sort).
      const paid = [...(a.payments || [])].sort((x, y) => String(y.date).localeCompare(String(x.date)));
      const payments = el(
        "section",
        { class: "ua-card" },
        el("h3", {}, this.t("payments")),
        paid.length
          ? el(
            "ul",
            { class: "ua-payments", "data-role": "payments" },
            ...paid.map((p) => el(
              "li",
              { class: "ua-payment", "data-role": "payment", "data-date": p.date },
              el("span", { class: "ua-date" }, p.date),
              el("span", { class: "ua-amount" }, `+${Number(p.amount).toFixed(2)} ${this.t("rub")}`),
            )),
          )
          : el("p", { class: "ua-empty", "data-role": "payments-empty" }, this.t("noPayments")),
      );
      const linkedTo = a.linked_to
        ? el("p", { class: "ua-hint" }, this.t("linkedTo", { account: pretty(a.linked_to.account) }))
        : null;
      const list = a.numbers.length
        ? el("ul", { class: "ua-numbers", "data-role": "numbers" }, ...a.numbers.map((n) => this.numberItem(n)))
        : el("p", { class: "ua-empty", "data-role": "numbers-empty" }, this.t("noLinked"));
      const add = el(
        "form",
        { class: "ua-form ua-add", "data-role": "add-number", onsubmit: (event) => { event.preventDefault(); this.addNumber(event.currentTarget); } },
        el("h4", {}, this.t("addTitle")),
        el("label", {}, this.t("addNumber"), el("input", { name: "msisdn", type: "tel", required: true, placeholder: "+7 916 000-00-00", value: this.draft.add ?? "", oninput: (event) => { this.draft.add = event.target.value; } })),
        el("label", {}, this.t("addPassword"), el("input", { name: "password", type: "password", required: true, autocomplete: "off", maxlength: 10 })),
        el("button", { type: "submit", class: "ua-primary ua-wide", disabled: this.busy, "data-role": "add-submit" }, this.t("add")),
      );
      const numbers = el("section", { class: "ua-card" }, el("h3", {}, this.t("linked")), linkedTo, list, add);
      const footer = el(
        "div",
        { class: "ua-footer" },
        el("button", { type: "button", disabled: this.busy, "data-role": "refresh", onclick: () => this.refresh() }, this.t("refresh")),
        el("button", { type: "button", disabled: this.busy, "data-role": "logout", onclick: () => this.logout() }, this.t("logout")),
      );
      const names = Object.keys(a.services || {}).sort();
      const services = el(
        "section",
        { class: "ua-card" },
        el("h3", {}, this.t("services")),
        names.length
          ? el("ul", { class: "ua-services", "data-role": "services" }, ...names.map((name) => el(
            "li",
            { class: "ua-service", "data-role": "service", "data-service": name },
            el("span", {}, this.serviceName(name)),
            el("button", { type: "button", role: "switch", class: "ua-switch-toggle", "aria-checked": String(Boolean(a.services[name])), disabled: this.busy, "data-role": "service-toggle", onclick: () => this.toggleService(name, !a.services[name]) }, this.t(a.services[name] ? "svcOn" : "svcOff")),
          )))
          : el("p", { class: "ua-empty" }, this.t("noServices")),
      );
      const own = this.account.msisdn === this.own.msisdn;
      let cards;
      if (this.tab === "spending") cards = [this.spendingView()];
      else if (this.tab === "instalments") cards = [this.instalmentsView()];
      else if (this.tab === "bonus") cards = [this.bonusView()];
      else cards = [balance, remains, services, payments, own ? numbers : null];
      return el("div", { class: "ua-body" }, ...cards, footer);
    }

    tabsView() {
      return el(
        "nav",
        { class: "ua-tabs", role: "tablist", "data-role": "tabs" },
        ...TABS.map((tab) => el("button", { type: "button", role: "tab", "aria-selected": String(this.tab === tab), disabled: this.busy, "data-role": `tab-${tab}`, onclick: () => this.showTab(tab) }, this.t(`tab${tab[0].toUpperCase()}${tab.slice(1)}`))),
      );
    }

    // Tapping the number at the top: the own number, the active linked ones, "+ add".
    pickerView() {
      const choices = [{ number: this.own.msisdn, own: true }, ...this.own.numbers.filter((n) => n.state === "active").map((n) => ({ number: n.number, own: false }))];
      return el(
        "ul",
        { class: "ua-card ua-picker", role: "listbox", "data-role": "number-picker" },
        ...choices.map((c) => el(
          "li",
          {},
          el("button", { type: "button", role: "option", "aria-selected": String(c.number === this.current), "data-role": "pick-number", "data-number": c.number, onclick: () => this.switchTo(c.number) }, pretty(c.number), c.own ? el("small", {}, ` · ${this.t("ownNumber")}`) : null),
        )),
        el("li", {}, el("button", { type: "button", class: "ua-link", "data-role": "pick-add", onclick: () => this.goAdd() }, this.t("addWithPlus"))),
      );
    }

    goAdd() {
      this.picker = false;
      this.tab = "home";
      this.current = this.own.msisdn;
      this.account = this.own;
      this.render();
      const input = this.root.querySelector("[data-role=add-number] input[name=msisdn]");
      if (input) {
        input.scrollIntoView({ block: "center" });
        input.focus();
      }
    }

    forgotView() {
      const form = el(
        "form",
        { class: "ua-form", "data-role": "forgot-form", onsubmit: (event) => { event.preventDefault(); this.setPassword(event.currentTarget); } },
        el("p", { class: "ua-hint" }, this.t("forgotHint")),
        el("label", {}, this.t("number"), el("input", { name: "msisdn", type: "tel", required: true, value: this.draft.login ?? this.msisdn, autocomplete: "tel", oninput: (event) => { this.draft.login = event.target.value; } })),
        el("label", {}, this.t("newPassword"), el("input", { name: "password", type: "password", required: true, autocomplete: "new-password", maxlength: 10, pattern: "[A-Za-z0-9]{4,10}" })),
        el("button", { type: "submit", class: "ua-primary ua-wide", disabled: this.busy, "data-role": "forgot-submit" }, this.t("setAndSignIn")),
        el("p", { class: "ua-hint", "data-role": "forgot-ussd" }, this.t("forgotUssd")),
        el("button", { type: "button", class: "ua-link", "data-role": "forgot-back", onclick: () => { this.forgot = false; this.message = null; this.render(); } }, this.t("back")),
      );
      return el("div", { class: "ua-body" }, el("section", { class: "ua-card ua-sign-in" }, el("h3", {}, this.t("forgotTitle")), form));
    }

    spendingView() {
      const d = this.data.spending;
      const rub = (x) => `${Number(x).toFixed(2)} ${this.t("rub")}`;
      const form = el(
        "form",
        { class: "ua-form ua-period", "data-role": "period", onsubmit: (event) => { event.preventDefault(); this.showPeriod(event.currentTarget); } },
        el("label", {}, this.t("periodFrom"), el("input", { name: "from", type: "date", required: true, value: d ? d.from : "" })),
        el("label", {}, this.t("periodTo"), el("input", { name: "to", type: "date", required: true, value: d ? d.to : "" })),
        el("button", { type: "submit", class: "ua-primary", disabled: this.busy, "data-role": "period-submit" }, this.t("show")),
      );
      if (!d) return el("section", { class: "ua-card" }, el("h3", {}, this.t("spending")), form);
      const most = Math.max(...CATEGORIES.map((c) => d.categories[c]), 0.01);
      const bars = el("ul", { class: "ua-bars", "data-role": "categories" }, ...CATEGORIES.map((c) => el(
        "li",
        { class: "ua-bar", "data-role": "category", "data-category": c, "data-amount": d.categories[c] },
        el("span", { class: "ua-bar-label" }, this.t(`cat_${c}`)),
        el("span", { class: "ua-bar-track" }, el("span", { class: `ua-bar-fill ua-cat-${c}`, style: `width:${Math.round((100 * d.categories[c]) / most)}%` })),
        el("span", { class: "ua-amount" }, rub(d.categories[c])),
      )));
      const list = d.charges.length
        ? el("ul", { class: "ua-payments", "data-role": "charges" }, ...d.charges.map((c) => el(
          "li",
          { class: "ua-payment", "data-role": "charge" },
          el("span", { class: "ua-date" }, `${c.at.slice(0, 10)} · ${this.t(`cat_${c.category}`)}${c.description ? ` · ${c.description}` : ""}`),
          el("span", { class: "ua-amount" }, `−${Number(c.amount).toFixed(2)}`),
        )))
        : el("p", { class: "ua-empty", "data-role": "charges-empty" }, this.t("noCharges"));
      return el(
        "section",
        { class: "ua-card" },
        el("h3", {}, this.t("spending")),
        form,
        el("p", { class: "ua-total" }, `${this.t("total")}: `, el("strong", { "data-role": "spending-total" }, rub(d.total))),
        bars,
        list,
      );
    }

    instalmentsView() {
      const d = this.data.instalments;
      const rub = (x) => `${Number(x).toFixed(2)} ${this.t("rub")}`;
      if (!d || !d.plans.length) {
        return el("section", { class: "ua-card" }, el("h3", {}, this.t("instalments")), el("p", { class: "ua-empty", "data-role": "instalments-empty" }, this.t("noInstalments")));
      }
      return el("div", { class: "ua-stack" }, ...d.plans.map((plan) => el(
        "section",
        { class: "ua-card ua-plan", "data-role": "plan", "data-plan": plan.id },
        el("h3", {}, plan.item),
        el(
          "div",
          { class: "ua-tiles" },
          el("div", { class: "ua-tile" }, el("span", { class: "ua-tile-value", "data-role": "plan-paid" }, rub(plan.paid)), el("span", { class: "ua-tile-label" }, this.t("paid"))),
          el("div", { class: "ua-tile" }, el("span", { class: "ua-tile-value", "data-role": "plan-due" }, rub(plan.due)), el("span", { class: "ua-tile-label" }, this.t("due"))),
        ),
        el("progress", { max: plan.total, value: plan.paid }),
        plan.next
          ? el("p", { class: "ua-hint", "data-role": "plan-next" }, this.t("nextPayment", { amount: Number(plan.next.amount).toFixed(2), date: plan.next.due }))
          : el("p", { class: "ua-hint", "data-role": "plan-next" }, this.t("paidOff")),
        plan.next ? el("button", { type: "button", class: "ua-primary ua-wide", disabled: this.busy, "data-role": "pay-next", onclick: () => this.payInstalment(plan.id) }, this.t("payNext")) : null,
        el("details", {}, el("summary", {}, this.t("schedule")), el("ol", { class: "ua-schedule", "data-role": "schedule" }, ...plan.schedule.map((i) => el(
          "li",
          { "data-paid": String(i.paid_at !== null) },
          el("span", { class: "ua-date" }, i.due),
          el("span", { class: "ua-amount" }, `${Number(i.amount).toFixed(2)}${i.paid_at ? " ✓" : ""}`),
        )))),
      )));
    }

    bonusView() {
      const d = this.data.bonus;
      if (!d) return el("section", { class: "ua-card" }, el("h3", {}, this.t("bonusTitle")));
      const gifts = el("ul", { class: "ua-gifts", "data-role": "gifts" }, ...d.gifts.map((g) => el(
        "li",
        { class: "ua-gift", "data-role": "gift", "data-gift": g.id },
        el("span", { class: "ua-gift-name" }, this.giftName(g)),
        el("span", { class: "ua-gift-points" }, `${g.points} ${this.t("points")}`),
        el("button", { type: "button", class: "ua-primary", disabled: this.busy || !g.affordable, "data-role": "exchange", onclick: () => this.exchangeGift(g.id) }, this.t("exchange")),
      )));
      const history = d.history.length
        ? el("ul", { class: "ua-payments", "data-role": "bonus-history" }, ...d.history.map((h) => el(
          "li",
          { class: "ua-payment", "data-gift": h.gift },
          el("span", { class: "ua-date" }, `${h.at.slice(0, 10)} · ${this.giftName(h)}`),
          el("span", { class: "ua-amount" }, `−${h.points}`),
        )))
        : el("p", { class: "ua-empty", "data-role": "bonus-history-empty" }, this.t("noHistory"));
      return el(
        "section",
        { class: "ua-card" },
        el("h3", {}, this.t("bonusTitle")),
        el("span", { class: "ua-big", "data-role": "points" }, `${d.points} ${this.t("points")}`),
        gifts,
        el("h4", {}, this.t("history")),
        history,
      );
    }

    numberItem(n) {
      const when = n.state === "active" ? this.t("since", { time: this.time(n.active_at) }) : this.t("from", { time: this.time(n.active_at) });
      return el(
        "li",
        { class: `ua-number ua-${n.state}`, "data-role": "number", "data-number": n.number, "data-state": n.state },
        el("span", { class: "ua-msisdn" }, pretty(n.number)),
        el("span", { class: "ua-state" }, this.t(n.state)),
        el("time", { class: "ua-when", datetime: n.active_at, title: n.active_at }, when),
        n.balance !== null && n.balance !== undefined ? el("span", { class: "ua-balance" }, `${Number(n.balance).toFixed(2)} ${this.t("rub")}`) : null,
        el("button", { type: "button", class: "ua-remove", disabled: this.busy, "data-role": "remove", onclick: () => this.removeNumber(n.number) }, this.t("remove")),
      );
    }
  }

  window.UssdAccountApp = {
    mount(container, msisdn, opts) {
      if (!(container instanceof Element)) throw new TypeError("UssdAccountApp.mount: container must be an element");
      return new AccountApp(container, msisdn, opts);
    },
  };
})();
