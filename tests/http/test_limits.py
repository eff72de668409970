"""Connection cap, request deadlines and keep-alive idle close, over raw sockets on 127.0.0.1.

Before these limits a client sending one header byte at a time, or a body that never ends, held
a connection for good; idle keep-alive connections stayed an hour; and nothing bounded how many
connections were open (1,100 idle clients exhausted `ulimit -n 1024`).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import BinaryIO

import aiohttp
import pytest
from structlog.testing import capture_logs

from tests.http.conftest import eventually, gateway_with
from ussd.http import HttpServer, start_http
from ussd.runtime import Gateway

ROOT = Path(__file__).resolve().parents[2]
WAIT = 10.0  # generous bound on every wait; each one ends on an event, not on the clock


async def _serve(**http: object) -> tuple[Gateway, HttpServer]:
    gw = await gateway_with(http=http)
    return gw, await start_http(gw, "127.0.0.1", 0)


@pytest.fixture
async def limited() -> AsyncIterator[HttpServer]:
    gw, srv = await _serve(max_connections=3, request_timeout="300ms", keepalive_timeout="1s")
    yield srv
    await srv.stop()
    await gw.stop()


async def _connect(srv: HttpServer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", srv.port)


async def _response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of one response with a Content-Length."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), WAIT)
    return status, headers, body


async def _closed(reader: asyncio.StreamReader) -> bool:
    """True once the server has closed the connection (EOF, or a reset)."""
    try:
        return await asyncio.wait_for(reader.read(), WAIT) == b""
    except ConnectionResetError:
        return True


GET = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


async def test_connections_over_the_cap_get_503_and_close(limited: HttpServer) -> None:
    held = [await _connect(limited) for _ in range(3)]
    await eventually(lambda: len(limited.runner.server.connections) == 3)  # type: ignore[union-attr]
    reader, writer = await _connect(limited)
    writer.write(GET)
    status, headers, body = await _response(reader)
    assert status == 503
    assert headers["retry-after"] == "1" and headers["connection"] == "close"
    error = json.loads(body)["error"]
    assert error["code"] == "too_many_connections" and "http.max_connections" in error["message"]
    assert await _closed(reader)
    writer.close()
    assert limited.connections.refused == 1
    # The held ones still work; once one goes, a new connection is served again.
    r0, w0 = held[0]
    w0.write(GET)
    assert (await _response(r0))[0] == 200
    for _, w in held:
        w.close()
    await eventually(lambda: len(limited.runner.server.connections) == 0)  # type: ignore[union-attr]
    reader, writer = await _connect(limited)
    writer.write(GET)
    assert (await _response(reader))[0] == 200
    writer.close()
    # Counted for Prometheus too.
    async with aiohttp.ClientSession() as client, client.get(f"{limited.url}/metrics") as r:
        assert "ussd_http_connections_refused_total 1.0" in await r.text()


async def test_connection_limit_is_logged_once_per_episode(limited: HttpServer) -> None:
    held = [await _connect(limited) for _ in range(3)]
    await eventually(lambda: len(limited.runner.server.connections) == 3)  # type: ignore[union-attr]
    with capture_logs() as logs:
        for _ in range(5):
            reader, writer = await _connect(limited)
            assert (await _response(reader))[0] == 503
            writer.close()
    assert [e["event"] for e in logs].count("http_connection_limit") == 1
    for _, w in held:
        w.close()


@pytest.mark.parametrize(
    "partial",
    [
        b"G",
        b"GET /healthz HTTP/1.1\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: 1",
    ],
)
async def test_a_request_head_dribbled_in_gets_408(limited: HttpServer, partial: bytes) -> None:
    reader, writer = await _connect(limited)
    writer.write(partial)
    status, headers, body = await _response(reader)
    assert status == 408 and headers["connection"] == "close"
    assert json.loads(body)["error"]["code"] == "request_timeout"
    assert await _closed(reader)
    writer.close()


async def test_a_head_that_completes_in_time_is_served(limited: HttpServer) -> None:
    reader, writer = await _connect(limited)
    writer.write(GET[:10])
    await writer.drain()
    writer.write(GET[10:])
    assert (await _response(reader))[0] == 200
    writer.write(GET)  # and the connection is still good for the next request
    assert (await _response(reader))[0] == 200
    writer.close()


async def test_a_body_that_never_ends_gets_408(limited: HttpServer) -> None:
    reader, writer = await _connect(limited)
    writer.write(
        b"POST /api/v1/phones/79161234567/dial HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
        b'{"text": '
    )
    status, _, body = await _response(reader)
    assert status == 408
    assert json.loads(body)["error"]["code"] == "request_timeout"
    assert await _closed(reader)
    writer.close()


async def test_idle_keepalive_connection_is_closed(limited: HttpServer) -> None:
    reader, writer = await _connect(limited)
    writer.write(GET)
    status, headers, _ = await _response(reader)
    assert status == 200 and headers.get("connection", "keep-alive").lower() != "close"
    assert await _closed(reader)  # after http.keepalive_timeout of silence
    writer.close()


async def test_a_silent_connection_is_closed(limited: HttpServer) -> None:
    reader, writer = await _connect(limited)
    assert await _closed(reader)  # never sent a byte: the keep-alive timer covers it
    writer.close()


# -- the file-descriptor limit ------------------------------------------------------------------


CHILD = textwrap.dedent(
    """
    import asyncio, resource, sys
    from tests.conftest import make_config
    from ussd import log
    from ussd.clock import SimulatedClock
    from ussd.http import start_http
    from ussd.runtime import Gateway

    async def main():
        log.configure("json")
        gw = Gateway.create(make_config(), clock=SimulatedClock(), database=":memory:")
        await gw.start()
        srv = await start_http(gw, "127.0.0.1", 0)
        import os
        used = len(os.listdir("/proc/self/fd"))
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (used + 20, hard))
        print(srv.port, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        await srv.stop()
        await gw.stop()

    asyncio.run(main())
    """
)


@pytest.fixture
def child_stderr(tmp_path: Path) -> Iterator[BinaryIO]:
    with (tmp_path / "stderr").open("wb") as f:
        yield f


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
async def test_at_the_fd_limit_the_listener_logs_once_and_recovers(
    tmp_path: Path, child_stderr: BinaryIO
) -> None:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=child_stderr,
    )
    assert child.stdout is not None and child.stdin is not None
    port = int(await asyncio.wait_for(child.stdout.readline(), WAIT))
    clients = []
    try:
        for _ in range(60):  # far more than the 20 descriptors left to the child
            clients.append(await asyncio.open_connection("127.0.0.1", port))

        def warned() -> bool:
            return b"accept_paused" in (tmp_path / "stderr").read_bytes()

        await eventually(warned, WAIT)
        for _, writer in clients:
            writer.close()
        clients.clear()
        # Descriptors are free again: the listener resumes (it retries every half second).
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(GET)
        assert (await _response(reader))[0] == 200
        writer.close()
    finally:
        for _, writer in clients:
            writer.close()
        child.stdin.write(b"\n")
        await child.stdin.drain()
        await asyncio.wait_for(child.wait(), WAIT)
    stderr = (tmp_path / "stderr").read_text()
    assert stderr.count("accept_paused") == 1, stderr[:2000]
    assert "Traceback" not in stderr, stderr[:2000]
