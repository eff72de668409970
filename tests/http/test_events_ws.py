"""The `.../events` WebSocket on a real socket: pushes, disconnects, slow consumers."""

from __future__ import annotations

import asyncio
import base64
import os
from typing import Any

import aiohttp
import pytest
from aiohttp import WSCloseCode, WSMsgType

from tests.http.conftest import EN, RU, Client, eventually
from ussd.events import SmsState
from ussd.http import HttpServer
from ussd.http import phones as phones_mod
from ussd.runtime import Gateway

TIMEOUT = 5.0


async def _next(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    msg = await ws.receive(timeout=TIMEOUT)
    assert msg.type is WSMsgType.TEXT, msg
    data: dict[str, Any] = msg.json()
    return data


async def _connect(http: Client, msisdn: str) -> aiohttp.ClientWebSocketResponse:
    ws = await http.session.ws_connect(f"/api/v1/phones/{msisdn}/events")
    assert await _next(ws) == {"type": "ready", "msisdn": msisdn}
    return ws


def _open_sockets(server: HttpServer) -> int:
    return server.runner.app[phones_mod.HUB].count()


async def test_screens_ends_and_sms_are_pushed(http: Client, started: Gateway) -> None:
    ws = await _connect(http, RU)
    _, first = await http.dial(RU, "*111*17#")
    assert await _next(ws) == {"type": "screen", **first}
    await http.reply(RU, "secret12")
    assert (await _next(ws))["type"] == "screen"
    _, last = await http.reply(RU, "secret12")

    sms = await _next(ws)
    assert sms["type"] == "sms" and sms["state"] == "queued" and sms["recipient"] == RU
    assert await _next(ws) == {"type": "screen", **last}
    end = await _next(ws)
    assert end == {
        "type": "end",
        "session": first["session"],
        "outcome": "completed",
        "screen": last,
    }
    # Shown on a handset: the SMS centre records it delivered and says so on the socket.
    delivered = await _next(ws)
    assert (delivered["type"], delivered["id"], delivered["state"]) == (
        "sms",
        sms["id"],
        "delivered",
    )
    assert started.sms.inbox(RU)[0].state is SmsState.DELIVERED
    await ws.close()


async def test_timeout_is_pushed_as_end(http: Client, started: Gateway) -> None:
    ws = await _connect(http, RU)
    _, first = await http.dial(RU, "*111*17#")
    await _next(ws)
    started.advance(started.config.ussd.reply_timeout + 1)
    end = await _next(ws)
    assert end["type"] == "end" and end["outcome"] == "timeout"
    assert end["session"] == first["session"]
    assert end["screen"]["end"] is True and end["screen"]["text"]
    await ws.close()


async def test_release_and_replace_are_pushed(http: Client) -> None:
    ws = await _connect(http, RU)
    _, first = await http.dial(RU, "*111*17#")
    await _next(ws)
    _, second = await http.dial(RU, "*111*17#")
    assert await _next(ws) == {
        "type": "end",
        "session": first["session"],
        "outcome": "replaced",
        "screen": None,
    }
    assert (await _next(ws))["session"] == second["session"]
    await http.post(f"/api/v1/phones/{RU}/release")
    end = await _next(ws)
    assert (end["outcome"], end["session"]) == ("released", second["session"])
    await ws.close()


async def test_network_sms_reaches_socket(http: Client, started: Gateway) -> None:
    ws = await _connect(http, EN)
    started.sms.send(EN, "Hello from the network")
    msg = await _next(ws)
    assert (msg["type"], msg["text"], msg["sender"]) == ("sms", "Hello from the network", "MTS")
    await ws.close()


async def test_sockets_see_only_their_number_and_all_see_it(http: Client) -> None:
    a1, a2, b = [await _connect(http, n) for n in (RU, RU, EN)]
    await http.dial(EN, "*100#")
    await http.dial(RU, "*100#")
    for ws in (a1, a2):
        first = await _next(ws)
        assert first["type"] == "screen" and first["end"] is True
        assert (await _next(ws))["type"] == "end"
    got = await _next(b)
    assert got["type"] == "screen"
    # EN's screen came first on EN's socket and never on RU's (checked above by order).
    for ws in (a1, a2, b):
        await ws.close()


async def test_client_closing_mid_dialog_leaves_dialog_open(
    http: Client, server: HttpServer
) -> None:
    ws = await _connect(http, RU)
    await http.dial(RU, "*111*17#")
    await _next(ws)
    await ws.close()
    await eventually(lambda: _open_sockets(server) == 0)
    # The dialog survives its watcher (docs/phones.md): the reply still lands.
    status, screen = await http.reply(RU, "secret12")
    assert status == 200 and screen["end"] is False


async def test_abrupt_disconnect_mid_dialog(http: Client, server: HttpServer) -> None:
    """A client vanishing without a close frame costs nothing but its own socket."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET /api/v1/phones/{RU}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    assert head.startswith(b"HTTP/1.1 101")
    await eventually(lambda: _open_sockets(server) == 1)
    status, _ = await http.dial(RU, "*111*17#")
    assert status == 200
    writer.transport.abort()  # RST, no close frame
    # Events keep flowing into a socket that is gone until the server notices.
    for _ in range(3):
        status, _ = await http.reply(RU, "x")
        assert status == 200
    await eventually(lambda: _open_sockets(server) == 0)
    assert (await http.get("/healthz"))[0] == 200


async def test_slow_consumer_is_dropped(
    http: Client, started: Gateway, server: HttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(phones_mod, "QUEUE_SIZE", 4)
    slow = await _connect(http, RU)
    other = await _connect(http, EN)
    # Events arrive synchronously inside engine calls; without an await in between the
    # writer cannot drain, exactly as with a client that stopped reading.
    for _ in range(10):
        started.engine.dial(RU, "*111*17#")
    while True:
        msg = await slow.receive(timeout=TIMEOUT)
        if msg.type is not WSMsgType.TEXT:
            break
    assert msg.type is WSMsgType.CLOSE
    assert slow.close_code == WSCloseCode.TRY_AGAIN_LATER
    await eventually(lambda: _open_sockets(server) == 1)
    # Other sockets and the API are untouched.
    await http.dial(EN, "*100#")
    assert (await _next(other))["type"] == "screen"
    await other.close()


async def test_server_shutdown_closes_sockets(http: Client, server: HttpServer) -> None:
    ws = await _connect(http, RU)
    receiving = asyncio.create_task(ws.receive(timeout=TIMEOUT))  # a client that listens
    await asyncio.wait_for(server.stop(), TIMEOUT)
    msg = await receiving
    assert msg.type is WSMsgType.CLOSE
    assert ws.close_code == WSCloseCode.GOING_AWAY


async def test_plain_get_on_events_is_400(http: Client) -> None:
    status, body = await http.get(f"/api/v1/phones/{RU}/events")
    assert (status, body["error"]["code"]) == (400, "not_websocket")


async def test_client_frames_are_ignored(http: Client) -> None:
    ws = await _connect(http, RU)
    await ws.send_str("hello")
    await ws.send_bytes(b"\x00\x01")
    await http.dial(RU, "*100#")
    assert (await _next(ws))["type"] == "screen"
    await ws.close()
