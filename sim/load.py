"""Load generator over SMPP (README.md `ussd-sim load`, §11 performance figures).

Drives a gateway (or any SMSC) through K transceiver binds with a scenario file's dial / reply /
release steps as the journey, over M distinct MSISDNs, in one of two models:

* open (`rate`): journeys start on a fixed schedule whatever the answers do; each step's
  latency counts from the time it *should* have been sent (its slot, or the arrival of the
  screen it answers), so a stalled gateway shows up as latency, not as fewer samples
  (no coordinated omission);
* closed (`concurrency`): N virtual users, each starting its next journey when one ends.

Each bind is the project's one ESME client (sim/esme.py: `SmppConnection` in client role),
so bind, unbind, enquire_link, sequence numbers and anything unexpected or malformed follow
its state machine (SMPP 3.4 §2.3). The generator must stay cheaper than what it measures, so
its own traffic takes a fast lane beside that: submit_sm pre-encoded once per (MSISDN, step)
with only the sequence number and the its_session_info octets patched in
(`patch_submit_sm`), submit_sm_resp and USSD deliver_sm read by header and fixed offsets
(`peek_deliver_sm`, SMPP 3.4 §4.4.2, §4.6.1), one `transport.write` per batch, no logging
per PDU. Both codec functions agree with the full codec (`encode_pdu`, `decode_pdu`) on
every PDU it accepts; tests/test_load.py checks that with generated PDUs.

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
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TextIO
from urllib.parse import unquote, urlsplit

from sim.esme import BindRefused, Esme, connect
from sim.scenario import Dial, Release, Reply, Scenario
from ussd.smpp.connection import (
    PduRejected,
)
from ussd.smpp.constants import CommandId, CommandStatus, Tag, UssdServiceOp, status_name
from ussd.smpp.pdu import (
    ItsSessionInfo,
    LocalProtocolError,
    Pdu,
    SubmitSm,
    Unbind,
    encode_pdu,
    encode_text,
    response_to,
    ussd_tlvs,
)
from ussd.smpp.ussd import MAX_ASSIGNED_SESSION, SEQUENCE_MODULO

Mode = Literal["ussd", "submit", "submit-ussd"]
MODES: tuple[Mode, ...] = ("ussd", "submit", "submit-ussd")

_HEADER = struct.Struct("!IIII")
_SEQ = struct.Struct("!I")
_TLV_HEAD = struct.Struct("!HH")
_SUBMIT_SM_RESP = int(CommandId.SUBMIT_SM_RESP)
_DELIVER_SM = int(CommandId.DELIVER_SM)
_DELIVER_SM_RESP = int(CommandId.DELIVER_SM_RESP)
_GENERIC_NACK = int(CommandId.GENERIC_NACK)
_STEP_ANSWERS = frozenset({_SUBMIT_SM_RESP, _GENERIC_NACK})
_OP_TAG = int(Tag.USSD_SERVICE_OP)
_SESSION_TAG = int(Tag.ITS_SESSION_INFO)
_USSR_REQUEST = int(UssdServiceOp.USSR_REQUEST)  # 2: continue, a reply is expected
_PSSR_RESPONSE = int(UssdServiceOp.PSSR_RESPONSE)  # 17: end of dialog
PROGRESS_INTERVAL = 0.25  # seconds between progress lines (at most 4 a second)
TICK = 0.05  # timeout checks and end-of-run checks
BIND_WAIT = 5.0  # seconds to connect and bind one transceiver
BACKLOG_LIMIT = 1_000_000  # open model: arrivals waiting for a free MSISDN before drops


class LoadClock(Protocol):
    """Where a run reads the time and waits: its schedule, latencies, timeouts and length.

    A parameter of run_load() so a test can run the same schedule on a faster clock.
    """

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class RealTime:
    """The monotonic high-resolution clock a measurement wants (a run lasts seconds)."""

    def now(self) -> float:
        return time.perf_counter()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


async def _wait(clock: LoadClock, event: asyncio.Event, seconds: float) -> None:
    """event.wait() for at most `seconds` of the clock's time."""
    if event.is_set():
        return
    waiter = asyncio.ensure_future(event.wait())
    timer = asyncio.ensure_future(clock.sleep(seconds))
    try:
        await asyncio.wait({waiter, timer}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        timer.cancel()


class LoadError(Exception):
    """The run cannot start or go on: unreachable target, bind refused, every bind lost."""


# -- options ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SmppAddress:
    """`smpp://system_id:password@host:port` (docs/scenarios.md `--target`)."""

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
    """The dial/reply/release steps of a scenario (docs/scenarios.md); other steps are not load."""
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
                f" (got {self.subscribers}): one dialog per MSISDN (docs/design.md)"
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
    """One MSISDN, and the journey it is on (at most one at a time: docs/design.md)."""

    __slots__ = (
        "bind",
        "digits",
        "gen",
        "journey_sched",
        "key",
        "peer",
        "sched",
        "seq",
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
        self.seq = 0  # sequence_number of the step in flight
        self.waiting = False  # a step is in flight


def ussd_octet2(step: int, end: bool) -> int:
    """its_session_info octet 2 of our submit_sm for journey step `step` (0: the dial).

    Every PDU of the dialog counts, both ways, from 0 (SMPP 3.4 §5.3.2.43), and one screen
    answers each step, so ours are 0, 2, 4 … modulo SEQUENCE_MODULO, shifted left past the
    end bit: the numbering of ussd/smpp/ussd.py's HarnessDialog (tests/test_load.py).
    """
    return ((2 * step) % SEQUENCE_MODULO) << 1 | end


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


def patch_submit_sm(template: bytearray, seq: int, session: int, octet2: int) -> bytes:
    """A pre-encoded submit_sm with its sequence_number (SMPP 3.4 §3.2) and, when octet2 >= 0,
    its_session_info (§5.3.2.43, the last TLV of every template) set: what encode_pdu()
    would give for the same PDU with those values (tests/test_load.py proves it)."""
    template[12:16] = _SEQ.pack(seq)
    if octet2 >= 0:
        template[-2] = session
        template[-1] = octet2
    return bytes(template)


def peek_deliver_sm(buf: bytes | bytearray, pos: int, end: int) -> tuple[bytes, int, int]:
    """(destination_addr, ussd_service_op or -1, its_session_info session or -1) of the
    deliver_sm at buf[pos:end], read at fixed offsets (SMPP 3.4 §4.6.1) without building a
    PDU; the first occurrence of a TLV counts, as in the typed accessors. ValueError or
    IndexError when malformed. Wherever decode_pdu() accepts the PDU the two agree
    (tests/test_load.py); the load generator hands anything else to the full decoder."""
    index = buf.index
    p = index(0, pos + 16, end) + 3  # service_type, source TON, NPI
    p = index(0, p, end) + 3  # source_addr, dest TON, NPI
    q = index(0, p, end)
    dest = bytes(buf[p:q])
    p = index(0, q + 4, end) + 1  # esm_class, protocol_id, priority_flag; schedule
    p = index(0, p, end) + 6  # validity; registered_delivery .. sm_default_msg_id, sm_length
    if p > end:
        raise ValueError("sm_length past the end")
    p += buf[p - 1]  # short_message
    if p > end:
        raise ValueError("short_message past the end")
    op = session = -1
    unpack = _TLV_HEAD.unpack_from
    while p + 4 <= end:
        tag, length = unpack(buf, p)
        p += 4
        if p + length > end:
            raise ValueError("TLV past the end")
        if tag == _OP_TAG and length == 1 and op < 0:
            op = buf[p]
        elif tag == _SESSION_TAG and length == 2 and session < 0:
            session = buf[p]
        p += length
    if p != end:
        raise ValueError("trailing octets after the TLVs")
    return dest, op, session


class _Bind(Esme):
    """One transceiver: the shared ESME client (sim/esme.py), plus a hand-framed fast lane
    for the run's own traffic: submit_sm from templates (patch_submit_sm), and its
    submit_sm_resp, generic_nack and USSD deliver_sm read by header and peek_deliver_sm.
    Everything else (bind, unbind, enquire_link, anything unexpected or malformed) goes
    through the connection's state machine (SMPP 3.4 §2.3)."""

    def __init__(self, runner: _Runner, index: int) -> None:
        # The connection's window and deadlines cover what goes through it (bind, unbind,
        # enquire_link); the fast lane's steps are paced and timed by the runner.
        super().__init__(response_timeout=runner.options.timeout, clock=runner.now)
        self.runner = runner
        self.index = index
        self.buf = bytearray()
        self.in_flight: dict[int, tuple[_Sub, int]] = {}  # submit_sm seq -> (subscriber, gen)
        self.active: dict[bytes, _Sub] = {}  # MSISDN -> subscriber waiting for a screen
        self.bound = False  # set once bind_transceiver_resp said ESME_ROK
        self.why: str | None = None  # the target unbound or broke the protocol

    # the fast lane

    def data_received(self, data: bytes) -> None:
        runner = self.runner
        buf = self.buf
        buf += data
        n = len(buf)
        pos = 0
        now = runner.now()
        out = self._out
        unpack = _HEADER.unpack_from
        in_flight = self.in_flight
        fast = self.bound  # stays set through the unbind: late answers still count
        while n - pos >= 16:
            length, cid, status, seq = unpack(buf, pos)
            if length < 16 or length > self.conn.max_pdu_size:
                self.receive(bytes(buf[pos:]))  # framing broken: the core says how
                pos = n
                break
            if n - pos < length:
                break
            end = pos + length
            entry = in_flight.pop(seq, None) if fast and cid in _STEP_ANSWERS else None
            if entry is not None:
                # submit_sm_resp, or generic_nack (SMPP 3.4 §4.3) for one of our steps.
                if cid == _GENERIC_NACK and not status:
                    status = CommandStatus.ESME_RINVCMDID
                runner.on_submit_resp(self, entry[0], entry[1], status, now)
            elif fast and cid == _DELIVER_SM:
                try:
                    dest, op, session = peek_deliver_sm(buf, pos, end)
                except (ValueError, IndexError):
                    self.receive(bytes(buf[pos:end]))
                else:
                    out.append(_HEADER.pack(17, _DELIVER_SM_RESP, 0, seq) + b"\x00")
                    if op >= 0:
                        sub = self.active.get(dest)
                        if sub is not None and (session < 0 or session == sub.session):
                            runner.on_screen(self, sub, op, now)
            else:
                self.receive(bytes(buf[pos:end]))
            pos = end
        if pos:
            del buf[:pos]
        self.transmit()

    def send_step(self, sub: _Sub, template: bytearray, session_octet2: int) -> None:
        """Queue one step's submit_sm; the runner's flush() transmits the batch."""
        seq = self.conn.allocate_sequence()
        sub.seq = seq
        self.in_flight[seq] = (sub, sub.gen)
        self._out.append(patch_submit_sm(template, seq, sub.session, session_octet2))

    def forget(self, sub: _Sub) -> None:
        """The step timed out: a late answer to it is ignored like any stray response."""
        self.in_flight.pop(sub.seq, None)

    # the client's hooks

    def request_received(self, pdu: Pdu) -> Pdu | None:
        if isinstance(pdu, Unbind):
            self.why = "the target unbound"
        return response_to(pdu)

    def request_rejected(self, event: PduRejected) -> None:
        self.runner.count_error(f"rejected:{status_name(event.status)}")

    def closed_with(self, reason: str) -> None:
        self.runner.on_disconnect(self)


# -- the run --------------------------------------------------------------------------------


class _Runner:
    """Schedules journeys over the binds, times the steps, counts errors."""

    def __init__(self, options: LoadOptions, progress: TextIO | None, clock: LoadClock) -> None:
        self.options = options
        self.progress = progress
        self.clock = clock
        self.now = clock.now
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
        sub.session = sub.session % MAX_ASSIGNED_SESSION + 1
        if sub.templates is None:
            sub.templates = _templates(sub, self.journey, self.mode)
        self._send(sub, bind, sched)
        return True

    def _send(self, sub: _Sub, bind: _Bind, sched: float) -> None:
        step = self.journey[sub.step]
        assert sub.templates is not None
        tpl = sub.templates[sub.step]
        # its_session_info octet 2 (SMPP 3.4 §5.3.2.43), numbered as the gateway numbers it:
        # every PDU of the dialog counts, one screen answers each step (ussd_octet2).
        octets = -1 if self.mode == "submit" else ussd_octet2(sub.step, step.kind == "release")
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
                sub.bind.forget(sub)
                self._fail(sub, sub.bind, "timeout", now)
        self.flush()

    def flush(self) -> None:
        if self.dirty:
            for bind in self.dirty:
                bind.transmit()
            self.dirty.clear()

    # the models

    async def open_model(self, start: float, end: float) -> None:
        """Journey arrivals at rate / steps-per-journey per second, on a fixed schedule."""
        assert self.options.rate is not None
        interval = self.n_steps / self.options.rate
        i = 0
        lag = self.lag
        loop_now = self.now
        while self.live:
            # Every slot before `end` is offered, late or not: a loop that wakes after `end`
            # still sends what was due (and its lag shows it), or a stall would shrink the
            # offered load instead of showing up as latency.
            now = loop_now()
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
            due = start + i * interval
            if due >= end:
                break
            await self.clock.sleep(max(0.0, due - loop_now()))

    async def closed_model(self, end: float) -> None:
        assert self.options.concurrency is not None
        now = self.now()
        for _ in range(self.options.concurrency):
            if not self.start_journey(now):
                break
        self.flush()
        await _wait(self.clock, self.all_lost, max(0.0, end - self.now()))


async def _connect(runner: _Runner, index: int) -> _Bind:
    options = runner.options
    host, port = options.target.host, options.target.port
    try:
        bind = await connect(lambda: _Bind(runner, index), host, port, BIND_WAIT)
    except (OSError, TimeoutError) as exc:
        raise LoadError(
            f"cannot connect to {host}:{port}: "
            f"{getattr(exc, 'strerror', None) or exc or 'timed out'}"
        ) from None
    try:
        await asyncio.wait_for(
            bind.bind(options.target.system_id, options.target.password, system_type="LOAD"),
            BIND_WAIT,
        )
    except BindRefused as exc:
        bind.disconnect()
        raise LoadError(f"bind_transceiver refused: {status_name(exc.status)}") from None
    except (ConnectionError, TimeoutError, LocalProtocolError) as exc:
        bind.disconnect()
        why = str(exc) or f"no valid bind_transceiver_resp within {BIND_WAIT:g} s"
        raise LoadError(f"bind_transceiver failed: {why}") from None
    bind.bound = True
    return bind


async def _unbind(bind: _Bind) -> None:
    await bind.unbind(1.0)


async def run_load(
    options: LoadOptions, progress: TextIO | None = None, *, clock: LoadClock | None = None
) -> Report:
    """One bounded run: connect and bind, warm up, measure, drain, unbind; the report.

    `clock` (default RealTime()) paces the schedule and times the steps; connecting and
    binding stay on the event loop's own time (BIND_WAIT).
    """
    clock = clock if clock is not None else RealTime()
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
    started = clock.now()
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
            await _wait(clock, runner.idle, drain)
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
    report.elapsed = clock.now() - started
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
        await runner.clock.sleep(TICK)
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
    """stderr when it is a terminal or `--progress` asks for it (README.md)."""
    return sys.stderr if force or sys.stderr.isatty() else None
