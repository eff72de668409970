"""SMPP 3.4 codec: wire tables, USSD TLVs, data codings, invariants, interop."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ussd.smpp.constants import (
    ACCEPTED_DATA_CODINGS,
    REFUSED_DATA_CODING_STATUS,
    CommandId,
    CommandStatus,
    DataCoding,
    Tag,
    UssdServiceOp,
)
from ussd.smpp.pdu import (
    BindReceiver,
    BindReceiverResp,
    BindTransceiver,
    BindTransceiverResp,
    BindTransmitter,
    BindTransmitterResp,
    DataSm,
    DataSmResp,
    DecodeError,
    DeliverSm,
    DeliverSmResp,
    EncodeError,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    ItsSessionInfo,
    Pdu,
    SubmitSm,
    SubmitSmResp,
    TextCodingError,
    Unbind,
    UnbindResp,
    UnknownPdu,
    decode_pdu,
    decode_text,
    encode_pdu,
    encode_text,
    gsm7_fits,
    gsm7_length,
    make_response,
    ussd_tlvs,
)


def h(text: str) -> bytes:
    """Hex with spaces and | separators, for readable wire tables."""
    return bytes.fromhex(text.replace("|", ""))


def frame(command_id: int, body: bytes, seq: int = 1, status: int = 0) -> bytes:
    return struct.pack("!IIII", 16 + len(body), command_id, status, seq) + body


# (wire bytes, PDU, canonical: encode(PDU) gives the same bytes back)
WIRE_TABLE: list[tuple[str, bytes, Pdu, bool]] = [
    (
        "enquire_link",
        h("00000010 00000015 00000000 00000001"),
        EnquireLink(sequence_number=1),
        True,
    ),
    (
        "enquire_link_resp",
        h("00000010 80000015 00000000 00000001"),
        EnquireLinkResp(sequence_number=1),
        True,
    ),
    (
        "generic_nack",
        h("00000010 80000000 00000003 00000007"),
        GenericNack(command_status=3, sequence_number=7),
        True,
    ),
    ("unbind", h("00000010 00000006 00000000 00000009"), Unbind(sequence_number=9), True),
    ("unbind_resp", h("00000010 80000006 00000000 00000009"), UnbindResp(sequence_number=9), True),
    (
        "bind_transceiver",
        h("0000001d 00000009 00000000 00000001 | 65736d6500 | 707700 | 00 | 34 01 01 | 00"),
        BindTransceiver(sequence_number=1, system_id="esme", password="pw", addr_ton=1, addr_npi=1),
        True,
    ),
    (
        "bind_transceiver_resp with sc_interface_version",
        h("0000001e 80000009 00000000 00000001 | 757373642d73696d00 | 0210 0001 34"),
        BindTransceiverResp(
            sequence_number=1, system_id="ussd-sim", tlvs=((Tag.SC_INTERFACE_VERSION, b"\x34"),)
        ),
        True,
    ),
    (
        "bind_transmitter_resp without body (SMPP 3.4 §4.1.2, on error)",
        h("00000010 80000002 0000000e 00000001"),
        BindTransmitterResp(command_status=CommandStatus.ESME_RINVPASWD, sequence_number=1),
        False,
    ),
    (
        # Bytes as python-smpplib 2.2 writes them (an independent encoder).
        "submit_sm PSSR indication, op 0 TLV order from smpplib",
        h(
            "00000049 00000004 00000000 00000000 | 5553534400 | 0101 373931363132333435363700"
            " | 0000 31313100 | 000000 | 00 | 00 | 0000 | 0f 00 05 2a31313123"
            " | 0204 0002 0007 | 1383 0002 ff01 | 0501 0001 00"
        ),
        SubmitSm(
            service_type="USSD",
            source_addr_ton=1,
            source_addr_npi=1,
            source_addr="79161234567",
            destination_addr="111",
            data_coding=0x0F,
            short_message=b"*111#",
            tlvs=(
                (Tag.USER_MESSAGE_REFERENCE, b"\x00\x07"),
                (Tag.ITS_SESSION_INFO, b"\xff\x01"),
                (Tag.USSD_SERVICE_OP, b"\x00"),
            ),
        ),
        True,
    ),
    (
        "deliver_sm USSR request in UCS-2, end bit set",
        h(
            "00000042 00000005 00000000 00000002 | 5553534400 | 0000 31313100"
            " | 0101 373931363132333435363700 | 000000 | 00 | 00 | 0000 | 08 00 04 041f0440"
            " | 0501 0001 02 | 1383 0002 c803"
        ),
        DeliverSm(
            sequence_number=2,
            service_type="USSD",
            source_addr="111",
            dest_addr_ton=1,
            dest_addr_npi=1,
            destination_addr="79161234567",
            data_coding=8,
            short_message="Пр".encode("utf-16-be"),
            tlvs=ussd_tlvs(UssdServiceOp.USSR_REQUEST, ItsSessionInfo(200, 1, True)),
        ),
        True,
    ),
    (
        "submit_sm_resp",
        h("00000013 80000004 00000000 00000002 | 613100"),
        SubmitSmResp(sequence_number=2, message_id="a1"),
        True,
    ),
    (
        "deliver_sm_resp without body (common ESME habit)",
        h("00000010 80000005 00000000 00000002"),
        DeliverSmResp(sequence_number=2),
        False,
    ),
    (
        "deliver_sm_resp with NUL message_id",
        h("00000011 80000005 00000000 00000002 | 00"),
        DeliverSmResp(sequence_number=2),
        True,
    ),
    (
        "unknown command id keeps its body",
        h("00000013 00000099 00000000 00000005 | 616263"),
        UnknownPdu(command_id=0x99, sequence_number=5, body=b"abc"),
        True,
    ),
    (
        "query_sm is known but not modelled",
        h("00000014 00000003 00000000 00000005 | 31000000"),
        UnknownPdu(command_id=CommandId.QUERY_SM, sequence_number=5, body=b"1\x00\x00\x00"),
        True,
    ),
]


@pytest.mark.parametrize(
    ("wire", "pdu", "canonical"), [r[1:] for r in WIRE_TABLE], ids=[r[0] for r in WIRE_TABLE]
)
def test_wire_table(wire: bytes, pdu: Pdu, canonical: bool) -> None:
    assert decode_pdu(wire) == pdu
    assert type(decode_pdu(wire)) is type(pdu)
    if canonical:
        assert encode_pdu(pdu) == wire
    assert decode_pdu(encode_pdu(pdu)) == pdu


SM_HEAD = b"USSD\x00" + b"\x01\x01" + b"79161234567\x00" + b"\x00\x00" + b"111\x00" + bytes(3)


def sm_body(*, tail: bytes = b"", sm: bytes = b"*111#", sm_len: int | None = None) -> bytes:
    length = len(sm) if sm_len is None else sm_len
    return SM_HEAD + b"\x00\x00" + bytes((0, 0, 0, 0, length)) + sm + tail


S = CommandStatus
DECODE_ERRORS: list[tuple[str, bytes, int, str]] = [
    ("header only 12 octets", h("0000000c 00000015 00000000"), S.ESME_RINVCMDLEN, "header"),
    (
        "command_length disagrees",
        h("00000020 00000015 00000000 00000001"),
        S.ESME_RINVCMDLEN,
        "command_length 32",
    ),
    ("enquire_link with a body", frame(0x15, b"x"), S.ESME_RINVCMDLEN, "no body"),
    (
        "system_id of 16 characters",
        frame(9, b"A" * 16 + b"\x00pw\x00\x00\x34\x00\x00\x00"),
        S.ESME_RINVSYSID,
        "system_id",
    ),
    (
        "password of 9 characters",
        frame(9, b"esme\x00" + b"p" * 9 + b"\x00\x00\x34\x00\x00\x00"),
        S.ESME_RINVPASWD,
        "password",
    ),
    (
        "bind with trailing octets",
        frame(9, b"esme\x00pw\x00\x00\x34\x00\x00\x00\x02\x10\x00\x01\x34"),
        S.ESME_RINVCMDLEN,
        "after address_range",
    ),
    (
        "source_addr of 21 digits",
        frame(4, b"USSD\x00\x01\x01" + b"7" * 21 + b"\x00" + bytes(40)),
        S.ESME_RINVSRCADR,
        "source_addr",
    ),
    (
        "service_type of 6 characters",
        frame(4, b"USSDXX\x00" + bytes(40)),
        S.ESME_RINVSERTYP,
        "service_type",
    ),
    (
        "body ends inside source_addr",
        frame(4, b"USSD\x00\x01\x01791"),
        S.ESME_RINVCMDLEN,
        "source_addr",
    ),
    ("body ends after service_type", frame(4, b"USSD\x00"), S.ESME_RINVCMDLEN, "mandatory"),
    ("sm_length 255", frame(4, sm_body(sm=b"x" * 255)), S.ESME_RINVMSGLEN, "max 254"),
    ("sm_length past the end", frame(4, sm_body(sm_len=9)), S.ESME_RINVMSGLEN, "past"),
    (
        "3 stray TLV octets",
        frame(4, sm_body(tail=b"\x05\x01\x00")),
        S.ESME_RINVOPTPARSTREAM,
        "stray",
    ),
    (
        "TLV length past the end",
        frame(4, sm_body(tail=h("0501 0005 01"))),
        S.ESME_RINVOPTPARSTREAM,
        "0x0501",
    ),
    (
        "ussd_service_op of 2 octets",
        frame(4, sm_body(tail=h("0501 0002 0101"))),
        S.ESME_RINVPARLEN,
        "ussd_service_op",
    ),
    (
        "ussd_service_op of 0 octets",
        frame(4, sm_body(tail=h("0501 0000"))),
        S.ESME_RINVPARLEN,
        "ussd_service_op",
    ),
    (
        "its_session_info of 1 octet",
        frame(5, sm_body(tail=h("1383 0001 01"))),
        S.ESME_RINVPARLEN,
        "its_session_info",
    ),
    (
        "user_message_reference of 4 octets",
        frame(4, sm_body(tail=h("0204 0004 00000001"))),
        S.ESME_RINVPARLEN,
        "user_message_reference",
    ),
    (
        "message_id of 65 characters",
        frame(0x80000004, b"m" * 65 + b"\x00"),
        S.ESME_RINVMSGID,
        "message_id",
    ),
]


@pytest.mark.parametrize(
    ("wire", "status", "needle"), [r[1:] for r in DECODE_ERRORS], ids=[r[0] for r in DECODE_ERRORS]
)
def test_decode_errors_are_precise(wire: bytes, status: int, needle: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode_pdu(wire)
    assert info.value.status == status
    assert needle in info.value.reason
    if len(wire) >= 16:
        assert info.value.command_id == struct.unpack_from("!I", wire, 4)[0]


def test_decode_error_carries_header() -> None:
    with pytest.raises(DecodeError) as info:
        decode_pdu(frame(4, b"USSD\x00", seq=0x1234))
    assert (info.value.command_id, info.value.sequence_number) == (4, 0x1234)


# ---- USSD TLVs: every octet value -----------------------------------------------------------


def test_ussd_service_op_every_octet() -> None:
    for value in range(256):
        pdu = SubmitSm(sequence_number=1, short_message=b"1", tlvs=ussd_tlvs(value))
        wire = encode_pdu(pdu)
        assert wire.endswith(bytes((0x05, 0x01, 0x00, 0x01, value))), value
        back = decode_pdu(wire)
        assert back == pdu
        assert back.ussd_service_op == value  # type: ignore[attr-defined]


def test_its_session_info_every_octet_both_positions() -> None:
    for value in range(256):
        for raw in (bytes((value, 0x00)), bytes((0x00, value)), bytes((value, value))):
            pdu = DeliverSm(sequence_number=2, tlvs=ussd_tlvs(17, raw))
            back = decode_pdu(encode_pdu(pdu))
            assert back == pdu
            info = back.its_session_info  # type: ignore[attr-defined]
            assert info is not None
            assert info.to_bytes() == raw
            assert info.session_number == raw[0]
            assert info.sequence_number == raw[1] >> 1
            assert info.end_of_session == bool(raw[1] & 1)


def test_user_message_reference_edges() -> None:
    for ref in (0, 1, 0x7F, 0x80, 0xFF, 0x100, 0xFFFF):
        pdu = SubmitSm(tlvs=ussd_tlvs(18, user_message_reference=ref))
        assert decode_pdu(encode_pdu(pdu)).user_message_reference == ref  # type: ignore[attr-defined]
    with pytest.raises(EncodeError):
        ussd_tlvs(18, user_message_reference=0x10000)


def test_its_session_info_range_checked() -> None:
    with pytest.raises(EncodeError):
        ItsSessionInfo(256, 0).to_bytes()
    with pytest.raises(EncodeError):
        ItsSessionInfo(1, 128).to_bytes()
    assert ItsSessionInfo(255, 127, True).to_bytes() == b"\xff\xff"


def test_absent_tlvs_are_none() -> None:
    pdu = SubmitSm(short_message=b"hi")
    assert pdu.ussd_service_op is None
    assert pdu.its_session_info is None
    assert pdu.user_message_reference is None
    assert pdu.message == b"hi"


def test_message_payload_wins_over_short_message() -> None:
    pdu = SubmitSm(tlvs=((Tag.MESSAGE_PAYLOAD, b"x" * 300),))
    back = decode_pdu(encode_pdu(pdu))
    assert back.message == b"x" * 300  # type: ignore[attr-defined]


def test_unknown_tlvs_are_kept_in_order() -> None:
    tlvs = ((0x1400, b"vendor"), (Tag.USSD_SERVICE_OP, b"\x01"), (0x1400, b""))
    assert decode_pdu(encode_pdu(SubmitSm(tlvs=tlvs))).tlvs == tlvs  # type: ignore[attr-defined]


# ---- data_coding ----------------------------------------------------------------------------

TEXTS = ["*111*17#", "Hello @ £ $ ¥ è { } [ ] ~ \\ | ^ € \f", "Привет, мир", "Grüße ÄÖÜ"]


@pytest.mark.parametrize(
    ("coding", "text", "wire"),
    [
        (0x00, "@£$", b"\x00\x01\x02"),
        (0x00, "{€}", b"\x1b\x28\x1b\x65\x1b\x29"),
        (0x0F, "*100#", b"*100#"),
        (0x0F, "_ÆΔ", b"\x11\x1c\x10"),
        (0x01, "abc~", b"abc~"),
        (0x03, "Grüße", "Grüße".encode("latin-1")),
        (0x08, "Пр", b"\x04\x1f\x04\x40"),
        (0x48, "Пр", b"\x04\x1f\x04\x40"),
        (0x08, "😀", "😀".encode("utf-16-be")),
    ],
)
def test_data_coding_wire(coding: int, text: str, wire: bytes) -> None:
    assert decode_text(wire, coding) == text
    assert encode_text(text, coding) == (wire, coding)


@pytest.mark.parametrize("coding", sorted(ACCEPTED_DATA_CODINGS))
def test_accepted_data_codings_round_trip(coding: int) -> None:
    for text in TEXTS:
        try:
            data, used = encode_text(text, coding)
        except TextCodingError:
            continue  # this alphabet cannot carry this text
        assert used == coding
        assert decode_text(data, coding) == text


@pytest.mark.parametrize("coding", [c for c in range(256) if c not in ACCEPTED_DATA_CODINGS])
def test_other_data_codings_refused(coding: int) -> None:
    with pytest.raises(TextCodingError) as info:
        decode_text(b"abc", coding)
    assert info.value.status == REFUSED_DATA_CODING_STATUS
    assert f"0x{coding:02X}" in info.value.reason


def test_refusal_status_is_a_34_status() -> None:
    assert REFUSED_DATA_CODING_STATUS == CommandStatus.ESME_RSUBMITFAIL == 0x45


@pytest.mark.parametrize(
    ("wire", "coding", "status"),
    [
        (b"\x80", 0x00, S.ESME_RSUBMITFAIL),
        (b"ab\x1b", 0x0F, S.ESME_RSUBMITFAIL),
        (b"\xe9", 0x01, S.ESME_RSUBMITFAIL),
        (b"\x04\x1f\x04", 0x08, S.ESME_RINVMSGLEN),
        (b"\xd8\x00", 0x48, S.ESME_RSUBMITFAIL),
    ],
)
def test_bad_text_bytes(wire: bytes, coding: int, status: int) -> None:
    with pytest.raises(TextCodingError) as info:
        decode_text(wire, coding)
    assert info.value.status == status


def test_gsm7_escape_rules() -> None:
    # TS 23.038 §6.2.1.1: ESC + undefined code shows the basic character; ESC ESC a space.
    assert decode_text(b"\x1bA", 0) == "A"
    assert decode_text(b"\x1b\x1bA", 0) == " A"


def test_default_encoding_picks_gsm7_or_ucs2() -> None:
    assert encode_text("Balance 10.00") == (b"Balance 10.00", DataCoding.SMSC_DEFAULT)
    assert encode_text("Баланс") == ("Баланс".encode("utf-16-be"), DataCoding.UCS2)
    assert encode_text("back`tick")[1] == DataCoding.UCS2  # ` is not in GSM 7-bit
    with pytest.raises(TextCodingError):
        encode_text("Баланс", 0x00)
    with pytest.raises(TextCodingError):
        encode_text("x", 0x02)


def test_gsm7_fits_and_length() -> None:
    assert gsm7_fits("") and gsm7_fits("@Δ€{")
    assert not gsm7_fits("Ж") and not gsm7_fits("`") and not gsm7_fits("ç")
    assert gsm7_length("a€{") == 5


def test_gsm_table_matches_aiosmpplib() -> None:
    # aiosmpplib's GSM 03.38 maps are right; they are the oracle for ours.
    from aiosmpplib.codec import GSM_BASIC_DECODE_MAP, GSM_EXTENDED_DECODE_MAP

    for code, char in GSM_BASIC_DECODE_MAP.items():
        assert decode_text(bytes((code,)), 0) == char, hex(code)
    for code, char in GSM_EXTENDED_DECODE_MAP.items():
        assert decode_text(bytes((0x1B, code)), 0) == char, hex(code)
    assert len(GSM_BASIC_DECODE_MAP) == 127  # every septet but ESC


# ---- encode refuses what the wire cannot carry ----------------------------------------------


@pytest.mark.parametrize(
    "pdu",
    [
        BindTransceiver(system_id="x" * 16),
        BindTransceiver(password="x" * 9),
        BindTransceiver(addr_ton=256),
        SubmitSm(source_addr="1" * 21),
        SubmitSm(source_addr="a\x00b"),
        SubmitSm(source_addr="Ж"),
        SubmitSm(short_message=b"x" * 255),
        SubmitSm(esm_class=256),
        DeliverSm(dest_addr_ton=-1),
        DeliverSm(data_coding=0x110000),
        DeliverSm(service_type="x" * 6),
        DeliverSm(validity_period="x" * 17),
        DeliverSm(schedule_delivery_time="\x00"),
        SubmitSm(tlvs=((0x1400, b"x" * 0x10000),)),
        SubmitSm(sequence_number=1 << 32),
        GenericNack(command_status=-1),
    ],
)
def test_encode_errors(pdu: Pdu) -> None:
    with pytest.raises(EncodeError):
        encode_pdu(pdu)


def test_make_response() -> None:
    assert make_response(4, 9, S.ESME_RINVBNDSTS) == SubmitSmResp(
        command_status=S.ESME_RINVBNDSTS, sequence_number=9
    )
    assert make_response(9, 1, system_id="gw") == BindTransceiverResp(
        sequence_number=1, system_id="gw"
    )
    assert make_response(CommandId.QUERY_SM, 3, S.ESME_RINVCMDID) == UnknownPdu(
        command_id=CommandId.QUERY_SM_RESP, command_status=S.ESME_RINVCMDID, sequence_number=3
    )
    for cid in (0x99, CommandId.OUTBIND, CommandId.ALERT_NOTIFICATION, 0x80000099):
        assert make_response(cid, 3, 3) == GenericNack(command_status=3, sequence_number=3)


# ---- invariants -----------------------------------------------------------------------------


def decode_or_error(data: bytes) -> Pdu | DecodeError:
    try:
        return decode_pdu(data)
    except DecodeError as exc:
        return exc


@given(st.binary(max_size=400))
def test_any_bytes_decode_or_decode_error(data: bytes) -> None:
    result = decode_or_error(data)
    if isinstance(result, DecodeError):
        assert result.status in set(CommandStatus)
        assert result.reason
    else:
        assert isinstance(result, Pdu)


@given(st.integers(0, 0xFFFFFFFF), st.binary(max_size=300), st.integers(0, 0xFFFFFFFF))
def test_any_body_under_any_command_id(command_id: int, body: bytes, seq: int) -> None:
    result = decode_or_error(frame(command_id, body, seq=seq))
    assert result.command_id == command_id
    assert result.sequence_number == seq


def cstr(maxlen: int) -> st.SearchStrategy[str]:
    return st.text(st.characters(min_codepoint=1, max_codepoint=255), max_size=maxlen - 1)


u8 = st.integers(0, 255)
u32 = st.integers(0, 0xFFFFFFFF)
tlv = st.one_of(
    st.tuples(st.just(int(Tag.USSD_SERVICE_OP)), st.binary(min_size=1, max_size=1)),
    st.tuples(st.just(int(Tag.ITS_SESSION_INFO)), st.binary(min_size=2, max_size=2)),
    st.tuples(st.just(int(Tag.USER_MESSAGE_REFERENCE)), st.binary(min_size=2, max_size=2)),
    st.tuples(st.just(int(Tag.MESSAGE_PAYLOAD)), st.binary(max_size=300)),
    st.tuples(st.integers(0x1400, 0x3FFF), st.binary(max_size=20)),
)
tlvs = st.lists(tlv, max_size=5).map(tuple)
header = {"command_status": u32, "sequence_number": u32}


def sm(cls: type[Pdu]) -> st.SearchStrategy[Pdu]:
    return st.builds(
        cls,
        **header,
        service_type=cstr(6),
        source_addr_ton=u8,
        source_addr_npi=u8,
        source_addr=cstr(21),
        dest_addr_ton=u8,
        dest_addr_npi=u8,
        destination_addr=cstr(21),
        esm_class=u8,
        protocol_id=u8,
        priority_flag=u8,
        schedule_delivery_time=cstr(17),
        validity_period=cstr(17),
        registered_delivery=u8,
        replace_if_present_flag=u8,
        data_coding=u8,
        sm_default_msg_id=u8,
        short_message=st.binary(max_size=254),
        tlvs=tlvs,
    )


def bind(cls: type[Pdu]) -> st.SearchStrategy[Pdu]:
    return st.builds(
        cls,
        **header,
        system_id=cstr(16),
        password=cstr(9),
        system_type=cstr(13),
        interface_version=u8,
        addr_ton=u8,
        addr_npi=u8,
        address_range=cstr(41),
    )


pdus = st.one_of(
    *(
        st.builds(c, **header)
        for c in (GenericNack, EnquireLink, EnquireLinkResp, Unbind, UnbindResp)
    ),
    *(bind(c) for c in (BindTransmitter, BindReceiver, BindTransceiver)),
    *(
        st.builds(c, **header, system_id=cstr(16), tlvs=tlvs)
        for c in (BindTransmitterResp, BindReceiverResp, BindTransceiverResp)
    ),
    sm(SubmitSm),
    sm(DeliverSm),
    st.builds(
        DataSm,
        **header,
        service_type=cstr(6),
        source_addr=cstr(65),
        destination_addr=cstr(65),
        esm_class=u8,
        registered_delivery=u8,
        data_coding=u8,
        tlvs=tlvs,
    ),
    *(
        st.builds(c, **header, message_id=cstr(65), tlvs=tlvs)
        for c in (SubmitSmResp, DeliverSmResp, DataSmResp)
    ),
    st.builds(
        UnknownPdu,
        **header,
        command_id=st.integers(0x200, 0x7FFFFFFF),
        body=st.binary(max_size=50),
    ),
)


@given(pdus)
def test_decode_encode_round_trip(pdu: Pdu) -> None:
    wire = encode_pdu(pdu)
    assert struct.unpack_from("!I", wire)[0] == len(wire)
    assert decode_pdu(wire) == pdu


@given(st.text(max_size=200))
def test_any_text_encodes_and_decodes(text: str) -> None:
    try:
        data, coding = encode_text(text)
    except TextCodingError:
        # Only lone surrogates cannot go out as UCS-2/UTF-16.
        assert any(0xD800 <= ord(c) <= 0xDFFF for c in text)
        return
    assert coding in (0x00, 0x08)
    assert decode_text(data, coding) == text
    if coding == 0:
        assert gsm7_length(text) == len(data)


# ---- interop --------------------------------------------------------------------------------


class _SmpplibClient:
    """What smpplib's PDU classes need from a client: a sequence counter."""

    sequence = 0

    def next_sequence(self) -> int:
        self.sequence += 1
        return self.sequence


