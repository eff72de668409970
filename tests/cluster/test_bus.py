"""Routing between in-process workers, and what a Redis outage does to it (ussd/cluster_bus.py).

Each worker is a gateway with its Cluster and ClusterBus on one PostgreSQL database and one
Redis (of the test's own when it is killed and started again); its web-phone hub is a real Hub
with a subscription standing in for a socket, and an SMPP server's receiving bind is stood in
for by what the bus uses of one (Binds).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, cast

import pytest
import redis

from tests.conftest import make_config
from tests.services import Server
from ussd.clock import SimulatedClock
from ussd.cluster import Cluster
from ussd.cluster_bus import EVENTS, ClusterBus, decode, encode
from ussd.config import SmppAccount
from ussd.events import (
    DialogEnded,
    DialogStarted,
    Event,
    Outcome,
    Screen,
    ScreenShown,
    Sms,
    SmsQueued,
    SmsState,
    SmsStateChanged,
)
from ussd.http.phones import Hub, Subscription
from ussd.runtime import Gateway

if TYPE_CHECKING:
    from ussd.smpp.server import SmppServer

RU = "79161234567"
NOW = 1_780_000_000.0
ATTEMPTS = 100
HEARD = 0.1  # seconds one attempt waits for its echo before the next attempt


class Binds:
    """What ClusterBus uses of an SMPP server: it tells of a receiving bind, and is offered the
    events routed to its SMS centre (SmppServer.offer)."""

    def __init__(self) -> None:
        self.on_receiver: Callable[[int, SmppAccount | None], None] | None = None
        self.offered: list[Event] = []
        self.changed = asyncio.Event()

    def offer(self, event: Event) -> None:
        self.offered.append(event)
        self.changed.set()

    async def until_offered(self) -> list[Event]:
        async with asyncio.timeout(10):
            while not self.offered:
                self.changed.clear()
                await self.changed.wait()
        return self.offered


@contextlib.asynccontextmanager
async def worker(
    name: str, database: str, url: str, binds: Binds | None = None
) -> AsyncIterator[tuple[Gateway, ClusterBus]]:
    gateway = Gateway.create(make_config(), clock=SimulatedClock(NOW), database=database)
    cluster = Cluster(gateway.engine, url, worker=name)
    await cluster.start()
    smpp = cast("SmppServer | None", binds)
    bus = ClusterBus(cluster, Hub(asyncio.get_running_loop()), smpp)
    await bus.start()
    try:
        yield gateway, bus
    finally:
        await bus.stop()
        gateway.engine.shutdown()
        await cluster.stop()
        gateway.close()


async def _heard(gateway: Gateway, sub: Subscription) -> dict[str, Any]:
    """Dial on `gateway` until the subscription (on another worker) hears the first screen."""
    for _ in range(ATTEMPTS):
        shown = gateway.engine.dial(RU, "*111#")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(HEARD):
                while True:
                    message = await sub.queue.get()
                    assert message is not None
                    if message["type"] == "screen" and message["session"] == shown.session:
                        return message
    raise AssertionError("the other worker's socket never heard the dialog")


async def test_a_socket_hears_another_workers_dialog_and_a_redis_outage_is_survived(
    postgres_url: str, own_redis: Server, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"redis://127.0.0.1:{own_redis.port}/0"
    async with (
        worker("w1", postgres_url, url) as (_one, bus1),
        worker("w2", postgres_url, url) as (two, bus2),
    ):
        assert bus1.hub is not None
        sub = bus1.hub.add(RU)
        first = await _heard(two, sub)
        assert "Мой МТС" in first["text"]
        await bus2.flushed()
        assert bus2.sent >= 1 and bus1.received >= 1
        own_redis.stop(kill=True)
        # Steps go on without Redis, at once: what cannot be routed is counted, not waited for.
        async with asyncio.timeout(10):
            screen = two.engine.dial(RU, "*100#")
            assert screen.end
            await bus2.flushed()
        assert bus2.dropped >= 1 and bus2.errors >= 1
        own_redis.start_again()  # empty: every worker publishes its interests again
        again = await _heard(two, sub)
        assert again["type"] == "screen"
        bus1.hub.remove(sub)


async def test_the_end_of_a_dialog_moved_twice_reaches_the_harness_that_dialled_it_once(
    postgres_url: str, redis_url: str
) -> None:
    harness = Binds()  # on w1, which dials the dialog
    async with worker("w1", postgres_url, redis_url, harness) as (one, bus1):
        assert harness.on_receiver is not None
        harness.on_receiver(1, SmppAccount("harness", "secret"))  # a receiving bind opened
        await bus1.flushed()  # published: w2 and w3 read it as they join
        async with (
            worker("w2", postgres_url, redis_url, Binds()) as (two, bus2),
            worker("w3", postgres_url, redis_url, Binds()) as (three, bus3),
        ):
            shown = one.engine.dial(RU, "*111#")
            two.engine.reply(RU, "3")  # w2 takes it over from w1
            end = three.engine.reply(RU, "3")  # w3 takes it over from w2, and it ends there
            assert end.end and end.session == shown.session
            assert (bus2.cluster.taken, bus3.cluster.taken) == (1, 1)
            await bus3.flushed()
            offered = await harness.until_offered()
            ended = [e for e in offered if isinstance(e, DialogEnded)]
            assert [(e.session, e.outcome) for e in ended] == [(shown.session, Outcome.COMPLETED)]
            assert ended[0].screen is not None and ended[0].screen.text == end.text
            # Sent once: the stream to w1 holds its end once; nothing went to w2.
            client = redis.Redis.from_url(redis_url)
            try:
                to_one: Any = client.xrange(EVENTS + "w1")
                to_two = client.xlen(EVENTS + "w2")
            finally:
                client.close()
            routed = [decode(fields[b"data"].decode()) for _, fields in to_one]
            assert [e.session for e in routed if isinstance(e, DialogEnded)] == [shown.session]
            assert to_two == 0


ROUTED = [
    DialogStarted(RU, "s1", "push", "111"),
    ScreenShown(RU, Screen("s1", "Привет", False, 1, 2, "111", secret=True)),
    DialogEnded(RU, "s1", Outcome.TIMEOUT, Screen("s1", "bye", True)),
    DialogEnded(RU, "s1", Outcome.RELEASED, None),
    SmsQueued(RU, Sms(7, RU, "MTS", "текст", SmsState.QUEUED, NOW, NOW + 60)),
    SmsStateChanged(
        RU, Sms(8, RU, "79160000001", "mo", SmsState.DELIVERED, NOW, NOW + 60, NOW, "mo", False)
    ),
]


@pytest.mark.parametrize("event", ROUTED, ids=lambda e: type(e).__name__)
def test_what_is_routed_to_an_sms_centre_reads_back_as_it_was(event: Any) -> None:
    assert decode(encode(event)) == event


@pytest.mark.parametrize(
    "text",
    ['{"type": "unknown"}', "{}", "[1]", '"sms"', "not json", '{"type": "sms", "id": 1}'],
)
def test_a_bad_routed_event_is_an_error_not_an_event(text: str) -> None:
    with pytest.raises((ValueError, KeyError, TypeError)):
        decode(text)
