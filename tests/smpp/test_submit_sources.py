"""SmppConnection.submit_sources: the source_addr of the submit_sm buffered and not handled yet.

A look ahead only (cluster mode asks Redis about a read's numbers in one round trip,
docs/cluster.md "Performance"): it must name exactly the complete submit_sm still to come,
never raise on any bytes, and never change what next_event() then decodes.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ussd.smpp.connection import NEED_DATA, SmppConnection, State
from ussd.smpp.constants import UssdServiceOp
from ussd.smpp.pdu import (
    BindTransceiver,
    BindTransceiverResp,
    EnquireLink,
    ItsSessionInfo,
    SubmitSm,
    encode_pdu,
    ussd_tlvs,
)


def _submit(source: str, service_type: str = "USSD", seq: int = 2) -> bytes:
    return encode_pdu(
        SubmitSm(
            sequence_number=seq,
            service_type=service_type,
            source_addr=source,
            destination_addr="111",
            short_message=b"3",
            tlvs=ussd_tlvs(UssdServiceOp.USSR_CONFIRM, ItsSessionInfo(1, 1, False)),
        )
    )


def _bound() -> SmppConnection:
    conn = SmppConnection("server", now=0.0)
    conn.receive_data(
        encode_pdu(BindTransceiver(sequence_number=1, system_id="h", password="p")), 0.0
    )
    assert isinstance(conn.next_event(), BindTransceiver)
    conn.send(BindTransceiverResp(sequence_number=1, system_id="ussd-sim"))
    assert conn.state is State.BOUND_TRX
    return conn


BIND = encode_pdu(BindTransceiver(sequence_number=1, system_id="h", password="p"))
ENQUIRE = encode_pdu(EnquireLink(sequence_number=9))
ONE = _submit("79161234567")


@pytest.mark.parametrize(
    ("data", "sources"),
    [
        (b"", []),
        (ONE, ["79161234567"]),
        (ONE + _submit("+7 916", "", 3) + _submit("", "CMT", 4), ["79161234567", "+7 916", ""]),
        (ENQUIRE + ONE + ENQUIRE, ["79161234567"]),  # other PDUs are stepped over
        (ONE + ONE[:20], ["79161234567"]),  # an incomplete PDU is not there yet
        (ONE[:15], []),  # nor an incomplete header
        (b"\x00\x00\x00\x05" + b"\x00" * 12 + ONE, []),  # a bad length ends the look
        # service_type longer than SMPP 3.4 allows: ends the look (next_event refuses it).
        (ONE[:16] + b"TOOLONGTYPE\x00" + ONE[21:], []),
        # A body that stops inside source_addr.
        (b"\x00\x00\x00\x1a\x00\x00\x00\x04" + b"\x00" * 8 + b"USSD\x00\x01\x01791", []),
        (BIND + ONE, ["79161234567"]),
    ],
)
def test_the_sources_of_the_complete_submit_sm_buffered(data: bytes, sources: list[str]) -> None:
    conn = SmppConnection("server", now=0.0)
    conn.receive_data(data, 0.0)
    assert conn.submit_sources() == sources


def test_only_what_is_not_handled_yet_is_named() -> None:
    conn = _bound()
    conn.receive_data(ONE + _submit("79161234568", seq=3), 0.0)
    assert conn.submit_sources() == ["79161234567", "79161234568"]
    first = conn.next_event()
    assert isinstance(first, SubmitSm) and first.source_addr == "79161234567"
    assert conn.submit_sources() == ["79161234568"]
    conn.next_event()
    assert conn.submit_sources() == []
    assert conn.next_event() is NEED_DATA


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.lists(st.sampled_from([ONE, ENQUIRE]), max_size=4))
def test_any_bytes_never_raise_and_change_nothing_decoded(noise: bytes, pdus: list[bytes]) -> None:
    looked, plain = _bound(), _bound()
    data = b"".join(pdus) + noise
    looked.receive_data(data, 0.0)
    plain.receive_data(data, 0.0)
    sources = looked.submit_sources()
    assert len(sources) <= len(data) // 16
    for _ in range(20):  # what next_event() gives is the same with or without the look
        a, b = looked.next_event(), plain.next_event()
        assert type(a) is type(b) and repr(a) == repr(b)
        if a is NEED_DATA:
            break
    if pdus:
        assert sources[: pdus.count(ONE)] == ["79161234567"] * pdus.count(ONE)
