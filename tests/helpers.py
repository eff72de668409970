"""Test helpers shared across the test packages (SMPP ones live in tests/smpp/helpers.py)."""

from __future__ import annotations

import asyncio
import time


class ScaledClock:
    """A load-generator clock (sim.load.LoadClock) that runs `factor` times faster than real
    time: a schedule of seconds runs in a tenth of that, with the same slots and counts."""

    def __init__(self, factor: float) -> None:
        self.factor = factor

    def now(self) -> float:
        return time.perf_counter() * self.factor

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds / self.factor)