def test_smpplib_submit_sm_decodes() -> None:
    from smpplib import smpp

    for op in (0, 1, 18, 0x81, 0xFF):
        p = smpp.make_pdu(
            "submit_sm",
            client=_SmpplibClient(),
            service_type="USSD",
            source_addr_ton=1,
            source_addr_npi=1,
            source_addr="79161234567",
            destination_addr="111",
            data_coding=0x0F,
            short_message=b"*111*17#",
            ussd_service_op=op,
            its_session_info=0x8001,
            user_message_reference=0xBEEF,
        )
        p.sequence = 42
        pdu = decode_pdu(p.generate())
        assert isinstance(pdu, SubmitSm)
        assert pdu.sequence_number == 42
        assert pdu.ussd_service_op == op
        assert pdu.its_session_info == ItsSessionInfo(0x80, 0, True)
        assert pdu.user_message_reference == 0xBEEF
        assert decode_text(pdu.short_message, pdu.data_coding) == "*111*17#"


def test_smpplib_bind_and_link_pdus_decode() -> None:
    from smpplib import smpp

    client = _SmpplibClient()
    p = smpp.make_pdu(
        "bind_transceiver",
        client=client,
        system_id="harness",
        password="secret",
        system_type="",
        interface_version=0x34,
        addr_ton=0,
        addr_npi=0,
        address_range="",
    )
    assert decode_pdu(p.generate()) == BindTransceiver(
        sequence_number=p.sequence, system_id="harness", password="secret"
    )
    for name, cls in (("enquire_link", EnquireLink), ("unbind", Unbind)):
        q = smpp.make_pdu(name, client=client)
        assert decode_pdu(q.generate()) == cls(sequence_number=q.sequence)


