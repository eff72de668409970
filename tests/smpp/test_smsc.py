"""The sans-IO SMSC core: submit_sm in, actions out, contexts back; no sockets, no loop."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import make_config
from ussd.config import Config, SmppAccount
from ussd.events import SmsState
from ussd.runtime import Gateway
from ussd.smpp.concat import udh_concat
from ussd.smpp.constants import (
    REFUSED_DATA_CODING_STATUS,
    CommandStatus,
    EsmClass,
    MessageState,
    UssdServiceOp,
)
from ussd.smpp.pdu import DeliverSm, ItsSessionInfo, SubmitSm, SubmitSmResp, encode_text, ussd_tlvs
from ussd.smpp.smsc import (
    RECEIPT_ATTEMPTS,
    RETRY_ROUNDS,
    ReceiptPart,
    Respond,
    ScreenPart,
    Send,
    Smsc,
    SmsPart,
)
from ussd.store import ReceiptState

S = CommandStatus
ALICE = "79161234567"  # seeded, Russian
BOB = "79161112233"  # seeded, English
KATE = "79260000001"
HARNESS = SmppAccount(system_id="harness", password="secret")
RANGES = SmppAccount(system_id="ranges", password="pw", sms_ranges=("7926",))


@dataclass
class FakeWindow:
    """What the core reads of a connection, set by hand."""

    window: int = 10
    window_free: int = 10
    queued_urgent: int = 0
    deliver: bool = True
    sequence: int = 0

    def may_send(self, command_id: int) -> bool:
        return self.deliver

    def allocate_sequence(self) -> int:
        self.sequence += 1
        return self.sequence


@pytest.fixture
def config() -> Config:
    return make_config()


@pytest.fixture
def world(gateway: Gateway) -> Iterator[tuple[Gateway, Smsc]]:
    smsc = Smsc(gateway.engine, gateway.sms, gateway.config.smpp)
    unsubscribe = gateway.engine.subscribe(smsc.engine_event)
    yield gateway, smsc
    unsubscribe()


def ussd(msisdn: str, text: str, op: int = UssdServiceOp.PSSR_INDICATION, **kw: Any) -> SubmitSm:
    data, coding = encode_text(text)
    session = kw.pop("session", None)
    return SubmitSm(
        sequence_number=kw.pop("seq", 7),
        service_type="USSD",
        source_addr=msisdn,
        destination_addr=kw.pop("destination_addr", "111"),
        data_coding=coding,
        short_message=data,
        tlvs=ussd_tlvs(op, session),
        **kw,
    )


def mo(to: str, text: str, registered_delivery: int = 1, **kw: Any) -> SubmitSm:
    data, coding = encode_text(text)
    return SubmitSm(
        sequence_number=kw.pop("seq", 9),
        source_addr=ALICE,
        destination_addr=to,
        data_coding=kw.pop("data_coding", coding),
        short_message=kw.pop("udh", b"") + data,
        registered_delivery=registered_delivery,
        **kw,
    )


def responses(smsc: Smsc) -> list[tuple[int, SubmitSmResp]]:
    out = []
    for action in smsc.actions():
        assert isinstance(action, Respond)
        assert isinstance(action.pdu, SubmitSmResp)
        out.append((action.bind, action.pdu))
    return out


def run(smsc: Smsc, now: float = 0.0) -> list[Send]:
    """Turn the adapter's loop once: handle_timer when due, return the requests."""
    at = smsc.get_timer()
    if at is not None and at <= now:
        smsc.handle_timer(now)
    sends = smsc.actions()
    assert all(isinstance(a, Send) for a in sends)
    return sends  # type: ignore[return-value]


# ---- USSD ------------------------------------------------------------------------------------


def test_dial_answers_then_sends_the_screen_urgently(world: tuple[Gateway, Smsc]) -> None:
    _, smsc = world
    window = FakeWindow(sequence=40)
    smsc.bind_opened(1, HARNESS, window, receives=True)
    smsc.submit_sm(1, ussd(ALICE, "*111*17#", session=ItsSessionInfo(9, 0)))
    resp, screen = smsc.actions()
    assert isinstance(resp, Respond) and resp.pdu.command_status == S.ESME_ROK
    assert isinstance(resp.pdu, SubmitSmResp) and resp.pdu.message_id  # the session id
    assert isinstance(screen, Send) and screen.urgent and screen.bind == 1
    assert isinstance(screen.pdu, DeliverSm) and screen.pdu.destination_addr == ALICE
    # Numbered by its bind's connection as it is built: sent as it is, never copied.
    assert (screen.pdu.sequence_number, window.sequence) == (41, 41)
    assert screen.pdu.its_session_info == ItsSessionInfo(9, 1, False)
    assert screen.context == ScreenPart(ALICE, resp.pdu.message_id, False)


