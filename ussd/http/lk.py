"""The personal-account website at `/lk` (docs/account.md "Website").

Pages: `/lk` (the site) and `/lk/provider/{provider}` (a simulated social provider's own login
and consent pages). Their API lives under `/api/v1/lk/`: texts and settings, captchas, the SMS
password behind a captcha, the account view with what the site adds (generated-password
recommendation, social bindings, link countdowns), and social sign-in. Everything else the site
does goes through the self-care routes of ussd/http/account.py.

A thin adapter: the rules are ussd.accounts' (lockout, rate limit, links, bindings), the
captchas ussd.captcha's, the providers ussd.social's. Request bodies are never logged. Every
POST is JSON only, and the Host/Origin guards of ussd/http/security.py apply: a page on another
site can neither post here nor frame these pages (frame-ancestors 'none').
"""

from __future__ import annotations

import base64
import functools
import math
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ussd import resources, yamlload
from ussd.accounts import AccountError, RateLimited, Unauthorized
from ussd.http.account import MAX_PASSWORD, Handler, account_errors, bearer
from ussd.http.errors import (
    ApiError,
    json_body,
    json_response,
    static_bytes,
    static_file,
    text_field,
)
from ussd.menus import LANGUAGES
from ussd.ratelimit import ClientLimit
from ussd.social import PROVIDERS, SocialError, SocialSim

if TYPE_CHECKING:
    from ussd.runtime import Gateway

TEXTS_FILE = "lk.yaml"
# The site's files: a fixed list, so no path from a URL reaches the filesystem.
ASSETS = {
    "lk.css": "text/css",
    "lk.js": "text/javascript",
    "provider.js": "text/javascript",
}
# No inline script, no foreign origin, no framing (clickjacking), the captcha as a data: image.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    # The social sign-in code travels in the URL: no Referer carries it anywhere.
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


class TextsError(Exception):
    """menus/lk.yaml is wrong; the message names the key."""


def load_texts() -> dict[str, dict[str, str]]:
    """menus/lk.yaml as {language: {key: text}}; every key in every language, or TextsError."""
    path = resources.path("menus") / TEXTS_FILE
    try:
        data = yamlload.load_file(path)
    except yamlload.YamlError as exc:
        raise TextsError(f"{TEXTS_FILE}: {exc.message}") from None
    if not isinstance(data, dict):
        raise TextsError(f"{TEXTS_FILE}: expected a mapping of keys to {{ru, en}} texts")
    out: dict[str, dict[str, str]] = {language: {} for language in LANGUAGES}
    for key, value in data.items():
        if not isinstance(value, dict) or set(value) != set(LANGUAGES):
            raise TextsError(f"{TEXTS_FILE}: {key}: expected exactly {', '.join(LANGUAGES)}")
        for language in LANGUAGES:
            text = value[language]
            if not isinstance(text, str) or not text:
                raise TextsError(f"{TEXTS_FILE}: {key}.{language}: missing text")
            out[language][str(key)] = text
    return out


