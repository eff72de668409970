"""SMPP edge cases found by attacking the server over real sockets (docs/smpp.md).

Every request gets exactly one response, and an accepted USSD request a screen; receipts are
plain GSM/ASCII text whatever the SMS was; every part that asked for a receipt gets its own;
every OK response names the request with a unique message_id; an MO SMS too long to deliver
whole is refused, never cut short.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.smpp.helpers import ALICE, KATE, bound, server_config, text_of
from tests.smpp.helpers import RecordingEsme as Esme
from tests.smpp.test_concat import UDHI, submit_part
from ussd.clock import SimulatedClock
from ussd.config import Config
from ussd.runtime import Gateway
from ussd.smpp.constants import CommandStatus, DataCoding, EsmClass, Tag, Ton, UssdServiceOp
from ussd.smpp.pdu import (
    BindReceiver,
    BindTransmitter,
    EnquireLink,
    ItsSessionInfo,
    SubmitSm,
    SubmitSmResp,
    encode_text,
)
from ussd.smpp.server import SmppServer
from ussd.smpp.ussd import receipt_excerpt, screen_source, sms_fits, split_text

S = CommandStatus


@pytest.fixture
def config() -> Config:
    return server_config()


async def responses_to(client: Esme, resp: Any) -> list[SubmitSmResp]:
    """Every submit_sm_resp with resp's sequence number seen once the server caught up.

    The server answers in order on one connection: once an enquire_link sent afterwards is
    answered, any second submit_sm_resp to the same request would already be here.
    """
    await client.request(EnquireLink())
    return [
        p
        for p in client.seen
        if isinstance(p, SubmitSmResp) and p.sequence_number == resp.sequence_number
    ]


async def dial_once(client: Esme, text: str) -> None:
    """Dial text: exactly one response; when accepted, a screen (a final one after release)."""
    resp = await client.submit(ALICE, text)
    assert len(await responses_to(client, resp)) == 1, text
    if resp.command_status != S.ESME_ROK:
        return
    assert resp.message_id
    screen = await client.deliver_sm()
    assert screen.service_type == "USSD"
    assert screen.ussd_service_op in (UssdServiceOp.USSR_REQUEST, UssdServiceOp.PSSR_RESPONSE)
    if screen.ussd_service_op == UssdServiceOp.USSR_REQUEST:
        released = await client.submit(ALICE, "", op=UssdServiceOp.RELEASE)
        assert released.command_status == S.ESME_ROK


# -- item: one response and a screen for any service code ---------------------------------


@pytest.mark.parametrize("text", ["*123456789012345678901#", "да", "€", "д", "€€", "*€#"])
async def test_unencodable_service_code_one_response_and_a_screen(
    server: SmppServer, text: str
) -> None:
    client = await bound(server)
    resp = await client.submit(ALICE, text)
    assert [r.command_status for r in await responses_to(client, resp)] == [S.ESME_ROK]
    screen = await client.deliver_sm()
    assert screen.service_type == "USSD"
    # The service code cannot be a source_addr: the screen comes from what the harness dialled.
    assert screen.source_addr == "111"
    await client.close()


def test_screen_source() -> None:
    assert screen_source("111") == "111"
    assert screen_source("*100#") == "*100#"
    assert screen_source("1" * 20) == "1" * 20
    assert screen_source("1" * 21, "111") == "111"
    assert screen_source("да", "111") == "111"
    assert screen_source("€", "да") == ""


DIAL_STRINGS = (
    st.from_regex(r"\A[*#]{1,2}[0-9*]{0,30}#\Z")
    | st.text(min_size=1, max_size=3)
    | st.text(alphabet="*#0123456789даж€😀", min_size=1, max_size=26)
)


def test_any_dial_gets_one_response_and_a_screen() -> None:
    """Property, over a real socket: whatever is dialled, one response; if OK, a screen."""

    async def setup() -> tuple[Gateway, SmppServer, Esme]:
        gateway = Gateway.create(server_config(), clock=SimulatedClock(), database=":memory:")
        srv = SmppServer(gateway, transport_clock=gateway.clock)
        srv.address = await srv.start("127.0.0.1", 0)  # type: ignore[attr-defined]
        return gateway, srv, await bound(srv)

    loop = asyncio.new_event_loop()
    try:
        gateway, srv, client = loop.run_until_complete(setup())

        @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(DIAL_STRINGS)
        def one(text: str) -> None:
            if "\0" in text:
                return  # not something a C-octet string or short_message can hold apart
            loop.run_until_complete(dial_once(client, text))

        one()
        loop.run_until_complete(srv.stop())
        gateway.engine.shutdown()
        gateway.store.close()
    finally:
        loop.close()


# -- item: every OK response has a unique, non-empty message_id -----------------------------


async def test_every_ok_submit_resp_has_a_unique_message_id(server: SmppServer) -> None:
    client = await bound(server)
    ids: list[str] = []

    async def ok(resp: Any) -> None:
        assert resp.command_status == S.ESME_ROK
        ids.append(resp.message_id)

    await ok(await client.submit(ALICE, "*111#"))  # a menu: continue screen
    await client.deliver_sm()
    await ok(await client.submit(ALICE, "3", op=UssdServiceOp.USSR_CONFIRM))
    await client.deliver_sm()
    await ok(await client.submit(ALICE, "", op=UssdServiceOp.RELEASE))
    await ok(await client.submit(ALICE, "", op=UssdServiceOp.RELEASE))  # nothing open
    await ok(await client.submit(ALICE, "", op=UssdServiceOp.USSN_CONFIRM))
    await ok(await client.submit(ALICE, "*111*17#extra"))  # not a dial string: end screen
    await client.deliver_sm()
    await ok(await client.submit(ALICE, "*100#"))
    await client.deliver_sm()
    end = ItsSessionInfo(3, 1, True)
    await ok(await client.submit(ALICE, "", op=UssdServiceOp.USSR_CONFIRM, session=end))
    await ok(await client.submit(ALICE, "Hi Kate", op=None, destination_addr=KATE))
    assert all(ids), ids
    assert len(set(ids)) == len(ids), ids
    await client.close()


# -- item: receipts are GSM/ASCII text ------------------------------------------------------


def test_receipt_excerpt_is_ascii_and_gsm() -> None:
    assert receipt_excerpt("Hello Bob") == "Hello Bob"
    assert receipt_excerpt("Привет, Кейт!") == "??????, ????!"
    assert receipt_excerpt("a$b@c_d\nе😀") == "a?b?c?d ??"
    assert len(receipt_excerpt("x" * 50)) == 20


@pytest.mark.parametrize("text", ["Привет, Кейт! Как дела?", "Price: 5$ @ shop_1 😀"])
async def test_receipt_of_a_ucs2_sms_is_data_coding_0(server: SmppServer, text: str) -> None:
    tx = await bound(server, BindTransmitter)
    resp = await tx.submit(ALICE, text, op=None, destination_addr=KATE, registered_delivery=1)
    assert resp.command_status == S.ESME_ROK
    kate = await bound(server, BindReceiver, system_id="ranges", password="pw")
    sms = await kate.deliver_sm()
    assert sms.data_coding == DataCoding.UCS2
    harness = await bound(server, BindReceiver)
    receipt = await harness.deliver_sm()
    assert receipt.esm_class == EsmClass.DELIVERY_RECEIPT
    assert receipt.data_coding == DataCoding.SMSC_DEFAULT
    ascii_text = receipt.short_message.decode("ascii")  # what jSMPP does
    assert ascii_text == text_of(receipt)  # ... reads the same as GSM 7-bit
    assert ascii_text.endswith("text:" + receipt_excerpt(text))
    assert ascii_text.startswith(f"id:{resp.message_id} ")


# -- item: a receipt per part that asked for one --------------------------------------------


async def test_each_part_asking_for_a_receipt_gets_its_own(server: SmppServer) -> None:
    text = "Встретимся на вокзале в семь, не опаздывай! " * 4  # 3 UCS-2 parts
    coding, parts = split_text(text)
    assert len(parts) == 3
    tx = await bound(server, BindTransmitter)
    asked = {1: 1, 2: 0, 3: 1}  # registered_delivery per part
    ids = {}
    for seq in (3, 1, 2):
        resp = await submit_part(
            tx, parts[seq - 1], coding, 41, 3, seq, registered_delivery=asked[seq]
        )
        assert resp.command_status == S.ESME_ROK
        ids[seq] = resp.message_id
    kate = await bound(server, BindReceiver, system_id="ranges", password="pw")
    for _ in parts:
        await kate.deliver_sm()
    harness = await bound(server, BindReceiver)
    receipts = [await harness.deliver_sm(), await harness.deliver_sm()]
    assert sorted(r.receipted_message_id for r in receipts) == sorted([ids[1], ids[3]])
    assert all(r.data_coding == DataCoding.SMSC_DEFAULT for r in receipts)
    await harness.request(EnquireLink())
    assert harness.requests.empty()  # none for part 2, nor a second copy


# -- item: longer than 255 parts is refused -------------------------------------------------


def long_mo(text: str, **fields: Any) -> SubmitSm:
    data, coding = encode_text(text)
    return SubmitSm(
        source_addr_ton=Ton.INTERNATIONAL,
        source_addr_npi=1,
        source_addr=ALICE,
        destination_addr=KATE,
        data_coding=coding,
        tlvs=((Tag.MESSAGE_PAYLOAD, data),),
        **fields,
    )


def test_sms_fits_255_parts() -> None:
    assert sms_fits("ж" * 67 * 255)
    assert not sms_fits("ж" * (67 * 255 + 1))
    assert sms_fits("a" * 153 * 255)
    assert not sms_fits("a" * (153 * 255 + 1))


async def test_mo_sms_over_255_parts_refused(server: SmppServer, gateway: Gateway) -> None:
    tx = await bound(server, BindTransmitter)
    resp = await tx.request(long_mo("ж" * (67 * 255 + 1), registered_delivery=1))
    assert resp.command_status == S.ESME_RINVMSGLEN
    assert gateway.sms.inbox(KATE) == []


async def test_mo_sms_of_255_parts_accepted(server: SmppServer, gateway: Gateway) -> None:
    tx = await bound(server, BindTransmitter)
    resp = await tx.request(long_mo("ж" * 67 * 255))
    assert resp.command_status == S.ESME_ROK
    (sms,) = gateway.sms.inbox(KATE)
    assert len(sms.text) == 67 * 255


async def test_concatenated_mo_over_255_parts_refused_at_the_last_part(
    server: SmppServer, gateway: Gateway
) -> None:
    half, coding = encode_text("ж" * 9000)
    tx = await bound(server, BindTransmitter)

    async def part(seq: int) -> Any:
        from ussd.smpp.concat import udh_concat

        return await tx.request(
            SubmitSm(
                source_addr_ton=Ton.INTERNATIONAL,
                source_addr_npi=1,
                source_addr=ALICE,
                destination_addr=KATE,
                esm_class=UDHI,
                data_coding=coding,
                tlvs=((Tag.MESSAGE_PAYLOAD, udh_concat(5, 2, seq) + half),),
            )
        )

    assert (await part(1)).command_status == S.ESME_ROK
    assert (await part(2)).command_status == S.ESME_RINVMSGLEN
    assert gateway.sms.inbox(KATE) == []
    assert gateway.store.held_parts() == 1  # the refused part was not kept


async def test_network_sms_over_255_parts_never_truncated(
    server: SmppServer, gateway: Gateway
) -> None:
    sms = gateway.sms.send(KATE, "ж" * (67 * 255 + 1))
    kate = await bound(server, BindReceiver, system_id="ranges", password="pw")
    await kate.request(EnquireLink())  # the bind's drain has run by now
    assert kate.requests.empty()  # nothing sent cut short
    assert gateway.store.sms(sms.id).state.value == "queued"  # type: ignore[union-attr]
