""" "Мой МТС" on `*111#` (docs/services.md): the branches the shipped scenarios do not walk."""

from __future__ import annotations

from ussd.runtime import Gateway

RU = "79161234567"
EN = "79161112233"
PLANS = [
    {"item": "Phone", "total": 300, "months": 3, "first_due": "2026-05-15"},
    {"item": "Watch", "total": 100, "months": 2, "first_due": "2026-05-01", "paid": 2},
]


def walk(gateway: Gateway, msisdn: str, *replies: str) -> str:
    """Dial *111# and send replies; the text of the last screen."""
    screen = gateway.engine.dial(msisdn, "*111#")
    for reply in replies:
        screen = gateway.engine.reply(msisdn, reply)
    return screen.text


def test_several_plans_are_listed_first(gateway: Gateway) -> None:
    gateway.accounts.update_subscriber(EN, {"instalments": PLANS, "balance": 500})
    text = walk(gateway, EN, "9", "2")
    assert text.startswith("Instalments:\n1. Phone: 300.00 RUB due\n2. Watch: 0.00 RUB due")
    assert walk(gateway, EN, "9", "2", "7").startswith("Invalid choice.\nInstalments:")
    assert walk(gateway, EN, "9", "2", "2") == "Watch: the 100.00 RUB plan is paid off."
    detail = walk(gateway, EN, "9", "2", "1")
    assert detail.startswith("Phone: paid 0.00 of 300.00 RUB, 300.00 due. Next 100.00 RUB by")
    assert gateway.engine.reply(EN, "5").text.startswith("Invalid choice.\nPhone:")
    done = gateway.engine.reply(EN, "1")
    assert done.end and done.text == "Instalment 1 of 3 paid: 100.00 RUB. 200.00 RUB due."
    assert gateway.store.subscriber(EN).balance == 400.0  # type: ignore[union-attr]


def test_a_plan_removed_meanwhile(gateway: Gateway) -> None:
    gateway.accounts.update_subscriber(EN, {"instalments": PLANS[:1], "balance": 500})
    walk(gateway, EN, "9", "2")
    gateway.accounts.update_subscriber(EN, {"instalments": []})  # the admin clears it
    screen = gateway.engine.reply(EN, "1")
    assert screen.end and screen.text == "You have no instalment plan."
    assert gateway.store.subscriber(EN).balance == 500.0  # type: ignore[union-attr]


def test_bonus_invalid_choice_keeps_the_points(gateway: Gateway) -> None:
    text = walk(gateway, RU, "7", "1", "9")
    assert text.startswith("Неверный выбор.\nМТС Бонус: 250 баллов.")
    assert gateway.store.subscriber(RU).bonus_points == 250  # type: ignore[union-attr]
    assert gateway.store.bonus_exchanges(RU) == []


def test_bonus_exchange_adds_the_gift(gateway: Gateway) -> None:
    before = gateway.store.subscriber(RU)
    assert before is not None
    screen = walk(gateway, RU, "7", "1", "2")  # 50 minutes for 100 points
    assert screen == "Подарок «50 минут» получен. Списано 100 баллов, осталось 150."
    after = gateway.store.subscriber(RU)
    assert after is not None and after.package_minutes == before.package_minutes + 50
    assert after.bonus_points == 150
    assert [s.text for s in gateway.sms.inbox(RU)][-1].startswith("МТС Бонус: подарок «50 минут»")


def test_spending_with_an_empty_ledger(gateway: Gateway) -> None:
    text = walk(gateway, EN, "9", "1")
    assert text == (
        "Spent since 01.05.2026: calls 0.00, SMS 0.00, data 0.00, subscriptions 0.00. "
        "Total 0.00 RUB."
    )