def test_our_pdus_parse_in_smpplib() -> None:
    from smpplib import smpp

    client = _SmpplibClient()
    sub = SubmitSm(
        sequence_number=7,
        service_type="USSD",
        source_addr="79161234567",
        destination_addr="111",
        short_message=b"1",
        tlvs=ussd_tlvs(18, ItsSessionInfo(3, 2, False), 9),
    )
    p = smpp.parse_pdu(encode_pdu(sub), client=client)
    assert (p.command, p.sequence, p.ussd_service_op) == ("submit_sm", 7, 18)
    assert (p.its_session_info, p.user_message_reference) == (0x0304, 9)
    assert (p.source_addr, p.destination_addr, p.short_message) == (b"79161234567", b"111", b"1")

    sms = DeliverSm(
        sequence_number=8,
        source_addr_ton=5,
        source_addr="MTS",
        destination_addr="79161234567",
        data_coding=8,
        short_message="Пароль изменён".encode("utf-16-be"),
    )
    d = smpp.parse_pdu(encode_pdu(sms), client=client)
    assert (d.command, d.sequence, d.source_addr_ton, d.data_coding) == ("deliver_sm", 8, 5, 8)
    assert d.short_message.decode("utf-16-be") == "Пароль изменён"

    for resp in (
        BindTransceiverResp(sequence_number=1, system_id="ussd-sim"),
        SubmitSmResp(sequence_number=7, message_id="42"),
    ):
        r = smpp.parse_pdu(encode_pdu(resp), client=client)
        assert r.sequence == resp.sequence_number


