"""Golden PDUs of the application profiles (docs/smpp.md "SMPP applications").

Written by hand from the documented conventions, never from our own encoder:
- standard: SMPP 3.4 §5.3.2.43 (its_session_info: session octet, sequence << 1 | end) and
  §5.3.2.44 (ussd_service_op);
- 6d and mica: vumi's processors (vumi/transports/smpp/processors/sixdee.py, mica.py and
  their tests), where op values are hex text that python-smpp packs as octets: '12' is 0x12
  (18, continue), '17' is 0x17 (23, close), '81' is 0x81 (abort); 6D's its_session_info is a
  15-bit dialog id with the end flag in bit 0 (test session 5678 = 0x162E), Mica's session is
  user_message_reference (test session 12345 = 0x3039).
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ussd.services import smppapp
from ussd.smpp.apps import deliver_pdu, read_submit
from ussd.smpp.pdu import SubmitSm, encode_pdu

MSISDN = "79161234567"


def test_standard_begin_whole_pdu() -> None:
    pdu = deliver_pdu("standard", 1, MSISDN, "555", "*555*1#", 5, 0, False)
    wire = encode_pdu(dataclasses.replace(pdu, sequence_number=1))
    golden = (
        "00000045"
        "00000005"
        "00000000"
        "00000001"  # length 69, deliver_sm, OK, seq 1
        "5553534400"  # service_type "USSD"
        "0101"
        "373931363132333435363700"  # source: TON 1 NPI 1, the subscriber
        "0000"
        "35353500"  # destination: the service code
        "00"
        "00"
        "00"
        "00"
        "00"
        "00"
        "00"
        "00"
        "00"  # esm .. sm_default_msg_id, coding 0
        "07"
        "2a3535352a3123"  # sm_length 7, "*555*1#"
        "0501"
        "0001"
        "01"  # ussd_service_op 1: PSSR indication
        "1383"
        "0002"
        "0500"  # its_session_info: session 5, sequence 0, no end
    )
    assert wire.hex() == golden


@pytest.mark.parametrize(
    ("profile", "op", "text", "ident", "sequence", "end", "tlvs"),
    [
        # standard: the sequence counts every PDU; the end bit on the gateway's release.
        ("standard", 18, "2", 5, 2, False, "0501000112138300020504"),
        ("standard", 18, "", 5, 4, True, "0501000112138300020509"),  # the end bit ends it
        ("standard", 18, "x", 127, 64, False, "0501000112138300027f00"),  # wraps at 64
        # 6d: the same 16 bits for the whole dialog, end flag in bit 0 (vumi SessionInfo).
        ("6d", 1, "*123#", 0x162E, 0, False, "050100010113830002162e"),
        ("6d", 0x12, "reply!", 0x162E, 7, False, "050100011213830002162e"),
        ("6d", 0x81, "", 0x162E, 9, True, "050100018113830002162f"),
        # mica: user_message_reference carries the session; no its_session_info.
        ("mica", 1, "*123#", 12345, 0, False, "0501000101020400023039"),
        ("mica", 0x12, "reply!", 12345, 3, False, "0501000112020400023039"),
        ("mica", 0x81, "", 12345, 5, True, "0501000181020400023039"),
    ],
)
def test_deliver_sm_tlvs(
    profile: str, op: int, text: str, ident: int, sequence: int, end: bool, tlvs: str
) -> None:
    pdu = deliver_pdu(profile, op, MSISDN, "123", text, ident, sequence, end)
    assert (pdu.service_type, pdu.source_addr, pdu.source_addr_ton, pdu.source_addr_npi) == (
        "USSD",
        MSISDN,
        1,
        1,
    )
    assert pdu.destination_addr == "123"
    golden = bytes.fromhex(tlvs)
    wire = encode_pdu(pdu)
    # The TLVs close the PDU (SMPP 3.4 §3.2): exactly these, after the text.
    assert wire.endswith(text.encode("ascii") + golden)
    assert len(pdu.tlvs) == 2


def _submit(tlvs_hex: str) -> SubmitSm:
    raw = bytes.fromhex(tlvs_hex)
    tlvs = []
    while raw:
        tag, length = int.from_bytes(raw[:2], "big"), int.from_bytes(raw[2:4], "big")
        tlvs.append((tag, raw[4 : 4 + length]))
        raw = raw[4 + length :]
    return SubmitSm(source_addr="555", destination_addr=MSISDN, tlvs=tuple(tlvs))


C, E, N, R = smppapp.CONTINUE, smppapp.END, smppapp.NOTIFY, smppapp.RELEASE


@pytest.mark.parametrize(
    ("profile", "tlvs", "kind", "ident", "sequence"),
    [
        ("standard", "0501000102138300020502", C, 5, 1),  # USSR request: show and wait
        ("standard", "0501000111138300020506", E, 5, 3),  # PSSR response (17): show, end
        ("standard", "0501000103138300020502", N, 5, 1),  # USSN request: notify
        ("standard", "0501000181", R, None, None),  # release
        ("standard", "0501000102138300020503", E, 5, 1),  # op 2 + end bit (vumi default)
        ("standard", "0501000117", "refuse", None, None),  # 0x17 is no standard op
        ("standard", "0501000112", "refuse", None, None),  # a confirm is the network's
        ("standard", "050100010213830002ff00", C, 255, 0),
        # 6d: op '02' continue, '17' close; its_session_info echoed (id 0x162E).
        ("6d", "050100010213830002162e", C, 0x162E, None),
        ("6d", "050100011713830002162f", E, 0x162E, None),
        ("6d", "050100010213830002162f", E, 0x162E, None),
        ("6d", "050100011113830002162e", E, 0x162E, None),  # 17 as well
        # mica: the session in user_message_reference.
        ("mica", "0501000102020400023039", C, 12345, None),
        ("mica", "0501000117020400023039", E, 12345, None),
    ],
)
def test_app_submit_sm(
    profile: str, tlvs: str, kind: str, ident: int | None, sequence: int | None
) -> None:
    request = read_submit(profile, _submit(tlvs))
    assert request is not None
    assert (request.kind, request.ident, request.sequence) == (kind, ident, sequence)


def test_submit_without_ussd_service_op_is_not_ussd() -> None:
    assert read_submit("standard", _submit("13830002ff00")) is None


@given(st.integers(0, 255), st.integers(0, 127), st.booleans())
def test_standard_session_octets_round_trip(session: int, sequence: int, end: bool) -> None:
    """Any its_session_info the app sends is read back as it was; ours encodes any session."""
    raw = bytes((session, (sequence << 1) | end))
    request = read_submit("standard", _submit("0501000102" + "13830002" + raw.hex()))
    assert request is not None
    assert (request.ident, request.sequence) == (session, sequence)
    assert request.kind == (smppapp.END if end else smppapp.CONTINUE)
    pdu = deliver_pdu("standard", 18, MSISDN, "555", "a", session, sequence, end)
    info = pdu.its_session_info
    assert info is not None
    assert (info.session_number, info.sequence_number, info.end_of_session) == (
        session,
        sequence % 64,
        end,
    )
