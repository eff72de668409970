"""Load generator over SMPP (SPEC §9 `ussd-sim load`, §11 performance figures).

Drives a gateway (or any SMSC) through K transceiver binds with a scenario file's dial / reply /
release steps as the journey, over M distinct MSISDNs, in one of two models:

* open (`rate`): journeys start on a fixed schedule whatever the answers do; each step's
  latency counts from the time it *should* have been sent (its slot, or the arrival of the
  screen it answers), so a stalled gateway shows up as latency, not as fewer samples
  (no coordinated omission);
* closed (`concurrency`): N virtual users, each starting its next journey when one ends.

The generator must stay cheaper than what it measures: one asyncio Protocol per bind,
submit_sm pre-encoded once per (MSISDN, step) with only the sequence number and the
its_session_info octets patched in, submit_sm_resp and USSD deliver_sm framed by hand
(fixed offsets, SMPP 3.4 §4.4.2, §4.6.1), one `transport.write` per batch, no logging per
PDU. The sans-IO `SmppConnection` still owns the session: sequence numbers come from its
`allocate_sequence()`, and bind, unbind, enquire_link, generic_nack and anything malformed go
through its state machine (SMPP 3.4 §2.3).

Latency samples are kept per step in flat `array('d')` buffers and sorted once at the end
(a few million samples cost tens of MB); percentiles are exact.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import struct
import sys
import time
from array import array
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TextIO
from urllib.parse import unquote, urlsplit

from sim.scenario import Dial, Release, Reply, Scenario
from ussd.smpp.connection import (
    NEED_DATA,
    ConnectionClosed,
    PduRejected,
    RemoteProtocolError,
    ResponseReceived,
    SmppConnection,
    State,
)
from ussd.smpp.constants import CommandId, CommandStatus, Tag, UssdServiceOp, status_name
from ussd.smpp.pdu import (
    BindTransceiver,
    DeliverSm,
    EnquireLink,
    ItsSessionInfo,
    SubmitSm,
    Unbind,
    encode_pdu,
    encode_text,
    response_to,
    ussd_tlvs,
)

Mode = Literal["ussd", "submit", "submit-ussd"]
MODES: tuple[Mode, ...] = ("ussd", "submit", "submit-ussd")

_HEADER = struct.Struct("!IIII")
_SEQ = struct.Struct("!I")
_TLV_HEAD = struct.Struct("!HH")
_SUBMIT_SM_RESP = int(CommandId.SUBMIT_SM_RESP)
_DELIVER_SM = int(CommandId.DELIVER_SM)
_DELIVER_SM_RESP = int(CommandId.DELIVER_SM_RESP)
_GENERIC_NACK = int(CommandId.GENERIC_NACK)
_OP_TAG = int(Tag.USSD_SERVICE_OP)
_SESSION_TAG = int(Tag.ITS_SESSION_INFO)
_USSR_REQUEST = int(UssdServiceOp.USSR_REQUEST)  # 2: continue, a reply is expected
_PSSR_RESPONSE = int(UssdServiceOp.PSSR_RESPONSE)  # 17: end of dialog
# SMPP 3.4 §5.3.2.43: session numbers 1..127 and sequence numbers 0..63 keep both octets of
# its_session_info below 0x80 (ussd/smpp/ussd.py explains which peers need that).
_MAX_SESSION = 127
_SEQUENCE_MODULO = 64
PROGRESS_INTERVAL = 0.25  # seconds between progress lines (at most 4 a second)
TICK = 0.05  # timeout checks and end-of-run checks
BIND_WAIT = 5.0  # seconds to connect and bind one transceiver
BACKLOG_LIMIT = 1_000_000  # open model: arrivals waiting for a free MSISDN before drops


class LoadError(Exception):
    """The run cannot start or go on: unreachable target, bind refused, every bind lost."""


# -- options ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SmppAddress:
    """`smpp://system_id:password@host:port` (SPEC §8 `--target`)."""

    host: str
    port: int
    system_id: str
    password: str

    @classmethod
    def parse(cls, url: str) -> SmppAddress:
        """ValueError naming the expected form for anything else."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"bad --target {url!r}: {exc}") from None
        if parts.scheme != "smpp" or not parts.hostname or not parts.username:
            raise ValueError(f"bad --target {url!r}: expected smpp://system_id:password@host:port")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(f"bad --target {url!r}: nothing may follow host:port")
        return cls(
            parts.hostname, port or 2775, unquote(parts.username), unquote(parts.password or "")
        )

    def __str__(self) -> str:
        return f"smpp://{self.system_id}@{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class JourneyStep:
    """One step of the journey as the generator sends it."""

    kind: Literal["dial", "reply", "release", "submit"]
    text: str
    label: str  # "dial", "reply #1", "release", "submit"
    waits_for_screen: bool  # done on the deliver_sm screen (else on submit_sm_resp)
    expect_end: bool | None = None  # from `expect: {end|continue}`; None: not checked