def test_smpplib_deliver_sm_lacks_ussd_service_op() -> None:
    # python-smpplib 2.2 lists ussd_service_op for submit_sm only, so its DeliverSM parser
    # raises KeyError on our USSD screens. docs/smpp.md gives harness authors this patch.
    from smpplib import command, smpp
    from smpplib.command import Param

    screen = encode_pdu(DeliverSm(sequence_number=3, tlvs=ussd_tlvs(2, b"\x01\x02")))
    with pytest.raises(KeyError):
        smpp.parse_pdu(screen, client=_SmpplibClient())
    params = dict(command.DeliverSM.params)
    try:
        command.DeliverSM.params["ussd_service_op"] = Param(type=int, size=1)
        d = smpp.parse_pdu(screen, client=_SmpplibClient())
        assert (d.ussd_service_op, d.its_session_info) == (2, 0x0102)
    finally:
        command.DeliverSM.params = params


def test_aiosmpplib_pdus_decode() -> None:
    from aiosmpplib import BindTransceiver as ABind
    from aiosmpplib import OptionalParam, PhoneNumber
    from aiosmpplib import SubmitSm as ASubmit

    bind_wire = ABind(sequence_num=1, system_id="harness", password="secret").pdu()
    assert decode_pdu(bind_wire) == BindTransceiver(
        sequence_number=1, system_id="harness", password="secret"
    )
    # aiosmpplib types ussd_service_op as a string: an op travels as chr(op), ASCII only.
    sub = ASubmit(
        sequence_num=5,
        short_message="*111#",
        source=PhoneNumber("79161234567"),
        destination=PhoneNumber("111"),
        service_type="USSD",
        optional_params=[OptionalParam(Tag.USSD_SERVICE_OP, "\x01")],
    )
    pdu = decode_pdu(sub.pdu())
    assert isinstance(pdu, SubmitSm)
    assert (pdu.sequence_number, pdu.ussd_service_op, pdu.service_type) == (5, 1, "USSD")
    assert decode_text(pdu.short_message, pdu.data_coding) == "*111#"
    assert pdu.registered_delivery == 1  # aiosmpplib's default


