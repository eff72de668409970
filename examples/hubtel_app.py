"""A Hubtel-dialect USSD app (docs/apps.md "hubtel").

    python examples/hubtel_app.py --port 5001
    ussd-sim run scenarios/shop.yaml --app http://127.0.0.1:5001/ussd --dialect hubtel

Hubtel sends only the latest input, so the app keeps each session's inputs itself; the first
request (`Type: Initiation`) carries the whole dial string, whose direct-dial inputs it reads.
A `Release` or `Timeout` request tells it the subscriber left.
"""

from __future__ import annotations

import sys
from pathlib import Path

from aiohttp import web

if __package__ in (None, ""):  # run as a script: make `examples` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from examples.shop import Shop, serve

SHOP = web.AppKey("shop", Shop)
SESSIONS = web.AppKey("sessions", dict)
ENDS = web.AppKey("ends", list)
MAX_SESSIONS = 10_000  # an example app still bounds what it keeps


def dial_inputs(message: str, service_code: str) -> list[str]:
    """`*714*2*50#` under ServiceCode `714` → 2, 50."""
    body = message.strip().removeprefix("*").removesuffix("#")
    rest = body.removeprefix(service_code)
    return rest.removeprefix("*").split("*") if rest.startswith("*") else []


async def ussd(request: web.Request) -> web.Response:
    data = await request.json()
    session = str(data.get("SessionId", ""))
    kind = str(data.get("Type", "")).lower()
    message = str(data.get("Message", ""))
    sessions = request.app[SESSIONS]
    if kind in ("release", "timeout"):
        sessions.pop(session, None)
        ends = request.app[ENDS]
        ends.append({"SessionId": session, "Type": data.get("Type")})
        del ends[:-100]
        return web.json_response({"Message": "", "Type": "Release"})
    if kind == "initiation":
        if len(sessions) >= MAX_SESSIONS:
            sessions.pop(next(iter(sessions)))
        sessions[session] = dial_inputs(message, str(data.get("ServiceCode", "")))
    else:
        sessions.setdefault(session, []).append(message)
    screen, end = request.app[SHOP].screen(str(data.get("Mobile", "")), sessions[session])
    if end:
        sessions.pop(session, None)
    return web.json_response({"Message": screen, "Type": "Release" if end else "Response"})


def make_app() -> web.Application:
    app = web.Application()
    app[SHOP] = Shop()
    app[SESSIONS] = {}
    app[ENDS] = []
    app.router.add_post("/ussd", ussd)
    return app


if __name__ == "__main__":
    serve(make_app(), "A Hubtel-dialect example USSD app")
