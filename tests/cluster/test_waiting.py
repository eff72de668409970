"""A dialog waiting for an outside answer stays with the worker performing it (docs/cluster.md).

Two in-process workers share one Redis and one PostgreSQL database, as in test_dialogs.py; the
dialogs ask a test-only outside party (tests/test_effects.py's Lookup), answered by hand.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest

from tests.cluster.workers import Worker, joined, pair_of
from tests.conftest import make_config
from tests.test_effects import ROUTES, Lookup, NoResume
from ussd import cluster as cluster_mod
from ussd.clock import SimulatedClock
from ussd.effects import Answer, Effect
from ussd.engine import DialogBusy
from ussd.events import Outcome, Screen
from ussd.runtime import Gateway

RU = "79161234567"
NOW = 1_780_000_000.0


@contextlib.asynccontextmanager
async def worker(
    name: str, database: str, url: str, clock: SimulatedClock
) -> AsyncIterator[Worker]:
    config = make_config(ussd={"routes": ROUTES, "reply_timeout": "30s"})
    service = Lookup()
    gateway = Gateway.create(
        config,
        clock=clock,
        database=database,
        services={service.name: service, NoResume.name: NoResume()},
    )
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


async def test_a_reply_elsewhere_while_it_waits_is_refused_not_taken_from_the_last_screen(
    pair: tuple[Worker, Worker], clock: SimulatedClock
) -> None:
    one, two = pair
    first = one.gateway.engine.handle_dial(RU, "*555#")
    assert isinstance(first, Effect)
    menu = one.gateway.engine.resume(first.id, Answer({"text": "Menu"}), clock.now())
    assert isinstance(menu, Screen) and menu.text == "Menu #1"  # saved, not waiting
    second = one.gateway.engine.handle_reply(RU, "again")  # waits on w1 now
    assert isinstance(second, Effect)
    # Redis held "Menu #1" as the dialog's last state: taking it over from there would run
    # the reply twice. It is refused, and the dialog stays on w1.
    with pytest.raises(DialogBusy):
        two.gateway.engine.handle_reply(RU, "bye")
    assert two.gateway.engine.dialog(RU) is None and two.cluster.taken == 0
    done = one.gateway.engine.resume(second.id, Answer({"text": "Done", "end": True}), clock.now())
    assert isinstance(done, Screen) and done.end and done.text == "Done"
    assert [e.outcome for e in one.ended()] == [Outcome.COMPLETED]


async def test_once_answered_the_dialog_may_go_on_elsewhere(
    pair: tuple[Worker, Worker], clock: SimulatedClock
) -> None:
    one, two = pair
    first = one.gateway.engine.handle_dial(RU, "*555#")
    assert isinstance(first, Effect)
    with pytest.raises(DialogBusy):  # waiting from its first step on
        two.gateway.engine.handle_reply(RU, "too soon")
    one.gateway.engine.resume(first.id, Answer({"text": "Menu"}), clock.now())
    assert two.gateway.engine.reply(RU, "ok").text == "bye ok"  # saved as not waiting
    assert two.cluster.taken == 1


async def test_a_release_elsewhere_ends_it_on_the_worker_it_waits_on(
    pair: tuple[Worker, Worker],
) -> None:
    one, two = pair
    effect = one.gateway.engine.handle_dial(RU, "*555#")
    assert isinstance(effect, Effect)
    assert two.gateway.engine.release(RU) is True
    await one.until(lambda: bool(one.ended()))
    ended = one.ended()[0]
    assert (ended.session, ended.outcome) == (effect.session, Outcome.RELEASED)
    assert one.gateway.engine.dialog(RU) is None
    assert two.gateway.engine.release(RU) is False  # nothing left anywhere


async def test_a_waiting_state_left_by_a_killed_worker_is_expired_not_adopted(
    pair: tuple[Worker, Worker], clock: SimulatedClock
) -> None:
    one, two = pair
    effect = one.gateway.engine.handle_dial(RU, "*555#")
    assert isinstance(effect, Effect)
    # w1 restarts with the same id: the answer it waited for is gone with its memory.
    one.gateway.engine.dialogs.clear()
    with pytest.raises(DialogBusy):
        one.gateway.engine.handle_reply(RU, "1")
    assert one.gateway.engine.dialog(RU) is None  # not adopted: no timer would end it
    clock.advance(Lookup().timeout + cluster_mod.GRACE + 1)
    reaped = await one.cluster.reap()
    assert [(r.msisdn, r.session) for r in reaped] == [(RU, effect.session)]
    assert await two.cluster.reap() == []  # exactly one worker expires it
