"""One fault rule set, counted in Redis, for every worker (ussd/cluster_faults.py).

Workers are whole gateways in this process, each with its Cluster and ClusterFaults, on one
real Redis and PostgreSQL (as in test_dialogs.py); the admin API's routes call the same
ClusterFaults methods (test_faults_http.py takes them over HTTP on two worker processes).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis
from structlog.testing import capture_logs

from tests.cluster.workers import WAIT, Worker, joined
from tests.conftest import make_config
from tests.services import Server
from ussd.clock import SimulatedClock
from ussd.cluster import TIMEOUT
from ussd.cluster_faults import RULES, ClusterFaults, draw
from ussd.config import Config
from ussd.faults import (
    USSD_NETWORK_ERROR,
    RuleExists,
    TooManyRules,
    parse_rule,
    parse_rules,
)
from ussd.runtime import Gateway

RU = "79161234567"
NOW = 1_780_000_000.0
ERROR = "Ошибка сети. Запрос не выполнен, попробуйте позже."

Pair = tuple[tuple[Worker, ClusterFaults], tuple[Worker, ClusterFaults]]


@contextlib.asynccontextmanager
async def sharing(
    name: str, database: str, url: str, clock: SimulatedClock, config: Config | None = None
) -> AsyncIterator[tuple[Worker, ClusterFaults]]:
    """Worker `name` with its share of the cluster's fault rules, as `ussd-sim serve` joins."""
    gateway = Gateway.create(config or make_config(), clock=clock, database=database)
    async with joined(gateway, url, name) as w:
        shared = ClusterFaults(gateway.faults, url)
        await shared.start()
        try:
            yield w, shared
        finally:
            await shared.stop()


@pytest.fixture
async def pair(postgres_url: str, redis_url: str) -> AsyncIterator[Pair]:
    clock = SimulatedClock(NOW)
    async with (
        sharing("w1", postgres_url, redis_url, clock) as one,
        sharing("w2", postgres_url, redis_url, clock) as two,
    ):
        yield one, two


async def until(check: Callable[[], bool], *shared: ClusterFaults) -> None:
    """Until check() holds, looking again whenever one of `shared` puts another set in force
    (never on time); fails after WAIT seconds."""
    async with asyncio.timeout(WAIT):
        while not check():
            for s in shared:
                s.adopted.clear()
            waits = [asyncio.ensure_future(s.adopted.wait()) for s in shared]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for wait in waits:
                    wait.cancel()


async def in_force_everywhere(*shared: ClusterFaults) -> None:
    """Until every worker has adopted the set Redis holds (a change is heard at once)."""
    first = shared[0]
    await until(lambda: all(s.held == first.held for s in shared), *shared)


def rule(**raw: Any) -> Any:
    return parse_rule(raw, "f0")


def _number(i: int) -> str:
    return f"7916123{i:04d}"


async def test_a_rule_added_on_one_worker_is_listed_and_fires_on_the_other(pair: Pair) -> None:
    (w1, f1), (w2, f2) = pair
    added = await f1.add(rule(kind=USSD_NETWORK_ERROR, match={"msisdn": RU}), automatic=True)
    assert added.id == "f1"
    assert [r.id for r in w1.gateway.faults.rules()] == ["f1"]  # in force here at once
    listed = await f2.snapshot()  # the other worker lists it at once: Redis is asked
    assert [(r["id"], r["seen"], r["fired"]) for r in listed["rules"]] == [("f1", 0, 0)]
    await until(lambda: bool(w2.gateway.faults), f2)
    screen = w2.gateway.engine.dial(RU, "*111#")
    assert screen.end and screen.text == ERROR
    one, two = await f1.snapshot(), await f2.snapshot()
    assert one == two
    assert [(r["seen"], r["fired"]) for r in one["rules"]] == [(1, 1)]
    assert one["injected"] == [
        {"rule": "f1", "kind": USSD_NETWORK_ERROR, "at": "dial", "msisdn": RU, "code": "111"}
    ]
    # The next automatic id and the refusals are the cluster's, whichever worker is asked.
    assert (await f2.add(rule(kind="sms_lost"), automatic=True)).id == "f2"
    with pytest.raises(RuleExists):
        await f2.add(parse_rule({"kind": "sms_lost", "id": "f1"}, "f0"))