@pytest.mark.parametrize(("op", "text"), [(2, "1 Balance"), (17, "Пароль изменён")])
def test_aiosmpplib_decodes_our_screens(op: int, text: str) -> None:
    # What the server sends: op 2/17, data_coding 0x00/0x08, session octets below 0x80
    # (aiosmpplib reads TLVs it does not know as ASCII, see docs/smpp.md).
    from aiosmpplib import DeliverSm as ADeliver
    from aiosmpplib.protocol import SmppMessage

    data, coding = encode_text(text)
    wire = encode_pdu(
        DeliverSm(
            sequence_number=3,
            service_type="USSD",
            source_addr="111",
            destination_addr="79161234567",
            data_coding=coding,
            short_message=data,
            tlvs=ussd_tlvs(op, ItsSessionInfo(5, 1, op == 17)),
        )
    )
    msg = ADeliver.from_pdu(wire, SmppMessage.parse_header(wire[:16]), "gsm0338")
    assert msg.short_message == text
    values = {p.tag: p.value for p in msg.optional_params}
    assert values[Tag.USSD_SERVICE_OP] == chr(op)
    assert values[Tag.ITS_SESSION_INFO] == ItsSessionInfo(5, 1, op == 17).to_bytes().decode()


@given(st.integers(min_value=1, max_value=0x7FFFFFFF))
def test_with_sequence_is_replace(seq: int) -> None:
    from dataclasses import replace

    from ussd.smpp.pdu import with_sequence

    before = [
        SubmitSm(source_addr="79161234567", short_message=b"x", tlvs=((0x0501, b"\x01"),)),
        DeliverSm(destination_addr="1", sequence_number=9),
        EnquireLink(),
    ]
    for pdu, sequence in zip(before, (0, 9, 0), strict=True):
        copy = with_sequence(pdu, seq)
        assert copy == replace(pdu, sequence_number=seq)
        assert encode_pdu(copy) == encode_pdu(replace(pdu, sequence_number=seq))
        assert type(copy) is type(pdu)
        assert pdu.sequence_number == sequence  # the original is untouched


