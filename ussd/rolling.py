"""Rolling figures for the operations console (docs/operations.md "Console"): sans-IO.

`Rolling.sample(now)` is called about once a second (the HTTP console arms the timer). Each
call reads cumulative counters — screens shown (steps), SMPP PDUs, every bind's own PDU
counts — and takes the latency tallies the transports keep, so the hot paths pay one integer
add per PDU and two clock reads per SMPP read or phones request, never a sample of their own.
The history is a ring of fixed length: memory does not grow with traffic or uptime.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["FIELDS", "HISTORY", "BindCounts", "Counters", "Rolling", "Sample", "Tally", "totals"]

HISTORY = 600  # samples kept: ten minutes at one a second


@dataclass(slots=True)
class Tally:
    """Latencies observed since the last `take()`: count, sum and peak (seconds)."""

    count: int = 0
    total: float = 0.0
    peak: float = 0.0

    def add(self, seconds: float) -> None:
        self.count += 1
        self.total += seconds
        if seconds > self.peak:
            self.peak = seconds

    def take(self) -> tuple[int, float, float]:
        """(count, mean, peak) since the last call, and start again."""
        count, total, peak = self.count, self.total, self.peak
        self.count, self.total, self.peak = 0, 0.0, 0.0
        return count, (total / count if count else 0.0), peak


@dataclass(frozen=True, slots=True)
class Counters:
    """The gateway's cumulative figures at one moment (GET /metrics has the same series)."""

    steps: float = 0.0  # screens shown: ussd_screens_total
    pdus: float = 0.0  # SMPP PDUs in and out: ussd_smpp_pdus_total
    dialogs: int = 0  # open now: ussd_dialogs_open
    app_seconds: float = 0.0  # outside applications' answer times: ussd_app_latency_seconds_sum
    app_answers: float = 0.0  # and how many: ussd_app_latency_seconds_count


@dataclass(frozen=True, slots=True)
class BindCounts:
    """One SMPP connection's cumulative PDU counts (SmppConnection.pdus_received/pdus_sent)."""

    key: int
    received: int
    sent: int


@dataclass(frozen=True, slots=True)
class Sample:
    """One interval's figures: rates per second, latencies in milliseconds."""

    at: float  # end of the interval (the sampler's clock, seconds)
    steps: float  # screens shown per second (a dial, a reply, a page)
    pdus: float  # SMPP PDUs in and out per second
    dialogs: int  # dialogs open at the end
    smpp_count: int  # SMPP reads handled in the interval
    smpp_mean_ms: float
    smpp_max_ms: float
    http_count: int  # phones API requests answered in the interval
    http_mean_ms: float
    http_max_ms: float
    app_count: int = 0  # outside applications' answers in the interval
    app_mean_ms: float = 0.0  # their mean time (the histogram keeps no peak)

    def to_json(self) -> list[Any]:
        """A compact row (the order of `FIELDS`): ten minutes are 600 of them."""
        return [
            round(self.at, 3),
            round(self.steps, 2),
            round(self.pdus, 2),
            self.dialogs,
            self.smpp_count,
            round(self.smpp_mean_ms, 3),
            round(self.smpp_max_ms, 3),
            self.http_count,
            round(self.http_mean_ms, 3),
            round(self.http_max_ms, 3),
            self.app_count,
            round(self.app_mean_ms, 3),
        ]


FIELDS = (
    "at",
    "steps",
    "pdus",
    "dialogs",
    "smpp_count",
    "smpp_mean_ms",
    "smpp_max_ms",
    "http_count",
    "http_mean_ms",
    "http_max_ms",
    "app_count",
    "app_mean_ms",
)


class Rolling:
    """The console's ring of samples and each bind's current PDU rate.

    `counters()` returns the gateway's cumulative `Counters`; `binds()` every open
    connection's counts; the tallies are taken at each sample. All are read, never pushed.
    """

    def __init__(
        self,
        counters: Callable[[], Counters],
        binds: Callable[[], Iterable[BindCounts]],
        smpp: Tally,
        http: Tally,
        *,
        history: int = HISTORY,
    ) -> None:
        self._counters = counters
        self._binds = binds
        self._smpp = smpp
        self._http = http
        self.samples: deque[Sample] = deque(maxlen=history)
        self._last: tuple[float, Counters] | None = None
        self._bind_last: dict[int, int] = {}
        self.bind_rates: dict[int, float] = {}  # key -> PDUs per second over the last interval

    def sample(self, now: float) -> Sample | None:
        """Close the interval ending at `now`; None for the first call (nothing to compare)."""
        got = self._counters()
        counts = {b.key: b.received + b.sent for b in self._binds()}
        last = self._last
        smpp = self._smpp.take()
        http = self._http.take()
        self._last = (now, got)
        if last is None or now <= last[0]:
            self._bind_last = counts
            return None
        span, before = now - last[0], last[1]
        answers = max(0.0, got.app_answers - before.app_answers)
        app_seconds = max(0.0, got.app_seconds - before.app_seconds)
        self.bind_rates = {
            key: max(0, total - self._bind_last.get(key, 0)) / span for key, total in counts.items()
        }
        self._bind_last = counts  # closed binds drop out here
        sample = Sample(
            at=now,
            steps=max(0.0, got.steps - before.steps) / span,
            pdus=max(0.0, got.pdus - before.pdus) / span,
            dialogs=got.dialogs,
            smpp_count=smpp[0],
            smpp_mean_ms=smpp[1] * 1000,
            smpp_max_ms=smpp[2] * 1000,
            http_count=http[0],
            http_mean_ms=http[1] * 1000,
            http_max_ms=http[2] * 1000,
            app_count=int(answers),
            app_mean_ms=app_seconds / answers * 1000 if answers else 0.0,
        )
        self.samples.append(sample)
        return sample

    def since(self, start: float) -> list[Sample]:
        """The samples that end after `start`, oldest first."""
        return [s for s in self.samples if s.at > start]

    def rate(self, key: int) -> float:
        """PDUs per second of one bind over the last interval (0 before the first)."""
        return self.bind_rates.get(key, 0.0)


def totals(registry: Any, names: Iterable[str]) -> dict[str, float]:
    """The sum over all label values of each sample name (e.g. `ussd_screens_total`) in a
    prometheus_client registry: one read of the registry, whatever collects each metric."""
    out = dict.fromkeys(names, 0.0)
    for family in registry.collect():
        for sample in family.samples:
            if sample.name in out:
                out[sample.name] += sample.value
    return out
