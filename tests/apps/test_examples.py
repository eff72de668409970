"""The example apps (examples/) speak their dialects: driven over real HTTP on 127.0.0.1:0."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from examples import at_app, hubtel_app
from ussd.apps.dialects import DIALECTS, AppAnswer, AppTarget, AppTurn, DialogEnd, HttpRequest


@asynccontextmanager
async def serving(make_app: Callable[[], web.Application]) -> AsyncIterator[TestServer]:
    server = TestServer(make_app(), host="127.0.0.1", port=0)
    await server.start_server()
    try:
        yield server
    finally:
        await server.close()


async def send(http: aiohttp.ClientSession, request: HttpRequest) -> tuple[int, str, bytes]:
    async with http.post(request.url, data=request.body, headers=dict(request.headers)) as r:
        return r.status, r.content_type, await r.read()


async def dialog(
    dialect: str, app: AppTarget, dial: str, replies: list[str], code: str = "*384#"
) -> list[AppAnswer]:
    """Dial and reply as the gateway would, in `dialect`; every answer the app gave."""
    inputs = tuple(dial[len(code) : -1].split("*")) if dial != code else ()
    answers: list[AppAnswer] = []
    async with aiohttp.ClientSession() as http:
        for sequence in range(1, len(replies) + 2):
            turn = AppTurn(
                session="S1", msisdn="79161234567", service_code=code, dial=dial,
                inputs=inputs, new=sequence == 1, sequence=sequence, client_state=None,
                network_code="25001", operator="mts",
            )  # fmt: skip
            answer = DIALECTS[dialect].answer(
                *await send(http, DIALECTS[dialect].request(turn, app))
            )
            answers.append(answer)
            if answer.end or sequence > len(replies):
                break
            inputs = (*inputs, replies[sequence - 1])
        notice = DIALECTS[dialect].end(
            turn, app, DialogEnd("release", last_answer=answers[-1].text, hops=len(answers))
        )
        if notice is not None and not answers[-1].end:
            status, _, _ = await send(http, notice)
            assert status == 200
    return answers


async def test_at_example_buys_airtime() -> None:
    async with serving(at_app.make_app) as server:
        app = AppTarget(str(server.make_url("/ussd")), end_url=str(server.make_url("/ussd/end")))
        answers = await dialog("africastalking", app, "*384#", ["2", "50", "1"])
        assert [a.end for a in answers] == [False, False, False, True]
        assert answers[0].text.startswith("Welcome to the shop")
        assert answers[-1] == AppAnswer("Bought 50. Balance 50.00", True)
        # Direct dial: *384*1# gives the balance at once.
        assert await dialog("africastalking", app, "*384*1#", []) == [
            AppAnswer("Your balance is 50.00", True)
        ]


async def test_at_example_hears_the_end_notification() -> None:
    async with serving(at_app.make_app) as server:
        app = AppTarget(str(server.make_url("/ussd")), end_url=str(server.make_url("/ussd/end")))
        await dialog("africastalking", app, "*384#", ["2"])  # leaves on "Amount?"
        async with aiohttp.ClientSession() as http, http.get(app.end_url or "") as r:
            ends = await r.json()
        assert [(e["status"], e["input"], e["lastAppResponse"]) for e in ends] == [
            ("Incomplete", "2", "CON Amount?")
        ]


async def test_hubtel_example_keeps_its_own_history() -> None:
    async with serving(hubtel_app.make_app) as server:
        app = AppTarget(str(server.make_url("/ussd")))
        answers = await dialog("hubtel", app, "*384#", ["2", "30", "2"])
        assert answers[-1] == AppAnswer("Cancelled", True)
        assert await dialog("hubtel", app, "*384*2*30#", ["1"]) == [
            AppAnswer("Buy 30 airtime for 79161234567?\n1. Yes\n2. No", False),
            AppAnswer("Bought 30. Balance 70.00", True),
        ]


async def test_hubtel_example_hears_a_release() -> None:
    async with serving(hubtel_app.make_app) as server:
        app = AppTarget(str(server.make_url("/ussd")))
        await dialog("hubtel", app, "*384#", ["2"])
        assert server.app is not None
        assert server.app[hubtel_app.ENDS] == [{"SessionId": "S1", "Type": "Release"}]
        assert server.app[hubtel_app.SESSIONS] == {}
