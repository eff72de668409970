"""Time as an object (docs/design.md): the only place in ussd/ that reads the wall clock."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable


class Clock(ABC):
    """Seconds since the epoch; `simulated` clocks move only when advanced."""

    simulated: bool = False

    @abstractmethod
    def now(self) -> float:
        """Seconds since the epoch, as this clock sees them."""

    def on_change(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` whenever time jumps (simulated clocks); returns an unsubscribe."""
        return lambda: None


class RealClock(Clock):
    """The wall clock."""

    def now(self) -> float:
        return time.time()


class SimulatedClock(Clock):
    """A clock that moves only by `advance` (admin API, scenarios, tests)."""

    simulated = True

    def __init__(self, start: float = 1_780_000_000.0) -> None:
        self._now = start
        self._listeners: list[Callable[[], None]] = []

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        """Move time forward by `seconds` (≥ 0) and wake whoever waits on it."""
        if seconds < 0:
            raise ValueError("a simulated clock only moves forward")
        self._now += seconds
        for callback in list(self._listeners):
            callback()
        return self._now

    def on_change(self, callback: Callable[[], None]) -> Callable[[], None]:
        self._listeners.append(callback)

        def unsubscribe() -> None:
            if callback in self._listeners:
                self._listeners.remove(callback)

        return unsubscribe


def make(mode: str) -> Clock:
    """A clock for the `clock.mode` config value."""
    return SimulatedClock() if mode == "simulated" else RealClock()
