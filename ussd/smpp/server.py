"""The asyncio SMPP 3.4 server: an adapter over two sans-IO cores, nothing more.

Like aioquic's `aioquic/asyncio/`: each TCP connection is an `asyncio.Protocol` around an
`SmppConnection` (ussd/smpp/connection.py: framing, bind states, the window and its queue,
timers), and every bind shares one `Smsc` (ussd/smpp/smsc.py: USSD dialogs, SMS dispatch,
retries, receipts). This file only

* feeds bytes with `now` and drains `next_event()`, handing each event to the core it is for;
* applies the SMSC's actions (`send_response`, `send_request` with a context);
* transmits: ONE `transport.write(conn.data_to_send())` per bind per batch (`_flush`);
* re-arms ONE timer per bind from `conn.get_timer()` and one for the SMSC from
  `smsc.get_timer()` (`_arm`), in the same place.

Authentication (smpp.accounts), connection limits, logging and PDU metrics live here too:
they are about sockets and operators, not about SMPP or the SMS centre.

`now` is the transport clock (real time unless a test hands in a simulated one). With a
simulated transport clock nothing moves without `clock.advance()`, so timers are checked when
the clock jumps instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import socket
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from ussd import log
from ussd.clock import Clock, RealClock
from ussd.config import SmppAccount
from ussd.effects import Effect, Result
from ussd.events import Event
from ussd.faults import SMPP_THROTTLE, Faults
from ussd.listener import Listener
from ussd.metrics import Metrics
from ussd.rolling import BindCounts, Tally
from ussd.smpp.apps import AppPart, Apps, exchange
from ussd.smpp.capture import CaptureError, Captures
from ussd.smpp.connection import (
    NEED_DATA,
    ConnectionClosed,
    EnquireLinkDue,
    LocalProtocolError,
    PduIgnored,
    PduRejected,
    PeerTimedOut,
    RemoteProtocolError,
    RequestFailed,
    RequestTimedOut,
    ResponseReceived,
    SmppConnection,
    State,
)
from ussd.smpp.constants import CommandId, CommandStatus, command_name, status_name
from ussd.smpp.pdu import (
    BindReceiver,
    BindRequest,
    BindTransceiver,
    BindTransmitter,
    DataSm,
    EnquireLink,
    EnquireLinkResp,
    Pdu,
    SubmitSm,
    Unbind,
    UnbindResp,
    make_response,
    tlv_u8,
)
from ussd.smpp.smsc import RECEIPT_ATTEMPTS, Respond, Send, Smsc
from ussd.smpp.trace import Trace

__all__ = ["RECEIPT_ATTEMPTS", "STOP_GRACE", "SYSTEM_ID", "SmppServer"]

_log = log.get("smpp")

SYSTEM_ID = "ussd-sim"  # our system_id in bind_*_resp (SMPP 3.4 §4.1.2)
STOP_GRACE = 2.0  # seconds stop() waits for unbind_resp before closing sockets
# smpp_pdu_rejected: lines of their own per connection, then one summary line at most this
# often (transport clock) and when the connection ends (docs/smpp.md "Limits").
REJECTS_LOGGED = 10
REJECTS_INTERVAL = 10.0

_OK = CommandStatus.ESME_ROK
_SOON = float("-inf")  # the SMS centre's timer: the next loop iteration (Smsc.get_timer)
_BIND_TYPES: dict[State, str] = {
    State.BOUND_TX: "transmitter",
    State.BOUND_RX: "receiver",
    State.BOUND_TRX: "transceiver",
}
# SMPP 3.4 §5.3.2.25: we speak 3.4.
_BIND_RESP_TLVS = (tlv_u8(0x0210, 0x34),)

# Names of the SMPP 3.4 §5.1.2 commands and §5.1.3 statuses, fixed at import: values a peer
# makes up are named on the fly (for logs) and never cached, and count as _UNKNOWN in metrics.
_UNKNOWN = -1
_COMMAND_NAMES: dict[int, str] = {int(c): command_name(c) for c in CommandId}
_STATUS_NAMES: dict[int, str] = {int(s): status_name(s) for s in CommandStatus}
_COMMAND_NAMES[_UNKNOWN] = _STATUS_NAMES[_UNKNOWN] = "unknown"


class _RejectLog:
    """How one connection's refused PDUs reach the log: the first REJECTS_LOGGED a line each,
    then counts by status, logged at most once per REJECTS_INTERVAL and when the connection
    ends. A peer sending garbage cannot flood the log; the metrics still count each one."""

    __slots__ = ("due", "held", "logged")

    def __init__(self) -> None:
        self.logged = 0  # lines of their own so far
        self.held: dict[str, int] = {}  # refused since the last line, by status name
        self.due = 0.0  # no summary before this (transport clock)

    def own_line(self, now: float) -> bool:
        """Whether this refusal gets a line of its own (counted if so)."""
        if self.logged >= REJECTS_LOGGED:
            return False
        self.logged += 1
        self.due = now + REJECTS_INTERVAL
        return True

    def hold(self, status: int) -> None:
        """Count a refusal for the next summary. Keys are SMPP 3.4 §5.1.3 names or `unknown`:
        a fixed set, so the dict stays small whatever the peer sends."""
        name = _STATUS_NAMES.get(status, "unknown")
        self.held[name] = self.held.get(name, 0) + 1

    def take(self, now: float, *, ending: bool = False) -> dict[str, int] | None:
        """The counts to log now (a new interval starts), or None: nothing held, or too soon."""
        if not self.held or (now < self.due and not ending):
            return None
        held, self.held = self.held, {}
        self.due = now + REJECTS_INTERVAL
        return held


def _nothing() -> None:
    """perform() of a gateway that performs no effects (a test's stand-in)."""


def _cname(command_id: int) -> str:
    name = _COMMAND_NAMES.get(command_id)
    return command_name(command_id) if name is None else name


def _sname(status: int) -> str:
    name = _STATUS_NAMES.get(status)
    return status_name(status) if name is None else name


class _Metrics:
    """PDU counts as plain ints in a dict the gateway's metrics read at scrape time
    (`Metrics.pdu_counts`, ussd/metrics.py): a Prometheus child's inc() takes a lock, and a
    USSD step counts four PDUs. Keyed by known command_ids and statuses only (anything else is
    _UNKNOWN), so a peer inventing them cannot grow the dict.
    """

    def __init__(self, prom: Metrics | None) -> None:
        self._counts: dict[tuple[str, int, int], int] = {} if prom is None else prom.pdu_counts()
        self._prom = prom

    @property
    def pdus(self) -> Counter[tuple[str, str, str]]:
        """PDUs by (direction "in"/"out", command name, status name)."""
        return Counter({(d, _cname(c), _sname(s)): n for (d, c, s), n in self._counts.items()})

    def pdu(self, direction: str, command_id: int, status: int) -> None:
        counts = self._counts
        key = (direction, command_id, status)
        n = counts.get(key)
        if n is not None:  # the usual case: a key seen before is a known one
            counts[key] = n + 1
            return
        if command_id not in _COMMAND_NAMES:
            command_id = _UNKNOWN
        if status not in _STATUS_NAMES:
            status = _UNKNOWN
        key = (direction, command_id, status)
        counts[key] = counts.get(key, 0) + 1

    def bind_opened(self, bind_type: str) -> None:
        if self._prom is not None:
            self._prom.bind_opened(bind_type)

    def bind_closed(self, bind_type: str) -> None:
        if self._prom is not None:
            self._prom.bind_closed(bind_type)

    def connection_refused(self) -> None:
        if self._prom is not None:
            self._prom.smpp_connection_refused()


class _Bind(asyncio.Protocol):
    """One TCP connection: bytes and timer in, bytes out. Its state is `conn`'s."""

    def __init__(self, server: SmppServer, key: int) -> None:
        self.server = server
        self.key = key
        cfg = server.config
        self.conn = SmppConnection(
            "server",
            window=cfg.window,
            response_timeout=cfg.response_timeout,
            enquire_link_interval=cfg.enquire_link_interval,
            bind_timeout=cfg.bind_timeout,
            pdu_timeout=cfg.pdu_timeout,
            buffered=True,
            now=server.clock.now(),
        )
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.system_id = ""  # for logs, once bound
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at: float | None = None
        self.ended = False  # ConnectionClosed handled (the socket's end, not a session state)
        self.rejects = _RejectLog()

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
        self.server._connection_made(self)

    def data_received(self, data: bytes) -> None:
        server = self.server
        started = time.perf_counter()
        now = server.clock.now()
        if server.captures.active:
            server.captures.received(self.key, data, now)
        self.conn.receive_data(data, now)
        # Group commit: one store transaction for the read's PDUs, each PDU's own a savepoint
        # in it; their answers wait for its COMMIT (docs/smpp.md "MO SMS").
        with server.sms.group(), server.around_read(self.conn.submit_sources):
            server._drain(self)
        server._flush()
        # A read's PDUs in to the answers they caused out (the console's latency chart).
        server.turnaround.add(time.perf_counter() - started)

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost() finishes the session

    def connection_lost(self, exc: Exception | None) -> None:
        if self.ended:
            return
        server = self.server
        self.conn.receive_data(b"", server.clock.now())
        server._drain(self, "connection lost" if exc is None else str(exc))
        server._flush()


def _no_batch(sources: Callable[[], list[str]]) -> contextlib.AbstractContextManager[Any]:
    return contextlib.nullcontext()


class SmppServer:
    """SMPP 3.4 server for test harnesses, on one Gateway's engine and SMS centre."""

    def __init__(
        self,
        gateway: Any,
        *,
        transport_clock: Clock | None = None,
        stop_grace: float = STOP_GRACE,
    ) -> None:
        self.gateway = gateway
        # How long stop() waits for unbind_resp (capped by smpp.response_timeout); a parameter
        # so a test of a silent peer need not sit through it.
        self.stop_grace = stop_grace
        self.engine = gateway.engine
        # Injected faults that bite here: throttling and withheld responses (ussd/faults.py).
        faults = getattr(gateway, "faults", None)
        self.faults: Faults = faults if isinstance(faults, Faults) else Faults()
        # Keep-alives, response timeouts and retries are about real sockets: they run on real
        # time even when the gateway's business clock is simulated (a 2-day advance must not
        # time out a deliver_sm the harness answered a millisecond later). Tests may pass the
        # simulated clock here to drive these timers by hand.
        if transport_clock is None:
            transport_clock = RealClock() if gateway.clock.simulated else gateway.clock
        self.clock = transport_clock
        self.config = gateway.config.smpp
        self.accounts: dict[str, SmppAccount] = {a.system_id: a for a in self.config.accounts}
        self.metrics = _Metrics(getattr(gateway, "metrics", None))
        self.smsc = Smsc(gateway.engine, gateway.sms, self.config, now=self.clock.now())
        self.sms = gateway.sms
        # Application binds (role: app, docs/smpp.md "SMPP applications") and the effects of
        # kind `smpp` waiting for their answers: effect id -> the performer's future.
        self.apps = Apps(gateway.engine, self.config)
        self._app_waiters: dict[str, asyncio.Future[Result]] = {}
        self._apps_flush: asyncio.Handle | None = None
        self._perform: Callable[[], None] = getattr(gateway, "perform", _nothing)
        # PDU captures (smpp.capture, per bind from the admin API): ussd/smpp/capture.py.
        cfg = self.config
        self.captures = Captures(
            cfg.capture, cfg.capture_dir, cfg.capture_max_bytes, secret=self._password_prompt
        )
        self.turnaround = Tally()  # seconds per read handled, taken by the console's sampler
        self._listener: Listener | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connections: dict[int, _Bind] = {}
        self._keys = 0
        self._refused = 0  # connections refused since the last one admitted (one burst)
        self._dirty: set[_Bind] = set()  # binds with bytes to transmit or a timer to re-arm
        self._unsubscribe: list[Callable[[], None]] = []
        self._stop_waiter: asyncio.Future[None] | None = None
        self._simulated = bool(getattr(self.clock, "simulated", False))
        self._stopping = False
        self._smsc_timer: asyncio.TimerHandle | None = None
        self._smsc_timer_at: float | None = None
        # Cluster mode (ussd/cluster_bus.py): told when a harness bind that receives opens
        # (key, its account) or closes (key, None), so other workers route its SMS here.
        self.on_receiver: Callable[[int, SmppAccount | None], None] | None = None
        # Cluster mode (ussd/cluster.py, Cluster.batch): entered around each read's PDUs, so
        # Redis is asked about the numbers of its submit_sm (the callable gives their
        # source_addr) and told of its USSD steps' writes in one round trip each.
        self.around_read: Callable[
            [Callable[[], list[str]]], contextlib.AbstractContextManager[Any]
        ] = _no_batch
        self._handlers: dict[type, Callable[[_Bind, Any], None]] = {
            SubmitSm: self._on_submit_sm,
            ResponseReceived: self._on_response,
            RequestFailed: self._on_request_failed,
            EnquireLink: self._on_enquire_link,
            Unbind: self._on_unbind,
            PduRejected: self._on_rejected,
            PduIgnored: self._on_ignored,
            RemoteProtocolError: self._on_protocol_error,
            DataSm: self._on_data_sm,
        }
        for bind_request in (BindTransmitter, BindReceiver, BindTransceiver):
            self._handlers[bind_request] = self._on_bind

    # -- public API -------------------------------------------------------------------------

    @property
    def binds(self) -> int:
        """Bound sessions now (transmitter, receiver and transceiver)."""
        return self.smsc.binds

    @property
    def connections(self) -> int:
        """Open TCP connections, bound or not."""
        return len(self._connections)

    @property
    def scan_reads(self) -> int:
        """Queued SMS read by the SMSC's scans (tests check the drain is linear)."""
        return self.smsc.scan_reads

    async def start(self, host: str | None = None, port: int | None = None) -> tuple[str, int]:
        """Listen (defaults: `smpp.listen`; port 0 picks a free one); returns the address."""
        if self._listener is not None:
            raise RuntimeError("SMPP server already started")
        default_host, default_port = self.config.listen
        self._loop = asyncio.get_running_loop()
        self._stopping = False
        self._unsubscribe.append(self.engine.subscribe(self._on_engine_event))
        register = getattr(self.gateway, "register", None)
        if register is not None:  # `smpp:` routes are performed by this server's app binds
            self._unsubscribe.append(register("smpp", self._perform_app))
        self._unsubscribe.append(self.clock.on_change(self._on_clock_change))
        listener = Listener(self._new_bind, component="smpp")
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
        self._arm_smsc()  # receipts and SMS owed from before a restart wait for a bind
        self.captures.start()
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
        self.smsc.stop()
        now = self.clock.now()
        for bind in list(self._connections.values()):
            conn = bind.conn
            if conn.bound_as is not None and conn.may_send(CommandId.UNBIND):
                with contextlib.suppress(LocalProtocolError):
                    conn.send_request(Unbind(), None, now=now)
                    self.metrics.pdu("out", CommandId.UNBIND, 0)
                    self._dirty.add(bind)
            elif bind.transport is not None:
                bind.transport.close()
        self._flush()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(self.stop_grace, self.config.response_timeout)
        while self._connections and loop.time() < deadline:
            waiter = loop.create_future()
            self._stop_waiter = waiter
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter, deadline - loop.time())
        self._stop_waiter = None
        for bind in list(self._connections.values()):
            if bind.transport is not None:
                bind.transport.abort()
            bind.connection_lost(None)
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()
        if self._smsc_timer is not None:
            self._smsc_timer.cancel()
            self._smsc_timer = None
        self._listener = None
        self.captures.close_all(self.clock.now())
        _log.info("smpp_stopped")

    def bind_list(self) -> list[dict[str, Any]]:
        """Open connections (`GET /api/v1/binds`): id, peer, system_id, bind type, capture."""
        out = []
        for key, bind in sorted(self._connections.items()):
            bound = bind.conn.bound_as
            out.append(
                {
                    "id": key,
                    "peer": bind.peer,
                    "system_id": bind.system_id or None,
                    "bind_type": None if bound is None else _BIND_TYPES[bound],
                    "capture": self.captures.bind_info(key),
                    "window": {
                        "size": bind.conn.window,
                        "used": bind.conn.window - bind.conn.window_available,
                        "queued": bind.conn.queued,
                    },
                    "pdus": {"received": bind.conn.pdus_received, "sent": bind.conn.pdus_sent},
                }
            )
        return out

    def bind_counts(self) -> list[BindCounts]:
        """Every open connection's cumulative PDU counts (the console's per-bind rates)."""
        return [
            BindCounts(key, bind.conn.pdus_received, bind.conn.pdus_sent)
            for key, bind in self._connections.items()
        ]

    def trace(self, bind_id: int) -> Trace:
        """Connection `bind_id`'s PDU trace, started now if it is open and not yet traced;
        a closed connection's trace while it is kept. CaptureError `unknown_bind` otherwise."""
        bind = self._connections.get(bind_id)
        if bind is None:
            trace = self.captures.traces.get(bind_id)
            if trace is None:
                raise CaptureError("unknown_bind", f"no open or traced SMPP connection {bind_id}")
            return trace
        trace = self.captures.start_trace(bind_id, bind.conn.pending_input)
        trace.system_id = bind.system_id or None
        trace.peer = bind.peer
        return trace

    def closed_traces(self) -> list[Trace]:
        """Traces of connections that have closed and are still kept, oldest first."""
        traces = self.captures.traces
        return [t for key in traces.closed_keys() if (t := traces.get(key)) is not None]

    def start_capture(self, bind_id: int, name: str | None = None) -> dict[str, Any]:
        """Capture one connection into `name` in smpp.capture_dir; CaptureError names why not."""
        bind = self._connections.get(bind_id)
        if bind is None:
            raise CaptureError("unknown_bind", f"no open SMPP connection {bind_id}")
        now = self.clock.now()
        return self.captures.start_bind(bind_id, name, bind.system_id, now, bind.conn.pending_input)

    def stop_capture(self, bind_id: int) -> dict[str, Any]:
        """End one connection's capture; its file is complete (CaptureError when none runs)."""
        return self.captures.stop_bind(bind_id, self.clock.now())

    def capture_info(self, bind_id: int) -> dict[str, Any] | None:
        """The running capture of one connection, or None."""
        return self.captures.bind_info(bind_id)

    def _password_prompt(self, source_addr: str) -> bool:
        """Whether source_addr's dialog shows a password prompt: captures star its reply."""
        try:
            dialog = self.engine.dialog(self.engine.normalise(source_addr))
        except ValueError:  # not a number: no dialog (InvalidMsisdn is a ValueError)
            return False
        return dialog is not None and dialog.secret

    # -- connections --------------------------------------------------------------------------

    def _new_bind(self) -> _Bind:
        self._keys += 1
        return _Bind(self, self._keys)

    def _connection_made(self, bind: _Bind) -> None:
        if self._stopping or len(self._connections) >= self.config.max_connections:
            # Over smpp.max_connections (or shutting down): closed before a byte is read.
            bind.ended = True
            assert bind.transport is not None
            bind.transport.abort()
            if not self._stopping:
                self._refuse(bind)
            return
        if self._refused:
            _log.info("smpp_connection_limit_cleared", refused=self._refused)
            self._refused = 0
        self._connections[bind.key] = bind
        assert bind.transport is not None
        self.captures.opened(
            bind.key,
            bind.transport.get_extra_info("peername"),
            bind.transport.get_extra_info("sockname"),
            self.clock.now(),
        )
        self._arm(bind)

    def _refuse(self, bind: _Bind) -> None:
        """Count a connection closed at once; log the first of each burst only."""
        self.metrics.connection_refused()
        self._refused += 1
        if self._refused == 1:
            _log.warning(
                "smpp_connection_limit", peer=bind.peer, max_connections=self.config.max_connections
            )

    # -- the one drain, the one transmit, the one re-arm ------------------------------------

    def _drain(self, bind: _Bind, reason: str | None = None) -> None:
        """Hand every event the connection has to its handler."""
        conn = bind.conn
        handlers = self._handlers
        while True:
            event = conn.next_event()
            if event is NEED_DATA:
                break
            if isinstance(event, ConnectionClosed):
                self._closed(bind, reason or event.reason)
                break
            handler = handlers.get(type(event))
            if handler is None:
                self._on_other(bind, event)
            else:
                handler(bind, event)
        self._dirty.add(bind)

    def _flush(self) -> None:
        """Apply the SMSC's actions, then transmit and re-arm every bind touched."""
        actions = self.smsc.actions() + self.apps.actions()
        while actions:
            self._apply(actions)
            # What a failed request made room for elsewhere, or failed in turn.
            actions = self.smsc.actions() + self.apps.actions()
        for effect_id, result in self.apps.results():
            waiter = self._app_waiters.pop(effect_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(result)
        dirty, self._dirty = self._dirty, set()
        for bind in dirty:
            transport = bind.transport
            data = bind.conn.data_to_send()
            if data and transport is not None:
                transport.write(data)
                if self.captures.active:
                    self.captures.sent(bind.key, data, self.clock.now())
            if bind.ended:
                self.captures.closed(bind.key, self.clock.now())  # after its last PDU
                if transport is not None:
                    transport.close()
            else:
                self._arm(bind)
        self._arm_smsc()

    def _apply(self, actions: list[Respond | Send]) -> None:
        now = self.clock.now()
        metrics = self.metrics
        for action in actions:
            bind = self._connections.get(action.bind)
            pdu = action.pdu
            if isinstance(action, Respond):
                if bind is not None and bind.conn.state is not State.CLOSED:
                    bind.conn.send_response(pdu)
                    metrics.pdu("out", pdu.command_id, pdu.command_status)
                    self._dirty.add(bind)
                continue
            if bind is None or not bind.conn.may_send(pdu.command_id):
                # Gone, or unbinding (SMPP 3.4 §2.3): it waits for another bind.
                self._request_failed(action.context, now)
                continue
            try:
                bind.conn.send_request(pdu, action.context, now=now, urgent=action.urgent)
            except LocalProtocolError:
                self._request_failed(action.context, now)  # queue full: offered again later
                continue
            metrics.pdu("out", pdu.command_id, 0)
            self._dirty.add(bind)

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

    def _arm_smsc(self) -> None:
        """The SMSC's one timer: next loop iteration for new work, else its next retry."""
        at = self.smsc.get_timer()
        if at is None or (self._smsc_timer_at is not None and self._smsc_timer_at <= at):
            return
        if self._smsc_timer is not None:
            self._smsc_timer.cancel()
            self._smsc_timer = None
        self._smsc_timer_at = at
        if self._loop is None:
            return
        if at == float("-inf"):
            # After the current callbacks: a submit_sm_resp goes before the deliver_sm it causes.
            self._smsc_timer = self._loop.call_soon(self._fire_smsc)  # type: ignore[assignment]
        elif not self._simulated:
            delay = max(0.0, at - self.clock.now())
            self._smsc_timer = self._loop.call_at(self._loop.time() + delay, self._fire_smsc)

    def _fire_smsc(self) -> None:
        self._smsc_timer = None
        self._smsc_timer_at = None
        self.smsc.handle_timer(self.clock.now())
        self._flush()

    def _fire(self, bind: _Bind) -> None:
        bind.timer = None
        bind.timer_at = None
        if bind.ended:
            return
        now = self.clock.now()
        for event in bind.conn.handle_timer(now):
            if isinstance(event, RequestTimedOut):
                _log.info(
                    "smpp_response_timeout",
                    peer=bind.peer,
                    system_id=bind.system_id,
                    command=_cname(event.request.command_id),
                )
                self._request_failed(event.context, now)
            elif isinstance(event, EnquireLinkDue):
                self.metrics.pdu("out", CommandId.ENQUIRE_LINK, 0)
            elif isinstance(event, PeerTimedOut):
                _log.warning(
                    "smpp_peer_timed_out",
                    peer=bind.peer,
                    system_id=bind.system_id,
                    reason=event.reason,
                )
        if bind.rejects.held:  # a flood that stopped is summed up within a timer's period
            self._log_rejects(bind, now)
        self._drain(bind)  # requests the timer failed or released, the close
        self._flush()

    def _on_clock_change(self) -> None:
        now = self.clock.now()
        for bind in list(self._connections.values()):
            if bind.timer_at is not None and bind.timer_at <= now:
                self._fire(bind)
        at = self._smsc_timer_at
        if self._simulated and at is not None and at != float("-inf") and at <= now:
            self._fire_smsc()

    # -- events -------------------------------------------------------------------------------

    def _on_engine_event(self, event: Event) -> None:
        # Synchronous, maybe from inside a call of ours into the engine: the actions wait for
        # the flush that ends that call, or the next loop iteration.
        smsc = self.smsc
        smsc.engine_event(event)
        # Most events (screens shown, one-shot dialogs ended) make no work; and with the
        # answers of a read's earlier PDUs pending, the timer is already set for the next
        # loop iteration (-inf), the earliest it can be.
        if self._smsc_timer_at != _SOON and smsc.pending:
            self._arm_smsc()
        self.apps.engine_event(event)
        if self.apps.pending:
            self._flush_apps_soon()  # an app hears that its dialog ended

    def offer(self, event: Event) -> None:
        """An engine event of another worker routed here (cluster mode: an SMS for a bind of
        this worker, a push's first screen): the SMS centre handles it as one of its own."""
        self.smsc.engine_event(event)
        if self.smsc.pending:
            self._arm_smsc()

    def _respond(self, bind: _Bind, pdu: Pdu) -> None:
        bind.conn.send_response(pdu)
        self.metrics.pdu("out", pdu.command_id, pdu.command_status)

    def _on_other(self, bind: _Bind, event: Any) -> None:
        # A request the core let through that we do not serve (none today): refuse it.
        if isinstance(event, Pdu) and not event.is_response:
            self.metrics.pdu("in", event.command_id, event.command_status)
            self._respond(
                bind,
                make_response(
                    event.command_id, event.sequence_number, CommandStatus.ESME_RINVCMDID
                ),
            )

    def _on_bind(self, bind: _Bind, pdu: BindRequest) -> None:
        self.metrics.pdu("in", pdu.command_id, 0)
        account = self.accounts.get(pdu.system_id)
        status: int = _OK
        if account is None:
            status = CommandStatus.ESME_RINVSYSID
        elif not hmac.compare_digest(
            pdu.password.encode("latin-1"), account.password.encode("utf-8")
        ):
            status = CommandStatus.ESME_RINVPASWD
        self._respond(
            bind,
            make_response(
                pdu.command_id,
                pdu.sequence_number,
                status,
                system_id=SYSTEM_ID,
                tlvs=_BIND_RESP_TLVS if status == _OK else (),
            ),
        )
        if status != _OK:
            _log.warning(
                "smpp_bind_refused",
                peer=bind.peer,
                system_id=pdu.system_id,
                bind_type=_cname(pdu.command_id).removeprefix("bind_"),
                status=_sname(status),
            )
            return
        assert account is not None and bind.conn.bound_as is not None
        bind_type = _BIND_TYPES[bind.conn.bound_as]
        bind.system_id = account.system_id
        receives = bind.conn.bound_as is not State.BOUND_TX
        if account.role == "app":  # an application: no SMS, no harness dialogs
            self.apps.bind_opened(bind.key, account, bind.conn, receives)
        else:
            self.smsc.bind_opened(bind.key, account, bind.conn, receives)
            if receives and self.on_receiver is not None:
                self.on_receiver(bind.key, account)
        self.metrics.bind_opened(bind_type)
        _log.info("smpp_bound", peer=bind.peer, system_id=bind.system_id, bind_type=bind_type)

    def _on_submit_sm(self, bind: _Bind, pdu: SubmitSm) -> None:
        self.metrics.pdu("in", CommandId.SUBMIT_SM, 0)
        if self.faults:
            msisdn = pdu.source_addr
            with contextlib.suppress(ValueError):  # rules match the international digits
                msisdn = self.engine.normalise(msisdn)
            fault = self.faults.smpp(bind.system_id, bind.key, self.clock.now(), msisdn)
            if fault is not None and fault.kind == SMPP_THROTTLE:
                # SMPP 3.4 §5.1.3: ESME_RTHROTTLED, the peer exceeded its allowed rate.
                status = CommandStatus.ESME_RTHROTTLED
                self._respond(bind, make_response(pdu.command_id, pdu.sequence_number, status))
                return
            if fault is not None:  # withheld: the peer's response timer is all it will see
                return
        if self.apps.is_app(bind.key):
            self.apps.submit_sm(bind.key, pdu)
        else:
            self.smsc.submit_sm(bind.key, pdu)
        # A step may wait for an outside answer (an app over HTTP or an app bind): the
        # gateway starts performing it; its screen comes back later as an engine event.
        self._perform()

    def _on_response(self, bind: _Bind, event: ResponseReceived) -> None:
        response = event.response
        self.metrics.pdu("in", response.command_id, response.command_status)
        if isinstance(event.context, AppPart):
            self.apps.response(event.context, response.command_status)
            return
        self.smsc.response(event.context, response.command_status, now=self.clock.now())
        self.smsc.window_changed(bind.key)

    def _on_request_failed(self, bind: _Bind, event: RequestFailed) -> None:
        self._request_failed(event.context, self.clock.now())

    def _request_failed(self, context: object, now: float) -> None:
        if isinstance(context, AppPart):
            self.apps.failed(context)
        else:
            self.smsc.failed(context, now=now)

    # -- application binds: the `smpp` effects' performer ------------------------------------

    async def _perform_app(self, effect: Effect) -> Result:
        """Perform an `smpp` effect: a deliver_sm to the app, its submit_sm is the answer."""
        assert self._loop is not None
        waiter: asyncio.Future[Result] = self._loop.create_future()
        self._app_waiters[effect.id] = waiter
        began = time.perf_counter()
        profile = self.apps.profile(str(effect.request.get("system_id", "")))
        try:
            self.apps.perform(effect)
            # One flush for every effect started in this loop iteration: their deliver_sm go
            # out in one write per bind (the gateway starts each effect as a task of its own).
            self._flush_apps_soon()
            return await waiter
        finally:
            self._app_waiters.pop(effect.id, None)
            if not waiter.done():  # cancelled: timed out, or the dialog ended meanwhile
                self.apps.cancel(effect.id)
            tell = getattr(self.gateway, "app_exchange", None)
            if tell is not None:  # the web phone's app console (docs/smpp.md)
                result = waiter.result() if waiter.done() and not waiter.cancelled() else None
                latency = (time.perf_counter() - began) * 1000.0
                timed_out = self.gateway.clock.now() >= effect.deadline
                tell(exchange(effect, profile, result, latency, timed_out))

    def _flush_apps_soon(self) -> None:
        """Flush once the current callbacks have run (with the next flush, if one comes first)."""
        if self._apps_flush is None and self._loop is not None:
            self._apps_flush = self._loop.call_soon(self._flush_apps)

    def _flush_apps(self) -> None:
        self._apps_flush = None
        self._flush()

    def _on_enquire_link(self, bind: _Bind, pdu: EnquireLink) -> None:
        self.metrics.pdu("in", pdu.command_id, 0)
        self._respond(bind, EnquireLinkResp(sequence_number=pdu.sequence_number))

    def _on_unbind(self, bind: _Bind, pdu: Unbind) -> None:
        self.metrics.pdu("in", pdu.command_id, 0)
        self._respond(bind, UnbindResp(sequence_number=pdu.sequence_number))
        _log.info("smpp_unbind", peer=bind.peer, system_id=bind.system_id)

    def _on_data_sm(self, bind: _Bind, pdu: DataSm) -> None:
        # data_sm is valid 3.4 but not simulated: USSD and MO SMS come as submit_sm.
        self.metrics.pdu("in", pdu.command_id, 0)
        self._respond(
            bind, make_response(pdu.command_id, pdu.sequence_number, CommandStatus.ESME_RINVCMDID)
        )

    def _on_rejected(self, bind: _Bind, event: PduRejected) -> None:
        self.metrics.pdu("in", event.command_id, 0)
        self._respond(bind, event.response)
        now = self.clock.now()
        if bind.rejects.own_line(now):
            _log.info(
                "smpp_pdu_rejected",
                peer=bind.peer,
                system_id=bind.system_id,
                command=_cname(event.command_id),
                status=_sname(event.status),
                reason=event.reason,
            )
            return
        bind.rejects.hold(event.status)
        self._log_rejects(bind, now)

    def _log_rejects(self, bind: _Bind, now: float, *, ending: bool = False) -> None:
        """The summary of the refusals held back, if one is due (always when `ending`)."""
        held = bind.rejects.take(now, ending=ending)
        if held is not None:
            _log.info(
                "smpp_pdu_rejected",
                peer=bind.peer,
                system_id=bind.system_id,
                suppressed=sum(held.values()),
                statuses=held,
            )

    def _on_ignored(self, bind: _Bind, event: PduIgnored) -> None:
        _log.debug(
            "smpp_pdu_ignored",
            peer=bind.peer,
            command=_cname(event.command_id),
            reason=event.reason,
        )

    def _on_protocol_error(self, bind: _Bind, event: RemoteProtocolError) -> None:
        _log.warning(
            "smpp_protocol_error",
            peer=bind.peer,
            system_id=bind.system_id,
            status=_sname(event.status),
            reason=event.reason,
        )
        if event.response is not None:  # already in data_to_send() (buffered connection)
            self.metrics.pdu("out", event.response.command_id, event.response.command_status)

    def _closed(self, bind: _Bind, reason: str) -> None:
        if bind.ended:
            return
        bind.ended = True
        if bind.timer is not None:
            bind.timer.cancel()
            bind.timer = None
        bind.timer_at = None
        self._connections.pop(bind.key, None)
        if bind.rejects.held:
            self._log_rejects(bind, self.clock.now(), ending=True)
        bound_as = bind.conn.bound_as
        if bound_as is not None:
            self.metrics.bind_closed(_BIND_TYPES[bound_as])
            _log.info(
                "smpp_closed",
                peer=bind.peer,
                system_id=bind.system_id,
                bind_type=_BIND_TYPES[bound_as],
                reason=reason,
            )
        # Its requests came back as RequestFailed before this; dialogs are released.
        self.smsc.bind_closed(bind.key)
        if self.on_receiver is not None and bound_as is not None:
            self.on_receiver(bind.key, None)
        self.apps.bind_closed(bind.key)
        self.faults.forget_bind(bind.key)
        waiter = self._stop_waiter
        if waiter is not None and not self._connections and not waiter.done():
            waiter.set_result(None)