def journey_from_scenario(scenario: Scenario) -> tuple[JourneyStep, ...]:
    """The dial/reply/release steps of a scenario (SPEC §8); other steps are not load."""
    steps: list[JourneyStep] = []
    replies = 0
    for step in scenario.steps:
        action = step.action
        expect = step.expect
        expect_end: bool | None = None
        if expect is not None:
            if expect.end is not None:
                expect_end = expect.end
            elif expect.continue_ is not None:
                expect_end = not expect.continue_
        if isinstance(action, Dial):
            if steps:
                break  # one dialog per journey: a second dial starts another journey
            steps.append(JourneyStep("dial", action.text, "dial", True, expect_end))
        elif isinstance(action, Reply) and steps:
            replies += 1
            steps.append(JourneyStep("reply", action.text, f"reply #{replies}", True, expect_end))
        elif isinstance(action, Release) and steps:
            steps.append(JourneyStep("release", "", "release", False))
    if not steps:
        raise ValueError(f"{scenario.file}: {scenario.label} has no dial step to load with")
    return tuple(steps)


def submit_journey(mode: Mode, dial: str = "*100#") -> tuple[JourneyStep, ...]:
    """`submit`: a plain MO submit_sm; `submit-ussd`: a USSD op 1 submit_sm (to its resp)."""
    if mode == "submit":
        return (JourneyStep("submit", "load test", "submit_sm", False),)
    return (JourneyStep("dial", dial, "submit_sm (USSD)", False),)


@dataclass(frozen=True, slots=True)
class LoadOptions:
    """Everything a run needs; `rate` (open model) or `concurrency` (closed), not both."""

    target: SmppAddress
    journey: tuple[JourneyStep, ...]
    mode: Mode = "ussd"
    rate: float | None = None  # steps per second offered (open model)
    concurrency: int | None = None  # virtual users (closed model)
    duration: float = 10.0
    warmup: float = 0.0
    binds: int = 1
    subscribers: int = 10_000
    prefix: str = "7990"  # MSISDNs are prefix + zero-padded index, 11 digits in all
    timeout: float = 10.0  # per step
    journey_name: str = ""

    def __post_init__(self) -> None:
        if (self.rate is None) == (self.concurrency is None):
            raise ValueError("give exactly one of rate (open model) and concurrency (closed)")
        if self.rate is not None and not (self.rate > 0 and math.isfinite(self.rate)):
            raise ValueError("rate must be a positive number of steps per second")
        if self.concurrency is not None and self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if self.concurrency is not None and self.concurrency > self.subscribers:
            raise ValueError(
                f"concurrency {self.concurrency} needs at least as many subscribers"
                f" (got {self.subscribers}): one dialog per MSISDN (SPEC §4)"
            )
        if self.duration <= 0 or self.warmup < 0 or self.timeout <= 0:
            raise ValueError("duration and timeout must be > 0, warmup >= 0")
        if self.binds < 1 or self.subscribers < 1:
            raise ValueError("binds and subscribers must be at least 1")
        digits = self.prefix.isascii() and self.prefix.isdigit()  # not "٧٩٩" (ITU-T E.164)
        if not digits or len(self.prefix) + len(str(self.subscribers - 1)) > 15:
            raise ValueError("prefix must be digits, and prefix + index at most 15 digits")
        if not self.journey:
            raise ValueError("empty journey")

    @property
    def model(self) -> str:
        return "open" if self.rate is not None else "closed"

    def msisdns(self) -> list[str]:
        """The MSISDNs of a run, in order: prefix + zero-padded index, 11 digits when the
        prefix leaves room (`ussd-sim load` names the first and last before it starts)."""
        width = max(11 - len(self.prefix), len(str(self.subscribers - 1)))
        return [f"{self.prefix}{i:0{width}d}" for i in range(self.subscribers)]


