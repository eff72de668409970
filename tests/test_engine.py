"""The session engine: timers on the simulated clock, replacement, paging, restarts."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from tests.conftest import make_config
from ussd.clock import SimulatedClock
from ussd.dialstring import DialStringError
from ussd.engine import Dialog, NoDialog, NotUssd, UnknownSubscriber
from ussd.events import DialogEnded, DialogStarted, Event, Outcome, ScreenShown, SmsState
from ussd.runtime import Gateway
from ussd.store import verify_password

RU = "79161234567"
EN = "79161112233"


def ends(events: list[Event]) -> list[DialogEnded]:
    return [e for e in events if isinstance(e, DialogEnded)]


def test_reply_timeout_ends_the_dialog(gateway: Gateway, events: list[Event]) -> None:
    gateway.engine.dial(RU, "*111*17#")
    assert gateway.next_deadline() == gateway.clock.now() + 30
    gateway.advance(29.999)
    assert gateway.engine.dialog(RU) is not None
    gateway.advance(0.001)
    assert gateway.engine.dialog(RU) is None
    [end] = ends(events)
    assert end.outcome is Outcome.TIMEOUT
    assert end.screen is not None and end.screen.end
    assert end.screen.text == "Время ожидания ответа истекло."
    with pytest.raises(NoDialog):
        gateway.engine.reply(RU, "secret12")


def test_reply_rearms_the_timeout(gateway: Gateway) -> None:
    gateway.engine.dial(RU, "*111#")
    gateway.advance(25)
    gateway.engine.reply(RU, "6")  # last payments: a message screen, still open
    gateway.advance(25)
    assert gateway.engine.dialog(RU) is not None  # 50 s in, but only 25 s since the reply
    gateway.advance(5)
    assert gateway.engine.dialog(RU) is None


def test_dialog_maximum_duration(gateway: Gateway, events: list[Event]) -> None:
    gateway.engine.dial(RU, "*111#")
    for _ in range(8):  # keep replying every 20 s: the reply timer never fires
        gateway.advance(20)
        gateway.engine.reply(RU, "00")
    assert gateway.engine.dialog(RU) is not None  # 160 s
    gateway.advance(19.9)
    assert gateway.engine.dialog(RU) is not None
    gateway.advance(0.1)  # 180 s
    [end] = ends(events)
    assert end.outcome is Outcome.MAX_DURATION
    assert end.screen is not None and "превышено время" in end.screen.text


def test_timeouts_come_from_config() -> None:
    config = make_config(ussd={"reply_timeout": "5s", "dialog_timeout": "7s"})
    gw = Gateway.create(config, clock=SimulatedClock(), database=":memory:")
    gw.engine.dial(RU, "*111#")
    gw.advance(4)
    gw.engine.reply(RU, "00")
    gw.advance(3)
    assert gw.engine.dialog(RU) is None


def test_new_dial_releases_the_open_dialog(gateway: Gateway, events: list[Event]) -> None:
    first = gateway.engine.dial(RU, "*111*17#")
    second = gateway.engine.dial(RU, "*111#")
    assert first.session != second.session
    [end] = ends(events)
    assert end.session == first.session and end.outcome is Outcome.REPLACED
    dialog = gateway.engine.dialog(RU)
    assert dialog is not None and dialog.session == second.session


def test_release(gateway: Gateway, events: list[Event]) -> None:
    gateway.engine.dial(RU, "*111#")
    assert gateway.engine.release("+7 916 123-45-67")  # any form of the number
    assert not gateway.engine.release(RU)
    assert ends(events)[-1].outcome is Outcome.RELEASED
    assert gateway.next_deadline() is None


def test_msisdn_forms_are_one_number(gateway: Gateway) -> None:
    gateway.engine.dial("89161234567", "*111*17#")
    assert gateway.engine.reply("+79161234567", "abcd1234").end is False
    assert gateway.engine.dialog(RU) is not None


def test_calls_and_local_codes_never_reach_the_network(
    gateway: Gateway, events: list[Event]
) -> None:
    for text, kind in (("*#06#", "local"), ("89161234567", "call"), ("12", "call")):
        with pytest.raises(NotUssd) as info:
            gateway.engine.dial(RU, text)
        assert info.value.kind == kind
    with pytest.raises(DialStringError):
        gateway.engine.dial(RU, "*111*17#extra")
    assert events == []


def test_unknown_subscriber_without_auto_provision() -> None:
    config = make_config(subscribers={"auto_provision": False})
    gw = Gateway.create(config, clock=SimulatedClock(), database=":memory:")
    with pytest.raises(UnknownSubscriber):
        gw.engine.dial("79990000000", "*100#")
    assert gw.engine.dial(RU, "*100#").end  # seeded numbers still work


def test_auto_provision_creates_the_subscriber(gateway: Gateway) -> None:
    assert gateway.store.subscriber("79990000000") is None
    gateway.engine.dial("+79990000000", "*100#")
    sub = gateway.store.subscriber("79990000000")
    assert sub is not None and sub.language == "ru" and sub.balance == 0


def test_events_in_order(gateway: Gateway, events: list[Event]) -> None:
    gateway.engine.dial(RU, "*100#")
    kinds = [type(e) for e in events]
    assert kinds == [DialogStarted, ScreenShown, DialogEnded]


# -- pagination ---------------------------------------------------------------------


def test_main_menu_paginates_in_russian(gateway: Gateway) -> None:
    first = gateway.engine.dial(RU, "*111#")
    assert first.pages > 1 and first.page == 1 and not first.end
    seen = [first]
    while seen[-1].page < seen[-1].pages:
        seen.append(gateway.engine.reply(RU, "98"))
    for screen in seen:
        assert len(screen.text) <= 80  # Cyrillic: UCS-2, 80 characters
    joined = "\n".join(s.text for s in seen)
    for n in range(1, 9):
        assert f"{n}. " in joined  # every option, none split
    back = gateway.engine.reply(RU, "0")
    assert back.page == seen[-1].page - 1


def test_english_main_menu_fits_gsm_limit(gateway: Gateway) -> None:
    screen = gateway.engine.dial(EN, "*111#")
    assert screen.text.startswith("My MTS")
    assert "1. Balance" in screen.text


def test_menu_choices_and_navigation(gateway: Gateway) -> None:
    gateway.engine.dial(RU, "*111#")
    numbers = gateway.engine.reply(RU, "3")
    assert "Управление номерами" in numbers.text and "1. Подключить" in numbers.text
    assert "0 Назад" in numbers.text
    home = gateway.engine.reply(RU, "0")
    assert home.text.startswith("Мой МТС")
    gateway.engine.reply(RU, "3")
    enabled = gateway.engine.reply(RU, "1")  # action → numbers.enable
    assert enabled.end and "подключена" in enabled.text


def test_menu_invalid_choice(gateway: Gateway) -> None:
    gateway.engine.dial(EN, "*111#")
    screen = gateway.engine.reply(EN, "42")
    assert screen.text.startswith("Invalid choice.") and not screen.end


def test_menu_reads_subscriber_data(gateway: Gateway) -> None:
    gateway.engine.dial(EN, "*111#")
    assert gateway.engine.reply(EN, "1").text == "Your balance: 42.00 RUB."
    gateway.engine.dial(RU, "*111#")
    package = gateway.engine.reply(RU, "4").text
    assert "300 мин, 100 SMS, 5120 МБ" in package
    gateway.engine.reply(RU, "00")
    payments = gateway.engine.reply(RU, "6").text
    assert "2026-11-01: +500.00" in payments
    gateway.engine.reply(RU, "00")
    assert "250" in gateway.engine.reply(RU, "7").text


def test_menu_password_action_hands_off(gateway: Gateway) -> None:
    gateway.engine.dial(EN, "*111#")
    prompt = gateway.engine.reply(EN, "2")
    assert "Enter a new personal account password" in prompt.text
    gateway.engine.reply(EN, "pass1234")
    assert gateway.engine.reply(EN, "pass1234").end
    sub = gateway.store.subscriber(EN)
    assert sub and verify_password("pass1234", sub.password_hash)


def test_menu_services_toggle(gateway: Gateway) -> None:
    gateway.engine.dial(RU, "*111#")
    listing = gateway.engine.reply(RU, "5")
    assert listing.pages == 1
    assert "Роуминг: вкл" in listing.text
    options = [line for line in listing.text.splitlines() if "Роуминг" in line]
    number = options[0].split(".")[0]
    done = gateway.engine.reply(RU, number)
    assert done.end and done.text == "Услуга «Роуминг»: выкл."
    sub = gateway.store.subscriber(RU)
    assert sub and sub.services["roaming"] is False


def test_menu_input_validation(gateway: Gateway) -> None:
    gateway.engine.dial(EN, "*111#")
    prompt = gateway.engine.reply(EN, "8")
    assert "e-mail" in prompt.text
    bad = gateway.engine.reply(EN, "not-an-email")
    assert bad.text.startswith("Not a valid e-mail.") and not bad.end
    done = gateway.engine.reply(EN, "qa@example.org")
    assert done.end and "qa@example.org" in done.text


def test_long_end_text_is_paged(gateway: Gateway) -> None:
    now = gateway.clock.now()
    payments = [{"date": f"2026-0{m}-15", "amount": 100 * m} for m in range(1, 10)]
    gateway.store.update_subscriber(RU, payments=payments)
    gateway.store.create_subscriber("79160000001", "ru", now)
    gateway.engine.dial(RU, "*111#")
    screen = gateway.engine.reply(RU, "6")
    assert not screen.end  # a message screen stays open
    assert all(len(p) <= 80 for p in gateway.engine.dialog(RU).pages)  # type: ignore[union-attr]


# -- scale and state --------------------------------------------------------------------------


def test_thousand_interleaved_dialogs(gateway: Gateway, events: list[Event]) -> None:
    numbers = [f"7926{n:07d}" for n in range(1000)]
    rng = random.Random(7)
    for msisdn in numbers:
        gateway.engine.dial(msisdn, "*111#")
    assert len(gateway.engine.sessions()) == 1000
    pending = {m: ["3", "3"] for m in numbers}  # numbers menu → status
    while pending:
        msisdn = rng.choice(list(pending))
        answer = pending[msisdn].pop(0)
        screen = gateway.engine.reply(msisdn, answer)
        if not pending[msisdn]:
            assert screen.end and "выкл." in screen.text
            del pending[msisdn]
    assert gateway.engine.sessions() == []
    sessions = {e.session for e in events if isinstance(e, DialogEnded)}
    assert len(sessions) == 1000


def test_dialog_state_is_plain_data(gateway: Gateway) -> None:
    gateway.engine.dial(RU, "*111#")
    gateway.engine.reply(RU, "3")
    dialog = gateway.engine.dialog(RU)
    assert dialog is not None
    state = json.loads(json.dumps(dialog.to_state()))
    assert Dialog.from_state(state) == dialog


def test_restart_keeps_subscribers_passwords_and_queued_sms(tmp_path: Path) -> None:
    database = str(tmp_path / "ussd.sqlite3")
    config = make_config(storage={"database": database})
    gw = Gateway.create(config, clock=SimulatedClock())
    gw.engine.dial("79990000001", "*111*17#")
    gw.engine.reply("79990000001", "keep1234")
    gw.engine.reply("79990000001", "keep1234")
    gw.store.update_subscriber(RU, balance=7.0)
    gw.engine.shutdown()
    gw.store.close()

    again = Gateway.create(config, clock=SimulatedClock())
    sub = again.store.subscriber("79990000001")
    assert sub is not None and verify_password("keep1234", sub.password_hash)
    seeded = again.store.subscriber(RU)
    assert seeded is not None and seeded.balance == 7.0  # the seed does not overwrite
    queued = again.sms.pending()
    assert [s.recipient for s in queued] == ["79990000001"]
    assert queued[0].state is SmsState.QUEUED
    assert again.store.schema_version >= 1
    again.store.close()