@given(pdus, st.integers(min_value=1, max_value=0x7FFFFFFF))
def test_with_sequence_is_replace_for_every_pdu(pdu: Pdu, seq: int) -> None:
    from dataclasses import replace

    from ussd.smpp.pdu import with_sequence

    copy = with_sequence(pdu, seq)
    assert copy == replace(pdu, sequence_number=seq)
    assert type(copy) is type(pdu)
    assert copy is not pdu


@given(pdus)
def test_decoders_builder_is_the_dataclass_init(pdu: Pdu) -> None:
    # The decoders and screens build PDUs positionally through constructor(): same fields,
    # same order, same PDU.
    from dataclasses import fields

    from ussd.smpp.pdu import constructor

    if isinstance(pdu, UnknownPdu):
        return  # its command_id is a field of its own (no decoder builds one)
    values = [getattr(pdu, f.name) for f in fields(pdu) if f.name != "command_id"]
    built = constructor(type(pdu))(*values)
    assert built == pdu
    assert type(built) is type(pdu)
    assert built.command_id == pdu.command_id


hot = st.one_of(
    sm(SubmitSm),
    sm(DeliverSm),
    *(
        st.builds(c, **header, message_id=cstr(65), tlvs=tlvs)
        for c in (SubmitSmResp, DeliverSmResp)
    ),
)