# -- latency ----------------------------------------------------------------------------------


def percentile(ordered: array[float] | list[float], p: float) -> float:
    """Nearest-rank percentile of sorted samples (NaN when empty)."""
    n = len(ordered)
    if n == 0:
        return math.nan
    rank = max(1, math.ceil(p / 100.0 * n))
    return ordered[rank - 1]


def summarise(samples: array[float]) -> dict[str, float]:
    """count, p50, p90, p99, max in milliseconds."""
    ordered = sorted(samples)
    return {
        "count": len(ordered),
        "p50": percentile(ordered, 50) * 1000,
        "p90": percentile(ordered, 90) * 1000,
        "p99": percentile(ordered, 99) * 1000,
        "max": (ordered[-1] * 1000) if ordered else math.nan,
    }


# -- the report -------------------------------------------------------------------------------


@dataclass(slots=True)
class Report:
    """What a run measured; `to_dict()` is the `--json` form."""

    target: str
    mode: str
    model: str
    journey: str
    steps_per_journey: int
    binds: int
    subscribers: int
    rate: float | None
    concurrency: int | None
    duration: float
    warmup: float
    elapsed: float = 0.0
    steps: int = 0
    journeys: int = 0
    offered: int = 0
    latency: dict[str, dict[str, float]] = field(default_factory=dict)
    send_lag: dict[str, float] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    backlog_max: int = 0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.duration

    @property
    def journeys_per_second(self) -> float:
        return self.journeys / self.duration

    def to_dict(self) -> dict[str, Any]:
        def clean(value: float) -> float | None:
            return None if math.isnan(value) else round(value, 4)

        return {
            "target": self.target,
            "mode": self.mode,
            "model": self.model,
            "journey": self.journey,
            "steps_per_journey": self.steps_per_journey,
            "binds": self.binds,
            "subscribers": self.subscribers,
            "rate": self.rate,
            "concurrency": self.concurrency,
            "duration": self.duration,
            "warmup": self.warmup,
            "elapsed": round(self.elapsed, 3),
            "offered": self.offered,
            "steps": {"count": self.steps, "per_second": round(self.steps_per_second, 1)},
            "journeys": {
                "count": self.journeys,
                "per_second": round(self.journeys_per_second, 1),
            },
            "latency_ms": {
                label: {k: (int(v) if k == "count" else clean(v)) for k, v in s.items()}
                for label, s in self.latency.items()
            },
            "send_lag_ms": {k: clean(v) for k, v in self.send_lag.items()},
            "errors": dict(sorted(self.errors.items())),
            "error_count": self.error_count,
            "backlog_max": self.backlog_max,
        }

    def format(self) -> str:
        """The human-readable report."""
        how = (
            f"open model, {self.rate:,.0f} steps/s offered"
            if self.rate is not None
            else f"closed model, {self.concurrency} concurrent"
        )
        lines = [
            f"ussd-sim load: {self.target}, {self.binds} transceiver(s), mode {self.mode}",
            f"  journey: {self.journey} ({self.steps_per_journey} step(s)),"
            f" {self.subscribers:,} subscribers, {how}",
            f"  measured {self.duration:g} s after {self.warmup:g} s warm-up",
            f"throughput  {self.steps_per_second:>10,.0f} steps/s"
            f"   {self.journeys_per_second:>9,.0f} journeys/s"
            f"   ({self.steps:,} steps, {self.journeys:,} journeys"
            + (f", {self.offered:,} steps offered" if self.rate is not None else "")
            + ")",
            f"{'latency (ms)':<18}{'count':>10}{'p50':>9}{'p90':>9}{'p99':>9}{'max':>9}",
        ]
        for label, s in self.latency.items():
            lines.append(
                f"  {label:<16}{int(s['count']):>10,}{s['p50']:>9.2f}{s['p90']:>9.2f}"
                f"{s['p99']:>9.2f}{s['max']:>9.1f}"
            )
        if self.rate is not None and self.send_lag:
            lines.append(
                f"  generator send lag p99 {self.send_lag['p99']:.2f} ms,"
                f" max {self.send_lag['max']:.1f} ms"
                + (f"; backlog max {self.backlog_max}" if self.backlog_max else "")
            )
        if self.errors:
            lines.append(
                "errors: " + ", ".join(f"{kind} {n:,}" for kind, n in sorted(self.errors.items()))
            )
        else:
            lines.append("errors: none")
        return "\n".join(lines)


