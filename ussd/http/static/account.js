// "My account" app (SPEC §7): balance, package remains, payments (newest first), linked numbers,
// adding a number.
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
// a password by SMS. The token stays in memory only. Every text is set with textContent.
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
    },
  };

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

    // password null: the simulated mobile network vouches for the number (SPEC §7).
    signInAs(number, password) {
      return this.run(async () => {
        const result = password === null
          ? await this.api("POST", "/api/v1/auth/network", { msisdn: number })
          : await this.api("POST", "/api/v1/auth/login", { msisdn: number, password });
        this.token = result.token;
        this.msisdn = result.msisdn;
        await this.load();
      });
    }

    smsPassword(form) {
      return this.run(async () => {
        const number = form.elements.msisdn.value.trim();
        await this.api("POST", "/api/v1/auth/sms-password", { msisdn: number });
        this.message = { kind: "info", text: () => this.t("smsSent") };
      });
    }

    async load() {
      this.account = await this.api("GET", "/api/v1/account");
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
          signedIn ? el("span", { class: "ua-subtitle" }, pretty(this.account.msisdn)) : null,
        ),
        el("span", { class: "ua-brand", "aria-hidden": "true" }, "*#"),
      );
      const message = this.message
        ? el("p", { class: `ua-message ua-${this.message.kind}`, role: this.message.kind === "error" ? "alert" : "status", "data-role": "message" }, this.message.text())
        : null;
      const body = signedIn ? this.accountView() : this.signInView();
      if (message) body.prepend(message);
      this.root.replaceChildren(header, body);
      // Results show at the top: a container that scrolls (a phone's screen) goes back up.
      if (message && this.container.scrollHeight > this.container.clientHeight) this.container.scrollTop = 0;
      this.root.setAttribute("aria-busy", String(this.busy));
      this.root.dataset.view = signedIn ? "account" : "sign-in";
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
      return el("div", { class: "ua-body" }, balance, remains, payments, numbers, footer);
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