def social_errors(handler: Handler) -> Handler:
    """Turn a SocialError escaping `handler` into its JSON error (and AccountErrors too)."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except SocialError as exc:
            raise ApiError(exc.status, exc.code, exc.message) from None

    return account_errors(wrapper)


class LkSite:
    """The website's routes of one gateway."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.accounts = gateway.accounts
        self.texts = load_texts()
        website = gateway.config.website
        self.social = SocialSim(website.provider_password)
        # Per client address (docs/account.md "Website"): drawing captchas and trying provider
        # passwords in a loop is refused with 429 before it costs work.
        self.captcha_limit = ClientLimit(website.captchas_per_minute)
        self.provider_limit = ClientLimit(website.provider_logins_per_minute)

    def _now(self) -> float:
        return self.gateway.clock.now()

    def _limit(self, limit: ClientLimit, request: web.Request, what: str) -> None:
        """RateLimited (429, Retry-After) when this client asked for `what` too often."""
        wait = limit.take(request.remote or "", self._now())
        if wait > 0:
            raise RateLimited(
                f"too many {what} from this address; try again in {math.ceil(wait)} s", wait
            )

    # -- pages -------------------------------------------------------------------------------

    async def page(self, request: web.Request) -> web.Response:
        """`GET /lk`: the personal-account site."""
        return self._html("lk.html")

    async def provider_page(self, request: web.Request) -> web.Response:
        """`GET /lk/provider/{provider}`: the simulated provider's login and consent pages."""
        if request.match_info["provider"] not in PROVIDERS:
            raise ApiError(404, "unknown_provider", "no such provider")
        return self._html("lk-provider.html")

    def _html(self, name: str) -> web.Response:
        return web.Response(
            body=static_bytes(name), content_type="text/html", charset="utf-8", headers=PAGE_HEADERS
        )

    async def asset(self, request: web.Request) -> web.Response:
        """`GET /lk/{name}`: the site's stylesheet and scripts (a fixed list)."""
        return static_file(request.match_info["name"], ASSETS)

    # -- site settings, captcha, SMS password -----------------------------------------------

    async def site(self, request: web.Request) -> web.Response:
        """`GET /api/v1/lk/site`: texts in both languages, captcha mode, providers."""
        config = self.gateway.config
        return json_response(
            {
                "operator": config.operator.name,
                "language": config.operator.language,
                "captcha": config.website.captcha,
                "providers": list(PROVIDERS),
                "texts": self.texts,
            }
        )

    async def captcha(self, request: web.Request) -> web.Response:
        """`POST /api/v1/lk/captcha` → 201 a PNG captcha as a data: URL (409 off, 429)."""
        self._limit(self.captcha_limit, request, "captchas")
        now = self._now()
        challenge = self.accounts.issue_captcha()
        image = "data:image/png;base64," + base64.b64encode(challenge.png).decode()
        return json_response(
            {
                "captcha_id": challenge.id,
                "image": image,
                "expires_in": math.ceil(challenge.expires - now),
            },
            status=201,
            headers={"Cache-Control": "no-store"},
        )

    async def sms_password(self, request: web.Request) -> web.Response:
        """`POST /api/v1/lk/sms-password {"msisdn","captcha_id","captcha"}` (400, 404, 429)."""
        data = await json_body(request)
        msisdn = self.accounts.normalise(text_field(data, "msisdn", max_length=32))
        captcha_id = data.get("captcha_id")
        answer = data.get("captcha")
        flow = self.accounts.site_sms_password_flow(msisdn, captcha_id, answer)
        await self.gateway.passwords.drive(flow)
        interval = math.ceil(self.gateway.config.auth.sms_password_interval)
        return json_response({"sent": True, "msisdn": msisdn, "retry_after": interval})

    # -- the signed-in view -----------------------------------------------------------------

    def _me(self, request: web.Request) -> str:
        return self.accounts.authenticate(bearer(request))

    async def account(self, request: web.Request) -> web.Response:
        """`GET /api/v1/lk/account`: the account view plus what the site shows besides."""
        me = self._me(request)
        view = self.accounts.account_view(me)
        now = self._now()
        for item in view["numbers"]:
            item["seconds_left"] = max(0, math.ceil(item["active_at_epoch"] - now))
        view["now"] = now
        view["password_generated"] = self.accounts.password_generated(me)
        view["social"] = self.accounts.social_bindings(me)
        return json_response(view)

    async def unbind(self, request: web.Request) -> web.Response:
        """`DELETE /api/v1/lk/social/{provider}/{external_id}` (404 not_bound)."""
        me = self._me(request)
        provider = request.match_info["provider"]
        external_id = request.match_info["external_id"]
        self.accounts.social_unbind(me, provider, external_id)
        return json_response({"unbound": True, "provider": provider, "external_id": external_id})

    # -- the simulated providers ------------------------------------------------------------

    async def provider_login(self, request: web.Request) -> web.Response:
        """`POST /api/v1/lk/providers/{provider}/login {"login","password"}` → session (401/429)."""
        self._limit(self.provider_limit, request, "provider sign-ins")
        data = await json_body(request)
        login = text_field(data, "login", max_length=64)
        password = text_field(data, "password", max_length=MAX_PASSWORD)
        provider = request.match_info["provider"]
        session = self.social.sign_in(provider, login, password, self._now())
        return json_response({"session": session, "login": login.lower()})

    async def provider_consent(self, request: web.Request) -> web.Response:
        """`POST /api/v1/lk/providers/{provider}/consent {"session"}` → one-time code."""
        data = await json_body(request)
        session = text_field(data, "session", max_length=64)
        code = self.social.consent(request.match_info["provider"], session, self._now())
        return json_response({"code": code})

    # -- social sign-in on the site ---------------------------------------------------------

    def _token(self, token: str, msisdn: str, **extra: Any) -> web.Response:
        return json_response(
            {
                **extra,
                "token": token,
                "token_type": "Bearer",
                "expires_in": int(self.gateway.config.auth.token_ttl),
                "msisdn": msisdn,
            }
        )

    async def social_login(self, request: web.Request) -> web.Response:
        """`POST /api/v1/lk/social/login {"provider","code"}` → token, or a binding ticket."""
        data = await json_body(request)
        provider = text_field(data, "provider", max_length=32)
        code = text_field(data, "code", max_length=64)
        now = self._now()
        identity = self.social.exchange(provider, code, now)
        try:
            token = self.accounts.social_login(identity.provider, identity.external_id)
        except Unauthorized:
            ticket = self.social.ticket(identity, now)
            return json_response(
                {
                    "bound": False,
                    "ticket": ticket,
                    "provider": provider,
                    "login": identity.external_id,
                }
            )
        msisdn = self.accounts.authenticate(token)
        return self._token(token, msisdn, bound=True, login=identity.external_id)

    async def social_bind(self, request: web.Request) -> web.Response:
        """`POST /api/v1/lk/social/bind {"ticket"[,"msisdn","password"]}` → token (401, 409, 423).

        Signed in (a bearer token), the identity is bound to that account; otherwise the number
        and its password sign in first (wrong ones count towards the number's lockout).
        """
        signed_in = self._me(request) if "Authorization" in request.headers else None
        data = await json_body(request)
        ticket = text_field(data, "ticket", max_length=64)
        identity = self.social.ticket_identity(ticket, self._now())
        token: str | None = None
        if signed_in is not None:
            msisdn = signed_in
        else:
            number = self.accounts.normalise(text_field(data, "msisdn", max_length=32))
            password = text_field(data, "password", max_length=MAX_PASSWORD)
            flow = self.accounts.login_flow(number, password)
            token = await self.gateway.passwords.drive(flow)
            msisdn = number
        try:
            self.accounts.social_bind(msisdn, identity.provider, identity.external_id)
        except AccountError:
            if token is not None:
                self.accounts.logout(token)
            raise
        self.social.tickets.get(ticket, self._now(), spend=True)  # done: the ticket is spent
        extra = {"bound": True, "provider": identity.provider, "login": identity.external_id}
        if token is None:
            return json_response({**extra, "msisdn": msisdn})
        return self._token(token, msisdn, **extra)


def setup_lk_routes(app: web.Application, gateway: Gateway) -> None:
    """Add the website's pages and API (docs/account.md "Website") to `app`."""
    site = LkSite(gateway)
    add = app.router.add_route
    add("GET", "/lk", site.page)
    add("GET", "/lk/provider/{provider}", site.provider_page)
    add("GET", "/lk/{name}", site.asset)
    add("GET", "/api/v1/lk/site", site.site)
    add("POST", "/api/v1/lk/captcha", account_errors(site.captcha))
    add("POST", "/api/v1/lk/sms-password", account_errors(site.sms_password))
    add("GET", "/api/v1/lk/account", account_errors(site.account))
    add("DELETE", "/api/v1/lk/social/{provider}/{external_id}", account_errors(site.unbind))
    add("POST", "/api/v1/lk/providers/{provider}/login", social_errors(site.provider_login))
    add("POST", "/api/v1/lk/providers/{provider}/consent", social_errors(site.provider_consent))
    add("POST", "/api/v1/lk/social/login", social_errors(site.social_login))
    add("POST", "/api/v1/lk/social/bind", social_errors(site.social_bind))
