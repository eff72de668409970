"""Every dialect end to end: a gateway and a real app on 127.0.0.1:0 speaking it (docs/apps.md).

The app answers in its dialect's own wire format, written here by hand (not by ussd-sim's
dialect code), so a dialect that builds or reads its format wrongly fails here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web

from tests.apps.appserver import EN, MSISDN, Seen, gateway_for, heard, running
from ussd.events import AppExchange, Event

Answer = Callable[[str, bool], web.Response]


def _xml(text: str, end: bool) -> web.Response:
    body = f"<ussd><type>{3 if end else 2}</type><msg><![CDATA[{text}]]></msg></ussd>"
    return web.Response(text=body, content_type="text/xml")


# dialect: (how the app answers, the field with what the subscriber sent, what the first
# request of `*384*7#` carries there, whether a release is told and how)
DIALECTS: dict[str, tuple[Answer, str, str, tuple[str, str] | None]] = {
    "africastalking": (
        lambda text, end: web.Response(text=("END " if end else "CON ") + text),
        "text",
        "7",
        ("status", "Incomplete"),
    ),
    "hubtel": (
        lambda text, end: web.json_response(
            {"Message": text, "Type": "Release" if end else "Response"}
        ),
        "Message",
        "*384*7#",
        ("Type", "Release"),
    ),
    "hubtel-ps": (
        lambda text, end: web.json_response(
            {"Message": text, "Type": "release" if end else "response", "Label": text}
        ),
        "Message",
        "*384*7#",
        ("Type", "release"),
    ),
    "arkesel": (
        lambda text, end: web.json_response({"message": text, "continueSession": not end}),
        "userData",
        "*384*7#",
        None,
    ),
    "nalo": (
        lambda text, end: web.json_response({"MSG": text, "MSGTYPE": not end}),
        "USERDATA",
        "*384*7#",
        None,
    ),
    "truroute": (_xml, "msg", "*384*7#", ("type", "3")),
    "json": (
        lambda text, end: web.json_response({"text": text, "end": end}),
        "text",
        "*384*7#",
        None,
    ),
}


def _field(seen: Seen, name: str) -> Any:
    if seen.content_type.startswith("text/xml"):
        raw = seen.raw.decode("utf-8")
        start, stop = raw.index(f"<{name}>") + len(name) + 2, raw.index(f"</{name}>")
        return raw[start:stop]
    return seen.fields[name]


def _notified(count: int) -> Callable[[list[Event]], bool]:
    def enough(events: list[Event]) -> bool:
        return sum(isinstance(e, AppExchange) and e.outcome == "notified" for e in events) >= count

    return enough


@pytest.mark.parametrize("dialect", sorted(DIALECTS))
async def test_a_dialog_and_a_release_in_each_dialect(dialect: str) -> None:
    answer, field, first, release = DIALECTS[dialect]

    def app(seen: Seen) -> web.Response:
        if seen.path == "/end":
            return web.Response(text="OK")
        said = str(_field(seen, field))
        # A dial string (or AT's text of one) opens the menu; anything else is echoed, and ends.
        if said.startswith("*") or said in ("", "7"):
            return answer("Меню ✓", False)
        return answer(said, True)

    async with running(app) as srv:
        extra = {"end_url": srv.url.replace("/ussd", "/end")} if dialect == "africastalking" else {}
        async with gateway_for(srv.url, dialect, **extra) as gw:
            # Africa's Talking is told of every end (the first dialog's Success too).
            notices = 2 if dialect == "africastalking" else 1
            told = asyncio.create_task(heard(gw, _notified(notices))) if release else None
            opening = await gw.dial(MSISDN, "*384*7#")
            assert (opening.text, opening.end) == ("Меню ✓", False)
            closing = await gw.reply(MSISDN, "Ω")
            assert closing.end
            # The reply reached the app as typed, in the dialect's field for it.
            assert closing.text == ("7*Ω" if dialect == "africastalking" else "Ω")

            await gw.dial(EN, "*384#")
            assert gw.engine.release(EN)
            if told is not None:
                await told
    requests = srv.seen
    assert _field(requests[0], field) == first  # direct-dial inputs on the first request
    if release is None:
        assert len(requests) == 3  # nothing after the release: the dialect has no such notice
    else:
        name, value = release
        assert str(_field(requests[-1], name)) == value