@pytest.mark.parametrize(
    ("pdu", "status"),
    [
        (ussd("garbage", "*100#"), S.ESME_RINVSRCADR),
        (ussd(ALICE, "+79161112233"), S.ESME_RINVDSTADR),  # a call, not USSD
        (ussd(ALICE, "1", UssdServiceOp.USSR_CONFIRM), S.ESME_RINVOPTPARVAL),  # no dialog
        (ussd(ALICE, "x", UssdServiceOp.PSSD_RESPONSE), S.ESME_RINVOPTPARVAL),
        (mo("not a number", "hi"), S.ESME_RINVDSTADR),
        (mo(BOB, "x" * 40_000), S.ESME_RINVMSGLEN),
        (mo(BOB, "hi", data_coding=0x99), REFUSED_DATA_CODING_STATUS),
    ],
    ids=["bad-source", "call", "no-dialog", "bad-op", "bad-dest", "long", "dcs"],
)
def test_refused_submit_sm_table(world: tuple[Gateway, Smsc], pdu: SubmitSm, status: int) -> None:
    _, smsc = world
    smsc.bind_opened(1, HARNESS, FakeWindow(), receives=True)
    smsc.submit_sm(1, pdu)
    [(bind, resp)] = responses(smsc)  # exactly one response, no screen
    assert (bind, resp.command_status, resp.sequence_number) == (1, status, pdu.sequence_number)


def test_transmitter_screens_go_to_a_receiver_of_its_system_id(
    world: tuple[Gateway, Smsc],
) -> None:
    _, smsc = world
    smsc.bind_opened(1, HARNESS, FakeWindow(), receives=False)
    smsc.submit_sm(1, ussd(ALICE, "*100#"))
    [(_, resp)] = responses(smsc)  # nobody to show it to: answered, screen undeliverable
    assert resp.command_status == S.ESME_ROK
    smsc.bind_opened(2, HARNESS, FakeWindow(), receives=True)
    smsc.submit_sm(1, ussd(ALICE, "*100#"))
    resp, screen = smsc.actions()
    assert (resp.bind, screen.bind) == (1, 2)


def test_screens_waiting_a_window_refuse_new_dialogs(world: tuple[Gateway, Smsc]) -> None:
    _, smsc = world
    smsc.bind_opened(1, HARNESS, FakeWindow(window=2, window_free=-2, queued_urgent=2), True)
    smsc.submit_sm(1, ussd(ALICE, "*100#"))
    [(_, resp)] = responses(smsc)
    assert resp.command_status == S.ESME_RMSGQFUL


def test_timed_out_dialog_sends_an_end_screen(world: tuple[Gateway, Smsc]) -> None:
    gateway, smsc = world
    smsc.bind_opened(1, HARNESS, FakeWindow(), receives=True)
    smsc.submit_sm(1, ussd(ALICE, "*111*17#"))
    smsc.actions()
    gateway.advance(gateway.config.ussd.reply_timeout + 1)
    [end] = smsc.actions()
    assert isinstance(end, Send) and isinstance(end.context, ScreenPart) and end.context.end


def test_refused_screen_releases_the_dialog(world: tuple[Gateway, Smsc]) -> None:
    gateway, smsc = world
    smsc.bind_opened(1, HARNESS, FakeWindow(), receives=True)
    smsc.submit_sm(1, ussd(ALICE, "*111*17#"))
    _, screen = smsc.actions()
    assert gateway.engine.dialog(ALICE) is not None
    smsc.response(screen.context, S.ESME_RSYSERR, now=0.0)
    assert gateway.engine.dialog(ALICE) is None
    assert smsc.actions() == []  # the harness refused it: no end screen on top


def test_closed_bind_releases_its_dialogs(world: tuple[Gateway, Smsc]) -> None:
    gateway, smsc = world
    smsc.bind_opened(1, HARNESS, FakeWindow(), receives=True)
    smsc.submit_sm(1, ussd(ALICE, "*111*17#"))
    smsc.actions()
    smsc.bind_closed(1)
    assert gateway.engine.dialog(ALICE) is None and smsc.binds == 0


# ---- SMS: dispatch, windows, ranges, retries -------------------------------------------------


def test_sms_waits_for_a_covering_bind_with_room(world: tuple[Gateway, Smsc]) -> None:
    gateway, smsc = world
    full = FakeWindow(window_free=0)
    smsc.bind_opened(1, RANGES, full, receives=True)
    smsc.bind_opened(2, HARNESS, FakeWindow(deliver=False), receives=True)  # unbinding
    sms = gateway.sms.send(KATE, "hello Kate")
    assert run(smsc) == []  # window full, the other bind takes no deliver_sm: held
    full.window_free = 1
    smsc.window_changed(1)
    [send] = run(smsc)
    assert send.bind == 1 and isinstance(send.context, SmsPart)
    smsc.response(send.context, S.ESME_ROK, now=0.0)
    run(smsc)  # the acknowledgement is recorded in the next loop iteration
    assert gateway.store.sms(sms.id).state is SmsState.DELIVERED


