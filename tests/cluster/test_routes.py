"""Events routed to the worker holding the socket or bind (ussd/cluster_bus.py, docs/cluster.md).

Two `ussd-sim serve` workers as processes on real sockets (tests/cluster/test_workers.py), one
Redis, one PostgreSQL: a web-phone socket or an SMPP bind on one worker, the dialog or the SMS
on the other (or, for a dialog moved twice, on two others). A worker learns of the other's
socket or bind through Redis a moment after it opened, so each test repeats its first action (a
bounded number of times) until it is heard; what is checked is that it then arrives, which
without routing it never does.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis
import yaml

from tests.cluster.test_workers import (  # noqa: F401 (fixtures)
    Process,
    _config,
    http,
    started,
    workers,
)
from tests.smpp.helpers import RecordingEsme, text_of
from ussd.cluster_bus import EVENTS, decode
from ussd.events import DialogEnded
from ussd.smpp.constants import EsmClass
from ussd.smpp.pdu import BindReceiver, BindTransceiver, DeliverSm

RU = "79161234567"
TOKEN = {"Authorization": "Bearer change-me"}  # config.yaml's http.admin_token
ATTEMPTS = 50
HEARD = 0.2  # seconds one attempt waits for its echo before the next attempt


async def _post(
    session: aiohttp.ClientSession, url: str, body: dict[str, Any], headers: Any = None
) -> dict[str, Any]:
    async with session.post(url, json=body, headers=headers) as r:
        data: dict[str, Any] = await r.json()
        assert r.status in (200, 201), data
        return data


async def _next(ws: aiohttp.ClientWebSocketResponse, within: float) -> dict[str, Any] | None:
    """The socket's next message, or None when none comes within `within` seconds."""
    try:
        message = await ws.receive(timeout=within)
    except TimeoutError:
        return None
    assert message.type == aiohttp.WSMsgType.TEXT, message
    data: dict[str, Any] = json.loads(message.data)
    return data


async def test_a_socket_on_one_worker_hears_a_dialog_run_on_the_other(
    workers: list[Process],  # noqa: F811
    http: aiohttp.ClientSession,  # noqa: F811
) -> None:
    a, b = workers
    async with http.ws_connect(f"{a.url}/api/v1/phones/{RU}/events") as ws:
        assert (await _next(ws, 10))["type"] == "ready"  # type: ignore[index]
        heard = None
        for _ in range(ATTEMPTS):  # until b has heard of a's socket
            shown = await _post(http, f"{b.url}/api/v1/phones/{RU}/dial", {"text": "*111#"})
            while (message := await _next(ws, HEARD)) is not None:
                if message.get("session") == shown["session"] and message["type"] == "screen":
                    heard = message
                    break
            if heard is not None:
                break
        assert heard is not None, "worker a's socket never heard worker b's dialog"
        assert heard["text"] == shown["text"]
        # From now on every screen and the end arrive, in order, whichever worker runs them.
        screen = await _post(http, f"{b.url}/api/v1/phones/{RU}/reply", {"text": "3"})
        assert await _next(ws, 10) == {"type": "screen", **screen}
        await _post(http, f"{b.url}/api/v1/phones/{RU}/release", {})
        end = await _next(ws, 10)
        assert end is not None and (end["type"], end["session"], end["outcome"]) == (
            "end",
            shown["session"],
            "released",
        )
        # A push taken by worker b reaches the socket on a too.
        pushed = await _post(
            http,
            f"{b.url}/api/v1/phones/{RU}/push",
            {"text": "Hello from the network", "reply": False},
            TOKEN,
        )
        message = await _next(ws, 10)
        assert message is not None and message["type"] == "screen"
        assert (message["session"], message["text"]) == (pushed["session"], pushed["text"])


async def test_an_sms_queued_on_one_worker_goes_at_once_to_a_bind_on_the_other(
    workers: list[Process],  # noqa: F811
    http: aiohttp.ClientSession,  # noqa: F811
) -> None:
    a, b = workers
    esme = await RecordingEsme.connect(("127.0.0.1", a.smpp))
    try:
        assert (await esme.bind(BindReceiver)).command_status == 0
        delivered: DeliverSm | None = None
        sent: list[str] = []
        for i in range(ATTEMPTS):  # until b has heard of a's receiver
            text = f"routed {i}"
            await _post(http, f"{b.url}/api/v1/sms", {"to": RU, "text": text}, TOKEN)
            sent.append(text)
            try:
                pdu = await asyncio.wait_for(esme.requests.get(), HEARD)
            except TimeoutError:
                continue
            if isinstance(pdu, DeliverSm):
                delivered = pdu
                break
        assert delivered is not None, "an SMS queued on b never reached the bind on a"
        assert text_of(delivered) in sent and delivered.destination_addr == RU
        # Later ones go at once too, each once.
        await _post(http, f"{b.url}/api/v1/sms", {"to": RU, "text": "and another"}, TOKEN)
        texts = []
        while "and another" not in texts:
            texts.append(text_of(await esme.deliver_sm()))
        assert texts.count("and another") == 1
    finally:
        await esme.close()


@pytest.fixture
def apart(tmp_path: Path, redis_url: str, postgres_url: str) -> Iterator[list[Process]]:
    """Two workers whose `harness` binds take SMS for 7999… only: not for the phones here."""
    procs = [_config(tmp_path, name, redis_url, postgres_url) for name in ("wa", "wb")]
    for proc in procs:
        data = yaml.safe_load(proc.config.read_text(encoding="utf-8"))
        for account in data["smpp"]["accounts"]:
            account["sms_ranges"] = ["7999"]
        proc.config.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with started(procs):
        yield procs


