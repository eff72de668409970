"""The one ESME client: `SmppConnection(role="client")` under a small asyncio Protocol.

Every SMPP client in the project is this class or a subclass of it: the scenario runner's
`smpp://` target (sim/targets.py), the load generator (sim/load.py, which adds a hand-framed
fast path for its own submit_sm traffic) and the server tests. The sans-IO connection keeps
every protocol rule (SMPP 3.4 §2.3 states, sequence numbers, the window, response deadlines);
this class only moves bytes and time, the way aioquic's asyncio protocol wraps
`QuicConnection`:

* one transmit: the connection's `data_to_send()` (plus raw bytes: unchecked requests, the
  load generator's fast lane) written by `transmit()`, once per batch of input or once per
  loop iteration for requests sent from outside a callback;
* one timer: armed from `conn.get_timer()` after every change, firing `conn.handle_timer(now)`;
* requests go out with `conn.send_request(pdu, context)`: the connection keeps the context and
  hands it back exactly once, on the response (`response_received`) or on a timeout or a lost
  connection (`request_failed`). A request that timed out has left the window, so the window
  never fills for good; one sent while the window is full waits in the connection's bounded
  queue for a free slot.

`call()` wraps that in an awaitable; subclasses override the hooks instead. Requests the
client state would refuse (a second bind, a submit before bind, an unknown command) can still
be sent with `unchecked=True`, which is how tests break the rules on purpose.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable
from typing import Any, TypeVar

from ussd.smpp.connection import (
    ConnectionClosed,
    NeedData,
    PduIgnored,
    PduRejected,
    QueueFull,
    RequestFailed,
    RequestTimedOut,
    ResponseReceived,
    SmppConnection,
    State,
)
from ussd.smpp.constants import CommandId, CommandStatus, status_name
from ussd.smpp.pdu import (
    BindRequest,
    BindTransceiver,
    LocalProtocolError,
    Pdu,
    Unbind,
    encode_pdu,
    response_to,
    with_sequence,
)

__all__ = ["BindRefused", "Esme", "QueueFull", "RequestTimeout", "connect"]

QUEUE_LIMIT = 10_000  # requests waiting for a window slot before send_request refuses
CONNECT_TIMEOUT = 5.0


class RequestTimeout(TimeoutError):
    """No response within the connection's response_timeout; the request left the window."""

    def __init__(self, request: Pdu, seconds: float) -> None:
        super().__init__(f"no response to {type(request).__name__} within {seconds:g} s")
        self.request = request


class BindRefused(ConnectionError):
    """The SMSC answered the bind with an error status."""

    def __init__(self, status: int) -> None:
        super().__init__(f"bind refused: {status_name(status)}")
        self.status = status


