"""Concatenated MO SMS (TS 23.040 §9.2.3.24.1/.8): the UDH parser, and reassembly in the server
with parts kept in SQLite until their set is complete."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.smpp.helpers import (
    ALICE,
    KATE,
    bound,
    no_request,
    server_config,
    start_server,
    text_of,
)
from tests.smpp.helpers import RecordingEsme as Esme
from ussd.clock import SimulatedClock
from ussd.config import Config
from ussd.runtime import Gateway
from ussd.smpp.concat import Concat, UdhError, UserData, split_user_data, udh_concat
from ussd.smpp.constants import CommandStatus, DataCoding, EsmClass, MessageState, Ton
from ussd.smpp.pdu import BindReceiver, BindTransmitter, SubmitSm, decode_text, encode_text
from ussd.smpp.server import SmppServer
from ussd.smpp.ussd import receipt_excerpt, split_text

S = CommandStatus
UDHI = EsmClass.UDHI

# -- the UDH parser ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "esm_class", "expected"),
    [
        (b"hello", 0, UserData(None, b"hello")),
        (b"\x05\x00\x03\x2a\x02\x01hi", 0, UserData(None, b"\x05\x00\x03\x2a\x02\x01hi")),
        (b"\x05\x00\x03\x2a\x02\x01hi", UDHI, UserData(Concat(0x2A, 2, 1), b"hi")),
        (
            b"\x06\x08\x04\x12\x34\x03\x03hi",
            UDHI,
            UserData(Concat(0x1234, 3, 3, 16), b"hi"),
        ),
        # port addressing (IE 0x05) only: not concatenated, the header is stripped
        (b"\x06\x05\x04\x0b\x84\x23\xf0hi", UDHI, UserData(None, b"hi")),
        # port addressing then concatenation
        (
            b"\x0b\x05\x04\x0b\x84\x23\xf0\x00\x03\x07\x02\x02hi",
            UDHI,
            UserData(Concat(7, 2, 2), b"hi"),
        ),
        # a repeated IE: the last one counts (TS 23.040 §9.2.3.24)
        (
            b"\x0a\x00\x03\x01\x02\x01\x00\x03\x09\x03\x02",
            UDHI,
            UserData(Concat(9, 3, 2), b""),
        ),
        (b"\x05\x00\x03\x01\x01\x01", UDHI, UserData(Concat(1, 1, 1), b"")),
    ],
)
def test_split_user_data(message: bytes, esm_class: int, expected: UserData) -> None:
    assert split_user_data(message, esm_class) == expected


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (b"", "message is empty"),
        (b"\x00hi", "UDHL is 0"),
        (b"\x09\x00\x03\x01\x02\x01", "runs past the 6-octet message"),
        (b"\x03\x00\x03\x01hi", "IE 0x00 length 3 runs past UDHL 3"),
        (b"\x01\x00", "at octet 0 has no length"),
        (b"\x04\x00\x02\x01\x02", "IE 0x00 with length 2 (expected 3)"),
        (b"\x05\x08\x03\x01\x02\x01", "IE 0x08 with length 3 (expected 4)"),
        (b"\x05\x00\x03\x01\x00\x00", "with 0 parts"),
        (b"\x05\x00\x03\x01\x02\x00", "part 0 of 2"),
        (b"\x05\x00\x03\x01\x02\x03", "part 3 of 2"),
    ],
)
def test_malformed_udh(message: bytes, reason: str) -> None:
    with pytest.raises(UdhError) as info:
        split_user_data(message, UDHI)
    assert reason in info.value.reason
    assert info.value.status == S.ESME_RINVESMCLASS


@given(st.binary(max_size=40), st.integers(0, 255))
def test_any_bytes_split_or_refused(message: bytes, esm_class: int) -> None:
    outcome: UserData | UdhError
    try:
        outcome = split_user_data(message, esm_class)
    except UdhError as exc:
        outcome = exc
    if isinstance(outcome, UdhError):
        assert esm_class & UDHI
        assert outcome.status == S.ESME_RINVESMCLASS
    else:
        assert message.endswith(outcome.payload)
        if not esm_class & UDHI:
            assert outcome == UserData(None, message)
        if outcome.concat is not None:
            assert 1 <= outcome.concat.seq <= outcome.concat.total


@pytest.mark.parametrize("bits", [8, 16])
def test_udh_concat_round_trip(bits: int) -> None:
    udh = udh_concat(300 if bits == 16 else 44, 4, 3, bits)
    assert split_user_data(udh + b"x", UDHI) == UserData(
        Concat(300 if bits == 16 else 44, 4, 3, bits), b"x"
    )


# -- reassembly in the server -----------------------------------------------------------------


@pytest.fixture
def config() -> Config:
    return server_config()


def parts_of(text: str) -> tuple[int, list[bytes]]:
    coding, parts = split_text(text)
    assert len(parts) > 1
    return coding, parts


async def submit_part(
    client: Esme,
    payload: bytes,
    coding: int,
    ref: int,
    total: int,
    seq: int,
    bits: int = 8,
    registered_delivery: int = 0,
) -> Any:
    return await client.request(
        SubmitSm(
            source_addr_ton=Ton.INTERNATIONAL,
            source_addr_npi=1,
            source_addr=ALICE,
            destination_addr=KATE,
            esm_class=UDHI,
            data_coding=coding,
            registered_delivery=registered_delivery,
            short_message=udh_concat(ref, total, seq, bits) + payload,
        )
    )


GSM_TEXT = "Meet me at the station at 7. " * 12  # 348 septets: 3 parts
UCS2_TEXT = "Встретимся на вокзале в семь, не опаздывай! " * 4  # 176 characters: 3 parts


@pytest.mark.parametrize(
    ("text", "bits", "order"),
    [
        (GSM_TEXT, 8, [1, 2, 3]),
        (GSM_TEXT, 16, [3, 1, 2]),
        (UCS2_TEXT, 8, [2, 3, 1]),
        (UCS2_TEXT, 16, [1, 2, 3]),
    ],
)
async def test_parts_become_one_sms(
    server: SmppServer, gateway: Gateway, text: str, bits: int, order: list[int]
) -> None:
    coding, parts = parts_of(text)
    tx = await bound(server, BindTransmitter)
    ids = []
    for seq in order:
        ref = 0x1A2 if bits == 16 else 0xA2
        resp = await submit_part(tx, parts[seq - 1], coding, ref, len(parts), seq, bits)
        assert resp.command_status == S.ESME_ROK
        ids.append(resp.message_id)
        if seq != order[-1]:
            assert gateway.sms.inbox(KATE) == []  # held until the set is complete
    assert len(set(ids)) == len(ids) and all(i.startswith("c") for i in ids)
    (sms,) = gateway.sms.inbox(KATE)
    assert (sms.text, sms.sender, sms.kind) == (text, ALICE, "mo")
    assert gateway.store.held_parts() == 0
    # It goes out as one (concatenated) SMS to the recipient.
    kate = await bound(server, BindReceiver, system_id="ranges", password="pw")
    out = [await kate.deliver_sm() for _ in parts]
    assert b"".join(p.short_message[6:] for p in out) == b"".join(parts)
    assert all(p.data_coding == coding for p in out)


async def test_mixed_codings_and_duplicates(server: SmppServer, gateway: Gateway) -> None:
    tx = await bound(server, BindTransmitter)
    gsm, _ = encode_text("Hello ", DataCoding.SMSC_DEFAULT)
    ucs2, _ = encode_text("Привет", DataCoding.UCS2)
    first = await submit_part(tx, gsm, DataCoding.SMSC_DEFAULT, 9, 2, 1)
    again = await submit_part(tx, b"other", DataCoding.SMSC_DEFAULT, 9, 2, 1)
    assert again.command_status == S.ESME_ROK
    assert again.message_id == first.message_id  # a duplicate: the first copy is kept
    assert gateway.store.held_parts() == 1
    last = await submit_part(tx, ucs2, DataCoding.UCS2, 9, 2, 2)
    assert last.command_status == S.ESME_ROK
    (sms,) = gateway.sms.inbox(KATE)
    assert sms.text == "Hello Привет"
    # A late duplicate of a completed set starts a new set, which expires unless completed.
    late = await submit_part(tx, gsm, DataCoding.SMSC_DEFAULT, 9, 2, 2)
    assert late.command_status == S.ESME_ROK
    assert len(gateway.sms.inbox(KATE)) == 1


async def test_sets_are_keyed_by_addresses_reference_and_count(
    server: SmppServer, gateway: Gateway
) -> None:
    tx = await bound(server, BindTransmitter)
    a, _ = encode_text("a")
    for ref, total in ((1, 2), (2, 2), (1, 3)):
        resp = await submit_part(tx, a, 0, ref, total, 1)
        assert resp.command_status == S.ESME_ROK
    assert gateway.store.held_parts() == 3
    assert gateway.sms.inbox(KATE) == []


@pytest.mark.parametrize(
    "short_message", [b"", b"\x09\x00\x03\x01\x02\x01hi", b"\x05\x00\x03\x01\x02\x03hi"]
)
async def test_malformed_udh_refused(
    server: SmppServer, gateway: Gateway, short_message: bytes
) -> None:
    tx = await bound(server, BindTransmitter)
    resp = await tx.submit(
        ALICE, "", op=None, destination_addr=KATE, esm_class=UDHI, short_message=short_message
    )
    assert resp.command_status == S.ESME_RINVESMCLASS
    assert gateway.sms.inbox(KATE) == [] and gateway.store.held_parts() == 0


async def test_single_part_set_is_stored_at_once(server: SmppServer, gateway: Gateway) -> None:
    tx = await bound(server, BindTransmitter)
    resp = await submit_part(tx, b"solo", 0, 5, 1, 1)
    (sms,) = gateway.sms.inbox(KATE)
    assert resp.message_id == str(sms.id) and sms.text == "solo"


async def test_incomplete_set_expires(server: SmppServer, gateway: Gateway) -> None:
    coding, parts = parts_of(GSM_TEXT)
    tx = await bound(server, BindTransmitter)
    await submit_part(tx, parts[0], coding, 3, 3, 1)
    await submit_part(tx, parts[1], coding, 3, 3, 2)
    gateway.advance(gateway.config.sms.validity + 1)
    assert gateway.store.held_parts() == 0
    await submit_part(tx, parts[2], coding, 3, 3, 3)
    assert gateway.sms.inbox(KATE) == [] and gateway.store.held_parts() == 1


async def test_restart_between_parts_with_receipt(tmp_path: Path, clock: SimulatedClock) -> None:
    database = str(tmp_path / "ussd.sqlite")
    config = server_config()
    coding, parts = parts_of(UCS2_TEXT)
    first = Gateway.create(config, clock=clock, database=database)
    srv = await start_server(first)
    tx = await bound(srv, BindTransmitter)
    r1 = await submit_part(tx, parts[0], coding, 77, 3, 1)
    r2 = await submit_part(tx, parts[1], coding, 77, 3, 2, registered_delivery=1)
    await srv.stop()
    await first.stop()

    again = Gateway.create(config, clock=clock, database=database)
    srv = await start_server(again)
    try:
        assert again.store.held_parts() == 2
        tx = await bound(srv, BindTransmitter)
        r3 = await submit_part(tx, parts[2], coding, 77, 3, 3, registered_delivery=1)
        assert [r.command_status for r in (r1, r2, r3)] == [0, 0, 0]
        (sms,) = again.sms.inbox(KATE)
        assert sms.text == UCS2_TEXT
        kate = await bound(srv, BindReceiver, system_id="ranges", password="pw")
        for _ in parts:
            await kate.deliver_sm()
        harness = await bound(srv, BindReceiver)
        # SMPP 3.4 §5.2.17: one receipt per part that asked for one (parts 2 and 3, one of
        # them held across the restart), each named after its part.
        receipts = [await harness.deliver_sm(), await harness.deliver_sm()]
        assert [r.receipted_message_id for r in receipts] == [r2.message_id, r3.message_id]
        for receipt, resp in zip(receipts, (r2, r3), strict=True):
            assert receipt.message_state == MessageState.DELIVERED
            assert text_of(receipt).startswith(f"id:{resp.message_id} ")
            assert text_of(receipt).endswith("text:" + receipt_excerpt(UCS2_TEXT))
        assert await no_request(harness)
    finally:
        await srv.stop()
        await again.stop()


def test_split_text_parts_decode() -> None:
    # The parts the tests submit are the ones the gateway itself would send.
    coding, parts = parts_of(UCS2_TEXT)
    assert "".join(decode_text(p, coding) for p in parts) == UCS2_TEXT
