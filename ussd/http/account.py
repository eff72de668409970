"""Self-care over HTTP (docs/account.md): login, SMS password, the account page, linked numbers.

A thin adapter over ussd.accounts.Accounts: it reads JSON, calls one method, and turns an
AccountError into the API's error body (docs/phones.md "Errors") with its status (423 and 429
with Retry-After).
Request bodies are never logged: they hold passwords.

`POST /api/v1/auth/network` is the simulated mobile network's login: a handset on the
operator's network reaches the account without a password because the network vouches for the
number (the "My account" app, docs/account.md). It trusts the caller as the simulator trusts
every handset; a real deployment would not expose it.
"""

from __future__ import annotations

import functools
import hmac
import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ussd.accounts import AccountError, Invalid, Locked, RateLimited, Unauthorized, link_json
from ussd.http.errors import ApiError, error_response, json_body, json_response, text_field

if TYPE_CHECKING:
    from ussd.runtime import Gateway

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

MAX_PASSWORD = 128  # longer than any valid password; bounds the work one request can ask for
MAX_PLAN_ID = 2**53  # plan ids are SQLite rowids; anything longer is no plan


def account_error_response(exc: AccountError) -> web.Response:
    """The API's error body for an AccountError, with Retry-After / WWW-Authenticate."""
    headers: dict[str, str] = {}
    if isinstance(exc, Locked | RateLimited):
        # RFC 9110 §10.2.3: delay-seconds is an integer; round up so a retry is never early.
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    if isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = 'Bearer realm="ussd-sim"'  # RFC 6750 §3
    return error_response(exc.status, exc.code, exc.message, headers)


def account_errors(handler: Handler) -> Handler:
    """Turn an AccountError escaping `handler` into its JSON error response."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except AccountError as exc:
            return account_error_response(exc)

    return wrapper


def bearer(request: web.Request) -> str:
    """The token of `Authorization: Bearer <token>` (RFC 6750 §2.1), or Unauthorized."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Authorization: Bearer <token> is required")
    return token.strip()


def token_matches(given: str, expected: str) -> bool:
    """Constant-time comparison of two secrets: the time taken says nothing about them."""
    return hmac.compare_digest(given.encode(), expected.encode())


