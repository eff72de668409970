"""Simulated handsets over HTTP: dial, reply, release, inbox and a live event socket.

Decisions the spec leaves open (docs/phones.md repeats them):
- A reply with no open dialog is 409 `no_dialog`: the phone exists, its state forbids the
  request. An unknown phone is 404 `unknown_msisdn` (only when `subscribers.auto_provision`
  is off; with it on, every valid number is provisioned on first contact).
- Release with no open dialog is not an error: `{"released": false}` (idempotent).
- The events socket only watches. A client that disconnects leaves the dialog open, as a
  handset whose display app crashed would; it ends by release or by the timers of docs/design.md.
- Handset-local codes (IMEI, SIM PIN/PUK; docs/grammar.md) never reach the network and are answered
  here with `"local": true`; calls are refused with 400 `not_ussd`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import WSCloseCode, web

from ussd import dialstring, log
from ussd.engine import DialogBusy, NoDialog, NotUssd, UnknownSubscriber
from ussd.events import (
    AppExchange,
    DialogEnded,
    DialogStarted,
    Event,
    FaultInjected,
    ScreenShown,
    SmsQueued,
    SmsState,
    SmsStateChanged,
)
from ussd.http.errors import ApiError, json_body, json_response, text_field
from ussd.msisdn import InvalidMsisdn

if TYPE_CHECKING:
    from ussd.runtime import Gateway

_log = log.get("http.phones")

# What a phones API client may say it is in a dial's `via` (the dialog record's transport);
# smpp and push are the gateway's own.
HTTP_VIAS = ("web", "terminal", "scenario", "load", "api")

QUEUE_SIZE = 256
"""Events a socket may fall behind by before it is dropped (close 1013, try again later)."""

CLOSE_TIMEOUT = 2.0
"""How long a closing socket waits for the client's close frame (RFC 6455 §7.1.1)."""

# -- event fan-out ----------------------------------------------------------------------------


def event_message(event: Event) -> dict[str, Any] | None:
    """The JSON pushed on `.../events` for an engine event (None: not pushed)."""
    if isinstance(event, DialogStarted):
        return None  # the first screen follows at once; a handset sees nothing before it
    if isinstance(event, ScreenShown):
        return {"type": "screen", **event.screen.to_json()}
    if isinstance(event, DialogEnded):
        return {
            "type": "end",
            "session": event.session,
            "outcome": event.outcome.value,
            "screen": event.screen.to_json() if event.screen is not None else None,
        }
    if isinstance(event, AppExchange):
        # The web phone's app console (docs/apps.md): what went to the app and what came back.
        return {
            "type": "app",
            "session": event.session,
            "app": event.app,
            "dialect": event.dialect,
            "url": event.url,
            "request": event.request,
            "status": event.status,
            "answer": event.answer,
            "latency_ms": round(event.latency_ms, 1),
            "outcome": event.outcome,
        }
    if isinstance(event, FaultInjected):
        # The web phone shows it (docs/network.md "Faults"): a lost SMS leaves no other trace.
        return {"type": "fault", "kind": event.kind, "rule": event.rule, "at": event.at}
    if isinstance(event, SmsQueued | SmsStateChanged):
        # Both carry the SMS; clients key their inbox on `id`.
        return {"type": "sms", **event.sms.to_json()}
    return None


@dataclass(eq=False, slots=True)
class Subscription:
    """One socket's view of one MSISDN: a bounded queue and why it stopped, if it did."""

    msisdn: str
    queue: asyncio.Queue[dict[str, Any] | None] = field(
        default_factory=lambda: asyncio.Queue(QUEUE_SIZE)
    )
    closed: str | None = None  # "slow", "client" or "shutdown" once stopped
    done: asyncio.Event = field(default_factory=asyncio.Event)  # the handler has returned

    def push(self, message: dict[str, Any]) -> bool:
        """Queue a message; False (and nothing queued) when the consumer is too slow."""
        if self.closed is not None:
            return True
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.stop("slow")
            return False
        return True

    def stop(self, reason: str) -> None:
        """Wake the writer with the end-of-stream marker, discarding what it had not sent."""
        if self.closed is not None:
            return
        self.closed = reason
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(None)


