"""How each USSD aggregator talks to its applications over HTTP (docs/apps.md "Dialects").

A dialect is pure: it turns one subscriber turn into an HTTP request (`request`), an HTTP
answer into the next screen (`answer`) and the end of a dialog into the notification the
provider sends, if it sends one (`end`). It does no I/O; the `http` performer sends what it
builds, the way h11 leaves the socket to its caller.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class AppTurn:
    """One request to an app: who, which dialog, and every input so far."""

    session: str
    msisdn: str  # international digits, no '+'
    service_code: str  # e.g. "*384#"
    dial: str  # the whole dial string of the first request, e.g. "*384*1*2#"
    inputs: tuple[str, ...]  # every subscriber input so far, direct-dial inputs first
    new: bool  # first request of the dialog
    sequence: int  # 1 on the first request
    client_state: str | None  # echoed back (Hubtel)
    network_code: str
    operator: str


@dataclass(frozen=True, slots=True)
class AppTarget:
    """Where an app lives and what goes with every request to it."""

    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    end_url: str | None = None  # Africa's Talking end-of-session notification
    network_code: str = "25001"  # MCC+MNC sent to the app


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """A request the `http` performer sends as is."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class AppAnswer:
    """The app's next screen: `end` means show it and close the dialog."""

    text: str
    end: bool
    client_state: str | None = None


class AppAnswerError(ValueError):
    """The app's answer is unusable (status, unparseable, empty, not CON/END); says why."""


@dataclass(frozen=True, slots=True)
class DialogEnd:
    """Told to the app when a dialog ends, in the dialects that tell it."""

    # "completed" (the app ended it) | "release" (the subscriber) | "timeout" | "error"
    cause: str
    duration_ms: int = 0
    last_answer: str = ""  # the app's last screen text
    hops: int = 0  # requests sent to the app in this dialog
    error: str = ""  # why, for cause "error" (Africa's Talking errorMessage)


class Dialect(Protocol):
    """One aggregator's wire format; pure functions of their arguments."""

    name: str

    def request(self, turn: AppTurn, app: AppTarget) -> HttpRequest:
        """The HTTP request for this turn."""
        ...

    def answer(self, status: int, content_type: str, body: bytes) -> AppAnswer:
        """The app's screen, or AppAnswerError saying why there is none."""
        ...

    def end(self, turn: AppTurn, app: AppTarget, end: DialogEnd) -> HttpRequest | None:
        """The end-of-dialog notification this dialect sends, if any."""
        ...


DIALECTS: Mapping[str, Dialect] = {}
