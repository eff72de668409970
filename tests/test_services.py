"""Every service path of docs/services.md, each wrong input, through the engine's public API."""

from __future__ import annotations

import pytest

from ussd.events import DialogEnded, Event, Outcome, SmsQueued
from ussd.runtime import Gateway
from ussd.store import verify_password

RU = "79161234567"  # seeded, Russian
EN = "79161112233"  # seeded, English


def sms_texts(events: list[Event], msisdn: str) -> list[str]:
    return [e.sms.text for e in events if isinstance(e, SmsQueued) and e.msisdn == msisdn]


# -- password.set (*111*17#) ------------------------------------------------------------------


def test_password_set_happy_path(gateway: Gateway, events: list[Event]) -> None:
    first = gateway.engine.dial(RU, "*111*17#")
    assert not first.end and "парол" in first.text.lower()
    confirm = gateway.engine.reply(RU, "secret12")
    assert not confirm.end and "Повторите" in confirm.text
    done = gateway.engine.reply(RU, "secret12")
    assert done.end and "установлен" in done.text
    sub = gateway.store.subscriber(RU)
    assert sub is not None and sub.password_hash is not None
    assert sub.password_hash.startswith("scrypt$") and "secret12" not in sub.password_hash
    assert verify_password("secret12", sub.password_hash)
    assert not verify_password("secret13", sub.password_hash)
    notices = sms_texts(events, RU)
    assert len(notices) == 1 and "secret12" not in notices[0]
    assert gateway.engine.dialog(RU) is None


def test_password_hash_is_salted(gateway: Gateway) -> None:
    for msisdn in (RU, EN):
        gateway.engine.dial(msisdn, "*111*17#")
        gateway.engine.reply(msisdn, "same1234")
        gateway.engine.reply(msisdn, "same1234")
    a, b = gateway.store.subscriber(RU), gateway.store.subscriber(EN)
    assert a and b and a.password_hash != b.password_hash


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("abc", "от 4 до 10"),  # too short
        ("abcdefghijk", "от 4 до 10"),  # 11: too long
        ("", "от 4 до 10"),
        ("abc!1", "латинские"),  # punctuation
        ("пароль12", "латинские"),  # Cyrillic letters
        ("ab cd", "латинские"),  # a space
    ],
)
def test_password_wrong_input_reprompts_with_reason(
    gateway: Gateway, answer: str, reason: str
) -> None:
    gateway.engine.dial(RU, "*111*17#")
    screen = gateway.engine.reply(RU, answer)
    assert not screen.end
    assert reason in screen.text and "Введите новый пароль" in screen.text
    assert screen.pages == 1


@pytest.mark.parametrize("good", ["abcd", "ABCDEFGHIJ", "a1B2", "0000"])
def test_password_boundaries_accepted(gateway: Gateway, good: str) -> None:
    gateway.engine.dial(RU, "*111*17#")
    assert "Повторите" in gateway.engine.reply(RU, good).text
    assert gateway.engine.reply(RU, good).end


def test_password_mismatch_then_success(gateway: Gateway) -> None:
    gateway.engine.dial(RU, "*111*17#")
    gateway.engine.reply(RU, "first123")
    screen = gateway.engine.reply(RU, "other123")
    assert not screen.end and "не совпадают" in screen.text
    gateway.engine.reply(RU, "third123")
    assert gateway.engine.reply(RU, "third123").end
    sub = gateway.store.subscriber(RU)
    assert sub and verify_password("third123", sub.password_hash)


def test_password_three_failures_end_the_dialog(gateway: Gateway, events: list[Event]) -> None:
    gateway.engine.dial(RU, "*111*17#")
    assert not gateway.engine.reply(RU, "ab").end
    gateway.engine.reply(RU, "good1234")
    assert not gateway.engine.reply(RU, "bad12345").end  # mismatch: second failure
    final = gateway.engine.reply(RU, "x")
    assert final.end and "превышено число попыток" in final.text
    sub = gateway.store.subscriber(RU)
    assert sub and sub.password_hash is None
    assert sms_texts(events, RU) == []


