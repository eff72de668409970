"""The operations console's JSON (docs/operations.md "Console", docs/openapi.yaml): binds with
their window and rates, open dialogs, the rolling series and a bind's decoded PDU trace."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.apps.appserver import MSISDN, Seen, gateway_for, running, screen
from tests.smpp.helpers import ALICE, RecordingEsme, bound, server_config, start_server
from ussd.clock import SimulatedClock
from ussd.config import Config
from ussd.http import HttpServer, start_http
from ussd.http import console as console_module
from ussd.http.console import CONSOLE
from ussd.records import Cause
from ussd.runtime import Gateway
from ussd.smpp.constants import UssdServiceOp
from ussd.smpp.pdu import EnquireLink
from ussd.smpp.server import SmppServer

AUTH = {"Authorization": "Bearer change-me"}


@pytest.fixture
def config() -> Config:
    return server_config()


@pytest.fixture
async def smpp(gateway: Gateway) -> AsyncIterator[SmppServer]:
    srv = await start_server(gateway)
    yield srv
    await srv.stop()


@pytest.fixture
async def web(smpp: SmppServer) -> AsyncIterator[HttpServer]:
    srv = await start_http(smpp.gateway, "127.0.0.1", 0, smpp=smpp)
    yield srv
    await srv.stop()


@pytest.fixture
async def api(web: HttpServer) -> AsyncIterator[Any]:
    async with aiohttp.ClientSession(base_url=web.url, headers=AUTH) as session:

        async def get(path: str, **kwargs: Any) -> tuple[int, Any]:
            async with session.get(path, **kwargs) as r:
                return r.status, await r.json()

        yield get


async def test_the_page_and_its_files_come_from_the_gateway(web: HttpServer) -> None:
    async with aiohttp.ClientSession(base_url=web.url) as session:
        async with session.get("/console") as r:
            assert r.status == 200 and r.content_type == "text/html"
            assert "default-src 'self'" in r.headers["Content-Security-Policy"]
            page = await r.text()
        assert 'src="/console/console.js"' in page and "://" not in page
        for name, kind in [("console.js", "text/javascript"), ("console.css", "text/css")]:
            async with session.get(f"/console/{name}") as r:
                assert (r.status, r.content_type) == (200, kind)
        async with session.get("/console/..%2Fconfig.yaml") as r:
            assert r.status == 404


async def test_routes_need_the_admin_token(web: HttpServer) -> None:
    async with aiohttp.ClientSession(base_url=web.url) as session:
        for path in ("/api/v1/console", "/api/v1/console/binds/1/trace"):
            async with session.get(path) as r:
                assert (r.status, (await r.json())["error"]["code"]) == (401, "unauthorized")
            async with session.get(path, headers={"Authorization": "Bearer nope"}) as r:
                assert (r.status, (await r.json())["error"]["code"]) == (401, "invalid_token")


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/api/v1/console?minutes=0", 400, "bad_parameter"),
        ("/api/v1/console?minutes=11", 400, "bad_parameter"),
        ("/api/v1/console?minutes=five", 400, "bad_parameter"),
        ("/api/v1/console?minutes=-1", 400, "bad_parameter"),
        ("/api/v1/console?minutes=1&minutes=2", 400, "bad_parameter"),
        ("/api/v1/console?minutes=" + "9" * 40, 400, "bad_parameter"),
        ("/api/v1/console/binds/1/trace?after=x", 400, "bad_parameter"),
        ("/api/v1/console/binds/1/trace?after=-3", 400, "bad_parameter"),
        ("/api/v1/console/binds/999/trace", 404, "unknown_bind"),
        ("/api/v1/console/binds/abc/trace", 404, "unknown_bind"),
        ("/api/v1/console/binds/%D9%A3/trace", 404, "unknown_bind"),  # an Arabic-Indic 3
        ("/api/v1/console/binds/" + "1" * 30 + "/trace", 404, "unknown_bind"),
    ],
)
async def test_bad_parameters(api: Any, path: str, status: int, code: str) -> None:
    got, body = await api(path)
    assert (got, body["error"]["code"]) == (status, code), body


async def test_a_bind_its_dialog_and_the_series(
    api: Any, smpp: SmppServer, web: HttpServer, gateway: Gateway
) -> None:
    status, body = await api("/api/v1/console")
    assert status == 200 and body["smpp"] is True
    assert body["clock"] == gateway.clock.now()  # simulated: the dialogs' `started` are on it
    assert body["binds"] == [] and body["dialogs"] == {"open": 0, "shown": []}
    assert body["series"]["fields"][:3] == ["at", "steps", "pdus"]

    client = await bound(smpp)
    await client.submit(ALICE, "*111#")
    await client.deliver_sm()
    _, body = await api("/api/v1/console")
    (bind,) = body["binds"]
    assert (bind["system_id"], bind["bind_type"]) == ("harness", "transceiver")
    # bind, submit_sm in; bind_resp, submit_sm_resp, deliver_sm out (answered: window free).
    assert bind["pdus"] == {"received": 3, "sent": 3}
    assert bind["window"]["size"] == gateway.config.smpp.window
    assert bind["window"]["queued"] == 0
    (dialog,) = body["dialogs"]["shown"]
    assert dialog["msisdn"] == ALICE and dialog["service_code"] == "111"
    assert body["dialogs"]["open"] == 1

    # The sampler's figures, taken by hand at injected times (the page sees the same JSON).
    console = web.runner.app[CONSOLE]
    console.clock = lambda: 1_000.0
    console.rolling.sample(1_000.0)
    await client.request(EnquireLink())
    console.clock = lambda: 1_002.0
    console.rolling.sample(1_002.0)
    _, body = await api("/api/v1/console?minutes=1")
    (row,) = body["series"]["samples"]
    sample = dict(zip(body["series"]["fields"], row, strict=True))
    assert sample["at"] == 1_002.0 and sample["pdus"] == 1.0  # 2 PDUs in 2 s
    assert sample["dialogs"] == 1 and sample["smpp_count"] >= 1
    assert body["binds"][0]["pdus_per_s"] == 1.0
    await client.close()


async def test_the_trace_of_a_bind_decodes_its_pdus(api: Any, smpp: SmppServer) -> None:
    client = await RecordingEsme.connect(smpp.address)  # type: ignore[attr-defined]
    _, body = await api("/api/v1/console")
    bind_id = body["binds"][0]["id"]
    status, trace = await api(f"/api/v1/console/binds/{bind_id}/trace")
    assert status == 200 and trace["open"] is True and trace["pdus"] == []

    assert (await client.bind()).command_status == 0
    await client.submit(ALICE, "*111*17#")
    await client.deliver_sm()  # "enter a new password": the reply is a secret
    await client.submit(ALICE, "secret12", op=UssdServiceOp.USSR_CONFIRM)
    await client.deliver_sm()
    status, trace = await api(f"/api/v1/console/binds/{bind_id}/trace")
    pdus = trace["pdus"]
    assert [(p["dir"], p["command"]) for p in pdus] == [
        ("in", "bind_transceiver"),
        ("out", "bind_transceiver_resp"),
        ("in", "submit_sm"),
        ("out", "submit_sm_resp"),
        ("out", "deliver_sm"),
        ("in", "deliver_sm_resp"),
        ("in", "submit_sm"),
        ("out", "submit_sm_resp"),
        ("out", "deliver_sm"),
        ("in", "deliver_sm_resp"),
    ]
    assert [p["n"] for p in pdus] == list(range(1, 11))
    assert pdus[0]["system_id"] == "harness" and pdus[0]["password"] == "******"
    assert pdus[2]["source_addr"] == ALICE and pdus[2]["text"] == "*111*17#"
    assert pdus[2]["ussd_service_op"] == {"value": 1, "name": "pssr_indication"}
    first = pdus[4]
    assert first["ussd_service_op"]["name"] == "ussr_request"
    assert first["its_session_info"]["end_of_session"] is False
    assert first["status"] == "ESME_ROK" and first["destination_addr"] == ALICE
    assert pdus[6]["text"] == "********"  # the password, starred as captures star it
    assert "secret12" not in str(trace)

    # Only what is new after `after`; once the bind closes its trace stays readable.
    _, later = await api(f"/api/v1/console/binds/{bind_id}/trace?after=8")
    assert [p["n"] for p in later["pdus"]] == [9, 10]
    await client.close()
    _, body = await api("/api/v1/console")
    assert body["binds"] == []
    assert body["closed_binds"] == [
        {"id": bind_id, "system_id": "harness", "peer": trace["peer"], "pdus": 10}
    ]
    status, closed = await api(f"/api/v1/console/binds/{bind_id}/trace?after=10")
    assert (status, closed["open"], closed["pdus"]) == (200, False, [])


async def test_without_smpp_the_console_says_so(server: HttpServer) -> None:
    async with aiohttp.ClientSession(base_url=server.url, headers=AUTH) as session:
        async with session.get("/api/v1/console") as r:
            body = await r.json()
        assert (r.status, body["smpp"], body["binds"], body["closed_binds"]) == (200, False, [], [])
        async with session.get("/api/v1/console/binds/1/trace") as r:
            assert (r.status, (await r.json())["error"]["code"]) == (404, "unknown_bind")


async def test_latency_rows_count_phones_requests_and_app_answers() -> None:
    """A dial through the phones API to an app over HTTP: the interval's row counts the
    request (phones API line) and the app's answer (outside apps line)."""

    def app(seen: Seen) -> Any:
        return screen("Shop\n1. Buy", final=True)

    async with running(app) as srv, gateway_for(srv.url) as gw:
        web = await start_http(gw, "127.0.0.1", 0)
        try:
            console = web.runner.app[CONSOLE]
            console.rolling.sample(1_000.0)
            async with aiohttp.ClientSession(base_url=web.url) as session:
                async with session.post(
                    f"/api/v1/phones/{MSISDN}/dial", json={"text": "*384#"}
                ) as r:
                    assert r.status == 200 and (await r.json())["text"] == "Shop\n1. Buy"
                async with session.get(f"/api/v1/phones/{MSISDN}/sms") as r:
                    assert r.status == 200  # not a timed route
            sample = console.rolling.sample(1_001.0)
        finally:
            await web.stop()
    assert sample is not None
    assert (sample.http_count, sample.app_count, sample.smpp_count) == (1, 1, 0)
    assert sample.http_mean_ms >= sample.app_mean_ms > 0  # the request waited for the app
    assert sample.steps == 1.0