async def test_times_counts_across_workers(pair: Pair) -> None:
    (w1, f1), (w2, f2) = pair
    await f1.reset([rule(kind=USSD_NETWORK_ERROR, times=3)], seed=1)
    await in_force_everywhere(f1, f2)
    errors = []
    for i in range(8):  # each dial of its own number, on w1, w2, w1, …
        engine = (w1, w2)[i % 2].gateway.engine
        errors.append(engine.dial(_number(i), "*111#").text == ERROR)
    assert errors == [True, True, True, False, False, False, False, False]  # 3 in all, not 6
    one, two = await f1.snapshot(), await f2.snapshot()
    assert one == two
    assert [(r["seen"], r["fired"]) for r in one["rules"]] == [(3, 3)]
    assert len(one["injected"]) == 3


async def test_every_counts_the_matching_events_of_all_workers(pair: Pair) -> None:
    (w1, f1), (w2, f2) = pair
    await f2.reset([rule(kind=USSD_NETWORK_ERROR, match={"every": 2})], seed=1)
    await in_force_everywhere(f1, f2)
    fired = []
    for i in range(6):
        faults = (w1, w2)[i % 2].gateway.faults
        fired.append(faults.ussd("dial", _number(i), "*111#") is not None)
    # The 2nd, 4th and 6th of the cluster (each on w2); counted per worker it would be w1's
    # 2nd and w2's 2nd (the 3rd and 4th).
    assert fired == [False, True, False, True, False, True]
    counts = [(r["seen"], r["fired"]) for r in (await f1.snapshot())["rules"]]
    assert counts == [(6, 3)]


async def test_deleting_on_one_worker_stops_it_on_the_other(pair: Pair) -> None:
    (w1, f1), (w2, f2) = pair
    await f1.add(rule(kind=USSD_NETWORK_ERROR, id="net"))
    await in_force_everywhere(f1, f2)
    assert await f2.remove("net")
    # Even before w1 hears of it, Redis no longer counts that rule: no fault on w1.
    assert w1.gateway.faults.ussd("dial", RU, "*111#") is None
    await until(lambda: not w1.gateway.faults, f1)
    assert (await f1.snapshot())["rules"] == [] == (await f2.snapshot())["rules"]
    assert not await f1.remove("net")
    await f2.add(rule(kind=USSD_NETWORK_ERROR, id="net"))
    await f1.add(rule(kind="sms_lost"), automatic=True)
    assert await f1.clear() == 2
    await until(lambda: not w1.gateway.faults and not w2.gateway.faults, f1, f2)


