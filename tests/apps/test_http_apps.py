"""Apps over HTTP end to end: a gateway asks a real app server on 127.0.0.1:0 (docs/apps.md)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from typing import Any

import pytest
from aiohttp import web

from tests.apps.appserver import (
    EN,
    MSISDN,
    Seen,
    app_config,
    con,
    end,
    gateway_for,
    heard,
    running,
    screen,
)
from ussd.clock import SimulatedClock
from ussd.engine import DialogBusy, NoDialog
from ussd.events import AppExchange, DialogEnded, Event, Outcome
from ussd.runtime import Gateway


def record(gw: Gateway) -> list[Event]:
    seen: list[Event] = []
    gw.engine.subscribe(seen.append)
    return seen


def outcomes(events: list[Event]) -> list[Outcome]:
    return [e.outcome for e in events if isinstance(e, DialogEnded)]


def exchanges(events: list[Event]) -> list[AppExchange]:
    return [e for e in events if isinstance(e, AppExchange)]


async def test_json_app_dialog_continue_then_end() -> None:
    def app(seen: Seen) -> web.Response:
        if seen.fields["new"]:
            return screen("Shop\n1. Buy\n2. Sell")
        return screen(f"You chose {seen.fields['text']}", final=True)

    async with running(app) as srv, gateway_for(srv.url) as gw:
        events = record(gw)
        first = await gw.dial(MSISDN, "*384#")
        assert (first.text, first.end) == ("Shop\n1. Buy\n2. Sell", False)
        last = await gw.reply(MSISDN, "2")
        assert (last.text, last.end) == ("You chose 2", True)
        assert outcomes(events) == [Outcome.APP_RELEASE]
    bodies = srv.bodies()
    assert [b["new"] for b in bodies] == [True, False]
    assert [b["inputs"] for b in bodies] == [[], ["2"]]
    assert bodies[0]["session"] == bodies[1]["session"]
    assert bodies[0]["msisdn"] == MSISDN and bodies[0]["code"] == "*384#"
    assert [x.outcome for x in exchanges(events)] == ["continue", "end"]
    assert all(x.status == 200 and x.app == "shop" and x.url == srv.url for x in exchanges(events))


async def test_direct_dial_inputs_reach_the_first_request() -> None:
    async with running(lambda seen: screen("ok", final=True)) as srv, gateway_for(srv.url) as gw:
        assert (await gw.dial(MSISDN, "*384*1*2#")).text == "ok"
    (body,) = srv.bodies()
    assert body["inputs"] == ["1", "2"] and body["new"] is True


# The Africa's Talking `text` rule (docs/apps.md): every input so far joined with `*`, empty on
# the first request, the direct-dial inputs on the first request, a typed `*` passed as typed.
AT_TEXT = [
    ("*384#", [], [""]),
    ("*384#", ["1"], ["", "1"]),
    ("*384#", ["1", "2"], ["", "1", "1*2"]),
    ("*384*1*2#", [], ["1*2"]),
    ("*384*1*2#", ["3"], ["1*2", "1*2*3"]),
    ("*384#", ["3*4", "5"], ["", "3*4", "3*4*5"]),
    ("*384#", ["", "1"], ["", "", "*1"]),
]


@pytest.mark.parametrize(("dial", "replies", "texts"), AT_TEXT)
async def test_africastalking_text_rule(dial: str, replies: list[str], texts: list[str]) -> None:
    async with (
        running(lambda seen: con("Next")) as srv,
        gateway_for(srv.url, "africastalking") as gw,
    ):
        await gw.dial(MSISDN, dial)
        for text in replies:
            await gw.reply(MSISDN, text)
    bodies = srv.bodies()
    assert [b["text"] for b in bodies] == texts
    assert {b["phoneNumber"] for b in bodies} == {"+" + MSISDN}
    assert {b["serviceCode"] for b in bodies} == {"*384#"}
    assert len({b["sessionId"] for b in bodies}) == 1


async def test_africastalking_end_notification_after_end_and_after_release() -> None:
    def app(seen: Seen) -> web.Response:
        if seen.path == "/end":
            return web.Response(text="")
        return end("Bye") if seen.fields["text"] == "9" else con("Menu")

    async with running(app) as srv:
        end_url = srv.url.replace("/ussd", "/end")
        async with gateway_for(srv.url, "africastalking", end_url=end_url) as gw:
            told = asyncio.create_task(
                heard(
                    gw, lambda events: sum(x.outcome == "notified" for x in exchanges(events)) == 2
                )
            )
            await gw.dial(MSISDN, "*384#")
            assert (await gw.reply(MSISDN, "9")).text == "Bye"
            await gw.dial(EN, "*384#")
            assert gw.engine.release(EN)
            await told  # told in tasks of their own
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(gw.clock.now()))
    done, released = srv.bodies("/end")
    assert done["status"] == "Success" and done["hopsCount"] == "2" and done["input"] == "9"
    assert done["lastAppResponse"] == "END Bye" and done["date"] == stamp
    assert released["status"] == "Incomplete" and released["phoneNumber"] == "+" + EN


async def test_app_timeout_ends_the_dialog_with_the_unavailable_screen() -> None:
    gate = asyncio.Event()

    async def slow(seen: Seen) -> web.Response:
        await gate.wait()  # released by the test after the gateway gave up
        return screen("too late")

    async with running(slow) as srv, gateway_for(srv.url, timeout="5s") as gw:
        events = record(gw)
        dial = asyncio.create_task(gw.dial(MSISDN, "*384#"))
        await srv.arrived.wait()
        gw.advance(4.9)
        assert not dial.done() and gw.engine.dialog(MSISDN) is not None
        with pytest.raises(DialogBusy):
            await gw.reply(MSISDN, "1")
        gw.advance(0.1)
        shown = await dial
        gate.set()
    assert shown.end and shown.text == "Сервис временно недоступен. Попробуйте позже."
    assert outcomes(events) == [Outcome.APP_TIMEOUT]
    assert [x.outcome for x in exchanges(events)] == ["timeout"]
    assert gw.engine.late_answers == 0  # the request was stopped, not answered late


async def test_a_release_while_the_app_thinks_cancels_the_request() -> None:
    gate = asyncio.Event()

    async def slow(seen: Seen) -> web.Response:
        await gate.wait()
        return screen("too late")

    async with running(slow) as srv, gateway_for(srv.url) as gw:
        events = record(gw)
        dial = asyncio.create_task(gw.dial(MSISDN, "*384#"))
        await srv.arrived.wait()
        assert gw.engine.release(MSISDN)
        with pytest.raises(NoDialog):
            await dial
        gate.set()
    assert outcomes(events) == [Outcome.RELEASED]
    assert [x.outcome for x in exchanges(events)] == ["cancelled"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # closed again: nothing listens there


async def test_a_dead_app_is_unavailable() -> None:
    url = f"http://127.0.0.1:{_free_port()}/ussd"
    async with gateway_for(url) as gw:
        events = record(gw)
        shown = await gw.dial(EN, "*384#")
    assert shown.end and shown.text == "Service temporarily unavailable. Please try again later."
    assert outcomes(events) == [Outcome.APP_UNAVAILABLE]
    (exchange,) = exchanges(events)
    assert (exchange.outcome, exchange.status) == ("unavailable", None)
    ended = next(e for e in events if isinstance(e, DialogEnded))
    assert ended.record is not None and ended.record.detail.startswith("cannot connect")


def _raw(status: int, body: bytes, content_type: str = "application/json") -> web.Response:
    return web.Response(status=status, body=body, content_type=content_type)


# Every kind of unusable answer: the subscriber gets the error screen, the dialog app_error.
BAD_ANSWERS: list[tuple[str, str, Any]] = [
    ("json", "status 500", _raw(500, b'{"text": "x", "end": true}')),
    ("json", "status 404", _raw(404, b"not found", "text/plain")),
    ("json", "a redirect", web.Response(status=302, headers={"Location": "http://x/"})),
    ("json", "not JSON", _raw(200, b"<html>oops</html>", "text/html")),
    ("json", "JSON, not an object", _raw(200, b"[1, 2]")),
    ("json", "no text", _raw(200, b'{"end": false}')),
    ("json", "an empty text", _raw(200, b'{"text": "", "end": false}')),
    ("json", "no end", _raw(200, b'{"text": "hi"}')),
    ("json", "an empty body", _raw(200, b"")),
    ("json", "not UTF-8", _raw(200, b'{"text": "\xff\xfe", "end": true}')),
    ("json", "too large", _raw(200, b'{"text": "' + b"a" * 70_000 + b'", "end": true}')),
    ("africastalking", "neither CON nor END", _raw(200, b"HELLO", "text/plain")),
    ("africastalking", "CON and nothing", _raw(200, b"CON ", "text/plain")),
    ("africastalking", "an empty body", _raw(200, b"", "text/plain")),
    ("africastalking", "status 503", _raw(503, b"END down", "text/plain")),
]


@pytest.mark.parametrize(
    ("dialect", "kind", "answer"), BAD_ANSWERS, ids=[b[1] for b in BAD_ANSWERS]
)
async def test_bad_answers_end_with_the_error_screen(dialect: str, kind: str, answer: Any) -> None:
    async with running(lambda seen: answer) as srv, gateway_for(srv.url, dialect) as gw:
        events = record(gw)
        shown = await gw.dial(EN, "*384#")
        assert (await gw.dial(EN, "*100#")).end  # the gateway carries on
    assert shown.end and shown.text == "The service failed to answer. Please try again later."
    assert outcomes(events)[0] is Outcome.APP_ERROR
    (exchange,) = exchanges(events)
    assert exchange.outcome == "error"
    # The dialog's record says why (docs/operations.md "Dialog records").
    ended = next(e for e in events if isinstance(e, DialogEnded))
    assert ended.record is not None and ended.record.cause == "app_error" and ended.record.detail


async def _chunks() -> Any:
    for _ in range(1000):  # a megabyte, without a Content-Length
        yield b"x" * 1024


async def test_a_streamed_answer_past_the_limit_is_an_app_error() -> None:
    async with (
        running(lambda seen: web.Response(body=_chunks(), content_type="text/plain")) as srv,
        gateway_for(srv.url, "africastalking") as gw,
    ):
        events = record(gw)
        shown = await gw.dial(EN, "*384#")
    assert shown.end and outcomes(events) == [Outcome.APP_ERROR]
    assert exchanges(events)[0].outcome == "error"


async def test_unicode_both_ways() -> None:
    def app(seen: Seen) -> web.Response:
        if seen.fields["new"]:
            return screen("Как вас зовут? 😀")
        return screen(f"Привет, {seen.fields['text']}! 👋", final=True)

    async with running(app) as srv, gateway_for(srv.url) as gw:
        assert (await gw.dial(MSISDN, "*384#")).text == "Как вас зовут? 😀"
        assert (await gw.reply(MSISDN, "Фёдор 🚀")).text == "Привет, Фёдор 🚀! 👋"
    assert srv.bodies()[1]["inputs"] == ["Фёдор 🚀"]


async def test_africastalking_unicode_input() -> None:
    async with (
        running(lambda seen: con(f"Вы: {seen.fields['text']}")) as srv,
        gateway_for(srv.url, "africastalking") as gw,
    ):
        await gw.dial(MSISDN, "*384#")
        assert (await gw.reply(MSISDN, "Ёлка")).text == "Вы: Ёлка"


async def test_a_long_answer_is_paginated_or_truncated() -> None:
    long = " ".join(f"word{i}" for i in range(100))  # about 600 GSM characters
    async with running(lambda seen: screen(long)) as srv:
        async with gateway_for(srv.url) as gw:
            first = await gw.dial(EN, "*384#")
            assert first.pages > 1 and first.text.endswith("98. More")
            second = await gw.reply(EN, "98")
            assert second.page == 2 and len(srv.seen) == 1  # paging is the gateway's own
        async with gateway_for(srv.url, screen_policy="truncate") as gw:
            cut = await gw.dial(EN, "*384#")
            assert cut.pages == 1 and long.startswith(cut.text) and len(cut.text) == 182


async def test_a_thousand_concurrent_dialogs_to_one_app_none_lost_or_crossed() -> None:
    # Every answer names the subscriber and the input it answers: a crossed answer shows.
    def app(seen: Seen) -> web.Response:
        who = seen.fields["msisdn"]
        if seen.fields["new"]:
            return screen(f"hello {who}")
        return screen(f"{who} said {seen.fields['text']}", final=True)

    numbers = [f"7900{i:07d}" for i in range(1000)]
    async with running(app) as srv, gateway_for(srv.url) as gw:
        events = record(gw)
        firsts = await asyncio.gather(*(gw.dial(n, "*384#") for n in numbers))
        lasts = await asyncio.gather(*(gw.reply(n, n[-4:]) for n in numbers))
        assert gw._apps is not None and gw._apps._dialogs == {}  # nothing held after the end
    assert [s.text for s in firsts] == [f"hello {n}" for n in numbers]
    assert [s.text for s in lasts] == [f"{n} said {n[-4:]}" for n in numbers]
    assert outcomes(events) == [Outcome.APP_RELEASE] * 1000
    assert len(srv.seen) == 2000


async def test_credentials_are_sent_and_kept_out_of_the_console() -> None:
    async with running(lambda seen: screen("ok", final=True)) as srv:
        url = srv.url.replace("http://", "http://shop:pa55@")
        async with gateway_for(url, headers={"X-Api-Key": "s3cret"}) as gw:
            events = record(gw)
            await gw.dial(MSISDN, "*384#")
    assert srv.seen[0].headers["X-Api-Key"] == "s3cret"
    assert srv.seen[0].headers["Authorization"] == "Basic c2hvcDpwYTU1"  # shop:pa55
    (exchange,) = exchanges(events)
    assert exchange.url == srv.url and exchange.request.startswith(f"POST {srv.url}\n")
    assert "s3cret" not in repr(exchange) and "pa55" not in repr(exchange)


async def test_metrics_count_requests_by_app_and_outcome() -> None:
    async with running(lambda seen: screen("ok", final=True)) as srv, gateway_for(srv.url) as gw:
        await gw.dial(MSISDN, "*384#")
        await gw.dial(EN, "*384#")
        text = gw.metrics.render().decode()
    assert 'ussd_app_requests_total{app="shop",outcome="end"} 2.0' in text
    assert 'ussd_app_latency_seconds_count{app="shop"} 2.0' in text
    assert 'ussd_dialogs_ended_total{outcome="app_release"} 2.0' in text


async def test_without_a_started_gateway_an_app_route_is_an_app_error() -> None:
    # The synchronous engine API performs no effects (docs/design.md): a clear error screen.
    async with running(lambda seen: screen("never")) as srv:
        gw = Gateway.create(app_config(srv.url), clock=SimulatedClock(), database=":memory:")
        try:
            shown = gw.engine.dial(MSISDN, "*384#")
        finally:
            gw.close()
    assert shown.end and shown.text == "Ошибка сервиса. Попробуйте позже."
    assert srv.seen == []


def hubtel(seen: Seen) -> web.Response:
    """A Hubtel app that keeps its place in ClientState, and accepts end notices."""
    fields = seen.fields
    if fields["Type"] in ("Release", "Timeout"):
        return web.json_response({})
    state = f"{fields['ClientState']}>{fields['Message']}"
    return web.json_response({"Message": f"at {state}", "Type": "Response", "ClientState": state})


def notified(events: list[Event]) -> bool:
    return any(x.outcome == "notified" for x in exchanges(events))


@pytest.mark.parametrize(("how", "told"), [("release", "Release"), ("timeout", "Timeout")])
async def test_hubtel_hears_a_release_and_a_timeout(how: str, told: str) -> None:
    async with running(hubtel) as srv, gateway_for(srv.url, "hubtel") as gw:
        assert (await gw.dial(MSISDN, "*384*7#")).text == "at >*384*7#"
        assert (await gw.reply(MSISDN, "1")).text == "at >*384*7#>1"
        notice = asyncio.create_task(heard(gw, notified))
        if how == "release":
            assert gw.engine.release(MSISDN)
        else:
            gw.advance(gw.config.ussd.reply_timeout)  # the subscriber never answers
        await notice
    bodies = srv.bodies()
    assert [b["Type"] for b in bodies] == ["Initiation", "Response", told]
    assert [b["Sequence"] for b in bodies] == [1, 2, 3]
    assert [b["ClientState"] for b in bodies] == ["", ">*384*7#", ">*384*7#>1"]
    assert bodies[2]["Message"] == "" and bodies[2]["ServiceCode"] == "384"
    assert len({b["SessionId"] for b in bodies}) == 1


async def test_end_notices_are_bounded_and_abandoned_at_stop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ussd.apps import client as client_mod

    monkeypatch.setattr(client_mod, "MAX_NOTICES", 2)
    never = asyncio.Event()

    async def app(seen: Seen) -> web.Response:
        if seen.path == "/end":
            await never.wait()  # an end_url that never answers
        return con("Menu")

    async with running(app) as srv:
        end_url = srv.url.replace("/ussd", "/end")
        gw = Gateway.create(
            app_config(srv.url, "africastalking", end_url=end_url),
            clock=SimulatedClock(),
            database=":memory:",
        )
        await gw.start()
        apps = gw._apps
        assert apps is not None
        numbers = [f"7900000000{i}" for i in range(3)]
        for n in numbers:
            await gw.dial(n, "*384#")
        arrived = asyncio.create_task(until(lambda: len(srv.bodies("/end")) == 2, srv))
        for n in numbers:
            assert gw.engine.release(n)
        await arrived
        assert apps.notices_dropped == 1 and apps._dialogs == {}
        await asyncio.wait_for(gw.stop(), 10)  # the two in flight are abandoned, not awaited
        assert apps._notices == set()
        never.set()


async def until(predicate: Any, srv: Any) -> None:
    """Wait until predicate() holds, re-checked whenever the app receives a request."""
    while not predicate():
        srv.arrived.clear()
        await srv.arrived.wait()


async def test_a_dialog_asks_its_app_at_most_max_requests_times() -> None:
    from ussd.apps.service import MAX_REQUESTS

    async with running(lambda seen: screen("again")) as srv, gateway_for(srv.url) as gw:
        events = record(gw)
        await gw.dial(EN, "*384#")
        for _ in range(MAX_REQUESTS - 1):
            assert not (await gw.reply(EN, "1")).end
        last = await gw.reply(EN, "1")
    assert last.end and last.text == "The service failed to answer. Please try again later."
    assert len(srv.seen) == MAX_REQUESTS and outcomes(events) == [Outcome.APP_ERROR]


async def test_the_clients_own_timeout_when_the_gateway_clock_stands_still() -> None:
    # A simulated clock only moves when told: the HTTP client's real-time limit (the same
    # `timeout`) still ends the wait. A short one keeps the test short; nothing sleeps.
    gate = asyncio.Event()

    async def slow(seen: Seen) -> web.Response:
        await gate.wait()
        return screen("too late")

    async with running(slow) as srv, gateway_for(srv.url, timeout="150ms") as gw:
        events = record(gw)
        shown = await gw.dial(EN, "*384#")
        gate.set()
    assert shown.end and shown.text == "Service temporarily unavailable. Please try again later."
    assert outcomes(events) == [Outcome.APP_TIMEOUT]
    assert [x.outcome for x in exchanges(events)] == ["timeout"]


async def test_a_failing_dialect_costs_its_exchange_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from ussd.apps import client as client_mod

    real = client_mod.DIALECTS["json"]

    class Broken:
        name = "json"
        request = staticmethod(real.request)
        end = staticmethod(real.end)

        @staticmethod
        def answer(status: int, content_type: str, body: bytes) -> Any:
            raise KeyError("a bug")

    monkeypatch.setattr(client_mod, "DIALECTS", {"json": Broken()})
    async with running(lambda seen: screen("ok")) as srv, gateway_for(srv.url) as gw:
        events = record(gw)
        shown = await gw.dial(EN, "*384#")
        assert (await gw.dial(EN, "*100#")).end  # the gateway carries on
    assert shown.text == "The service failed to answer. Please try again later."
    assert outcomes(events)[0] is Outcome.APP_ERROR
    assert [x.outcome for x in exchanges(events)] == ["error"]


async def test_no_connection_within_connect_timeout_is_unavailable() -> None:
    # A listening socket whose accept queue is full: the kernel drops further SYNs, so the
    # connection never opens and the client's connect timeout (short here) ends the wait.
    with socket.socket() as full:
        full.bind(("127.0.0.1", 0))
        full.listen(0)
        port = full.getsockname()[1]
        fillers = [socket.socket() for _ in range(4)]
        try:
            for filler in fillers:
                filler.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    filler.connect(("127.0.0.1", port))
            url = f"http://127.0.0.1:{port}/ussd"
            async with gateway_for(url, connect_timeout="100ms") as gw:
                events = record(gw)
                shown = await gw.dial(EN, "*384#")
        finally:
            for filler in fillers:
                filler.close()
    assert shown.text == "Service temporarily unavailable. Please try again later."
    assert outcomes(events) == [Outcome.APP_UNAVAILABLE]
    ended = next(e for e in events if isinstance(e, DialogEnded))
    assert ended.record is not None and ended.record.detail == "no connection within 0.1 s"


async def test_africastalking_hears_why_a_dialog_failed() -> None:
    def app(seen: Seen) -> web.Response:
        if seen.path == "/end":
            return web.Response(text="")
        return web.Response(text="Welcome", content_type="text/plain")  # neither CON nor END

    async with running(app) as srv:
        end_url = srv.url.replace("/ussd", "/end")
        async with gateway_for(srv.url, "africastalking", end_url=end_url) as gw:
            told = asyncio.create_task(heard(gw, notified))
            await gw.dial(MSISDN, "*384#")
            await told
    (failed,) = srv.bodies("/end")
    assert failed["status"] == "Failed"
    assert failed["errorMessage"].startswith("the answer does not begin with CON or END")