class Hub:
    """Fans engine events out to the sockets watching each MSISDN (docs/phones.md `.../events`)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._thread = threading.get_ident()
        self._subs: dict[str, set[Subscription]] = {}
        # Cluster mode (ussd/cluster_bus.py): told when a number gains its first socket here
        # (True) or loses its last (False), so other workers route its events here.
        self.on_watch: Callable[[str, bool], None] | None = None

    def on_event(self, event: Event) -> None:
        """Engine subscriber: runs inside engine calls, so it only queues (docs/design.md)."""
        if threading.get_ident() != self._thread:
            # An engine call made off the loop thread: hop over rather than touch the queues.
            self._loop.call_soon_threadsafe(self._fan_out, event)
        else:
            self._fan_out(event)

    def _fan_out(self, event: Event) -> None:
        if event.msisdn not in self._subs:
            return
        message = event_message(event)
        if message is not None:
            self.deliver(event.msisdn, message)

    def deliver(self, msisdn: str, message: dict[str, Any]) -> None:
        """Queue an event message for msisdn's sockets (a local event, or one another worker
        routed here in cluster mode)."""
        subs = self._subs.get(msisdn)
        if not subs:
            return
        for sub in tuple(subs):
            if not sub.push(message):
                _log.warning("ws_dropped_slow_consumer", msisdn=sub.msisdn)
                self.remove(sub)

    def add(self, msisdn: str) -> Subscription:
        sub = Subscription(msisdn)
        subs = self._subs.setdefault(msisdn, set())
        subs.add(sub)
        if len(subs) == 1 and self.on_watch is not None:
            self.on_watch(msisdn, True)
        return sub

    def remove(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.msisdn)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.msisdn]
                if self.on_watch is not None:
                    self.on_watch(sub.msisdn, False)

    def count(self) -> int:
        return sum(len(s) for s in self._subs.values())

    def watched(self) -> list[str]:
        """The numbers some socket watches now."""
        return list(self._subs)

    async def close_all(self) -> None:
        """Close every socket with 1001 (server shutdown) and wait for their handlers."""
        subs = [sub for group in self._subs.values() for sub in group]
        for sub in subs:
            sub.stop("shutdown")
        if subs:
            waits = [asyncio.create_task(sub.done.wait()) for sub in subs]
            _, pending = await asyncio.wait(waits, timeout=CLOSE_TIMEOUT + 1.0)
            for task in pending:
                task.cancel()


# -- handset-local codes ------------------------------------------------------------------------

_LOCAL_TEXTS: dict[str, dict[str, str]] = {
    "ru": {
        "pin_changed": "ПИН-код изменён",
        "pin2_changed": "ПИН2-код изменён",
        "pin_unblocked": "ПИН-код разблокирован",
        "pin2_unblocked": "ПИН2-код разблокирован",
        "pin_mismatch": "ПИН-коды не совпадают",
        "pin_invalid": "ПИН-код должен содержать от 4 до 8 цифр",
        "puk_invalid": "PUK-код должен содержать 8 цифр",
        "mmi_invalid": "Неверный MMI-код",
    },
    "en": {
        "pin_changed": "PIN changed",
        "pin2_changed": "PIN2 changed",
        "pin_unblocked": "PIN unblocked",
        "pin2_unblocked": "PIN2 unblocked",
        "pin_mismatch": "PIN codes do not match",
        "pin_invalid": "A PIN has 4 to 8 digits",
        "puk_invalid": "A PUK has 8 digits",
        "mmi_invalid": "Invalid MMI code",
    },
}

# A type allocation code for the simulated handset (GSMA TS.06 §6.2); not any real model.
_TAC = "35999900"


def imei(msisdn: str) -> str:
    """A stable 15-digit IMEI for a simulated handset, with its Luhn digit (TS 23.003 §6.2)."""
    serial = str(int(hashlib.sha256(msisdn.encode()).hexdigest(), 16) % 1_000_000).zfill(6)
    body = _TAC + serial
    total = 0
    for i, ch in enumerate(body):
        d = int(ch)
        if i % 2 == 1:  # every second digit from the left is doubled (Luhn, ISO/IEC 7812-1)
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return body + str((10 - total % 10) % 10)


def local_answer(ds: dialstring.DialString, msisdn: str, language: str) -> str:
    """What the handset itself shows for a handset-local code (docs/grammar.md; TS 22.030 §6.6)."""
    texts = _LOCAL_TEXTS.get(language, _LOCAL_TEXTS["en"])
    if ds.service_code == "06":
        return f"IMEI\n{imei(msisdn)}"
    code = ds.service_code or ""
    two = code.endswith("2")
    # TS 22.030 §6.6.2-6.6.3: `**04*OLD*NEW*NEW#` changes a PIN, `**05*PUK*NEW*NEW#` unblocks it.
    if ds.procedure != "register" or not (ds.sia and ds.sib and ds.sic):
        return texts["mmi_invalid"]
    new, again = ds.sib, ds.sic
    if not (new.isdigit() and 4 <= len(new) <= 8):
        return texts["pin_invalid"]
    if new != again:
        return texts["pin_mismatch"]
    if code.startswith("05"):
        if not (ds.sia.isdigit() and len(ds.sia) == 8):
            return texts["puk_invalid"]
        return texts["pin2_unblocked" if two else "pin_unblocked"]
    if not (ds.sia.isdigit() and 4 <= len(ds.sia) <= 8):
        return texts["pin_invalid"]
    return texts["pin2_changed" if two else "pin_changed"]


# -- routes -----------------------------------------------------------------------------------

GATEWAY: web.AppKey[Gateway] = web.AppKey("gateway")
HUB: web.AppKey[Hub] = web.AppKey("hub")

routes = web.RouteTableDef()


def _gateway(request: web.Request) -> Gateway:
    return request.app[GATEWAY]


def _normalise(gw: Gateway, number: str) -> str:
    try:
        return gw.engine.normalise(number)
    except InvalidMsisdn as exc:
        raise ApiError(400, "bad_msisdn", str(exc)) from exc


def _phone(request: web.Request) -> str:
    """The path's MSISDN, normalised and provisioned on first contact; 400 or 404 otherwise."""
    gw = _gateway(request)
    msisdn = _normalise(gw, request.match_info["msisdn"])
    try:
        gw.engine.subscriber(msisdn)
    except UnknownSubscriber as exc:
        raise ApiError(404, "unknown_msisdn", f"no subscriber {msisdn}") from exc
    return msisdn


