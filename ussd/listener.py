"""A TCP listener for asyncio protocols that rides out running short of file descriptors.

`loop.create_server()` logs every failed `accept()` through the loop's exception handler, and
on EMFILE its accept loop goes on trying (and logging, and scheduling one more restart) up to
`backlog` times per wake-up (CPython 3.11 `selector_events._accept_connection`): hundreds of
tracebacks a second while the process sits at its `ulimit -n`. Here a listening socket that
cannot accept stops being watched for a moment, the episode is logged once when it starts and
once when it ends, and connections already open are served throughout.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Callable

from ussd import log

# accept() errors about one connection (gone before we took it): skip it. Any other error
# (EMFILE, ENFILE, ENOBUFS, ENOMEM: no resources now) pauses accepting and retries.
_SKIP_ERRNOS = frozenset({errno.ECONNABORTED, errno.EPROTO, errno.EPERM})

RETRY_DELAY = 0.5  # seconds between accept attempts while paused
# A process hovering at its limit starts and ends episodes all the time: after one is logged,
# the next ones within this many seconds are only counted (in the next line that is logged).
QUIET = 60.0
BACKLOG = 100  # listen() backlog, and connections taken per wake-up (asyncio's default)
# `ussd-sim serve --workers N` (docs/cluster.md): every worker listens on the same ports with
# SO_REUSEPORT and the kernel spreads the connections among them. Set once, at a worker's start.
REUSE_PORT = False


class Listener:
    """Listening sockets feeding `protocol_factory`, like `loop.create_server()`."""

    def __init__(
        self,
        protocol_factory: Callable[[], asyncio.Protocol],
        *,
        component: str,
        retry_delay: float = RETRY_DELAY,
        backlog: int = BACKLOG,
    ) -> None:
        self._factory = protocol_factory
        self._log = log.get(component)
        self.retry_delay = retry_delay
        self.backlog = backlog
        self.sockets: list[socket.socket] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._retry: asyncio.TimerHandle | None = None
        self._watching = False  # readers registered for the listening sockets
        self._episode: float | None = None  # loop time accept() first failed, until it works
        self._failures = 0  # accept() failures in the current episode
        self._logged = False  # the current episode's start was logged
        self._last_logged: float | None = None  # loop time an episode's start was last logged
        self._unlogged = 0  # episodes since then that were not logged
        self._tasks: set[asyncio.Task[object]] = set()

    @property
    def paused(self) -> bool:
        """True while accepting is suspended after a resource error."""
        return bool(self.sockets) and not self._watching

    async def start(self, host: str, port: int) -> tuple[str, int]:
        """Bind and listen on every address `host` resolves to; returns the first address."""
        if self.sockets:
            raise RuntimeError("already listening")
        loop = self._loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        seen: set[tuple[int, object]] = set()
        try:
            for family, type_, proto, _, address in infos:
                if (family, address) in seen:
                    continue
                seen.add((family, address))
                sock = socket.socket(family, type_, proto)
                self.sockets.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if REUSE_PORT:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                if family == socket.AF_INET6:
                    # One socket per family, as create_server() does.
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                try:
                    sock.bind(address)
                except OSError as exc:
                    raise OSError(
                        exc.errno,
                        f"error while attempting to bind on address {address!r}: {exc.strerror}",
                    ) from None
                sock.listen(self.backlog)
                sock.setblocking(False)
        except BaseException:
            self._close_sockets()
            raise
        if not self.sockets:
            raise OSError(f"{host!r} resolves to no address")
        self._watch(True)
        name = self.sockets[0].getsockname()
        return str(name[0]), int(name[1])

    def close(self) -> None:
        """Stop accepting and close the listening sockets (open connections are not touched)."""
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        self._watch(False)
        self._close_sockets()

    # -- accepting --------------------------------------------------------------------------

    def _accept(self, listening: socket.socket) -> None:
        loop = self._loop
        assert loop is not None
        for _ in range(self.backlog):
            try:
                conn, _address = listening.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in _SKIP_ERRNOS:
                    continue
                self._pause(exc)
                return
            if self._episode is not None:
                self._resumed(loop.time())
            conn.setblocking(False)
            task: asyncio.Task[object] = loop.create_task(self._connect(conn))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _connect(self, conn: socket.socket) -> object:
        assert self._loop is not None
        try:
            return await self._loop.connect_accepted_socket(self._factory, conn)
        except OSError as exc:  # the peer went away before the transport was set up
            conn.close()
            self._log.debug("accept_dropped", error=str(exc))
            return None

    def _pause(self, exc: OSError) -> None:
        """Stop watching the listening sockets for retry_delay; log an episode's start once."""
        loop = self._loop
        assert loop is not None
        self._failures += 1
        now = loop.time()
        if self._episode is None:
            self._episode = now
            if self._last_logged is None or now - self._last_logged >= QUIET:
                self._logged = True
                self._last_logged = now
                self._log.warning(
                    "accept_paused",
                    error=errno.errorcode.get(exc.errno or 0, str(exc.errno)),
                    reason=exc.strerror,
                    retry_every=self.retry_delay,
                    episodes_not_logged=self._unlogged,
                )
                self._unlogged = 0
            else:
                self._unlogged += 1
        # Linux keeps reporting the socket readable: watching it now would spin.
        self._watch(False)
        if self._retry is None:
            self._retry = loop.call_later(self.retry_delay, self._retry_now)

    def _resumed(self, now: float) -> None:
        assert self._episode is not None
        if self._logged:
            self._log.info(
                "accept_resumed",
                failed_attempts=self._failures,
                paused_for=round(now - self._episode, 3),
            )
        self._episode = None
        self._failures = 0
        self._logged = False

    def _retry_now(self) -> None:
        self._retry = None
        if self.sockets:
            self._watch(True)  # the next accept() ends the episode or pauses again

    def _watch(self, on: bool) -> None:
        if self._loop is None or on == self._watching:
            return
        for sock in self.sockets:
            if on:
                self._loop.add_reader(sock.fileno(), self._accept, sock)
            else:
                self._loop.remove_reader(sock.fileno())
        self._watching = on

    def _close_sockets(self) -> None:
        for sock in self.sockets:
            sock.close()
        self.sockets.clear()
