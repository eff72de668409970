"""The operations console (docs/operations.md "Console"): the page at /console and its JSON.

The page polls `GET /api/v1/console` about once a second, and the trace of the bind it shows
(`GET /api/v1/console/binds/{id}/trace?after=N`); both sit behind the admin token like the
rest of the admin API. Records and fault rules come from their own routes (`/api/v1/dialogs`,
`/api/v1/faults`), which the page asks for directly.

The rolling figures are sampled here once a second (ussd/rolling.py) from counters the
gateway and the SMPP server already keep; the timer is a loop callback, never a sleeping task.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web

from ussd.http.admin import AdminApi, SmppBinds
from ussd.http.errors import ApiError, Handler, json_response, static_bytes, static_file
from ussd.rolling import FIELDS, BindCounts, Counters, Rolling, Tally, totals
from ussd.smpp.capture import CaptureError
from ussd.smpp.trace import LIMIT, Trace, describe

if TYPE_CHECKING:
    from ussd.runtime import Gateway

__all__ = ["CONSOLE", "Console", "ConsoleSmpp", "setup_console_routes", "timing_middleware"]

INTERVAL = 1.0  # seconds between samples
MAX_MINUTES = 10  # the ring holds ten minutes (ussd.rolling.HISTORY)
DEFAULT_MINUTES = 5
MAX_DIALOGS = 50  # open dialogs listed (the newest); the count is always exact
# The phones API routes a handset waits on: their time is the web phone's latency.
TIMED_ROUTES = frozenset(
    f"/api/v1/phones/{{msisdn}}/{action}" for action in ("dial", "reply", "release")
)

# What the sampler reads from the gateway's registry (GET /metrics shows the same series).
_STEPS, _PDUS, _OPEN = "ussd_screens_total", "ussd_smpp_pdus_total", "ussd_dialogs_open"
_APP_SECONDS, _APP_ANSWERS = "ussd_app_latency_seconds_sum", "ussd_app_latency_seconds_count"
_SAMPLES = (_STEPS, _PDUS, _OPEN, _APP_SECONDS, _APP_ANSWERS)

ASSETS = {"console.css": "text/css", "console.js": "text/javascript"}
# Own files only, nothing from elsewhere, no framing; charts are inline SVG the script draws.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


class ConsoleSmpp(SmppBinds, Protocol):
    """What the console asks of the SMPP server (ussd.smpp.server.SmppServer), besides what
    the admin API does."""

    turnaround: Tally

    def bind_counts(self) -> list[BindCounts]: ...
    def trace(self, bind_id: int) -> Trace: ...
    def closed_traces(self) -> list[Trace]: ...


class Console:
    """The console's sampler and routes for one gateway (and its SMPP server, if any)."""

    def __init__(
        self,
        gateway: Gateway,
        smpp: ConsoleSmpp | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.gateway = gateway
        self.smpp = smpp
        self.clock = clock  # wall time: the charts are about real minutes, whatever the clock
        self.http = Tally()  # phones API latency, fed by timing_middleware
        self.rolling = Rolling(
            self._counters,
            self._bind_counts,
            smpp.turnaround if smpp is not None else Tally(),
            self.http,
        )
        self._timer: asyncio.TimerHandle | None = None

    # -- the sampler -------------------------------------------------------------------------

    def _counters(self) -> Counters:
        got = totals(self.gateway.metrics.registry, _SAMPLES)
        return Counters(
            got[_STEPS], got[_PDUS], int(got[_OPEN]), got[_APP_SECONDS], got[_APP_ANSWERS]
        )

    def _bind_counts(self) -> list[BindCounts]:
        return [] if self.smpp is None else self.smpp.bind_counts()

    def _open(self) -> list[dict[str, Any]]:
        return self.gateway.engine.sessions()

    def start(self) -> None:
        self.rolling.sample(self.clock())
        self._timer = asyncio.get_running_loop().call_later(INTERVAL, self._tick)

    def _tick(self) -> None:
        self.rolling.sample(self.clock())
        self._timer = asyncio.get_running_loop().call_later(INTERVAL, self._tick)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- JSON --------------------------------------------------------------------------------

    def snapshot(self, minutes: int) -> dict[str, Any]:
        """Everything the page shows but records, faults and a trace (docs/openapi.yaml)."""
        now = self.clock()
        binds = [] if self.smpp is None else self.smpp.bind_list()
        for bind in binds:
            bind["pdus_per_s"] = round(self.rolling.rate(bind["id"]), 2)
        closed = [] if self.smpp is None else self.smpp.closed_traces()
        dialogs = self._open()
        dialogs.sort(key=lambda d: d["started"], reverse=True)
        return {
            "now": now,
            "clock": self.gateway.clock.now(),  # the gateway's, maybe simulated: dialog ages
            "interval": INTERVAL,
            "smpp": self.smpp is not None,
            "binds": binds,
            "closed_binds": [
                {"id": t.key, "system_id": t.system_id, "peer": t.peer, "pdus": t.count}
                for t in closed
            ],
            "dialogs": {"open": len(dialogs), "shown": dialogs[:MAX_DIALOGS]},
            "series": {
                "fields": list(FIELDS),
                "samples": [s.to_json() for s in self.rolling.since(now - 60 * minutes)],
            },
        }

    async def get(self, request: web.Request) -> web.Response:
        """`GET /api/v1/console?minutes=N` (1..10, default 5)."""
        minutes = _int_param(request, "minutes", DEFAULT_MINUTES, 1, MAX_MINUTES)
        return json_response(self.snapshot(minutes))

    async def trace(self, request: web.Request) -> web.Response:
        """`GET /api/v1/console/binds/{id}/trace?after=N`: the PDUs numbered above N."""
        text = request.match_info["id"]
        if self.smpp is None or not text.isascii() or not text.isdigit() or len(text) > 18:
            raise ApiError(404, "unknown_bind", f"no open or traced SMPP connection {text[:20]!r}")
        after = _int_param(request, "after", 0, 0, 2**53)
        try:
            trace = self.smpp.trace(int(text))
        except CaptureError as exc:
            raise ApiError(404, exc.code, exc.message) from None
        return json_response(
            {
                "id": trace.key,
                "system_id": trace.system_id,
                "peer": trace.peer,
                "open": trace.open,
                "count": trace.count,
                "limit": LIMIT,
                "pdus": [describe(e) for e in trace.after(after)],
            }
        )

    # -- the page ----------------------------------------------------------------------------

    async def page(self, request: web.Request) -> web.Response:
        """`GET /console`."""
        return web.Response(
            body=static_bytes("console.html"),
            content_type="text/html",
            charset="utf-8",
            headers=PAGE_HEADERS,
        )

    async def asset(self, request: web.Request) -> web.Response:
        """`GET /console/{name}`: the page's stylesheet and script (a fixed list)."""
        return static_file(request.match_info["name"], ASSETS)


def _int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    values = request.query.getall(name, [])
    if not values:
        return default
    text = values[0]
    if len(values) > 1 or not text.isascii() or not text.isdigit() or len(text) > 18:
        raise ApiError(400, "bad_parameter", f"{name}: a whole number from {low} to {high}")
    value = int(text)
    if not low <= value <= high:
        raise ApiError(400, "bad_parameter", f"{name}: a whole number from {low} to {high}")
    return value


CONSOLE: web.AppKey[Console] = web.AppKey("console")


@web.middleware
async def timing_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Time the phones API's dial, reply and release for the console's latency chart."""
    resource = request.match_info.route.resource
    if resource is None or resource.canonical not in TIMED_ROUTES or CONSOLE not in request.app:
        return await handler(request)
    started = time.perf_counter()
    try:
        return await handler(request)
    finally:
        request.app[CONSOLE].http.add(time.perf_counter() - started)


def setup_console_routes(
    app: web.Application, gateway: Gateway, smpp: ConsoleSmpp | None = None
) -> None:
    """Add /console, its files and its JSON (admin token) to `app`; sample while it runs."""
    console = Console(gateway, smpp)
    app[CONSOLE] = console
    guard = AdminApi(gateway).guard
    app.router.add_get("/console", console.page)
    app.router.add_get("/console/{name}", console.asset)
    app.router.add_get("/api/v1/console", guard(console.get))
    app.router.add_get("/api/v1/console/binds/{id}/trace", guard(console.trace))

    async def start(app: web.Application) -> None:
        console.start()

    async def stop(app: web.Application) -> None:
        console.stop()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
