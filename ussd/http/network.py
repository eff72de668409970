"""What the network keeps about a handset, for the web phone's "Network settings" line.

`GET /api/v1/phones/{msisdn}/ss` is the `ss` object of the admin API (docs/network.md) without
the admin token: the phones API serves the handset's owner, like its SMS inbox, and the object
never holds the barring password or its hash. It never provisions: a number not yet known has
no state to show (404).
"""

from __future__ import annotations

from aiohttp import web

from ussd.http.errors import ApiError, json_response
from ussd.http.phones import GATEWAY
from ussd.msisdn import InvalidMsisdn

routes = web.RouteTableDef()


@routes.get("/api/v1/phones/{msisdn}/ss")
async def supplementary(request: web.Request) -> web.Response:
    """The phone's supplementary services as the network keeps them."""
    gw = request.app[GATEWAY]
    try:
        msisdn = gw.engine.normalise(request.match_info["msisdn"])
    except InvalidMsisdn as exc:
        raise ApiError(400, "bad_msisdn", str(exc)) from exc
    if gw.find_subscriber(msisdn) is None:
        raise ApiError(404, "unknown_msisdn", f"no subscriber {msisdn}")
    return json_response(gw.supplementary(msisdn))
