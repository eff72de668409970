"""The admin API (docs/phones.md): subscribers, the simulated clock, office links, sessions, SMS.

Every route needs `Authorization: Bearer <http.admin_token>`, compared in constant time
(docs/config.md). Decisions the spec leaves open (docs/account.md repeats them):
- Advancing a real clock is 409 `real_clock`: the request is well formed, the gateway's state
  (its clock mode) forbids it.
- `POST /api/v1/sms` follows `subscribers.auto_provision` for the recipient, like a dial does.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web

from ussd import durations, records
from ussd.accounts import Invalid, NotFound, Unauthorized, iso, link_json
from ussd.clock import SimulatedClock
from ussd.config import ConfigError, parse_duration
from ussd.engine import SubscriberBusy
from ussd.http.account import Handler, account_errors, token_matches
from ussd.http.errors import ApiError, json_body, json_response, text_field
from ussd.smpp.capture import CaptureError

if TYPE_CHECKING:
    from ussd.runtime import Gateway

MAX_SMS_TEXT = 1600  # ten concatenated GSM 7-bit parts (TS 23.040 §9.2.3.24.1) and then some
MAX_PUSH_TEXT = 800  # a pushed text is paged like any screen; a few screens at most


def clock_json(gateway: Gateway) -> dict[str, Any]:
    """`{"now", "epoch", "mode"}` of the gateway clock."""
    now = gateway.clock.now()
    return {
        "now": iso(now),
        "epoch": now,
        "mode": "simulated" if isinstance(gateway.clock, SimulatedClock) else "real",
    }


class SmppBinds(Protocol):
    """What the admin API asks of the SMPP server (ussd.smpp.server.SmppServer)."""

    def bind_list(self) -> list[dict[str, Any]]: ...
    def start_capture(self, bind_id: int, name: str | None = None) -> dict[str, Any]: ...
    def stop_capture(self, bind_id: int) -> dict[str, Any]: ...
    def capture_info(self, bind_id: int) -> dict[str, Any] | None: ...


# CaptureError codes as HTTP statuses (docs/openapi.yaml, /binds/{id}/capture).
_CAPTURE_STATUS = {
    "unknown_bind": 404,
    "no_capture": 404,
    "bad_field": 400,
    "capture_running": 409,
    "file_exists": 409,
    "capture_failed": 500,
}


class AdminApi:
    """The admin routes of one gateway."""

    def __init__(self, gateway: Gateway, smpp: SmppBinds | None = None) -> None:
        self.gateway = gateway
        self.accounts = gateway.accounts
        self.smpp = smpp

    def guard(self, handler: Handler) -> Handler:
        """401 unless the request carries the admin bearer token."""

        @functools.wraps(handler)
        async def wrapper(request: web.Request) -> web.StreamResponse:
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthorized(
                    "the admin bearer token is required (Authorization: Bearer <http.admin_token>)",
                    code="unauthorized",
                )
            if not token_matches(token.strip(), self.gateway.config.http.admin_token):
                # RFC 6750 §3.1: a token was sent and is wrong, which "required" would hide.
                raise Unauthorized("the admin bearer token is invalid", code="invalid_token")
            return await handler(request)

        return account_errors(wrapper)

    async def list_subscribers(self, request: web.Request) -> web.Response:
        """`GET /api/v1/subscribers`."""
        subs = [s.public() for s in self.gateway.subscribers()]
        return json_response({"subscribers": subs})

    async def create_subscriber(self, request: web.Request) -> web.Response:
        """`POST /api/v1/subscribers {"msisdn", ...fields}` → 201 (409 when it exists)."""
        data = await json_body(request)
        msisdn = text_field(data, "msisdn", max_length=32)
        fields = {k: v for k, v in data.items() if k != "msisdn"}
        flow = self.accounts.create_subscriber_flow(msisdn, fields)
        sub = await self.gateway.passwords.drive(flow)  # a password is hashed off the loop
        return json_response(sub.public(), status=201)

    async def get_subscriber(self, request: web.Request) -> web.Response:
        """`GET /api/v1/subscribers/{msisdn}` (404 unknown; never provisions)."""
        number = self.accounts.normalise(request.match_info["msisdn"])
        sub = self.gateway.find_subscriber(number)
        if sub is None:
            raise NotFound(f"unknown subscriber {number}", code="unknown_msisdn")
        return json_response({**sub.public(), "ss": self.gateway.supplementary(number)})

    async def update_ss(self, request: web.Request) -> web.Response:
        """`PATCH /api/v1/subscribers/{msisdn}/ss {"clir"?, "barring_password": "reset"?}`:
        the operator's side of supplementary services (docs/network.md) → the `ss` object."""
        number = self.accounts.normalise(request.match_info["msisdn"])
        if self.gateway.find_subscriber(number) is None:
            raise NotFound(f"unknown subscriber {number}", code="unknown_msisdn")
        data = await json_body(request)
        try:
            state = self.gateway.administer_supplementary(number, dict(data))
        except ValueError as exc:
            raise Invalid(str(exc), code="bad_field") from None
        return json_response(state)

    async def update_subscriber(self, request: web.Request) -> web.Response:
        """`PATCH /api/v1/subscribers/{msisdn} {...fields}` (400 bad field, 404 unknown)."""
        data = await json_body(request)
        flow = self.accounts.update_subscriber_flow(request.match_info["msisdn"], data)
        sub = await self.gateway.passwords.drive(flow)  # a password is hashed off the loop
        return json_response(sub.public())

    async def charge(self, request: web.Request) -> web.Response:
        """`POST /api/v1/subscribers/{msisdn}/charges`: simulated usage, one ledger charge
        {category, amount, description?, date?} taken from the balance (docs/account.md)."""
        data = await json_body(request)
        charge = self.accounts.record_charge(request.match_info["msisdn"], data)
        return json_response(charge, status=201)

    async def clock(self, request: web.Request) -> web.Response:
        """`GET /api/v1/clock`."""
        return json_response(clock_json(self.gateway))

    async def advance(self, request: web.Request) -> web.Response:
        """`POST /api/v1/clock/advance {"by": "2d"}`: simulated clocks only (else 409)."""
        data = await json_body(request)
        if "by" not in data:
            raise ApiError(400, "missing_field", "field 'by' is required")
        try:
            # At most 3650d, and never past the dates the gateway can show (ussd.durations).
            seconds = parse_duration(data["by"], "by", durations.room(self.gateway.clock.now()))
        except ConfigError as exc:
            raise ApiError(400, "bad_duration", exc.message) from exc
        if not isinstance(self.gateway.clock, SimulatedClock):
            raise ApiError(
                409,
                "real_clock",
                "the gateway runs on the real clock, which cannot be advanced; start it with "
                "`clock: {mode: simulated}` in the config (or `ussd-sim serve --clock simulated`)",
            )
        # Every deadline on the way runs at its own time: dialog timers, SMS expiry, links.
        self.gateway.advance(seconds)
        return json_response(clock_json(self.gateway))

    async def office_link(self, request: web.Request) -> web.Response:
        """`POST /api/v1/office/links {"account","number"}` → 201 pending link (docs/account.md)."""
        data = await json_body(request)
        account = text_field(data, "account", max_length=32)
        number = text_field(data, "number", max_length=32)
        link = self.accounts.office_link(account, number)
        return json_response(link_json(link, self.gateway.clock.now()), status=201)

    async def sessions(self, request: web.Request) -> web.Response:
        """`GET /api/v1/sessions`: open dialogs (no collected values)."""
        return json_response({"sessions": self.gateway.engine.sessions()})

    async def dialogs(self, request: web.Request) -> web.Response:
        """`GET /api/v1/dialogs?msisdn&code&cause&via&since&until&after&before&limit[&format]`:
        dialog records, newest first, as JSON or CSV (docs/operations.md "Dialog records")."""
        params: dict[str, str] = {}
        for name in request.query:
            values = request.query.getall(name)
            if len(values) > 1:
                raise ApiError(400, "bad_parameter", f"{name[:40]!r} given more than once")
            params[name] = values[0]
        fmt = params.pop("format", None)
        if fmt not in (None, "json", "csv"):
            raise ApiError(400, "bad_parameter", f"format: json or csv, not {fmt[:20]!r}")
        if fmt is None:  # CSV when asked for, and JSON not asked for too
            accept = request.headers.get("Accept", "")
            fmt = "csv" if "text/csv" in accept and "application/json" not in accept else "json"
        try:
            query = records.parse_query(params, self.gateway.clock.now(), self._normalise)
        except records.BadQuery as exc:
            raise ApiError(400, "bad_parameter", str(exc)) from None
        rows = self.gateway.records.query(query)
        data = [row.to_json() for row in rows]
        if fmt == "csv":
            return web.Response(text=records.to_csv(data), content_type="text/csv", charset="utf-8")
        return json_response({"dialogs": data})

    def _normalise(self, msisdn: str) -> str:
        try:
            return self.accounts.normalise(msisdn)
        except Invalid as exc:
            raise ValueError(exc.message) from None

    async def send_sms(self, request: web.Request) -> web.Response:
        """`POST /api/v1/sms {"to","text"[,"sender"]}`: inject a network SMS → 201."""
        data = await json_body(request)
        to = self.accounts.normalise(text_field(data, "to", max_length=32))
        text = text_field(data, "text", max_length=MAX_SMS_TEXT)
        if not text:
            raise Invalid("text: an SMS needs some text", code="bad_field")
        sender: str | None = None
        if data.get("sender") is not None:  # null means the default sender id
            sender = text_field(data, "sender", max_length=20)
            # An alphanumeric originator is at most 11 characters (TS 23.040 §9.1.2.5).
            if not sender or (not sender.isdigit() and len(sender) > 11):
                raise Invalid("sender: up to 11 characters, or an MSISDN", code="bad_field")
        self.accounts.subscriber(to)
        sms = self.gateway.sms.send(
            to, text, sender=sender, sender_is_alpha=sender is None or not sender.isdigit()
        )
        return json_response(sms.to_json(), status=201)

    async def push(self, request: web.Request) -> web.Response:
        """`POST /api/v1/phones/{msisdn}/push {"text","reply"[,"from"]}`: network-initiated
        USSD (docs/smpp.md "Pushes") → 201 with the screen; 409 `subscriber_busy` in a dialog.

        `reply` true is a USSR request (the handset waits for an answer), false a USSN notice.
        `from` is who pushes: `smpp:SYSTEM_ID` sends the answer to that application bind,
        anything else is shown as the sender and the answer ends the dialog.
        """
        data = await json_body(request)
        text = text_field(data, "text", max_length=MAX_PUSH_TEXT)
        if not text.strip():
            raise Invalid("text: a push needs some text", code="bad_field")
        reply = data.get("reply", True)
        if not isinstance(reply, bool):
            raise Invalid("reply: true (USSR: waits for an answer) or false", code="bad_field")
        origin = "" if data.get("from") is None else text_field(data, "from", max_length=21)
        msisdn = self.accounts.normalise(request.match_info["msisdn"])
        self.accounts.subscriber(msisdn)  # provisioned on first contact, like a dial
        code = "" if origin.startswith("smpp:") else origin
        try:
            screen = self.gateway.engine.push(msisdn, text, reply, origin, code)
        except SubscriberBusy as exc:
            raise ApiError(409, "subscriber_busy", str(exc)) from exc
        return json_response(screen.to_json(), status=201)

    async def binds(self, request: web.Request) -> web.Response:
        """`GET /api/v1/binds`: open SMPP connections with their ids and captures."""
        return json_response({"binds": [] if self.smpp is None else self.smpp.bind_list()})

    async def get_capture(self, request: web.Request) -> web.Response:
        """`GET /api/v1/binds/{id}/capture` (404 when none runs)."""
        smpp, bind_id = self._bind(request)
        info = smpp.capture_info(bind_id)
        if info is None:
            raise ApiError(404, "no_capture", f"connection {bind_id} is not being captured")
        return json_response(info)

    async def start_capture(self, request: web.Request) -> web.Response:
        """`POST /api/v1/binds/{id}/capture {"file"?}` → 201: a pcap in smpp.capture_dir."""
        smpp, bind_id = self._bind(request)
        data = await json_body(request)
        name = None if data.get("file") is None else text_field(data, "file", max_length=64)
        with _capture_errors():
            info = smpp.start_capture(bind_id, name)
        return json_response(info, status=201)

    async def stop_capture(self, request: web.Request) -> web.Response:
        """`DELETE /api/v1/binds/{id}/capture`: the file is complete → its final figures."""
        smpp, bind_id = self._bind(request)
        with _capture_errors():
            info = smpp.stop_capture(bind_id)
        return json_response(info)

    def _bind(self, request: web.Request) -> tuple[SmppBinds, int]:
        text = request.match_info["id"]
        if self.smpp is None or not text.isascii() or not text.isdigit() or len(text) > 18:
            raise ApiError(404, "unknown_bind", f"no open SMPP connection {text[:20]!r}")
        return self.smpp, int(text)


