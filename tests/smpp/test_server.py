"""The asyncio SMPP server over real sockets (docs/smpp.md), driven by a raw ESME on our codec."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator

import pytest

from tests.conftest import make_config
from tests.smpp.helpers import (
    ACCOUNTS,
    ALICE,
    BOB,
    TIMEOUT,
    Waiter,
    bound,
    delivered,
    no_request,
    server_config,
    text_of,
)
from tests.smpp.helpers import RecordingEsme as Esme
from ussd.clock import SimulatedClock
from ussd.config import Config
from ussd.events import DialogEnded, Outcome, SmsState
from ussd.runtime import Gateway
from ussd.smpp.constants import (
    CommandId,
    CommandStatus,
    DataCoding,
    EsmClass,
    MessageState,
    Ton,
    UssdServiceOp,
    status_name,
)
from ussd.smpp.pdu import (
    BindReceiver,
    BindTransceiver,
    BindTransmitter,
    DeliverSm,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    ItsSessionInfo,
    Pdu,
    SubmitSmResp,
    Unbind,
    UnbindResp,
    UnknownPdu,
    decode_text,
)
from ussd.smpp.server import SmppServer
from ussd.smpp.ussd import receipt_text, split_text

S = CommandStatus


# -- fixtures (server and waiter: tests/smpp/conftest.py) ---------------------------------


@pytest.fixture
def config() -> Config:
    return server_config()


@pytest.fixture
async def esme(server: SmppServer) -> AsyncIterator[Esme]:
    client = await Esme.connect(server.address)  # type: ignore[attr-defined]
    yield client
    client.disconnect()


# -- binds ------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [BindTransmitter, BindReceiver, BindTransceiver])
async def test_bind_each_type(server: SmppServer, esme: Esme, cls: type[Pdu]) -> None:
    resp = await esme.bind(cls)
    assert resp.command_id == cls().command_id | 0x80000000
    assert resp.command_status == S.ESME_ROK
    assert resp.system_id == "ussd-sim"  # type: ignore[attr-defined]
    assert server.binds == 1


@pytest.mark.parametrize(
    ("system_id", "password", "status"),
    [
        ("nobody", "secret", S.ESME_RINVSYSID),
        ("harness", "wrong", S.ESME_RINVPASWD),
        ("harness", "", S.ESME_RINVPASWD),
        ("ranges", "secret", S.ESME_RINVPASWD),
    ],
)
async def test_bind_refused_then_retried(
    server: SmppServer, esme: Esme, system_id: str, password: str, status: int
) -> None:
    resp = await esme.bind(BindTransceiver, system_id, password)
    assert resp.command_status == status
    assert server.binds == 0
    # A refused bind leaves the session OPEN: the ESME may try again on the same socket.
    assert (await esme.bind()).command_status == S.ESME_ROK
    assert server.binds == 1


async def test_pdu_before_bind(server: SmppServer, esme: Esme) -> None:
    resp = await esme.submit(ALICE, "*100#")
    assert isinstance(resp, SubmitSmResp)
    assert resp.command_status == S.ESME_RINVBNDSTS
    assert server.gateway.engine.dialog(ALICE) is None


async def test_second_bind_refused(server: SmppServer, esme: Esme) -> None:
    await esme.bind()
    resp = await esme.bind(BindReceiver)
    assert resp.command_status == S.ESME_RALYBND
    assert server.binds == 1


async def test_unknown_command_gets_generic_nack(server: SmppServer, esme: Esme) -> None:
    await esme.bind()
    resp = await esme.request(UnknownPdu(command_id=0x00000099))
    assert isinstance(resp, GenericNack)
    assert resp.command_status == S.ESME_RINVCMDID
    # The session goes on.
    assert (await esme.submit(ALICE, "*100#")).command_status == S.ESME_ROK


async def test_unsupported_3_4_command(server: SmppServer, esme: Esme) -> None:
    await esme.bind()
    resp = await esme.request(UnknownPdu(command_id=CommandId.QUERY_SM, body=b"1\x00\x00\x00\x00"))
    assert resp.command_id == CommandId.QUERY_SM_RESP
    assert resp.command_status == S.ESME_RINVCMDID


async def test_enquire_link_from_esme(server: SmppServer, esme: Esme) -> None:
    assert isinstance(await esme.request(EnquireLink()), EnquireLinkResp)  # before bind too
    await esme.bind()
    assert isinstance(await esme.request(EnquireLink()), EnquireLinkResp)


async def test_unbind_from_esme(server: SmppServer, esme: Esme) -> None:
    await esme.bind()
    assert isinstance(await esme.request(Unbind()), UnbindResp)
    await esme.closed()
    assert server.binds == 0


async def test_server_probes_idle_bind_and_drops_dead_one(
    server: SmppServer, gateway: Gateway, clock: SimulatedClock
) -> None:
    alive = await bound(server)
    dead = await bound(server, auto_ack=False)
    assert server.binds == 2
    clock.advance(gateway.config.smpp.enquire_link_interval)
    assert isinstance(await alive.next_request(), EnquireLink)
    assert isinstance(await dead.next_request(), EnquireLink)
    # The live one answered (auto_ack); the dead one did not: response_timeout later it is gone.
    clock.advance(gateway.config.smpp.response_timeout)
    await dead.closed()
    assert server.binds == 1
    assert (await alive.submit(ALICE, "*100#")).command_status == S.ESME_ROK
    assert not alive.eof.done()


async def test_oversize_pdu_closes_only_that_connection(server: SmppServer) -> None:
    bad = await bound(server)
    good = await bound(server)
    bad.write(struct.pack("!IIII", 0x7FFFFFFF, CommandId.SUBMIT_SM, 0, 77))
    await bad.closed()
    nack = bad.seen[-1]
    assert isinstance(nack, GenericNack)
    assert (nack.command_status, nack.sequence_number) == (S.ESME_RINVCMDLEN, 77)
    assert server.binds == 1
    assert (await good.submit(ALICE, "*100#")).command_status == S.ESME_ROK
    assert isinstance(await good.deliver_sm(), DeliverSm)


async def test_undersize_command_length_closes_connection(server: SmppServer) -> None:
    bad = await bound(server)
    bad.write(struct.pack("!I", 8) + b"\x00" * 12)
    await bad.closed()
    assert server.binds == 0


async def test_malformed_submit_costs_only_that_pdu(server: SmppServer) -> None:
    client = await bound(server)
    # A submit_sm whose body stops inside service_type: the core answers ESME_RINVCMDLEN.
    client.write(struct.pack("!IIII", 20, CommandId.SUBMIT_SM, 0, 5) + b"USSD")
    resp = await client.submit(ALICE, "*100#")
    assert resp.command_status == S.ESME_ROK
    bad = next(p for p in client.seen if p.sequence_number == 5)
    assert (bad.command_id, bad.command_status) == (CommandId.SUBMIT_SM_RESP, S.ESME_RINVCMDLEN)


async def test_many_binds_at_once(server: SmppServer) -> None:
    clients = await asyncio.gather(*(bound(server) for _ in range(25)))
    assert server.binds == 25
    msisdns = [f"7926{i:07d}" for i in range(25)]
    pairs = zip(clients, msisdns, strict=True)
    resps = await asyncio.gather(*(c.submit(m, "*100#") for c, m in pairs))
    assert all(r.command_status == S.ESME_ROK for r in resps)
    screens = await asyncio.gather(*(c.deliver_sm() for c in clients))
    assert [s.destination_addr for s in screens] == msisdns
    for c in clients:
        await c.close()


# -- USSD -------------------------------------------------------------------------------------


def ussd_fields(pdu: DeliverSm) -> tuple[int | None, ItsSessionInfo | None, int | None]:
    return pdu.ussd_service_op, pdu.its_session_info, pdu.user_message_reference


async def test_password_dialog_end_to_end(server: SmppServer, gateway: Gateway) -> None:
    client = await bound(server)
    resp = await client.submit(ALICE, "*111*17#", session=ItsSessionInfo(9, 0), umr=0x1234)
    assert resp.command_status == S.ESME_ROK
    assert resp.message_id  # type: ignore[attr-defined]
    screen = await client.deliver_sm()
    # submit_sm_resp first, then the screen (docs/smpp.md).
    assert client.seen.index(resp) < client.seen.index(screen)
    assert screen.service_type == "USSD"
    assert (screen.source_addr, screen.destination_addr) == ("111", ALICE)
    assert screen.data_coding == DataCoding.UCS2  # Russian text
    assert ussd_fields(screen) == (UssdServiceOp.USSR_REQUEST, ItsSessionInfo(9, 1), 0x1234)
    assert "парол" in text_of(screen).lower()

    for i, answer in enumerate(["ab", "secret12"]):
        r = await client.submit(ALICE, answer, UssdServiceOp.USSR_CONFIRM, ItsSessionInfo(9, 2))
        assert r.command_status == S.ESME_ROK
        screen = await client.deliver_sm()
        assert ussd_fields(screen) == (
            UssdServiceOp.USSR_REQUEST,
            ItsSessionInfo(9, 3 + 2 * i),
            0x1234,
        )

    r = await client.submit(ALICE, "secret12", UssdServiceOp.USSR_CONFIRM)
    assert r.command_status == S.ESME_ROK
    final = await client.deliver_sm()
    assert final.ussd_service_op == UssdServiceOp.PSSR_RESPONSE
    assert final.its_session_info == ItsSessionInfo(9, 7, True)
    assert gateway.engine.dialog(ALICE) is None

    # The SMS notice follows as a plain deliver_sm from the operator's sender id.
    sms = await client.deliver_sm()
    assert sms.ussd_service_op is None and sms.service_type == ""
    assert (sms.source_addr, sms.source_addr_ton) == ("MTS", Ton.ALPHANUMERIC)
    assert sms.destination_addr == ALICE
    assert "secret12" not in text_of(sms)
    assert client.seen.index(final) < client.seen.index(sms)


async def test_number_management_dialog_with_sms(
    server: SmppServer, gateway: Gateway, waiter: Waiter
) -> None:
    client = await bound(server)
    assert (await client.submit(BOB, "*111*828*1#")).command_status == S.ESME_ROK
    screen = await client.deliver_sm()
    assert screen.ussd_service_op == UssdServiceOp.PSSR_RESPONSE
    info = screen.its_session_info
    assert info is not None and info.end_of_session and info.sequence_number == 1
    assert 1 <= info.session_number < 128  # assigned by the gateway
    assert screen.data_coding == DataCoding.SMSC_DEFAULT  # English text fits GSM 7-bit
    sms_pdu = await client.deliver_sm()
    assert sms_pdu.destination_addr == BOB and sms_pdu.ussd_service_op is None
    (sms,) = gateway.sms.inbox(BOB)
    if sms.state is not SmsState.DELIVERED:
        await asyncio.wait_for(waiter.expect(delivered(sms.id)), TIMEOUT)
    assert gateway.sms.inbox(BOB)[0].state is SmsState.DELIVERED


async def test_national_source_is_normalised(server: SmppServer, gateway: Gateway) -> None:
    client = await bound(server)
    assert (await client.submit("89161234567", "*111#")).command_status == S.ESME_ROK
    screen = await client.deliver_sm()
    assert screen.destination_addr == ALICE
    assert gateway.engine.dialog(ALICE) is not None


async def test_reply_without_dialog(server: SmppServer) -> None:
    client = await bound(server)
    resp = await client.submit(ALICE, "1", UssdServiceOp.USSR_CONFIRM)
    assert resp.command_status == S.ESME_RINVOPTPARVAL == 0xC4


@pytest.mark.parametrize("op", [UssdServiceOp.USSR_REQUEST, UssdServiceOp.PSSR_RESPONSE, 0x55])
async def test_network_side_op_refused(server: SmppServer, op: int) -> None:
    client = await bound(server)
    assert (await client.submit(ALICE, "x", op)).command_status == S.ESME_RINVOPTPARVAL


@pytest.mark.parametrize("coding", [0x02, 0x04, 0x06, 0xF0])
async def test_refused_data_coding(server: SmppServer, coding: int) -> None:
    client = await bound(server)
    resp = await client.submit(ALICE, "*100#", data_coding=coding)
    assert resp.command_status == S.ESME_RSUBMITFAIL


@pytest.mark.parametrize("coding", [0x00, 0x01, 0x03, 0x0F])
async def test_accepted_data_codings(server: SmppServer, coding: int) -> None:
    client = await bound(server)
    resp = await client.submit(ALICE, "*100#", data_coding=coding)
    assert resp.command_status == S.ESME_ROK


@pytest.mark.parametrize("coding", [0x08, 0x48])
async def test_ucs2_dial(server: SmppServer, coding: int) -> None:
    client = await bound(server)
    resp = await client.submit(
        ALICE, "", data_coding=coding, short_message="*100#".encode("utf-16-be")
    )
    assert resp.command_status == S.ESME_ROK
    assert (await client.deliver_sm()).ussd_service_op == UssdServiceOp.PSSR_RESPONSE


async def test_release_by_end_bit_and_by_op(server: SmppServer, gateway: Gateway) -> None:
    client = await bound(server)
    for release in (
        {"op": UssdServiceOp.USSR_CONFIRM, "session": ItsSessionInfo(3, 2, True)},
        {"op": UssdServiceOp.RELEASE},
    ):
        await client.submit(ALICE, "*111#")
        await client.deliver_sm()
        assert gateway.engine.dialog(ALICE) is not None
        resp = await client.submit(ALICE, "", **release)  # type: ignore[arg-type]
        assert resp.command_status == S.ESME_ROK
        assert gateway.engine.dialog(ALICE) is None
    # Releasing again is not an error (a timeout may have crossed it).
    assert (await client.submit(ALICE, "", UssdServiceOp.RELEASE)).command_status == 0


async def test_bad_dial_string_ends_with_screen(server: SmppServer) -> None:
    client = await bound(server)
    resp = await client.submit(ALICE, "*111*17#extra")
    assert resp.command_status == S.ESME_ROK
    screen = await client.deliver_sm()
    assert screen.ussd_service_op == UssdServiceOp.PSSR_RESPONSE
    assert screen.its_session_info is not None and screen.its_session_info.end_of_session
    assert text_of(screen) == "Неизвестный запрос."


@pytest.mark.parametrize(
    ("source", "text", "status"),
    [
        (ALICE, "89161112233", S.ESME_RINVDSTADR),  # a call
        (ALICE, "*#06#", S.ESME_RINVDSTADR),  # handset-local (IMEI)
        ("not-a-number", "*100#", S.ESME_RINVSRCADR),
    ],
)
async def test_dial_refusals(server: SmppServer, source: str, text: str, status: int) -> None:
    client = await bound(server)
    assert (await client.submit(source, text)).command_status == status


async def test_unknown_subscriber_without_auto_provision() -> None:
    config = make_config(
        smpp={"accounts": ACCOUNTS}, subscribers={"auto_provision": False, "seed": []}
    )
    gw = Gateway.create(config, clock=SimulatedClock(), database=":memory:")
    srv = SmppServer(gw)
    srv.address = await srv.start("127.0.0.1", 0)  # type: ignore[attr-defined]
    try:
        client = await bound(srv)
        assert (await client.submit(ALICE, "*100#")).command_status == S.ESME_RINVSRCADR
        await client.close()
    finally:
        await srv.stop()
        gw.engine.shutdown()
        gw.store.close()


async def test_reply_timeout_tells_the_harness(server: SmppServer, gateway: Gateway) -> None:
    client = await bound(server)
    await client.submit(ALICE, "*111#", session=ItsSessionInfo(4, 0))
    first = await client.deliver_sm()
    assert first.ussd_service_op == UssdServiceOp.USSR_REQUEST
    gateway.advance(gateway.config.ussd.reply_timeout)
    end = await client.deliver_sm()
    assert end.ussd_service_op == UssdServiceOp.PSSR_RESPONSE
    assert end.its_session_info == ItsSessionInfo(4, 2, True)
    assert text_of(end) == gateway.texts.get("common.timeout", "ru")
    assert gateway.engine.dialog(ALICE) is None


async def test_harness_vanishes_mid_dialog(
    server: SmppServer, gateway: Gateway, waiter: Waiter
) -> None:
    client = await bound(server)
    await client.submit(ALICE, "*111#")
    await client.deliver_sm()
    ended = waiter.expect(lambda e: isinstance(e, DialogEnded) and e.msisdn == ALICE)
    client.abort()
    event = await asyncio.wait_for(ended, TIMEOUT)
    assert isinstance(event, DialogEnded) and event.outcome is Outcome.RELEASED
    assert server.binds == 0
    # Nothing broke: a new harness dials again.
    again = await bound(server)
    assert (await again.submit(ALICE, "*100#")).command_status == S.ESME_ROK


async def test_dialog_replaced_from_another_bind(server: SmppServer) -> None:
    a = await bound(server)
    b = await bound(server)
    await a.submit(ALICE, "*111#", session=ItsSessionInfo(1, 0))
    await a.deliver_sm()
    await b.submit(ALICE, "*100#")
    assert (await b.deliver_sm()).ussd_service_op == UssdServiceOp.PSSR_RESPONSE
    end = await a.deliver_sm()  # a's dialog was replaced (TS 24.090): a hears it ended
    assert end.ussd_service_op == UssdServiceOp.PSSR_RESPONSE
    assert end.its_session_info == ItsSessionInfo(1, 2, True)


async def test_transmitter_screens_go_to_receiver_of_same_system(server: SmppServer) -> None:
    tx = await bound(server, BindTransmitter)
    rx = await bound(server, BindReceiver)
    assert (await tx.submit(ALICE, "*100#")).command_status == S.ESME_ROK
    screen = await rx.deliver_sm()
    assert screen.destination_addr == ALICE


async def test_window_full_screens_wait(gateway: Gateway) -> None:
    config = server_config(window=2)
    gw = Gateway.create(config, clock=SimulatedClock(), database=":memory:")
    srv = SmppServer(gw)
    srv.address = await srv.start("127.0.0.1", 0)  # type: ignore[attr-defined]
    try:
        client = await bound(srv, auto_ack=False)
        msisdns = [f"7926{i:07d}" for i in range(5)]
        for m in msisdns[:4]:
            assert (await client.submit(m, "*100#")).command_status == S.ESME_ROK
        first = [await client.deliver_sm(), await client.deliver_sm()]
        assert client.requests.empty()
        # Two on the wire, two waiting: the next request is refused until the harness acks.
        assert (await client.submit(msisdns[4], "*100#")).command_status == S.ESME_RMSGQFUL
        client.ack(first[0])
        third = await client.deliver_sm()
        assert third.destination_addr == msisdns[2]
        client.ack(first[1])
        client.ack(third)
        assert (await client.deliver_sm()).destination_addr == msisdns[3]
        await client.close()
    finally:
        await srv.stop()
        gw.engine.shutdown()
        gw.store.close()


# -- SMS reply path ---------------------------------------------------------------------------


async def test_queued_sms_delivered_on_later_bind(
    server: SmppServer, gateway: Gateway, waiter: Waiter
) -> None:
    sms = gateway.sms.send(ALICE, "Your balance is low")
    tx = await bound(server, BindTransmitter)  # a transmitter receives nothing
    assert await no_request(tx)
    done = waiter.expect(delivered(sms.id))
    rx = await bound(server, BindReceiver)
    pdu = await rx.deliver_sm()
    assert text_of(pdu) == "Your balance is low"
    assert (pdu.esm_class, pdu.data_coding, pdu.dest_addr_ton) == (0, 0, Ton.INTERNATIONAL)
    await asyncio.wait_for(done, TIMEOUT)


async def test_concatenated_ucs2_store_and_forward(
    server: SmppServer, gateway: Gateway, waiter: Waiter
) -> None:
    text = "Номер 79161234567 подключён к лицевому счёту. " * 4  # 188 chars, Cyrillic
    sms = gateway.sms.send(ALICE, text)
    first = await bound(server, BindReceiver, auto_ack=False)
    parts = [await first.deliver_sm() for _ in range(3)]
    for i, p in enumerate(parts, 1):
        assert p.esm_class == EsmClass.UDHI and p.data_coding == DataCoding.UCS2
        udh = p.short_message[:6]
        assert udh == bytes((5, 0, 3, sms.id & 0xFF, 3, i))
    body = b"".join(p.short_message[6:] for p in parts)
    assert body.decode("utf-16-be") == text
    assert all(len(p.short_message) - 6 <= 134 for p in parts)
    # Two of three parts acknowledged, then the bind drops: the SMS stays queued.
    first.ack(parts[0])
    first.ack(parts[1])
    await no_request(first)
    await first.close()
    done = waiter.expect(delivered(sms.id))
    again = await bound(server, BindReceiver)
    resent = [await again.deliver_sm() for _ in range(3)]
    assert [p.short_message for p in resent] == [p.short_message for p in parts]
    await asyncio.wait_for(done, TIMEOUT)


async def test_sms_expires_when_nobody_binds(server: SmppServer, gateway: Gateway) -> None:
    sms = gateway.sms.send(ALICE, "old news")
    gateway.advance(gateway.config.sms.validity + 1)
    assert gateway.sms.inbox(ALICE)[-1].state is SmsState.EXPIRED
    rx = await bound(server, BindReceiver)
    assert await no_request(rx)
    assert sms.id not in server.smsc._in_flight


async def test_unacknowledged_sms_retried_after_timeout(
    server: SmppServer, gateway: Gateway, clock: SimulatedClock, waiter: Waiter
) -> None:
    rx = await bound(server, BindReceiver, auto_ack=False)
    sms = gateway.sms.send(ALICE, "try again")
    first = await rx.deliver_sm()
    clock.advance(gateway.config.smpp.response_timeout)
    second = await rx.deliver_sm()
    assert second.short_message == first.short_message
    assert second.sequence_number != first.sequence_number
    done = waiter.expect(delivered(sms.id))
    rx.ack(second)
    await asyncio.wait_for(done, TIMEOUT)


async def test_refused_sms_is_kept_and_retried_later(
    server: SmppServer, gateway: Gateway, clock: SimulatedClock, waiter: Waiter
) -> None:
    rx = await bound(server, BindReceiver, auto_ack=False)
    sms = gateway.sms.send(ALICE, "refuse me once")
    rx.ack(await rx.deliver_sm(), S.ESME_RX_T_APPN)
    assert await no_request(rx)  # not resent in a tight loop
    assert gateway.sms.inbox(ALICE)[-1].state is SmsState.QUEUED
    done = waiter.expect(delivered(sms.id))
    clock.advance(gateway.config.smpp.response_timeout)
    rx.ack(await rx.deliver_sm())
    await asyncio.wait_for(done, TIMEOUT)


async def test_sms_ranges_route_to_covering_bind(server: SmppServer, gateway: Gateway) -> None:
    narrow = await bound(server, BindReceiver, system_id="ranges", password="pw")
    wide = await bound(server, BindReceiver)
    gateway.sms.send(ALICE, "for 7916")
    assert (await wide.deliver_sm()).destination_addr == ALICE
    assert await no_request(narrow)
    for i in range(4):
        gateway.sms.send(f"7926000000{i}", f"n{i}")
    got = await asyncio.gather(
        *(c.deliver_sm() for c in (narrow, wide, narrow, wide))  # round-robin
    )
    assert sorted(text_of(p) for p in got) == ["n0", "n1", "n2", "n3"]


async def test_mo_sms_with_delivery_receipt(server: SmppServer, gateway: Gateway) -> None:
    client = await bound(server)
    resp = await client.submit(
        ALICE, "Hello Bob", op=None, destination_addr=BOB, registered_delivery=1
    )
    assert resp.command_status == S.ESME_ROK
    (sms,) = gateway.sms.inbox(BOB)
    assert resp.message_id == str(sms.id)  # type: ignore[attr-defined]
    assert (sms.sender, sms.kind, sms.sender_is_alpha) == (ALICE, "mo", False)
    mo = await client.deliver_sm()
    assert (mo.source_addr, mo.source_addr_ton, mo.destination_addr) == (
        ALICE,
        Ton.INTERNATIONAL,
        BOB,
    )
    assert text_of(mo) == "Hello Bob" and mo.esm_class == 0
    receipt = await client.deliver_sm()
    assert receipt.esm_class == EsmClass.DELIVERY_RECEIPT
    assert (receipt.source_addr, receipt.destination_addr) == (BOB, ALICE)
    assert receipt.receipted_message_id == str(sms.id)
    assert receipt.message_state == MessageState.DELIVERED
    text = text_of(receipt)
    assert text.startswith(f"id:{sms.id} sub:001 dlvrd:001 submit date:")
    assert " stat:DELIVRD err:000 text:Hello Bob" in text


async def test_mo_sms_receipt_on_expiry_goes_to_receiver_of_same_system(
    server: SmppServer, gateway: Gateway
) -> None:
    tx = await bound(server, BindTransmitter)
    resp = await tx.submit(
        ALICE, "Hi", op=None, destination_addr="79260000001", registered_delivery=1
    )
    assert resp.command_status == S.ESME_ROK
    gateway.advance(gateway.config.sms.validity + 1)
    rx = await bound(server, BindReceiver)
    # The expired MO SMS is not delivered; its receipt says so.
    receipt = await rx.deliver_sm()
    assert receipt.esm_class == EsmClass.DELIVERY_RECEIPT
    assert receipt.message_state == MessageState.EXPIRED
    assert "stat:EXPIRED" in text_of(receipt)


async def test_mo_sms_bad_destination(server: SmppServer) -> None:
    client = await bound(server)
    resp = await client.submit(ALICE, "x", op=None, destination_addr="bob")
    assert resp.command_status == S.ESME_RINVDSTADR


# -- shutdown and metrics ---------------------------------------------------------------------


async def test_stop_unbinds_and_keeps_unacknowledged_sms(gateway: Gateway) -> None:
    # No grace at all: the silent bind is cut off at once instead of after the 2 s default.
    srv = SmppServer(gateway, stop_grace=0.0)
    srv.address = await srv.start("127.0.0.1", 0)  # type: ignore[attr-defined]
    polite = await bound(srv, auto_ack=False)
    silent = await bound(srv, BindTransmitter, auto_ack=False)
    gateway.sms.send(ALICE, "never acknowledged")
    await polite.deliver_sm()
    await srv.stop()
    await polite.closed()
    await silent.closed()
    assert any(isinstance(p, Unbind) for p in polite.seen)
    assert any(isinstance(p, Unbind) for p in silent.seen)
    assert srv.binds == 0
    assert gateway.sms.inbox(ALICE)[-1].state is SmsState.QUEUED


async def test_stop_returns_when_every_bind_answered_the_unbind(gateway: Gateway) -> None:
    # An hour of grace: stop() may only be quick because it waits on the unbind_resp itself.
    srv = SmppServer(gateway, stop_grace=3600.0)
    srv.address = await srv.start("127.0.0.1", 0)  # type: ignore[attr-defined]
    polite = await bound(srv)
    await asyncio.wait_for(srv.stop(), TIMEOUT)
    await polite.closed()
    assert any(isinstance(p, Unbind) for p in polite.seen)
    assert srv.binds == 0


async def test_metrics_count_pdus_and_binds(server: SmppServer, gateway: Gateway) -> None:
    client = await bound(server)
    await client.submit(ALICE, "1", UssdServiceOp.USSR_CONFIRM)
    counts = server.metrics.pdus
    assert counts["in", "bind_transceiver", "ESME_ROK"] == 1
    assert counts["out", "submit_sm_resp", status_name(0xC4)] == 1
    text = gateway.metrics.render().decode()
    assert 'ussd_smpp_binds{bind_type="transceiver"} 1.0' in text
    assert f'command="submit_sm_resp",status="{status_name(0xC4)}"' in text


# -- sans-IO helpers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "coding", "sizes"),
    [
        ("a" * 160, 0, [160]),
        ("a" * 161, 0, [153, 8]),
        ("€" * 80, 0, [160]),  # extension characters take two septets
        ("aa" + "€" * 80, 0, [152, 10]),  # never split ESC from its character
        ("я" * 70, 8, [140]),
        ("я" * 71, 8, [134, 8]),
        ("я" * 66 + "😀" * 3, 8, [132, 12]),  # no split inside a surrogate pair
    ],
)
def test_split_text(text: str, coding: int, sizes: list[int]) -> None:
    got_coding, parts = split_text(text)
    assert got_coding == coding
    assert [len(p) for p in parts] == sizes
    assert decode_text(b"".join(parts), coding) == text


def test_receipt_text_layout() -> None:
    t = 1_780_000_000.0  # 2026-05-28 20:26:40 UTC
    assert receipt_text("42", t, t + 60, MessageState.DELIVERED, "Привет, это длинный текст") == (
        "id:42 sub:001 dlvrd:001 submit date:2605282026 done date:2605282027"
        " stat:DELIVRD err:000 text:??????, ??? ??????? "
    )


async def test_business_clock_jump_leaves_binds_alone(gateway: Gateway, waiter: Waiter) -> None:
    # Default transport clock: real time, even though the gateway's clock is simulated. A
    # 2-day advance (an office link, docs/account.md) must neither probe nor drop a live bind, and
    # an
    # SMS sent during it is delivered exactly once.
    srv = SmppServer(gateway)
    srv.address = await srv.start("127.0.0.1", 0)  # type: ignore[attr-defined]
    try:
        rx = await bound(srv, BindTransceiver)
        gateway.advance(2 * 86400)
        sms = gateway.sms.send(ALICE, "after two days")
        done = waiter.expect(delivered(sms.id))
        pdu = await rx.deliver_sm()
        assert text_of(pdu) == "after two days"
        await asyncio.wait_for(done, TIMEOUT)
        gateway.advance(2 * 86400)
        assert await no_request(rx)  # no enquire_link, no second copy
        assert srv.binds == 1
    finally:
        await srv.stop()