@given(hot, st.data())
def test_damaged_hot_pdus_decode_exactly_or_fail_cleanly(pdu: Pdu, data: st.DataObject) -> None:
    # submit_sm, deliver_sm and their responses have a decoder of their own (the hot path):
    # whatever octet is changed or however the body is cut, the result is a DecodeError or a
    # PDU that encodes back to exactly the bytes given (nothing read twice, nothing skipped).
    wire = bytearray(encode_pdu(pdu))
    if len(wire) > 16 and data.draw(st.booleans()):
        at = data.draw(st.integers(16, len(wire) - 1))
        wire[at] = data.draw(st.sampled_from([0, 1, 0x7F, 0xFF, wire[at] ^ 0x01]))
    else:
        wire = wire[: data.draw(st.integers(16, len(wire)))]
    struct.pack_into("!I", wire, 0, len(wire))
    result = decode_or_error(bytes(wire))
    if isinstance(result, DecodeError):
        assert result.status in set(CommandStatus)
        assert result.sequence_number == pdu.sequence_number
    elif len(wire) == 16:  # a bodiless response (SMPP 3.4 §4.4.2), message_id ""
        request = pdu.command_id & ~0x80000000
        assert result == make_response(request, pdu.sequence_number, pdu.command_status)
    else:
        assert type(result) is type(pdu)
        assert encode_pdu(result) == bytes(wire)