# -- subscribers and binds ------------------------------------------------------------------


class _Sub:
    """One MSISDN, and the journey it is on (at most one at a time: SPEC §4)."""

    __slots__ = (
        "bind",
        "digits",
        "gen",
        "journey_sched",
        "key",
        "peer",
        "sched",
        "session",
        "step",
        "templates",
        "waiting",
    )

    def __init__(self, digits: str, peer: str) -> None:
        self.digits = digits
        self.key = digits.encode("ascii")
        self.peer = peer  # the other subscriber (MO SMS destination in submit mode)
        self.templates: list[bytearray] | None = None
        self.bind: _Bind | None = None
        self.step = 0
        self.sched = 0.0  # when the current step should have gone out
        self.journey_sched = 0.0
        self.session = 0
        self.gen = 0  # bumps on every send: stale timeouts and answers are ignored
        self.waiting = False  # a step is in flight


def _templates(sub: _Sub, journey: tuple[JourneyStep, ...], mode: Mode) -> list[bytearray]:
    """One pre-encoded submit_sm per step; seq (offset 12) and its_session_info (the last two
    octets, when USSD) are patched in at send time."""
    out: list[bytearray] = []
    service_code = ""
    for step in journey:
        if step.kind == "dial":
            service_code = step.text.strip("*#").split("*")[0][:20]
    for step in journey:
        if step.kind == "submit":
            data, coding = encode_text(step.text)
            pdu = SubmitSm(
                sequence_number=1,
                source_addr_ton=1,
                source_addr_npi=1,
                source_addr=sub.digits,
                dest_addr_ton=1,
                dest_addr_npi=1,
                destination_addr=sub.peer,
                data_coding=coding,
                short_message=data,
            )
        else:
            op = {
                "dial": UssdServiceOp.PSSR_INDICATION,
                "reply": UssdServiceOp.USSR_CONFIRM,
                "release": UssdServiceOp.RELEASE,
            }[step.kind]
            data, coding = encode_text(step.text) if step.text else (b"", 0)
            # its_session_info last, so its two octets sit at the end of the PDU.
            pdu = SubmitSm(
                sequence_number=1,
                service_type="USSD",
                source_addr_ton=1,
                source_addr_npi=1,
                source_addr=sub.digits,
                destination_addr=service_code,
                data_coding=coding,
                short_message=data,
                tlvs=ussd_tlvs(op, ItsSessionInfo(1, 0, step.kind == "release")),
            )
        out.append(bytearray(encode_pdu(pdu)))
    return out


def _screen(buf: bytearray, pos: int, end: int) -> tuple[bytes, int, int]:
    """(destination_addr, ussd_service_op or -1, its_session_info session or -1) of a
    deliver_sm at buf[pos:end] (SMPP 3.4 §4.6.1); ValueError/IndexError when malformed."""
    index = buf.index
    p = index(0, pos + 16, end) + 3  # service_type, source TON, NPI
    p = index(0, p, end) + 3  # source_addr, dest TON, NPI
    q = index(0, p, end)
    dest = bytes(buf[p:q])
    p = index(0, q + 4, end) + 1  # esm_class, protocol_id, priority_flag; schedule
    p = index(0, p, end) + 6  # validity; registered_delivery .. sm_default_msg_id, sm_length
    p += buf[p - 1]  # short_message
    if p > end:
        raise ValueError("short_message past the end")
    op = session = -1
    unpack = _TLV_HEAD.unpack_from
    while p + 4 <= end:
        tag, length = unpack(buf, p)
        p += 4
        if tag == _OP_TAG and length == 1 and op < 0:
            op = buf[p]
        elif tag == _SESSION_TAG and length == 2 and session < 0:
            session = buf[p]
        p += length
    return dest, op, session


