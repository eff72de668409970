"""The HTTP server's connections: aiohttp's protocol with a connection cap and a head deadline.

aiohttp bounds an idle keep-alive connection (`keepalive_timeout`) but neither the number of
connections nor the time a request's head may take to arrive: a client sending one header byte
a minute holds a connection for good, and 1,000 idle clients hold 1,000 descriptors. So:
- at `http.max_connections` a new connection gets 503 with `Retry-After` and is closed (the
  listener keeps accepting, so clients are told rather than left in the backlog);
- a request head must be complete within `http.request_timeout` of its first byte, else 408
  and close (the body is bounded by the same timeout in errors.read_body);
- an idle keep-alive connection closes after `http.keepalive_timeout`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from ussd import log
from ussd.listener import Listener as TcpListener

_log = log.get("http")

BUSY_LINGER = 1.0
"""How long a refused connection is drained before it is closed (a reset could eat the 503)."""

MAX_LINGERING = 64
"""Refused connections drained at once; past that a refused connection closes at once."""


def _canned(status: str, code: str, message: str, extra: str = "") -> bytes:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    head = (
        f"HTTP/1.1 {status}\r\n"
        "Content-Type: application/json; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"{extra}"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


class HeaderDeadline(RequestHandler):
    """aiohttp's protocol, plus a deadline for a request head once its first byte is in."""

    __slots__ = ("_head_timeout", "_head_timer")

    def __init__(self, manager: web.Server, *, head_timeout: float, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._head_timeout = head_timeout
        self._head_timer: asyncio.TimerHandle | None = None

    def _idle(self) -> bool:
        # start() awaits `_waiter` between requests; a complete head lands in `_messages`.
        return self._waiter is not None and not self._waiter.done() and not self._messages

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self._idle():
            self._cancel_head_timer()
        elif data and self._head_timer is None:
            self._head_timer = self._loop.call_later(self._head_timeout, self._head_expired)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_expired(self) -> None:
        self._head_timer = None
        if not self._idle() or self.transport is None:
            return
        _log.info("http_request_timeout", phase="head", timeout=self._head_timeout)
        message = f"the request head did not arrive within {self._head_timeout:g} s"
        # RFC 9110 §15.5.9: 408 for a request the server will no longer wait for.
        self.transport.write(_canned("408 Request Timeout", "request_timeout", message))
        self.force_close()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)


class Busy(asyncio.Protocol):
    """A connection over the cap: 503, half-close, drain briefly, close."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, answer: bytes, linger: float, live: set[Busy]
    ) -> None:
        self._loop = loop
        self._answer = answer
        self._linger = linger
        self._live = live
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._live.add(self)
        transport.write(self._answer)
        if transport.can_write_eof():
            transport.write_eof()
        self._timer = self._loop.call_later(self._linger, transport.close)

    def data_received(self, data: bytes) -> None:
        pass  # the request is read and dropped so that close() does not reset the connection

    def eof_received(self) -> bool:
        return False  # the transport closes itself

    def connection_lost(self, exc: BaseException | None) -> None:
        self._live.discard(self)
        if self._timer is not None:
            self._timer.cancel()


class Connections:
    """The protocol factory: aiohttp's handler under the cap, Busy over it."""

    def __init__(
        self,
        server: web.Server,
        *,
        max_connections: int,
        head_timeout: float,
        handler_args: dict[str, Any],
        on_refused: Callable[[], None] = lambda: None,
    ) -> None:
        self._server = server
        self._on_refused = on_refused
        self._max = max_connections
        self._head_timeout = head_timeout
        self._args = handler_args
        self._loop = asyncio.get_running_loop()
        self._busy: set[Busy] = set()
        self.refused = 0
        self._full = False
        self._answer = _canned(
            "503 Service Unavailable",
            "too_many_connections",
            f"the gateway serves at most {max_connections} HTTP connections (http.max_connections)",
            "Retry-After: 1\r\n",
        )

    def __call__(self) -> asyncio.Protocol:
        if len(self._server.connections) < self._max:
            self._full = False
            return HeaderDeadline(
                self._server, loop=self._loop, head_timeout=self._head_timeout, **self._args
            )
        self.refused += 1
        self._on_refused()
        if not self._full:
            self._full = True  # one line per episode, not one per refused client
            _log.warning("http_connection_limit", max_connections=self._max)
        linger = BUSY_LINGER if len(self._busy) < MAX_LINGERING else 0.0
        return Busy(self._loop, self._answer, linger, self._busy)


class Site(web.BaseSite):
    """A TCP site whose protocols come from Connections (aiohttp's TCPSite takes no factory)."""

    __slots__ = ("_connections", "_host", "_port")

    def __init__(
        self, runner: web.BaseRunner, host: str, port: int, connections: Connections
    ) -> None:
        super().__init__(runner)
        self._host = host
        self._port = port
        self._connections = connections

    @property
    def name(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        # ussd/listener.py rather than create_server(): at the descriptor limit it pauses
        # accepting and logs the episode once, where asyncio logs a traceback per attempt.
        # It has the two members aiohttp's runner uses: `.sockets` and `.close()`.
        tcp = TcpListener(self._connections, component="http", backlog=self._backlog)
        await tcp.start(self._host, self._port)
        self._server = tcp  # type: ignore[assignment]
