""" "Мой МТС" in a real headless Chromium (docs/account.md): switch numbers, pay an instalment,
exchange points, spending by period, services on/off, "Не помню пароль".

The widget is mounted by the test page of test_account_browser.py; the gateway app is real.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.accounts.conftest import EN, RU, set_password
from tests.accounts.test_account_browser import open_page, site  # noqa: F401 (fixtures)
from tests.browser import OUTPUT
from ussd.runtime import Gateway

pytestmark = pytest.mark.browser

# The simulated clock of the fixtures starts at 2026-05-28.
CHARGES = [
    {"date": "2026-05-03", "category": "calls", "amount": 12.5},
    {"date": "2026-05-10", "category": "subscriptions", "amount": 99, "description": "Музыка"},
    {"date": "2026-04-30", "category": "sms", "amount": 5},
]
PLAN = {"item": "Смартфон", "total": 150, "months": 3, "first_due": "2026-05-15", "paid": 1}


async def signed_in(open_page: Any, msisdn: str = RU, lang: str = "ru") -> Any:  # noqa: F811
    page = await open_page(f"msisdn={msisdn}&lang={lang}")
    app = page.locator("[data-role=account-app]")
    await app.locator("[data-role=sign-in-submit]").click()
    await app.locator("[data-role=balance]").wait_for()
    return page, app


async def message(app: Any) -> str:
    box = app.locator("[data-role=message]")
    await box.wait_for()
    return str(await box.inner_text())


async def test_switch_between_linked_numbers(gateway: Gateway, open_page: Any) -> None:  # noqa: F811
    set_password(gateway, EN, "linkme1")
    gateway.accounts.app_link(RU, EN, "linkme1")
    page, app = await signed_in(open_page)
    assert await app.get_attribute("data-current") == RU
    await app.locator("[data-role=current-number]").click()
    picker = app.locator("[data-role=number-picker]")
    assert await picker.locator("[data-role=pick-number]").count() == 2
    await picker.locator(f"[data-number='{EN}']").click()
    await page.wait_for_function(
        f"document.querySelector('[data-role=account-app]').dataset.current === '{EN}'"
    )
    assert await app.locator("[data-role=balance]").inner_text() == "42.00 руб."
    assert await app.locator("[data-role=add-number]").count() == 0  # only the holder's page
    # "+": back to the own number with the add form focused.
    await app.locator("[data-role=current-number]").click()
    await app.locator("[data-role=pick-add]").click()
    assert await app.get_attribute("data-current") == RU
    focused = await page.evaluate(
        "document.activeElement.closest('[data-role=add-number]') !== null"
    )
    assert focused
    await page.screenshot(path=str(OUTPUT / "app-switch-number.png"))


async def test_pay_an_instalment(gateway: Gateway, open_page: Any) -> None:  # noqa: F811
    gateway.accounts.update_subscriber(RU, {"instalments": [PLAN]})
    page, app = await signed_in(open_page)
    await app.locator("[data-role=tab-instalments]").click()
    plan = app.locator("[data-role=plan]")
    await plan.wait_for()
    assert await plan.locator("[data-role=plan-due]").inner_text() == "100.00 руб."
    await plan.locator("[data-role=pay-next]").click()
    assert await message(app) == "Платёж 2 оплачен: 50.00 руб."
    assert await app.locator("[data-role=plan-due]").inner_text() == "50.00 руб."
    assert gateway.store.subscriber(RU).balance == 70.5  # type: ignore[union-attr]
    await page.screenshot(path=str(OUTPUT / "app-instalments.png"))
    gateway.accounts.update_subscriber(RU, {"balance": 10})
    await app.locator("[data-role=pay-next]").click()
    assert await message(app) == "Недостаточно средств на балансе."
    assert gateway.store.instalment_plans(RU)[0].next.seq == 3  # type: ignore[union-attr]


async def test_exchange_bonus_points(gateway: Gateway, open_page: Any) -> None:  # noqa: F811
    page, app = await signed_in(open_page, EN, "en")
    gateway.accounts.update_subscriber(EN, {"bonus_points": 200})
    await app.locator("[data-role=tab-bonus]").click()
    await app.locator("[data-role=gifts]").wait_for()
    assert await app.locator("[data-role=points]").inner_text() == "200 points"
    assert await app.locator("[data-gift=balance_100] [data-role=exchange]").is_disabled()
    await app.locator("[data-gift=internet_1gb] [data-role=exchange]").click()
    assert await message(app) == 'Gift "1 GB of mobile data" received.'
    assert await app.locator("[data-role=points]").inner_text() == "50 points"
    history = app.locator("[data-role=bonus-history]")
    assert "1 GB of mobile data" in await history.inner_text()
    sub = gateway.store.subscriber(EN)
    assert sub is not None and sub.bonus_points == 50 and sub.package_mb == 1024 + 1024
    assert any("1 GB of mobile data" in s.text for s in gateway.sms.inbox(EN))
    await page.screenshot(path=str(OUTPUT / "app-bonus.png"))


async def test_spending_by_period(gateway: Gateway, open_page: Any) -> None:  # noqa: F811
    gateway.accounts.update_subscriber(RU, {"charges": CHARGES})
    page, app = await signed_in(open_page)
    await app.locator("[data-role=tab-spending]").click()
    total = app.locator("[data-role=spending-total]")
    await total.wait_for()
    assert await total.inner_text() == "111.50 руб."  # May: calls and the subscription
    calls = app.locator("[data-category=calls]")
    assert await calls.get_attribute("data-amount") == "12.5"
    form = app.locator("[data-role=period]")
    await form.locator("input[name=from]").fill("2026-04-01")
    await form.locator("input[name=to]").fill("2026-04-30")
    await form.locator("[data-role=period-submit]").click()
    await page.wait_for_function(
        "document.querySelector('[data-role=spending-total]').textContent === '5.00 руб.'"
    )
    assert await app.locator("[data-category=sms]").get_attribute("data-amount") == "5"
    assert await app.locator("[data-role=charge]").count() == 1
    await page.screenshot(path=str(OUTPUT / "app-spending.png"))


async def test_services_on_and_off(gateway: Gateway, open_page: Any) -> None:  # noqa: F811
    _, app = await signed_in(open_page)
    toggle = app.locator("[data-service=voicemail] [data-role=service-toggle]")
    assert await toggle.get_attribute("aria-checked") == "false"
    await toggle.click()
    assert await message(app) == "Услуга «Голосовая почта» включена."
    toggle = app.locator("[data-service=voicemail] [data-role=service-toggle]")
    assert await toggle.get_attribute("aria-checked") == "true"
    assert gateway.store.subscriber(RU).services["voicemail"] is True  # type: ignore[union-attr]


async def test_forgot_password_on_the_network(gateway: Gateway, open_page: Any) -> None:  # noqa: F811
    set_password(gateway, RU, "oldpass1")
    page = await open_page(f"msisdn={RU}")
    app = page.locator("[data-role=account-app]")
    await app.locator("[data-role=forgot]").click()
    form = app.locator("[data-role=forgot-form]")
    assert "*111*17#" in await form.locator("[data-role=forgot-ussd]").inner_text()
    await form.locator("input[name=password]").fill("newpass2")
    await form.locator("[data-role=forgot-submit]").click()
    assert await message(app) == "Пароль установлен."
    assert await app.locator("[data-role=balance]").inner_text() == "120.50 руб."
    gateway.accounts.login(RU, "newpass2")  # raises when the password was not set