async def test_open_dialogs_are_counted_all_and_listed_newest_fifty(
    api: Any, gateway: Gateway
) -> None:
    for n in range(60):
        gateway.engine.dial(f"7916{n:07d}", "*111#")
        gateway.clock.advance(0.1)  # type: ignore[attr-defined]
    _, body = await api("/api/v1/console")
    shown = body["dialogs"]["shown"]
    assert body["dialogs"]["open"] == 60 and len(shown) == 50
    assert shown[0]["msisdn"] == "79160000059" and shown[-1]["msisdn"] == "79160000010"


async def test_a_harness_that_stops_answering_shows_a_full_window_then_idle_timeout() -> None:
    """The failure docs/operations.md "Console" teaches to read: deliver_sm never answered."""
    clock = SimulatedClock()
    gw = Gateway.create(server_config(window=1), clock=clock, database=":memory:")
    await gw.start()
    srv = await start_server(gw)
    web = await start_http(gw, "127.0.0.1", 0, smpp=srv)
    try:
        async with aiohttp.ClientSession(base_url=web.url, headers=AUTH) as session:

            async def get(path: str) -> Any:
                async with session.get(path) as r:
                    assert r.status == 200
                    return await r.json()

            client = await bound(srv, auto_ack=False)
            await client.submit(ALICE, "*111#")
            await client.deliver_sm()  # the menu arrives and is never answered
            (bind,) = (await get("/api/v1/console"))["binds"]
            assert bind["window"] == {"size": 1, "used": 1, "queued": 0}
            clock.advance(gw.config.ussd.reply_timeout + 1)
            (record,) = (await get(f"/api/v1/dialogs?msisdn={ALICE}"))["dialogs"]
            assert (record["cause"], record["via"]) == ("idle_timeout", "smpp")
            await client.close()
    finally:
        await web.stop()
        await srv.stop()
        await gw.stop()


async def test_a_rebinding_page_is_refused_and_no_origin_may_read(web: HttpServer) -> None:
    async with aiohttp.ClientSession(base_url=web.url, headers=AUTH) as session:
        async with session.get("/api/v1/console", headers={"Host": "evil.example"}) as r:
            assert (r.status, (await r.json())["error"]["code"]) == (403, "forbidden_host")
        async with session.get("/api/v1/console", headers={"Origin": "http://evil.example"}) as r:
            # Answered (the token is right), but nothing lets another origin's script read it.
            assert r.status == 200 and "Access-Control-Allow-Origin" not in r.headers
        async with session.get("/console") as r:
            assert r.headers["X-Frame-Options"] == "DENY"
            assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]


def test_the_cause_filter_offers_every_end_cause() -> None:
    page = (Path(console_module.__file__).parent / "static" / "console.html").read_text("utf-8")
    offered = re.findall(r'<option value="([a-z_]+)">', page)
    assert offered == [c.value for c in Cause]