class _Bind(asyncio.Protocol):
    """One transceiver: hand-framed hot path, SmppConnection for everything else."""

    def __init__(self, runner: _Runner, index: int) -> None:
        self.runner = runner
        self.index = index
        self.conn = SmppConnection(
            "client", enquire_link_interval=None, response_timeout=runner.options.timeout
        )
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.out: list[bytes] = []
        self.in_flight: dict[int, tuple[_Sub, int]] = {}  # submit_sm seq -> (subscriber, gen)
        self.active: dict[bytes, _Sub] = {}  # MSISDN -> subscriber waiting for a screen
        self.bound = False
        self.closed: str | None = None
        self.bind_resp: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.unbound: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            import socket

            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        runner = self.runner
        buf = self.buf
        buf += data
        n = len(buf)
        pos = 0
        now = time.perf_counter()
        out = self.out
        unpack = _HEADER.unpack_from
        bound = self.bound
        while n - pos >= 16:
            length, cid, status, seq = unpack(buf, pos)
            if length < 16 or length > self.conn.max_pdu_size:
                self._slow(bytes(buf[pos:]), now)  # framing broken: the core says how
                pos = n
                break
            if n - pos < length:
                break
            end = pos + length
            if bound and cid == _SUBMIT_SM_RESP:
                entry = self.in_flight.pop(seq, None)
                if entry is not None:
                    runner.on_submit_resp(self, entry[0], entry[1], status, now)
            elif bound and cid == _DELIVER_SM:
                try:
                    dest, op, session = _screen(buf, pos, end)
                except (ValueError, IndexError):
                    self._slow(bytes(buf[pos:end]), now)
                else:
                    out.append(_HEADER.pack(17, _DELIVER_SM_RESP, 0, seq) + b"\x00")
                    if op >= 0:
                        sub = self.active.get(dest)
                        if sub is not None and (session < 0 or session == sub.session):
                            runner.on_screen(self, sub, op, now)
            elif bound and cid == _GENERIC_NACK and seq in self.in_flight:
                sub, gen = self.in_flight.pop(seq)
                runner.on_submit_resp(self, sub, gen, status or CommandStatus.ESME_RINVCMDID, now)
            else:
                self._slow(bytes(buf[pos:end]), now)
                bound = self.bound
            pos = end
        if pos:
            del buf[:pos]
        self.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closed is None:
            self.closed = "connection lost" if exc is None else f"connection lost: {exc}"
        self.transport = None
        if not self.bind_resp.done():
            self.bind_resp.set_exception(ConnectionError(self.closed))
        if not self.unbound.done():
            self.unbound.set_result(None)
        self.runner.on_disconnect(self)

    # output

    def flush(self) -> None:
        out = self.out
        if out:
            if self.transport is not None:
                self.transport.write(out[0] if len(out) == 1 else b"".join(out))
            out.clear()

    def send_step(self, sub: _Sub, tpl: bytearray, session_octets: int) -> None:
        seq = self.conn.allocate_sequence()
        tpl[12:16] = _SEQ.pack(seq)
        if session_octets >= 0:
            tpl[-2] = sub.session
            tpl[-1] = session_octets
        self.in_flight[seq] = (sub, sub.gen)
        self.out.append(bytes(tpl))

    # the slow path: the sans-IO core (SMPP 3.4 §2.3 rules)

    def send_pdu(self, pdu: Any) -> None:
        data = self.conn.send(pdu, time.monotonic())
        if self.transport is not None:
            self.transport.write(data)

    def _slow(self, data: bytes, now: float) -> None:
        conn = self.conn
        conn.receive_data(data, now)
        while True:
            event = conn.next_event()
            if event is NEED_DATA:
                return
            if isinstance(event, ResponseReceived):
                cid = event.request.command_id
                if cid == CommandId.BIND_TRANSCEIVER:
                    self.bound = event.response.command_status == 0
                    if not self.bind_resp.done():
                        self.bind_resp.set_result(event.response.command_status)
                elif cid == CommandId.UNBIND and not self.unbound.done():
                    self.unbound.set_result(None)
            elif isinstance(event, EnquireLink | DeliverSm):
                self.out.append(conn.send(response_to(event)))
            elif isinstance(event, Unbind):
                self.out.append(conn.send(response_to(event)))
                self.closed = "the target unbound"
            elif isinstance(event, PduRejected):
                self.out.append(conn.send(event.response))
                self.runner.count_error(f"rejected:{status_name(event.status)}")
            elif isinstance(event, RemoteProtocolError):
                if event.response is not None:
                    self.out.append(event.response.encode())
                self.closed = f"protocol error: {event.reason}"
            elif isinstance(event, ConnectionClosed):
                if self.closed is None:
                    self.closed = event.reason
                self.flush()
                if self.transport is not None:
                    self.transport.close()
                return
            # PduIgnored (a stray response) needs nothing.


