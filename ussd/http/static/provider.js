// A simulated social provider's own pages (docs/account.md "Website"): its login, then its
// consent page, then back to /lk with a one-time code and the site's `state` (RFC 6749 §4.1).
// Nothing leaves the machine; the provider's user directory is documented in docs/account.md.
"use strict";

(() => {
  const Lk = window.Lk;
  const main = document.getElementById("pv-main");
  const provider = decodeURIComponent(location.pathname.split("/").pop());
  const q = new URLSearchParams(location.search);
  const state = q.get("state") || "";
  let session = null;
  let login = "";
  let error = null;

  function back(params) {
    const out = new URLSearchParams({ provider, state, ...params });
    location.assign("/lk?" + out);
  }

  function header() {
    return Lk.el(
      "header",
      { class: "pv-header pv-" + provider },
      Lk.icon(provider),
      Lk.el("strong", { text: Lk.providerName(provider) }),
    );
  }

  function render() {
    document.title = Lk.providerName(provider);
    // replaceChildren would write a null out as the text "null": an empty text node instead.
    const err = error ? Lk.el("p", { class: "lk-error", id: "pv-error", role: "alert", text: error }) : "";
    if (session === null) {
      main.replaceChildren(
        header(),
        err,
        Lk.el(
          "form",
          { id: "pv-form", onsubmit: signIn },
          Lk.field("pv-login", Lk.t("provider_login"), "text", login),
          Lk.field("pv-password", Lk.t("provider_password"), "password"),
          Lk.el("button", { type: "submit", class: "lk-button", id: "pv-submit", text: Lk.t("provider_next") }),
        ),
        Lk.el("p", { class: "lk-muted", text: Lk.t("provider_sim_note") }),
      );
    } else {
      main.replaceChildren(
        header(),
        err,
        Lk.el("h1", { text: Lk.t("consent_title") }),
        Lk.el("p", { id: "pv-consent-text", text: Lk.t("consent_text", { site: Lk.t("site_title"), login }) }),
        Lk.el(
          "div",
          { class: "pv-actions" },
          Lk.el("button", { type: "button", class: "lk-button", id: "pv-allow", text: Lk.t("consent_allow"), onclick: allow }),
          Lk.el("button", {
            type: "button",
            class: "lk-button lk-button-ghost",
            id: "pv-deny",
            text: Lk.t("consent_deny"),
            onclick: () => back({ error: "access_denied" }),
          }),
        ),
      );
    }
    main.dataset.step = session === null ? "login" : "consent";
  }

  async function signIn() {
    login = document.getElementById("pv-login").value.trim();
    const password = document.getElementById("pv-password").value;
    const path = "/api/v1/lk/providers/" + encodeURIComponent(provider) + "/login";
    const res = await Lk.api("POST", path, { login, password });
    if (!res.ok) {
      error = Lk.errorText(res, "provider");
      return render();
    }
    error = null;
    session = res.data.session;
    login = res.data.login;
    render();
  }

  async function allow() {
    const path = "/api/v1/lk/providers/" + encodeURIComponent(provider) + "/consent";
    const res = await Lk.api("POST", path, { session });
    if (!res.ok) {
      session = null;
      error = Lk.errorText(res);
      return render();
    }
    back({ code: res.data.code });
  }

  Lk.load().then(() => {
    Lk.setLang(Lk.lang);
    render();
    document.body.dataset.ready = "true";
  });
})();
