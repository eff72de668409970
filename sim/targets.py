"""How scenario steps reach a world: in-process, or a running gateway over HTTP/SMPP.

Every target answers every step with a `Result`: an HTTP-like status and error code, plus the
screen for dial/reply and the data for account reads. Error codes are the phones and self-care
API's (docs/phones.md: `no_dialog`, `not_ussd`, `bad_credentials`, `locked`, ...) whatever the
transport, so one scenario file runs against every target.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote, unquote, urlsplit

import aiohttp

from sim.esme import BindRefused, Esme, RequestTimeout, connect
from sim.scenario import Scenario
from ussd.clock import SimulatedClock
from ussd.dialstring import DialStringError
from ussd.engine import NoDialog, NotUssd, SubscriberBusy, UnknownSubscriber
from ussd.events import DialogEnded, Event, Outcome, Screen, SmsState
from ussd.faults import FaultError
from ussd.http import HttpServer, start_http
from ussd.msisdn import InvalidMsisdn
from ussd.runtime import Gateway
from ussd.smpp.concat import Concat, UdhError, split_user_data
from ussd.smpp.constants import CommandStatus, EsmClass, UssdServiceOp, status_name
from ussd.smpp.pdu import (
    DeliverSm,
    ItsSessionInfo,
    LocalProtocolError,
    Pdu,
    SubmitSm,
    decode_text,
    encode_text,
    response_to,
    ussd_tlvs,
)
from ussd.smpp.smsc import Smsc
from ussd.smpp.ussd import MAX_ASSIGNED_SESSION, HarnessDialog, classify

WAIT = 5.0  # seconds a live target waits for a screen or an SMS before giving up
MAX_PARTIAL = 256  # incomplete concatenated SMS an SMPP target keeps parts of


@dataclass(frozen=True, slots=True)
class ScreenView:
    """A screen as any transport can show it (SMPP knows no page numbers: None)."""

    text: str
    end: bool
    page: int | None = 1
    pages: int | None = 1
    timeout: bool = False


@dataclass(frozen=True, slots=True)
class Result:
    """The answer to one step: an HTTP-like status, an error code when refused."""

    status: int = 200
    error: str | None = None
    message: str = ""
    screen: ScreenView | None = None
    data: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status < 400


@dataclass(frozen=True, slots=True)
class SmsView:
    """An SMS in an inbox: who sent it, the text, network | mo | receipt."""

    sender: str
    text: str
    kind: str = "network"


Want = Callable[[list[SmsView]], bool]


def refused(status: int, error: str, message: str) -> Result:
    return Result(status=status, error=error, message=message)


class Target(Protocol):
    """Where a scenario runs. Every method answers; none raises for a refused request."""

    name: str

    async def setup(self, scenario: Scenario) -> None: ...

    async def close(self) -> None: ...

    async def dial(self, msisdn: str, text: str) -> Result: ...

    async def reply(self, msisdn: str, text: str) -> Result: ...

    async def release(self, msisdn: str) -> Result: ...

    async def push(self, msisdn: str, text: str, reply: bool, origin: str) -> Result:
        """Network-initiated USSD to msisdn: the screen its handset shows (docs/smpp.md)."""
        ...

    async def inbox(self, msisdn: str, want: Want) -> list[SmsView]:
        """The inbox, once `want(inbox)` holds or the target stops waiting."""
        ...

    async def advance(self, seconds: float) -> Result: ...

    async def wait_timeout(self, msisdn: str) -> Result:
        """Let the open dialog's reply timeout pass; `screen` is what the user was told."""
        ...

    async def login(self, msisdn: str, password: str) -> Result: ...

    async def office_link(self, account: str, number: str) -> Result: ...

    async def app_link(self, account: str, number: str, password: str) -> Result: ...

    async def sms_password(self, msisdn: str, captcha: str | None = None) -> Result: ...

    async def mo_sms(self, sender: str, to: str, text: str, receipt: bool) -> Result: ...

    async def account(self, msisdn: str) -> Result: ...

    async def fault(self, rule: Mapping[str, Any] | None) -> Result:
        """Put a fault rule in force (None: remove every rule; docs/network.md "Faults")."""
        ...

    async def web_url(self) -> str | Result:
        """The gateway's HTTP address for `web:`/`app:` steps (sim/browser.py), or a refusal."""
        ...


# -- in-process -------------------------------------------------------------------------------


