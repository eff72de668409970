"""The sans-IO application-bind core (ussd/smpp/apps.py): effects and PDUs in, actions and
results out; no sockets, no loop. The engine is a real one, on a simulated clock."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.smpp.test_apps import apps_config
from tests.smpp.test_smsc import FakeWindow
from ussd.config import Config, SmppAccount
from ussd.effects import Answer, Effect, Failure
from ussd.events import Outcome
from ussd.runtime import Gateway
from ussd.services import smppapp
from ussd.smpp.apps import AppPart, Apps, exchange
from ussd.smpp.constants import CommandStatus, UssdServiceOp
from ussd.smpp.pdu import DeliverSm, ItsSessionInfo, SubmitSm, SubmitSmResp, encode_text, ussd_tlvs
from ussd.smpp.smsc import Respond, Send

ALICE = "79161234567"
SHOP = SmppAccount(system_id="shop", password="shoppw", role="app")


@pytest.fixture
def config() -> Config:
    return apps_config()


@pytest.fixture
def apps(gateway: Gateway) -> Iterator[Apps]:
    core = Apps(gateway.engine, gateway.config.smpp)
    unsubscribe = gateway.engine.subscribe(core.engine_event)
    yield core
    unsubscribe()


def effect(op: str = "begin", text: str = "*555#", session: str = "s1") -> Effect:
    request = {"system_id": "shop", "op": op, "text": text}
    return Effect(f"{session}.1", "smpp", ALICE, session, "555", request, 100.0)


def answer(text: str, op: int, info: ItsSessionInfo | None = None, seq: int = 9) -> SubmitSm:
    data, coding = encode_text(text)
    return SubmitSm(
        sequence_number=seq,
        source_addr="555",
        destination_addr=ALICE,
        data_coding=coding,
        short_message=data,
        tlvs=ussd_tlvs(op, info),
    )


def only_send(core: Apps) -> Send:
    (action,) = core.actions()
    assert isinstance(action, Send)
    return action


def test_no_bind_fails_at_once(apps: Apps) -> None:
    apps.perform(effect())
    assert apps.actions() == []
    [(effect_id, result)] = apps.results()
    assert effect_id == "s1.1" and isinstance(result, Failure)
    assert result.cause is Outcome.APP_UNAVAILABLE


def test_a_transmitter_alone_cannot_take_dialogs(apps: Apps) -> None:
    apps.bind_opened(1, SHOP, FakeWindow(), receives=False)
    apps.perform(effect())
    [(_, result)] = apps.results()
    assert isinstance(result, Failure) and result.cause is Outcome.APP_UNAVAILABLE


def test_begin_then_answer(apps: Apps) -> None:
    apps.bind_opened(1, SHOP, FakeWindow(), receives=True)
    apps.perform(effect())
    send = only_send(apps)
    pdu = send.pdu
    assert isinstance(pdu, DeliverSm) and send.urgent
    assert (pdu.ussd_service_op, pdu.short_message, pdu.source_addr) == (1, b"*555#", ALICE)
    assert send.context == AppPart("s1", "s1.1", False)
    info = pdu.its_session_info
    # The transmitter half of the app answers: found by MSISDN, not by bind.
    apps.bind_opened(2, SHOP, FakeWindow(), receives=False)
    apps.submit_sm(2, answer("Menu", UssdServiceOp.USSR_REQUEST, info))
    [respond] = apps.actions()
    assert isinstance(respond, Respond) and respond.bind == 2
    assert isinstance(respond.pdu, SubmitSmResp) and respond.pdu.command_status == 0
    assert respond.pdu.message_id and respond.pdu.sequence_number == 9
    [(effect_id, result)] = apps.results()
    assert effect_id == "s1.1" and result == Answer({"op": smppapp.CONTINUE, "text": "Menu"})


@pytest.mark.parametrize(
    ("status", "cause"),
    [(CommandStatus.ESME_RX_T_APPN, Outcome.APP_ERROR), (None, Outcome.APP_UNAVAILABLE)],
    ids=["refused", "unanswered"],
)
def test_a_deliver_sm_that_does_not_get_through(
    apps: Apps, status: int | None, cause: Outcome
) -> None:
    apps.bind_opened(1, SHOP, FakeWindow(), receives=True)
    apps.perform(effect())
    context = only_send(apps).context
    assert isinstance(context, AppPart)
    if status is None:
        apps.failed(context)
    else:
        apps.response(context, status)
    [(_, result)] = apps.results()
    assert isinstance(result, Failure) and result.cause is cause
    # Once only: a late response changes nothing.
    apps.response(context, CommandStatus.ESME_RSYSERR)
    assert apps.results() == []


def test_bind_lost_while_waiting(apps: Apps) -> None:
    apps.bind_opened(1, SHOP, FakeWindow(), receives=True)
    apps.perform(effect())
    apps.actions()
    apps.bind_closed(1)
    [(_, result)] = apps.results()
    assert isinstance(result, Failure) and result.cause is Outcome.APP_UNAVAILABLE
    apps.bind_closed(1)  # twice: nothing more
    assert apps.results() == []


def test_an_answer_when_the_subscriber_has_the_turn_is_refused(apps: Apps) -> None:
    apps.bind_opened(1, SHOP, FakeWindow(), receives=True)
    apps.perform(effect())
    info = only_send(apps).pdu.its_session_info  # type: ignore[attr-defined]
    apps.submit_sm(1, answer("Menu", 2, info))
    apps.actions(), apps.results()
    apps.submit_sm(1, answer("Again", 2, info))
    [respond] = apps.actions()
    assert respond.pdu.command_status == CommandStatus.ESME_RINVOPTPARVAL
    assert apps.results() == []


_TLV = st.tuples(st.sampled_from([0x0501, 0x1383, 0x0204, 0x0424, 0x1234]), st.binary(max_size=4))


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=200)
@given(
    profile=st.sampled_from(["standard", "6d", "mica"]),
    tlvs=st.lists(_TLV, max_size=4),
    destination=st.sampled_from([ALICE, "", "abc", "+7 916 123-45-67", "7" * 20]),
    data_coding=st.sampled_from([0, 8, 0x0F, 0x42]),
    message=st.binary(max_size=20),
)
def test_any_app_submit_sm_gets_exactly_one_response(
    gateway: Gateway,
    profile: str,
    tlvs: list[tuple[int, bytes]],
    destination: str,
    data_coding: int,
    message: bytes,
) -> None:
    core = Apps(gateway.engine, gateway.config.smpp)
    account = SmppAccount(system_id="shop", password="p", role="app", ussd_profile=profile)
    core.bind_opened(1, account, FakeWindow(), receives=True)
    pdu = SubmitSm(
        sequence_number=5,
        source_addr="555",
        destination_addr=destination,
        data_coding=data_coding,
        short_message=message,
        tlvs=tuple(tlvs),
    )
    core.submit_sm(1, pdu)
    responses = [a for a in core.actions() if isinstance(a, Respond)]
    assert len(responses) == 1 and responses[0].pdu.sequence_number == 5
    gateway.engine.release(ALICE)  # a push it started must not leak into the next example


@pytest.mark.parametrize(
    ("result", "timed_out", "answer", "outcome"),
    [
        (
            Answer({"op": smppapp.CONTINUE, "text": "Menu"}),
            False,
            "submit_sm op 2\nMenu",
            "continue",
        ),
        (Answer({"op": smppapp.NOTIFY, "text": "Note"}), False, "submit_sm op 3\nNote", "continue"),
        (Answer({"op": smppapp.END, "text": "Bye"}), False, "submit_sm op 17\nBye", "end"),
        (Answer({"op": smppapp.RELEASE, "text": ""}), False, "submit_sm op 0x81\n", "end"),
        (Failure(Outcome.APP_ERROR, "deliver_sm refused"), False, "deliver_sm refused", "error"),
        (Failure(Outcome.APP_UNAVAILABLE, "no bind"), False, "no bind", "unavailable"),
        (None, True, "", "timeout"),
        (None, False, "", "cancelled"),
    ],
)
def test_exchanges_for_the_console(
    result: Answer | Failure | None, timed_out: bool, answer: str, outcome: str
) -> None:
    shown = exchange(effect("reply", "2"), "6d", result, 12.5, timed_out)
    assert (shown.app, shown.dialect, shown.url) == ("smpp:shop", "smpp/6d", "smpp://shop")
    assert (shown.request, shown.answer, shown.outcome) == ("deliver_sm op 18\n2", answer, outcome)
    assert shown.status is None and shown.latency_ms == 12.5


def test_an_engine_failure_costs_the_request_only(
    apps: Apps, gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    apps.bind_opened(1, SHOP, FakeWindow(), receives=True)

    def broken(*args: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(gateway.engine, "push", broken)
    apps.submit_sm(1, answer("Low balance", UssdServiceOp.USSR_REQUEST))
    [respond] = apps.actions()
    assert respond.pdu.command_status == CommandStatus.ESME_RSYSERR