@given(st.one_of(sm(SubmitSm), sm(DeliverSm)))
def test_short_message_body_is_the_checked_body(pdu: Pdu) -> None:
    # _body formats the whole fixed part at once; _checked_body is the field-by-field reference.
    assert isinstance(pdu, SubmitSm | DeliverSm)
    assert pdu._body() == pdu._checked_body()


@given(st.text(st.characters(max_codepoint=0x7F), max_size=200))
def test_ascii_text_encodes_as_the_gsm_table_says(text: str) -> None:
    # ASCII text of one-septet characters takes a bytes.translate path of its own.
    from ussd.smpp.pdu import _GSM_ENCODE

    if not gsm7_fits(text):
        assert encode_text(text)[1] == DataCoding.UCS2
        return
    expected = text.translate(_GSM_ENCODE).encode("latin-1")
    assert encode_text(text) == (expected, DataCoding.SMSC_DEFAULT)
    assert encode_text(text, DataCoding.USSD_GSM7) == (expected, DataCoding.USSD_GSM7)
    assert decode_text(expected, 0) == text


@given(
    st.text(max_size=300),
    st.booleans(),
    st.booleans(),
    st.none() | st.integers(0, 0xFFFF),
    st.sampled_from(["*111#", "*123456789012345678901#", "да", ""]),
)
def test_screen_pdu_is_the_deliver_sm_spelled_out(
    text: str, end: bool, notice: bool, umr: int | None, code: str
) -> None:
    from ussd.smpp.constants import Npi, Ton
    from ussd.smpp.ussd import screen_pdu, screen_source

    try:
        data, coding = encode_text(text)
    except TextCodingError:
        return  # lone surrogates: no screen carries them
    info = ItsSessionInfo(9, 5, end)
    op = 17 if end else 3 if notice else 2
    tlvs = ((0x0204, umr.to_bytes(2, "big")),) if umr is not None else ()
    tlvs += ((0x0501, bytes((op,))), (0x1383, info.to_bytes()))
    if len(data) > 254:
        tlvs, data = (*tlvs, (0x0424, data)), b""
    expected = DeliverSm(
        sequence_number=4,
        service_type="USSD",
        source_addr_ton=Ton.UNKNOWN,
        source_addr_npi=Npi.UNKNOWN,
        source_addr=screen_source(code, "100"),
        dest_addr_ton=Ton.INTERNATIONAL,
        dest_addr_npi=Npi.ISDN,
        destination_addr="79161234567",
        data_coding=coding,
        short_message=data,
        tlvs=tlvs,
    )
    got = screen_pdu(4, "79161234567", code, text, end, info, umr, "100", notice)
    assert got == expected
    assert decode_pdu(encode_pdu(got)) == expected


@given(st.text(max_size=100))
def test_default_coding_agrees_with_the_coding_named(text: str) -> None:
    # The default path has shortcuts (ASCII, non-GSM text straight to UTF-16): same bytes as
    # naming the coding it picks.
    if any(0xD800 <= ord(c) <= 0xDFFF for c in text):  # lone surrogates: the same refusal
        with pytest.raises(TextCodingError) as default:
            encode_text(text)
        with pytest.raises(TextCodingError) as named:
            encode_text(text, DataCoding.UCS2)
        assert (default.value.status, default.value.reason) == (
            named.value.status,
            named.value.reason,
        )
        return
    data, coding = encode_text(text)
    assert coding == (DataCoding.SMSC_DEFAULT if gsm7_fits(text) else DataCoding.UCS2)
    assert encode_text(text, coding) == (data, coding)
