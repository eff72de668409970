"""Performs `web:` and `app:` steps (sim/web.py) the way the pages do, over HTTP.

One Browser per scenario run. It keeps a tab per (surface, acting subscriber): the site's tab
holds what `sessionStorage` holds in ussd/http/static/lk.js (the token, the number signed in,
a social sign-in waiting for number and password), the app's what the "Мой МТС" app keeps
(its token and the number shown). Every request is the one the page sends, in the same order
(docs/account.md), so a scenario checks the very API the browser uses.

The app signs in through the simulated mobile network on its first request, as it does on
the phone (`autoSignIn`), and again when its token has expired; the site never does: an
expired token is a 401 the scenario sees, as a visitor would, until it signs in again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from sim.targets import HttpTarget, Result, SmsView, Target, refused
from sim.web import WebAction
from ussd.menus import LANGUAGES, Texts


@dataclass(slots=True)
class Tab:
    """What a page keeps between steps."""

    token: str | None = None
    msisdn: str | None = None  # signed in as
    password: str | None = None  # typed at sign-in (the replace-password form asks for it)
    ticket: str | None = None  # a social sign-in waiting for number and password
    number: str | None = None  # the app's shown number (`?number=`); None: the own one


def sms_password_pattern(texts: Texts | None = None) -> re.Pattern[str]:
    """The SMS that brings a generated password (menus/texts.yaml `account.sms_password`), in
    every language, with the password as group 1."""
    texts = texts or Texts.load()
    alternatives = []
    for language in LANGUAGES:
        template = texts.get("account.sms_password", language, password="\0")
        head, _, tail = template.partition("\0")
        alternatives.append(re.escape(head) + r"([A-Za-z0-9]{4,10})" + re.escape(tail[:1]))
    return re.compile("|".join(f"(?:{a})" for a in alternatives))


def _password_in(pattern: re.Pattern[str], sms: SmsView) -> str | None:
    found = pattern.search(sms.text)
    if found is None:
        return None
    return next(g for g in found.groups() if g is not None)


class Browser:
    """The site's and the app's tabs of one scenario, on `target`'s HTTP address."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.tabs: dict[tuple[str, str], Tab] = {}
        self._http: HttpTarget | None = None
        self._pattern: re.Pattern[str] | None = None

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def _client(self) -> HttpTarget | Result:
        if self._http is None:
            url = await self.target.web_url()
            if isinstance(url, Result):
                return url
            # Only its plain requests are used: no admin token, no phones.
            self._http = HttpTarget(url, admin_token="")
        return self._http

    async def _call(
        self, method: str, path: str, body: Any = None, token: str | None = None
    ) -> Result:
        client = await self._client()
        if isinstance(client, Result):
            return client
        return await client._call(method, path, body, token=token)

    async def perform(self, action: WebAction, who: str) -> Result:
        """Do `action` as the subscriber `who` (the step's `as:`)."""
        tab = self.tabs.setdefault((action.surface, who), Tab())
        handler = getattr(self, f"_{action.surface}_{action.op}")
        result: Result = await handler(tab, who, action.args)
        return result

    async def _sms_secret(self, msisdn: str) -> str | Result:
        """The newest generated password in msisdn's inbox, as the subscriber reads it."""
        pattern = self._pattern = self._pattern or sms_password_pattern()

        def arrived(inbox: list[SmsView]) -> bool:
            return any(_password_in(pattern, s) for s in inbox)

        inbox = await self.target.inbox(msisdn, arrived)
        for sms in reversed(inbox):
            password = _password_in(pattern, sms)
            if password is not None:
                return password
        return refused(404, "no_sms_password", f"no SMS with a password in {msisdn}'s inbox")

    async def _password(self, args: dict[str, Any], msisdn: str) -> str | Result:
        if args.get("from_sms"):
            return await self._sms_secret(msisdn)
        return str(args["password"])

    # -- the website (/lk, ussd/http/static/lk.js) ----------------------------------------------

    async def _web_sms_password(self, tab: Tab, who: str, args: dict[str, Any]) -> Result:
        body = {"msisdn": args.get("msisdn", who)}
        if "captcha" in args:  # with captchas off (website.captcha) the page shows none
            issued = await self._call("POST", "/api/v1/lk/captcha", {})
            if not issued.ok:
                return issued
            body |= {"captcha_id": issued.data.get("captcha_id"), "captcha": args["captcha"]}
        return await self._call("POST", "/api/v1/lk/sms-password", body)

    async def _sign_in(self, tab: Tab, msisdn: str, password: str) -> Result:
        result = await self._call(
            "POST", "/api/v1/auth/login", {"msisdn": msisdn, "password": password}
        )
        if result.ok:
            tab.token, tab.msisdn, tab.password = str(result.data["token"]), msisdn, password
        return result

    async def _web_sign_in(self, tab: Tab, who: str, args: dict[str, Any]) -> Result:
        msisdn = args.get("msisdn", who)
        password = await self._password(args, msisdn)
        if isinstance(password, Result):
            return password
        return await self._sign_in(tab, msisdn, password)

    async def _sign_out(self, tab: Tab) -> Result:
        if tab.token is None:
            return Result(data={"logged_out": False})
        result = await self._call("POST", "/api/v1/auth/logout", None, tab.token)
        tab.token = tab.msisdn = tab.password = tab.number = None
        return result

    async def _web_sign_out(self, tab: Tab, who: str, args: dict[str, Any]) -> Result:
        return await self._sign_out(tab)

    async def _web_account(self, tab: Tab, who: str, args: dict[str, Any]) -> Result:
        return await self._call("GET", "/api/v1/lk/account", None, tab.token)

    async def _web_replace_password(self, tab: Tab, who: str, args: dict[str, Any]) -> Result:
        current = args.get("current", tab.password or "")
        body = {"current": current, "new": args["new"]}
        changed = await self._call("POST", "/api/v1/account/password", body, tab.token)
        if not changed.ok:
            return changed
        # A changed password revokes every token: the page signs in again with the new one.
        assert tab.msisdn is not None
        again = await self._sign_in(tab, tab.msisdn, args["new"])
        if not again.ok:
            tab.token = None
            return again
        return await self._web_account(tab, who, {})

    async def _web_social(self, tab: Tab, who: str, args: dict[str, Any]) -> Result:
        provider = quote(args["provider"], safe="")
        login = {"login": args["login"], "password": args.get("password", "social")}
        session = await self._call("POST", f"/api/v1/lk/providers/{provider}/login", login)
        if not session.ok:
            return session
        if args.get("consent", True) is False:
            # Denied at the provider: back on the site with an error, nothing changes.
            return Result(data={"consent": False})
        consent = {"session": session.data.get("session")}
        code = await self._call("POST", f"/api/v1/lk/providers/{provider}/consent", consent)
        if not code.ok:
            return code
        body = {"provider": args["provider"], "code": code.data.get("code")}
        back = await self._call("POST", "/api/v1/lk/social/login", body)
        if not back.ok:
            return back
        data = back.data
        if data.get("bound"):
            if tab.token is not None and data.get("msisdn") != tab.msisdn:
                # Bound to another account: this tab stays as it was; the other token goes.
                await self._call("POST", "/api/v1/auth/logout", None, str(data.get("token")))
                return refused(409, "identity_taken", "this identity signs in to another account")
            tab.token, tab.msisdn, tab.password = str(data["token"]), str(data["msisdn"]), None
            return back
        if tab.token is not None:  # signed in: bind it to this account at once
            ticket = {"ticket": data.get("ticket")}
            return await self._call("POST", "/api/v1/lk/social/bind", ticket, tab.token)
        tab.token = tab.msisdn = tab.password = None
        tab.ticket = str(data.get("ticket"))
        return back

    async def _web_social_bind(self, tab: Tab, who: str, args: dict[str, Any]) -> Result:
        if tab.ticket is None:
            return refused(409, "no_ticket", "no social sign-in is waiting for a number")
        msisdn = args.get("msisdn", who)
        password = await self._password(args, msisdn)
        if isinstance(password, Result):
            return password
        body = {"ticket": tab.ticket, "msisdn": msisdn, "password": password}
        result = await self._call("POST", "/api/v1/lk/social/bind", body)
        if result.ok:
            tab.ticket = None
            tab.token, tab.msisdn, tab.password = str(result.data["token"]), msisdn, password
        elif result.error == "invalid_ticket":
            tab.ticket = None  # the page goes back to its sign-in choice
        return result

    async def _web_unbind(self, tab: Tab, who: str, args: dict[str, Any]) -> Result:
        path = "/api/v1/lk/social/{}/{}".format(
            quote(args["provider"], safe=""), quote(args["login"], safe="")
        )
        return await self._call("DELETE", path, None, tab.token)

    async def _add_number(self, token: str | None, args: dict[str, Any]) -> Result:
        password = await self._password(args, args["msisdn"])
        if isinstance(password, Result):
            return password
        body = {"msisdn": args["msisdn"], "password": password}
        return await self._call("POST", "/api/v1/account/numbers", body, token)

    async def _web_add_number(self, tab: Tab, who: str, args: dict[str, Any]) -> Result:
        return await self._add_number(tab.token, args)

    async def _web_remove_number(self, tab: Tab, who: str, args: dict[str, Any]) -> Result:
        path = "/api/v1/account/numbers/" + quote(args["msisdn"], safe="")
        return await self._call("DELETE", path, None, tab.token)

    # -- the "Мой МТС" app (ussd/http/static/account.js) -------------------------------------

    async def _app(
        self, tab: Tab, who: str, method: str, path: str, body: Any = None, query: Any = None
    ) -> Result:
        """A request of the app as `who`: signed in through the network when it has no token
        (or an expired one), on the shown number (`?number=`)."""
        params = dict(query or {})
        if tab.number is not None:
            params["number"] = tab.number
        if params:
            path += "?" + urlencode(params)
        for _ in range(2):
            if tab.token is None:
                signed = await self._call("POST", "/api/v1/auth/network", {"msisdn": who})
                if not signed.ok:
                    return signed
                tab.token, tab.msisdn = str(signed.data["token"]), who
            result = await self._call(method, path, body, tab.token)
            if result.error != "invalid_token":
                return result
            tab.token = None  # expired while the clock moved on: the app signs in again
        return result

    async def _app_set_password(self, tab: Tab, who: str, args: dict[str, Any]) -> Result:
        body = {"msisdn": args.get("msisdn", who), "password": args["password"]}
        result = await self._call("POST", "/api/v1/auth/network-password", body)
        if result.ok:
            tab.token, tab.msisdn, tab.number = str(result.data["token"]), body["msisdn"], None
        return result

    async def _app_switch(self, tab: Tab, who: str, args: dict[str, Any]) -> Result:
        previous, tab.number = tab.number, (None if args["msisdn"] == who else args["msisdn"])
        result = await self._app(tab, who, "GET", "/api/v1/account")
        if not result.ok:
            tab.number = previous  # the app stays on the number it showed
        return result

    async def _app_account(self, tab: Tab, who: str, args: dict[str, Any]) -> Result:
        return await self._app(tab, who, "GET", "/api/v1/account")

    async def _app_services(self, tab: Tab, who: str, args: dict[str, Any]) -> Result:
        body = {"name": args["name"], "on": args["on"]}
        return await self._app(tab, who, "POST", "/api/v1/account/services", body)

    async def _app_spending(self, tab: Tab, who: str, args: dict[str, Any]) -> Result:
        query = {k: args[k] for k in ("from", "to") if k in args}
        return await self._app(tab, who, "GET", "/api/v1/account/spending", query=query)

    async def _app_instalments(self, tab: Tab, who: str, args: dict[str, Any]) -> Result:
        return await self._app(tab, who, "GET", "/api/v1/account/instalments")

    async def _app_pay_instalment(self, tab: Tab, who: str, args: dict[str, Any]) -> Result:
        """ "Оплатить" on a plan: the one named by `item`, else the first listed."""
        listed = await self._app_instalments(tab, who, {})
        if not listed.ok:
            return listed
        plans = [p for p in listed.data.get("plans", []) if isinstance(p, dict)]
        if "item" in args:
            plans = [p for p in plans if p.get("item") == args["item"]]
        if not plans:
            return refused(404, "unknown_plan", "no such instalment plan in the app's list")
        path = f"/api/v1/account/instalments/{plans[0].get('id')}/pay"
        return await self._app(tab, who, "POST", path, {})

    async def _app_bonus(self, tab: Tab, who: str, args: dict[str, Any]) -> Result:
        return await self._app(tab, who, "GET", "/api/v1/account/bonus")

    async def _app_exchange(self, tab: Tab, who: str, args: dict[str, Any]) -> Result:
        body = {"gift": args["gift"]}
        return await self._app(tab, who, "POST", "/api/v1/account/bonus/exchange", body)

    async def _app_add_number(self, tab: Tab, who: str, args: dict[str, Any]) -> Result:
        if tab.token is None:
            signed = await self._app(tab, who, "GET", "/api/v1/account")
            if not signed.ok:
                return signed
        return await self._add_number(tab.token, args)

    async def _app_remove_number(self, tab: Tab, who: str, args: dict[str, Any]) -> Result:
        path = "/api/v1/account/numbers/" + quote(args["msisdn"], safe="")
        return await self._app(tab, who, "DELETE", path)

    async def _app_sign_out(self, tab: Tab, who: str, args: dict[str, Any]) -> Result:
        return await self._sign_out(tab)
