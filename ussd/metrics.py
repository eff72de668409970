"""The gateway's Prometheus metrics (`GET /metrics`, docs/phones.md): one registry per gateway.

`Gateway` owns one `Metrics` (`gateway.metrics`) and subscribes it to its engine: dialog and SMS
counters come from engine events. Transports report what only they see through the methods
below (`pdu_counts`, `bind_opened`, `http_request`, …); the HTTP transport renders the registry.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from ussd.events import (
    AppExchange,
    DialogEnded,
    DialogStarted,
    Event,
    FaultInjected,
    Outcome,
    ScreenShown,
    SmsQueued,
    SmsState,
    SmsStateChanged,
)
from ussd.faults import KINDS as FAULT_KINDS
from ussd.records import Cause
from ussd.smpp.constants import CommandId, CommandStatus

CONTENT_TYPE = CONTENT_TYPE_LATEST

# `*_created` series double the output and say nothing a scrape's own timestamps do not.
disable_created_metrics()  # type: ignore[no-untyped-call]

# Label values come from fixed sets: a peer choosing command_ids or command_status values must
# not choose how many series exist (each one is memory for good and lines in every scrape).
UNKNOWN = "unknown"
SMPP_COMMANDS: frozenset[str] = frozenset(c.name.lower() for c in CommandId) | {UNKNOWN}
SMPP_STATUSES: frozenset[str] = frozenset(s.name for s in CommandStatus) | {UNKNOWN}
_COMMANDS: dict[int, str] = {int(c): c.name.lower() for c in CommandId}
_STATUSES: dict[int, str] = {int(s): s.name for s in CommandStatus}


class Metrics:
    """Counters and gauges of one gateway, in a registry of its own (tests run many gateways)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # Engine-event counts are plain ints, turned into metric families at scrape time
        # (_EngineCounts): Counter.inc() takes a lock, and these are counted several times per
        # dialog step, on the engine's hot path (they were a fifth of an in-process step).
        self._started = 0
        self._ended: dict[Outcome, int] = dict.fromkeys(Outcome, 0)
        # The dialog records' end causes (docs/operations.md "Dialog records"): finer than the
        # outcome (unknown_code and not_supported are completed outcomes, for instance).
        self._causes: dict[str, int] = {c.value: 0 for c in Cause}
        self._screens = {"end": 0, "continue": 0}
        self._sms: dict[str, int] = dict.fromkeys(("queued", "delivered", "expired"), 0)
        # SMPP PDUs too: each SMPP server counts in a dict of its own (pdu_counts()), several
        # times per USSD step; the series ussd_smpp_pdus sums them when the registry is read.
        self._pdu_sources: list[dict[tuple[str, int, int], int]] = []
        self._pdu_named: dict[tuple[str, str], int] = {}  # smpp_pdu() by name
        self.smpp_binds = Gauge(
            "ussd_smpp_binds", "SMPP binds open now, by bind type", ["bind_type"], registry=r
        )
        self.smpp_connections_refused = Counter(
            "ussd_smpp_connections_refused",
            "SMPP connections closed at once, over smpp.max_connections",
            registry=r,
        )
        self.http_requests = Counter(
            "ussd_http_requests",
            "HTTP requests, by route and status",
            ["route", "status"],
            registry=r,
        )
        self.websockets = Gauge(
            "ussd_http_websockets", "Handset event WebSockets open now", registry=r
        )
        self.http_connections_refused = Counter(
            "ussd_http_connections_refused",
            "HTTP connections answered 503 and closed, over http.max_connections",
            registry=r,
        )
        # External applications (docs/apps.md): label values are configured app names and
        # ussd.apps.client.EXCHANGE_OUTCOMES, both fixed sets.
        self.app_requests = Counter(
            "ussd_app_requests",
            "Requests to external USSD applications, by app and outcome",
            ["app", "outcome"],
            registry=r,
        )
        self.app_latency = Histogram(
            "ussd_app_latency_seconds",
            "How long external USSD applications took to answer, by app",
            ["app"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0),
            registry=r,
        )
        # Injected network faults by kind (docs/network.md "Faults"): a fixed set of labels.
        self.faults = Counter(
            "ussd_faults_injected", "Injected network faults, by kind", ["kind"], registry=r
        )
        self._faults = {k: self.faults.labels(kind=k) for k in FAULT_KINDS}
        # (app, outcome) -> its counter and the app's histogram, resolved once (labels() costs).
        self._app_children: dict[tuple[str, str], tuple[Counter, Histogram]] = {}
        # Sessions started and not yet ended (one-shot dialogs pass through in one call).
        self._open: set[str] = set()
        r.register(_EngineCounts(self))  # last: registering collects it once (auto_describe)

    @property
    def screens_shown(self) -> int:
        """USSD screens shown so far, end and continue screens together."""
        return sum(self._screens.values())

    @property
    def open_dialogs(self) -> int:
        """USSD dialogs open now."""
        return len(self._open)

    # -- engine events -------------------------------------------------------------------

    def on_event(self, event: Event) -> None:
        """Engine subscriber: count dialogs and SMS (synchronous, never calls the engine)."""
        if isinstance(event, ScreenShown):
            self._screens["end" if event.screen.end else "continue"] += 1
        elif isinstance(event, DialogStarted):
            self._started += 1
            self._open.add(event.session)
        elif isinstance(event, DialogEnded):
            self._open.discard(event.session)
            self._ended[event.outcome] += 1
            record = event.record
            if record is not None and record.cause in self._causes:
                self._causes[record.cause] += 1
        elif isinstance(event, AppExchange):
            children = self._app_children.get((event.app, event.outcome))
            if children is None:
                children = self._app_children[event.app, event.outcome] = (
                    self.app_requests.labels(app=event.app, outcome=event.outcome),
                    self.app_latency.labels(app=event.app),
                )
            children[0].inc()
            if event.status is not None:  # an answer came: its latency is the app's
                children[1].observe(event.latency_ms / 1000.0)
        elif isinstance(event, FaultInjected):
            self._faults[event.kind].inc()
        elif isinstance(event, SmsQueued):
            self._sms["queued"] += 1
        elif isinstance(event, SmsStateChanged):
            if event.sms.state is SmsState.DELIVERED:
                self._sms["delivered"] += 1
            elif event.sms.state is SmsState.EXPIRED:
                self._sms["expired"] += 1

    # -- other transports ------------------------------------------------------------------

    def pdu_counts(self) -> dict[tuple[str, int, int], int]:
        """A dict an SMPP server counts its PDUs in, read at every scrape and kept for good.

        Keys are (direction "in"/"out", command_id, command_status) with -1 for a value outside
        SMPP 3.4 §5.1.2 / §5.1.3: the caller keeps the keys bounded, the series sum over
        directions and servers (one gateway may run its SMPP server more than once).
        """
        counts: dict[tuple[str, int, int], int] = {}
        self._pdu_sources.append(counts)
        return counts

    def smpp_pdu(self, command: str, status: str = "ESME_ROK") -> None:
        """Count one SMPP PDU, e.g. `smpp_pdu("submit_sm_resp", "ESME_RINVOPTPARVAL")`.

        Names outside SMPP 3.4 §5.1.2 / §5.1.3 (what command_name() and status_name() print
        as hex) are counted as `unknown`.
        """
        if command not in SMPP_COMMANDS:
            command = UNKNOWN
        if status not in SMPP_STATUSES:
            status = UNKNOWN
        key = (command, status)
        self._pdu_named[key] = self._pdu_named.get(key, 0) + 1

    def bind_opened(self, bind_type: str) -> None:
        """An ESME bound as transmitter, receiver or transceiver."""
        self.smpp_binds.labels(bind_type=bind_type).inc()

    def bind_closed(self, bind_type: str) -> None:
        """A bind of `bind_type` ended (unbind, connection lost)."""
        self.smpp_binds.labels(bind_type=bind_type).dec()

    def smpp_connection_refused(self) -> None:
        """A TCP connection to the SMPP port was closed at once (smpp.max_connections)."""
        self.smpp_connections_refused.inc()

    def http_request(self, route: str, status: int) -> None:
        """Count one HTTP request by its route pattern (not the raw path: bounded labels)."""
        self.http_requests.labels(route=route, status=str(status)).inc()

    def http_connection_refused(self) -> None:
        """A TCP connection to the HTTP port got 503 and was closed (http.max_connections)."""
        self.http_connections_refused.inc()

    def render(self) -> bytes:
        """The Prometheus text exposition of this registry."""
        return generate_latest(self.registry)


