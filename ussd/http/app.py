"""The aiohttp application: web phone, phones API, health and metrics (docs/phones.md)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.typedefs import Middleware

from ussd.http import recording
from ussd.http.account import setup_account_routes
from ussd.http.admin import setup_admin_routes
from ussd.http.console import ConsoleSmpp, setup_console_routes, timing_middleware
from ussd.http.errors import (
    MAX_BODY,
    REQUEST_TIMEOUT,
    Handler,
    error_middleware,
    json_response,
    static_bytes,
    static_file,
)
from ussd.http.faults import setup_fault_routes
from ussd.http.lk import setup_lk_routes
from ussd.http.network import routes as network_routes
from ussd.http.phones import GATEWAY, HUB, Hub
from ussd.http.phones import routes as phone_routes
from ussd.http.security import POLICY, Policy, security_middleware
from ussd.http.server import Connections, Site
from ussd.metrics import CONTENT_TYPE, Metrics

if TYPE_CHECKING:
    from ussd.runtime import Gateway

_UNSUBSCRIBE: web.AppKey[list[Callable[[], None]]] = web.AppKey("unsubscribe")

# The web phone's files: a fixed list, so no path from a URL ever reaches the filesystem.
STATIC_TYPES = {
    "index.html": "text/html",
    "phone.css": "text/css",
    "phone.js": "text/javascript",
    "account.css": "text/css",  # the "My account" app (docs/account.md), opened from each phone
    "account.js": "text/javascript",
}


async def index(request: web.Request) -> web.Response:
    """The web phone (docs/phones.md `GET /`)."""
    return web.Response(body=static_bytes("index.html"), content_type="text/html", charset="utf-8")


async def static(request: web.Request) -> web.Response:
    """The web phone's stylesheets and scripts (and the "My account" app's)."""
    return static_file(request.match_info["name"], STATIC_TYPES)


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers and the store is reachable."""
    return json_response({"status": "ok"})


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text format (docs/phones.md `GET /metrics`)."""
    m = request.app[GATEWAY].metrics
    m.websockets.set(request.app[HUB].count() if HUB in request.app else 0)
    return web.Response(body=m.render(), headers={"Content-Type": CONTENT_TYPE})


def _count_requests(m: Metrics) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        m.http_request(route, response.status)
        return response

    return middleware


def make_app(gateway: Gateway, smpp: ConsoleSmpp | None = None) -> web.Application:
    """The HTTP application for `gateway` (and the SMPP server's binds, for the admin API)."""
    # The counting middleware sits outside the error one, so it sees the final JSON status;
    # the guards and the recorder sit inside it, so refusals are JSON errors too and the
    # recorder only ever sees answers that were not errors.
    app = web.Application(
        middlewares=[
            _count_requests(gateway.metrics),
            error_middleware,
            security_middleware,
            recording.record_middleware,
            timing_middleware,  # the console's latency chart (docs/operations.md "Console")
        ],
        client_max_size=MAX_BODY,
    )
    cfg = gateway.config.http
    app[POLICY] = Policy.build(cfg.listen[0], cfg.allowed_hosts, cfg.allowed_origins)
    app[REQUEST_TIMEOUT] = cfg.request_timeout
    app[GATEWAY] = gateway
    app[_UNSUBSCRIBE] = []
    app.router.add_get("/", index)
    app.router.add_get("/static/{name}", static)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_routes(phone_routes)
    app.router.add_routes(network_routes)  # the phone's SS state (docs/network.md)
    recording.setup(app)  # POST/DELETE .../record: a session as a scenario file (docs/scenarios.md)
    setup_account_routes(app, gateway)  # self-care (docs/phones.md, docs/account.md)
    setup_lk_routes(app, gateway)  # the personal-account website at /lk (docs/account.md)
    setup_admin_routes(app, gateway, smpp)  # the admin API, behind its token (docs/phones.md)
    setup_fault_routes(app, gateway)  # injected network faults, admin too (docs/network.md)
    setup_console_routes(app, gateway, smpp)  # /console (docs/operations.md "Console")
    app.on_startup.append(_start)
    app.on_shutdown.append(_shutdown)
    app.on_cleanup.append(_cleanup)
    return app


async def _start(app: web.Application) -> None:
    hub = Hub(asyncio.get_running_loop())
    app[HUB] = hub
    app[_UNSUBSCRIBE].append(app[GATEWAY].engine.subscribe(hub.on_event))


async def _shutdown(app: web.Application) -> None:
    # Close sockets with 1001 before the runner drops their connections (RFC 6455 §7.4.1).
    await app[HUB].close_all()


async def _cleanup(app: web.Application) -> None:
    for unsubscribe in app[_UNSUBSCRIBE]:
        unsubscribe()
    app[_UNSUBSCRIBE].clear()


@dataclass(slots=True)
class HttpServer:
    """A running HTTP server: where it listens and how to stop it."""

    runner: web.AppRunner
    host: str
    port: int
    connections: Connections

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start_http(
    gateway: Gateway, host: str = "127.0.0.1", port: int = 0, *, smpp: ConsoleSmpp | None = None
) -> HttpServer:
    """Serve `make_app(gateway, smpp)` on host:port (0 picks a free port; see `.port`)."""
    cfg = gateway.config.http
    handler_args: dict[str, Any] = {
        "access_log": None,
        "keepalive_timeout": cfg.keepalive_timeout,
        # A body left unread (a 408, a 413) is drained this long before the connection closes.
        "lingering_time": min(cfg.request_timeout, 10.0),
    }
    # Sockets get a short grace period at shutdown; the hub has already asked them to close.
    runner = web.AppRunner(make_app(gateway, smpp), shutdown_timeout=5.0, **handler_args)
    await runner.setup()
    assert runner.server is not None
    connections = Connections(
        runner.server,
        max_connections=cfg.max_connections,
        head_timeout=cfg.request_timeout,
        handler_args=handler_args,
        on_refused=gateway.metrics.http_connection_refused,
    )
    site = Site(runner, host, port, connections)
    await site.start()
    bound: int = runner.addresses[0][1] if runner.addresses else port
    return HttpServer(runner, host, bound, connections)
