"""`POST /api/v1/clock/advance`: the grammar and bounds of ussd.durations; refusals move nothing."""

from __future__ import annotations

from typing import Any

import pytest

from tests.http.conftest import Client
from ussd import durations
from ussd.clock import SimulatedClock
from ussd.runtime import Gateway

ADMIN = {"Authorization": "Bearer change-me"}


@pytest.mark.parametrize(
    ("by", "seconds"),
    [("1d12h", 129_600.0), ("90m", 5400.0), (30, 30.0), ("3650d", 3650 * 86400.0)],
)
async def test_advance_takes_the_one_grammar(
    http: Client, started: Gateway, by: Any, seconds: float
) -> None:
    before = started.clock.now()
    status, body = await http.post("/api/v1/clock/advance", {"by": by}, headers=ADMIN)
    assert status == 200, body
    assert started.clock.now() == before + seconds


@pytest.mark.parametrize(
    ("by", "message"),
    [
        # Before: a 500 after the clock had moved, and accounts broken for good.
        ("2950000d", "expected a duration of at most 3650d, got '2950000d'"),
        (1e308, "expected a duration of at most 3650d, got 1e+308"),
        (10**15, "expected a duration of at most 3650d, got 1000000000000000"),
        ("-1d", "expected a duration such as 30s, 5m, 1.5h, 2d or 1d12h, got '-1d'"),
        (-5, "a duration cannot be negative, got -5"),
        ("x" * 10_000, "got 'xxxxxxxxxxxxxxxxx...xxxxxxxxxxxxxxxxxx'"),
    ],
    ids=["2950000d", "1e308", "1e15", "-1d", "-5", "long"],
)
async def test_out_of_bounds_is_400_and_the_clock_stays(
    http: Client, started: Gateway, by: Any, message: str
) -> None:
    before = started.clock.now()
    status, body = await http.post("/api/v1/clock/advance", {"by": by}, headers=ADMIN)
    assert status == 400, body
    assert body["error"]["code"] == "bad_duration"
    assert message in body["error"]["message"]
    assert len(body["error"]["message"]) < 200
    assert started.clock.now() == before
    status, _ = await http.post("/api/v1/clock/advance", {"by": "1s"}, headers=ADMIN)
    assert status == 200  # and the gateway still answers


async def test_repeated_advances_stop_before_dates_run_out(http: Client, started: Gateway) -> None:
    clock = started.clock
    assert isinstance(clock, SimulatedClock)
    clock.advance(durations.LATEST - clock.now() - 10 * 86400)  # 800 × 3650d would get here
    status, body = await http.post("/api/v1/clock/advance", {"by": "11d"}, headers=ADMIN)
    assert status == 400, body
    assert body["error"]["message"] == "expected a duration of at most 10d, got '11d'"
    status, body = await http.post("/api/v1/clock/advance", {"by": "10d"}, headers=ADMIN)
    assert status == 200, body
    assert body["now"].startswith("9000-01-01T00:00:00")
    status, body = await http.post("/api/v1/clock/advance", {"by": "1s"}, headers=ADMIN)
    assert status == 400, body