async def test_probability_draws_are_the_same_in_two_runs_with_one_seed(pair: Pair) -> None:
    (w1, f1), (w2, f2) = pair
    match = {"probability": 0.5, "every": 2}
    rules = parse_rules([{"id": "p", "kind": USSD_NETWORK_ERROR, "match": match}])
    events = 48  # the 2nd, 4th, … are candidates; the k-th of them draws draw(seed, "p", k)

    def expected(seed: int) -> list[bool]:
        return [i % 2 == 1 and draw(seed, "p", (i + 1) // 2) < 0.5 for i in range(events)]

    async def run(seed: int) -> list[bool]:
        await f1.reset(rules, seed)  # counts and draws from the start
        await in_force_everywhere(f1, f2)
        fired = []
        for i in range(events):
            faults = (w1, w2)[i % 3 % 2].gateway.faults  # w1, w2, w1, w1, w2, w1, …
            fired.append(faults.ussd("dial", _number(i), "*111#") is not None)
        return fired

    first = await run(7)
    assert first == await run(7)
    assert first == expected(7)
    assert 0 < sum(first) < events // 2
    assert await run(8) == expected(8) != first
    snapshot = await f2.snapshot()
    assert snapshot["seed"] == 8
    assert [(r["seen"], r["fired"]) for r in snapshot["rules"]] == [(events, sum(expected(8)))]


async def test_no_rule_in_force_asks_redis_nothing(pair: Pair) -> None:
    (w1, f1), (_w2, f2) = pair
    asked: list[object] = []
    decide = f1._decide

    class Counted:
        """The decision script, recording every call (a round trip to Redis)."""

        def __call__(self, tail: list[bytes]) -> Any:
            asked.append(tail)
            return decide(tail)

        def close(self) -> None:
            decide.close()

    f1._decide = Counted()  # type: ignore[assignment]
    engine = w1.gateway.engine
    engine.dial(RU, "*111#")
    engine.reply(RU, "3")
    assert asked == [] and f1.calls == 0
    await f2.add(rule(kind="sms_lost"), automatic=True)  # not a kind a dial asks about
    await in_force_everywhere(f1, f2)
    engine.dial(RU, "*111#")
    engine.reply(RU, "3")
    assert asked == [] and f1.calls == 0
    await f2.add(
        rule(kind=USSD_NETWORK_ERROR, at="reply", match={"msisdn": "7999*"}), automatic=True
    )
    await in_force_everywhere(f1, f2)
    engine.dial(RU, "*111#")  # does not match: no call either
    assert asked == []
    await f2.add(rule(kind=USSD_NETWORK_ERROR, id="all"))
    await in_force_everywhere(f1, f2)
    assert engine.dial(RU, "*111#").text == ERROR
    assert len(asked) == 1 and f1.calls == 1


async def test_the_first_worker_stores_its_config_rules_and_the_next_adopts_them(
    postgres_url: str, redis_url: str
) -> None:
    clock = SimulatedClock(NOW)
    first = make_config(faults={"seed": 5, "rules": [{"kind": "sms_lost", "times": 1}]})
    second = make_config(faults={"seed": 9, "rules": [{"kind": USSD_NETWORK_ERROR}]})
    async with sharing("w1", postgres_url, redis_url, clock, first) as (w1, f1):
        async with sharing("w2", postgres_url, redis_url, clock, second) as (w2, f2):
            assert w2.gateway.faults.rules() == w1.gateway.faults.rules()
            assert [r.kind for r in w2.gateway.faults.rules()] == ["sms_lost"]
            assert w2.gateway.faults.seed == 5
            assert w2.gateway.engine.dial(RU, "*111#").text != ERROR
            assert (await f2.snapshot())["seed"] == 5
            for i in range(99):  # 100 in force in all, whichever worker added them
                await (f1, f2)[i % 2].add(rule(kind="sms_lost", id=f"r{i}"))
            with pytest.raises(TooManyRules):
                await f2.add(rule(kind="sms_lost", id="one-more"))
        await until(lambda: len(w1.gateway.faults.rules()) == 100, f1)


async def test_without_redis_a_decision_is_no_fault_at_once_and_the_set_comes_back(
    postgres_url: str, own_redis: Server
) -> None:
    url = f"redis://127.0.0.1:{own_redis.port}/0"
    config = make_config(faults={"rules": [{"id": "net", "kind": USSD_NETWORK_ERROR}]})
    async with sharing("w1", postgres_url, url, SimulatedClock(NOW), config) as (w1, f1):
        faults = w1.gateway.faults
        assert faults.ussd("dial", RU, "*111#") is not None
        own_redis.stop(kill=True)
        with capture_logs() as logs:
            started = time.monotonic()
            for i in range(20):
                assert faults.ussd("dial", _number(i), "*111#") is None
            assert time.monotonic() - started < TIMEOUT
        assert [e["event"] for e in logs].count("cluster_faults_unavailable") == 1
        assert f1.errors >= 1
        own_redis.start_again()  # empty: the worker stores the set it holds again
        client = redis.Redis.from_url(url)
        try:
            await until(lambda: bool(client.hexists(RULES, "net")), f1)
        finally:
            client.close()
        assert faults.ussd("dial", RU, "*111#") is not None
        snapshot = await f1.snapshot()
        assert [(r["id"], r["fired"]) for r in snapshot["rules"]] == [("net", 1)]


async def test_a_throttle_window_is_the_binds_own_and_its_times_the_clusters(pair: Pair) -> None:
    (w1, f1), (w2, f2) = pair
    throttle = {"kind": "smpp_throttle", "rate": 1, "times": 3, "match": {"system_id": "esme"}}
    await f1.reset(parse_rules([throttle]), seed=1)
    await in_force_everywhere(f1, f2)
    asked = f1.calls + f2.calls
    now = NOW + 0.5
    # Each worker's bind has one submit_sm a second within the rate, never asked about.
    assert w1.gateway.faults.smpp("esme", "bind-1", now) is None
    assert w2.gateway.faults.smpp("esme", "bind-2", now) is None
    assert f1.calls + f2.calls == asked
    past = [
        faults.smpp("esme", bind, now) is not None
        for faults, bind in [(w1.gateway.faults, "bind-1"), (w2.gateway.faults, "bind-2")] * 3
    ]
    assert past == [True, True, True, False, False, False]  # times: 3 in all
    assert f1.calls + f2.calls == asked + 6
    one = await f2.snapshot()
    assert [(r["seen"], r["fired"]) for r in one["rules"]] == [(3, 3)]
    assert [i["at"] for i in one["injected"]] == ["submit_sm"] * 3