class InProcessTarget:
    """A fresh world per scenario: in-memory store, simulated clock (docs/scenarios.md)."""

    name = "in-process"

    def __init__(self) -> None:
        self._gateway: Gateway | None = None
        self._smsc: Smsc | None = None
        self._ended: list[DialogEnded] = []
        self._receipts: dict[str, list[SmsView]] = {}  # by the MO SMS's sender
        self._http: HttpServer | None = None  # started by the first web/app step

    @property
    def smsc(self) -> Smsc:
        if self._smsc is None:
            gw = self.gateway
            self._smsc = Smsc(gw.engine, gw.sms, gw.config.smpp)
        return self._smsc

    @property
    def gateway(self) -> Gateway:
        if self._gateway is None:
            raise RuntimeError("setup() first")
        return self._gateway

    async def setup(self, scenario: Scenario) -> None:
        self._gateway = Gateway.create(scenario.config, clock=SimulatedClock(), database=":memory:")
        self._smsc = None
        self._receipts = {}
        self._gateway.engine.subscribe(self._on_event)
        if scenario.config.apps:
            # Apps over HTTP are asked by the started gateway's performer (docs/apps.md).
            await self._gateway.start()

    def _on_event(self, event: Event) -> None:
        if isinstance(event, DialogEnded):
            self._ended.append(event)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.stop()
            self._http = None
        if self._gateway is not None:
            if self._gateway.performers:
                await self._gateway.stop()
            else:
                self._gateway.close()
            self._gateway = None

    async def fault(self, rule: Mapping[str, Any] | None) -> Result:
        faults = self.gateway.faults
        if rule is None:
            return Result(status=200, data={"removed": faults.clear()})
        try:
            added = faults.add_raw(rule)
        except FaultError as exc:
            return refused(400, "bad_field", str(exc))
        return Result(status=201, data=added.to_json())

    async def web_url(self) -> str | Result:
        """The world's HTTP API on 127.0.0.1 (a free port), served for the pages' steps."""
        if self._http is None:
            self._http = await start_http(self.gateway, "127.0.0.1", 0)
        return self._http.url

    async def _screen(self, call: Callable[[], Awaitable[Screen]]) -> Result:
        try:
            # The gateway performs what the steps wait for (apps over HTTP, docs/apps.md).
            s = await call()
        except NoDialog as exc:
            return refused(409, "no_dialog", str(exc))
        except NotUssd as exc:
            return refused(400, "not_ussd", str(exc))
        except DialStringError as exc:
            return refused(400, "bad_dial_string", str(exc))
        except InvalidMsisdn as exc:
            return refused(400, "bad_msisdn", str(exc))
        except UnknownSubscriber as exc:
            return refused(404, "unknown_msisdn", str(exc))
        except SubscriberBusy as exc:  # a push never interrupts a dialog
            return refused(409, "subscriber_busy", str(exc))
        return Result(screen=ScreenView(s.text, s.end, s.page, s.pages))

    async def dial(self, msisdn: str, text: str) -> Result:
        return await self._screen(lambda: self.gateway.dial(msisdn, text, via="scenario"))

    async def reply(self, msisdn: str, text: str) -> Result:
        return await self._screen(lambda: self.gateway.reply(msisdn, text))

    async def release(self, msisdn: str) -> Result:
        return Result(data={"released": self.gateway.engine.release(msisdn)})

    async def push(self, msisdn: str, text: str, reply: bool, origin: str) -> Result:
        code = "" if origin.startswith("smpp:") else origin

        async def pushed() -> Screen:
            return self.gateway.engine.push(msisdn, text, reply, origin, code)

        return await self._screen(pushed)

    async def inbox(self, msisdn: str, want: Want) -> list[SmsView]:
        gw = self.gateway
        inbox = gw.sms.inbox(msisdn)
        # Reading an inbox is the handset showing it, which delivers what is queued
        # (docs/design.md, as the web phone does): an MO SMS's receipt falls due only then.
        now = gw.clock.now()
        for sms in inbox:
            if sms.state is SmsState.QUEUED and sms.expires > now:
                gw.sms.mark_delivered(sms.id)
        self._collect_receipts()
        views = [SmsView(s.sender, s.text, s.kind) for s in inbox]
        return views + self._receipts.get(msisdn, [])

    def _collect_receipts(self) -> None:
        """Receipts the SMS centre owes this target, as the harness would get them."""
        smsc = self.smsc
        for receipt, pdu in smsc.due_receipts(self.name):
            text = decode_text(pdu.short_message, pdu.data_coding)
            view = SmsView(pdu.source_addr, text, "receipt")
            self._receipts.setdefault(pdu.destination_addr, []).append(view)
            smsc.receipt_settled(receipt.id, ok=True)

    async def advance(self, seconds: float) -> Result:
        now = self.gateway.advance(seconds)
        return Result(data={"epoch": now})

    async def wait_timeout(self, msisdn: str) -> Result:
        gw = self.gateway
        dialog = gw.engine.dialog(msisdn)
        if dialog is None:
            return refused(409, "no_dialog", f"no open dialog on {msisdn} to time out")
        seen = len(self._ended)
        # Exactly to the deadline: one instant earlier the dialog must still be open.
        gw.advance(max(0.0, dialog.reply_deadline - gw.clock.now()))
        for event in self._ended[seen:]:
            if event.session == dialog.session:
                screen = event.screen
                text = screen.text if screen is not None else ""
                timeout = event.outcome is Outcome.TIMEOUT
                view = ScreenView(text, True, timeout=timeout)
                return Result(screen=view, data={"outcome": event.outcome.value})
        return refused(504, "no_timeout", "the dialog is still open after its reply timeout")

    def _account_call(self, call: Callable[[Any], Any]) -> Result:
        accounts = getattr(self.gateway, "accounts", None)
        if accounts is None:
            return refused(501, "not_available", "this gateway has no personal accounts")
        from ussd.accounts import AccountError

        try:
            value = call(accounts)
        except AccountError as exc:
            data = {"retry_after": getattr(exc, "retry_after", None)}
            return Result(status=exc.status, error=exc.code, message=exc.message, data=data)
        if isinstance(value, str):
            return Result(data={"token": value})
        if isinstance(value, dict):
            return Result(data=value)
        return Result()

    async def login(self, msisdn: str, password: str) -> Result:
        return self._account_call(lambda a: a.login(msisdn, password))

    async def office_link(self, account: str, number: str) -> Result:
        return self._account_call(lambda a: a.office_link(account, number))

    async def app_link(self, account: str, number: str, password: str) -> Result:
        return self._account_call(lambda a: a.app_link(account, number, password))

    async def sms_password(self, msisdn: str, captcha: str | None = None) -> Result:
        if captcha is None:
            return self._account_call(lambda a: a.send_sms_password(msisdn))
        # The website's flow: a fresh captcha, answered with `captcha`.
        return self._account_call(
            lambda a: a.site_sms_password(msisdn, a.issue_captcha().id, captcha)
        )

    async def account(self, msisdn: str) -> Result:
        return self._account_call(lambda a: a.account_view(msisdn))

    async def mo_sms(self, sender: str, to: str, text: str, receipt: bool) -> Result:
        """MO SMS through the SMS centre the SMPP server uses (ussd/smpp/smsc.py): queued
        for the recipient, and a receipt owed to this target once it is delivered or expires
        (docs/smpp.md), never before."""
        result = self.smsc.mo_sms(self.name, sender, to, text, None, 1 if receipt else 0)
        if result.status != CommandStatus.ESME_ROK:
            name = status_name(result.status)
            return refused(400, name.lower(), f"submit_sm refused: {name}")
        return Result(data={"message_id": result.message_id})


