"""One round trip to Redis per SMPP read (Cluster.batch, docs/cluster.md "Performance").

Inside a batch the claims, saves and releases of the steps wait and go together when it ends,
or with a take before them; what Redis holds afterwards, and what each worker does, is what
the steps one by one would have left. Workers are whole gateways in this process on a real
Redis and PostgreSQL, as in test_dialogs.py.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
import redis

from tests.cluster.test_dialogs import NOW, RU, _registered, worker
from tests.cluster.workers import Worker
from tests.conftest import make_config
from ussd.clock import SimulatedClock
from ussd.events import Outcome
from ussd.runtime import Gateway

EN = "79161234568"


@pytest.fixture
async def pair(postgres_url: str, redis_url: str) -> AsyncIterator[tuple[Worker, Worker]]:
    clock = SimulatedClock(NOW)
    async with (
        worker("w1", postgres_url, redis_url, clock) as one,
        worker("w2", postgres_url, redis_url, clock) as two,
    ):
        yield one, two


def _state(url: str, msisdn: str) -> dict[str, object]:
    held = _registered(url, msisdn)
    assert held.get("state"), f"no saved state for {msisdn}: {held}"
    state: dict[str, object] = json.loads(held["state"])
    return state


async def test_a_batchs_claims_and_saves_reach_redis_when_it_ends(
    pair: tuple[Worker, Worker], redis_url: str
) -> None:
    one, _ = pair
    with one.cluster.batch():
        ru = one.gateway.engine.dial(RU, "*111#")
        en = one.gateway.engine.dial(EN, "*111#")
        # Nothing is answered yet, so nothing needs to be in Redis yet.
        assert _registered(redis_url, RU) == {} and _registered(redis_url, EN) == {}
    for msisdn, screen in ((RU, ru), (EN, en)):
        held = _registered(redis_url, msisdn)
        assert (held["worker"], held["session"]) == ("w1", screen.session)
        assert _state(redis_url, msisdn)["screen"] == "main"
    assert one.cluster.errors == 0


async def test_a_take_in_a_batch_carries_the_steps_before_it(
    pair: tuple[Worker, Worker], redis_url: str
) -> None:
    one, two = pair
    alone = Gateway.create(make_config(), clock=SimulatedClock(NOW))
    expected = [alone.engine.dial(RU, "*111#").text]
    expected += [alone.engine.reply(RU, text).text for text in ("3", "0")]
    alone.close()

    with one.cluster.batch():
        # The reply's take finds the claim and the save queued before it (else: no dialog).
        shown = [one.gateway.engine.dial(RU, "*111#").text, one.gateway.engine.reply(RU, "3").text]
    assert _state(redis_url, RU)["screen"] == "numbers"  # the last step's state
    shown.append(two.gateway.engine.reply(RU, "0").text)  # another worker goes on from there
    assert shown == expected
    assert two.cluster.taken == 1


async def test_a_dialog_replaced_during_a_batch_ends_as_the_batch_ends(
    pair: tuple[Worker, Worker], redis_url: str
) -> None:
    one, two = pair
    first = one.gateway.engine.dial(RU, "*111#")
    with one.cluster.batch():
        one.gateway.engine.reply(RU, "3")  # its save waits for the end of the batch
        second = two.gateway.engine.dial(RU, "*111#")  # meanwhile a dial on worker 2
        assert one.gateway.engine.dialog(RU) is not None
    # The save found the dialog replaced: this copy ends at once (not when the inbox says so),
    # and its release leaves worker 2's dialog registered.
    assert [e.session for e in one.ended(Outcome.REPLACED)] == [first.session]
    assert one.gateway.engine.dialog(RU) is None
    held = _registered(redis_url, RU)
    assert (held["worker"], held["session"]) == ("w2", second.session)
    assert _state(redis_url, RU)["screen"] == "main"


async def test_a_batch_lands_in_order_after_redis_forgot_its_scripts(
    pair: tuple[Worker, Worker], redis_url: str
) -> None:
    one, two = pair
    one.gateway.engine.dial(EN, "*111#")
    client = redis.Redis.from_url(redis_url)
    try:
        client.script_flush()
    finally:
        client.close()
    with one.cluster.batch():
        one.gateway.engine.dial(RU, "*111#")
        one.gateway.engine.reply(RU, "3")
        one.gateway.engine.reply(EN, "1")  # Balance: the dialog ends, its release is queued
    assert _state(redis_url, RU)["screen"] == "numbers"
    assert _registered(redis_url, EN) == {}
    assert one.cluster.errors == 0
    assert two.gateway.engine.reply(RU, "0").text.startswith(("Мой МТС", "My MTS"))


class _Counted:
    """The worker's steps script, counting its calls (round trips) and operations."""

    def __init__(self, scripts: Any) -> None:
        self.scripts = scripts
        self.calls: list[list[bytes]] = []

    def __call__(self, ops: Any) -> Any:
        self.calls.append([op for op, _, _ in ops])
        return self.scripts(ops)

    def close(self) -> None:
        self.scripts.close()