def test_sms_outside_every_range_stays_queued(world: tuple[Gateway, Smsc]) -> None:
    gateway, smsc = world
    smsc.bind_opened(1, RANGES, FakeWindow(), receives=True)
    gateway.sms.send(BOB, "not in 7926")
    assert run(smsc) == []


def test_multipart_sms_delivered_only_when_every_part_is(world: tuple[Gateway, Smsc]) -> None:
    gateway, smsc = world
    smsc.bind_opened(1, HARNESS, FakeWindow(), receives=True)
    sms = gateway.sms.send(BOB, "x" * 400)
    parts = run(smsc)
    assert len(parts) == 3 and len({id(p.context) for p in parts}) == 1
    for part in parts[:-1]:
        smsc.response(part.context, S.ESME_ROK, now=0.0)
    run(smsc)
    assert gateway.store.sms(sms.id).state is SmsState.QUEUED
    smsc.response(parts[-1].context, S.ESME_ROK, now=0.0)
    run(smsc)
    assert gateway.store.sms(sms.id).state is SmsState.DELIVERED


def test_refused_sms_retried_after_response_timeout(world: tuple[Gateway, Smsc]) -> None:
    gateway, smsc = world
    smsc.bind_opened(1, HARNESS, FakeWindow(), receives=True)
    gateway.sms.send(BOB, "again")
    [send] = run(smsc, now=100.0)
    smsc.response(send.context, S.ESME_RSYSERR, now=100.0)
    assert run(smsc, now=100.0) == []
    retry = 100.0 + gateway.config.smpp.response_timeout
    assert smsc.get_timer() == retry
    assert run(smsc, now=retry - 0.5) == []
    [again] = run(smsc, now=retry)
    assert again.pdu == send.pdu


def test_unanswered_sms_goes_out_on_another_bind(world: tuple[Gateway, Smsc]) -> None:
    gateway, smsc = world
    smsc.bind_opened(1, HARNESS, FakeWindow(), receives=True)
    smsc.bind_opened(2, HARNESS, FakeWindow(), receives=True)
    gateway.sms.send(BOB, "hop")
    [send] = run(smsc)
    smsc.bind_closed(send.bind)
    smsc.failed(send.context, now=0.0)  # the connection hands the context back on close
    [again] = run(smsc)
    assert again.bind != send.bind and again.pdu == send.pdu


# ---- MO SMS, concatenation, receipts -----------------------------------------------------------


def test_mo_sms_committed_before_its_response(world: tuple[Gateway, Smsc]) -> None:
    gateway, smsc = world
    smsc.bind_opened(1, HARNESS, FakeWindow(), receives=True)
    smsc.submit_sm(1, mo(BOB, "Hello Bob"))
    [(_, resp)] = responses(smsc)
    assert resp.command_status == S.ESME_ROK
    sms = gateway.store.sms(int(resp.message_id))
    assert sms.text == "Hello Bob" and sms.kind == "mo"
    [receipt] = gateway.store.receipts_of(sms.id)
    assert receipt.state is ReceiptState.WAITING and receipt.system_id == "harness"


def test_receipt_follows_the_real_fate_of_the_sms(world: tuple[Gateway, Smsc]) -> None:
    gateway, smsc = world
    smsc.bind_opened(1, HARNESS, FakeWindow(), receives=True)
    smsc.submit_sm(1, mo(BOB, "Hello Bob"))
    [(_, resp)] = responses(smsc)
    [deliver] = run(smsc)  # the MO SMS itself goes out to Bob's handset side
    assert run(smsc) == []  # no receipt before it is delivered
    smsc.response(deliver.context, S.ESME_ROK, now=0.0)
    [receipt] = run(smsc)
    assert isinstance(receipt.context, ReceiptPart)
    assert isinstance(receipt.pdu, DeliverSm)
    assert receipt.pdu.esm_class == EsmClass.DELIVERY_RECEIPT
    assert receipt.pdu.receipted_message_id == resp.message_id
    assert receipt.pdu.message_state == MessageState.DELIVERED
    smsc.response(receipt.context, S.ESME_ROK, now=0.0)
    [stored] = gateway.store.receipts_of(int(resp.message_id))
    assert stored.state is ReceiptState.SENT


