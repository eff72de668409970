"""Outside answers a dialog waits for, as plain data (docs/design.md "Waiting for an answer").

A service step may need an answer the engine cannot compute: an external USSD application's
next screen over HTTP, a PDU from an application bind. The engine does no I/O, so it hands
out an `Effect` (what to ask, and until when) and is later resumed with an `Answer` or a
`Failure`; the runtime performs the effect with a performer registered for its `kind`. This is
how sans-IO clients (h11, aioquic) wait: the core says what it needs, the adapter does it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ussd.events import Outcome


@dataclass(frozen=True, slots=True)
class Effect:
    """A request for an outside answer, to be performed by the runtime before `deadline`."""

    id: str
    kind: str  # which performer runs it ("http" for apps over HTTP, "smpp" for app binds)
    msisdn: str
    session: str
    service_code: str
    request: Mapping[str, Any]  # what the performer sends; its shape belongs to the kind
    deadline: float  # clock time after which the engine stops waiting (Failure APP_TIMEOUT)


@dataclass(frozen=True, slots=True)
class Cancel:
    """Stop performing effect `id`: its dialog ended (`outcome`) or it timed out."""

    id: str
    msisdn: str
    session: str
    outcome: Outcome  # released, replaced, timeout, max_duration, shutdown or app_timeout


@dataclass(frozen=True, slots=True)
class Answer:
    """What the outside party answered."""

    value: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Failure:
    """No usable answer: `cause` is the dialog's end cause if the service gives up."""

    cause: Outcome  # Outcome.APP_TIMEOUT or Outcome.APP_ERROR
    reason: str  # for logs and the app console; never shown to the subscriber as is


Result = Answer | Failure
Notice = Effect | Cancel  # what Engine.next_effect() hands the runtime

Performer = Callable[[Effect], Awaitable[Result]]
"""Performs one effect (the runtime cancels it on a Cancel); raising counts as an app error."""


def no_performer(kind: str) -> Failure:
    """The answer to an effect nobody can perform."""
    return Failure(Outcome.APP_ERROR, f"no performer for effects of kind {kind!r}")
