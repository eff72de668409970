"""A synchronous event bus shared by the engine and the SMS centre (SPEC §4 events)."""

from __future__ import annotations

from collections.abc import Callable

from ussd import log
from ussd.events import Event

Listener = Callable[[Event], None]
_log = log.get("bus")


class Bus:
    """Delivers every event in order to every listener; a failing listener is only logged."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Add a listener; returns a function that removes it."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def emit(self, event: Event) -> None:
        for listener in tuple(self._listeners):
            try:
                listener(event)
            except Exception:
                # One broken transport must not stop the others from hearing the event.
                _log.exception("listener_failed", event_type=type(event).__name__)