async def test_the_reads_first_take_asks_who_holds_the_numbers_still_to_come(
    pair: tuple[Worker, Worker],
) -> None:
    one, _ = pair
    numbers = [f"7916123450{i}" for i in range(4)]
    for number in numbers:
        one.gateway.engine.dial(number, "*111#")
    counted = _Counted(one.cluster._scripts)
    cast(Any, one.cluster)._scripts = counted
    # A read of four replies; what comes after each PDU is what the SMPP layer still holds.
    with one.cluster.batch(lambda: list(numbers[1:])):
        shown = [one.gateway.engine.reply(number, "3").text for number in numbers]
    assert len(set(shown)) == 1 and "1" in shown[0]  # each went on to the numbers menu
    # The first take, with a look at the three others; then the four saves as the read ends.
    assert counted.calls == [[b"t", b"p", b"p", b"p"], [b"s"] * 4]
    assert one.cluster.errors == 0


async def test_a_look_ahead_that_found_another_worker_is_followed_by_a_take(
    pair: tuple[Worker, Worker],
) -> None:
    one, two = pair
    alone = Gateway.create(make_config(), clock=SimulatedClock(NOW))
    alone.engine.dial(RU, "*111#")
    expected = [alone.engine.reply(RU, text).text for text in ("3", "0")]
    alone.close()
    one.gateway.engine.dial(EN, "*111#")
    one.gateway.engine.dial(RU, "*111#")
    assert two.gateway.engine.reply(RU, "3").text == expected[0]  # worker 2 takes RU over
    counted = _Counted(one.cluster._scripts)
    cast(Any, one.cluster)._scripts = counted
    with one.cluster.batch(lambda: [RU]):
        one.gateway.engine.reply(EN, "3")  # the read's first take looks at RU too
        # Redis said worker 2 holds RU: its reply takes it back, from worker 2's last step.
        assert one.gateway.engine.reply(RU, "0").text == expected[1]
    # EN's take and the look at RU; EN's save and RU's take; RU's save as the read ends.
    assert counted.calls == [[b"t", b"p"], [b"s", b"t"], [b"s"]]
    assert one.cluster.taken == 1


async def test_a_dial_after_the_look_ahead_is_not_taken_for_the_dialog_it_replaced(
    pair: tuple[Worker, Worker], redis_url: str
) -> None:
    one, _ = pair
    one.gateway.engine.dial(EN, "*111#")
    old = one.gateway.engine.dial(RU, "*111#")
    with one.cluster.batch(lambda: [RU, RU]):
        one.gateway.engine.reply(EN, "3")  # looks at RU: this worker holds `old`
        new = one.gateway.engine.dial(RU, "*111#")  # a new dialog replaces it here
        assert not one.gateway.engine.reply(RU, "3").end  # the new dialog's next screen
    held = _registered(redis_url, RU)
    assert (held["worker"], held["session"]) == ("w1", new.session) != ("w1", old.session)
    assert _state(redis_url, RU)["screen"] == "numbers"


async def test_numbers_ahead_that_are_not_numbers_are_left_to_their_pdus(
    pair: tuple[Worker, Worker],
) -> None:
    one, _ = pair
    one.gateway.engine.dial(RU, "*111#")
    one.gateway.engine.dial(EN, "*111#")
    counted = _Counted(one.cluster._scripts)
    cast(Any, one.cluster)._scripts = counted
    # What the SMPP layer read ahead is raw source_addr: garbage is refused when its PDU is
    # handled, never by the look ahead; the same number twice is looked at once.
    with one.cluster.batch(lambda: ["", "abc", "+7 916 123-45-68", EN, "7" * 40]):
        one.gateway.engine.reply(RU, "3")
        one.gateway.engine.reply(EN, "3")
    assert counted.calls == [[b"t", b"p"], [b"s", b"s"]]
    assert one.cluster.errors == 0