class _EngineCounts(Collector):
    """The plain-int counters of a Metrics (engine events, SMPP PDUs), as metric families when
    the registry is read."""

    def __init__(self, metrics: Metrics) -> None:
        self._m = metrics

    def collect(self) -> Iterator[Metric]:
        m = self._m
        started = CounterMetricFamily(
            "ussd_dialogs_started",
            "USSD dialogs started",  # one-shot answers (unknown code, SS) count too
        )
        started.add_metric([], m._started)
        yield started
        ended = CounterMetricFamily(
            "ussd_dialogs_ended", "USSD dialogs ended, by outcome", labels=["outcome"]
        )
        for outcome, n in m._ended.items():
            ended.add_metric([outcome.value], n)
        yield ended
        yield GaugeMetricFamily("ussd_dialogs_open", "USSD dialogs open now", value=len(m._open))
        causes = CounterMetricFamily(
            "ussd_dialog_records",
            "USSD dialogs ended, by the end cause of their record",
            labels=["cause"],
        )
        for cause, n in m._causes.items():
            causes.add_metric([cause], n)
        yield causes
        screens = CounterMetricFamily(
            "ussd_screens", "USSD screens shown, by kind", labels=["kind"]
        )
        for kind, n in m._screens.items():
            screens.add_metric([kind], n)
        yield screens
        sms = CounterMetricFamily(
            "ussd_sms", "Network SMS by event: queued, delivered, expired", labels=["event"]
        )
        for event, n in m._sms.items():
            sms.add_metric([event], n)
        yield sms
        pdus = dict(m._pdu_named)
        for source in m._pdu_sources:
            for (_, command_id, code), n in list(source.items()):
                key = (_COMMANDS.get(command_id, UNKNOWN), _STATUSES.get(code, UNKNOWN))
                pdus[key] = pdus.get(key, 0) + n
        family = CounterMetricFamily(
            "ussd_smpp_pdus",
            "SMPP PDUs handled, by command and command_status",
            labels=["command", "status"],
        )
        for (command, status), n in pdus.items():
            family.add_metric([command, status], n)
        yield family
