"""Host, Origin and cross-site guards over a real socket (docs/phones.md "Who may call").

A page on another site once opened `.../events` and read a phone's SMS, generated passwords
included; a DNS-rebinding page could do the same under its own name.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.conftest import make_config
from tests.http.conftest import RU, gateway_with
from ussd.config import ConfigError
from ussd.http import HttpServer, start_http
from ussd.http.security import Policy, host_name

EVIL = "http://evil.example"


@pytest.fixture
async def session(server: HttpServer) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=server.url) as s:
        yield s


def _authority(server: HttpServer) -> str:
    return server.url.removeprefix("http://")


async def _ws_status(session: aiohttp.ClientSession, headers: dict[str, str]) -> int:
    """101 when the handshake succeeds (and `ready` arrives), else the refusal status."""
    try:
        async with session.ws_connect(f"/api/v1/phones/{RU}/events", headers=headers) as ws:
            assert (await ws.receive_json(timeout=5))["type"] == "ready"
            return 101
    except aiohttp.WSServerHandshakeError as exc:
        return exc.status


# -- WebSocket ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "origin",
    [EVIL, "null", "http://127.0.0.1.evil.example", "file://", "http://localhost:1"],
)
async def test_websocket_from_a_foreign_origin_is_403(
    session: aiohttp.ClientSession, origin: str
) -> None:
    assert await _ws_status(session, {"Origin": origin}) == 403


async def test_websocket_from_our_origin_or_none_is_accepted(
    session: aiohttp.ClientSession, server: HttpServer
) -> None:
    assert await _ws_status(session, {"Origin": server.url}) == 101
    assert await _ws_status(session, {"Origin": server.url.upper() + "/"}) == 101
    assert await _ws_status(session, {}) == 101  # not a browser: no Origin


async def test_foreign_websocket_refusal_is_a_json_error(
    session: aiohttp.ClientSession,
) -> None:
    headers = {
        "Origin": EVIL,
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    }
    async with session.get(f"/api/v1/phones/{RU}/events", headers=headers) as r:
        assert r.status == 403
        assert (await r.json())["error"]["code"] == "forbidden_origin"


async def test_allowed_origins_are_configurable() -> None:
    gw = await gateway_with(http={"allowed_origins": ["http://phone.example:8000"]})
    srv = await start_http(gw, "127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession(base_url=srv.url) as s:
            assert await _ws_status(s, {"Origin": "http://phone.example:8000"}) == 101
            assert await _ws_status(s, {"Origin": "http://phone.example:8001"}) == 403
    finally:
        await srv.stop()
        await gw.stop()


# -- Host ---------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8080", "localhost.evil.example"])
async def test_foreign_host_is_403(session: aiohttp.ClientSession, host: str) -> None:
    for path in ("/", "/healthz", f"/api/v1/phones/{RU}/sms"):
        async with session.get(path, headers={"Host": host}) as r:
            assert r.status == 403
            answer = await r.json()
            assert answer["error"]["code"] == "forbidden_host"
            assert "http.allowed_hosts" in answer["error"]["message"]


async def test_rebound_websocket_is_403(session: aiohttp.ClientSession) -> None:
    # A rebinding page's own origin matches its Host: only the Host check stops it.
    headers = {"Host": "evil.example:8080", "Origin": "http://evil.example:8080"}
    assert await _ws_status(session, headers) == 403


@pytest.mark.parametrize(
    "host", ["localhost", "LOCALHOST:8080", "phone.localhost", "127.0.0.1", "[::1]:80", "10.1.2.3"]
)
async def test_loopback_names_and_addresses_pass(session: aiohttp.ClientSession, host: str) -> None:
    async with session.get("/healthz", headers={"Host": host}) as r:
        assert r.status == 200


async def test_allowed_hosts_are_configurable() -> None:
    gw = await gateway_with(http={"allowed_hosts": ["gateway.test"]})
    srv = await start_http(gw, "127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession(base_url=srv.url) as s:
            async with s.get("/healthz", headers={"Host": "gateway.test:8080"}) as r:
                assert r.status == 200
            async with s.get("/healthz", headers={"Host": "other.test"}) as r:
                assert r.status == 403
    finally:
        await srv.stop()
        await gw.stop()


# -- state-changing requests --------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/x-www-form-urlencoded", b"text=*100%23"),
        ("multipart/form-data; boundary=x", b"--x\r\n\r\n--x--\r\n"),
        ("text/plain", b""),
        ("text/plain", b'{"text": "*100#"}'),
    ],
)
@pytest.mark.parametrize("action", ["dial", "release"])
async def test_form_posts_are_refused(
    session: aiohttp.ClientSession, content_type: str, body: bytes, action: str
) -> None:
    # What an HTML form on any site can send without a CORS preflight, even with no Origin.
    headers = {"Content-Type": content_type}
    async with session.post(f"/api/v1/phones/{RU}/{action}", data=body, headers=headers) as r:
        assert r.status == 415
        assert (await r.json())["error"]["code"] == "unsupported_media_type"


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": EVIL},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": EVIL, "Sec-Fetch-Site": "same-origin"},
    ],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", f"/api/v1/phones/{RU}/dial"),
        ("POST", f"/api/v1/phones/{RU}/release"),
        ("POST", "/api/v1/auth/network"),
        ("DELETE", f"/api/v1/phones/{RU}/record"),
        ("PATCH", f"/api/v1/subscribers/{RU}"),
    ],
)
async def test_cross_site_requests_are_refused(
    session: aiohttp.ClientSession, headers: dict[str, str], method: str, path: str
) -> None:
    body = {"text": "*100#", "msisdn": RU}
    async with session.request(method, path, json=body, headers=headers) as r:
        assert r.status == 403
        assert (await r.json())["error"]["code"] == "forbidden_origin"


async def test_same_origin_browser_requests_pass(
    session: aiohttp.ClientSession, server: HttpServer
) -> None:
    headers = {"Origin": server.url, "Sec-Fetch-Site": "same-origin"}
    async with session.post(
        f"/api/v1/phones/{RU}/dial", json={"text": "*100#"}, headers=headers
    ) as r:
        assert r.status == 200
    async with session.post(f"/api/v1/phones/{RU}/release", headers=headers) as r:
        assert r.status == 200
    # A cross-site GET is harmless (the browser keeps the answer from the page): not refused.
    async with session.get(f"/api/v1/phones/{RU}/sms", headers={"Origin": EVIL}) as r:
        assert r.status == 200


# -- the policy as a table ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("authority", "name"),
    [
        ("Example.COM:8080", "example.com"),
        ("example.com.", "example.com"),
        ("[::1]:8080", "::1"),
        ("[::1]", "::1"),
        ("127.0.0.1", "127.0.0.1"),
        ("host:notaport", "host:notaport"),
    ],
)
def test_host_name(authority: str, name: str) -> None:
    assert host_name(authority) == name


def test_listen_name_is_allowed() -> None:
    policy = Policy.build("gateway.lan", (), ())
    assert policy.host_allowed("gateway.lan:8080")
    assert not policy.host_allowed("other.lan")
    assert Policy.build("0.0.0.0", ("*",), ()).host_allowed("anything.example")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("allowed_hosts", "evil.example"),
        ("allowed_hosts", ["http://evil.example"]),
        ("allowed_origins", ["evil.example"]),
        ("allowed_origins", ["http://evil.example/path"]),
        ("max_connections", 0),
        ("max_connections", 10**9),
        ("request_timeout", "0s"),
        ("request_timeout", "2d"),
        ("keepalive_timeout", 86400),
    ],
)
def test_bad_http_keys_name_the_key(key: str, value: object) -> None:
    with pytest.raises(ConfigError) as err:
        make_config(http={key: value})
    assert err.value.key.startswith(f"http.{key}")