def test_password_in_english(gateway: Gateway) -> None:
    screen = gateway.engine.dial(EN, "*111*17#")
    assert "Enter a new personal account password" in screen.text
    assert "4 to 10" in gateway.engine.reply(EN, "a").text


def test_dialog_state_never_holds_the_password(gateway: Gateway) -> None:
    gateway.engine.dial(RU, "*111*17#")
    gateway.engine.reply(RU, "secret12")
    dialog = gateway.engine.dialog(RU)
    assert dialog is not None
    assert "secret12" not in repr(dialog.to_state())


# -- number management (*111*828*1#, *111*828*2#, *111*828#) ----------------------------------


def test_numbers_enable_is_idempotent(gateway: Gateway, events: list[Event]) -> None:
    first = gateway.engine.dial(RU, "*111*828*1#")
    assert first.end and "подключена" in first.text
    again = gateway.engine.dial(RU, "*111*828*1#")
    assert again.end and "уже подключена" in again.text
    sub = gateway.store.subscriber(RU)
    assert sub and sub.number_management
    assert len(sms_texts(events, RU)) == 1


def test_numbers_disable_removes_office_links(gateway: Gateway, events: list[Event]) -> None:
    now = gateway.clock.now()
    gateway.engine.dial(RU, "*111*828*1#")
    gateway.store.add_link(RU, EN, "office", now, now + 172800)
    off = gateway.engine.dial(RU, "*111*828*2#")
    assert off.end and "отключена" in off.text
    assert gateway.store.link(RU) is None
    again = gateway.engine.dial(RU, "*111*828*2#")
    assert "не подключена" in again.text
    assert len(sms_texts(events, RU)) == 2


def test_numbers_disable_keeps_app_links(gateway: Gateway) -> None:
    now = gateway.clock.now()
    gateway.engine.dial(RU, "*111*828*1#")
    gateway.store.add_link(RU, EN, "app", now, now)
    gateway.engine.dial(RU, "*111*828*2#")
    link = gateway.store.link(RU)
    assert link is not None and link.flow == "app"


def test_numbers_status(gateway: Gateway) -> None:
    status = gateway.engine.dial(RU, "*111*828#")
    assert status.end and status.text == "Управление номерами: выкл. Номер не привязан."
    gateway.engine.dial(RU, "*111*828*1#")
    now = gateway.clock.now()
    gateway.store.add_link(RU, EN, "office", now, now + 100)
    pending = gateway.engine.dial(RU, "*111*828#").text
    assert pending.startswith("Управление номерами: вкл. Привязка к +7 916 ***-**-33 с ")
    gateway.advance(100)
    active = gateway.engine.dial(RU, "*111*828#").text
    assert "привязан к кабинету +7 916 ***-**-33" in active
    assert EN not in active  # masked


# -- balance, unknown, SS ---------------------------------------------------------------------


def test_balance(gateway: Gateway) -> None:
    screen = gateway.engine.dial(RU, "*100#")
    assert screen.end and screen.text == "Ваш баланс: 120.50 руб."
    assert screen.service_code == "100"
    assert gateway.engine.dial(EN, "*100#").text == "Your balance: 42.00 RUB."


def test_unknown_ussd_gets_localised_end_screen(gateway: Gateway, events: list[Event]) -> None:
    assert gateway.engine.dial(RU, "*999#").text == "Неизвестный запрос."
    assert gateway.engine.dial(EN, "*999*1#").text == "Unknown request."
    ends = [e for e in events if isinstance(e, DialogEnded)]
    assert [e.outcome for e in ends] == [Outcome.COMPLETED, Outcome.COMPLETED]


def test_ss_request_is_answered_by_the_network(gateway: Gateway) -> None:
    # Supplementary services have their own table (tests/test_supplementary.py); COLP
    # activation is one of the SS requests this network does not support.
    screen = gateway.engine.dial(RU, "*#21#")
    assert screen.end and screen.text == "Переадресация всех вызовов: услуга не активна."
    assert gateway.engine.dial(EN, "*76#").text == "Service not supported."