class AccountApi:
    """The self-care routes of one gateway."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.accounts = gateway.accounts

    def _me(self, request: web.Request) -> str:
        return self.accounts.authenticate(bearer(request))

    def _token(self, token: str, msisdn: str | None = None) -> web.Response:
        body: dict[str, Any] = {
            "token": token,
            "token_type": "Bearer",
            "expires_in": int(self.gateway.config.auth.token_ttl),
        }
        body["msisdn"] = msisdn if msisdn is not None else self.accounts.authenticate(token)
        return json_response(body)

    async def login(self, request: web.Request) -> web.Response:
        """`POST /api/v1/auth/login {"msisdn","password"}` → token (401, 423)."""
        data = await json_body(request)
        msisdn = text_field(data, "msisdn", max_length=32)
        password = text_field(data, "password", max_length=MAX_PASSWORD)
        # scrypt runs on the gateway's hashing threads, not on the loop (ussd/passwords.py).
        flow = self.accounts.login_flow(msisdn, password)
        return self._token(await self.gateway.passwords.drive(flow))

    async def network(self, request: web.Request) -> web.Response:
        """`POST /api/v1/auth/network {"msisdn"}`: the simulated network vouches for it."""
        data = await json_body(request)
        return self._token(self.accounts.login_network(text_field(data, "msisdn", max_length=32)))

    async def sms_password(self, request: web.Request) -> web.Response:
        """`POST /api/v1/auth/sms-password {"msisdn"}`: a random password by SMS (429)."""
        data = await json_body(request)
        msisdn = self.accounts.normalise(text_field(data, "msisdn", max_length=32))
        await self.gateway.passwords.drive(self.accounts.send_sms_password_flow(msisdn))
        return json_response({"sent": True, "msisdn": msisdn, "retry_after": self._sms_interval()})

    def _sms_interval(self) -> int:
        return math.ceil(self.gateway.config.auth.sms_password_interval)

    async def social_login(self, request: web.Request) -> web.Response:
        """`POST /api/v1/auth/social {"provider","external_id"}` → token (401 when unbound)."""
        data = await json_body(request)
        provider = text_field(data, "provider", max_length=32)
        external_id = text_field(data, "external_id", max_length=128)
        return self._token(self.accounts.social_login(provider, external_id))

    async def logout(self, request: web.Request) -> web.Response:
        """`POST /api/v1/auth/logout`: forget the bearer token."""
        token = bearer(request)
        self.accounts.authenticate(token)
        self.accounts.logout(token)
        return json_response({"logged_out": True})

    def _subject(self, request: web.Request) -> str:
        """The number a "Мой МТС" request is about: `?number=` switches to a linked one (403)."""
        return self.accounts.subject(self._me(request), request.query.get("number"))

    async def account(self, request: web.Request) -> web.Response:
        """`GET /api/v1/account[?number=]`: balance, package remains, linked numbers."""
        return json_response(self.accounts.account_view(self._subject(request)))

    async def network_password(self, request: web.Request) -> web.Response:
        """`POST /api/v1/auth/network-password {"msisdn","password"}`: "Не помню пароль".

        The simulated network vouches for the number (as /auth/network): the new password
        is set without the old one and a token comes back (400 format, 404).
        """
        data = await json_body(request)
        msisdn = text_field(data, "msisdn", max_length=32)
        password = text_field(data, "password", max_length=MAX_PASSWORD)
        flow = self.accounts.set_password_network_flow(msisdn, password)
        token = await self.gateway.passwords.drive(flow)
        return self._token(token)

    async def services(self, request: web.Request) -> web.Response:
        """`POST /api/v1/account/services {"name","on"}`: a service on or off (404 unknown)."""
        me = self._subject(request)
        data = await json_body(request)
        name = text_field(data, "name", max_length=64)
        if "on" not in data:
            raise ApiError(400, "missing_field", "field 'on' is required")
        return json_response({"services": self.accounts.switch_service(me, name, data["on"])})

    async def spending(self, request: web.Request) -> web.Response:
        """`GET /api/v1/account/spending[?from=&to=]`: charges by category (400 bad dates)."""
        me = self._subject(request)
        query = request.query
        return json_response(self.accounts.spending(me, query.get("from"), query.get("to")))

    async def instalments(self, request: web.Request) -> web.Response:
        """`GET /api/v1/account/instalments`: plans, schedules, paid and due amounts."""
        return json_response(self.accounts.instalments(self._subject(request)))

    async def pay_instalment(self, request: web.Request) -> web.Response:
        """`POST /api/v1/account/instalments/{id}/pay`: the next one from the balance (404, 409)."""
        me = self._subject(request)
        raw = request.match_info["id"]
        if not raw.isdigit() or len(raw) > 16 or int(raw) >= MAX_PLAN_ID:
            raise Invalid("the plan id is a positive integer", code="bad_plan_id")
        return json_response(self.accounts.pay_instalment(me, int(raw)))

    async def bonus(self, request: web.Request) -> web.Response:
        """`GET /api/v1/account/bonus`: points, the gift catalogue, exchange history."""
        return json_response(self.accounts.bonus(self._subject(request)))

    async def exchange_bonus(self, request: web.Request) -> web.Response:
        """`POST /api/v1/account/bonus/exchange {"gift"}` (404 unknown gift, 409 short)."""
        me = self._subject(request)
        data = await json_body(request)
        gift = text_field(data, "gift", max_length=64)
        return json_response(self.accounts.exchange_bonus(me, gift))

    async def password(self, request: web.Request) -> web.Response:
        """`POST /api/v1/account/password {"current","new"}` (400 format, 401, 423)."""
        me = self._me(request)
        data = await json_body(request)
        current = text_field(data, "current", max_length=MAX_PASSWORD)
        new = text_field(data, "new", max_length=MAX_PASSWORD)
        await self.gateway.passwords.drive(self.accounts.change_password_flow(me, current, new))
        return json_response({"changed": True})

    async def add_number(self, request: web.Request) -> web.Response:
        """`POST /api/v1/account/numbers {"msisdn","password"}`: app flow, active at once."""
        me = self._me(request)
        data = await json_body(request)
        number = text_field(data, "msisdn", max_length=32)
        password = text_field(data, "password", max_length=MAX_PASSWORD)
        flow = self.accounts.app_link_flow(me, number, password)
        link = await self.gateway.passwords.drive(flow)
        return json_response(link_json(link, self.gateway.clock.now()), status=201)

    async def remove_number(self, request: web.Request) -> web.Response:
        """`DELETE /api/v1/account/numbers/{msisdn}` (404 when not linked to this account)."""
        me = self._me(request)
        number = self.accounts.normalise(request.match_info["msisdn"])
        self.accounts.unlink(me, number)
        return json_response({"unlinked": number})

    async def bind_social(self, request: web.Request) -> web.Response:
        """`POST /api/v1/account/social {"provider","external_id"}` (409 if bound elsewhere)."""
        me = self._me(request)
        data = await json_body(request)
        provider = text_field(data, "provider", max_length=32)
        external_id = text_field(data, "external_id", max_length=128)
        self.accounts.social_bind(me, provider, external_id)
        return json_response({"msisdn": me, "provider": provider, "external_id": external_id})


def setup_account_routes(app: web.Application, gateway: Gateway) -> None:
    """Add the self-care routes (docs/account.md) to `app`."""
    api = AccountApi(gateway)
    add = app.router.add_route
    add("POST", "/api/v1/auth/login", account_errors(api.login))
    add("POST", "/api/v1/auth/network", account_errors(api.network))
    add("POST", "/api/v1/auth/sms-password", account_errors(api.sms_password))
    add("POST", "/api/v1/auth/social", account_errors(api.social_login))
    add("POST", "/api/v1/auth/logout", account_errors(api.logout))
    add("GET", "/api/v1/account", account_errors(api.account))
    add("POST", "/api/v1/account/password", account_errors(api.password))
    add("POST", "/api/v1/account/numbers", account_errors(api.add_number))
    add("DELETE", "/api/v1/account/numbers/{msisdn}", account_errors(api.remove_number))
    add("POST", "/api/v1/account/social", account_errors(api.bind_social))
    # "Мой МТС" (docs/account.md): the app's own requests are free traffic (never charged).
    add("POST", "/api/v1/auth/network-password", account_errors(api.network_password))
    add("POST", "/api/v1/account/services", account_errors(api.services))
    add("GET", "/api/v1/account/spending", account_errors(api.spending))
    add("GET", "/api/v1/account/instalments", account_errors(api.instalments))
    add("POST", "/api/v1/account/instalments/{id}/pay", account_errors(api.pay_instalment))
    add("GET", "/api/v1/account/bonus", account_errors(api.bonus))
    add("POST", "/api/v1/account/bonus/exchange", account_errors(api.exchange_bonus))