# -- the run --------------------------------------------------------------------------------


class _Runner:
    """Schedules journeys over the binds, times the steps, counts errors."""

    def __init__(
        self, options: LoadOptions, progress: TextIO | None, clock: Callable[[], float]
    ) -> None:
        self.options = options
        self.progress = progress
        self.now = clock
        self.journey = options.journey
        self.n_steps = len(options.journey)
        self.mode = options.mode
        digits = options.msisdns()
        self.subs = [_Sub(d, digits[(i + 1) % len(digits)]) for i, d in enumerate(digits)]
        self.free: deque[_Sub] = deque(self.subs)
        self.binds: list[_Bind] = []
        self.live: list[_Bind] = []
        self.rr = 0
        self.samples = [array("d") for _ in options.journey]
        self.lag = array("d")
        self.errors: dict[str, int] = {}
        self.steps = 0
        self.journeys = 0
        self.offered = 0
        self.deadlines: deque[tuple[float, _Sub, int]] = deque()
        self.backlog: deque[float] = deque()
        self.backlog_max = 0
        self.measure_from = math.inf
        self.measure_to = math.inf
        self.stopping = False  # no new journeys or steps
        self.in_flight = 0
        self.idle = asyncio.Event()  # draining: nothing in flight any more
        self.all_lost = asyncio.Event()  # every bind is gone: the run cannot go on
        self.dirty: set[_Bind] = set()
        self.lost = 0

    # errors

    def count_error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def _measured(self, sched: float) -> bool:
        return self.measure_from <= sched < self.measure_to

    # journeys

    def start_journey(self, sched: float) -> bool:
        """Take a free MSISDN and send its first step; False when none is free or no bind."""
        if not self.free or not self.live:
            return False
        sub = self.free.popleft()
        self.rr = (self.rr + 1) % len(self.live)
        bind = self.live[self.rr]
        sub.bind = bind
        sub.step = 0
        sub.journey_sched = sched
        sub.session = sub.session % _MAX_SESSION + 1
        if sub.templates is None:
            sub.templates = _templates(sub, self.journey, self.mode)
        self._send(sub, bind, sched)
        return True

    def _send(self, sub: _Sub, bind: _Bind, sched: float) -> None:
        step = self.journey[sub.step]
        assert sub.templates is not None
        tpl = sub.templates[sub.step]
        if self.mode == "submit":
            octets = -1
        else:
            # SMPP 3.4 §5.3.2.43: our PDUs are numbered 0, 2, 4 … in the dialog; release
            # carries the end bit.
            octets = ((2 * sub.step) % _SEQUENCE_MODULO) << 1 | (step.kind == "release")
        sub.sched = sched
        sub.gen += 1
        sub.waiting = True
        if step.waits_for_screen:
            bind.active[sub.key] = sub
        bind.send_step(sub, tpl, octets)
        self.dirty.add(bind)
        self.in_flight += 1
        self.deadlines.append((sched + self.options.timeout, sub, sub.gen))

    def _finish_step(self, sub: _Sub, bind: _Bind, now: float, ok: bool) -> None:
        """The current step is over (answered or failed): next step, or the journey ends."""
        sub.waiting = False
        self.in_flight -= 1
        bind.active.pop(sub.key, None)
        measured = self._measured(sub.journey_sched)
        if ok and measured:
            self.samples[sub.step].append(now - sub.sched)
            self.steps += 1
        if ok and sub.step + 1 < self.n_steps and (measured or not self.stopping):
            sub.step += 1
            # The next step is due the moment its screen arrived (no think time).
            self._send(sub, bind, now)
            return
        if ok and sub.step + 1 == self.n_steps and measured:
            self.journeys += 1
        self._journey_over(sub, now)

    def _journey_over(self, sub: _Sub, now: float) -> None:
        sub.bind = None
        self.free.append(sub)
        if self.stopping:
            if self.in_flight == 0:
                self.idle.set()
            return
        if self.options.concurrency is not None:
            self.start_journey(now)
        elif self.backlog:
            # Open model: an arrival that found no free MSISDN starts now, timed from its slot.
            self.start_journey(self.backlog.popleft())

    def _fail(self, sub: _Sub, bind: _Bind, kind: str, now: float) -> None:
        if self._measured(sub.journey_sched):
            self.count_error(kind)
        sub.waiting = False
        self.in_flight -= 1
        bind.active.pop(sub.key, None)
        self._journey_over(sub, now)

    # answers (called from _Bind.data_received)

    def on_submit_resp(self, bind: _Bind, sub: _Sub, gen: int, status: int, now: float) -> None:
        if not sub.waiting or sub.gen != gen:
            return
        if status != 0:
            self._fail(sub, bind, f"status:{status_name(status)}", now)
        elif not self.journey[sub.step].waits_for_screen:
            self._finish_step(sub, bind, now, True)

    def on_screen(self, bind: _Bind, sub: _Sub, op: int, now: float) -> None:
        if not sub.waiting:
            return
        step = self.journey[sub.step]
        if op == _PSSR_RESPONSE:
            end = True
        elif op == _USSR_REQUEST:
            end = False
        else:
            self._fail(sub, bind, "unexpected_screen", now)
            return
        more = sub.step + 1 < self.n_steps and self.journey[sub.step + 1].kind == "reply"
        if (step.expect_end is not None and end != step.expect_end) or (end and more):
            self._fail(sub, bind, "unexpected_screen", now)
            return
        self._finish_step(sub, bind, now, True)

    def on_disconnect(self, bind: _Bind) -> None:
        if bind in self.live:
            self.live.remove(bind)
            if not self.live:
                self.all_lost.set()
        now = self.now()
        for sub in [s for s in self.subs if s.waiting and s.bind is bind]:
            self._fail(sub, bind, "disconnect", now)
        if bind.bound and not self.stopping:
            self.lost += 1

    # timers

    def expire(self, now: float) -> None:
        deadlines = self.deadlines
        while deadlines and deadlines[0][0] <= now:
            _, sub, gen = deadlines.popleft()
            if sub.waiting and sub.gen == gen and sub.bind is not None:
                self._fail(sub, sub.bind, "timeout", now)
        self.flush()

    def flush(self) -> None:
        if self.dirty:
            for bind in self.dirty:
                bind.flush()
            self.dirty.clear()

    # the models

    async def open_model(self, start: float, end: float) -> None:
        """Journey arrivals at rate / steps-per-journey per second, on a fixed schedule."""
        assert self.options.rate is not None
        interval = self.n_steps / self.options.rate
        i = 0
        lag = self.lag
        loop_now = self.now
        while True:
            now = loop_now()
            if now >= end or not self.live:
                break
            while True:
                slot = start + i * interval
                if slot > now or slot >= end:
                    break
                i += 1
                if self._measured(slot):
                    self.offered += self.n_steps
                if self.start_journey(slot):
                    if self._measured(slot):
                        lag.append(now - slot)
                elif len(self.backlog) < BACKLOG_LIMIT:
                    self.backlog.append(slot)
                    self.backlog_max = max(self.backlog_max, len(self.backlog))
                elif self._measured(slot):
                    self.count_error("no_free_subscriber")
            self.flush()
            await asyncio.sleep(max(0.0, start + i * interval - loop_now()))

    async def closed_model(self, end: float) -> None:
        assert self.options.concurrency is not None
        now = self.now()
        for _ in range(self.options.concurrency):
            if not self.start_journey(now):
                break
        self.flush()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.all_lost.wait(), max(0.0, end - self.now()))


