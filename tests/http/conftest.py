"""HTTP fixtures: a real Gateway on a simulated clock behind a real socket on 127.0.0.1:0."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from tests.browser import gateway_page
from tests.conftest import make_config
from ussd.clock import SimulatedClock
from ussd.http import HttpServer, start_http
from ussd.runtime import Gateway

RU = "79161234567"  # seeded, Russian (config.yaml)
EN = "79161112233"  # seeded, English


@pytest.fixture
async def started(gateway: Gateway) -> AsyncIterator[Gateway]:
    """The shared gateway with its timer task running."""
    await gateway.start()
    yield gateway
    await gateway.stop()


@pytest.fixture
async def server(started: Gateway) -> AsyncIterator[HttpServer]:
    srv = await start_http(started, "127.0.0.1", 0)
    yield srv
    await srv.stop()


@pytest.fixture
async def http(server: HttpServer) -> AsyncIterator[Client]:
    async with aiohttp.ClientSession(base_url=server.url) as session:
        yield Client(session)


class Client:
    """A thin JSON helper: every call returns (status, decoded body)."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    async def get(self, path: str) -> tuple[int, Any]:
        async with self.session.get(path) as r:
            return r.status, await _body(r)

    async def post(self, path: str, body: Any = None, **kwargs: Any) -> tuple[int, Any]:
        if body is not None:
            kwargs["json"] = body
        async with self.session.post(path, **kwargs) as r:
            return r.status, await _body(r)

    async def dial(self, msisdn: str, text: str) -> tuple[int, Any]:
        return await self.post(f"/api/v1/phones/{msisdn}/dial", {"text": text})

    async def reply(self, msisdn: str, text: str) -> tuple[int, Any]:
        return await self.post(f"/api/v1/phones/{msisdn}/reply", {"text": text})


async def _body(r: aiohttp.ClientResponse) -> Any:
    if r.content_type == "application/json":
        return await r.json()
    return await r.text()


async def gateway_with(**sections: Any) -> Gateway:
    """A started gateway on a modified shipped config (caller stops it)."""
    gw = Gateway.create(make_config(**sections), clock=SimulatedClock(), database=":memory:")
    await gw.start()
    return gw


async def eventually(predicate: Callable[[], bool | Awaitable[bool]], within: float = 5.0) -> None:
    """Wait until predicate() holds, re-checking each time the loop has run other tasks."""

    async def poll() -> None:
        while True:
            result = predicate()
            if not isinstance(result, bool):
                result = await result
            if result:
                return
            await asyncio.sleep(0.005)  # yield to the server's tasks between checks

    await asyncio.wait_for(poll(), within)


@pytest.fixture
async def page(browser: Any, server: HttpServer) -> AsyncIterator[Any]:
    """The web phone in a fresh headless Chromium context; fails on JavaScript errors and on
    any request outside the gateway."""
    async with gateway_page(browser, server.url, "/", "body[data-ready=true]", (1280, 900)) as p:
        yield p
