"""What the engine tells transports: screens, dialog ends, SMS. Plain frozen data."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any, NamedTuple

from ussd.slots import fast_init


class Outcome(StrEnum):
    """Why a dialog ended."""

    COMPLETED = "completed"  # the service sent its final screen
    RELEASED = "released"  # the user (handset or harness) released it
    TIMEOUT = "timeout"  # no reply within ussd.reply_timeout
    MAX_DURATION = "max_duration"  # open longer than ussd.dialog_timeout
    REPLACED = "replaced"  # a new dial on the same MSISDN released it (TS 24.090)
    ERROR = "error"  # a service failed; the user saw an error screen
    SHUTDOWN = "shutdown"  # the gateway stopped
    APP_TIMEOUT = "app_timeout"  # an outside application did not answer in time
    APP_ERROR = "app_error"  # an outside application's answer was unusable, or none could be asked
    APP_RELEASE = "app_release"  # an outside application ended the dialog (END, Release, op 17)
    APP_UNAVAILABLE = "app_unavailable"  # the route's application is not bound or not reachable
    NETWORK_FAULT = "network_fault"  # an injected network fault ended it (docs/network.md)


class SmsState(StrEnum):
    """Life of a network SMS in the SMS centre (docs/smpp.md reply path)."""

    QUEUED = "queued"
    DELIVERED = "delivered"
    EXPIRED = "expired"


@fast_init
@dataclass(frozen=True, slots=True)
class Screen:
    """One USSD screen as the user sees it (docs/phones.md wire shape plus the service code)."""

    session: str
    text: str
    end: bool
    page: int = 1
    pages: int = 1
    service_code: str = ""  # the dialled code, e.g. "111" (SMPP source_addr, docs/smpp.md)
    secret: bool = False  # the screen asks for a password: handsets mask it, recordings omit it
    # A USSN notice (network-initiated, docs/smpp.md): the handset only acknowledges it.
    notice: bool = False

    def to_json(self) -> dict[str, Any]:
        """The phones API JSON shape: session, text, end, page, pages (and `secret` when set)."""
        data: dict[str, Any] = {
            "session": self.session,
            "text": self.text,
            "end": self.end,
            "page": self.page,
            "pages": self.pages,
        }
        if self.secret:
            data["secret"] = True
        if self.notice:
            data["notice"] = True
        return data


@dataclass(frozen=True, slots=True)
class Sms:
    """A network or MO SMS held in a recipient's inbox."""

    id: int
    recipient: str
    sender: str
    text: str
    state: SmsState
    created: float
    expires: float
    delivered: float | None = None
    kind: str = "network"  # network | mo | receipt
    sender_is_alpha: bool = True  # alphanumeric sender id (TON 5) vs an MSISDN

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["state"] = self.state.value
        return data


@fast_init
@dataclass(frozen=True, slots=True)
class DialogStarted:
    """A dialog opened for msisdn (the first screen follows as ScreenShown)."""

    msisdn: str
    session: str
    service: str
    service_code: str


@fast_init
@dataclass(frozen=True, slots=True)
class ScreenShown:
    """A screen was produced for msisdn (start, reply, next page)."""

    msisdn: str
    screen: Screen


class DialogRecord(NamedTuple):
    """What is kept of an ended dialog (docs/operations.md "Dialog records"), like a CDR.

    A NamedTuple rather than a frozen dataclass: one is built at every dialog end, on the path
    of every USSD step, for a fifth of the cost, and it is the row the store inserts as is.
    """

    session: str
    msisdn: str
    code: str  # the dialled service code, e.g. "111"
    route: str  # the route's target ("balance", "menu:main", "app:shop"); "" when none matched
    via: str  # how the dialog reached the gateway: web, terminal, smpp, scenario, load, api, push
    started: float  # clock time (epoch seconds)
    ended: float
    steps: int  # requests from the subscriber's side: the dial and every reply
    cause: str  # one of ussd.records.Cause
    detail: str = ""  # what else explains the end (a fault rule, an application's error)


@fast_init
@dataclass(frozen=True, slots=True)
class DialogEnded:
    """A dialog ended; `screen` is the last thing the user was told, if anything."""

    msisdn: str
    session: str
    outcome: Outcome
    screen: Screen | None = None
    record: DialogRecord | None = None  # set by the engine for every dialog it ends


@dataclass(frozen=True, slots=True)
class SmsQueued:
    """A network SMS was persisted in msisdn's inbox and waits for delivery."""

    msisdn: str
    sms: Sms


@dataclass(frozen=True, slots=True)
class SmsStateChanged:
    """An SMS was delivered or expired."""

    msisdn: str
    sms: Sms


@dataclass(frozen=True, slots=True)
class AppExchange:
    """One request to an external USSD application and what came of it (docs/apps.md).

    `request` and `answer` are the wire text, shortened; headers are left out (they carry API
    keys). `status` is None when no HTTP answer came. `outcome` is one of
    ussd.apps.client.EXCHANGE_OUTCOMES.
    """

    msisdn: str
    session: str
    app: str
    dialect: str
    url: str
    request: str
    status: int | None
    answer: str
    latency_ms: float
    outcome: str


@dataclass(frozen=True, slots=True)
class FaultInjected:
    """An injected network fault fired (ussd/faults.py, docs/network.md "Faults").

    `msisdn` is the subscriber it hit ("" for an SMPP fault with no number); `at` is where:
    dial, reply, sms, app or submit_sm.
    """

    msisdn: str
    kind: str
    rule: str
    at: str
    session: str = ""


Event = (
    DialogStarted
    | ScreenShown
    | DialogEnded
    | SmsQueued
    | SmsStateChanged
    | AppExchange
    | FaultInjected
)