@contextlib.contextmanager
def _capture_errors() -> Iterator[None]:
    try:
        yield
    except CaptureError as exc:
        raise ApiError(_CAPTURE_STATUS.get(exc.code, 400), exc.code, exc.message) from None


def setup_admin_routes(
    app: web.Application, gateway: Gateway, smpp: SmppBinds | None = None
) -> None:
    """Add the admin routes of docs/phones.md to `app`, all behind the admin token."""
    api = AdminApi(gateway, smpp)
    add = app.router.add_route
    add("GET", "/api/v1/subscribers", api.guard(api.list_subscribers))
    add("POST", "/api/v1/subscribers", api.guard(api.create_subscriber))
    add("GET", "/api/v1/subscribers/{msisdn}", api.guard(api.get_subscriber))
    add("PATCH", "/api/v1/subscribers/{msisdn}", api.guard(api.update_subscriber))
    add("PATCH", "/api/v1/subscribers/{msisdn}/ss", api.guard(api.update_ss))
    add("POST", "/api/v1/subscribers/{msisdn}/charges", api.guard(api.charge))
    add("GET", "/api/v1/clock", api.guard(api.clock))
    add("POST", "/api/v1/clock/advance", api.guard(api.advance))
    add("POST", "/api/v1/office/links", api.guard(api.office_link))
    add("GET", "/api/v1/sessions", api.guard(api.sessions))
    add("GET", "/api/v1/dialogs", api.guard(api.dialogs))
    add("POST", "/api/v1/sms", api.guard(api.send_sms))
    add("POST", "/api/v1/phones/{msisdn}/push", api.guard(api.push))
    add("GET", "/api/v1/binds", api.guard(api.binds))
    add("GET", "/api/v1/binds/{id}/capture", api.guard(api.get_capture))
    add("POST", "/api/v1/binds/{id}/capture", api.guard(api.start_capture))
    add("DELETE", "/api/v1/binds/{id}/capture", api.guard(api.stop_capture))
