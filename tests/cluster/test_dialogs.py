"""Dialogs shared by workers through a real Redis (ussd/cluster.py, docs/cluster.md).

Each worker here is a whole gateway in this process, on one PostgreSQL database and one Redis,
as `ussd-sim serve` workers are; what crosses between them goes through Redis only.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
import redis

from tests.cluster.workers import WAIT, Worker, joined, pair_of
from tests.conftest import make_config
from tests.services import Server
from ussd import cluster as cluster_mod
from ussd.clock import SimulatedClock
from ussd.cluster import DEADLINES, DIALOG, WORKER
from ussd.engine import NoDialog
from ussd.events import Outcome
from ussd.runtime import Gateway

RU = "79161234567"
NOW = 1_780_000_000.0


@contextlib.asynccontextmanager
async def worker(
    name: str, database: str, url: str, clock: SimulatedClock
) -> AsyncIterator[Worker]:
    gateway = Gateway.create(make_config(), clock=clock, database=database)
    async with joined(gateway, url, name) as w:
        yield w


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(NOW)


@pytest.fixture
async def pair(
    postgres_url: str, redis_url: str, clock: SimulatedClock
) -> AsyncIterator[tuple[Worker, Worker]]:
    async with pair_of(worker, postgres_url, redis_url, clock) as both:
        yield both


def _registered(url: str, msisdn: str) -> dict[str, str]:
    client = redis.Redis.from_url(url)
    try:
        raw = client.hgetall(DIALOG + msisdn)
    finally:
        client.close()
    return {k.decode(): v.decode() for k, v in raw.items()}  # type: ignore[union-attr]


async def test_a_dial_on_another_worker_replaces_the_dialog(
    pair: tuple[Worker, Worker], redis_url: str
) -> None:
    one, two = pair
    first = one.gateway.engine.dial(RU, "*111#")
    second = two.gateway.engine.dial(RU, "*111#")
    # Worker 1 hears through its inbox that its dialog was replaced, and ends it.
    await one.until(lambda: bool(one.ended(Outcome.REPLACED)))
    assert [e.session for e in one.ended(Outcome.REPLACED)] == [first.session]
    assert one.gateway.engine.dialog(RU) is None
    assert two.gateway.engine.dialog(RU).session == second.session  # type: ignore[union-attr]
    assert _registered(redis_url, RU)["worker"] == "w2"
    assert one.cluster.lost == 1


async def test_dials_alternating_between_workers_leave_one_dialog(
    pair: tuple[Worker, Worker], redis_url: str
) -> None:
    one, two = pair
    for i in range(20):
        (one if i % 2 else two).gateway.engine.dial(RU, "*111#")
    holder = _registered(redis_url, RU)
    winner, loser = (one, two) if holder["worker"] == "w1" else (two, one)
    await loser.until(lambda: loser.gateway.engine.dialog(RU) is None)
    assert winner.gateway.engine.dialog(RU).session == holder["session"]  # type: ignore[union-attr]


async def test_a_reply_on_another_worker_continues_the_dialog(
    pair: tuple[Worker, Worker], redis_url: str, clock: SimulatedClock
) -> None:
    one, two = pair
    # The same steps in the embedded gateway: what the two workers must answer between them.
    alone = Gateway.create(make_config(), clock=SimulatedClock(NOW))
    steps = ["3", "0", "3"]  # numbers management, back, and there again
    expected = [alone.engine.dial(RU, "*111#").text]
    expected += [alone.engine.reply(RU, text).text for text in steps]
    alone.close()

    shown = [one.gateway.engine.dial(RU, "*111#").text]
    for text, here in zip(steps, [two, one, two], strict=True):
        shown.append(here.gateway.engine.reply(RU, text).text)  # any worker answers
    assert shown == expected
    await one.until(lambda: one.gateway.engine.dialog(RU) is None)  # moved, not ended
    assert one.ended(Outcome.REPLACED) == [] and two.ended(Outcome.REPLACED) == []
    assert (one.cluster.taken, two.cluster.taken) == (1, 2)
    assert _registered(redis_url, RU)["worker"] == "w2"


async def test_a_release_on_another_worker_ends_the_dialog(
    pair: tuple[Worker, Worker], redis_url: str
) -> None:
    one, two = pair
    one.gateway.engine.dial(RU, "*111#")
    assert two.gateway.engine.release(RU) is True
    assert _registered(redis_url, RU) == {}
    with pytest.raises(NoDialog):
        two.gateway.engine.reply(RU, "1")


async def test_a_dead_workers_dialogs_are_expired_by_exactly_one_worker(
    postgres_url: str, redis_url: str, clock: SimulatedClock
) -> None:
    async with (
        worker("w1", postgres_url, redis_url, clock) as one,
        worker("w2", postgres_url, redis_url, clock) as two,
        worker("w3", postgres_url, redis_url, clock) as three,
    ):
        numbers = [f"7916000{i:04d}" for i in range(10)]
        for number in numbers:
            one.gateway.engine.dial(number, "*111#")
        # Worker 1 dies: it stops beating and never releases anything.
        for task in one.cluster._tasks:
            task.cancel()
        await asyncio.gather(*one.cluster._tasks, return_exceptions=True)  # no beat in flight
        one.cluster._tasks = []
        client = redis.Redis.from_url(redis_url)
        client.delete(WORKER + "w1")
        one.gateway.engine.dialogs.clear()
        clock.advance(make_config().ussd.reply_timeout + cluster_mod.GRACE + 1)
        await asyncio.gather(two.cluster.reap(), three.cluster.reap())
        # Their heartbeats reap too, and a beat's pass may still be finishing: wait for every
        # end, then check that between them each dialog was expired once.
        async with asyncio.timeout(WAIT):
            while True:
                two.changed.clear()
                three.changed.clear()
                if len(two.ended(Outcome.TIMEOUT) + three.ended(Outcome.TIMEOUT)) >= len(numbers):
                    break
                waits = [asyncio.ensure_future(w.changed.wait()) for w in (two, three)]
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                for waiting in waits:
                    waiting.cancel()
        reaped = two.cluster.reaped + three.cluster.reaped
        assert sorted(r.msisdn for r in reaped) == numbers
        timeouts = two.ended(Outcome.TIMEOUT) + three.ended(Outcome.TIMEOUT)
        assert sorted(e.msisdn for e in timeouts) == numbers  # each end recorded once
        assert client.zcard(DEADLINES) == 0
        client.close()


async def test_a_live_workers_dialogs_are_left_to_it(
    pair: tuple[Worker, Worker], clock: SimulatedClock
) -> None:
    one, two = pair
    one.gateway.engine.dial(RU, "*111#")
    clock.advance(make_config().ussd.reply_timeout + cluster_mod.GRACE + 1)
    assert await two.cluster.reap() == []  # w1 still beats: it expires its own


async def test_redis_going_away_is_an_error_not_a_hang(
    postgres_url: str, own_redis: Server, clock: SimulatedClock
) -> None:
    url = f"redis://127.0.0.1:{own_redis.port}/0"
    async with worker("w1", postgres_url, url, clock) as one:
        own_redis.stop(kill=True)
        # The worker keeps serving its own dialogs; what it cannot register is counted.
        screen = one.gateway.engine.dial(RU, "*111#")
        assert not screen.end
        assert one.cluster.errors >= 1
        with pytest.raises(NoDialog):  # a take-over finds nothing rather than waiting
            one.gateway.engine.reply("79160000001", "1")
        own_redis.start_again()
        one.gateway.engine.dial(RU, "*111#")
        assert _registered(url, RU)["worker"] == "w1"