async def test_an_sms_shown_on_another_workers_phone_sends_the_receipt_to_the_bind(
    apart: list[Process],
    http: aiohttp.ClientSession,  # noqa: F811
) -> None:
    a, b = apart
    esme = await RecordingEsme.connect(("127.0.0.1", a.smpp))
    try:
        assert (await esme.bind(BindTransceiver)).command_status == 0
        async with http.ws_connect(f"{b.url}/api/v1/phones/{RU}/events") as ws:
            assert (await _next(ws, 10))["type"] == "ready"  # type: ignore[index]
            shown = None
            for i in range(ATTEMPTS):  # until a has heard of b's socket
                text = f"mo {i}"
                resp = await esme.submit(
                    "79160000001", text, op=None, destination_addr=RU, registered_delivery=1
                )
                assert resp.command_status == 0
                while (message := await _next(ws, HEARD)) is not None:
                    if message["type"] == "sms" and message["text"] == text:
                        shown = message
                        break
                if shown is not None:
                    break
            assert shown is not None, "worker b's socket never showed the MO SMS from a"
            # Shown on b's phone counts as delivered: the receipt is owed on a's bind.
            receipt = await esme.deliver_sm()
            assert receipt.esm_class == EsmClass.DELIVERY_RECEIPT
            assert receipt.destination_addr == "79160000001"
    finally:
        await esme.close()


async def test_a_harness_hears_the_end_of_its_dialog_taken_over_on_the_other_worker(
    workers: list[Process],  # noqa: F811
    http: aiohttp.ClientSession,  # noqa: F811
) -> None:
    a, b = workers
    esme = await RecordingEsme.connect(("127.0.0.1", a.smpp))
    try:
        assert (await esme.bind(BindTransceiver)).command_status == 0
        end: DeliverSm | None = None
        for _ in range(ATTEMPTS):  # until b has heard of a's receiving bind
            await _dial_menu(esme)  # the menu, from a
            # The phone's other side answers through b: b takes the dialog over, then ends it.
            await _post(http, f"{b.url}/api/v1/phones/{RU}/reply", {"text": "3"})
            await _post(http, f"{b.url}/api/v1/phones/{RU}/release", {})
            try:
                pdu = await asyncio.wait_for(esme.requests.get(), HEARD)
            except TimeoutError:
                continue
            assert isinstance(pdu, DeliverSm)
            end = pdu
            break
        assert end is not None, "the harness on a never heard the end of its dialog on b"
        assert end.its_session_info is not None and end.its_session_info.end_of_session
    finally:
        await esme.close()


async def _dial_menu(esme: RecordingEsme) -> None:
    """Dial *111# for RU on the harness's bind and see the menu, the dialog still open."""
    assert (await esme.submit(RU, "*111#")).command_status == 0
    first = await esme.deliver_sm()
    assert first.its_session_info is not None
    assert not first.its_session_info.end_of_session


def _event(fields: dict[bytes, bytes]) -> object:
    """What a stream entry routed to a worker's SMS centre carries (ussd/cluster_bus.py)."""
    return decode(fields[b"data"].decode()) if fields.get(b"op") == b"smpp" else None


@pytest.fixture
def three(tmp_path: Path, redis_url: str, postgres_url: str) -> Iterator[list[Process]]:
    procs = [_config(tmp_path, name, redis_url, postgres_url) for name in ("wa", "wb", "wc")]
    with started(procs):
        yield procs


async def test_a_harness_hears_once_the_end_of_its_dialog_moved_twice(
    three: list[Process],
    http: aiohttp.ClientSession,  # noqa: F811
    redis_url: str,
) -> None:
    a, b, c = three
    esme = await RecordingEsme.connect(("127.0.0.1", a.smpp))
    try:
        assert (await esme.bind(BindTransceiver)).command_status == 0
        end: DeliverSm | None = None
        for _ in range(ATTEMPTS):  # until c has heard of a's receiving bind
            await _dial_menu(esme)  # the menu, from a
            # The dialog moves a -> b -> c: b takes it over from a, then c from b, and the
            # second answer ends it there (*111# -> 3 -> 3).
            await _post(http, f"{b.url}/api/v1/phones/{RU}/reply", {"text": "3"})
            last = await _post(http, f"{c.url}/api/v1/phones/{RU}/reply", {"text": "3"})
            assert last["end"]
            try:
                pdu = await asyncio.wait_for(esme.requests.get(), HEARD)
            except TimeoutError:
                continue
            assert isinstance(pdu, DeliverSm)
            end = pdu
            break
        assert end is not None, "the harness on a never heard the end of its dialog on c"
        assert end.its_session_info is not None and end.its_session_info.end_of_session
        assert text_of(end) == last["text"]
        # c sent it once, to a only (not also back one hop to b).
        client = redis.Redis.from_url(redis_url)
        try:
            routed: dict[str, Any] = {w.name: client.xrange(EVENTS + w.name) for w in three}
        finally:
            client.close()
        ends = {
            name: [e.session for _, f in entries if isinstance(e := _event(f), DialogEnded)]
            for name, entries in routed.items()
        }
        assert ends == {"wa": [last["session"]], "wb": [], "wc": []}
    finally:
        await esme.close()
