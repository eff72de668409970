"""Any mix of workers answers like one gateway (ussd/cluster.py, docs/cluster.md).

A random sequence of dials, replies and releases, each on a random worker, gives the same
screens and the same errors as the embedded gateway given the same sequence: the take before
each step and the save after it make the workers one gateway for a subscriber.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import make_config
from ussd.clock import SimulatedClock
from ussd.cluster import Cluster
from ussd.engine import EngineError
from ussd.runtime import Gateway

NOW = 1_780_000_000.0
OPS = st.lists(
    st.tuples(
        st.integers(0, 2),  # the worker
        st.sampled_from(
            [
                ("dial", "*111#"),
                ("dial", "*100#"),
                ("reply", "3"),
                ("reply", "0"),
                ("reply", "98"),
                ("reply", "2"),
                ("reply", "x"),
                ("release", ""),
            ]
        ),
    ),
    min_size=1,
    max_size=12,
)
_numbers = itertools.count(1)


@pytest.fixture
def workers(postgres_url: str, redis_url: str) -> Iterator[list[Gateway]]:
    # No event loop here: registrations and take-overs are synchronous; the inbox is not read,
    # so a replaced copy is caught only by the take before its next step, the stricter case.
    clock = SimulatedClock(NOW)
    gateways = [Gateway.create(make_config(), clock=clock, database=postgres_url) for _ in "abc"]
    clusters = [Cluster(g.engine, redis_url, worker=f"w{i}") for i, g in enumerate(gateways)]
    for cluster in clusters:
        cluster.attach()
    yield gateways
    for gateway in gateways:
        gateway.close()


def _outcome(gateway: Gateway, op: str, msisdn: str, text: str) -> object:
    try:
        if op == "dial":
            screen = gateway.engine.dial(msisdn, text)
        elif op == "reply":
            screen = gateway.engine.reply(msisdn, text)
        else:
            return gateway.engine.release(msisdn)
    except EngineError as exc:
        return type(exc).__name__
    return (screen.text, screen.end)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(ops=OPS)
def test_workers_answer_like_one_gateway(
    workers: list[Gateway], ops: list[tuple[int, tuple[str, str]]]
) -> None:
    msisdn = f"7916{next(_numbers):07d}"  # a subscriber of its own for each example
    alone = Gateway.create(make_config(), clock=SimulatedClock(NOW))
    try:
        for index, (op, text) in ops:
            expected = _outcome(alone, op, msisdn, text)
            got = _outcome(workers[index], op, msisdn, text)
            assert got == expected, (index, op, text)
    finally:
        alone.close()
