"""Pushes over HTTP (`POST /api/v1/phones/{msisdn}/push`) and app dialogs from the phones API.

One gateway serves HTTP and SMPP on real sockets; the app bind is the shared ESME client.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from bench.smpp_apps import JOURNEY as ECHO_JOURNEY
from bench.smpp_apps import EchoApp
from sim import runner
from sim import scenario as sc
from sim.esme import connect
from sim.load import LoadOptions, SmppAddress, run_load
from sim.targets import HttpTarget
from tests.scenarios.conftest import base
from tests.smpp.helpers import ALICE, BOB, Waiter, bound, start_server, text_of
from tests.smpp.test_apps import app_submit, apps_config
from ussd.config import Config
from ussd.events import DialogEnded, Outcome
from ussd.http import HttpServer, start_http
from ussd.runtime import Gateway
from ussd.smpp.constants import UssdServiceOp
from ussd.smpp.server import SmppServer

ADMIN = {"Authorization": "Bearer change-me"}

__all__ = ["base"]  # the fixture, used by name below


@pytest.fixture
def config() -> Config:
    return apps_config()


@pytest.fixture
async def both(gateway: Gateway) -> AsyncIterator[tuple[SmppServer, HttpServer]]:
    await gateway.start()
    smpp = await start_server(gateway)
    http = await start_http(gateway, "127.0.0.1", 0)
    yield smpp, http
    await http.stop()
    await smpp.stop()
    await gateway.stop()


async def post(http: HttpServer, path: str, body: Any, admin: bool = True) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession(base_url=http.url) as session,
        session.post(path, json=body, headers=ADMIN if admin else {}) as r,
    ):
        return r.status, await r.json()


async def test_web_phone_dial_reaches_the_app_bind(
    both: tuple[SmppServer, HttpServer],
) -> None:
    smpp, http = both
    app = await bound(smpp, system_id="shop", password="shoppw")

    async def app_answers() -> None:
        begin = await app.deliver_sm()
        assert text_of(begin) == "*555*2#"
        await app_submit(app, BOB, "Coffee?", 2, begin.its_session_info)
        answer = await app.deliver_sm()
        assert (answer.ussd_service_op, text_of(answer)) == (18, "yes")
        await app_submit(app, BOB, "Brewing", 17, answer.its_session_info)

    task = asyncio.create_task(app_answers())
    status, screen = await post(http, f"/api/v1/phones/{BOB}/dial", {"text": "*555*2#"}, False)
    assert (status, screen["text"], screen["end"]) == (200, "Coffee?", False)
    status, screen = await post(http, f"/api/v1/phones/{BOB}/reply", {"text": "yes"}, False)
    assert (status, screen["text"], screen["end"]) == (200, "Brewing", True)
    await task
    await app.close()


async def test_http_push_answer_goes_to_the_app(
    both: tuple[SmppServer, HttpServer], gateway: Gateway
) -> None:
    smpp, http = both
    app = await bound(smpp, system_id="shop", password="shoppw")
    body = {"text": "Rate us 1-5", "reply": True, "from": "smpp:shop"}
    status, screen = await post(http, f"/api/v1/phones/{ALICE}/push", body)
    assert (status, screen["text"], screen["end"]) == (201, "Rate us 1-5", False)
    assert "notice" not in screen

    reply = asyncio.create_task(post(http, f"/api/v1/phones/{ALICE}/reply", {"text": "5"}, False))
    answer = await app.deliver_sm()
    assert (answer.ussd_service_op, text_of(answer), answer.source_addr) == (18, "5", ALICE)
    await app_submit(app, ALICE, "Thanks!", 17, answer.its_session_info)
    status, screen = await reply
    assert (status, screen["text"], screen["end"]) == (200, "Thanks!", True)
    await app.close()


async def test_http_push_notice_from_a_tester(
    both: tuple[SmppServer, HttpServer], gateway: Gateway
) -> None:
    _, http = both
    waiter = Waiter(gateway)
    ended = waiter.expect(lambda e: isinstance(e, DialogEnded) and e.msisdn == ALICE)
    body = {"text": "Maintenance tonight", "reply": False, "from": "Operator"}
    status, screen = await post(http, f"/api/v1/phones/{ALICE}/push", body)
    assert (status, screen["notice"], screen["end"]) == (201, True, False)
    # The acknowledgement ends it.
    status, screen = await post(http, f"/api/v1/phones/{ALICE}/reply", {"text": ""}, False)
    assert status == 200 and screen["end"] is True
    event = await ended
    assert isinstance(event, DialogEnded) and event.outcome is Outcome.COMPLETED


async def test_http_push_refusals(both: tuple[SmppServer, HttpServer]) -> None:
    _, http = both
    path = f"/api/v1/phones/{ALICE}/push"
    assert (await post(http, path, {"text": "x"}, admin=False))[0] == 401
    assert (await post(http, path, {"text": ""}))[0] == 400
    assert (await post(http, path, {"text": "x", "reply": "yes"}))[0] == 400
    assert (await post(http, path, {"text": "x" * 801}))[0] == 400
    assert (await post(http, path, {"reply": True}))[0] == 400
    bad = await post(http, "/api/v1/phones/abc/push", {"text": "x"})
    assert bad[0] == 400
    status, _ = await post(http, f"/api/v1/phones/{ALICE}/dial", {"text": "*111#"}, False)
    assert status == 200
    status, error = await post(http, path, {"text": "Low balance"})
    assert (status, error["error"]["code"]) == (409, "subscriber_busy")


async def test_push_to_a_harness_handset(both: tuple[SmppServer, HttpServer]) -> None:
    smpp, http = both
    harness = await bound(smpp)
    status, _ = await post(http, f"/api/v1/phones/{BOB}/push", {"text": "Top up?", "from": "900"})
    assert status == 201
    shown = await harness.deliver_sm()
    assert (shown.ussd_service_op, text_of(shown), shown.source_addr) == (2, "Top up?", "900")
    notice = {"text": "Topped up", "reply": False}
    await harness.submit(BOB, "no", op=UssdServiceOp.USSR_CONFIRM)
    last = await harness.deliver_sm()
    assert last.ussd_service_op == 17
    status, _ = await post(http, f"/api/v1/phones/{BOB}/push", notice)
    assert status == 201
    shown = await harness.deliver_sm()
    assert (shown.ussd_service_op, text_of(shown)) == (UssdServiceOp.USSN_REQUEST, "Topped up")
    await harness.submit(BOB, "", op=UssdServiceOp.USSN_CONFIRM)
    assert (await harness.deliver_sm()).ussd_service_op == 17
    await harness.close()


async def test_a_scenario_over_http_reaches_the_app(
    both: tuple[SmppServer, HttpServer], base: dict[str, Any]
) -> None:
    smpp, http = both
    host, port = smpp.address  # type: ignore[attr-defined]
    app = await connect(EchoApp, host, port)
    await app.bind("shop", "shoppw")
    (scenario,) = sc.loads(ECHO_SCENARIO, "echo.yaml", base)
    result = await runner.run_async(scenario, HttpTarget(http.url, "change-me"))
    assert result.passed, runner.format_failure(result)
    await app.aclose()


ECHO_SCENARIO = """\
name: The echo app over HTTP
subscribers: [{msisdn: "79161234567"}]
steps:
  - dial: "*555*7#"
    expect: {continue: true, text: "Echo: *555*7#"}
  - reply: "hello"
    expect: {continue: true, text: "Echo: hello"}
  - reply: "0"
    expect: {end: true, text: "Echo: 0"}
"""


async def test_the_load_generator_runs_through_the_app_bind(
    both: tuple[SmppServer, HttpServer],
) -> None:
    smpp, _ = both
    host, port = smpp.address  # type: ignore[attr-defined]
    app = await connect(EchoApp, host, port)
    await app.bind("shop", "shoppw")
    options = LoadOptions(
        target=SmppAddress(host, port, "harness", "secret"),
        journey=ECHO_JOURNEY,  # *555# → 1 → 0, as the bench runs it
        concurrency=4,
        duration=1.0,
        subscribers=20,
        prefix="7995",
    )
    report = (await run_load(options)).to_dict()
    assert report["error_count"] == 0, report["errors"]
    assert report["steps"]["count"] > 0
    await app.aclose()