# -- a running gateway over HTTP ----------------------------------------------------


class HttpTarget:
    """Phones, self-care and admin APIs of a running gateway (`--target http://host:port`)."""

    name = "http"

    def __init__(self, url: str, admin_token: str, reply_timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.admin_token = admin_token
        self.reply_timeout = reply_timeout
        self._session: aiohttp.ClientSession | None = None
        self._tokens: dict[str, str] = {}
        self._sockets: dict[str, _Events] = {}
        self._faults = False  # the scenario put fault rules in force: remove them at close

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT * 2))
        return self._session

    async def _call(
        self, method: str, path: str, body: Any = None, token: str | None = None
    ) -> Result:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            async with self.session.request(
                method, self.url + path, json=body, headers=headers
            ) as response:
                try:
                    data = await response.json(content_type=None)
                except ValueError:
                    data = None
                if response.status >= 400:
                    error = data.get("error", {}) if isinstance(data, dict) else {}
                    return Result(
                        status=response.status,
                        error=str(error.get("code", "http_error")),
                        message=str(error.get("message", response.reason)),
                    )
                return Result(status=response.status, data=data if isinstance(data, dict) else {})
        except (aiohttp.ClientError, TimeoutError) as exc:
            return refused(599, "unreachable", f"{self.url}: {exc or type(exc).__name__}")

    def _admin(self, method: str, path: str, body: Any = None) -> Awaitable[Result]:
        return self._call(method, path, body, token=self.admin_token)

    @staticmethod
    def _phone(msisdn: str, action: str) -> str:
        return f"/api/v1/phones/{quote(msisdn, safe='')}/{action}"

    async def setup(self, scenario: Scenario) -> None:
        """Create the scenario's subscribers through the admin API; existing ones stay (409)."""
        for sub in scenario.subscribers:
            body = {k: v for k, v in sub.items()}
            body["msisdn"] = str(body["msisdn"])
            result = await self._admin("POST", "/api/v1/subscribers", body)
            if not result.ok and result.status != 409:
                raise ConnectionError(
                    f"cannot create subscriber {body['msisdn']}: {result.message}"
                )
        faults = scenario.config.faults
        if faults.rules:
            # The scenario's `faults:` replace the gateway's for its run (docs/network.md).
            rules = [r.to_json() for r in faults.rules]
            result = await self._admin(
                "PUT", "/api/v1/faults", {"seed": faults.seed, "rules": rules}
            )
            if not result.ok:
                raise ConnectionError(f"cannot put the scenario's faults: {result.message}")
            self._faults = True

    async def close(self) -> None:
        if self._faults:
            self._faults = False
            await self._admin("DELETE", "/api/v1/faults")
        for events in self._sockets.values():
            await events.close()
        self._sockets.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    @staticmethod
    def _screen(result: Result) -> Result:
        if not result.ok:
            return result
        d = result.data
        view = ScreenView(str(d.get("text", "")), bool(d.get("end")), d.get("page"), d.get("pages"))
        return Result(status=result.status, screen=view, data=d)

    async def dial(self, msisdn: str, text: str) -> Result:
        if msisdn not in self._sockets:
            # The timeout screen only reaches a handset over its events socket (docs/phones.md).
            self._sockets[msisdn] = await _Events.open(
                self.session, self.url + self._phone(msisdn, "events")
            )
        body = {"text": text, "via": "scenario"}  # the dialog's record says who dialled
        return self._screen(await self._call("POST", self._phone(msisdn, "dial"), body))

    async def reply(self, msisdn: str, text: str) -> Result:
        return self._screen(await self._call("POST", self._phone(msisdn, "reply"), {"text": text}))

    async def release(self, msisdn: str) -> Result:
        return await self._call("POST", self._phone(msisdn, "release"), {})

    async def push(self, msisdn: str, text: str, reply: bool, origin: str) -> Result:
        body: dict[str, Any] = {"text": text, "reply": reply}
        if origin:
            body["from"] = origin
        return self._screen(await self._admin("POST", self._phone(msisdn, "push"), body))

    async def inbox(self, msisdn: str, want: Want) -> list[SmsView]:
        deadline = time.monotonic() + WAIT
        while True:
            result = await self._call("GET", self._phone(msisdn, "sms"))
            items = result.data.get("sms", []) if result.ok else []
            views = [
                SmsView(
                    str(s.get("sender", "")), str(s.get("text", "")), str(s.get("kind", "network"))
                )
                for s in items
            ]
            if want(views) or time.monotonic() >= deadline:
                return views
            await asyncio.sleep(0.05)

    async def advance(self, seconds: float) -> Result:
        return await self._admin("POST", "/api/v1/clock/advance", {"by": f"{seconds}s"})

    async def wait_timeout(self, msisdn: str) -> Result:
        events = self._sockets.get(msisdn)
        if events is None:
            return refused(409, "no_dialog", f"no dialog was dialled from {msisdn}")
        mark = events.mark()
        advanced = await self.advance(self.reply_timeout)
        if not advanced.ok:
            return advanced
        end = await events.wait_end(mark)
        if end is None:
            return refused(504, "no_timeout", "no dialog end arrived after the reply timeout")
        screen = end.get("screen") or {}
        timeout = end.get("outcome") == "timeout"
        return Result(
            screen=ScreenView(str(screen.get("text", "")), True, timeout=timeout), data=end
        )

    async def _token(self, msisdn: str) -> str | Result:
        token = self._tokens.get(msisdn)
        if token is None:
            # docs/account.md: on the simulated network the app logs in without a password.
            result = await self._call("POST", "/api/v1/auth/network", {"msisdn": msisdn})
            if not result.ok:
                return result
            token = str(result.data["token"])
            self._tokens[msisdn] = token
        return token

    async def login(self, msisdn: str, password: str) -> Result:
        result = await self._call(
            "POST", "/api/v1/auth/login", {"msisdn": msisdn, "password": password}
        )
        if result.ok:
            self._tokens[msisdn] = str(result.data.get("token"))
        return result

    async def office_link(self, account: str, number: str) -> Result:
        return await self._admin(
            "POST", "/api/v1/office/links", {"account": account, "number": number}
        )

    async def _as(self, msisdn: str, method: str, path: str, body: Any = None) -> Result:
        """A self-care call as msisdn; an expired token is renewed once (auth.token_ttl)."""
        for _ in range(2):
            token = await self._token(msisdn)
            if isinstance(token, Result):
                return token
            result = await self._call(method, path, body, token=token)
            if result.error != "invalid_token":
                return result
            self._tokens.pop(msisdn, None)  # simulated days went by: log in again
        return result

    async def app_link(self, account: str, number: str, password: str) -> Result:
        body = {"msisdn": number, "password": password}
        return await self._as(account, "POST", "/api/v1/account/numbers", body)

    async def sms_password(self, msisdn: str, captcha: str | None = None) -> Result:
        if captcha is None:
            return await self._call("POST", "/api/v1/auth/sms-password", {"msisdn": msisdn})
        # The website's flow (docs/account.md "Website"): a fresh captcha, answered.
        issued = await self._call("POST", "/api/v1/lk/captcha", {})
        if not issued.ok:
            return issued
        body = {"msisdn": msisdn, "captcha_id": issued.data.get("captcha_id"), "captcha": captcha}
        return await self._call("POST", "/api/v1/lk/sms-password", body)

    async def account(self, msisdn: str) -> Result:
        return await self._as(msisdn, "GET", "/api/v1/account")

    async def fault(self, rule: Mapping[str, Any] | None) -> Result:
        self._faults = True
        if rule is None:
            return await self._admin("DELETE", "/api/v1/faults")
        return await self._admin("POST", "/api/v1/faults", dict(rule))

    async def web_url(self) -> str | Result:
        return self.url

    async def mo_sms(self, sender: str, to: str, text: str, receipt: bool) -> Result:
        # Over HTTP the nearest thing is an admin-injected SMS with the sender's number; no
        # receipt travels back (that is an SMPP feature, docs/smpp.md).
        if receipt:
            return refused(501, "needs_smpp", "delivery receipts need --target smpp://...")
        return await self._admin("POST", "/api/v1/sms", {"to": to, "text": text, "sender": sender})


