"""The asyncio SMPP 3.4 server (SPEC §5): sockets, timers and the engine's public API.

Each TCP connection is an `asyncio.Protocol` around a sans-IO `SmppConnection`: bytes go in
with `now` from the transport clock (real time, unless a test hands in a simulated one),
events come out and are mapped onto `engine.dial`,
`engine.reply`, `engine.release` and the SMS centre; PDUs go back through `send()` and one
`transport.write` per batch. Each connection has ONE timer, armed from `conn.get_timer()`
(lazily: only moved earlier, re-read when it fires). With a simulated transport clock nothing
moves without `clock.advance()`, so timers are checked when the clock jumps instead.

Engine events arrive synchronously (docs/design.md); the listener never calls the engine:
screens for timed-out dialogs are written at once, SMS work is deferred to the next loop
iteration so that a submit_sm_resp always precedes the deliver_sm it causes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import os
import socket
import weakref
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from ussd import log
from ussd.clock import Clock, RealClock
from ussd.config import SmppAccount
from ussd.dialstring import DialStringError
from ussd.engine import NoDialog, NotUssd, UnknownSubscriber
from ussd.events import DialogEnded, Event, Screen, Sms, SmsQueued, SmsState, SmsStateChanged
from ussd.listener import Listener
from ussd.msisdn import InvalidMsisdn
from ussd.smpp.concat import UdhError, UserData, split_user_data
from ussd.smpp.connection import (
    NEED_DATA,
    ConnectionClosed,
    EnquireLinkDue,
    PduIgnored,
    PduRejected,
    PeerTimedOut,
    RemoteProtocolError,
    RequestTimedOut,
    ResponseReceived,
    SmppConnection,
    State,
)
from ussd.smpp.constants import (
    CommandId,
    CommandStatus,
    MessageState,
    command_name,
    status_name,
)
from ussd.smpp.pdu import (
    BindReceiver,
    BindRequest,
    BindTransceiver,
    BindTransmitter,
    DataSm,
    DeliverSm,
    EnquireLink,
    EnquireLinkResp,
    Pdu,
    SubmitSm,
    SubmitSmResp,
    TextCodingError,
    Unbind,
    UnbindResp,
    decode_text,
    make_response,
    tlv_u8,
)
from ussd.smpp.ussd import (
    MAX_ASSIGNED_SESSION,
    Action,
    HarnessDialog,
    SmsTooLong,
    UssdRequest,
    classify,
    receipt_pdu,
    receipt_requested,
    receipt_wanted,
    screen_pdu,
    sms_fits,
    sms_pdus,
)
from ussd.sms import covered
from ussd.store import Receipt, ReceiptState

_log = log.get("smpp")

SYSTEM_ID = "ussd-sim"  # our system_id in bind_*_resp (SMPP 3.4 §4.1.2)
STOP_GRACE = 2.0  # seconds stop() waits for unbind_resp before closing sockets
RECEIPT_ATTEMPTS = 3  # a delivery receipt the harness refuses this often is given up
SCAN_BATCH = 256  # queued SMS read per store query while draining
SCAN_STEP = 1024  # queued SMS read per scan (per loop iteration) at most
HELD_MAX = 20_000  # queued SMS held in memory waiting for a busy bind at most
RETRY_ROUNDS = 4  # refused SMS and receipts go again in at most this many rounds per timeout

_OK = CommandStatus.ESME_ROK
_BIND_TYPES: dict[int, str] = {
    CommandId.BIND_TRANSMITTER: "transmitter",
    CommandId.BIND_RECEIVER: "receiver",
    CommandId.BIND_TRANSCEIVER: "transceiver",
}
# SMPP 3.4 §5.3.2.25: we speak 3.4.
_BIND_RESP_TLVS = (tlv_u8(0x0210, 0x34),)

# Names of the SMPP 3.4 §5.1.2 commands and §5.1.3 statuses, fixed at import: values a peer
# makes up are named on the fly (for logs) and never cached, and count as _UNKNOWN in metrics.
_UNKNOWN = -1
_COMMAND_NAMES: dict[int, str] = {int(c): command_name(c) for c in CommandId}
_STATUS_NAMES: dict[int, str] = {int(s): status_name(s) for s in CommandStatus}
_COMMAND_NAMES[_UNKNOWN] = _STATUS_NAMES[_UNKNOWN] = "unknown"


def _cname(command_id: int) -> str:
    name = _COMMAND_NAMES.get(command_id)
    return command_name(command_id) if name is None else name


def _sname(status: int) -> str:
    name = _STATUS_NAMES.get(status)
    return status_name(status) if name is None else name


class _Metrics:
    """PDU counts kept here, mirrored to the gateway's Prometheus metrics when available.

    Labelled children are looked up once per (command, status): `labels()` took more time
    per PDU than decoding it. Both are keyed by known names only (anything else is _UNKNOWN),
    so a peer inventing command_ids or statuses cannot grow them.
    """

    def __init__(self, gateway: Any) -> None:
        self._counts: dict[tuple[str, int, int], int] = {}
        self._children: dict[tuple[int, int], Any] = {}
        self._prom: Any = None
        try:
            from ussd.http import metrics

            self._prom = metrics.for_gateway(gateway)
        except Exception:  # the HTTP side is optional for the SMPP server
            self._prom = None

    @property
    def pdus(self) -> Counter[tuple[str, str, str]]:
        """PDUs by (direction "in"/"out", command name, status name)."""
        return Counter({(d, _cname(c), _sname(s)): n for (d, c, s), n in self._counts.items()})

    def pdu(self, direction: str, command_id: int, status: int) -> None:
        if command_id not in _COMMAND_NAMES:
            command_id = _UNKNOWN
        if status not in _STATUS_NAMES:
            status = _UNKNOWN
        key = (direction, command_id, status)
        self._counts[key] = self._counts.get(key, 0) + 1
        if self._prom is None:
            return
        child = self._children.get((command_id, status))
        if child is None:
            child = self._children[command_id, status] = self._child(command_id, status)
        child()

    def _child(self, command_id: int, status: int) -> Callable[[], None]:
        command, sname = _cname(command_id), _sname(status)
        counter = getattr(self._prom, "smpp_pdus", None)
        if counter is not None:
            return counter.labels(command=command, status=sname).inc  # type: ignore[no-any-return]
        prom = self._prom
        return lambda: prom.smpp_pdu(command, sname)

    def bind_opened(self, bind_type: str) -> None:
        if self._prom is not None:
            self._prom.bind_opened(bind_type)

    def bind_closed(self, bind_type: str) -> None:
        if self._prom is not None:
            self._prom.bind_closed(bind_type)

    def connection_refused(self) -> None:
        if self._prom is not None:
            self._prom.smpp_connection_refused()


@dataclass(slots=True, eq=False)
class _Delivery:
    """An SMS on its way out on one bind: delivered only when every part is acknowledged."""

    sms: Sms
    bind: _Bind
    remaining: int
    failed: bool = False


@dataclass(slots=True, eq=False)
class _Outgoing:
    """Requests waiting for room in a bind's window: screens first, then SMS and receipts."""

    urgent: deque[tuple[Pdu, str, Any]] = field(default_factory=deque)
    bulk: deque[tuple[Pdu, str, Any]] = field(default_factory=deque)

    def __len__(self) -> int:
        return len(self.urgent) + len(self.bulk)


