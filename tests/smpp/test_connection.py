"""Sans-IO SMPP connection: framing, bind-state table, rejections, window and timers."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ussd.smpp.connection import (
    BIND_STATE_TABLE,
    NEED_DATA,
    ConnectionClosed,
    EnquireLinkDue,
    Event,
    LocalProtocolError,
    PduIgnored,
    PduRejected,
    PeerTimedOut,
    QueueFull,
    RemoteProtocolError,
    RequestFailed,
    RequestTimedOut,
    ResponseReceived,
    Side,
    SmppConnection,
    State,
)
from ussd.smpp.constants import MAX_SEQUENCE, CommandId, CommandStatus
from ussd.smpp.pdu import (
    BindReceiver,
    BindReceiverResp,
    BindTransceiver,
    BindTransceiverResp,
    BindTransmitter,
    BindTransmitterResp,
    DataSm,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    Pdu,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnbindResp,
    UnknownPdu,
    decode_pdu,
    encode_pdu,
    ussd_tlvs,
)

from .test_codec import WIRE_TABLE, frame

S = CommandStatus
C = CommandId


def events(conn: SmppConnection) -> list[Event]:
    """Drain next_event() until NEED_DATA or the terminal ConnectionClosed."""
    out: list[Event] = []
    for _ in range(10_000):
        ev = conn.next_event()
        if ev is NEED_DATA:
            return out
        out.append(ev)
        if isinstance(ev, ConnectionClosed):
            return out
    raise AssertionError("next_event() never settled")


def feed(conn: SmppConnection, data: bytes, now: float = 0.0) -> list[Event]:
    conn.receive_data(data, now)
    return events(conn)


def pdu_of(ev: Event) -> Pdu | None:
    if isinstance(ev, Pdu):
        return ev
    if isinstance(ev, (PduRejected, PduIgnored)):
        return ev.pdu
    return None


BIND_CLASSES = {
    State.BOUND_TX: (BindTransmitter, BindTransmitterResp),
    State.BOUND_RX: (BindReceiver, BindReceiverResp),
    State.BOUND_TRX: (BindTransceiver, BindTransceiverResp),
}


def bound(state: State = State.BOUND_TRX, **kwargs: float) -> SmppConnection:
    conn = SmppConnection("server", now=0.0, **kwargs)  # type: ignore[arg-type]
    req_cls, resp_cls = BIND_CLASSES[state]
    [ev] = feed(conn, encode_pdu(req_cls(sequence_number=1, system_id="h", password="p")))
    assert isinstance(ev, req_cls)
    conn.send(resp_cls(sequence_number=1, system_id="ussd-sim"))
    assert conn.state is state
    return conn


# ---- framing: whole, byte by byte, with trailing data ---------------------------------------

ALL_WIRE = b"".join(r[1] for r in WIRE_TABLE)
ALL_PDUS = [r[2] for r in WIRE_TABLE]


@pytest.mark.parametrize("chunk", [len(ALL_WIRE), 1, 2, 3, 7, 16, 17])
def test_framing_any_chunking(chunk: int) -> None:
    conn = SmppConnection("server")
    got: list[Event] = []
    for i in range(0, len(ALL_WIRE), chunk):
        got += feed(conn, ALL_WIRE[i : i + chunk])
    assert [pdu_of(ev) for ev in got] == ALL_PDUS


@pytest.mark.parametrize(
    ("name", "wire", "pdu"), [r[:3] for r in WIRE_TABLE], ids=[r[0] for r in WIRE_TABLE]
)
def test_framing_trailing_partial_pdu(name: str, wire: bytes, pdu: Pdu) -> None:
    conn = SmppConnection("server")
    partial = encode_pdu(EnquireLink(sequence_number=77))[:10]
    [ev] = feed(conn, wire + partial)
    assert pdu_of(ev) == pdu
    assert conn.next_event() is NEED_DATA
    [ev] = feed(conn, encode_pdu(EnquireLink(sequence_number=77))[10:])
    assert ev == EnquireLink(sequence_number=77)


def test_byte_at_a_time_needs_data_until_complete() -> None:
    conn = SmppConnection("server")
    wire = encode_pdu(EnquireLink(sequence_number=5))
    for b in wire[:-1]:
        conn.receive_data(bytes((b,)), 0.0)
        assert conn.next_event() is NEED_DATA
    conn.receive_data(wire[-1:], 0.0)
    assert conn.next_event() == EnquireLink(sequence_number=5)


# ---- fatal framing errors ---------------------------------------------------------------------


@pytest.mark.parametrize("length", [0, 1, 15, 64 * 1024 + 1, 0xFFFFFFFF])
def test_impossible_command_length_is_fatal(length: int) -> None:
    conn = bound()
    wire = struct.pack("!IIII", length, C.SUBMIT_SM, 0, 9)
    evs = feed(conn, wire + encode_pdu(EnquireLink(sequence_number=10)))
    assert len(evs) == 2
    err, closed = evs
    assert isinstance(err, RemoteProtocolError)
    assert err.status == S.ESME_RINVCMDLEN
    assert f"command_length {length} outside 16..65536" == err.reason
    assert err.response == GenericNack(command_status=S.ESME_RINVCMDLEN, sequence_number=9)
    assert isinstance(closed, ConnectionClosed)
    assert conn.state is State.CLOSED
    assert conn.next_event() is closed
    feed(conn, encode_pdu(EnquireLink(sequence_number=11)))  # ignored, no exception
    with pytest.raises(LocalProtocolError):
        conn.send(EnquireLinkResp(sequence_number=10))


def test_command_length_checked_on_first_four_octets() -> None:
    conn = SmppConnection("server")
    [err, _] = feed(conn, b"\x00\x00\x00\x08")
    assert isinstance(err, RemoteProtocolError)
    assert err.response == GenericNack(command_status=S.ESME_RINVCMDLEN, sequence_number=0)


def test_max_pdu_size_configurable() -> None:
    conn = SmppConnection("server", max_pdu_size=100)
    wire = frame(C.ENQUIRE_LINK, b"x" * 85)
    [err, _] = feed(conn, wire)
    assert isinstance(err, RemoteProtocolError)
    assert "outside 16..100" in err.reason


def test_eof_clean_and_inside_a_pdu() -> None:
    conn = SmppConnection("server")
    [ev] = feed(conn, b"")
    assert ev == ConnectionClosed("peer closed the connection")

    conn = SmppConnection("server")
    assert feed(conn, struct.pack("!IIII", 40, C.ENQUIRE_LINK, 0, 1)) == []
    err, closed = feed(conn, b"")
    assert err == RemoteProtocolError(
        S.ESME_RINVCMDLEN, "peer closed the connection inside a PDU (16 of 40 octets)"
    )
    assert isinstance(closed, ConnectionClosed)

    conn = SmppConnection("server")
    assert feed(conn, b"\x00\x00") == []
    err, _ = feed(conn, b"")
    assert isinstance(err, RemoteProtocolError)
    assert "inside a PDU header (2 of 16 octets)" in err.reason


# ---- the bind-state table ---------------------------------------------------------------------

# SMPP 3.4 §2.3, written out independently of the implementation's table: requests an ESME
# may send to us in each state. Everything else must be refused.
ESME_ALLOWED = {
    State.OPEN: {C.BIND_TRANSMITTER, C.BIND_RECEIVER, C.BIND_TRANSCEIVER, C.ENQUIRE_LINK},
    State.BOUND_TX: {
        C.SUBMIT_SM,
        C.SUBMIT_MULTI,
        C.DATA_SM,
        C.QUERY_SM,
        C.CANCEL_SM,
        C.REPLACE_SM,
        C.ENQUIRE_LINK,
        C.UNBIND,
    },
    State.BOUND_RX: {C.ENQUIRE_LINK, C.UNBIND},
    State.BOUND_TRX: {
        C.SUBMIT_SM,
        C.SUBMIT_MULTI,
        C.DATA_SM,
        C.QUERY_SM,
        C.CANCEL_SM,
        C.REPLACE_SM,
        C.ENQUIRE_LINK,
        C.UNBIND,
    },
}
REQUEST_IDS = [c for c in CommandId if not c & 0x80000000]
REQUEST_BODY = {
    C.BIND_TRANSMITTER: encode_pdu(BindTransmitter(sequence_number=5))[16:],
    C.BIND_RECEIVER: encode_pdu(BindReceiver(sequence_number=5))[16:],
    C.BIND_TRANSCEIVER: encode_pdu(BindTransceiver(sequence_number=5))[16:],
    C.SUBMIT_SM: encode_pdu(SubmitSm(sequence_number=5))[16:],
    C.DELIVER_SM: encode_pdu(DeliverSm(sequence_number=5))[16:],
    C.DATA_SM: encode_pdu(DataSm(sequence_number=5))[16:],
}


def connection_in(state: State) -> SmppConnection:
    return SmppConnection("server") if state is State.OPEN else bound(state)


@pytest.mark.parametrize("state", list(ESME_ALLOWED))
@pytest.mark.parametrize("cid", REQUEST_IDS, ids=[c.name.lower() for c in REQUEST_IDS])
def test_bind_state_table_server(state: State, cid: CommandId) -> None:
    conn = connection_in(state)
    [ev] = feed(conn, frame(cid, REQUEST_BODY.get(cid, b""), seq=5))
    unsupported = {C.QUERY_SM, C.CANCEL_SM, C.REPLACE_SM, C.SUBMIT_MULTI}
    if cid in ESME_ALLOWED[state] and cid not in unsupported:
        assert isinstance(ev, Pdu)
        assert ev.command_id == cid
        return
    assert isinstance(ev, PduRejected)
    assert ev.sequence_number == 5
    if cid in ESME_ALLOWED[state]:
        assert ev.status == S.ESME_RINVCMDID
        assert ev.response == UnknownPdu(
            command_id=cid | 0x80000000, command_status=S.ESME_RINVCMDID, sequence_number=5
        )
        return
    bind_again = state is not State.OPEN and cid in (
        C.BIND_TRANSMITTER,
        C.BIND_RECEIVER,
        C.BIND_TRANSCEIVER,
    )
    expected = S.ESME_RALYBND if bind_again else S.ESME_RINVBNDSTS
    assert ev.status == expected
    assert ev.response.command_status == expected
    assert ev.response.sequence_number == 5
    if cid in (C.OUTBIND, C.ALERT_NOTIFICATION):
        assert isinstance(ev.response, GenericNack)
    else:
        assert ev.response.command_id == cid | 0x80000000
    assert conn.state is state  # a refusal never changes the state


def test_table_is_plain_data_for_both_sides() -> None:
    assert set(BIND_STATE_TABLE) == {Side.ESME, Side.SMSC}
    for side in Side:
        assert set(BIND_STATE_TABLE[side]) == set(State)
    smsc = BIND_STATE_TABLE[Side.SMSC]
    assert C.DELIVER_SM in smsc[State.BOUND_RX] and C.DELIVER_SM in smsc[State.BOUND_TRX]
    assert C.DELIVER_SM not in smsc[State.BOUND_TX] and C.DELIVER_SM not in smsc[State.OPEN]


def test_submit_sm_before_bind_gets_rinvbndsts_and_connection_survives() -> None:
    conn = SmppConnection("server")
    sub = SubmitSm(sequence_number=3, short_message=b"*111#", tlvs=ussd_tlvs(1))
    [ev] = feed(conn, encode_pdu(sub))
    assert isinstance(ev, PduRejected)
    assert ev.pdu == sub
    assert ev.response == SubmitSmResp(command_status=S.ESME_RINVBNDSTS, sequence_number=3)
    assert "submit_sm not allowed in state OPEN" in ev.reason
    assert conn.send(ev.response) == encode_pdu(ev.response)
    [ev] = feed(conn, encode_pdu(BindTransceiver(sequence_number=4)))
    assert isinstance(ev, BindTransceiver)


def test_failed_bind_leaves_open() -> None:
    conn = SmppConnection("server")
    feed(conn, encode_pdu(BindTransceiver(sequence_number=1, password="bad")))
    conn.send(BindTransceiverResp(command_status=S.ESME_RINVPASWD, sequence_number=1))
    assert conn.state is State.OPEN
    [ev] = feed(conn, encode_pdu(SubmitSm(sequence_number=2)))
    assert isinstance(ev, PduRejected)
    assert ev.status == S.ESME_RINVBNDSTS


def test_unknown_command_id_generic_nack_and_survives() -> None:
    conn = bound()
    evs = feed(
        conn, frame(0x00000099, b"junk", seq=12) + encode_pdu(EnquireLink(sequence_number=13))
    )
    rejected, link = evs
    assert isinstance(rejected, PduRejected)
    assert rejected.response == GenericNack(command_status=S.ESME_RINVCMDID, sequence_number=12)
    assert rejected.reason == "unknown command_id 0x00000099"
    assert link == EnquireLink(sequence_number=13)


def test_malformed_request_rejected_with_field_status() -> None:
    conn = bound()
    bad = frame(C.SUBMIT_SM, b"USSD\x00\x01\x01" + b"7" * 25 + b"\x00" + bytes(30), seq=21)
    ev, link = feed(conn, bad + encode_pdu(EnquireLink(sequence_number=22)))
    assert isinstance(ev, PduRejected)
    assert ev.status == S.ESME_RINVSRCADR
    assert ev.response == SubmitSmResp(command_status=S.ESME_RINVSRCADR, sequence_number=21)
    assert ev.pdu is None
    assert link == EnquireLink(sequence_number=22)


def test_malformed_request_in_wrong_state_reports_the_state() -> None:
    conn = SmppConnection("server")
    [ev] = feed(conn, frame(C.SUBMIT_SM, b"USSD\x00", seq=2))
    assert isinstance(ev, PduRejected)
    assert ev.status == S.ESME_RINVBNDSTS


def test_bad_ussd_tlv_rejected_with_rinvparlen() -> None:
    conn = bound()
    wire = encode_pdu(SubmitSm(sequence_number=4, tlvs=((0x0501, b"\x01\x02"),)))
    [ev] = feed(conn, wire)
    assert isinstance(ev, PduRejected)
    assert ev.response == SubmitSmResp(command_status=S.ESME_RINVPARLEN, sequence_number=4)


# ---- what we may send -------------------------------------------------------------------------


def test_deliver_sm_only_to_receivers() -> None:
    for state in (State.BOUND_RX, State.BOUND_TRX):
        conn = bound(state)
        assert conn.may_send(C.DELIVER_SM)
        assert decode_pdu(conn.send(DeliverSm(short_message=b"x"), now=1.0)).sequence_number >= 1
    conn = bound(State.BOUND_TX)
    assert not conn.may_send(C.DELIVER_SM)
    with pytest.raises(LocalProtocolError, match="deliver_sm may not be sent in state BOUND_TX"):
        conn.send(DeliverSm(), now=1.0)
    with pytest.raises(LocalProtocolError):
        SmppConnection("server").send(DeliverSm(), now=1.0)


def test_request_needs_now_and_a_free_sequence() -> None:
    conn = bound()
    with pytest.raises(LocalProtocolError, match="needs now"):
        conn.send(DeliverSm())
    conn.send(DeliverSm(sequence_number=9), now=0.0)
    with pytest.raises(LocalProtocolError, match="outstanding"):
        conn.send(DeliverSm(sequence_number=9), now=0.0)


def test_server_may_not_send_esme_requests() -> None:
    conn = bound()
    for pdu in (SubmitSm(), BindTransceiver()):
        with pytest.raises(LocalProtocolError):
            conn.send(pdu, now=0.0)


# ---- responses and the window -----------------------------------------------------------------


def test_response_matches_request() -> None:
    conn = bound()
    seq = conn.allocate_sequence()
    req = DeliverSm(sequence_number=seq, short_message=b"hi")
    conn.send(req, now=0.0)
    assert conn.outstanding == 1
    [ev] = feed(conn, encode_pdu(DeliverSmResp(sequence_number=seq)))
    assert ev == ResponseReceived(req, DeliverSmResp(sequence_number=seq))
    assert conn.outstanding == 0


def test_generic_nack_answers_a_request() -> None:
    conn = bound()
    conn.send(DeliverSm(sequence_number=3), now=0.0)
    [ev] = feed(conn, encode_pdu(GenericNack(command_status=S.ESME_RINVCMDID, sequence_number=3)))
    assert isinstance(ev, ResponseReceived)
    assert ev.request.sequence_number == 3


def test_stray_and_mismatched_responses_ignored() -> None:
    conn = bound()
    [ev] = feed(conn, encode_pdu(DeliverSmResp(sequence_number=44)))
    assert isinstance(ev, PduIgnored)
    assert "answers no outstanding request" in ev.reason
    conn.send(DeliverSm(sequence_number=45), now=0.0)
    [ev] = feed(conn, encode_pdu(SubmitSmResp(sequence_number=45)))
    assert isinstance(ev, PduIgnored)
    assert "does not answer deliver_sm" in ev.reason
    assert conn.outstanding == 1  # still waiting for the real answer
    [ev] = feed(conn, frame(0x80000005, b"no-nul", seq=45))
    assert isinstance(ev, PduIgnored)  # malformed response: never answered, request waits
    assert conn.outstanding == 1


def test_window_limits_outstanding_deliver_sm() -> None:
    conn = bound(window=3)
    for _ in range(3):
        conn.send(DeliverSm(), now=0.0)
    assert conn.window_available == 0
    with pytest.raises(LocalProtocolError, match="window of 3"):
        conn.send(DeliverSm(), now=0.0)
    conn.send(EnquireLink(), now=0.0)  # link control is not windowed
    feed(conn, encode_pdu(DeliverSmResp(sequence_number=1)))
    assert conn.window_available == 1
    conn.send(DeliverSm(), now=0.0)


def test_sequence_allocator_wraps_and_skips_outstanding() -> None:
    conn = bound()
    conn.send(DeliverSm(sequence_number=1), now=0.0)
    conn._next_seq = MAX_SEQUENCE
    assert conn.allocate_sequence() == MAX_SEQUENCE
    assert conn.allocate_sequence() == 2  # 1 is outstanding


# ---- timers -----------------------------------------------------------------------------------


def test_response_timeout() -> None:
    conn = bound(response_timeout=5.0, enquire_link_interval=None)
    conn.send(DeliverSm(sequence_number=7), now=10.0)
    conn.send(DeliverSm(sequence_number=8), now=11.0)
    assert conn.get_timer() == 15.0
    assert conn.handle_timer(14.9) == []
    [ev] = conn.handle_timer(15.0)
    assert ev == RequestTimedOut(DeliverSm(sequence_number=7))
    assert conn.get_timer() == 16.0
    [ev] = conn.handle_timer(100.0)
    assert isinstance(ev, RequestTimedOut)
    assert conn.get_timer() is None
    assert conn.window_available == conn.window
    # A late response is now stray.
    [late] = feed(conn, encode_pdu(DeliverSmResp(sequence_number=7)), now=101.0)
    assert isinstance(late, PduIgnored)


def test_enquire_link_probe_and_answer() -> None:
    conn = bound(enquire_link_interval=60.0, response_timeout=10.0)
    assert conn.get_timer() == 60.0
    feed(conn, encode_pdu(EnquireLink(sequence_number=50)), now=30.0)  # peer traffic
    assert conn.get_timer() == 90.0
    assert conn.handle_timer(89.0) == []
    [due] = conn.handle_timer(90.0)
    assert isinstance(due, EnquireLinkDue)
    probe = decode_pdu(due.data)
    assert isinstance(probe, EnquireLink)
    assert due.request == probe
    assert conn.get_timer() == 100.0  # the probe's response deadline; no second probe
    [ev] = feed(conn, encode_pdu(EnquireLinkResp(sequence_number=probe.sequence_number)), now=95.0)
    assert isinstance(ev, ResponseReceived)
    assert conn.get_timer() == 155.0


def test_silent_peer_declared_dead() -> None:
    conn = bound(enquire_link_interval=60.0, response_timeout=10.0)
    [due] = conn.handle_timer(60.0)
    assert isinstance(due, EnquireLinkDue)
    conn.send(DeliverSm(sequence_number=99), now=65.0)
    evs = conn.handle_timer(70.0)
    assert evs == [PeerTimedOut("no enquire_link_resp within 10 s")]
    assert conn.state is State.CLOSED
    assert conn.get_timer() is None
    closed = conn.next_event()
    assert isinstance(closed, ConnectionClosed)
    assert closed.unacknowledged == (DeliverSm(sequence_number=99),)


def test_bind_timeout() -> None:
    conn = SmppConnection("server", bind_timeout=5.0, enquire_link_interval=None, now=100.0)
    assert conn.get_timer() == 105.0
    assert conn.handle_timer(104.0) == []
    assert conn.handle_timer(105.0) == [PeerTimedOut("no bind within 5 s")]
    bound_conn = bound(bind_timeout=5.0, enquire_link_interval=None)
    assert bound_conn.get_timer() is None


_PROBE = encode_pdu(EnquireLink(sequence_number=9))


@pytest.mark.parametrize("split", [1, 3, 4, 15])
def test_pdu_timeout_closes_a_pdu_never_finished(split: int) -> None:
    conn = bound(pdu_timeout=5.0, enquire_link_interval=None)
    assert conn.get_timer() is None  # nothing buffered, nothing to time
    assert feed(conn, _PROBE[:split], now=10.0) == []
    assert conn.get_timer() == 15.0
    assert conn.handle_timer(14.9) == []
    assert conn.handle_timer(15.0) == [
        PeerTimedOut(f"PDU incomplete after 5 s ({split} octets buffered)")
    ]
    assert conn.state is State.CLOSED
    assert conn.get_timer() is None
    assert isinstance(conn.next_event(), ConnectionClosed)


def test_pdu_timeout_dribbled_octets_do_not_extend_it() -> None:
    # The deadline is the PDU's, not the last octet's.
    conn = bound(pdu_timeout=5.0, enquire_link_interval=None)
    for i, octet in enumerate(_PROBE[:-1]):
        assert feed(conn, bytes([octet]), now=10.0 + i * 0.3) == []
        assert conn.get_timer() == 15.0
    [ev] = conn.handle_timer(15.0)
    assert isinstance(ev, PeerTimedOut)


@pytest.mark.parametrize("split", range(1, len(_PROBE)))
def test_pdu_timeout_cleared_when_the_pdu_completes(split: int) -> None:
    conn = bound(pdu_timeout=5.0, enquire_link_interval=None)
    assert feed(conn, _PROBE[:split], now=10.0) == []
    assert conn.get_timer() == 15.0
    [ev] = feed(conn, _PROBE[split:], now=14.0)
    assert isinstance(ev, EnquireLink)
    assert conn.get_timer() is None
    assert conn.handle_timer(100.0) == []
    # A whole PDU plus the start of the next: the clock restarts with the tail's arrival.
    [ev] = feed(conn, _PROBE + _PROBE[:split], now=20.0)
    assert isinstance(ev, EnquireLink)
    assert conn.get_timer() == 25.0


def test_pdu_timeout_in_open_state_and_off_by_default() -> None:
    conn = SmppConnection("server", pdu_timeout=2.0, enquire_link_interval=None, now=0.0)
    feed(conn, _PROBE[:5], now=1.0)
    assert conn.get_timer() == 3.0
    assert conn.handle_timer(3.0) == [PeerTimedOut("PDU incomplete after 2 s (5 octets buffered)")]
    default = SmppConnection("server", enquire_link_interval=None, now=0.0)
    feed(default, _PROBE[:5], now=1.0)
    assert default.get_timer() is None


def test_no_probe_while_unbinding() -> None:
    conn = bound(enquire_link_interval=1.0)
    feed(conn, encode_pdu(Unbind(sequence_number=3)))
    assert conn.state is State.UNBOUND
    assert conn.get_timer() is None
    assert conn.handle_timer(50.0) == []


# ---- unbind -----------------------------------------------------------------------------------


def test_peer_unbind() -> None:
    conn = bound()
    conn.send(DeliverSm(sequence_number=7), now=0.0)
    [ev] = feed(conn, encode_pdu(Unbind(sequence_number=3)))
    assert ev == Unbind(sequence_number=3)
    assert conn.state is State.UNBOUND
    [ev] = feed(conn, encode_pdu(SubmitSm(sequence_number=4)))
    assert isinstance(ev, PduRejected)
    assert ev.status == S.ESME_RINVBNDSTS
    conn.send(UnbindResp(sequence_number=3))
    assert conn.state is State.CLOSED
    closed = conn.next_event()
    assert closed == ConnectionClosed("unbind completed", (DeliverSm(sequence_number=7),))


def test_our_unbind() -> None:
    conn = bound()
    conn.send(Unbind(sequence_number=30), now=0.0)
    assert conn.state is State.UNBOUND
    with pytest.raises(LocalProtocolError):
        conn.send(DeliverSm(), now=0.0)
    ev, closed = feed(conn, encode_pdu(UnbindResp(sequence_number=30)))
    assert ev == ResponseReceived(Unbind(sequence_number=30), UnbindResp(sequence_number=30))
    assert isinstance(closed, ConnectionClosed)


def test_unanswered_unbind_closes() -> None:
    conn = bound(response_timeout=2.0)
    conn.send(Unbind(), now=0.0)
    assert conn.handle_timer(2.0) == [PeerTimedOut("no unbind_resp within 2 s")]


def test_simultaneous_unbind_completes() -> None:
    conn = bound()
    conn.send(Unbind(sequence_number=30), now=0.0)
    [ev] = feed(conn, encode_pdu(Unbind(sequence_number=8)))
    assert ev == Unbind(sequence_number=8)
    conn.send(UnbindResp(sequence_number=8))
    assert conn.state is State.CLOSED


# ---- client role ------------------------------------------------------------------------------


def test_client_role_binds_on_ok_response() -> None:
    conn = SmppConnection("client", enquire_link_interval=None)
    with pytest.raises(LocalProtocolError):
        conn.send(SubmitSm(), now=0.0)
    conn.send(BindTransceiver(system_id="h", password="p"), now=0.0)
    [ev] = feed(conn, encode_pdu(BindTransceiverResp(sequence_number=1, system_id="gw")))
    assert isinstance(ev, ResponseReceived)
    assert conn.state is State.BOUND_TRX
    conn.send(SubmitSm(tlvs=ussd_tlvs(1)), now=0.0)
    [ev] = feed(conn, encode_pdu(DeliverSm(sequence_number=1000)))
    assert isinstance(ev, DeliverSm)
    [ev] = feed(conn, encode_pdu(SubmitSm(sequence_number=1001)))
    assert isinstance(ev, PduRejected)  # an SMSC never sends submit_sm


def test_client_bind_refused_stays_open() -> None:
    conn = SmppConnection("client")
    conn.send(BindTransmitter(), now=0.0)
    feed(conn, encode_pdu(BindTransmitterResp(command_status=S.ESME_RINVSYSID, sequence_number=1)))
    assert conn.state is State.OPEN


# ---- invariants -------------------------------------------------------------------------------


@settings(max_examples=300)
@given(st.lists(st.binary(max_size=80), max_size=8), st.sampled_from(list(ESME_ALLOWED)))
def test_any_bytes_give_events_never_exceptions(chunks: list[bytes], state: State) -> None:
    conn = connection_in(state)
    for chunk in [*chunks, b""]:
        for ev in feed(conn, chunk):
            assert isinstance(
                ev,
                (
                    Pdu,
                    PduRejected,
                    PduIgnored,
                    ResponseReceived,
                    RemoteProtocolError,
                    ConnectionClosed,
                ),
            )
            if isinstance(ev, PduRejected):
                encode_pdu(ev.response)  # always sendable
    assert isinstance(conn.next_event(), ConnectionClosed)


@settings(max_examples=200)
@given(
    st.lists(
        st.sampled_from(
            [
                encode_pdu(EnquireLink(sequence_number=1)),
                encode_pdu(SubmitSm(sequence_number=2, tlvs=ussd_tlvs(1))),
                encode_pdu(Unbind(sequence_number=3)),
                frame(0x99, b"", seq=4),
                encode_pdu(DeliverSmResp(sequence_number=5)),
            ]
        ),
        max_size=10,
    ),
    st.integers(1, 40),
)
def test_chunking_never_changes_events(pdus: list[bytes], chunk: int) -> None:
    wire = b"".join(pdus)
    if not wire:
        return  # feeding b"" means end of stream
    whole = feed(bound(), wire)
    conn = bound()
    pieces: list[Event] = []
    for i in range(0, len(wire), chunk):
        pieces += feed(conn, wire[i : i + chunk])
    assert pieces == whole


# ---- flow control: send_request / data_to_send / contexts -----------------------------------


def wire_pdus(data: bytes) -> list[Pdu]:
    """Split data_to_send() output into decoded PDUs."""
    out: list[Pdu] = []
    while data:
        (length,) = struct.unpack_from("!I", data)
        out.append(decode_pdu(data[:length]))
        data = data[length:]
    return out


def settled(evs: list[object]) -> list[object]:
    """The contexts events hand back, in order."""
    return [
        ev.context
        for ev in evs
        if isinstance(ev, (ResponseReceived, RequestTimedOut, RequestFailed))
    ]


def test_send_request_goes_out_through_data_to_send() -> None:
    conn = bound(window=2)
    assert conn.data_to_send() == b""
    conn.send_request(DeliverSm(), "a", now=0.0)
    conn.send_response(EnquireLinkResp(sequence_number=9))
    [sent, resp] = wire_pdus(conn.data_to_send())
    assert isinstance(sent, DeliverSm) and sent.sequence_number == 1
    assert resp == EnquireLinkResp(sequence_number=9)
    assert conn.data_to_send() == b""  # drained
    assert conn.outstanding == 1 and conn.window_free == 1


def test_a_request_numbered_beforehand_is_sent_as_it_is() -> None:
    # The SMSC numbers screens as it builds them (allocate_sequence): no copy on the way out.
    conn = bound(window=1)
    first, second = DeliverSm(sequence_number=conn.allocate_sequence()), DeliverSm()
    conn.send_request(first, "a", now=0.0)
    conn.send_request(second, "b", now=0.0)  # queued: the window is full
    sent = conn.data_to_send()
    [ev] = feed(conn, encode_pdu(DeliverSmResp(sequence_number=first.sequence_number)), 1.0)
    assert isinstance(ev, ResponseReceived) and ev.request is first and ev.context == "a"
    assert wire_pdus(sent) == [first]
    [numbered] = wire_pdus(conn.data_to_send())  # the queued one, numbered on release
    assert numbered.sequence_number not in (0, first.sequence_number)


# (responses fed as: whole, one byte at a time, whole with a trailing partial PDU)
CHUNKINGS = ["whole", "bytes", "trailing"]


def feed_chunked(conn: SmppConnection, wire: bytes, how: str, now: float) -> list[Event]:
    if how == "whole":
        return feed(conn, wire, now)
    if how == "bytes":
        got: list[Event] = []
        for i in range(len(wire)):
            got += feed(conn, wire[i : i + 1], now)
        return got
    probe = encode_pdu(EnquireLink(sequence_number=999))
    got = feed(conn, wire + probe[:7], now)
    assert conn.next_event() is NEED_DATA
    got += feed(conn, probe[7:], now)
    assert got[-1] == EnquireLink(sequence_number=999)
    return got[:-1]


@pytest.mark.parametrize("how", CHUNKINGS)
def test_full_window_queues_urgent_first_and_releases_on_response(how: str) -> None:
    conn = bound(window=2, enquire_link_interval=None)
    conn.send_request(DeliverSm(), "sms1", now=0.0)
    conn.send_request(DeliverSm(), "sms2", now=0.0)
    conn.send_request(DeliverSm(), "sms3", now=0.0)  # bulk: waits
    conn.send_request(DeliverSm(short_message=b"screen"), "screen", now=0.0, urgent=True)
    assert [p.sequence_number for p in wire_pdus(conn.data_to_send())] == [1, 2]
    assert (conn.queued, conn.queued_urgent, conn.window_free) == (2, 1, -2)
    # One response frees one slot: the screen overtakes the queued SMS.
    evs = feed_chunked(conn, encode_pdu(DeliverSmResp(sequence_number=2)), how, 5.0)
    assert settled(evs) == ["sms2"]
    [released] = wire_pdus(conn.data_to_send())
    assert released.sequence_number == 3 and released.short_message == b"screen"
    assert conn.queued == 1
    # Its deadline counts from the input that freed the slot, not from when it was queued.
    assert conn._outstanding[3][1] == 5.0 + conn.response_timeout
    wire = encode_pdu(DeliverSmResp(sequence_number=1)) + encode_pdu(
        DeliverSmResp(sequence_number=3)
    )
    evs = feed_chunked(conn, wire, how, 6.0)
    assert settled(evs) == ["sms1", "screen"]
    [last] = wire_pdus(conn.data_to_send())
    assert last.sequence_number == 4
    assert conn.queued == 0 and conn.outstanding == 1


def test_timeout_returns_context_and_releases_the_queue() -> None:
    conn = bound(window=1, response_timeout=5.0, enquire_link_interval=None)
    conn.send_request(DeliverSm(), "first", now=0.0)
    conn.send_request(DeliverSm(), "second", now=1.0)
    conn.data_to_send()
    assert conn.get_timer() == 5.0
    [ev] = conn.handle_timer(5.0)
    assert ev == RequestTimedOut(DeliverSm(sequence_number=1), "first")
    [released] = wire_pdus(conn.data_to_send())
    assert released.sequence_number == 2
    assert conn.get_timer() == 10.0  # from the timer's now, not from when it was queued
    assert events(conn) == []


def test_link_control_bypasses_a_full_window_and_queue() -> None:
    conn = bound(window=1, enquire_link_interval=None)
    conn.send_request(DeliverSm(), "a", now=0.0)
    conn.send_request(DeliverSm(), "b", now=0.0)
    conn.send_request(EnquireLink(), "probe", now=0.0)
    assert [type(p) for p in wire_pdus(conn.data_to_send())] == [DeliverSm, EnquireLink]
    assert conn.queued == 1


def test_queue_is_bounded() -> None:
    conn = bound(window=1, max_queued=2)
    for ctx in ("a", "b", "c"):
        conn.send_request(DeliverSm(), ctx, now=0.0)
    with pytest.raises(QueueFull, match="2 requests queued"):
        conn.send_request(DeliverSm(), "d", now=0.0)
    assert conn.queued == 2


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda c: c.send_request(DeliverSmResp(sequence_number=1), now=0.0), "use send_resp"),
        (lambda c: c.send_response(DeliverSm(sequence_number=1)), "use send_request"),
        (lambda c: c.send_request(SubmitSm(), now=0.0), "may not be sent in state BOUND_TRX"),
    ],
)
def test_send_request_caller_errors(call: object, match: str) -> None:
    conn = bound()
    with pytest.raises(LocalProtocolError, match=match):
        call(conn)  # type: ignore[operator]


def test_closed_connection_fails_outstanding_then_queued_exactly_once() -> None:
    conn = bound(window=1, enquire_link_interval=None)
    conn.send(DeliverSm(sequence_number=50), now=0.0)  # the unbuffered form: no context
    conn.send_request(DeliverSm(), "queued1", now=0.0)
    conn.send_request(DeliverSm(), "queued2", now=0.0)
    conn.data_to_send()
    # Window is 1 and send() took it: both wait.
    assert conn.queued == 2
    evs = feed(conn, b"")
    assert settled(evs) == ["queued1", "queued2"]
    assert all(isinstance(ev, RequestFailed) and ev.reason for ev in evs[:2])
    closed = evs[-1]
    assert isinstance(closed, ConnectionClosed)
    assert closed.unacknowledged == (DeliverSm(sequence_number=50),)
    assert conn.next_event() is closed  # terminal, and the contexts are not repeated
    with pytest.raises(LocalProtocolError, match="closed"):
        conn.send_request(DeliverSm(), "late", now=1.0)


def test_fatal_framing_error_fails_contexts_before_close() -> None:
    conn = bound(window=1)
    conn.send_request(DeliverSm(), "on the wire", now=0.0)
    conn.send_request(DeliverSm(), "queued", now=0.0)
    evs = feed(conn, struct.pack("!IIII", 3, 0, 0, 0))
    assert isinstance(evs[0], RemoteProtocolError)
    assert settled(evs) == ["on the wire", "queued"]
    assert isinstance(evs[-1], ConnectionClosed) and evs[-1].unacknowledged == ()


def test_queued_request_the_state_no_longer_allows_fails() -> None:
    conn = bound(window=1, enquire_link_interval=None)
    conn.send_request(DeliverSm(), "out", now=0.0)
    conn.send_request(DeliverSm(), "waiting", now=0.0)
    conn.send_request(Unbind(), "unbind", now=0.0)  # SMPP 3.4 §2.3: no deliver_sm after this
    assert conn.state is State.UNBOUND
    evs = feed(conn, encode_pdu(DeliverSmResp(sequence_number=1)))
    assert settled(evs) == ["out", "waiting"]
    assert isinstance(evs[1], RequestFailed) and "UNBOUND" in evs[1].reason
    evs = feed(conn, encode_pdu(UnbindResp(sequence_number=2)))
    assert settled(evs) == ["unbind"]
    assert isinstance(evs[-1], ConnectionClosed)
    assert conn.bound_as is State.BOUND_TRX  # kept for logs and metrics after the close


def test_unanswered_unbind_with_context_times_out_then_closes() -> None:
    conn = bound(response_timeout=5.0, enquire_link_interval=None)
    conn.send_request(Unbind(), "bye", now=0.0)
    evs = conn.handle_timer(5.0)
    assert evs[0] == RequestTimedOut(Unbind(sequence_number=1), "bye")
    assert isinstance(evs[1], PeerTimedOut)
    assert isinstance(conn.next_event(), ConnectionClosed)


def test_buffered_enquire_link_goes_to_data_to_send() -> None:
    conn = bound(enquire_link_interval=60.0, buffered=True)
    [due] = conn.handle_timer(60.0)
    assert isinstance(due, EnquireLinkDue) and due.data == b""
    assert wire_pdus(conn.data_to_send()) == [due.request]


@settings(max_examples=300)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("send"), st.booleans()),
            st.tuples(st.just("answer"), st.integers(0, 20)),
            st.tuples(st.just("time"), st.floats(0.0, 4.0)),
        ),
        max_size=40,
    ),
    st.integers(1, 4),
)
def test_every_context_comes_back_exactly_once(ops: list[tuple[str, object]], window: int) -> None:
    conn = bound(window=window, response_timeout=3.0, enquire_link_interval=None)
    now, sent, back = 0.0, 0, []
    on_wire: list[int] = []
    for op, arg in ops:
        if op == "send":
            conn.send_request(DeliverSm(), sent, now=now, urgent=bool(arg))
            sent += 1
        elif op == "answer" and on_wire:
            seq = on_wire.pop(int(arg) % len(on_wire))  # type: ignore[call-overload]
            back += settled(feed(conn, encode_pdu(DeliverSmResp(sequence_number=seq)), now))
        elif op == "time":
            now += float(arg)  # type: ignore[arg-type]
            back += settled(list(conn.handle_timer(now)))
            back += settled(events(conn))
        on_wire += [p.sequence_number for p in wire_pdus(conn.data_to_send())]
        assert conn.outstanding <= window
    back += settled(feed(conn, b"", now))
    assert sorted(back) == list(range(sent))  # type: ignore[type-var]


def test_buffered_fatal_error_leaves_its_generic_nack_in_data_to_send() -> None:
    conn = bound(buffered=True)
    [err, closed] = feed(conn, struct.pack("!IIII", 3, C.SUBMIT_SM, 0, 9))
    assert isinstance(err, RemoteProtocolError) and isinstance(closed, ConnectionClosed)
    assert wire_pdus(conn.data_to_send()) == [err.response]