def test_receipt_refused_too_often_is_given_up(world: tuple[Gateway, Smsc]) -> None:
    gateway, smsc = world
    # Bob is outside the bind's sms_ranges: only the receipt goes out on it.
    smsc.bind_opened(1, RANGES, FakeWindow(), receives=True)
    smsc.submit_sm(1, mo(BOB, "Hello Bob"))
    [(_, resp)] = responses(smsc)
    gateway.sms.mark_delivered(int(resp.message_id))
    now = 0.0
    for _ in range(RECEIPT_ATTEMPTS):
        [receipt] = run(smsc, now)
        smsc.response(receipt.context, S.ESME_RX_T_APPN, now=now)
        now += gateway.config.smpp.response_timeout
    assert run(smsc, now) == []
    [stored] = gateway.store.receipts_of(int(resp.message_id))
    assert stored.state is ReceiptState.REFUSED


def test_concatenated_mo_sms_is_one_sms_with_a_receipt_per_part(
    world: tuple[Gateway, Smsc],
) -> None:
    _, smsc = world
    smsc.bind_opened(1, HARNESS, FakeWindow(), receives=True)
    smsc.submit_sm(1, mo(BOB, "Hello ", udh=udh_concat(5, 2, 1), esm_class=0x40, seq=1))
    smsc.submit_sm(1, mo(BOB, "Bob", udh=udh_concat(5, 2, 2), esm_class=0x40, seq=2))
    (_, first), (_, second) = responses(smsc)
    assert first.message_id.startswith("c") and second.message_id.startswith("c")
    assert first.message_id != second.message_id
    [deliver] = run(smsc)
    assert isinstance(deliver.context, SmsPart)
    assert deliver.context.delivery.sms.text == "Hello Bob"
    smsc.response(deliver.context, S.ESME_ROK, now=0.0)
    receipts = run(smsc)
    assert sorted(r.pdu.receipted_message_id for r in receipts) == sorted(  # type: ignore[attr-defined]
        [first.message_id, second.message_id]
    )


def test_public_mo_sms_and_due_receipts_without_binds(world: tuple[Gateway, Smsc]) -> None:
    gateway, smsc = world
    result = smsc.mo_sms("in-process", ALICE, BOB, "via the SMS centre", None, 1)
    assert result.status == S.ESME_ROK and result.sms is not None
    assert smsc.due_receipts("in-process") == []  # not delivered yet: nothing to report
    gateway.sms.mark_delivered(result.sms.id)
    [(receipt, pdu)] = smsc.due_receipts("in-process")
    assert pdu.message_state == MessageState.DELIVERED
    assert pdu.receipted_message_id == result.message_id
    assert smsc.receipt_settled(receipt.id, ok=True)
    assert smsc.due_receipts("in-process") == []


def test_stop_records_acknowledged_and_offers_nothing_new(world: tuple[Gateway, Smsc]) -> None:
    gateway, smsc = world
    smsc.bind_opened(1, HARNESS, FakeWindow(), receives=True)
    sms = gateway.sms.send(BOB, "last one")
    [send] = run(smsc)
    smsc.stop()
    smsc.response(send.context, S.ESME_ROK, now=0.0)
    assert gateway.store.sms(sms.id).state is SmsState.DELIVERED
    gateway.sms.send(BOB, "too late")
    assert smsc.get_timer() is None


def test_refusals_retry_in_rounds(world: tuple[Gateway, Smsc]) -> None:
    gateway, smsc = world
    timeout = gateway.config.smpp.response_timeout
    smsc.bind_opened(1, HARNESS, FakeWindow(), receives=True)
    for i in range(3):
        gateway.sms.send(BOB, f"sms {i}")
    sends = run(smsc)
    for i, send in enumerate(sends):  # refused a little apart
        smsc.response(send.context, S.ESME_RSYSERR, now=float(i))
    assert run(smsc, now=2.0) == []  # not before their retries
    assert smsc.get_timer() == timeout  # the first refusal's retry; later ones did not move it
    [first] = run(smsc, now=timeout)
    assert first.pdu == sends[0].pdu
    # The next two fall due 1 s and 2 s later, but go in one round, RETRY_ROUNDS per timeout.
    assert smsc.get_timer() == timeout + timeout / RETRY_ROUNDS
    assert len(run(smsc, now=timeout + timeout / RETRY_ROUNDS)) == 2


def test_a_timed_out_screen_frees_room_for_held_sms(world: tuple[Gateway, Smsc]) -> None:
    gateway, smsc = world
    window = FakeWindow(window=1, window_free=1)
    smsc.bind_opened(1, HARNESS, window, receives=True)
    smsc.submit_sm(1, ussd(ALICE, "*100#"))
    _, screen = smsc.actions()
    window.window_free = 0  # the screen holds the only slot
    gateway.sms.send(BOB, "waiting for room")
    assert run(smsc) == []  # held
    window.window_free = 1
    smsc.failed(screen.context, now=0.0)  # its response never came: the slot is free
    [sms] = run(smsc)
    assert isinstance(sms.context, SmsPart)
