"""Per-client rate limits of the website (docs/account.md "Website"): captchas, provider logins."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.accounts.conftest import call, serving
from tests.conftest import make_config
from ussd.clock import SimulatedClock
from ussd.config import Config, ConfigError
from ussd.ratelimit import ClientLimit
from ussd.runtime import Gateway

LOGIN = {"login": "ann", "password": "social"}


@pytest.fixture
def config() -> Config:
    return make_config(
        website={"captcha": "test", "captchas_per_minute": 3, "provider_logins_per_minute": 2}
    )


def assert_429(status: int, body: Any, headers: Any, retry_after: str) -> None:
    assert status == 429, body
    assert body["error"]["code"] == "rate_limited", body
    assert headers["Retry-After"] == retry_after


# -- the bucket ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("per_minute", "times", "waits"),
    [
        (3, [0, 0, 0, 0], [0, 0, 0, 20]),  # 3 at once, then one every 20 s
        (3, [0, 0, 0, 20], [0, 0, 0, 0]),
        (3, [0, 0, 0, 5, 20], [0, 0, 0, 15, 0]),  # a refusal takes nothing
        (1, [0, 30, 60], [0, 30, 0]),
        (0, [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]),  # 0: no limit
        (60, [0] * 61, [0] * 60 + [1]),
    ],
)
def test_bucket(per_minute: int, times: list[float], waits: list[float]) -> None:
    limit = ClientLimit(per_minute)
    assert [pytest.approx(limit.take("a", t)) for t in times] == waits


def test_clients_are_separate_and_bounded() -> None:
    limit = ClientLimit(1, cap=3)
    assert limit.take("a", 0) == 0 and limit.take("a", 0) > 0
    assert limit.take("b", 0) == 0  # another client has its own bucket
    for client in ("c", "d", "e"):
        limit.take(client, 0)
    assert len(limit) == 3  # "a" was the least recently seen: dropped
    assert limit.take("a", 0) == 0


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError):
        ClientLimit(-1)
    with pytest.raises(ValueError):
        ClientLimit(1, cap=0)


@settings(max_examples=200, deadline=None)
@given(
    per_minute=st.integers(min_value=1, max_value=100),
    gaps=st.lists(st.floats(min_value=0, max_value=30), max_size=300),
    retry=st.lists(st.booleans(), max_size=300),
)
def test_one_client_never_gets_more_than_the_bucket(
    per_minute: int, gaps: list[float], retry: list[bool]
) -> None:
    limit = ClientLimit(per_minute)
    now, allowed = 0.0, 0
    for i, gap in enumerate(gaps):
        now += gap
        wait = limit.take("a", now)
        assert wait >= 0
        if wait == 0:
            allowed += 1
        elif i < len(retry) and retry[i]:
            now += wait
            assert limit.take("a", now) == 0  # waiting what the refusal said is enough
            allowed += 1
        assert allowed <= per_minute + now * per_minute / 60 + 1e-6


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=3), st.floats(min_value=0, max_value=5)), max_size=200))
def test_memory_is_bounded(steps: list[tuple[str, float]]) -> None:
    limit = ClientLimit(2, cap=5)
    now = 0.0
    for client, gap in steps:
        now += gap
        limit.take(client, now)
        assert len(limit) <= 5


# -- over HTTP ----------------------------------------------------------------------------------


async def test_captchas_are_limited_per_client(
    gateway: Gateway, clock: SimulatedClock, http: aiohttp.ClientSession
) -> None:
    for _ in range(3):
        status, body, _ = await call(http, "POST", "/api/v1/lk/captcha", {})
        assert status == 201, body
    status, body, headers = await call(http, "POST", "/api/v1/lk/captcha", {})
    assert_429(status, body, headers, "20")  # 3 a minute: the next one in 20 s
    assert "try again in 20 s" in body["error"]["message"]
    # Another address has its own allowance (127.0.0.0/8 is all loopback).
    url = str(http._base_url)
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with aiohttp.ClientSession(base_url=url, connector=connector) as other:
        status, body, _ = await call(other, "POST", "/api/v1/lk/captcha", {})
        assert status == 201, body
    gateway.advance(19)
    status, body, headers = await call(http, "POST", "/api/v1/lk/captcha", {})
    assert_429(status, body, headers, "1")
    gateway.advance(1)
    status, body, _ = await call(http, "POST", "/api/v1/lk/captcha", {})
    assert status == 201, body


async def test_provider_logins_are_limited_per_client(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    path = "/api/v1/lk/providers/vk/login"
    status, body, _ = await call(http, "POST", path, {**LOGIN, "password": "wrong"})
    assert status == 401 and body["error"]["code"] == "bad_provider_credentials"
    status, body, _ = await call(http, "POST", path, LOGIN)
    assert status == 200, body
    # Wrong or right, every try counts; the third within the minute is refused unchecked.
    status, body, headers = await call(http, "POST", path, LOGIN)
    assert_429(status, body, headers, "30")
    status, body, headers = await call(http, "POST", "/api/v1/lk/providers/yandex/login", LOGIN)
    assert_429(status, body, headers, "30")  # per client, not per provider
    gateway.advance(30)
    status, body, _ = await call(http, "POST", path, LOGIN)
    assert status == 200, body


async def test_limits_off(clock: SimulatedClock) -> None:
    config = make_config(
        website={"captcha": "test", "captchas_per_minute": 0, "provider_logins_per_minute": 0}
    )
    gw = Gateway.create(config, clock=clock, database=":memory:")
    async with serving(gw) as http:
        for _ in range(40):
            status, body, _ = await call(http, "POST", "/api/v1/lk/captcha", {})
            assert status == 201, body
        for _ in range(15):
            status, body, _ = await call(
                http, "POST", "/api/v1/lk/providers/vk/login", {**LOGIN, "password": "x"}
            )
            assert status == 401, body


def test_defaults() -> None:
    website = make_config().website
    assert (website.captchas_per_minute, website.provider_logins_per_minute) == (30, 10)


@pytest.mark.parametrize("key", ["captchas_per_minute", "provider_logins_per_minute"])
@pytest.mark.parametrize("value", [-1, "many", 1.5, 100_001])
def test_bad_limit_config(key: str, value: object) -> None:
    with pytest.raises(ConfigError) as exc:
        make_config(website={key: value})
    assert exc.value.key == f"website.{key}"