class _Bind(asyncio.Protocol):
    """One TCP connection: an SMPP session (bound or not) with its timer and queues."""

    def __init__(self, server: SmppServer) -> None:
        self.server = server
        cfg = server.config
        self.conn = SmppConnection(
            "server",
            window=cfg.window,
            response_timeout=cfg.response_timeout,
            enquire_link_interval=cfg.enquire_link_interval,
            bind_timeout=cfg.bind_timeout,
            pdu_timeout=cfg.pdu_timeout,
            now=server.clock.now(),
        )
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.account: SmppAccount | None = None
        self.system_id = ""
        self.bind_type = ""
        self.can_receive = False
        self.bound = False
        self.closed = False
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at: float | None = None
        self.tracking: dict[int, tuple[str, Any]] = {}  # our seq -> (kind, what)
        self.outgoing = _Outgoing()
        self.next_session = 0
        self._out: list[bytes] | None = None

    # -- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self.peer = f"{peer[0]}:{peer[1]}"
        server = self.server
        if server._stopping or len(server._connections) >= server.config.max_connections:
            # Over smpp.max_connections (or shutting down): closed before a byte is read.
            self.closed = True
            transport.abort()
            server._refuse(self)
            return
        server._admitted()
        server._connections.add(self)
        server._arm(self)

    def data_received(self, data: bytes) -> None:
        server = self.server
        conn = self.conn
        conn.receive_data(data, server.clock.now())
        out: list[bytes] = []
        self._out = out
        try:
            handlers = server._handlers
            while True:
                event = conn.next_event()
                if event is NEED_DATA:
                    break
                handler = handlers.get(type(event))
                if handler is None:
                    handler = server._on_other
                if handler(self, event):
                    break
        finally:
            self._out = None
            if out and self.transport is not None:
                self.transport.write(out[0] if len(out) == 1 else b"".join(out))
        if not self.closed:
            server._arm(self)

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost() finishes the session

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closed:
            return
        self.conn.receive_data(b"", self.server.clock.now())
        event = self.conn.next_event()
        while not isinstance(event, ConnectionClosed):
            event = self.conn.next_event()
        self.server._closed(self, event, "connection lost" if exc is None else str(exc))

    # -- output -----------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Bytes to the peer: batched while handling input, written at once otherwise."""
        if self._out is not None:
            self._out.append(data)
        elif self.transport is not None and not self.closed:
            self.transport.write(data)

    @contextlib.contextmanager
    def batching(self) -> Iterator[None]:
        """Collect writes and send them with one transport.write (joins an outer batch)."""
        if self._out is not None:
            yield
            return
        out: list[bytes] = []
        self._out = out
        try:
            yield
        finally:
            self._out = None
            if out and self.transport is not None and not self.closed:
                self.transport.write(out[0] if len(out) == 1 else b"".join(out))
            if not self.closed:
                self.server._arm(self)

    def respond(self, pdu: Pdu) -> None:
        """Send a response PDU (counted)."""
        self.write(self.conn.send(pdu))
        self.server.metrics.pdu("out", pdu.command_id, pdu.command_status)

    def window_free(self) -> int:
        """Requests this bind can take before they would have to wait."""
        return self.conn.window_available - len(self.outgoing)

    def request(self, pdu: Pdu, kind: str, what: Any, urgent: bool = False) -> None:
        """Send one of our requests now if the window allows, else queue it."""
        if self.closed or self.conn.state is State.CLOSED:
            self.server._request_failed(kind, what, retry_now=True)
            return
        if self.conn.window_available > 0 and not self.outgoing:
            self._send_request(pdu, kind, what)
            return
        (self.outgoing.urgent if urgent else self.outgoing.bulk).append((pdu, kind, what))
        if self.conn.window_available > 0:
            self.flush()

    def _send_request(self, pdu: Pdu, kind: str, what: Any) -> None:
        conn = self.conn
        if not conn.may_send(pdu.command_id):
            # Unbinding, or a state that forbids deliver_sm (SMPP 3.4 §2.3): it waits elsewhere.
            self.server._request_failed(kind, what, retry_now=True)
            return
        if pdu.sequence_number == 0:
            pdu = replace(pdu, sequence_number=conn.allocate_sequence())
        self.write(conn.send(pdu, self.server.clock.now()))
        self.tracking[pdu.sequence_number] = (kind, what)
        self.server.metrics.pdu("out", pdu.command_id, 0)
        if self._out is None:
            self.server._arm(self)  # (while handling input, data_received arms once at the end)

    def flush(self) -> None:
        """Send queued requests while the window has room."""
        outgoing = self.outgoing
        conn = self.conn
        while conn.window_available > 0 and outgoing and conn.state is not State.CLOSED:
            queue = outgoing.urgent or outgoing.bulk
            pdu, kind, what = queue.popleft()
            self._send_request(pdu, kind, what)

    def close_transport(self) -> None:
        """Write what is batched (the last *_resp, a generic_nack), then close the socket."""
        out = self._out
        if self.transport is not None:
            if out:
                self.transport.write(b"".join(out))
                out.clear()
            self.transport.close()

    def session_number(self) -> int:
        """A gateway-assigned its_session_info session number (1..127, per bind)."""
        self.next_session = self.next_session % MAX_ASSIGNED_SESSION + 1
        return self.next_session


