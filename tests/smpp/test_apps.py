"""Application binds end to end on real sockets (docs/smpp.md "SMPP applications").

A harness bind plays the subscriber and an app bind (`role: app`) the application, both on the
shared ESME client (tests/smpp/helpers.py), in one gateway: `*555#` routed to `smpp:shop`.
The independent clients (python-smpplib, aiosmpplib) are in test_apps_clients.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.conftest import make_config
from tests.smpp.helpers import (
    ACCOUNTS,
    ALICE,
    BOB,
    TIMEOUT,
    RecordingEsme,
    Waiter,
    bound,
    text_of,
)
from ussd.config import Config, ConfigError
from ussd.events import AppExchange, DialogEnded, Outcome
from ussd.runtime import Gateway
from ussd.smpp.constants import CommandStatus, Tag, UssdServiceOp
from ussd.smpp.pdu import (
    DeliverSm,
    ItsSessionInfo,
    SubmitSm,
    SubmitSmResp,
    Tlv,
    encode_text,
    tlv_u8,
    ussd_tlvs,
)
from ussd.smpp.server import SmppServer

APP_ACCOUNTS = [
    *ACCOUNTS,
    {"system_id": "shop", "password": "shoppw", "role": "app"},
    {"system_id": "sixd", "password": "pw", "role": "app", "ussd_profile": "6d"},
    {"system_id": "mica", "password": "pw", "role": "app", "ussd_profile": "mica"},
]
ROUTES = {"*555#": "smpp:shop", "*556#": "smpp:sixd", "*557#": "smpp:mica"}
APP_TIMEOUT = 15.0


def apps_config(**smpp: Any) -> Config:
    return make_config(
        smpp={"accounts": APP_ACCOUNTS, "app_timeout": f"{APP_TIMEOUT:g}s", **smpp},
        ussd={"routes": {**make_config().ussd.routes, **ROUTES}},
    )


@pytest.fixture
def config() -> Config:
    return apps_config()


async def app_submit(
    app: RecordingEsme,
    msisdn: str,
    text: str,
    op: int,
    session: ItsSessionInfo | None = None,
    umr: int | None = None,
    source: str = "555",
    session_tlv: Tlv | None = None,
) -> SubmitSmResp:
    """The application's submit_sm: from its service code to the subscriber.

    session_tlv, when given, names the session instead (a vendor profile's raw TLV).
    """
    data, coding = encode_text(text)
    tlvs = (
        ussd_tlvs(op, session, umr)
        if session_tlv is None
        else (tlv_u8(Tag.USSD_SERVICE_OP, op), session_tlv)
    )
    resp = await app.request(
        SubmitSm(
            service_type="USSD",
            source_addr=source,
            dest_addr_ton=1,
            dest_addr_npi=1,
            destination_addr=msisdn,
            data_coding=coding,
            short_message=data,
            tlvs=tlvs,
        )
    )
    assert isinstance(resp, SubmitSmResp)
    return resp


def op_of(pdu: DeliverSm) -> int | None:
    return pdu.ussd_service_op


async def test_harness_to_app_whole_path(server: SmppServer, waiter: Waiter) -> None:
    harness = await bound(server)
    app = await bound(server, system_id="shop", password="shoppw")
    resp = await harness.submit(ALICE, "*555*1#", destination_addr="555")
    assert resp.command_status == 0
    begin = await app.deliver_sm()
    # The whole dial string, from the subscriber (TON 1 NPI 1) to the service code.
    assert (op_of(begin), text_of(begin)) == (UssdServiceOp.PSSR_INDICATION, "*555*1#")
    assert (begin.source_addr, begin.source_addr_ton, begin.source_addr_npi) == (ALICE, 1, 1)
    assert begin.destination_addr == "555" and begin.service_type == "USSD"
    info = begin.its_session_info
    assert info is not None and info.sequence_number == 0 and not info.end_of_session

    ok = await app_submit(app, ALICE, "Shop\n1. Tea\n2. Coffee", UssdServiceOp.USSR_REQUEST, info)
    assert ok.command_status == 0
    screen = await harness.deliver_sm()
    assert (op_of(screen), text_of(screen)) == (2, "Shop\n1. Tea\n2. Coffee")

    await harness.submit(ALICE, "2", op=UssdServiceOp.USSR_CONFIRM)
    answer = await app.deliver_sm()
    assert (op_of(answer), text_of(answer), answer.source_addr) == (18, "2", ALICE)
    answer_info = answer.its_session_info
    assert answer_info is not None
    # SMPP 3.4 §5.3.2.43: the same session, its sequence counting every PDU of the dialog.
    assert (answer_info.session_number, answer_info.sequence_number) == (info.session_number, 2)

    ended = waiter.expect(lambda e: isinstance(e, DialogEnded) and e.msisdn == ALICE)
    await app_submit(app, ALICE, "Coffee is on its way", UssdServiceOp.PSSR_RESPONSE, info)
    last = await harness.deliver_sm()
    assert (op_of(last), text_of(last)) == (17, "Coffee is on its way")
    event = await ended
    assert isinstance(event, DialogEnded) and event.outcome is Outcome.APP_RELEASE
    await harness.close()
    await app.close()


async def test_subscriber_release_reaches_the_app_with_the_end_bit(server: SmppServer) -> None:
    harness = await bound(server)
    app = await bound(server, system_id="shop", password="shoppw")
    await harness.submit(ALICE, "*555#")
    begin = await app.deliver_sm()
    await app_submit(app, ALICE, "Menu", UssdServiceOp.USSR_REQUEST, begin.its_session_info)
    await harness.deliver_sm()
    await harness.submit(ALICE, "", op=UssdServiceOp.RELEASE)
    release = await app.deliver_sm()
    info = release.its_session_info
    assert op_of(release) == UssdServiceOp.USSR_CONFIRM and not text_of(release)
    assert info is not None and info.end_of_session
    assert begin.its_session_info is not None
    assert info.session_number == begin.its_session_info.session_number
    await harness.close()
    await app.close()


async def test_no_app_bound_gives_service_unavailable(server: SmppServer, waiter: Waiter) -> None:
    harness = await bound(server)
    ended = waiter.expect(lambda e: isinstance(e, DialogEnded))
    await harness.submit(BOB, "*555#")
    screen = await harness.deliver_sm()
    assert (op_of(screen), text_of(screen)) == (17, "Service unavailable.")
    event = await ended
    assert isinstance(event, DialogEnded) and event.outcome is Outcome.APP_UNAVAILABLE
    await harness.close()


async def test_slow_app_times_out_with_an_error_screen_and_an_end_bit(
    server: SmppServer, gateway: Gateway, waiter: Waiter
) -> None:
    harness = await bound(server)
    app = await bound(server, system_id="shop", password="shoppw")
    ended = waiter.expect(lambda e: isinstance(e, DialogEnded))
    await harness.submit(BOB, "*555#")
    await app.deliver_sm()
    gateway.advance(APP_TIMEOUT + 1)
    screen = await harness.deliver_sm()
    assert op_of(screen) == 17
    assert text_of(screen) == gateway.texts.get("common.error", "en")
    event = await ended
    assert isinstance(event, DialogEnded) and event.outcome is Outcome.APP_TIMEOUT
    end = await app.deliver_sm()
    info = end.its_session_info
    assert op_of(end) == UssdServiceOp.USSR_CONFIRM and info is not None and info.end_of_session
    # Its answer now comes too late: refused, and never taken for a push.
    late = await app_submit(app, BOB, "Menu", UssdServiceOp.USSR_REQUEST, info)
    assert late.command_status == CommandStatus.ESME_RINVOPTPARVAL
    assert gateway.engine.dialog(BOB) is None
    await harness.close()
    await app.close()


async def test_app_bind_lost_mid_dialog(server: SmppServer, waiter: Waiter) -> None:
    harness = await bound(server)
    app = await bound(server, system_id="shop", password="shoppw")
    ended = waiter.expect(lambda e: isinstance(e, DialogEnded))
    await harness.submit(BOB, "*555#")
    await app.deliver_sm()
    await app.close()
    screen = await harness.deliver_sm()
    assert (op_of(screen), text_of(screen)) == (17, "Service unavailable.")
    event = await ended
    assert isinstance(event, DialogEnded) and event.outcome is Outcome.APP_UNAVAILABLE
    await harness.close()


async def test_app_bind_lost_while_the_subscriber_has_the_turn(
    server: SmppServer, waiter: Waiter
) -> None:
    harness = await bound(server)
    app = await bound(server, system_id="shop", password="shoppw")
    await harness.submit(BOB, "*555#")
    begin = await app.deliver_sm()
    await app_submit(app, BOB, "Menu", UssdServiceOp.USSR_REQUEST, begin.its_session_info)
    assert text_of(await harness.deliver_sm()) == "Menu"
    ended = waiter.expect(lambda e: isinstance(e, DialogEnded))
    await app.close()  # nobody is left to hear the answer: the dialog ends now
    screen = await harness.deliver_sm()
    assert (op_of(screen), text_of(screen)) == (17, "Service unavailable.")
    event = await ended
    assert isinstance(event, DialogEnded) and event.outcome is Outcome.APP_UNAVAILABLE
    await harness.close()


async def test_another_bind_of_the_app_takes_over(server: SmppServer) -> None:
    harness = await bound(server)
    app = await bound(server, system_id="shop", password="shoppw")
    spare = await bound(server, system_id="shop", password="shoppw")
    await harness.submit(BOB, "*555#")
    first, other = app, spare
    begin = await asyncio.wait_for(_first_deliver(app, spare), TIMEOUT)
    if begin[0] is spare:
        first, other = spare, app
    await app_submit(first, BOB, "Menu", UssdServiceOp.USSR_REQUEST, begin[1].its_session_info)
    await harness.deliver_sm()
    await first.close()
    await harness.submit(BOB, "1", op=UssdServiceOp.USSR_CONFIRM)
    answer = await other.deliver_sm()
    assert (op_of(answer), text_of(answer)) == (18, "1")
    await app_submit(other, BOB, "Bye", 17, answer.its_session_info)
    assert text_of(await harness.deliver_sm()) == "Bye"
    await harness.close()
    await other.close()


async def _first_deliver(*apps: RecordingEsme) -> tuple[RecordingEsme, DeliverSm]:
    """The bind of several that gets the next deliver_sm (the gateway picks one)."""
    tasks = {asyncio.ensure_future(a.deliver_sm()): a for a in apps}
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    winner = next(iter(done))
    return tasks[winner], winner.result()


async def test_app_push_ussr_answer_returns_as_op_18(server: SmppServer, waiter: Waiter) -> None:
    harness = await bound(server)
    app = await bound(server, system_id="shop", password="shoppw")
    sent = ItsSessionInfo(200, 5)
    resp = await app_submit(app, ALICE, "Low balance. 1. Top up", 2, sent)
    assert resp.command_status == 0 and resp.message_id
    shown = await harness.deliver_sm()
    assert (op_of(shown), text_of(shown)) == (2, "Low balance. 1. Top up")
    await harness.submit(ALICE, "1", op=UssdServiceOp.USSR_CONFIRM)
    answer = await app.deliver_sm()
    info = answer.its_session_info
    assert (op_of(answer), text_of(answer)) == (UssdServiceOp.USSR_CONFIRM, "1")
    # The app's session number is echoed; the sequence goes on from the app's PDU.
    assert info is not None and (info.session_number, info.sequence_number) == (200, 6)
    ended = waiter.expect(lambda e: isinstance(e, DialogEnded))
    await app_submit(app, ALICE, "Done", 17, ItsSessionInfo(200, 7, True))
    assert text_of(await harness.deliver_sm()) == "Done"
    event = await ended
    assert isinstance(event, DialogEnded) and event.outcome is Outcome.APP_RELEASE
    await harness.close()
    await app.close()


async def test_app_push_ussn_confirm_returns_as_op_19(server: SmppServer) -> None:
    harness = await bound(server)
    app = await bound(server, system_id="shop", password="shoppw")
    resp = await app_submit(app, ALICE, "Your bonus: 100 MB", UssdServiceOp.USSN_REQUEST)
    assert resp.command_status == 0
    shown = await harness.deliver_sm()
    assert text_of(shown) == "Your bonus: 100 MB"
    await harness.submit(ALICE, "", op=UssdServiceOp.USSR_CONFIRM)
    confirm = await app.deliver_sm()
    info = confirm.its_session_info
    assert op_of(confirm) == UssdServiceOp.USSN_CONFIRM
    assert info is not None and info.end_of_session
    await harness.close()
    await app.close()


async def test_push_to_a_busy_msisdn_is_refused(server: SmppServer, gateway: Gateway) -> None:
    harness = await bound(server)
    app = await bound(server, system_id="shop", password="shoppw")
    await harness.submit(ALICE, "*111#")
    await harness.deliver_sm()
    assert gateway.engine.dialog(ALICE) is not None
    resp = await app_submit(app, ALICE, "Low balance", UssdServiceOp.USSR_REQUEST)
    assert resp.command_status == CommandStatus.ESME_RSUBMITFAIL
    dialog = gateway.engine.dialog(ALICE)
    assert dialog is not None and dialog.service != "push"  # the open dialog goes on
    await harness.close()
    await app.close()


async def test_app_bind_takes_no_sms_and_its_junk_is_refused(server: SmppServer) -> None:
    app = await bound(server, system_id="shop", password="shoppw")
    # No ussd_service_op: not USSD.
    resp = await app.request(
        SubmitSm(source_addr="555", destination_addr=ALICE, short_message=b"hi")
    )
    assert resp.command_status == CommandStatus.ESME_RSUBMITFAIL
    # An unknown operation, a final screen with no dialog, a bad address.
    assert (await app_submit(app, ALICE, "x", 0x42)).command_status == 0xC4
    assert (await app_submit(app, ALICE, "x", 17)).command_status == 0xC4
    bad = await app_submit(app, "not-a-number", "x", 2)
    assert bad.command_status == CommandStatus.ESME_RINVDSTADR
    assert (await app_submit(app, ALICE, "", 2)).command_status == CommandStatus.ESME_RINVMSGLEN
    await app.close()


@pytest.mark.parametrize(
    ("code", "system_id"), [("*556#", "sixd"), ("*557#", "mica")], ids=["6d", "mica"]
)
async def test_vendor_profiles_end_to_end(server: SmppServer, code: str, system_id: str) -> None:
    harness = await bound(server)
    app = await bound(server, system_id=system_id, password="pw")
    await harness.submit(BOB, code)
    begin = await app.deliver_sm()
    assert op_of(begin) == 1 and text_of(begin) == code
    tag = Tag.ITS_SESSION_INFO if system_id == "sixd" else Tag.USER_MESSAGE_REFERENCE
    raw = begin.get_tlv(tag)
    assert raw is not None and len(raw) == 2
    session = int.from_bytes(raw, "big")
    source = code.strip("*#")
    await app_submit(app, BOB, "Pick 1", 2, source=source, session_tlv=(tag, raw))
    assert text_of(await harness.deliver_sm()) == "Pick 1"
    await harness.submit(BOB, "1", op=UssdServiceOp.USSR_CONFIRM)
    answer = await app.deliver_sm()
    assert op_of(answer) == 0x12 and text_of(answer) == "1"
    again = answer.get_tlv(tag)
    assert again is not None and int.from_bytes(again, "big") == session  # constant id
    # vumi's processors close with ussd_service_op 0x17 (hex text '17').
    await app_submit(app, BOB, "Bye", 0x17, source=source, session_tlv=(tag, raw))
    last = await harness.deliver_sm()
    assert (op_of(last), text_of(last)) == (17, "Bye")
    await harness.close()
    await app.close()


async def test_its_session_info_octets_0_to_255_are_echoed(server: SmppServer) -> None:
    harness = await bound(server)
    app = await bound(server, system_id="shop", password="shoppw")
    for number in range(256):
        sequence = number % 128
        resp = await app_submit(app, ALICE, f"Q{number}", 2, ItsSessionInfo(number, sequence))
        assert resp.command_status == 0, number
        assert text_of(await harness.deliver_sm()) == f"Q{number}"
        await harness.submit(ALICE, "ok", op=UssdServiceOp.USSR_CONFIRM)
        answer = await app.deliver_sm()
        info = answer.its_session_info
        assert info is not None
        assert (info.session_number, info.sequence_number) == (number, (sequence + 1) % 64)
        await app_submit(app, ALICE, "bye", 17, ItsSessionInfo(number, (sequence + 2) % 128, True))
        await harness.deliver_sm()
    await harness.close()
    await app.close()


@pytest.mark.parametrize(
    ("account", "key"),
    [
        ({"role": "robot"}, "smpp.accounts[0].role"),
        ({"role": "app", "ussd_profile": "7d"}, "smpp.accounts[0].ussd_profile"),
    ],
)
def test_bad_app_accounts_name_their_key(account: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as exc:
        make_config(smpp={"accounts": [{"system_id": "x", "password": "p", **account}]})
    assert exc.value.key == key


def test_route_to_an_unknown_app_is_refused() -> None:
    config = make_config(ussd={"routes": {"*555#": "smpp:nobody"}})
    with pytest.raises(ConfigError) as exc:
        Gateway.create(config, database=":memory:")
    assert "smpp:nobody" in str(exc.value)


async def test_a_ussn_confirm_to_an_ordinary_screen_changes_nothing(
    server: SmppServer, gateway: Gateway
) -> None:
    harness = await bound(server)
    await harness.submit(ALICE, "*111#")
    await harness.deliver_sm()
    resp = await harness.submit(ALICE, "", op=UssdServiceOp.USSN_CONFIRM)
    assert resp.command_status == 0
    dialog = gateway.engine.dialog(ALICE)
    assert dialog is not None and dialog.steps == 1  # not taken as an (empty) reply
    await harness.close()


async def test_each_exchange_reaches_the_app_console(
    server: SmppServer, gateway: Gateway, events: list[Any], waiter: Waiter
) -> None:
    harness = await bound(server)
    app = await bound(server, system_id="shop", password="shoppw")
    await harness.submit(BOB, "*555*1#")
    begin = await app.deliver_sm()
    await app_submit(app, BOB, "Menu", UssdServiceOp.USSR_REQUEST, begin.its_session_info)
    await harness.deliver_sm()
    await harness.submit(BOB, "2", op=UssdServiceOp.USSR_CONFIRM)
    await app.deliver_sm()
    ended = waiter.expect(lambda e: isinstance(e, DialogEnded))
    gateway.advance(APP_TIMEOUT + 1)  # the app says nothing more
    await ended
    await harness.submit(ALICE, "*555#")  # and then it is gone
    await app.close()
    await harness.deliver_sm()
    await harness.deliver_sm()
    shown = [
        (e.app, e.dialect, e.request, e.answer, e.outcome)
        for e in events
        if isinstance(e, AppExchange)
    ]
    assert shown[:2] == [
        (
            "smpp:shop",
            "smpp/standard",
            "deliver_sm op 1\n*555*1#",
            "submit_sm op 2\nMenu",
            "continue",
        ),
        ("smpp:shop", "smpp/standard", "deliver_sm op 18\n2", "", "timeout"),
    ]
    assert [s[4] for s in shown[2:]] == ["unavailable"]
    await harness.close()


async def test_an_app_may_push_again_with_the_same_session_number(server: SmppServer) -> None:
    harness = await bound(server)
    app = await bound(server, system_id="shop", password="shoppw")
    for _ in range(2):  # an app that numbers every push 0 (many do)
        resp = await app_submit(app, ALICE, "Bonus!", UssdServiceOp.USSN_REQUEST, ItsSessionInfo(0))
        assert resp.command_status == 0
        assert text_of(await harness.deliver_sm()) == "Bonus!"
        await harness.submit(ALICE, "", op=UssdServiceOp.USSN_CONFIRM)
        assert (await app.deliver_sm()).ussd_service_op == UssdServiceOp.USSN_CONFIRM
        await harness.deliver_sm()  # the notice's end
    await harness.close()
    await app.close()


async def test_an_app_release_while_the_subscriber_has_the_turn(
    server: SmppServer, waiter: Waiter
) -> None:
    harness = await bound(server)
    app = await bound(server, system_id="shop", password="shoppw")
    await harness.submit(BOB, "*555#")
    begin = await app.deliver_sm()
    await app_submit(app, BOB, "Menu", UssdServiceOp.USSR_REQUEST, begin.its_session_info)
    await harness.deliver_sm()
    ended = waiter.expect(lambda e: isinstance(e, DialogEnded))
    resp = await app_submit(app, BOB, "", UssdServiceOp.RELEASE, begin.its_session_info)
    assert resp.command_status == 0
    last = await harness.deliver_sm()
    assert op_of(last) == 17 and last.its_session_info is not None
    assert last.its_session_info.end_of_session
    event = await ended
    assert isinstance(event, DialogEnded) and event.outcome is Outcome.APP_RELEASE
    await harness.close()
    await app.close()