class Esme(asyncio.Protocol):
    """One ESME connection. Override the hooks (`request_received`, `response_received`,
    `request_failed`, `request_rejected`, `pdu_ignored`, `closed_with`) or use `call()`."""

    def __init__(
        self,
        *,
        window: int = 100,
        response_timeout: float = 30.0,
        enquire_link_interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.conn = SmppConnection(
            "client",
            window=window,
            response_timeout=response_timeout,
            enquire_link_interval=enquire_link_interval,
            max_queued=QUEUE_LIMIT,
            buffered=True,
        )
        self.clock = clock
        self.transport: asyncio.Transport | None = None
        self.ended: str | None = None  # why the connection ended, once it has
        self.done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        # seq -> (request, context) for requests sent unchecked: the connection never saw them
        self._unchecked: dict[int, tuple[Pdu, Any]] = {}
        self._out: list[bytes] = []  # raw bytes, in order with the connection's output
        self._lost: str | None = None  # why the socket went, when it went first
        self._transmit_soon = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None

    # ---- sending ------------------------------------------------------------------------

    def send_request(self, pdu: Pdu, context: Any = None, *, unchecked: bool = False) -> None:
        """Send a request; `context` comes back once, on its response or its failure.

        LocalProtocolError when the bind state forbids it (SMPP 3.4 §2.3) or the connection
        is closed; QueueFull when the window is full and the queue too. With `unchecked` the
        PDU is encoded as it is and skips the state rules (and the window); its response is
        matched by sequence_number and it does not time out here (call() has a `wait`).
        """
        if self.ended is not None:
            raise LocalProtocolError(f"connection closed: {self.ended}")
        if unchecked:
            if pdu.sequence_number == 0:
                pdu = with_sequence(pdu, self.conn.allocate_sequence())
            self._unchecked[pdu.sequence_number] = (pdu, context)
            self._push(encode_pdu(pdu))
            return
        self.conn.send_request(pdu, context, now=self.clock())
        self._schedule_transmit()
        self._rearm()

    def respond(self, response: Pdu) -> None:
        """Answer a request the SMSC sent (deliver_sm, enquire_link, unbind, ...)."""
        if self.ended is None and self.conn.state is not State.CLOSED:
            self.conn.send_response(response)
            self._schedule_transmit()

    def send_raw(self, data: bytes) -> None:
        """Write bytes as they are (tests of malformed input); the state machine never sees them."""
        self._push(data)

    def _push(self, data: bytes) -> None:
        pending = self.conn.data_to_send()  # what the connection produced first goes first
        if pending:
            self._out.append(pending)
        self._out.append(data)
        self._schedule_transmit()

    def _schedule_transmit(self) -> None:
        if not self._transmit_soon:
            self._transmit_soon = True
            asyncio.get_running_loop().call_soon(self.transmit)

    def transmit(self) -> None:
        """Write everything queued in one call (the only place that writes)."""
        self._transmit_soon = False
        out = self._out
        pending = self.conn.data_to_send()
        if pending:
            out.append(pending)
        if out:
            if self.transport is not None and not self.transport.is_closing():
                self.transport.write(out[0] if len(out) == 1 else b"".join(out))
            out.clear()

    # ---- awaitable requests ---------------------------------------------------------------

    async def call(self, pdu: Pdu, *, unchecked: bool = False, wait: float | None = None) -> Pdu:
        """Send a request and wait for its response (a *_resp or generic_nack).

        RequestTimeout after the connection's response_timeout (or `wait`), ConnectionError
        when the connection ends first.
        """
        future: asyncio.Future[Pdu] = asyncio.get_running_loop().create_future()
        if unchecked and pdu.sequence_number == 0:
            pdu = with_sequence(pdu, self.conn.allocate_sequence())
        self.send_request(pdu, future, unchecked=unchecked)
        if wait is None and not unchecked:
            return await future  # the connection's own deadline ends it
        seconds = self.conn.response_timeout if wait is None else wait
        try:
            return await asyncio.wait_for(asyncio.shield(future), seconds)
        except TimeoutError:
            future.cancel()  # a later response or expiry finds it done
            self._unchecked.pop(pdu.sequence_number, None)
            raise RequestTimeout(pdu, seconds) from None

    async def bind(
        self,
        system_id: str,
        password: str,
        cls: type[BindRequest] = BindTransceiver,
        **fields: Any,
    ) -> Pdu:
        """Bind; BindRefused when the SMSC says no (SMPP 3.4 §4.1)."""
        response = await self.call(cls(system_id=system_id, password=password, **fields))
        if response.command_status != CommandStatus.ESME_ROK:
            raise BindRefused(response.command_status)
        return response

    async def unbind(self, wait: float = 1.0) -> None:
        """unbind, its response, then the socket closes (SMPP 3.4 §4.2); always closes."""
        if self.ended is None and self.conn.may_send(CommandId.UNBIND):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.call(Unbind()), wait)
        await self.aclose(wait)

    async def aclose(self, wait: float = 1.0) -> None:
        """Close the socket and wait (at most `wait` seconds) until the connection has ended."""
        self.disconnect()
        with contextlib.suppress(TimeoutError):
            await self.wait_closed(wait)

    def disconnect(self) -> None:
        """Close the socket now (the hooks see `request_failed` for what was outstanding)."""
        self.transmit()
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """Drop the socket without a FIN handshake (a vanished ESME)."""
        if self.transport is not None:
            self.transport.abort()

    async def wait_closed(self, wait: float | None = None) -> str:
        """The reason the connection ended, once it has."""
        return await asyncio.wait_for(asyncio.shield(self.done), wait)

    # ---- hooks ----------------------------------------------------------------------------

    def request_received(self, pdu: Pdu) -> Pdu | None:
        """A request from the SMSC; the response to send now, or None to answer later with
        respond(). The default accepts everything (ESME_ROK)."""
        return response_to(pdu)

    def response_received(self, context: Any, response: Pdu) -> None:
        """The response to a request sent with `context`."""
        if isinstance(context, asyncio.Future) and not context.done():
            context.set_result(response)

    def request_failed(self, context: Any, request: Pdu, error: Exception) -> None:
        """A request got no response: RequestTimeout, or ConnectionError when the bind ended."""
        if isinstance(context, asyncio.Future) and not context.done():
            context.set_exception(error)

    def request_rejected(self, event: PduRejected) -> None:
        """The SMSC sent a request we refuse; its error response is already on its way."""

    def pdu_ignored(self, event: PduIgnored) -> None:
        """A PDU that answers nothing outstanding (or is malformed); nothing to send."""

    def closed_with(self, reason: str) -> None:
        """The connection ended (after every outstanding context was failed)."""

    # ---- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.receive(data)
        self.transmit()

    def eof_received(self) -> bool | None:
        self.receive(b"")
        self.transmit()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        reason = "connection lost" if exc is None else f"connection lost: {exc}"
        if self.ended is None:
            # The connection hands back every context it holds (RequestFailed), then closes.
            self._lost = reason
            self.conn.receive_data(b"", self.clock())
            self._drain()
        self._end(reason)

    # ---- the sans-IO side -------------------------------------------------------------------

    def receive(self, data: bytes) -> None:
        """Feed bytes (b"" at end of stream) to the connection and act on its events."""
        self.conn.receive_data(data, self.clock())
        self._drain()

    def _drain(self) -> None:
        """Act on every event the connection has (the one place they are handled)."""
        conn = self.conn
        while True:
            event = conn.next_event()
            if isinstance(event, NeedData):
                break
            if isinstance(event, ResponseReceived):
                self.response_received(event.context, event.response)
            elif isinstance(event, Pdu):
                response = self.request_received(event)
                if response is not None and self.ended is None and conn.state is not State.CLOSED:
                    conn.send_response(response)
            elif isinstance(event, PduRejected):
                conn.send_response(event.response)
                self.request_rejected(event)
            elif isinstance(event, PduIgnored):
                pdu = event.pdu
                if pdu is not None and pdu.sequence_number in self._unchecked:
                    _, context = self._unchecked.pop(pdu.sequence_number)
                    self.response_received(context, pdu)
                else:
                    self.pdu_ignored(event)
            elif isinstance(event, RequestFailed):
                error: Exception = (
                    ConnectionError(f"SMPP connection closed: {event.reason}")
                    if conn.state is State.CLOSED
                    else LocalProtocolError(event.reason)  # the state changed while it waited
                )
                self.request_failed(event.context, event.request, error)
            elif isinstance(event, ConnectionClosed):
                # (a RemoteProtocolError's generic_nack is in data_to_send() already)
                self._fail_unchecked(event.reason)
                self.disconnect()
                self._end(self._lost or event.reason)
                return
        self._rearm()

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        for event in self.conn.handle_timer(self.clock()):
            if isinstance(event, RequestTimedOut):
                request = event.request
                error = RequestTimeout(request, self.conn.response_timeout)
                self.request_failed(event.context, request, error)
            # EnquireLinkDue: its bytes are in data_to_send(); PeerTimedOut: the close and
            # the requests it fails come through _drain().
        self._drain()
        self.transmit()
        self._rearm()

    def _rearm(self) -> None:
        """One timer, at conn.get_timer() (aioquic's pattern)."""
        at = None if self.ended is not None else self.conn.get_timer()
        if at == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = at
        if at is not None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(max(0.0, at - self.clock()), self._on_timer)

    def _fail_unchecked(self, reason: str) -> None:
        error = ConnectionError(f"SMPP connection closed: {reason}")
        pending, self._unchecked = self._unchecked, {}
        for request, context in pending.values():
            self.request_failed(context, request, error)

    def _end(self, reason: str) -> None:
        if self.ended is not None:
            return
        self.ended = reason
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._fail_unchecked(reason)
        self.closed_with(reason)
        if not self.done.done():
            self.done.set_result(reason)


E = TypeVar("E", bound=Esme)


async def connect(
    factory: Callable[[], E], host: str, port: int, wait: float = CONNECT_TIMEOUT
) -> E:
    """Open a TCP connection to an SMSC with the protocol `factory` builds (not yet bound)."""
    loop = asyncio.get_running_loop()
    _, protocol = await asyncio.wait_for(loop.create_connection(factory, host, port), wait)
    return protocol
