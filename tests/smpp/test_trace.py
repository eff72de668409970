"""A bind's PDU trace for the console (ussd/smpp/trace.py): framing however the bytes come,
decoding as a table of PDUs, passwords starred, and bounded memory."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ussd.smpp.constants import CommandStatus, UssdServiceOp
from ussd.smpp.pdu import (
    BindTransceiver,
    BindTransceiverResp,
    DeliverSm,
    EnquireLink,
    GenericNack,
    ItsSessionInfo,
    Pdu,
    SubmitSm,
    SubmitSmResp,
    encode_text,
    ussd_tlvs,
)
from ussd.smpp.trace import KEEP_OCTETS, LIMIT, MAX_TRACES, Trace, Traces, describe

ALICE = "79161234567"


def submit(text: str, op: int = UssdServiceOp.PSSR_INDICATION, seq: int = 2) -> SubmitSm:
    data, coding = encode_text(text)
    return SubmitSm(
        sequence_number=seq,
        service_type="USSD",
        source_addr=ALICE,
        destination_addr="111",
        data_coding=coding,
        short_message=data,
        tlvs=ussd_tlvs(op, ItsSessionInfo(9, 1) if op != 1 else None),
    )


def described(pdu: Pdu, incoming: bool = True, secret: Any = None) -> dict[str, Any]:
    trace = Trace(1, secret)
    (trace.received if incoming else trace.sent)(pdu.encode(), 5.0)
    (entry,) = trace.entries
    return describe(entry)


@pytest.mark.parametrize(
    ("pdu", "expected"),
    [
        (
            BindTransceiver(sequence_number=1, system_id="harness", password="secret"),
            {"command": "bind_transceiver", "system_id": "harness", "password": "******"},
        ),
        (
            BindTransceiverResp(sequence_number=1, system_id="ussd-sim"),
            {"command": "bind_transceiver_resp", "status": "ESME_ROK", "system_id": "ussd-sim"},
        ),
        (
            submit("*111#"),
            {
                "command": "submit_sm",
                "sequence": 2,
                "source_addr": ALICE,
                "destination_addr": "111",
                "text": "*111#",
                "ussd_service_op": {"value": 1, "name": "pssr_indication"},
            },
        ),
        (
            submit("Баланс", op=UssdServiceOp.USSR_CONFIRM),
            {
                "text": "Баланс",
                "data_coding": "0x08",
                "ussd_service_op": {"value": 18, "name": "ussr_confirm"},
                "its_session_info": {
                    "session_number": 9,
                    "sequence_number": 1,
                    "end_of_session": False,
                },
            },
        ),
        (
            submit("", op=0x81),
            {"ussd_service_op": {"value": 0x81, "name": "release"}, "text": ""},
        ),
        (
            submit("x", op=0x42),
            {"ussd_service_op": {"value": 0x42, "name": "0x42"}},
        ),
        (
            SubmitSmResp(
                sequence_number=2,
                command_status=CommandStatus.ESME_RINVDSTADR,
                message_id="",
            ),
            {"command": "submit_sm_resp", "status": "ESME_RINVDSTADR"},
        ),
        (
            DeliverSm(
                sequence_number=7,
                destination_addr=ALICE,
                data_coding=0x01,
                short_message=b"Bye",
                tlvs=ussd_tlvs(UssdServiceOp.PSSR_RESPONSE, ItsSessionInfo(9, 2, True)),
            ),
            {
                "command": "deliver_sm",
                "text": "Bye",
                "its_session_info": {
                    "session_number": 9,
                    "sequence_number": 2,
                    "end_of_session": True,
                },
            },
        ),
        (
            DeliverSm(sequence_number=8, data_coding=0x08, short_message=b"\x00"),
            {"text_hex": "00"},  # odd UCS-2: shown as octets, not an exception
        ),
        (EnquireLink(sequence_number=3), {"command": "enquire_link", "sequence": 3}),
        (
            GenericNack(sequence_number=4, command_status=CommandStatus.ESME_RINVCMDID),
            {"command": "generic_nack", "status": "ESME_RINVCMDID"},
        ),
    ],
)
def test_describe(pdu: Pdu, expected: dict[str, Any]) -> None:
    got = described(pdu)
    assert got["dir"] == "in" and got["n"] == 1 and got["at"] == 5.0
    assert got["length"] == len(pdu.encode())
    assert {k: got.get(k) for k in expected} == expected


def test_malformed_and_unknown_pdus_are_shown_not_raised() -> None:
    unknown = (16).to_bytes(4, "big") + bytes.fromhex("00000099") + bytes(8)
    trace = Trace(1, None)
    trace.received(unknown, 1.0)
    bad_submit = (20).to_bytes(4, "big") + bytes.fromhex("00000004") + bytes(8) + b"USSD"
    trace.received(bad_submit, 2.0)
    first, second = (describe(e) for e in trace.entries)
    assert first["command"] == "0x00000099" and "error" not in first
    assert second["command"] == "submit_sm" and second["error"]


def test_a_reply_to_a_password_prompt_is_starred_when_it_arrives() -> None:
    prompting = {ALICE}
    trace = Trace(1, lambda source: source in prompting)
    trace.received(submit("secret12", op=UssdServiceOp.USSR_CONFIRM).encode(), 1.0)
    prompting.clear()  # the dialog moved on: what was starred stays starred
    trace.received(submit("12345", op=UssdServiceOp.USSR_CONFIRM).encode(), 2.0)
    texts = [describe(e)["text"] for e in trace.entries]
    assert texts == ["********", "12345"]


def test_outgoing_pdus_are_never_starred() -> None:
    got = described(BindTransceiver(system_id="x", password="pw"), incoming=False)
    assert got["password"] == "pw"  # we never send a bind; the trace shows what went out


def test_a_long_pdu_keeps_its_header_only() -> None:
    pdu = DeliverSm(tlvs=((0x0424, b"a" * (KEEP_OCTETS + 10)),))
    got = described(pdu, incoming=False)
    assert got["command"] == "deliver_sm" and "not kept" in got["error"]
    trace = Trace(1, None)
    trace.sent(pdu.encode(), 1.0)
    assert len(trace.entries[0][4]) == 16


@given(st.lists(st.integers(1, 40), max_size=30))
def test_the_same_pdus_however_the_reads_cut_them(cuts: list[int]) -> None:
    stream = b"".join(
        p.encode()
        for p in (
            BindTransceiver(sequence_number=1, system_id="h", password="p"),
            submit("*100#"),
            EnquireLink(sequence_number=3),
        )
    )
    whole = Trace(1, None)
    whole.received(stream, 0.0)
    pieces = Trace(1, None)
    pos = 0
    for cut in cuts:
        pieces.received(stream[pos : pos + cut], 0.0)
        pos += cut
    pieces.received(stream[pos:], 0.0)
    assert [e[2:] for e in pieces.entries] == [e[2:] for e in whole.entries]
    assert [describe(e)["command"] for e in whole.entries] == [
        "bind_transceiver",
        "submit_sm",
        "enquire_link",
    ]


def test_a_trace_keeps_the_last_pdus_and_the_traces_are_bounded() -> None:
    traces = Traces()
    trace = traces.start(1)
    ping = EnquireLink(sequence_number=1).encode()
    for _ in range(LIMIT + 5):
        traces.received(1, ping, 0.0)
    assert len(trace.entries) == LIMIT and trace.count == LIMIT + 5
    assert [e[0] for e in trace.after(LIMIT + 3)] == [LIMIT + 4, LIMIT + 5]
    assert traces.start(1) is trace and traces.live == 1

    traces.closed(1)
    traces.received(1, ping, 0.0)  # a closed trace no longer grows
    assert trace.count == LIMIT + 5 and traces.live == 0 and traces.closed_keys() == [1]
    for key in range(2, MAX_TRACES + 2):
        traces.start(key)
    assert 1 not in traces and traces.get(1) is None  # the oldest went first
    assert traces.live == MAX_TRACES
    traces.start(100)
    assert 2 not in traces and traces.live == MAX_TRACES
    traces.received(99, ping, 0.0)  # an untraced connection: nothing


@given(st.binary(max_size=300), st.booleans())
def test_any_bytes_are_described_never_raised(data: bytes, incoming: bool) -> None:
    trace = Trace(1, lambda source: True)
    (trace.received if incoming else trace.sent)(data, 0.0)
    got = [describe(entry) for entry in trace.entries]
    # Whatever could not be framed (a command_length out of range) is shown, not dropped.
    assert sum(d["length"] for d in got) + trace.pending == len(data)
    assert all(d["command"] for d in got)


@given(st.text(max_size=40), st.sampled_from([0x00, 0x01, 0x03, 0x08]))
def test_a_submit_sm_text_survives_the_trace(text: str, coding: int) -> None:
    try:
        data, _ = encode_text(text) if coding in (0x00, 0x08) else (text.encode("latin-1"), 0)
    except UnicodeEncodeError:
        return
    if coding == 0x01 and not data.isascii():
        return
    pdu = SubmitSm(source_addr=ALICE, data_coding=coding, short_message=data[:254])
    got = described(pdu)
    assert "text" in got or "text_hex" in got
