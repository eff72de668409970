// The personal-account website at /lk (docs/account.md "Website"), and the helpers the
// simulated providers' pages (provider.js) share with it as window.Lk.
//
// Texts come from menus/lk.yaml through GET /api/v1/lk/site; every text is set with
// textContent. The bearer token lives in sessionStorage (this tab only, gone when it closes);
// every request is same-origin JSON, so the gateway's Origin checks apply.
"use strict";

(() => {
  const store = window.sessionStorage;
  const PROVIDER_COLOURS = { vk: "#0077ff", yandex: "#fc3f1d", google: "#ffffff" };

  const Lk = {
    site: null,
    lang: "ru",

    async load() {
      const res = await Lk.api("GET", "/api/v1/lk/site");
      if (!res.ok) throw new Error("site settings unavailable");
      Lk.site = res.data;
      const q = new URLSearchParams(location.search);
      Lk.lang = q.get("lang") || store.getItem("lk.lang") || res.data.language || "ru";
      if (!Lk.site.texts[Lk.lang]) Lk.lang = "ru";
      return Lk.site;
    },

    setLang(lang) {
      Lk.lang = lang;
      store.setItem("lk.lang", lang);
      document.documentElement.lang = lang;
    },

    t(key, fields) {
      const texts = (Lk.site && Lk.site.texts[Lk.lang]) || {};
      let text = texts[key] || key;
      for (const [name, value] of Object.entries(fields || {})) {
        text = text.split("{" + name + "}").join(String(value));
      }
      return text;
    },

    async api(method, path, body, token) {
      const headers = {};
      if (body !== undefined) headers["Content-Type"] = "application/json";
      if (token) headers.Authorization = "Bearer " + token;
      try {
        const response = await fetch(path, {
          method,
          headers,
          body: body === undefined ? undefined : JSON.stringify(body),
          credentials: "same-origin",
        });
        let data = null;
        try {
          data = await response.json();
        } catch (_) {
          data = null;
        }
        return {
          ok: response.ok,
          status: response.status,
          data,
          retryAfter: response.headers.get("Retry-After"),
        };
      } catch (_) {
        return { ok: false, status: 0, data: null, retryAfter: null };
      }
    },

    // A readable message for a failed request: err_<code> from menus/lk.yaml, or
    // err_<context>_<code> when a code means something else there (a 429 of the captcha).
    errorText(res, context) {
      if (res.status === 0) return Lk.t("err_network");
      const error = (res.data && res.data.error) || {};
      const texts = (Lk.site && Lk.site.texts[Lk.lang]) || {};
      const code = error.code || "other";
      const own = context ? "err_" + context + "_" + code : null;
      const key = own && texts[own] ? own : "err_" + code;
      if (texts[key]) return Lk.t(key, { seconds: res.retryAfter || "?" });
      return Lk.t("err_other", { message: error.message || String(res.status) });
    },

    el(tag, attrs, ...children) {
      const node = document.createElement(tag);
      for (const [name, value] of Object.entries(attrs || {})) {
        if (value === undefined || value === null || value === false) continue;
        if (name === "text") node.textContent = value;
        else if (name === "onclick") node.addEventListener("click", value);
        else if (name === "onsubmit") {
          node.addEventListener("submit", (event) => {
            event.preventDefault();
            value(event);
          });
        } else node.setAttribute(name, value === true ? "" : value);
      }
      for (const child of children.flat()) {
        if (child !== null && child !== undefined && child !== false) node.append(child);
      }
      return node;
    },

    field(id, label, type, value) {
      return Lk.el(
        "label",
        { class: "lk-field", for: id },
        Lk.el("span", { text: label }),
        Lk.el("input", {
          id,
          name: id,
          type: type || "text",
          value: value || "",
          autocomplete: type === "password" ? "off" : "on",
          required: true,
        }),
      );
    },

    // A provider's icon, drawn here: no external asset is ever loaded.
    icon(provider) {
      const ns = "http://www.w3.org/2000/svg";
      const svg = document.createElementNS(ns, "svg");
      svg.setAttribute("viewBox", "0 0 32 32");
      svg.setAttribute("width", "32");
      svg.setAttribute("height", "32");
      svg.setAttribute("aria-hidden", "true");
      const add = (name, attrs) => {
        const node = document.createElementNS(ns, name);
        for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
        svg.append(node);
        return node;
      };
      add("rect", { x: 0, y: 0, width: 32, height: 32, rx: 8, fill: PROVIDER_COLOURS[provider] || "#888" });
      if (provider === "vk") {
        add("path", {
          d: "M7 11h3.2c.3 3 1.6 5.3 3 5.8V11h3v3.2c1.3-.2 2.6-1.7 3.1-3.2h3c-.5 2-2 3.6-3.1 4.3 1.1.5 2.9 1.9 3.6 4.7h-3.3c-.6-1.6-2-2.9-3.3-3v3h-.4C9.7 20 7.3 16.6 7 11z",
          fill: "#fff",
        });
      } else if (provider === "yandex") {
        add("path", {
          d: "M17.6 8h-2.3c-3 0-5 1.7-5 4.5 0 2.2 1 3.5 3 4.8L10 24h2.9l3.6-6.1-1.2-.8c-1.6-1.1-2.3-2-2.3-3.9 0-1.8 1.2-3 3.3-3h1.3V24h2.6V8z",
          fill: "#fff",
        });
      } else {
        const ring = (colour, offset) =>
          add("circle", {
            cx: 16, cy: 16, r: 8, fill: "none", stroke: colour, "stroke-width": 4,
            "stroke-dasharray": "12.5 37.7", "stroke-dashoffset": offset,
          });
        ring("#ea4335", 0);
        ring("#fbbc05", -12.5);
        ring("#34a853", -25);
        ring("#4285f4", -37.7);
        add("rect", { x: 16, y: 14, width: 8, height: 4, fill: "#4285f4" });
      }
      return svg;
    },

    providerName(provider) {
      return Lk.t("provider_" + provider);
    },
  };
  window.Lk = Lk;

  // -- the site --------------------------------------------------------------------------

  const main = document.getElementById("lk-main");
  if (!main) return; // a provider page: only the helpers above are wanted

  const el = Lk.el;
  const t = Lk.t;
  const ui = {
    view: "home",
    token: store.getItem("lk.token"),
    msisdn: store.getItem("lk.msisdn") || "",
    account: null,
    notice: null,
    error: null,
    captcha: null,
    ticket: null, // {ticket, provider, login} while a first social sign-in is being bound
  };

  function setSession(token, msisdn) {
    ui.token = token;
    ui.msisdn = msisdn || ui.msisdn;
    if (token) {
      store.setItem("lk.token", token);
      store.setItem("lk.msisdn", ui.msisdn);
    } else {
      store.removeItem("lk.token");
    }
  }

  function say(notice, error) {
    ui.notice = notice || null;
    ui.error = error || null;
  }

  function go(view) {
    ui.view = view;
    render();
  }

  function left(seconds) {
    const d = Math.floor(seconds / 86400);
    const h = Math.floor((seconds % 86400) / 3600);
    const m = Math.floor((seconds % 3600) / 60);
    if (d > 0) return t("left_days", { d, h, m });
    if (h > 0) return t("left_hours", { h, m });
    if (m > 0) return t("left_minutes", { m });
    return t("left_seconds", { s: seconds });
  }

  function messages() {
    return [
      ui.notice ? el("p", { class: "lk-notice", id: "lk-notice", role: "status", text: ui.notice }) : null,
      ui.error ? el("p", { class: "lk-error", id: "lk-error", role: "alert", text: ui.error }) : null,
    ];
  }

  function card(title, ...children) {
    return el("section", { class: "lk-card" }, title ? el("h2", { text: title }) : null, ...children);
  }

  function socialButtons(onPick, idPrefix) {
    return el(
      "div",
      { class: "lk-social" },
      Lk.site.providers.map((p) =>
        el(
          "button",
          {
            type: "button",
            class: "lk-social-button",
            id: idPrefix + p,
            title: Lk.providerName(p),
            "aria-label": Lk.providerName(p),
            onclick: () => onPick(p),
          },
          Lk.icon(p),
        ),
      ),
    );
  }

  // Off to the provider's own pages; `state` comes back with the code (RFC 6749 §10.12).
  function toProvider(provider, bindHere) {
    const state = crypto.getRandomValues(new Uint32Array(4)).join("-");
    store.setItem("lk.state", state);
    store.setItem("lk.bindHere", bindHere ? "1" : "");
    const q = new URLSearchParams({ state, lang: Lk.lang });
    location.assign("/lk/provider/" + encodeURIComponent(provider) + "?" + q);
  }

  // -- views -------------------------------------------------------------------------------

  const views = {
    home() {
      return [
        el(
          "section",
          { class: "lk-hero" },
          el("h1", { text: t("hero_title") }),
          el("p", { text: t("hero_text") }),
          el("button", { type: "button", class: "lk-button", id: "lk-hero-signin", text: t("sign_in"), onclick: () => go("choose") }),
        ),
      ];
    },

    choose() {
      return [
        card(
          t("choose_service"),
          el(
            "div",
            { class: "lk-tiles" },
            el(
              "button",
              { type: "button", class: "lk-tile", id: "lk-service-mobile", onclick: () => { say(); go("login"); } },
              el("strong", { text: t("service_mobile") }),
              el("span", { text: t("service_mobile_hint") }),
            ),
            el(
              "button",
              { type: "button", class: "lk-tile", disabled: true },
              el("strong", { text: t("service_home") }),
              el("span", { text: t("service_unavailable") }),
            ),
          ),
        ),
      ];
    },

    login() {
      return [
        card(
          t("mobile_title"),
          el(
            "form",
            { id: "lk-login-form", onsubmit: signIn },
            Lk.field("lk-number", t("number"), "tel", ui.msisdn),
            Lk.field("lk-password", t("password"), "password"),
            el("button", { type: "submit", class: "lk-button", id: "lk-login-submit", text: t("sign_in") }),
          ),
          el("button", { type: "button", class: "lk-link", id: "lk-sms-link", text: t("get_sms_password"), onclick: () => { say(); go("sms"); } }),
          el("p", { class: "lk-muted", text: t("or_via") }),
          socialButtons((p) => toProvider(p, false), "lk-social-"),
        ),
      ];
    },

    sms() {
      const captchaOn = Lk.site.captcha !== "off";
      if (captchaOn && !ui.captcha) newCaptcha();
      return [
        card(
          t("sms_title"),
          el("p", { class: "lk-muted", text: t("sms_hint") }),
          el(
            "form",
            { id: "lk-sms-form", onsubmit: sendSmsPassword },
            Lk.field("lk-sms-number", t("number"), "tel", ui.msisdn),
            captchaOn
              ? el(
                  "div",
                  { class: "lk-captcha" },
                  el("img", {
                    id: "lk-captcha-img",
                    alt: t("captcha_alt"),
                    width: 160,
                    height: 60,
                    src: ui.captcha ? ui.captcha.image : undefined,
                  }),
                  el("button", { type: "button", class: "lk-link", id: "lk-captcha-new", text: t("captcha_new"), onclick: () => newCaptcha(true) }),
                  Lk.field("lk-captcha-answer", t("captcha"), "text"),
                )
              : el("p", { class: "lk-muted", text: t("captcha_off") }),
            el("button", { type: "submit", class: "lk-button", id: "lk-sms-submit", text: t("send_sms") }),
          ),
          el("button", { type: "button", class: "lk-link", text: t("back"), onclick: () => { say(); go("login"); } }),
        ),
      ];
    },

    bind() {
      const tk = ui.ticket;
      return [
        card(
          t("social_first_title"),
          el("p", { id: "lk-bind-text", text: t("social_first_text", { provider: Lk.providerName(tk.provider), login: tk.login }) }),
          el(
            "form",
            { id: "lk-bind-form", onsubmit: bindWithPassword },
            Lk.field("lk-bind-number", t("number"), "tel", ui.msisdn),
            Lk.field("lk-bind-password", t("password"), "password"),
            el("button", { type: "submit", class: "lk-button", id: "lk-bind-submit", text: t("sign_in") }),
          ),
        ),
      ];
    },

    account() {
      const a = ui.account;
      if (!a) return [el("p", { class: "lk-muted", text: t("loading") })];
      const out = [];
      if (a.password_generated) {
        out.push(
          el(
            "section",
            { class: "lk-recommend", id: "lk-recommend" },
            el("strong", { text: t("recommend_title") }),
            el("span", { text: t("recommend_text") }),
            el("button", {
              type: "button",
              class: "lk-button",
              id: "lk-recommend-action",
              text: t("recommend_action"),
              onclick: () => document.getElementById("lk-current").focus(),
            }),
          ),
        );
      }
      out.push(
        card(
          t("overview"),
          el(
            "div",
            { class: "lk-stats" },
            el("div", { class: "lk-stat" }, el("span", { text: t("balance") }), el("strong", { id: "lk-balance", text: a.balance.toFixed(2) + " " + t("rub") })),
            el(
              "div",
              { class: "lk-stat" },
              el("span", { text: t("package") }),
              el("strong", {
                text: [t("minutes", { value: a.package.minutes }), t("sms_count", { value: a.package.sms }), t("mb", { value: a.package.mb })].join(" · "),
              }),
            ),
          ),
          el("button", { type: "button", class: "lk-link", id: "lk-refresh", text: t("refresh"), onclick: () => loadAccount() }),
        ),
      );
      const rows = a.numbers.map((n) =>
        el(
          "li",
          { class: "lk-row", "data-number": n.number, "data-state": n.state },
          el("strong", { text: "+" + n.number }),
          el("span", {
            class: "lk-state lk-state-" + n.state,
            text: n.state === "active" ? t("state_active") : t("state_pending", { left: left(n.seconds_left) }),
          }),
          el("span", { class: "lk-muted", text: t(n.flow === "office" ? "office_flow" : "app_flow") }),
          el("button", { type: "button", class: "lk-link", text: t("remove"), onclick: () => removeNumber(n.number) }),
        ),
      );
      out.push(
        card(
          t("numbers_title"),
          rows.length ? el("ul", { class: "lk-list", id: "lk-numbers" }, rows) : el("p", { class: "lk-muted", id: "lk-numbers", text: t("no_numbers") }),
          el("h3", { text: t("add_number") }),
          el("p", { class: "lk-muted", text: t("add_number_hint") }),
          el(
            "form",
            { id: "lk-add-form", class: "lk-inline", onsubmit: addNumber },
            Lk.field("lk-add-number", t("number"), "tel"),
            Lk.field("lk-add-password", t("number_password"), "password"),
            el("button", { type: "submit", class: "lk-button", id: "lk-add-submit", text: t("add") }),
          ),
        ),
      );
      out.push(
        card(
          t("settings"),
          el("h3", { text: t("change_password") }),
          el(
            "form",
            { id: "lk-password-form", onsubmit: changePassword },
            Lk.field("lk-current", t("current_password"), "password"),
            Lk.field("lk-new", t("new_password"), "password"),
            Lk.field("lk-repeat", t("repeat_password"), "password"),
            el("button", { type: "submit", class: "lk-button", id: "lk-password-submit", text: t("save") }),
          ),
          el("h3", { text: t("social_title") }),
          a.social.length
            ? el(
                "ul",
                { class: "lk-list", id: "lk-social-list" },
                a.social.map((s) =>
                  el(
                    "li",
                    { class: "lk-row", "data-provider": s.provider, "data-login": s.external_id },
                    Lk.icon(s.provider),
                    el("strong", { text: Lk.providerName(s.provider) }),
                    el("span", { text: s.external_id }),
                    el("button", { type: "button", class: "lk-link", text: t("social_unbind"), onclick: () => unbind(s) }),
                  ),
                ),
              )
            : el("p", { class: "lk-muted", id: "lk-social-list", text: t("social_none") }),
          el("p", { class: "lk-muted", text: t("social_bind") }),
          socialButtons((p) => toProvider(p, true), "lk-bind-"),
        ),
      );
      return out;
    },
  };

  function render() {
    document.title = t("site_title");
    for (const node of document.querySelectorAll("[data-t]")) node.textContent = t(node.dataset.t);
    document.getElementById("lk-logo").textContent = Lk.site.operator;
    document.getElementById("lk-lang").textContent = t("lang_switch");
    const signedIn = Boolean(ui.token);
    document.getElementById("lk-signin").hidden = signedIn;
    document.getElementById("lk-signout").hidden = !signedIn;
    const me = document.getElementById("lk-me");
    me.hidden = !signedIn;
    me.textContent = signedIn ? "+" + ui.msisdn : "";
    if (signedIn && !["account"].includes(ui.view)) ui.view = "account";
    main.replaceChildren(...[...messages(), ...views[ui.view]()].filter(Boolean));
    main.dataset.view = ui.view;
  }

  // -- actions -----------------------------------------------------------------------------

  function value(id) {
    const node = document.getElementById(id);
    return node ? node.value.trim() : "";
  }

  async function signIn() {
    const msisdn = value("lk-number");
    const res = await Lk.api("POST", "/api/v1/auth/login", { msisdn, password: document.getElementById("lk-password").value });
    if (!res.ok) {
      say(null, Lk.errorText(res));
      return render();
    }
    setSession(res.data.token, res.data.msisdn);
    say();
    go("account");
    await loadAccount();
  }

  async function newCaptcha(rerender) {
    ui.captcha = { image: undefined, id: null };
    const res = await Lk.api("POST", "/api/v1/lk/captcha", {});
    if (res.ok) {
      ui.captcha = { image: res.data.image, id: res.data.captcha_id };
      if (rerender) say(); // asked for by hand: what was said before is done with
    } else {
      // Too many pictures from this address (429): say when the next one comes.
      say(null, Lk.errorText(res, "captcha"));
      return render();
    }
    const img = document.getElementById("lk-captcha-img");
    if (img && ui.captcha.image) img.src = ui.captcha.image;
    const answer = document.getElementById("lk-captcha-answer");
    if (answer) answer.value = "";
    if (rerender) render();
  }

  async function sendSmsPassword() {
    const msisdn = value("lk-sms-number");
    const body = { msisdn };
    if (Lk.site.captcha !== "off") {
      body.captcha_id = ui.captcha && ui.captcha.id;
      body.captcha = value("lk-captcha-answer");
    }
    ui.captcha = null; // spent, right or wrong: the next view draws a new one
    const res = await Lk.api("POST", "/api/v1/lk/sms-password", body);
    ui.msisdn = msisdn;
    if (!res.ok) {
      say(null, Lk.errorText(res));
      return go("sms");
    }
    ui.msisdn = res.data.msisdn;
    say(t("sms_sent", { number: "+" + res.data.msisdn }) + " " + t("sms_sent_next"));
    go("login");
  }

  async function loadAccount() {
    if (!ui.token) return;
    const res = await Lk.api("GET", "/api/v1/lk/account", undefined, ui.token);
    if (!res.ok) {
      if (res.status === 401) {
        setSession(null);
        say(null, Lk.errorText(res));
        return go("login");
      }
      say(null, Lk.errorText(res));
      return render();
    }
    ui.account = res.data;
    render();
  }

  async function changePassword() {
    const current = document.getElementById("lk-current").value;
    const fresh = document.getElementById("lk-new").value;
    if (fresh !== document.getElementById("lk-repeat").value) {
      say(null, t("passwords_differ"));
      return render();
    }
    const res = await Lk.api("POST", "/api/v1/account/password", { current, new: fresh }, ui.token);
    if (!res.ok) {
      say(null, Lk.errorText(res));
      return render();
    }
    // A changed password revokes every token (docs/account.md): sign in again with it.
    const again = await Lk.api("POST", "/api/v1/auth/login", { msisdn: ui.msisdn, password: fresh });
    if (!again.ok) {
      setSession(null);
      say(null, Lk.errorText(again));
      return go("login");
    }
    setSession(again.data.token, again.data.msisdn);
    say(t("password_changed"));
    await loadAccount();
  }

  async function addNumber() {
    const msisdn = value("lk-add-number");
    const res = await Lk.api("POST", "/api/v1/account/numbers", { msisdn, password: document.getElementById("lk-add-password").value }, ui.token);
    say(res.ok ? t("number_added", { number: "+" + res.data.number }) : null, res.ok ? null : Lk.errorText(res));
    await loadAccount();
  }

  async function removeNumber(number) {
    const res = await Lk.api("DELETE", "/api/v1/account/numbers/" + encodeURIComponent(number), undefined, ui.token);
    say(res.ok ? t("number_removed", { number: "+" + number }) : null, res.ok ? null : Lk.errorText(res));
    await loadAccount();
  }

  async function unbind(s) {
    const path = "/api/v1/lk/social/" + encodeURIComponent(s.provider) + "/" + encodeURIComponent(s.external_id);
    const res = await Lk.api("DELETE", path, undefined, ui.token);
    say(res.ok ? t("social_unbound", { provider: Lk.providerName(s.provider), login: s.external_id }) : null, res.ok ? null : Lk.errorText(res));
    await loadAccount();
  }

  async function bindWithPassword() {
    const msisdn = value("lk-bind-number");
    const body = { ticket: ui.ticket.ticket, msisdn, password: document.getElementById("lk-bind-password").value };
    const res = await Lk.api("POST", "/api/v1/lk/social/bind", body);
    if (!res.ok) {
      say(null, Lk.errorText(res));
      if (res.data && res.data.error && res.data.error.code === "invalid_ticket") {
        ui.ticket = null;
        return go("login");
      }
      return render();
    }
    const tk = ui.ticket;
    ui.ticket = null;
    setSession(res.data.token, res.data.msisdn);
    say(t("social_bound", { provider: Lk.providerName(tk.provider), login: tk.login }));
    go("account");
    await loadAccount();
  }

  // Back from a provider: ?provider=…&code=…&state=… (or &error=access_denied).
  async function providerReturn(q) {
    const provider = q.get("provider");
    const state = q.get("state");
    const expected = store.getItem("lk.state");
    const bindHere = store.getItem("lk.bindHere") === "1";
    store.removeItem("lk.state");
    store.removeItem("lk.bindHere");
    history.replaceState(null, "", "/lk");
    if (!expected || state !== expected) return; // not a sign-in this tab started
    if (q.get("error")) {
      say(null, t("social_denied", { provider: Lk.providerName(provider) }));
      ui.view = ui.token ? "account" : "login";
      return;
    }
    const res = await Lk.api("POST", "/api/v1/lk/social/login", { provider, code: q.get("code") || "" });
    if (!res.ok) {
      say(null, Lk.errorText(res));
      ui.view = ui.token ? "account" : "login";
      return;
    }
    if (res.data.bound) {
      if (ui.token && bindHere && res.data.msisdn !== ui.msisdn) {
        // Bound to another account: this tab stays signed in as it was; the other token goes.
        await Lk.api("POST", "/api/v1/auth/logout", undefined, res.data.token);
        say(null, t("err_identity_taken"));
        ui.view = "account";
        return;
      }
      setSession(res.data.token, res.data.msisdn);
      ui.view = "account";
      return;
    }
    if (ui.token && bindHere) {
      const bound = await Lk.api("POST", "/api/v1/lk/social/bind", { ticket: res.data.ticket }, ui.token);
      say(bound.ok ? t("social_bound", { provider: Lk.providerName(provider), login: res.data.login }) : null, bound.ok ? null : Lk.errorText(bound));
      ui.view = "account";
      return;
    }
    setSession(null);
    ui.ticket = { ticket: res.data.ticket, provider, login: res.data.login };
    ui.view = "bind";
  }

  async function start() {
    await Lk.load();
    Lk.setLang(Lk.lang);
    document.getElementById("lk-lang").addEventListener("click", () => {
      Lk.setLang(Lk.lang === "ru" ? "en" : "ru");
      render();
    });
    document.getElementById("lk-signin").addEventListener("click", () => { say(); go("choose"); });
    document.getElementById("lk-signout").addEventListener("click", async () => {
      if (ui.token) await Lk.api("POST", "/api/v1/auth/logout", undefined, ui.token);
      setSession(null);
      ui.account = null;
      say();
      go("home");
    });
    const q = new URLSearchParams(location.search);
    if (q.get("provider")) await providerReturn(q);
    render();
    if (ui.token) await loadAccount();
    document.body.dataset.ready = "true";
  }

  start().catch(() => {
    main.textContent = "…";
  });
})();
