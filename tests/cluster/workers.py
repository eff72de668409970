"""In-process cluster workers for the tests: a whole gateway each, on one PostgreSQL database
and one Redis, as `ussd-sim serve` workers are; what crosses between them goes through Redis only
(docs/cluster.md)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from ussd.clock import SimulatedClock
from ussd.cluster import Cluster
from ussd.events import DialogEnded, Event, Outcome
from ussd.runtime import Gateway

WAIT = 10.0  # seconds an event between workers may take before the test fails

# A worker named `name` on the PostgreSQL database and the Redis URL given, on `clock`.
MakeWorker = Callable[
    [str, str, str, SimulatedClock], contextlib.AbstractAsyncContextManager["Worker"]
]


@dataclass
class Worker:
    gateway: Gateway
    cluster: Cluster
    events: list[Event] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def until(self, check: Callable[[], bool]) -> None:
        """Wait (on events and inbox messages, never on time) until check() holds."""
        async with asyncio.timeout(WAIT):
            while not check():
                self.changed.clear()
                await self.changed.wait()

    def ended(self, outcome: Outcome | None = None) -> list[DialogEnded]:
        """The dialogs this worker saw end (with `outcome`, when given)."""
        return [
            e
            for e in self.events
            if isinstance(e, DialogEnded) and (outcome is None or e.outcome is outcome)
        ]


@contextlib.asynccontextmanager
async def joined(gateway: Gateway, url: str, name: str) -> AsyncIterator[Worker]:
    """`gateway` as cluster worker `name` on Redis `url`, its engine events and the messages
    other workers send it recorded; the gateway is closed on leaving."""
    cluster = Cluster(gateway.engine, url, worker=name)
    await cluster.start()
    w = Worker(gateway, cluster)

    def heard(event: Event) -> None:
        w.events.append(event)
        w.changed.set()

    gateway.engine.subscribe(heard)
    handle = cluster.handle

    def told(message: dict[str, str]) -> None:  # a message from another worker
        handle(message)
        w.changed.set()

    cluster.handle = told  # type: ignore[method-assign]
    try:
        yield w
    finally:
        gateway.engine.shutdown()
        await cluster.stop()
        gateway.close()


@contextlib.asynccontextmanager
async def pair_of(
    make: MakeWorker, database: str, url: str, clock: SimulatedClock
) -> AsyncIterator[tuple[Worker, Worker]]:
    """Workers w1 and w2 made by `make`, sharing the database, the Redis and the clock."""
    async with make("w1", database, url, clock) as one, make("w2", database, url, clock) as two:
        yield one, two
