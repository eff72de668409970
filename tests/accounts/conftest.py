"""Account fixtures: a gateway (simulated clock) behind a real socket, and helpers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import make_config
from ussd.clock import SimulatedClock
from ussd.http import HttpServer, start_http
from ussd.runtime import Gateway

RU = "79161234567"  # seeded, Russian (config.yaml)
EN = "79161112233"  # seeded, English
OTHER = "79160000001"
ADMIN = {"Authorization": "Bearer change-me"}  # the shipped http.admin_token

MINUTE = 60.0
DAY = 86400.0


def set_password(gateway: Gateway, msisdn: str, password: str) -> None:
    """Set a password the way a subscriber does: the `*111*17#` dialog (docs/services.md)."""
    engine = gateway.engine
    assert not engine.dial(msisdn, "*111*17#").end
    assert not engine.reply(msisdn, password).end
    assert engine.reply(msisdn, password).end
    assert gateway.store.subscriber(msisdn).password_hash is not None  # type: ignore[union-attr]


def enable_management(gateway: Gateway, msisdn: str) -> None:
    """`*111*828*1#` on msisdn (docs/services.md)."""
    gateway.engine.dial(msisdn, "*111*828*1#")
    assert gateway.store.subscriber(msisdn).number_management  # type: ignore[union-attr]


def texts(gateway: Gateway, msisdn: str) -> list[str]:
    return [sms.text for sms in gateway.sms.inbox(msisdn)]


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "ussd.sqlite3")


@pytest.fixture
def file_gateways(db_path: str) -> Iterator[list[Gateway]]:
    """Gateways on one database file, opened in turn to simulate restarts; all closed after."""
    opened: list[Gateway] = []
    yield opened
    for gw in opened:
        gw.engine.shutdown()
        try:
            gw.store.close()
        except Exception:  # closed by the test already
            pass


def open_gateway(
    opened: list[Gateway], database: str, start: float = 1_780_000_000.0, **sections: Any
) -> Gateway:
    gw = Gateway.create(make_config(**sections), clock=SimulatedClock(start), database=database)
    opened.append(gw)
    return gw


@asynccontextmanager
async def serving(gateway: Gateway) -> AsyncIterator[aiohttp.ClientSession]:
    """A started gateway behind a real socket and a client for it; stopped afterwards."""
    await gateway.start()
    srv = await start_http(gateway, "127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession(base_url=srv.url) as session:
            yield session
    finally:
        await srv.stop()
        await gateway.stop()


@pytest.fixture
async def server(gateway: Gateway) -> AsyncIterator[HttpServer]:
    await gateway.start()
    srv = await start_http(gateway, "127.0.0.1", 0)
    yield srv
    await srv.stop()
    await gateway.stop()


@pytest.fixture
async def http(server: HttpServer) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=server.url) as session:
        yield session


async def call(
    session: aiohttp.ClientSession,
    method: str,
    path: str,
    body: Any = None,
    *,
    token: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any, Any]:
    """(status, JSON body, headers) of one request."""
    hdrs = dict(headers or {})
    if token is not None:
        hdrs["Authorization"] = f"Bearer {token}"
    kwargs: dict[str, Any] = {"headers": hdrs}
    if body is not None:
        kwargs["json"] = body
    async with session.request(method, path, **kwargs) as r:
        data = await r.json() if r.content_type == "application/json" else await r.text()
        return r.status, data, r.headers
