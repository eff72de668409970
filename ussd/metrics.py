"""The gateway's Prometheus metrics (`GET /metrics`, docs/phones.md): one registry per gateway.

`Gateway` owns one `Metrics` (`gateway.metrics`) and subscribes it to its engine: dialog and SMS
counters come from engine events. Transports report what only they see through the methods
below (`smpp_pdu`, `bind_opened`, `http_request`, …); the HTTP transport renders the registry.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ussd.events import (
    AppExchange,
    DialogEnded,
    DialogStarted,
    Event,
    Outcome,
    ScreenShown,
    SmsQueued,
    SmsState,
    SmsStateChanged,
)
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


class Metrics:
    """Counters and gauges of one gateway, in a registry of its own (tests run many gateways)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.dialogs_started = Counter(
            "ussd_dialogs_started", "USSD dialogs started", registry=r
        )  # one-shot answers (unknown code, SS) count too: the network did answer
        self.dialogs_ended = Counter(
            "ussd_dialogs_ended", "USSD dialogs ended, by outcome", ["outcome"], registry=r
        )
        self.dialogs_open = Gauge("ussd_dialogs_open", "USSD dialogs open now", registry=r)
        # The dialog records' end causes (docs/operations.md "Dialog records"): finer than the
        # outcome (unknown_code and not_supported are completed outcomes, for instance).
        self.dialog_causes = Counter(
            "ussd_dialog_records",
            "USSD dialogs ended, by the end cause of their record",
            ["cause"],
            registry=r,
        )
        self.screens = Counter("ussd_screens", "USSD screens shown, by kind", ["kind"], registry=r)
        self.sms = Counter(
            "ussd_sms", "Network SMS by event: queued, delivered, expired", ["event"], registry=r
        )
        self.smpp_pdus = Counter(
            "ussd_smpp_pdus",
            "SMPP PDUs handled, by command and command_status",
            ["command", "status"],
            registry=r,
        )
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
        # Sessions started and not yet ended (one-shot dialogs pass through in one call).
        self._open: set[str] = set()
        # Every label value exists from the start, so rate() sees the first increment. The
        # children are resolved once: labels() per event was ~6% of an SMPP step's time.
        self._ended = {o: self.dialogs_ended.labels(outcome=o.value) for o in Outcome}
        self._causes = {c.value: self.dialog_causes.labels(cause=c.value) for c in Cause}
        self._sms = {e: self.sms.labels(event=e) for e in ("queued", "delivered", "expired")}
        self._screen_end = self.screens.labels(kind="end")
        self._screen_continue = self.screens.labels(kind="continue")
        self._pdu_children: dict[tuple[str, str], Counter] = {}

    # -- engine events -------------------------------------------------------------------

    def on_event(self, event: Event) -> None:
        """Engine subscriber: count dialogs and SMS (synchronous, never calls the engine)."""
        if isinstance(event, ScreenShown):
            (self._screen_end if event.screen.end else self._screen_continue).inc()
        elif isinstance(event, DialogStarted):
            self.dialogs_started.inc()
            self._open.add(event.session)
            self.dialogs_open.set(len(self._open))
        elif isinstance(event, DialogEnded):
            self._open.discard(event.session)
            self.dialogs_open.set(len(self._open))
            self._ended[event.outcome].inc()
            if event.record is not None:
                child = self._causes.get(event.record.cause)
                if child is not None:
                    child.inc()
        elif isinstance(event, AppExchange):
            self.app_requests.labels(app=event.app, outcome=event.outcome).inc()
            if event.status is not None:  # an answer came: its latency is the app's
                self.app_latency.labels(app=event.app).observe(event.latency_ms / 1000.0)
        elif isinstance(event, SmsQueued):
            self._sms["queued"].inc()
        elif isinstance(event, SmsStateChanged):
            if event.sms.state is SmsState.DELIVERED:
                self._sms["delivered"].inc()
            elif event.sms.state is SmsState.EXPIRED:
                self._sms["expired"].inc()

    # -- other transports ------------------------------------------------------------------

    def smpp_pdu(self, command: str, status: str = "ESME_ROK") -> None:
        """Count one SMPP PDU, e.g. `smpp_pdu("submit_sm_resp", "ESME_RINVOPTPARVAL")`.

        Names outside SMPP 3.4 §5.1.2 / §5.1.3 (what command_name() and status_name() print
        as hex) are counted as `unknown`.
        """
        child = self._pdu_children.get((command, status))
        if child is None:
            if command not in SMPP_COMMANDS:
                command = UNKNOWN
            if status not in SMPP_STATUSES:
                status = UNKNOWN
            child = self._pdu_children.get((command, status))
            if child is None:
                child = self._pdu_children[command, status] = self.smpp_pdus.labels(
                    command=command, status=status
                )
        child.inc()

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