async def _connect(runner: _Runner, index: int) -> _Bind:
    options = runner.options
    loop = asyncio.get_running_loop()
    try:
        _, bind = await asyncio.wait_for(
            loop.create_connection(
                lambda: _Bind(runner, index), options.target.host, options.target.port
            ),
            BIND_WAIT,
        )
    except (OSError, TimeoutError) as exc:
        raise LoadError(
            f"cannot connect to {options.target.host}:{options.target.port}: "
            f"{getattr(exc, 'strerror', None) or exc or 'timed out'}"
        ) from None
    bind.send_pdu(
        BindTransceiver(
            system_id=options.target.system_id,
            password=options.target.password,
            system_type="LOAD",
        )
    )
    try:
        status = await asyncio.wait_for(bind.bind_resp, BIND_WAIT)
    except (ConnectionError, TimeoutError) as exc:
        if bind.transport is not None:
            bind.transport.close()
        why = str(exc) or f"no valid bind_transceiver_resp within {BIND_WAIT:g} s"
        raise LoadError(f"bind_transceiver failed: {why}") from None
    if status != CommandStatus.ESME_ROK:
        if bind.transport is not None:
            bind.transport.close()
        raise LoadError(f"bind_transceiver refused: {status_name(status)}")
    return bind


async def _unbind(bind: _Bind) -> None:
    if bind.transport is None:
        return
    with contextlib.suppress(Exception):
        if bind.conn.state is State.BOUND_TRX:
            bind.send_pdu(Unbind())
            await asyncio.wait_for(asyncio.shield(bind.unbound), 1.0)
    if bind.transport is not None:
        bind.transport.close()


