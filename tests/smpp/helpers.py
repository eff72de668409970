"""Shared SMPP test peers: a recording ESME on the one client (sim/esme.py) and a tiny SMSC.

`RecordingEsme` is the client every server test drives: the shared `Esme` plus a log of every
PDU in arrival order and a queue of the server's requests, answered at once unless `auto_ack`
is off. Requests its bind state forbids (a second bind, a submit before bind, an unknown
command) go out unchecked, so tests can break the rules on purpose.

The rest serves the tests of our own server: the accounts and config they run with, the
`bound()` client, `start_server()`, and `Waiter` for engine events (tests/smpp/conftest.py
makes the `server` and `waiter` fixtures of them).

`FakeSmsc` is `SmppConnection(role="server")` on a real socket, nothing else: it binds anyone,
and answers each submit_sm with a submit_sm_resp and an end screen (ussd_service_op 17) only
while `answering` is set, so a test can make it withhold responses.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from sim.esme import Esme, connect
from tests.conftest import make_config
from ussd.config import Config
from ussd.events import Event, SmsState, SmsStateChanged
from ussd.runtime import Gateway
from ussd.smpp.connection import (
    NEED_DATA,
    ConnectionClosed,
    PduRejected,
    RemoteProtocolError,
    SmppConnection,
)
from ussd.smpp.constants import UssdServiceOp
from ussd.smpp.pdu import (
    BindRequest,
    BindTransceiver,
    DeliverSm,
    EnquireLink,
    ItsSessionInfo,
    Pdu,
    SubmitSm,
    Unbind,
    decode_text,
    encode_text,
    response_to,
    ussd_tlvs,
)
from ussd.smpp.server import SmppServer

TIMEOUT = 5.0
ALICE = "79161234567"  # seeded, Russian
BOB = "79161112233"  # seeded, English
KATE = "79260000001"  # covered by the "ranges" account (sms_ranges 7926)

ACCOUNTS = [
    {"system_id": "harness", "password": "secret", "role": "harness"},
    {"system_id": "ranges", "password": "pw", "role": "harness", "sms_ranges": ["7926"]},
]


def server_config(**smpp: Any) -> Config:
    return make_config(smpp={"accounts": ACCOUNTS, **smpp})


def text_of(pdu: DeliverSm) -> str:
    return decode_text(pdu.short_message, pdu.data_coding)


class RecordingEsme(Esme):
    """The shared ESME client, recording what it sees (see the module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("response_timeout", TIMEOUT)
        super().__init__(**kwargs)
        self.auto_ack = True
        self.requests: asyncio.Queue[Pdu] = asyncio.Queue()
        self.seen: list[Pdu] = []

    @classmethod
    async def connect(cls, address: tuple[str, int], **kwargs: Any) -> RecordingEsme:
        host, port = address
        return await connect(lambda: cls(**kwargs), host, port)

    @property
    def eof(self) -> asyncio.Future[str]:
        """Done once the connection has ended."""
        return self.done

    # hooks

    def request_received(self, pdu: Pdu) -> Pdu | None:
        self.seen.append(pdu)
        self.requests.put_nowait(pdu)
        return response_to(pdu) if self.auto_ack else None

    def response_received(self, context: Any, response: Pdu) -> None:
        self.seen.append(response)
        super().response_received(context, response)

    def pdu_ignored(self, event: Any) -> None:
        if event.pdu is not None:
            self.seen.append(event.pdu)

    # what tests call

    def ack(self, pdu: Pdu, status: int = 0) -> None:
        """Answer a server request (deliver_sm, enquire_link, unbind)."""
        self.respond(response_to(pdu, status))

    def write(self, data: bytes) -> None:
        """Raw bytes (malformed PDUs); the state machine never sees them."""
        self.send_raw(data)

    async def request(self, pdu: Pdu) -> Pdu:
        """Send a request and wait for the answer; one the bind state forbids goes unchecked."""
        unchecked = not self.conn.may_send(pdu.command_id)
        return await self.call(pdu, unchecked=unchecked, wait=TIMEOUT)

    async def bind(  # type: ignore[override]
        self,
        cls: type[BindRequest] = BindTransceiver,
        system_id: str = "harness",
        password: str = "secret",
    ) -> Pdu:
        """The bind's response, whatever its status (tests look at refusals too)."""
        return await self.request(cls(system_id=system_id, password=password))

    async def submit(
        self,
        msisdn: str,
        text: str,
        op: int | None = UssdServiceOp.PSSR_INDICATION,
        session: ItsSessionInfo | None = None,
        umr: int | None = None,
        **fields: Any,
    ) -> Pdu:
        data, coding = encode_text(text)
        fields.setdefault("data_coding", coding)
        tlvs = () if op is None else ussd_tlvs(op, session, umr)
        return await self.request(
            SubmitSm(
                service_type="USSD" if op is not None else "",
                source_addr_ton=1,
                source_addr_npi=1,
                source_addr=msisdn,
                destination_addr=fields.pop("destination_addr", "111"),
                short_message=fields.pop("short_message", data),
                tlvs=tlvs,
                **fields,
            )
        )

    async def next_request(self) -> Pdu:
        return await asyncio.wait_for(self.requests.get(), TIMEOUT)

    async def deliver_sm(self) -> DeliverSm:
        while True:
            pdu = await self.next_request()
            if isinstance(pdu, DeliverSm):
                return pdu

    async def closed(self) -> None:
        await self.wait_closed(TIMEOUT)

    async def close(self) -> None:
        """Close the socket and wait until the connection has ended."""
        await self.aclose(TIMEOUT)


class FakeSmsc:
    """SmppConnection(role="server") per socket on 127.0.0.1:0 (see the module docstring)."""

    def __init__(self) -> None:
        self.answering = True
        self.submits = 0  # submit_sm received, answered or not
        self.submitted = asyncio.Event()  # set on every submit_sm
        self.server: asyncio.Server | None = None
        self.address: tuple[str, int] = ("127.0.0.1", 0)

    async def start(self) -> FakeSmsc:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.address = self.server.sockets[0].getsockname()[:2]
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        conn = SmppConnection("server", enquire_link_interval=None)
        try:
            while data := await reader.read(65536):
                conn.receive_data(data, loop.time())
                while (event := conn.next_event()) is not NEED_DATA:
                    if isinstance(event, ConnectionClosed | RemoteProtocolError):
                        return
                    if isinstance(event, BindRequest | EnquireLink | Unbind):
                        writer.write(conn.send(response_to(event)))
                    elif isinstance(event, SubmitSm):
                        self.submits += 1
                        self.submitted.set()
                        if self.answering:
                            writer.write(conn.send(response_to(event, message_id="1")))
                            screen = DeliverSm(
                                service_type="USSD",
                                source_addr="100",
                                destination_addr=event.source_addr,
                                short_message=b"OK",
                                tlvs=ussd_tlvs(UssdServiceOp.PSSR_RESPONSE),
                            )
                            writer.write(conn.send(screen, loop.time()))
                    elif isinstance(event, PduRejected):
                        writer.write(conn.send(event.response))
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def wait_submits(self, n: int) -> None:
        """Until n submit_sm have arrived in all."""
        async with asyncio.timeout(TIMEOUT):
            while self.submits < n:
                self.submitted.clear()
                await self.submitted.wait()


# -- our server under test ----------------------------------------------------------------------


async def start_server(gateway: Gateway, **kwargs: Any) -> SmppServer:
    """A started SmppServer with `.address`; the caller stops it.

    The simulated clock drives the transport timers too, so tests advance them by hand; stop()
    does not wait for peers that never answer the unbind (the stop tests set their own grace).
    """
    kwargs.setdefault("transport_clock", gateway.clock)
    kwargs.setdefault("stop_grace", 0.0)
    srv = SmppServer(gateway, **kwargs)
    srv.address = await srv.start("127.0.0.1", 0)  # type: ignore[attr-defined]
    return srv


async def bound(
    server: SmppServer,
    cls: type[BindRequest] = BindTransceiver,
    auto_ack: bool = True,
    **kw: Any,
) -> RecordingEsme:
    client = await RecordingEsme.connect(server.address)  # type: ignore[attr-defined]
    client.auto_ack = auto_ack
    resp = await client.bind(cls, **kw)
    assert resp.command_status == 0
    return client


async def no_request(client: RecordingEsme) -> bool:
    """True when the server has nothing more for this client (after a round trip)."""
    await client.request(EnquireLink())
    return client.requests.empty()


class Waiter:
    """Futures on engine events: wait for the first event matching a predicate."""

    def __init__(self, gateway: Gateway) -> None:
        self.waiting: list[tuple[Callable[[Event], bool], asyncio.Future[Event]]] = []
        gateway.engine.subscribe(self._on_event)

    def _on_event(self, event: Event) -> None:
        for pred, future in list(self.waiting):
            if not future.done() and pred(event):
                future.set_result(event)
                self.waiting.remove((pred, future))

    def expect(self, pred: Callable[[Event], bool]) -> asyncio.Future[Event]:
        future = asyncio.get_running_loop().create_future()
        self.waiting.append((pred, future))
        return future


def delivered(sms_id: int) -> Callable[[Event], bool]:
    return lambda e: (
        isinstance(e, SmsStateChanged) and e.sms.id == sms_id and e.sms.state is SmsState.DELIVERED
    )