class _Events:
    """One phone's `.../events` WebSocket, read in the background into a list."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.messages: list[dict[str, Any]] = []
        self.changed = asyncio.Event()
        self.task = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, session: aiohttp.ClientSession, url: str) -> _Events:
        ws = await session.ws_connect(url.replace("http", "ws", 1))
        events = cls(ws)
        await events.wait(lambda m: m.get("type") == "ready", 0)
        return events

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type is aiohttp.WSMsgType.TEXT:
                self.messages.append(msg.json())
                self.changed.set()

    def mark(self) -> int:
        return len(self.messages)

    async def wait(
        self, test: Callable[[dict[str, Any]], bool], start: int
    ) -> dict[str, Any] | None:
        deadline = time.monotonic() + WAIT
        while True:
            for message in self.messages[start:]:
                if test(message):
                    return message
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), remaining)

    async def wait_end(self, start: int) -> dict[str, Any] | None:
        return await self.wait(lambda m: m.get("type") == "end", start)

    async def close(self) -> None:
        await self.ws.close()
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


# -- a running gateway over SMPP ------------------------------------------------------


class SmppTarget:
    """An ESME bound as transceiver: USSD dialogs, MO SMS, and SMS arriving as deliver_sm.

    The client is the shared ESME (sim/esme.py): the gateway's own sans-IO codec and
    connection in client role; a submit_sm without response fails its step after
    `response_timeout` and leaves the window.
    Clock steps (advance) need an HTTP target beside it; without one, `wait_timeout` waits for
    the real reply timeout.
    """

    name = "smpp"

    def __init__(
        self,
        host: str,
        port: int,
        system_id: str,
        password: str,
        *,
        reply_timeout: float = 30.0,
        advance: Callable[[float], Awaitable[Result]] | None = None,
        response_timeout: float = WAIT,
    ) -> None:
        self.host = host
        self.port = port
        self.system_id = system_id
        self.password = password
        self.reply_timeout = reply_timeout
        self.response_timeout = response_timeout  # per PDU; a request without answer expires
        self._advance = advance
        self._client: _SmppClient | None = None

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> SmppTarget:
        """`smpp://system_id:password@host:port`."""
        parts = urlsplit(url)
        if parts.scheme != "smpp" or not parts.hostname or not parts.username:
            raise ValueError(f"expected smpp://system_id:password@host:port, got {url!r}")
        return cls(
            parts.hostname,
            parts.port or 2775,
            unquote(parts.username),
            unquote(parts.password or ""),
            **kwargs,
        )

    @property
    def client(self) -> _SmppClient:
        if self._client is None:
            raise RuntimeError("setup() first")
        return self._client

    async def setup(self, scenario: Scenario) -> None:
        if self._client is None:
            self._client = await _SmppClient.open(
                self.host, self.port, self.system_id, self.password, self.response_timeout
            )
        self._client.reset(scenario.msisdns)
        if scenario.config.faults.rules and self._advance is None:
            # Rules are put in force through the admin API (docs/network.md "Faults").
            raise RuntimeError("faults: add --target http://... for the admin API")

    async def close(self) -> None:
        if self._client is not None:
            await self._client.unbind(1.0)
            self._client = None

    async def dial(self, msisdn: str, text: str) -> Result:
        return await self.client.ussd(msisdn, text, start=True)

    async def reply(self, msisdn: str, text: str) -> Result:
        return await self.client.ussd(msisdn, text, start=False)

    async def release(self, msisdn: str) -> Result:
        return await self.client.release(msisdn)

    async def inbox(self, msisdn: str, want: Want) -> list[SmsView]:
        return await self.client.inbox(msisdn, want)

    async def advance(self, seconds: float) -> Result:
        if self._advance is None:
            return refused(501, "needs_http", "advance needs --target http://... (admin clock API)")
        return await self._advance(seconds)

    async def wait_timeout(self, msisdn: str) -> Result:
        client = self.client
        mark = client.mark(msisdn)
        if self._advance is not None:
            advanced = await self._advance(self.reply_timeout)
            if not advanced.ok:
                return advanced
            wait = WAIT
        else:
            wait = self.reply_timeout + WAIT
        return await client.screen(msisdn, mark, wait, timeout_screen=True)

    def _unsupported(self, what: str) -> Result:
        return refused(501, "needs_http", f"{what} needs --target http://...")

    async def push(self, msisdn: str, text: str, reply: bool, origin: str) -> Result:
        return self._unsupported("push")  # the admin push API (docs/smpp.md "Pushes")

    async def fault(self, rule: Mapping[str, Any] | None) -> Result:
        return self._unsupported("fault")

    async def login(self, msisdn: str, password: str) -> Result:
        return self._unsupported("login")

    async def office_link(self, account: str, number: str) -> Result:
        return self._unsupported("office_link")

    async def app_link(self, account: str, number: str, password: str) -> Result:
        return self._unsupported("app_link")

    async def sms_password(self, msisdn: str, captcha: str | None = None) -> Result:
        return self._unsupported("sms_password")

    async def account(self, msisdn: str) -> Result:
        return self._unsupported("account")

    async def web_url(self) -> str | Result:
        return self._unsupported("web and app steps")

    async def mo_sms(self, sender: str, to: str, text: str, receipt: bool) -> Result:
        return await self.client.mo_sms(sender, to, text, receipt)


class _SmppClient(Esme):
    """The scenario runner's ESME: the shared client (sim/esme.py) plus what a scenario reads
    back, screens and SMS per MSISDN. All protocol rules stay in SmppConnection."""

    def __init__(self, response_timeout: float = WAIT) -> None:
        super().__init__(response_timeout=response_timeout)
        self.screens: dict[str, list[tuple[int, str]]] = {}  # msisdn -> [(op, text)]
        self.sms: dict[str, list[SmsView]] = {}
        # Concatenated SMS parts until their set is complete, keyed (msisdn, reference): at
        # most MAX_PARTIAL sets, the oldest dropped first (a part lost for good costs nothing).
        self.parts: dict[tuple[str, int], dict[int, bytes]] = {}
        self.dialogs: dict[str, HarnessDialog] = {}
        self.changed = asyncio.Event()
        self._next_session = 0

    @classmethod
    async def open(
        cls, host: str, port: int, system_id: str, password: str, response_timeout: float = WAIT
    ) -> _SmppClient:
        client = await connect(lambda: cls(response_timeout), host, port, WAIT)
        try:
            await client.bind(system_id, password)
        except BindRefused as exc:
            client.disconnect()
            raise ConnectionError(f"bind_transceiver refused: {status_name(exc.status)}") from None
        except (TimeoutError, ConnectionError) as exc:
            client.disconnect()
            raise ConnectionError(f"bind_transceiver failed: {exc}") from None
        return client

    def reset(self, msisdns: tuple[str, ...]) -> None:
        """A new scenario: forget what earlier ones left for its numbers."""
        for m in msisdns:
            self.screens.pop(m, None)
            self.sms.pop(m, None)
            self.dialogs.pop(m, None)

    async def request(self, pdu: Pdu) -> Pdu | Result:
        """The response, or a refusal when none came (the request left the window)."""
        try:
            return await self.call(pdu)
        except RequestTimeout as exc:
            return refused(504, "no_response", str(exc))
        except (ConnectionError, LocalProtocolError) as exc:
            return refused(599, "unreachable", str(exc))

    # the SMSC's requests

    def request_received(self, pdu: Pdu) -> Pdu | None:
        if isinstance(pdu, DeliverSm):
            self._deliver(pdu)
        return response_to(pdu)

    def closed_with(self, reason: str) -> None:
        self.changed.set()

    def _deliver(self, pdu: DeliverSm) -> None:
        op = pdu.ussd_service_op
        msisdn = pdu.destination_addr
        if op is None:
            try:
                user_data = split_user_data(pdu.message, pdu.esm_class)
            except UdhError:
                return
            body = user_data.payload
            if user_data.concat is not None:
                # docs/smpp.md: long SMS come concatenated (TS 23.040 §9.2.3.24.1).
                joined = self._join(msisdn, user_data.concat, body)
                if joined is None:
                    return
                body = joined
        else:
            body = pdu.message
            dialog = self.dialogs.get(msisdn)
            request = classify(pdu)
            if dialog is not None and request is not None:
                dialog.harness_pdu(request)  # the screen is a PDU of the dialog too
        try:
            text = decode_text(body, pdu.data_coding)
        except Exception:
            text = body.decode("latin-1")
        if op is not None:
            self.screens.setdefault(msisdn, []).append((op, text))
        else:
            kind = (
                "receipt"
                if pdu.esm_class & EsmClass.DELIVERY_RECEIPT
                else "network"
                if not pdu.source_addr.isdigit()
                else "mo"
            )
            self.sms.setdefault(msisdn, []).append(SmsView(pdu.source_addr, text, kind))
        self.changed.set()

    def _join(self, msisdn: str, concat: Concat, payload: bytes) -> bytes | None:
        key = (msisdn, concat.reference)
        parts = self.parts.pop(key, {})
        parts[concat.seq] = payload
        if len(parts) < concat.total:
            self.parts[key] = parts  # re-inserted: the newest set is last
            while len(self.parts) > MAX_PARTIAL:
                del self.parts[next(iter(self.parts))]
            return None
        return b"".join(parts[k] for k in sorted(parts))

    # what a scenario reads

    def mark(self, msisdn: str) -> int:
        return len(self.screens.get(msisdn, []))

    async def _until(self, test: Callable[[], bool], wait: float) -> bool:
        deadline = time.monotonic() + wait
        while not test():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.ended is not None:
                return test()
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), remaining)
        return True

    async def screen(
        self, msisdn: str, start: int, wait: float = WAIT, timeout_screen: bool = False
    ) -> Result:
        if not await self._until(lambda: len(self.screens.get(msisdn, [])) > start, wait):
            return refused(504, "no_screen", f"no USSD screen for {msisdn} within {wait:g} s")
        op, text = self.screens[msisdn][start]
        end = op == UssdServiceOp.PSSR_RESPONSE
        # SMPP carries no page numbers and no reason for an end: a timeout is an end screen.
        return Result(screen=ScreenView(text, end, None, None, timeout=timeout_screen and end))

    def _session(self, msisdn: str, start: bool, end: bool = False) -> ItsSessionInfo:
        """its_session_info for our next PDU of msisdn's dialog, numbered as the gateway
        numbers it (ussd/smpp/ussd.py HarnessDialog, SMPP 3.4 §5.3.2.43)."""
        dialog = self.dialogs.get(msisdn)
        if start or dialog is None:
            self._next_session = self._next_session % MAX_ASSIGNED_SESSION + 1
            dialog = HarnessDialog(msisdn, "", None, self._next_session, pdus=0)
            self.dialogs[msisdn] = dialog
        return dialog.next_info(end)

    async def ussd(self, msisdn: str, text: str, *, start: bool) -> Result:
        """submit_sm with ussd_service_op 1 (start) or 18 (reply), then the screen."""
        op = UssdServiceOp.PSSR_INDICATION if start else UssdServiceOp.USSR_CONFIRM
        data, coding = encode_text(text)
        mark = self.mark(msisdn)
        resp = await self.request(
            SubmitSm(
                service_type="USSD",
                source_addr_ton=1,
                source_addr_npi=1,
                source_addr=msisdn,
                destination_addr=text.strip("*#").split("*")[0] if start else "",
                data_coding=coding,
                short_message=data,
                tlvs=ussd_tlvs(op, self._session(msisdn, start)),
            )
        )
        if isinstance(resp, Result):
            return resp
        status = resp.command_status
        if status == CommandStatus.ESME_RINVOPTPARVAL:
            return refused(409, "no_dialog", f"no open dialog on {msisdn}")
        if start and status == CommandStatus.ESME_RINVDSTADR:
            # The server's answer to a call or handset-local code.
            return refused(400, "not_ussd", f"{text!r} is not a USSD request")
        if start and status == CommandStatus.ESME_RINVSRCADR:
            return refused(404, "unknown_msisdn", f"no subscriber {msisdn}")
        if status != CommandStatus.ESME_ROK:
            return refused(
                400, status_name(status).lower(), f"submit_sm refused: {status_name(status)}"
            )
        return await self.screen(msisdn, mark)

    async def release(self, msisdn: str) -> Result:
        """ussd_service_op 0x81 with the its_session_info end bit (docs/smpp.md release)."""
        resp = await self.request(
            SubmitSm(
                service_type="USSD",
                source_addr_ton=1,
                source_addr_npi=1,
                source_addr=msisdn,
                tlvs=ussd_tlvs(UssdServiceOp.RELEASE, self._session(msisdn, False, end=True)),
            )
        )
        if isinstance(resp, Result):
            return resp
        status = resp.command_status
        if status not in (CommandStatus.ESME_ROK, CommandStatus.ESME_RINVOPTPARVAL):
            return refused(
                400, status_name(status).lower(), f"release refused: {status_name(status)}"
            )
        return Result(data={"released": status == CommandStatus.ESME_ROK})

    async def mo_sms(self, sender: str, to: str, text: str, receipt: bool) -> Result:
        """submit_sm without ussd_service_op; registered_delivery asks for a receipt."""
        data, coding = encode_text(text)
        resp = await self.request(
            SubmitSm(
                source_addr_ton=1,
                source_addr_npi=1,
                source_addr=sender,
                dest_addr_ton=1,
                dest_addr_npi=1,
                destination_addr=to,
                registered_delivery=1 if receipt else 0,
                data_coding=coding,
                short_message=data,
            )
        )
        if isinstance(resp, Result):
            return resp
        status = resp.command_status
        if status != CommandStatus.ESME_ROK:
            return refused(
                400, status_name(status).lower(), f"submit_sm refused: {status_name(status)}"
            )
        return Result(data={"message_id": getattr(resp, "message_id", "")})

    async def inbox(self, msisdn: str, want: Want) -> list[SmsView]:
        await self._until(lambda: want(list(self.sms.get(msisdn, []))), WAIT)
        return list(self.sms.get(msisdn, []))


# -- both at once -------------------------------------------------------------------------------


class CombinedTarget:
    """`--target smpp://… --target http://…`: SMPP for dial/reply/release/SMS, HTTP for the rest."""

    name = "smpp+http"

    def __init__(self, smpp: SmppTarget, http: HttpTarget) -> None:
        self.smpp = smpp
        self.http = http
        smpp._advance = http.advance

    async def setup(self, scenario: Scenario) -> None:
        await self.http.setup(scenario)
        await self.smpp.setup(scenario)

    async def close(self) -> None:
        await self.smpp.close()
        await self.http.close()

    async def dial(self, msisdn: str, text: str) -> Result:
        return await self.smpp.dial(msisdn, text)

    async def reply(self, msisdn: str, text: str) -> Result:
        return await self.smpp.reply(msisdn, text)

    async def release(self, msisdn: str) -> Result:
        return await self.smpp.release(msisdn)

    async def inbox(self, msisdn: str, want: Want) -> list[SmsView]:
        return await self.smpp.inbox(msisdn, want)

    async def advance(self, seconds: float) -> Result:
        return await self.http.advance(seconds)

    async def wait_timeout(self, msisdn: str) -> Result:
        return await self.smpp.wait_timeout(msisdn)

    async def login(self, msisdn: str, password: str) -> Result:
        return await self.http.login(msisdn, password)

    async def office_link(self, account: str, number: str) -> Result:
        return await self.http.office_link(account, number)

    async def app_link(self, account: str, number: str, password: str) -> Result:
        return await self.http.app_link(account, number, password)

    async def sms_password(self, msisdn: str, captcha: str | None = None) -> Result:
        return await self.http.sms_password(msisdn, captcha)

    async def account(self, msisdn: str) -> Result:
        return await self.http.account(msisdn)

    async def fault(self, rule: Mapping[str, Any] | None) -> Result:
        return await self.http.fault(rule)

    async def web_url(self) -> str | Result:
        return await self.http.web_url()

    async def push(self, msisdn: str, text: str, reply: bool, origin: str) -> Result:
        return await self.http.push(msisdn, text, reply, origin)

    async def mo_sms(self, sender: str, to: str, text: str, receipt: bool) -> Result:
        return await self.smpp.mo_sms(sender, to, text, receipt)


def make_target(urls: tuple[str, ...], admin_token: str, reply_timeout: float = 30.0) -> Target:
    """The target for `--target` URLs (none: in-process)."""
    if not urls:
        return InProcessTarget()
    smpp = [u for u in urls if u.startswith("smpp://")]
    http = [u for u in urls if u.startswith(("http://", "https://"))]
    other = [u for u in urls if u not in smpp and u not in http]
    if other or len(smpp) > 1 or len(http) > 1:
        raise ValueError(
            "--target takes at most one smpp://system_id:password@host:port and one http://host:port"
        )
    h = HttpTarget(http[0], admin_token, reply_timeout) if http else None
    s = SmppTarget.from_url(smpp[0], reply_timeout=reply_timeout) if smpp else None
    if s is not None and h is not None:
        return CombinedTarget(s, h)
    if s is not None:
        return s
    assert h is not None
    return h
