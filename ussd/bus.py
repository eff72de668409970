"""The event queue shared by the engine and the SMS centre (docs/design.md, "Events").

Events are queued, and delivered to listeners only between core calls: the engine holds the
bus for the length of each public call and the queue is drained when the outermost call
finishes, as aioquic's adapter drains `next_event()` after each call into the connection. A
listener therefore never runs inside a half-done engine step and may call the engine back;
the events that call queues are delivered after the current ones, in order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from ussd import log
from ussd.events import Event

Listener = Callable[[Event], None]
_log = log.get("bus")


class Bus:
    """Delivers every event in order to every listener; a failing listener is only logged."""

    def __init__(self) -> None:
        # A tuple, replaced on (un)subscribe: a listener added or removed while an event is
        # delivered takes effect from the next event, and delivering copies nothing.
        self._listeners: tuple[Listener, ...] = ()
        self._queue: deque[Event] = deque()
        self._holds = 0
        self._draining = False

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Add a listener; returns a function that removes it."""
        self._listeners = (*self._listeners, listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                listeners = list(self._listeners)
                listeners.remove(listener)
                self._listeners = tuple(listeners)

        return unsubscribe

    def emit(self, event: Event) -> None:
        """Queue an event; it is delivered at once unless a core call holds the bus."""
        self._queue.append(event)
        if not self._holds:
            self.drain()

    def hold(self) -> Bus:
        """`with bus.hold():` queues events until the outermost hold ends, then delivers them."""
        return self

    # A plain context manager, not @contextmanager: it wraps every engine call.
    def __enter__(self) -> None:
        self._holds += 1

    def __exit__(self, *exc: object) -> None:
        # Delivered even when the call raised: what happened before the error did happen.
        self._holds -= 1
        if not self._holds and self._queue:
            self.drain()

    def drain(self) -> None:
        """Deliver what is queued; a drain already running (a listener's call) delivers it."""
        if self._draining:
            return
        self._draining = True
        try:
            while self._queue:
                event = self._queue.popleft()
                for listener in self._listeners:
                    try:
                        listener(event)
                    except Exception:
                        # One broken transport must not stop the others from hearing the event.
                        _log.exception("listener_failed", event_type=type(event).__name__)
        finally:
            self._draining = False
