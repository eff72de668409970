"""ussd-sim's SMPP layer alone as a bare SMSC: the same job as the npm peer (bench/peer/smsc.js).

The sans-IO core the gateway runs on (ussd/smpp/connection.py, pdu.py) under the same kind of
asyncio Protocol as ussd/smpp/server.py, without the engine, store or SMS centre: binds are
accepted, submit_sm gets a submit_sm_resp with a message_id, enquire_link and unbind are
answered. Set beside the peer it compares SMPP layer with SMPP layer; the gateway
rows add what ussd-sim does per submit_sm on top.

Run: python -m bench.peer.bare_smsc [--port 0]   (prints `listening HOST:PORT`)
"""

from __future__ import annotations

import asyncio
import socket
import time

from bench.peer import _serve
from ussd.smpp.connection import (
    NEED_DATA,
    ConnectionClosed,
    PduRejected,
    RemoteProtocolError,
    SmppConnection,
)
from ussd.smpp.pdu import (
    BindRequest,
    EnquireLink,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    make_response,
    response_to,
)


class BareSmsc(asyncio.Protocol):
    """One ESME connection on the sans-IO core."""

    def __init__(self) -> None:
        self.conn = SmppConnection("server", enquire_link_interval=None)
        self.transport: asyncio.Transport | None = None
        self.message_id = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        conn.receive_data(data, time.monotonic())
        out: list[bytes] = []
        close = False
        while True:
            event = conn.next_event()
            if event is NEED_DATA:
                break
            if isinstance(event, SubmitSm):
                self.message_id += 1
                out.append(
                    conn.send(
                        SubmitSmResp(
                            sequence_number=event.sequence_number, message_id=str(self.message_id)
                        )
                    )
                )
            elif isinstance(event, BindRequest):
                out.append(
                    conn.send(
                        make_response(event.command_id, event.sequence_number, 0, system_id="bare")
                    )
                )
            elif isinstance(event, EnquireLink | Unbind):
                out.append(conn.send(response_to(event)))
            elif isinstance(event, PduRejected):
                out.append(conn.send(event.response))
            elif isinstance(event, RemoteProtocolError):
                if event.response is not None:
                    out.append(event.response.encode())
            elif isinstance(event, ConnectionClosed):
                close = True
                break
        if self.transport is not None:
            if out:
                self.transport.write(b"".join(out))
            if close:
                self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def start(host: str = "127.0.0.1", port: int = 0) -> asyncio.Server:
    """Listen; the caller closes the returned server."""
    return await _serve.start(BareSmsc, host, port)


if __name__ == "__main__":
    _serve.main(BareSmsc, "python -m bench.peer.bare_smsc", __doc__)
