"""The one ESME client (sim/esme.py) against a tiny SMSC over real sockets on 127.0.0.1:0."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from sim.esme import Esme, QueueFull, RequestTimeout, connect
from tests.smpp.helpers import TIMEOUT, FakeSmsc, RecordingEsme
from ussd.smpp.constants import CommandStatus, UssdServiceOp
from ussd.smpp.pdu import (
    BindTransceiver,
    EnquireLink,
    EnquireLinkResp,
    LocalProtocolError,
    Pdu,
    SubmitSm,
    SubmitSmResp,
    UnknownPdu,
    ussd_tlvs,
)


def dial(msisdn: str = "79900000001") -> SubmitSm:
    return SubmitSm(
        service_type="USSD",
        source_addr=msisdn,
        destination_addr="100",
        short_message=b"*100#",
        tlvs=ussd_tlvs(UssdServiceOp.PSSR_INDICATION),
    )


class Hooked(Esme):
    """Records which context came back how."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.answered: list[tuple[Any, Pdu]] = []
        self.failed: list[tuple[Any, Exception]] = []
        self.changed = asyncio.Event()

    def response_received(self, context: Any, response: Pdu) -> None:
        if isinstance(context, asyncio.Future):  # call()
            super().response_received(context, response)
            return
        self.answered.append((context, response))
        self.changed.set()

    def request_failed(self, context: Any, request: Pdu, error: Exception) -> None:
        if isinstance(context, asyncio.Future):
            super().request_failed(context, request, error)
            return
        self.failed.append((context, error))
        self.changed.set()

    async def until(self, n: int) -> None:
        async with asyncio.timeout(TIMEOUT):
            while len(self.answered) + len(self.failed) < n:
                self.changed.clear()
                await self.changed.wait()


@pytest.fixture
async def smsc() -> AsyncIterator[FakeSmsc]:
    server = await FakeSmsc().start()
    yield server
    await server.stop()


async def bound(smsc: FakeSmsc, **kwargs: Any) -> Hooked:
    client = await connect(lambda: Hooked(**kwargs), *smsc.address)
    await client.bind("harness", "secret")
    return client


async def test_context_comes_back_on_the_response(smsc: FakeSmsc) -> None:
    client = await bound(smsc)
    client.send_request(dial(), "first")
    client.send_request(dial("79900000002"), "second")
    await client.until(2)
    assert [(c, type(r)) for c, r in client.answered] == [
        ("first", SubmitSmResp),
        ("second", SubmitSmResp),
    ]
    assert client.failed == []
    await client.unbind()
    assert client.ended == "unbind completed"


async def test_timed_out_requests_leave_the_window(smsc: FakeSmsc) -> None:
    client = await bound(smsc, window=2, response_timeout=0.05)
    smsc.answering = False
    for i in range(5):  # two on the wire, three queued for a slot
        client.send_request(dial(), i)
    await client.until(5)
    assert [c for c, _ in client.failed] == [0, 1, 2, 3, 4]
    assert all(isinstance(e, RequestTimeout) for _, e in client.failed)
    assert smsc.submits == 5  # the queued ones went out as slots freed
    assert client.conn.window_available == 2 and client.conn.outstanding == 0
    smsc.answering = True
    assert isinstance(await client.call(dial()), SubmitSmResp)
    await client.aclose()


async def test_queue_is_bounded(smsc: FakeSmsc, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sim.esme.QUEUE_LIMIT", 2)
    client = await bound(smsc, window=1)
    smsc.answering = False
    for i in range(3):
        client.send_request(dial(), i)
    with pytest.raises(QueueFull):
        client.send_request(dial(), 3)
    await client.aclose()


async def test_lost_connection_fails_every_context(smsc: FakeSmsc) -> None:
    client = await bound(smsc, window=1)
    smsc.answering = False
    client.send_request(dial(), "sent")
    client.send_request(dial(), "queued")
    await smsc.wait_submits(1)
    client.abort()
    await client.until(2)
    assert sorted(c for c, _ in client.failed) == ["queued", "sent"]
    assert all(isinstance(e, ConnectionError) for _, e in client.failed)
    with pytest.raises(LocalProtocolError):
        client.send_request(dial(), "late")


async def test_state_rules_hold_unless_unchecked(smsc: FakeSmsc) -> None:
    client = await connect(Esme, *smsc.address)
    with pytest.raises(LocalProtocolError):  # submit_sm before bind (SMPP 3.4 §2.3)
        client.send_request(dial())
    refused = await client.call(dial(), unchecked=True)
    assert refused.command_status == CommandStatus.ESME_RINVBNDSTS
    await client.bind("harness", "secret")
    # A second bind gets ESME_RALYBND (SMPP 3.4 §5.1.3); the first bind stands.
    again = await client.call(BindTransceiver(system_id="x"), unchecked=True)
    assert again.command_status == CommandStatus.ESME_RALYBND
    assert isinstance(await client.call(dial()), SubmitSmResp)
    nack = await client.call(UnknownPdu(command_id=0x99), unchecked=True)
    assert nack.command_status == CommandStatus.ESME_RINVCMDID
    await client.unbind()


async def test_requests_from_the_smsc_are_answered(smsc: FakeSmsc) -> None:
    client = await connect(RecordingEsme, *smsc.address)
    await client.call(BindTransceiver(system_id="harness"))
    await client.call(dial())
    screen = await client.deliver_sm()
    assert screen.ussd_service_op == UssdServiceOp.PSSR_RESPONSE
    assert isinstance(await client.call(EnquireLink()), EnquireLinkResp)
    await client.close()


async def test_unchecked_request_times_out_and_is_forgotten(smsc: FakeSmsc) -> None:
    client = await connect(Esme, *smsc.address)
    await client.bind("harness", "secret")
    smsc.answering = False
    with pytest.raises(RequestTimeout):
        await client.call(dial(), unchecked=True, wait=0.05)
    with pytest.raises(RequestTimeout):  # a checked call with its own, shorter wait
        await client.call(dial(), wait=0.05)
    assert client._unchecked == {}
    await client.aclose()
