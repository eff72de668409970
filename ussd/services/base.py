"""What a service is: plain steps in, plain steps out; no transport in sight."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ussd.config import Config
from ussd.effects import Result
from ussd.events import Outcome
from ussd.menus import Texts
from ussd.slots import fast_init
from ussd.store import Store, Subscriber


@fast_init
@dataclass(frozen=True, slots=True)
class Continue:
    """Show a screen and wait for a reply (USSR request); resume at `screen` with `values`."""

    screen: str
    text: str = ""
    # (header, option lines, footer) for menus: paginated without splitting an option.
    menu: tuple[str, Sequence[str], str | None] | None = None
    values: Mapping[str, Any] = field(default_factory=dict)
    # The reply is a secret (a password): it is masked on handsets and never recorded.
    secret: bool = False
    # A USSN notice (SMPP 3.4 §5.3.2.44 op 3): the reply only acknowledges it.
    notice: bool = False


@fast_init
@dataclass(frozen=True, slots=True)
class End:
    """Show a final screen (PSSR response); the dialog ends."""

    text: str
    # Why it ends: completed, or app_timeout / app_error when an outside answer failed.
    outcome: Outcome = Outcome.COMPLETED
    # The record's cause when a completed end is one of its kind (ussd.records.Cause, e.g.
    # "not_supported" for a code the network does not support).
    cause: str = ""


@dataclass(frozen=True, slots=True)
class Handoff:
    """Pass the dialog to another service (a menu action starting `password.set`)."""

    service: str
    args: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Await:
    """Wait for an outside answer (ussd/effects.py); the dialog resumes at `screen` with it.

    The engine hands the runtime an Effect(kind, request) and calls the service's `resume`
    with the Answer, or a Failure when it fails or `timeout` seconds pass. The user's screen
    does not change meanwhile, and the reply timer waits too: the user is not being asked.
    """

    kind: str
    request: Mapping[str, Any]
    timeout: float
    screen: str
    values: Mapping[str, Any] = field(default_factory=dict)


Step = Continue | End | Handoff | Await


@dataclass(slots=True)
class Context:
    """What a service may use for one step: the subscriber, the store, SMS, texts, time."""

    msisdn: str
    subscriber: Subscriber
    now: float
    store: Store
    texts: Texts
    config: Config
    send_sms: Callable[[str, str], object]

    @property
    def language(self) -> str:
        return self.subscriber.language

    def t(self, key: str, **fields: Any) -> str:
        """A text from menus/texts.yaml in the subscriber's language."""
        return self.texts.get(key, self.language, **fields)

    def refresh(self) -> Subscriber:
        """Re-read the subscriber after a change."""
        sub = self.store.subscriber(self.msisdn)
        assert sub is not None
        self.subscriber = sub
        return sub


class Service(Protocol):
    """A dialog program. State between steps is the plain `values` mapping (docs/design.md)."""

    @property
    def name(self) -> str: ...

    @property
    def texts_used(self) -> Sequence[str]: ...

    def start(self, ctx: Context, args: Mapping[str, str]) -> Step: ...

    def reply(self, ctx: Context, screen: str, values: Mapping[str, Any], text: str) -> Step: ...


@runtime_checkable
class Resumable(Service, Protocol):
    """A service whose steps may Await: it is resumed with the outside answer."""

    def resume(
        self, ctx: Context, screen: str, values: Mapping[str, Any], result: Result
    ) -> Step: ...


def money(amount: float) -> str:
    """`120.5` → `120.50` (balances are shown with kopecks)."""
    return f"{amount:.2f}"


def subscriber_fields(sub: Subscriber, texts: Texts) -> dict[str, Any]:
    """The {field} values menus may use (ussd.menus.SUBSCRIBER_FIELDS)."""
    # Newest first, whatever order the seed or the admin API listed them in (ISO dates sort
    # as text; the sort is stable, so same-day payments keep their listed order).
    payments = sorted(sub.payments, key=lambda p: str(p.get("date", "")), reverse=True)[:3]
    lines = [f"{p.get('date', '')}: +{money(float(p.get('amount', 0)))}" for p in payments]
    return {
        "msisdn": sub.msisdn,
        "balance": money(sub.balance),
        "package_minutes": sub.package_minutes,
        "package_sms": sub.package_sms,
        "package_mb": sub.package_mb,
        "bonus_points": sub.bonus_points,
        "payments": "\n".join(lines) if lines else "-",
        "language": sub.language,
    }