class SmppServer:
    """SMPP 3.4 server for test harnesses (SPEC §5), on one Gateway's engine and SMS centre."""

    def __init__(self, gateway: Any, *, transport_clock: Clock | None = None) -> None:
        self.gateway = gateway
        self.engine = gateway.engine
        self.sms = gateway.sms
        # Keep-alives, response timeouts and retries are about real sockets: they run on real
        # time even when the gateway's business clock is simulated (a 2-day advance must not
        # time out a deliver_sm the harness answered a millisecond later). Tests may pass the
        # simulated clock here to drive these timers by hand.
        if transport_clock is None:
            transport_clock = RealClock() if gateway.clock.simulated else gateway.clock
        self.clock = transport_clock
        self.config = gateway.config.smpp
        self.accounts: dict[str, SmppAccount] = {a.system_id: a for a in self.config.accounts}
        self.metrics = _Metrics(gateway)
        self._listener: Listener | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connections: set[_Bind] = set()
        self._refused = 0  # connections refused since the last one admitted (one burst)
        self._bound: list[_Bind] = []
        self._dialogs: dict[str, HarnessDialog] = {}
        self._calling: tuple[str, _Bind] | None = None
        self._unsubscribe: list[Callable[[], None]] = []
        self._stop_waiter: asyncio.Future[None] | None = None
        self._simulated = bool(getattr(self.clock, "simulated", False))
        self._stopping = False
        # SMS reply path
        self._in_flight: dict[int, _Delivery] = {}
        self._retry_at: dict[int, float] = {}
        self._sms_events: list[Event] = []
        self._sms_flush_scheduled = False
        self._scan_needed = False
        # The drain's cursor: every queued SMS with an id up to here is in flight, waiting for
        # a retry, covered by no bind, or unsendable (see _scan); it moves back when that ends.
        self._scan_after = 0
        self._scan_binds: frozenset[_Bind] = frozenset()  # the receivers it was made for
        self._held: dict[tuple[_Bind, ...], deque[Sms]] = {}  # by the binds covering them
        self._held_ids: set[int] = set()
        self._acked: list[int] = []  # SMS every part of which was acknowledged, to record
        self._answered: SubmitSm | None = None  # the submit_sm a response went out for last
        self._ussd_prefix = "u" + os.urandom(3).hex()  # see _ussd_message_id
        self._ussd_ids = 0
        self.scan_reads = 0  # queued SMS read by scans (tests check the drain is linear)
        self._rr = 0
        self._retry_timer: asyncio.TimerHandle | None = None
        # Delivery receipts: the store holds what is owed (ussd/store.py, migration 3); here
        # only what is on the wire, when a refused one may go again, and which bind the MO
        # SMS came in on (preferred for its receipt while it lives).
        self._receipts_out: set[int] = set()
        self._receipt_retry_at: dict[int, tuple[float, str]] = {}
        self._receipt_systems: set[str] = set()  # system_ids whose due receipts to offer
        self._receipt_binds: weakref.WeakValueDictionary[int, _Bind] = weakref.WeakValueDictionary()
        self._handlers: dict[type, Callable[[_Bind, Any], bool]] = {
            SubmitSm: self._on_submit_sm,
            ResponseReceived: self._on_response,
            EnquireLink: self._on_enquire_link,
            BindTransceiver: self._on_bind,
            BindTransmitter: self._on_bind,
            BindReceiver: self._on_bind,
            Unbind: self._on_unbind,
            PduRejected: self._on_rejected,
            PduIgnored: self._on_ignored,
            RemoteProtocolError: self._on_protocol_error,
            ConnectionClosed: self._on_connection_closed,
            DataSm: self._on_data_sm,
        }

    # -- public API -------------------------------------------------------------------------

    @property
    def binds(self) -> int:
        """Bound sessions now (transmitter, receiver and transceiver)."""
        return len(self._bound)

    @property
    def connections(self) -> int:
        """Open TCP connections, bound or not."""
        return len(self._connections)

    async def start(self, host: str | None = None, port: int | None = None) -> tuple[str, int]:
        """Listen (defaults: `smpp.listen`; port 0 picks a free one); returns the address."""
        if self._listener is not None:
            raise RuntimeError("SMPP server already started")
        default_host, default_port = self.config.listen
        self._loop = asyncio.get_running_loop()
        self._stopping = False
        self._unsubscribe.append(self.engine.subscribe(self._on_engine_event))
        self._unsubscribe.append(self.clock.on_change(self._on_clock_change))
        # Our own accept loop: at the file-descriptor limit it pauses and logs once per episode
        # (ussd/listener.py) where create_server() logs every failed accept().
        listener = Listener(lambda: _Bind(self), component="smpp")
        try:
            address = await listener.start(
                default_host if host is None else host,
                default_port if port is None else port,
            )
        except BaseException:
            for unsubscribe in self._unsubscribe:
                unsubscribe()
            self._unsubscribe.clear()
            raise
        self._listener = listener
        _log.info("smpp_listening", host=address[0], port=address[1])
        return address

    async def stop(self) -> None:
        """Unbind every bound client (bounded wait for unbind_resp), then close every socket.

        Unacknowledged SMS stay queued in the store: only a deliver_sm_resp OK delivers one.
        """
        if self._listener is None:
            return
        self._stopping = True
        self._listener.close()
        for bind in list(self._connections):
            if bind.conn.may_send(CommandId.UNBIND) and bind.bound:
                with contextlib.suppress(Exception):
                    bind.write(bind.conn.send(Unbind(), self.clock.now()))
                    self.metrics.pdu("out", CommandId.UNBIND, 0)
                    self._arm(bind)
            elif bind.transport is not None:
                bind.transport.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(STOP_GRACE, self.config.response_timeout)
        while self._connections and loop.time() < deadline:
            waiter = loop.create_future()
            self._stop_waiter = waiter
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter, deadline - loop.time())
        self._stop_waiter = None
        for bind in list(self._connections):
            if bind.transport is not None:
                bind.transport.abort()
            if not bind.closed:
                bind.connection_lost(None)
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()
        if self._retry_timer is not None:
            self._retry_timer.cancel()
            self._retry_timer = None
        self._listener = None
        _log.info("smpp_stopped")

    def _refuse(self, bind: _Bind) -> None:
        """Count a connection closed at once; log the first of each burst only."""
        if self._stopping:
            return
        self.metrics.connection_refused()
        self._refused += 1
        if self._refused == 1:
            _log.warning(
                "smpp_connection_limit",
                peer=bind.peer,
                max_connections=self.config.max_connections,
            )

    def _admitted(self) -> None:
        """A connection got in: a burst of refusals, if any, is over (its size logged once)."""
        if self._refused:
            _log.info("smpp_connection_limit_cleared", refused=self._refused)
            self._refused = 0

    # -- timers -----------------------------------------------------------------------------

    def _arm(self, bind: _Bind) -> None:
        """Arm the bind's one timer from conn.get_timer(); only ever moved earlier (lazy)."""
        deadline = bind.conn.get_timer()
        if deadline is None or (bind.timer_at is not None and bind.timer_at <= deadline):
            return
        if bind.timer is not None:
            bind.timer.cancel()
            bind.timer = None
        bind.timer_at = deadline
        if self._simulated or self._loop is None:
            return  # checked in _on_clock_change: simulated time only moves by advance()
        delay = max(0.0, deadline - self.clock.now())
        bind.timer = self._loop.call_at(self._loop.time() + delay, self._fire, bind)

    def _fire(self, bind: _Bind) -> None:
        bind.timer = None
        bind.timer_at = None
        if bind.closed:
            return
        out: list[bytes] = []
        bind._out = out
        try:
            for event in bind.conn.handle_timer(self.clock.now()):
                if isinstance(event, RequestTimedOut):
                    self._on_timed_out(bind, event)
                elif isinstance(event, EnquireLinkDue):
                    bind.write(event.data)
                    self.metrics.pdu("out", CommandId.ENQUIRE_LINK, 0)
                elif isinstance(event, PeerTimedOut):
                    _log.warning(
                        "smpp_peer_timed_out",
                        peer=bind.peer,
                        system_id=bind.system_id,
                        reason=event.reason,
                    )
            bind.flush()
        finally:
            bind._out = None
            if out and bind.transport is not None:
                bind.transport.write(b"".join(out))
        if bind.conn.state is State.CLOSED:
            closed = bind.conn.next_event()
            assert isinstance(closed, ConnectionClosed)
            self._closed(bind, closed, closed.reason)
            bind.close_transport()
            return
        self._arm(bind)

    def _on_clock_change(self) -> None:
        now = self.clock.now()
        for bind in list(self._connections):
            if bind.timer_at is not None and bind.timer_at <= now:
                self._fire(bind)
        at = self._next_retry()
        if at is not None and at <= now:
            self._retry_due()

    # -- input events (return True to stop reading this connection) -------------------------

    def _on_other(self, bind: _Bind, event: Any) -> bool:
        # A request the core let through that we do not serve (none today): refuse it.
        if isinstance(event, Pdu) and not event.is_response:
            self.metrics.pdu("in", event.command_id, event.command_status)
            bind.respond(
                make_response(event.command_id, event.sequence_number, CommandStatus.ESME_RINVCMDID)
            )
        return False

    def _on_bind(self, bind: _Bind, pdu: BindRequest) -> bool:
        self.metrics.pdu("in", pdu.command_id, 0)
        account = self.accounts.get(pdu.system_id)
        status: int = _OK
        if account is None:
            status = CommandStatus.ESME_RINVSYSID
        elif not hmac.compare_digest(
            pdu.password.encode("latin-1"), account.password.encode("utf-8")
        ):
            status = CommandStatus.ESME_RINVPASWD
        bind.respond(
            make_response(
                pdu.command_id,
                pdu.sequence_number,
                status,
                system_id=SYSTEM_ID,
                tlvs=_BIND_RESP_TLVS if status == _OK else (),
            )
        )
        bind_type = _BIND_TYPES[pdu.command_id]
        if status != _OK:
            _log.warning(
                "smpp_bind_refused",
                peer=bind.peer,
                system_id=pdu.system_id,
                bind_type=bind_type,
                status=_sname(status),
            )
            return False
        assert account is not None
        bind.account = account
        bind.system_id = account.system_id
        bind.bind_type = bind_type
        bind.bound = True
        bind.can_receive = pdu.command_id != CommandId.BIND_TRANSMITTER
        self._bound.append(bind)
        self.metrics.bind_opened(bind_type)
        _log.info("smpp_bound", peer=bind.peer, system_id=bind.system_id, bind_type=bind_type)
        if bind.can_receive:
            # Store-and-forward: what waited for a bind goes out now (after the bind_resp),
            # receipts due for this system_id included (also those from before a restart).
            self._scan_needed = True
            self._receipt_systems.add(bind.system_id)
            self._schedule_sms_flush()
        return False

    def _on_enquire_link(self, bind: _Bind, pdu: EnquireLink) -> bool:
        self.metrics.pdu("in", pdu.command_id, 0)
        bind.respond(EnquireLinkResp(sequence_number=pdu.sequence_number))
        return False

    def _on_unbind(self, bind: _Bind, pdu: Unbind) -> bool:
        self.metrics.pdu("in", pdu.command_id, 0)
        bind.respond(UnbindResp(sequence_number=pdu.sequence_number))
        _log.info("smpp_unbind", peer=bind.peer, system_id=bind.system_id)
        return False  # the core now reports ConnectionClosed

    def _on_data_sm(self, bind: _Bind, pdu: DataSm) -> bool:
        # data_sm is valid 3.4 but not simulated: USSD and MO SMS come as submit_sm (SPEC §5).
        self.metrics.pdu("in", pdu.command_id, 0)
        bind.respond(
            make_response(pdu.command_id, pdu.sequence_number, CommandStatus.ESME_RINVCMDID)
        )
        return False

    def _on_rejected(self, bind: _Bind, event: PduRejected) -> bool:
        self.metrics.pdu("in", event.command_id, 0)
        bind.respond(event.response)
        _log.info(
            "smpp_pdu_rejected",
            peer=bind.peer,
            system_id=bind.system_id,
            command=_cname(event.command_id),
            status=_sname(event.status),
            reason=event.reason,
        )
        return False

    def _on_ignored(self, bind: _Bind, event: PduIgnored) -> bool:
        _log.debug(
            "smpp_pdu_ignored",
            peer=bind.peer,
            command=_cname(event.command_id),
            reason=event.reason,
        )
        return False

    def _on_protocol_error(self, bind: _Bind, event: RemoteProtocolError) -> bool:
        _log.warning(
            "smpp_protocol_error",
            peer=bind.peer,
            system_id=bind.system_id,
            status=_sname(event.status),
            reason=event.reason,
        )
        if event.response is not None:
            bind.write(event.response.encode())
            self.metrics.pdu("out", event.response.command_id, event.response.command_status)
        return False  # ConnectionClosed follows

    def _on_connection_closed(self, bind: _Bind, event: ConnectionClosed) -> bool:
        self._closed(bind, event, event.reason)
        bind.close_transport()
        return True

    def _on_response(self, bind: _Bind, event: ResponseReceived) -> bool:
        response = event.response
        self.metrics.pdu("in", response.command_id, response.command_status)
        entry = bind.tracking.pop(response.sequence_number, None)
        if entry is not None:
            kind, what = entry
            ok = response.command_status == _OK
            if kind == "screen":
                if not ok:
                    self._screen_refused(bind, what, response.command_status)
            elif kind == "sms":
                self._sms_part_done(what, ok, retry_now=False)
            elif kind == "receipt":
                if ok:
                    self._receipt_sent(what)
                else:
                    self._receipt_failed(what, refused=True)
        if bind.outgoing:
            bind.flush()
        if self._scan_needed and bind.can_receive:
            self._schedule_sms_flush()
        return False

    def _on_timed_out(self, bind: _Bind, event: RequestTimedOut) -> None:
        entry = bind.tracking.pop(event.request.sequence_number, None)
        _log.info(
            "smpp_response_timeout",
            peer=bind.peer,
            system_id=bind.system_id,
            command=_cname(event.request.command_id),
        )
        if entry is not None:
            kind, what = entry
            self._request_failed(kind, what, retry_now=True)

    # -- USSD (SPEC §5) ---------------------------------------------------------------------

    def _on_submit_sm(self, bind: _Bind, pdu: SubmitSm) -> bool:
        self.metrics.pdu("in", CommandId.SUBMIT_SM, 0)
        request = classify(pdu)
        try:
            msisdn = self.engine.normalise(pdu.source_addr)
        except InvalidMsisdn:
            self._submit_resp(bind, pdu, CommandStatus.ESME_RINVSRCADR)
            _log.info("smpp_bad_source", peer=bind.peer, system_id=bind.system_id)
            return False
        user_data: UserData | None = None
        try:
            if request is None:
                user_data = split_user_data(pdu.message, pdu.esm_class)
                text = decode_text(user_data.payload, pdu.data_coding)
            else:
                text = decode_text(pdu.message, pdu.data_coding)
        except UdhError as exc:
            self._submit_resp(bind, pdu, exc.status)
            _log.warning(
                "smpp_udh_refused",
                peer=bind.peer,
                system_id=bind.system_id,
                msisdn=msisdn,
                esm_class=pdu.esm_class,
                status=_sname(exc.status),
                reason=exc.reason,
            )
            return False
        except TextCodingError as exc:
            self._submit_resp(bind, pdu, exc.status)
            _log.warning(
                "smpp_text_refused",
                peer=bind.peer,
                system_id=bind.system_id,
                msisdn=msisdn,
                data_coding=pdu.data_coding,
                status=_sname(exc.status),
                reason=exc.reason,
            )
            return False
        if request is None:
            assert user_data is not None
            self._mo_sms(bind, pdu, msisdn, user_data, text)
            return False
        action = request.action
        if action is Action.DIAL or action is Action.REPLY:
            target = self._screen_bind(bind)
            if target is not None and len(target.outgoing.urgent) >= target.conn.window:
                # The harness does not acknowledge its screens: a full window and as many
                # screens again waiting. Refuse new work until it catches up.
                self._submit_resp(bind, pdu, CommandStatus.ESME_RMSGQFUL)
                return False
        self._answered = None
        try:
            if action is Action.DIAL:
                self._dial(bind, pdu, request, msisdn, text)
            elif action is Action.REPLY:
                self._reply(bind, pdu, request, msisdn, text)
            elif action is Action.RELEASE:
                self._release(bind, pdu, msisdn)
            elif action is Action.CONFIRM:
                self._submit_resp(bind, pdu, _OK, self._ussd_message_id(""))
            else:
                self._submit_resp(bind, pdu, CommandStatus.ESME_RINVOPTPARVAL)
                _log.info(
                    "smpp_ussd_op_refused",
                    peer=bind.peer,
                    system_id=bind.system_id,
                    msisdn=msisdn,
                    op=request.op,
                )
        except Exception:
            # An engine bug costs this request only (STYLE.md §6), never the connection; and
            # a request is answered once: after an OK, a later failure is only logged.
            _log.exception("smpp_submit_failed", system_id=bind.system_id, msisdn=msisdn)
            if self._answered is not pdu:
                self._submit_resp(bind, pdu, CommandStatus.ESME_RSYSERR)
        return False

    def _submit_resp(self, bind: _Bind, pdu: SubmitSm, status: int, message_id: str = "") -> None:
        self._answered = pdu
        bind.respond(
            SubmitSmResp(
                command_status=status, sequence_number=pdu.sequence_number, message_id=message_id
            )
        )

    def _ussd_message_id(self, session: str) -> str:
        """A non-empty message_id for a USSD submit_sm_resp OK, unique like every other one.

        SMPP 3.4 §4.4.2: the SMSC names each accepted submit_sm; clients such as Kannel log
        an error for an empty one. A dial keeps its session id (unique per dialog); a later
        PDU of the dialog is `<session>.<n>`; a release or USSN confirm with no session
        `u<random>.<n>`, random per start so ids never repeat across restarts.
        """
        self._ussd_ids += 1
        return f"{session or self._ussd_prefix}.{self._ussd_ids:x}"

    def _dial(
        self, bind: _Bind, pdu: SubmitSm, request: UssdRequest, msisdn: str, text: str
    ) -> None:
        engine = self.engine
        self._calling = (msisdn, bind)
        try:
            screen = engine.dial(msisdn, text)
        except DialStringError:
            # Not a dial string at all: a network answers the handset with an end screen, so the
            # submit is accepted and the dialog ends at once with "unknown request" (SPEC §3).
            screen = self._error_screen(msisdn, pdu.destination_addr)
            if screen is None:
                self._submit_resp(bind, pdu, CommandStatus.ESME_RINVSRCADR)
                return
        except NotUssd as exc:
            # A call or a handset-local code never reaches the USSD network (SPEC §3).
            self._submit_resp(bind, pdu, CommandStatus.ESME_RINVDSTADR)
            _log.info("smpp_not_ussd", system_id=bind.system_id, msisdn=msisdn, kind=exc.kind)
            return
        except UnknownSubscriber:
            self._submit_resp(bind, pdu, CommandStatus.ESME_RINVSRCADR)
            _log.info("smpp_unknown_subscriber", system_id=bind.system_id, msisdn=msisdn)
            return
        finally:
            self._calling = None
        session_number = (
            request.session.session_number if request.session else bind.session_number()
        )
        dialog = HarnessDialog(
            msisdn,
            screen.session,
            bind,
            session_number,
            user_message_reference=request.user_message_reference,
        )
        dialog.service_addr = pdu.destination_addr
        if screen.end:
            self._dialogs.pop(msisdn, None)
        else:
            self._dialogs[msisdn] = dialog
        self._submit_resp(bind, pdu, _OK, screen.session or self._ussd_message_id(""))
        self._send_screen(dialog, screen.text, screen.end, screen.service_code)

    def _error_screen(self, msisdn: str, service_code: str) -> Screen | None:
        try:
            language = self.engine.subscriber(msisdn).language
        except UnknownSubscriber:
            return None
        text = self.gateway.texts.get("common.unknown_request", language)
        return Screen(session="", text=text, end=True, service_code=service_code)

    def _reply(
        self, bind: _Bind, pdu: SubmitSm, request: UssdRequest, msisdn: str, text: str
    ) -> None:
        self._calling = (msisdn, bind)
        try:
            screen = self.engine.reply(msisdn, text)
        except NoDialog:
            self._submit_resp(bind, pdu, CommandStatus.ESME_RINVOPTPARVAL)
            _log.info("smpp_no_dialog", system_id=bind.system_id, msisdn=msisdn)
            return
        except UnknownSubscriber:
            self._submit_resp(bind, pdu, CommandStatus.ESME_RINVSRCADR)
            return
        finally:
            self._calling = None
        dialog = self._dialogs.get(msisdn)
        if dialog is None or dialog.session != screen.session or dialog.bind.closed:
            # Opened elsewhere (web handset) or on a bind since gone: this bind takes it over.
            dialog = HarnessDialog(
                msisdn,
                screen.session,
                bind,
                request.session.session_number if request.session else bind.session_number(),
                pdus=0,
                service_addr=pdu.destination_addr,
            )
            self._dialogs[msisdn] = dialog
        dialog.harness_pdu(request)
        if screen.end:
            del self._dialogs[msisdn]
        self._submit_resp(bind, pdu, _OK, self._ussd_message_id(screen.session))
        self._send_screen(dialog, screen.text, screen.end, screen.service_code)

    def _release(self, bind: _Bind, pdu: SubmitSm, msisdn: str) -> None:
        # A release of a dialog that already ended (a timeout crossing it) is not an error.
        dialog = self._dialogs.pop(msisdn, None)
        self._calling = (msisdn, bind)
        try:
            released = self.engine.release(msisdn)
        finally:
            self._calling = None
        if dialog is not None and dialog.bind is not bind and not dialog.bind.closed:
            self._send_screen(dialog, "", True, "")
        self._submit_resp(bind, pdu, _OK, self._ussd_message_id(""))
        _log.info("smpp_ussd_release", system_id=bind.system_id, msisdn=msisdn, open=released)

    def _screen_bind(self, bind: _Bind) -> _Bind | None:
        """Where a bind's screens go: itself, or for a transmitter a receiver of its system_id."""
        if bind.can_receive:
            return bind
        for other in self._bound:
            if other.can_receive and other.system_id == bind.system_id and not other.closed:
                return other
        return None

    def _send_screen(self, dialog: HarnessDialog, text: str, end: bool, service_code: str) -> None:
        owner: _Bind = dialog.bind
        bind = self._screen_bind(owner) if not owner.closed else None
        if bind is None:
            _log.info(
                "smpp_screen_undeliverable",
                system_id=owner.system_id,
                msisdn=dialog.msisdn,
                session=dialog.session,
            )
            return
        info = dialog.next_info(end)
        seq = bind.conn.allocate_sequence() if bind.window_free() > 0 else 0
        pdu = screen_pdu(
            seq,
            dialog.msisdn,
            service_code,
            text,
            end,
            info,
            dialog.user_message_reference,
            dialog.service_addr,
        )
        bind.request(pdu, "screen", (dialog.msisdn, dialog.session, end), urgent=True)

    def _screen_refused(self, bind: _Bind, what: tuple[str, str, bool], status: int) -> None:
        msisdn, session, end = what
        _log.info(
            "smpp_screen_refused",
            system_id=bind.system_id,
            msisdn=msisdn,
            session=session,
            status=_sname(status),
        )
        dialog = self._dialogs.get(msisdn)
        if not end and dialog is not None and dialog.session == session:
            # The user side refused a screen that waits for an answer: nobody will answer it,
            # so the dialog is released now rather than left to time out (like a TC-U-ABORT).
            del self._dialogs[msisdn]
            self._calling = (msisdn, bind)
            try:
                self.engine.release(msisdn)
            finally:
                self._calling = None

    # -- engine events (synchronous; never call the engine from here) -----------------------

    def _on_engine_event(self, event: Event) -> None:
        kind = type(event)
        if kind is DialogEnded:
            assert isinstance(event, DialogEnded)
            self._dialog_ended(event)
        elif kind is SmsQueued or kind is SmsStateChanged:
            self._sms_events.append(event)
            self._schedule_sms_flush()

    def _dialog_ended(self, event: DialogEnded) -> None:
        dialog = self._dialogs.get(event.msisdn)
        if dialog is None or dialog.session != event.session:
            return
        calling = self._calling
        if calling is not None and calling[0] == event.msisdn and calling[1] is dialog.bind:
            return  # the harness's own request ended or replaced it; its call path answers
        del self._dialogs[event.msisdn]
        # Timeout, max_duration, replaced from another transport, shutdown: the harness hears
        # a PSSR response with the end bit, with the engine's text when it has one (SPEC §5).
        screen = event.screen
        self._send_screen(
            dialog,
            screen.text if screen is not None else "",
            True,
            screen.service_code if screen is not None else "",
        )

    # -- SMS reply path (SPEC §5) -----------------------------------------------------------

    def _schedule_sms_flush(self) -> None:
        if self._sms_flush_scheduled or self._loop is None or self._stopping:
            return
        self._sms_flush_scheduled = True
        self._loop.call_soon(self._sms_flush)

    def _mark_acked(self) -> None:
        acked, self._acked = self._acked, []
        if acked:
            self.sms.mark_delivered_many(acked)

    def _sms_flush(self) -> None:
        self._sms_flush_scheduled = False
        self._mark_acked()  # even when stopping: an acknowledged SMS is delivered
        if self._stopping:
            return
        events, self._sms_events = self._sms_events, []
        with contextlib.ExitStack() as batches:
            # One write per bind for everything this flush sends (was one send per PDU).
            for bind in self._receivers():
                batches.enter_context(bind.batching())
            self._sms_flush_events(events)

    def _sms_flush_events(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, SmsQueued):
                sms_id = event.sms.id
                if (
                    sms_id not in self._in_flight
                    and sms_id not in self._held_ids
                    and self._deliver(event.sms) is False
                ):
                    self._scan_needed = True
            elif isinstance(event, SmsStateChanged):
                # Delivered elsewhere (shown on a handset) or expired: a held copy is stale.
                self._held_ids.discard(event.sms.id)
                self._sms_state_changed(event.sms)
        if self._scan_needed:
            self._scan()
        if self._receipt_systems:
            systems, self._receipt_systems = self._receipt_systems, set()
            for system_id in systems:
                self._send_due_receipts(system_id)

    def _receivers(self) -> list[_Bind]:
        # may_send: an unbinding session takes no new deliver_sm (SMPP 3.4 §2.3).
        return [
            b
            for b in self._bound
            if b.can_receive and not b.closed and b.conn.may_send(CommandId.DELIVER_SM)
        ]

    def _scan(self) -> None:
        """Offer queued SMS to the binds (after a bind, a freed window, a retry), from a cursor.

        Each scan goes on from where the last one stopped, in id order, so a drain of N SMS
        reads each about once (it re-read the whole queue per freed window: O(N²)). An SMS
        whose covering binds are all busy is held in memory, by the binds that cover it, and
        goes out first when one of them has room; the rest the cursor passes (in flight,
        waiting for a retry, covered by no bind) it reads again only when that changes: a
        delivery failed, a retry fell due, the receivers changed. A scan reads at most
        SCAN_STEP rows and holds at most HELD_MAX SMS, then lets the loop run other work.
        """
        self._scan_needed = False
        receivers = self._receivers()
        if not receivers:
            return
        # The binds themselves, not their id(): a new bind may reuse a closed one's address.
        binds = frozenset(receivers)
        if binds != self._scan_binds:
            # Who covers what changed: what was held or passed may go elsewhere now.
            self._scan_binds = binds
            self._scan_after = 0
            self._held.clear()
            self._held_ids.clear()
        now = self.clock.now()  # transport time: retries
        valid_at = self.sms.clock.now()  # business time: validity (a simulated clock's)
        for key, queue in list(self._held.items()):
            while queue:
                sms = queue[0]
                if sms.id in self._held_ids and sms.expires > valid_at:
                    if self._deliver(sms, receivers) is False:
                        break
                    self._held_ids.discard(sms.id)
                queue.popleft()
            if not queue:
                del self._held[key]
        after = self._scan_after
        read = 0
        exhausted = False
        while len(self._held_ids) < HELD_MAX and read < SCAN_STEP:
            if not any(b.window_free() > 0 for b in receivers):
                break  # nothing could go out now: no point reading on
            limit = min(SCAN_BATCH, SCAN_STEP - read)
            batch = self.sms.queued_after(after, limit)
            read += len(batch)
            for sms in batch:
                after = sms.id
                if sms.id in self._in_flight or sms.id in self._held_ids:
                    continue
                if sms.expires <= valid_at:
                    continue
                retry = self._retry_at.get(sms.id)
                if retry is not None:
                    if retry > now:
                        continue
                    del self._retry_at[sms.id]
                if self._deliver(sms, receivers) is False:
                    key = tuple(
                        b
                        for b in receivers
                        if b.account is not None and covered(sms.recipient, b.account.sms_ranges)
                    )
                    self._held.setdefault(key, deque()).append(sms)
                    self._held_ids.add(sms.id)
            if len(batch) < limit:
                exhausted = True
                break
        self.scan_reads += read
        self._scan_after = after
        if self._held_ids:
            self._scan_needed = True  # goes on when a window frees up
        if not exhausted and read >= SCAN_STEP and len(self._held_ids) < HELD_MAX:
            self._scan_needed = True
            self._schedule_sms_flush()  # more to read: next loop iteration, after other work
        elif not exhausted:
            self._scan_needed = True

    def _rewind(self, sms_id: int) -> None:
        """The next scan must look at sms_id again (its delivery failed or may be retried)."""
        self._scan_after = min(self._scan_after, sms_id - 1)

    def _deliver(self, sms: Sms, receivers: list[_Bind] | None = None) -> bool | None:
        """Send an SMS on one covering bind: True sent, False all busy, None nobody covers."""
        if receivers is None:
            receivers = self._receivers()
        n = len(receivers)
        covering = False
        for i in range(n):
            bind = receivers[(self._rr + i) % n]
            account = bind.account
            if account is None or not covered(sms.recipient, account.sms_ranges):
                continue
            covering = True
            if bind.window_free() <= 0:
                continue
            self._rr = (self._rr + i + 1) % n
            try:
                parts = sms_pdus(sms.recipient, sms.sender, sms.sender_is_alpha, sms.text, sms.id)
            except Exception:
                _log.exception("smpp_sms_unencodable", msisdn=sms.recipient, sms_id=sms.id)
                return True  # never sendable; it waits in the store until it expires
            delivery = _Delivery(sms, bind, len(parts))
            self._in_flight[sms.id] = delivery
            for part in parts:
                bind.request(part, "sms", delivery)
            return True
        return False if covering else None

    def _sms_part_done(self, delivery: _Delivery, ok: bool, retry_now: bool) -> None:
        delivery.remaining -= 1
        if not ok:
            delivery.failed = True
            if not retry_now:
                # The harness refused it: try again after a while, not in a tight loop.
                at = self.clock.now() + self.config.response_timeout
                self._retry_at[delivery.sms.id] = at
                self._arm_retry(at)
        if delivery.remaining > 0:
            return
        sms_id = delivery.sms.id
        if self._in_flight.get(sms_id) is delivery:
            del self._in_flight[sms_id]
        if not delivery.failed:
            # Every part acknowledged: only now is it delivered (SPEC §5). Recorded with the
            # other acknowledgements of this loop iteration in one transaction (_sms_flush).
            self._acked.append(sms_id)
            if self._stopping or self._loop is None:
                self._mark_acked()
            else:
                self._schedule_sms_flush()
        else:
            if sms_id not in self._retry_at:
                self._rewind(sms_id)  # unanswered: again at once (a refused one: _retry_due)
            self._scan_needed = True
            self._schedule_sms_flush()

    def _request_failed(self, kind: str, what: Any, retry_now: bool) -> None:
        if kind == "sms":
            self._sms_part_done(what, False, retry_now)
        elif kind == "receipt":
            self._receipt_failed(what, refused=not retry_now)

    def _next_retry(self) -> float | None:
        """When the earliest refused SMS or receipt may be offered again."""
        times = list(self._retry_at.values())
        times.extend(at for at, _system_id in self._receipt_retry_at.values())
        return min(times) if times else None

    def _arm_retry(self, at: float | None = None) -> None:
        """Arm the one retry timer for `at` (a new refusal), or for the earliest one pending.

        A refusal only ever moves the timer earlier, without looking at the others: a harness
        refusing a whole queue costs O(1) per refusal, not O(refusals so far).
        """
        if self._simulated or self._loop is None:
            return
        if at is None:
            at = self._next_retry()
            if at is None:
                return
        when = self._loop.time() + max(0.0, at - self.clock.now())
        timer = self._retry_timer
        if timer is not None:
            if timer.when() <= when:
                return
            timer.cancel()
        self._retry_timer = self._loop.call_at(when, self._retry_due)

    def _retry_due(self) -> None:
        self._retry_timer = None
        self._scan_needed = True
        now = self.clock.now()
        due = [sms_id for sms_id, when in self._retry_at.items() if when <= now]
        if due:
            self._rewind(min(due))
        for when, system_id in self._receipt_retry_at.values():
            if when <= now:
                self._receipt_systems.add(system_id)
        self._schedule_sms_flush()
        at = self._next_retry()
        if at is not None and at > now:
            # Retries go in rounds, at most RETRY_ROUNDS per response_timeout: a firing looks at
            # every pending retry, so one per refusal would make a refusing harness O(N²).
            self._arm_retry(max(at, now + self.config.response_timeout / RETRY_ROUNDS))

    # -- MO SMS and delivery receipts (SPEC §5) ---------------------------------------------

    def _mo_sms(
        self, bind: _Bind, pdu: SubmitSm, sender: str, user_data: UserData, text: str
    ) -> None:
        try:
            recipient = self.engine.normalise(pdu.destination_addr)
        except InvalidMsisdn:
            self._submit_resp(bind, pdu, CommandStatus.ESME_RINVDSTADR)
            return
        store = self.gateway.store
        concat = user_data.concat
        sms: Sms | None = None
        try:
            # One transaction: the SMS (or the held part) and the receipt it owes are on disk
            # together before the submit_sm_resp says OK (nothing acknowledged is lost).
            with store.transaction():
                if concat is None or concat.total == 1:
                    if not sms_fits(text):
                        raise SmsTooLong(text)
                    sms = self.sms.queue(
                        recipient, text, sender=sender, kind="mo", sender_is_alpha=False
                    )
                    message_id = str(sms.id)
                    if receipt_requested(pdu.registered_delivery):
                        store.add_receipt(
                            sms, bind.system_id, message_id, sender, pdu.registered_delivery
                        )
                else:
                    # TS 23.040 §9.2.3.24.1: parts of one set share originator, recipient,
                    # reference and count; it becomes ONE SMS when the last part arrives.
                    now = self.gateway.clock.now()
                    message_id, parts = store.hold_part(
                        sender,
                        recipient,
                        concat.reference,
                        concat.total,
                        concat.seq,
                        text,
                        system_id=bind.system_id,
                        registered_delivery=pdu.registered_delivery,
                        now=now,
                        expires=now + self.gateway.config.sms.validity,
                    )
                    if parts is not None:
                        whole = "".join(p.text for p in parts)
                        if not sms_fits(whole):
                            raise SmsTooLong(whole)  # rolled back: this part is not kept
                        sms = self.sms.queue(
                            recipient,
                            whole,
                            sender=sender,
                            kind="mo",
                            sender_is_alpha=False,
                        )
                        # SMPP 3.4 §5.2.17: each submit_sm is a message of its own to the
                        # harness, so every part that asked for a receipt is owed one, named
                        # after that part, with its own registered_delivery; all of them
                        # report the fate of the reassembled SMS.
                        for part in parts:
                            if receipt_requested(part.registered_delivery):
                                store.add_receipt(
                                    sms,
                                    part.system_id,
                                    part.message_id,
                                    sender,
                                    part.registered_delivery,
                                )
        except SmsTooLong:
            # It could only go out cut short (255 parts at most, TS 23.040 §9.2.3.24.1), and a
            # truncated SMS reported delivered is worse than a clear refusal now.
            self._submit_resp(bind, pdu, CommandStatus.ESME_RINVMSGLEN)
            _log.warning(
                "smpp_mo_sms_too_long", system_id=bind.system_id, msisdn=sender, chars=len(text)
            )
            return
        except Exception:
            # A store failure costs this request only (STYLE.md §6); nothing was acknowledged.
            _log.exception("smpp_mo_sms_failed", system_id=bind.system_id, msisdn=sender)
            self._submit_resp(bind, pdu, CommandStatus.ESME_RSYSERR)
            return
        if sms is not None:
            self.sms.announce(sms)  # after the commit: persist first, tell second
            if receipt_requested(pdu.registered_delivery):
                self._receipt_binds[sms.id] = bind
        self._submit_resp(bind, pdu, _OK, message_id)
        if concat is not None and concat.total > 1:
            _log.info(
                "smpp_mo_sms_part",
                system_id=bind.system_id,
                msisdn=sender,
                part=concat.seq,
                parts=concat.total,
                sms_id=sms.id if sms is not None else None,
            )
        else:
            sms_id = sms.id if sms is not None else None
            _log.info("smpp_mo_sms", system_id=bind.system_id, msisdn=sender, sms_id=sms_id)

    def _sms_state_changed(self, sms: Sms) -> None:
        if sms.kind != "mo" or sms.state is SmsState.QUEUED:
            return
        # The store marked its receipts due in the same transaction as the state change.
        for receipt in self.gateway.store.receipts_of(sms.id):
            if receipt.state is ReceiptState.DUE:
                self._receipt_systems.add(receipt.system_id)

    def _send_due_receipts(self, system_id: str) -> None:
        """Offer the receipts due for system_id (from the store) to its receiving binds."""
        binds = [b for b in self._receivers() if b.system_id == system_id]
        if not binds:
            return  # kept in the store until this system_id binds as receiver or transceiver
        store = self.gateway.store
        now = self.clock.now()
        for n, receipt in enumerate(store.due_receipts(system_id)):
            receipt_id = receipt.id
            if receipt_id in self._receipts_out:
                continue  # on the wire already: exactly one copy at a time
            retry = self._receipt_retry_at.get(receipt_id)
            if retry is not None:
                if retry[0] > now:
                    continue
                del self._receipt_retry_at[receipt_id]
            delivered = receipt.final_state is SmsState.DELIVERED
            if not receipt_wanted(receipt.registered_delivery, delivered):
                store.set_receipt_state(receipt_id, ReceiptState.SKIPPED)
                continue
            bind = self._receipt_binds.get(receipt.sms_id)
            if bind is None or bind not in binds:
                bind = binds[n % len(binds)]
            self._receipts_out.add(receipt_id)
            what = (receipt_id, system_id, receipt.sms_id)
            bind.request(self._receipt_pdu(receipt), "receipt", what)

    def _receipt_pdu(self, receipt: Receipt) -> DeliverSm:
        delivered = receipt.final_state is SmsState.DELIVERED
        return receipt_pdu(
            receipt.message_id,
            receipt.source_addr,
            receipt.dest_addr,
            receipt.submitted,
            receipt.done if receipt.done is not None else receipt.submitted,
            MessageState.DELIVERED if delivered else MessageState.EXPIRED,
            receipt.text,
        )

    def _receipt_sent(self, what: tuple[int, str, int]) -> None:
        receipt_id, _system_id, sms_id = what
        self._receipts_out.discard(receipt_id)
        self._receipt_binds.pop(sms_id, None)
        # Only a deliver_sm_resp OK settles a receipt (SPEC §5).
        self.gateway.store.set_receipt_state(receipt_id, ReceiptState.SENT)

    def _receipt_failed(self, what: tuple[int, str, int], refused: bool) -> None:
        receipt_id, system_id, sms_id = what
        self._receipts_out.discard(receipt_id)
        if self._stopping:
            return  # it stays due in the store for the next start
        if not refused:
            # Unanswered (timeout, bind gone): offer it again now, on any bind of the system.
            self._receipt_systems.add(system_id)
            self._schedule_sms_flush()
            return
        store = self.gateway.store
        if store.count_receipt_refusal(receipt_id) >= RECEIPT_ATTEMPTS:
            store.set_receipt_state(receipt_id, ReceiptState.REFUSED)
            _log.warning("smpp_receipt_refused", system_id=system_id, sms_id=sms_id)
            return
        # The harness refused it: again after a while, not in a tight loop (as for SMS).
        at = self.clock.now() + self.config.response_timeout
        self._receipt_retry_at[receipt_id] = (at, system_id)
        self._arm_retry(at)

    # -- connection end ---------------------------------------------------------------------

    def _closed(self, bind: _Bind, event: ConnectionClosed, reason: str) -> None:
        if bind.closed:
            return
        bind.closed = True
        if bind.timer is not None:
            bind.timer.cancel()
            bind.timer = None
        bind.timer_at = None
        self._connections.discard(bind)
        if bind.bound:
            self._bound.remove(bind)
            self.metrics.bind_closed(bind.bind_type)
            _log.info(
                "smpp_closed",
                peer=bind.peer,
                system_id=bind.system_id,
                bind_type=bind.bind_type,
                reason=reason,
            )
        # What never got an answer goes back to waiting: SMS stay queued in the store and go
        # out on another bind (or the next one); receipts wait for their system_id.
        tracking, bind.tracking = bind.tracking, {}
        for kind, what in tracking.values():
            self._request_failed(kind, what, retry_now=True)
        outgoing, bind.outgoing = bind.outgoing, _Outgoing()
        for queue in (outgoing.urgent, outgoing.bulk):
            for _pdu, kind, what in queue:
                self._request_failed(kind, what, retry_now=True)
        # A harness that vanishes mid-dialog releases its dialogs (nobody is left to answer).
        mine = [m for m, d in self._dialogs.items() if d.bind is bind]
        for msisdn in mine:
            del self._dialogs[msisdn]
            try:
                self.engine.release(msisdn)
            except Exception:
                _log.exception("smpp_release_failed", msisdn=msisdn)
        waiter = self._stop_waiter
        if waiter is not None and not self._connections and not waiter.done():
            waiter.set_result(None)
