"""An Africa's Talking-dialect USSD app (docs/apps.md "africastalking").

    python examples/at_app.py --port 5000
    ussd-sim run scenarios/shop.yaml --app http://127.0.0.1:5000/ussd --dialect africastalking

POST /ussd takes AT's form (`text` is every input joined with `*`) and answers `CON …`/`END …`;
POST /ussd/end takes AT's end-of-session notification and keeps the last ones for GET /ussd/end.
"""

from __future__ import annotations

import sys
from pathlib import Path

from aiohttp import web

if __package__ in (None, ""):  # run as a script: make `examples` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from examples.shop import Shop, serve

SHOP = web.AppKey("shop", Shop)
ENDS = web.AppKey("ends", list)


async def ussd(request: web.Request) -> web.Response:
    form = await request.post()
    phone = str(form.get("phoneNumber", ""))
    text = str(form.get("text", ""))
    # AT joins inputs with `*`: "" is the first request, "2*50" is 2 then 50.
    inputs = text.split("*") if text else []
    screen, end = request.app[SHOP].screen(phone, inputs)
    return web.Response(text=("END " if end else "CON ") + screen)


async def ended(request: web.Request) -> web.Response:
    form = await request.post()
    ends = request.app[ENDS]
    ends.append({key: str(value) for key, value in form.items()})
    del ends[:-100]  # the last hundred are plenty for a console
    return web.Response(text="OK")


async def ends_seen(request: web.Request) -> web.Response:
    return web.json_response(request.app[ENDS])


def make_app() -> web.Application:
    app = web.Application()
    app[SHOP] = Shop()
    app[ENDS] = []
    app.router.add_post("/ussd", ussd)
    app.router.add_post("/ussd/end", ended)
    app.router.add_get("/ussd/end", ends_seen)
    return app


if __name__ == "__main__":
    serve(make_app(), "An Africa's Talking-dialect example USSD app")
