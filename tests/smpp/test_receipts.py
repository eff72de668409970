"""Delivery receipts are kept in SQLite (docs/smpp.md): acknowledged means never lost, even across
a gateway restart; a receipt is settled only by a deliver_sm_resp OK."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.smpp.helpers import (
    ALICE,
    KATE,
    TIMEOUT,
    Waiter,
    bound,
    delivered,
    no_request,
    server_config,
    start_server,
    text_of,
)
from tests.smpp.helpers import RecordingEsme as Esme
from ussd.clock import SimulatedClock
from ussd.config import Config
from ussd.events import SmsState
from ussd.runtime import Gateway
from ussd.smpp.constants import CommandStatus, EsmClass, MessageState
from ussd.smpp.pdu import BindReceiver, BindTransceiver, BindTransmitter, DeliverSm
from ussd.smpp.server import RECEIPT_ATTEMPTS, SmppServer
from ussd.store import ReceiptState

S = CommandStatus


@pytest.fixture
def config() -> Config:
    return server_config()


async def submit_mo(client: Esme, to: str, text: str, registered_delivery: int = 1) -> str:
    resp: Any = await client.submit(
        ALICE, text, op=None, destination_addr=to, registered_delivery=registered_delivery
    )
    assert resp.command_status == S.ESME_ROK
    return str(resp.message_id)


def assert_receipt(pdu: DeliverSm, message_id: str, state: MessageState, to: str) -> None:
    assert pdu.esm_class == EsmClass.DELIVERY_RECEIPT
    assert (pdu.source_addr, pdu.destination_addr) == (to, ALICE)
    assert pdu.receipted_message_id == message_id
    assert pdu.message_state == state
    assert text_of(pdu).startswith(f"id:{message_id} ")


async def test_receipt_obligation_is_on_disk_with_the_sms(
    server: SmppServer, gateway: Gateway
) -> None:
    tx = await bound(server, BindTransmitter)
    message_id = await submit_mo(tx, KATE, "Hello Kate")
    receipt = gateway.store.receipt(int(message_id))
    assert receipt is not None
    assert (receipt.state, receipt.system_id, receipt.message_id) == (
        ReceiptState.WAITING,
        "harness",
        message_id,
    )


async def test_receipt_and_sms_are_one_transaction(
    server: SmppServer, gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: Any, **_kw: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(gateway.store, "add_receipt", broken)
    tx = await bound(server, BindTransmitter)
    resp = await tx.submit(ALICE, "lost?", op=None, destination_addr=KATE, registered_delivery=1)
    assert resp.command_status == S.ESME_RSYSERR
    assert gateway.sms.inbox(KATE) == []  # the SMS was rolled back with its receipt


async def test_receipt_survives_restart(tmp_path: Path, clock: SimulatedClock) -> None:
    database = str(tmp_path / "ussd.sqlite")
    config = server_config()
    first = Gateway.create(config, clock=clock, database=database)
    srv = await start_server(first)
    tx = await bound(srv, BindTransmitter)
    message_id = await submit_mo(tx, KATE, "Hello Kate, see you")
    await srv.stop()  # before anyone could deliver it
    await first.stop()

    again = Gateway.create(config, clock=clock, database=database)
    waiter = Waiter(again)
    srv = await start_server(again)
    try:
        done = waiter.expect(delivered(int(message_id)))
        kate = await bound(srv, BindReceiver, system_id="ranges", password="pw")
        mo = await kate.deliver_sm()
        assert (mo.source_addr, text_of(mo)) == (ALICE, "Hello Kate, see you")
        await asyncio.wait_for(done, TIMEOUT)
        harness = await bound(srv, BindReceiver)
        receipt = await harness.deliver_sm()
        assert_receipt(receipt, message_id, MessageState.DELIVERED, KATE)
        assert "stat:DELIVRD" in text_of(receipt)
        assert await no_request(harness)  # exactly once
        stored = again.store.receipt(int(message_id))
        assert stored is not None and stored.state is ReceiptState.SENT
        # A later bind of the same system gets nothing more.
        later = await bound(srv, BindTransceiver)
        assert await no_request(later)
    finally:
        await srv.stop()
        await again.stop()


async def test_due_receipt_waits_for_its_system_to_bind(
    server: SmppServer, gateway: Gateway, waiter: Waiter
) -> None:
    tx = await bound(server, BindTransmitter)  # a transmitter cannot take the receipt
    message_id = await submit_mo(tx, KATE, "Hi")
    done = waiter.expect(delivered(int(message_id)))
    kate = await bound(server, BindReceiver, system_id="ranges", password="pw")
    await kate.deliver_sm()
    await asyncio.wait_for(done, TIMEOUT)
    assert await no_request(tx)
    receipt = gateway.store.receipt(int(message_id))
    assert receipt is not None and receipt.state is ReceiptState.DUE
    assert await no_request(kate)  # receipts go to their own system only
    rx = await bound(server, BindReceiver)
    assert_receipt(await rx.deliver_sm(), message_id, MessageState.DELIVERED, KATE)
    assert await no_request(rx)


async def test_unacknowledged_receipt_is_sent_again(
    server: SmppServer, gateway: Gateway, clock: SimulatedClock
) -> None:
    client = await bound(server, auto_ack=False)
    message_id = await submit_mo(client, KATE, "ack the SMS, not the receipt")
    mo = await client.deliver_sm()
    client.ack(mo)
    first = await client.deliver_sm()
    assert_receipt(first, message_id, MessageState.DELIVERED, KATE)
    assert await no_request(client)  # one copy at a time,
    other = await bound(server, BindReceiver)  # even when another bind of the system comes
    assert await no_request(other)
    clock.advance(gateway.config.smpp.response_timeout)
    second = await client.deliver_sm()
    assert second.short_message == first.short_message
    assert second.sequence_number != first.sequence_number
    receipt = gateway.store.receipt(int(message_id))
    assert receipt is not None and receipt.state is ReceiptState.DUE
    client.ack(second)
    assert await no_request(client)
    receipt = gateway.store.receipt(int(message_id))
    assert receipt is not None and receipt.state is ReceiptState.SENT
    client.auto_ack = True  # answers the unbind at teardown


async def test_receipt_unacknowledged_when_bind_drops_goes_to_next_bind(
    server: SmppServer, gateway: Gateway
) -> None:
    client = await bound(server, auto_ack=False)
    message_id = await submit_mo(client, KATE, "drop me")
    client.ack(await client.deliver_sm())
    await client.deliver_sm()  # the receipt, never answered
    await client.close()
    rx = await bound(server, BindReceiver)
    assert_receipt(await rx.deliver_sm(), message_id, MessageState.DELIVERED, KATE)


async def test_refused_receipt_retried_later_then_given_up(
    server: SmppServer, gateway: Gateway, clock: SimulatedClock
) -> None:
    client = await bound(server, auto_ack=False)
    message_id = await submit_mo(client, KATE, "refuse the receipt")
    client.ack(await client.deliver_sm())
    for attempt in range(1, RECEIPT_ATTEMPTS + 1):
        receipt = await client.deliver_sm()
        assert receipt.esm_class == EsmClass.DELIVERY_RECEIPT
        client.ack(receipt, S.ESME_RX_T_APPN)
        assert await no_request(client)  # not resent in a tight loop
        stored = gateway.store.receipt(int(message_id))
        assert stored is not None and stored.attempts == attempt
        clock.advance(gateway.config.smpp.response_timeout)
    assert await no_request(client)
    stored = gateway.store.receipt(int(message_id))
    assert stored is not None and stored.state is ReceiptState.REFUSED
    client.auto_ack = True


async def test_failure_only_receipt_skipped_on_delivery(
    server: SmppServer, gateway: Gateway
) -> None:
    client = await bound(server)
    message_id = await submit_mo(client, KATE, "no news is good news", registered_delivery=2)
    await client.deliver_sm()
    assert await no_request(client)  # the round trip also lets the server read the ack
    assert gateway.sms.inbox(KATE)[-1].state is SmsState.DELIVERED
    stored = gateway.store.receipt(int(message_id))
    assert stored is not None and stored.state is ReceiptState.SKIPPED


async def test_failure_only_receipt_on_expiry(server: SmppServer, gateway: Gateway) -> None:
    tx = await bound(server, BindTransmitter)
    message_id = await submit_mo(tx, KATE, "nobody home", registered_delivery=2)
    gateway.advance(gateway.config.sms.validity + 1)
    rx = await bound(server, BindReceiver)
    receipt = await rx.deliver_sm()
    assert_receipt(receipt, message_id, MessageState.EXPIRED, KATE)
    assert "stat:EXPIRED" in text_of(receipt)


@pytest.mark.parametrize("registered_delivery", [0, 3, 0x1C])  # 11 reserved; bits 4..2 ignored
async def test_no_receipt_requested(
    server: SmppServer, gateway: Gateway, registered_delivery: int
) -> None:
    tx = await bound(server, BindTransmitter)
    message_id = await submit_mo(tx, KATE, "quiet", registered_delivery=registered_delivery)
    assert gateway.store.receipt(int(message_id)) is None