async def run_load(options: LoadOptions, progress: TextIO | None = None) -> Report:
    """One bounded run: connect and bind, warm up, measure, drain, unbind; the report."""
    clock = time.perf_counter
    runner = _Runner(options, progress, clock)
    report = Report(
        target=str(options.target),
        mode=options.mode,
        model=options.model,
        journey=options.journey_name or " → ".join(s.text or s.kind for s in options.journey),
        steps_per_journey=len(options.journey),
        binds=options.binds,
        subscribers=options.subscribers,
        rate=options.rate,
        concurrency=options.concurrency,
        duration=options.duration,
        warmup=options.warmup,
    )
    binds: list[_Bind] = []
    try:
        for i in range(options.binds):
            binds.append(await _connect(runner, i))
    except LoadError:
        for bind in binds:
            await _unbind(bind)
        raise
    runner.binds = binds
    runner.live = list(binds)
    started = clock()
    runner.measure_from = started + options.warmup
    runner.measure_to = runner.measure_from + options.duration
    ticker = asyncio.create_task(_tick(runner, started))
    try:
        if options.rate is not None:
            await runner.open_model(started, runner.measure_to)
        else:
            await runner.closed_model(runner.measure_to)
        # Drain: steps already sent get their answer or their timeout, nothing new starts.
        runner.stopping = True
        runner.backlog.clear()
        if runner.in_flight > 0 and runner.live:
            runner.idle.clear()
            # A journey that started in the window runs to its end: its steps all count.
            drain = options.timeout * len(options.journey) + TICK * 4
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(runner.idle.wait(), drain)
        runner.expire(math.inf)  # whatever is still waiting is past its deadline
    finally:
        runner.stopping = True
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
        if progress is not None:
            progress.write("\n")
            progress.flush()
        await asyncio.gather(*(_unbind(b) for b in binds))
    report.elapsed = clock() - started
    report.steps = runner.steps
    report.journeys = runner.journeys
    report.offered = runner.offered
    report.errors = dict(runner.errors)
    if runner.lost:
        report.errors["bind_lost"] = runner.lost
    report.backlog_max = runner.backlog_max
    all_samples = array("d")
    for step, samples in zip(options.journey, runner.samples, strict=True):
        report.latency[step.label] = summarise(samples)
        all_samples.extend(samples)
    if len(options.journey) > 1:
        report.latency["all steps"] = summarise(all_samples)
    if options.rate is not None:
        report.send_lag = summarise(runner.lag)
    return report


async def _tick(runner: _Runner, started: float) -> None:
    """Timeouts every TICK; the progress line at most every PROGRESS_INTERVAL."""
    out = runner.progress
    last_print = 0.0
    last_steps = 0
    last_at = started
    while True:
        await asyncio.sleep(TICK)
        now = runner.now()
        runner.expire(now)
        if out is None or now - last_print < PROGRESS_INTERVAL:
            continue
        warm = now < runner.measure_from
        rate = (runner.steps - last_steps) / max(now - last_at, 1e-9)
        last_print, last_steps, last_at = now, runner.steps, now
        phase = "warm-up" if warm else "measuring" if not runner.stopping else "draining"
        out.write(
            f"\r{now - started:6.1f} s  {phase:<9}  steps {runner.steps:>9,}"
            f"  {rate:>8,.0f}/s  journeys {runner.journeys:>8,}"
            f"  in flight {runner.in_flight:>5}"
            f"  errors {sum(runner.errors.values()):>6,}\x1b[K"
        )
        out.flush()


def run(options: LoadOptions, progress: TextIO | None = None) -> Report:
    """run_load() in a fresh event loop."""
    return asyncio.run(run_load(options, progress))


def progress_stream(force: bool) -> TextIO | None:
    """stderr when it is a terminal or `--progress` asks for it (SPEC §9)."""
    return sys.stderr if force or sys.stderr.isatty() else None