@routes.get("/api/v1/phones")
async def list_phones(request: web.Request) -> web.Response:
    """Known subscriber numbers, for the web phone's number selector."""
    gw = _gateway(request)
    phones = [{"msisdn": s.msisdn, "language": s.language} for s in gw.subscribers()]
    return json_response({"operator": gw.config.operator.name, "phones": phones})


@routes.post("/api/v1/phones")
async def add_phone(request: web.Request) -> web.Response:
    """Add a number as first contact would (`subscribers.auto_provision`); 201 new, 200 known."""
    gw = _gateway(request)
    msisdn = _normalise(gw, text_field(await json_body(request), "msisdn", max_length=32))
    known = gw.find_subscriber(msisdn) is not None
    try:
        sub = gw.engine.subscriber(msisdn)
    except UnknownSubscriber as exc:
        raise ApiError(
            403,
            "provisioning_disabled",
            "subscribers.auto_provision is off; create subscribers through the admin API",
        ) from exc
    return json_response(
        {"msisdn": sub.msisdn, "language": sub.language}, status=200 if known else 201
    )


@routes.post("/api/v1/phones/{msisdn}/dial")
async def dial(request: web.Request) -> web.Response:
    """Dial a code; returns the first screen, or the handset's own answer for local codes."""
    gw = _gateway(request)
    data = await json_body(request)
    text = text_field(data, "text", max_length=182)
    via = data.get("via", "api")  # who dials, for the dialog's record (docs/operations.md)
    if via not in HTTP_VIAS:
        raise ApiError(400, "bad_field", f"via: one of {', '.join(HTTP_VIAS)}")
    msisdn = _phone(request)
    try:
        # The gateway performs what the dialog waits for (an app's answer) before answering.
        screen = await gw.dial(msisdn, text, via=via)
    except NoDialog as exc:  # released or replaced while it waited for that answer
        raise ApiError(409, "no_dialog", str(exc)) from exc
    except NotUssd as exc:
        if exc.kind == "call":
            raise ApiError(
                400, "not_ussd", f"{text!r} is a call, not USSD; a handset would place a call"
            ) from exc
        answer = local_answer(exc.dial, msisdn, gw.engine.subscriber(msisdn).language)
        return json_response(
            {"session": None, "text": answer, "end": True, "page": 1, "pages": 1, "local": True}
        )
    except dialstring.DialStringError as exc:
        raise ApiError(400, "bad_dial_string", str(exc)) from exc
    return json_response(screen.to_json())


