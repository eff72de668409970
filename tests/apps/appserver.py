"""A real HTTP application on 127.0.0.1:0 for the app tests, and a gateway routed to it.

The app's behaviour is a plain function of each request; it records every request (with the
decoded fields) so tests can check what the app was told, and can hold an answer until a test
sets an event (timeouts without sleeping).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from tests.conftest import make_config
from ussd.clock import Clock, SimulatedClock
from ussd.runtime import Gateway

MSISDN = "79161234567"  # seeded, Russian (config.yaml)
EN = "79161112233"  # seeded, English


@dataclass
class Seen:
    """One request the app received."""

    path: str
    content_type: str
    headers: dict[str, str]
    raw: bytes
    fields: dict[str, Any]  # the form or JSON body


Handler = Callable[[Seen], Awaitable[web.StreamResponse] | web.StreamResponse]


@dataclass
class LiveApp:
    """A running app: `url`, what it saw, and its behaviour (replaceable per test)."""

    handler: Handler
    url: str = ""
    seen: list[Seen] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)  # a request came in

    def bodies(self, path: str = "/ussd") -> list[dict[str, Any]]:
        return [s.fields for s in self.seen if s.path == path]


def decode(content_type: str, raw: bytes) -> dict[str, Any]:
    if content_type.startswith("application/json"):
        value = json.loads(raw)
        return value if isinstance(value, dict) else {"": value}
    if content_type.startswith("application/x-www-form-urlencoded"):
        return dict(parse_qsl(raw.decode("ascii"), keep_blank_values=True))
    return {"": raw.decode("utf-8", "replace")}


@asynccontextmanager
async def running(handler: Handler) -> AsyncIterator[LiveApp]:
    """Serve `handler` on 127.0.0.1:0 until the block ends."""
    app = LiveApp(handler)

    async def handle(request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        ctype = request.headers.get("Content-Type", "")
        seen = Seen(request.path, ctype, dict(request.headers), raw, decode(ctype, raw))
        app.seen.append(seen)
        app.arrived.set()
        answer = app.handler(seen)
        if not isinstance(answer, web.StreamResponse):
            answer = await answer
        return answer

    web_app = web.Application()
    web_app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(web_app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    app.url = f"http://127.0.0.1:{port}/ussd"
    try:
        yield app
    finally:
        await runner.cleanup()


def app_config(
    url: str,
    dialect: str = "json",
    code: str = "*384#",
    screen_policy: str = "paginate",
    **app: Any,
) -> Any:
    """The shipped config with one app `shop` at url, routed from code."""
    return make_config(
        apps={"shop": {"url": url, "dialect": dialect, **app}},
        ussd={"routes": {"*100#": "balance", code: "app:shop"}, "screen_policy": screen_policy},
    )


@asynccontextmanager
async def gateway_for(
    url: str, dialect: str = "json", clock: Clock | None = None, **extra: Any
) -> AsyncIterator[Gateway]:
    """A started gateway (simulated clock unless given) with app `shop` on *384#."""
    gw = Gateway.create(
        app_config(url, dialect, **extra), clock=clock or SimulatedClock(), database=":memory:"
    )
    await gw.start()
    try:
        yield gw
    finally:
        await gw.stop()


def con(text: str) -> web.Response:
    """Africa's Talking: continue."""
    return web.Response(text=f"CON {text}", content_type="text/plain")


def end(text: str) -> web.Response:
    """Africa's Talking: end."""
    return web.Response(text=f"END {text}", content_type="text/plain")


def screen(text: str, final: bool = False) -> web.Response:
    """The json dialect's answer."""
    return web.json_response({"text": text, "end": final})


async def heard(gw: Gateway, predicate: Callable[[list[Any]], bool]) -> list[Any]:
    """The gateway's events from now on, once predicate(events) holds (no polling)."""
    events: list[Any] = []
    changed = asyncio.Event()

    def listen(event: Any) -> None:
        events.append(event)
        changed.set()

    unsubscribe = gw.engine.subscribe(listen)
    try:
        while not predicate(events):
            changed.clear()
            await changed.wait()
    finally:
        unsubscribe()
    return events