@routes.post("/api/v1/phones/{msisdn}/reply")
async def reply(request: web.Request) -> web.Response:
    """Answer the open dialog's prompt; 409 `no_dialog` when none is open."""
    gw = _gateway(request)
    text = text_field(await json_body(request), "text", max_length=182)
    msisdn = _phone(request)
    try:
        screen = await gw.reply(msisdn, text)
    except NoDialog as exc:
        raise ApiError(409, "no_dialog", f"no open dialog on {msisdn}") from exc
    except DialogBusy as exc:  # the previous answer is still being fetched
        raise ApiError(409, "dialog_busy", str(exc)) from exc
    return json_response(screen.to_json())


@routes.post("/api/v1/phones/{msisdn}/release")
async def release(request: web.Request) -> web.Response:
    """End key: release the open dialog, if any (idempotent)."""
    gw = _gateway(request)
    await json_body(request)  # an empty body or `{}`; a bad body is still a 4xx
    msisdn = _phone(request)
    return json_response({"released": gw.engine.release(msisdn)})


@routes.get("/api/v1/phones/{msisdn}/sms")
async def inbox(request: web.Request) -> web.Response:
    """The phone's SMS inbox, oldest first."""
    gw = _gateway(request)
    msisdn = _phone(request)
    return json_response({"sms": [s.to_json() for s in gw.sms.inbox(msisdn)]})


@routes.get("/api/v1/phones/{msisdn}/events")
async def events(request: web.Request) -> web.StreamResponse:
    """WebSocket: `ready`, then `screen`, `end` and `sms` messages for this MSISDN as they come."""
    gw = _gateway(request)
    msisdn = _phone(request)
    ws = web.WebSocketResponse(heartbeat=30.0, timeout=CLOSE_TIMEOUT)
    if not ws.can_prepare(request).ok:
        raise ApiError(400, "not_websocket", "this endpoint needs a WebSocket upgrade")
    hub = request.app[HUB]
    sub = hub.add(msisdn)  # before the handshake: nothing after `ready` can be missed
    reader: asyncio.Task[None] | None = None
    try:
        await ws.prepare(request)
        reader = asyncio.create_task(_read_until_closed(ws, sub))
        await ws.send_json({"type": "ready", "msisdn": msisdn})
        while (message := await sub.queue.get()) is not None:
            await ws.send_json(message)
            if message["type"] == "sms" and message["state"] == SmsState.QUEUED.value:
                # Shown on a handset counts as delivered (docs/design.md mark_delivered).
                gw.sms.mark_delivered(message["id"])
        if sub.closed == "slow":
            await ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"consumer too slow")
        elif sub.closed == "shutdown":
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")
    except ConnectionError:
        # The client went away mid-send; the dialog stays open (module docstring).
        pass
    finally:
        hub.remove(sub)
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        if not ws.closed:
            await ws.close()
        sub.done.set()
    return ws


async def _read_until_closed(ws: web.WebSocketResponse, sub: Subscription) -> None:
    """Consume client frames (the socket is push-only); wake the writer when the client leaves."""
    async for _ in ws:
        pass
    sub.stop("client")
