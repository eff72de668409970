"""The web phone in a real headless Chromium (SPEC §1: never silently skipped under CI=true):
USSD on the keypad, several phones, the "My account" app (SPEC §7) and recording (SPEC §8)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from sim import runner
from sim import scenario as sc
from sim.targets import InProcessTarget
from tests.browser import OUTPUT, TIMEOUT_MS
from tests.http.conftest import EN, RU, eventually
from ussd.http import HttpServer
from ussd.runtime import Gateway

pytestmark = pytest.mark.browser


@pytest.fixture
async def page(browser: Any, server: HttpServer) -> AsyncIterator[Any]:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # Only the gateway may be asked for anything: no CDN, fonts or trackers.
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    await page.goto(server.url + "/")
    await page.wait_for_selector("body[data-ready=true]")
    yield page
    await context.close()
    assert not errors, f"JavaScript errors: {errors}"
    local = (server.url, server.url.replace("http://", "ws://", 1))
    foreign = [u for u in requested if not u.startswith(local)]
    assert not foreign, f"requests outside the gateway: {foreign}"


async def _press(phone: Any, keys: str) -> None:
    names = {"*": "star", "#": "hash"}
    for key in keys:
        await phone.get_by_test_id(f"key-{names.get(key, key)}").click()


async def test_set_password_on_the_keypad(page: Any, started: Gateway) -> None:
    phone = page.get_by_test_id("phone").first
    await phone.get_by_test_id("number-select").select_option(RU)
    await page.wait_for_selector(f'[data-testid=phone][data-msisdn="{RU}"][data-online=true]')

    await _press(phone, "*111*17#")
    assert await phone.get_by_test_id("input").text_content() == "*111*17#"
    await phone.get_by_test_id("key-call").click()
    screen = phone.get_by_test_id("screen-text")
    await screen.filter(has_text="Введите новый пароль").wait_for()
    assert await phone.get_attribute("data-state") == "dialog"

    # Letters come from the computer keyboard; Enter is the send key.
    await page.keyboard.type("secret12")
    assert await phone.get_by_test_id("input").text_content() == "secret12"
    await page.keyboard.press("Enter")
    await screen.filter(has_text="Повторите пароль").wait_for()
    await page.keyboard.type("secret12")
    await page.keyboard.press("Enter")
    await screen.filter(has_text="установлен").wait_for()
    assert await phone.get_attribute("data-state") == "ended"

    # The SMS notice arrives in the inbox over the WebSocket, without a reload.
    sms = phone.get_by_test_id("sms")
    await sms.filter(has_text="Пароль от Личного кабинета изменён").wait_for()
    assert await phone.get_by_test_id("sms-count").text_content() == "1"
    assert "secret12" not in (await phone.get_by_test_id("inbox").text_content() or "")
    await phone.locator('[data-testid=sms][data-state="delivered"]').wait_for()

    OUTPUT.mkdir(exist_ok=True)
    await page.screenshot(path=str(OUTPUT / "web-phone.png"), full_page=True)
    assert started.sms.inbox(RU)[0].state.value == "delivered"


async def test_paging_and_end_key(page: Any, started: Gateway) -> None:
    phone = page.get_by_test_id("phone").first
    await phone.get_by_test_id("number-select").select_option(RU)
    await page.wait_for_selector(f'[data-testid=phone][data-msisdn="{RU}"][data-online=true]')
    await phone.click()
    await page.keyboard.type("*111##")
    await page.keyboard.press("Backspace")  # typing mistakes are fixed as on a handset
    await page.keyboard.press("Enter")
    await page.wait_for_selector("[data-testid=phone][data-state=dialog]")
    assert await phone.get_by_test_id("page").text_content() == "1/3"
    await page.keyboard.type("98")
    await page.keyboard.press("Enter")
    await phone.get_by_test_id("page").filter(has_text="2/3").wait_for()
    assert "Остатки пакета" in (await phone.get_by_test_id("screen-text").text_content() or "")

    # Escape is the End key: the display clears and the gateway releases the dialog.
    await page.keyboard.press("Escape")
    await page.wait_for_selector("[data-testid=phone][data-state=idle]")
    await eventually(lambda: started.engine.dialog(RU) is None)


async def test_english_switch(page: Any) -> None:
    await page.get_by_test_id("lang-en").click()
    assert await page.locator("html").get_attribute("lang") == "en"
    assert await page.get_by_test_id("add-phone").text_content() == "Add phone"
    assert await page.get_by_test_id("key-end").get_attribute("aria-label") == "End"
    assert "Dial a USSD code" in (
        await page.get_by_test_id("screen-text").first.text_content() or ""
    )
    await page.reload()
    await page.wait_for_selector("body[data-ready=true]")
    assert await page.locator("html").get_attribute("lang") == "en"  # remembered
    await page.get_by_test_id("lang-ru").click()
    assert await page.get_by_test_id("add-phone").text_content() == "Добавить телефон"


async def test_local_code_and_call_errors(page: Any) -> None:
    phone = page.get_by_test_id("phone").first
    await phone.click()
    await page.keyboard.type("*#06#")
    await page.keyboard.press("Enter")
    await phone.get_by_test_id("screen-text").filter(has_text="IMEI").wait_for()
    await page.keyboard.type("84951234567")
    await page.keyboard.press("Enter")
    await phone.get_by_test_id("screen-text").filter(has_text="звонка").wait_for()


async def test_phones_side_by_side_and_new_number(page: Any, started: Gateway) -> None:
    await page.get_by_test_id("add-phone").click()
    phones = page.get_by_test_id("phone")
    assert await phones.count() == 2
    first, second = phones.nth(0), phones.nth(1)
    assert await first.get_attribute("data-msisdn") != await second.get_attribute("data-msisdn")

    await second.get_by_test_id("add-number").click()
    await second.get_by_test_id("new-number-input").fill("+7 916 555-00-11")
    await second.get_by_test_id("new-number-save").click()
    await page.wait_for_selector('[data-testid=phone][data-msisdn="79165550011"][data-online=true]')
    assert started.store.subscriber("79165550011") is not None
    # The new number is offered on the other phone too.
    assert await first.locator('option[value="79165550011"]').count() == 1

    # An SMS to the second phone lands there only.
    started.sms.send("79165550011", "Привет с сети")
    await second.get_by_test_id("sms").filter(has_text="Привет с сети").wait_for()
    assert await first.get_by_test_id("sms").filter(has_text="Привет с сети").count() == 0
    assert await second.get_by_test_id("sms-indicator").is_visible()


async def _set_password_on(page: Any, phone: Any, msisdn: str, password: str) -> None:
    """`*111*17#` on this (English) phone, typed as a user would (SPEC §3)."""
    await phone.get_by_test_id("number-select").select_option(msisdn)
    await page.wait_for_selector(f'[data-testid=phone][data-msisdn="{msisdn}"][data-online=true]')
    await phone.click()
    screen = phone.get_by_test_id("screen-text")
    await page.keyboard.type("*111*17#")
    await page.keyboard.press("Enter")
    for expected in ("Enter a new personal account password", "Enter the password again"):
        await screen.filter(has_text=expected).wait_for()
        await page.keyboard.type(password)
        await page.keyboard.press("Enter")
    await screen.filter(has_text="has been set").wait_for()


async def test_my_account_app_on_two_phones(page: Any, started: Gateway) -> None:
    await page.get_by_test_id("add-phone").click()
    a, b = page.get_by_test_id("phone").nth(0), page.get_by_test_id("phone").nth(1)
    await a.get_by_test_id("number-select").select_option(RU)
    await _set_password_on(page, b, EN, "bpass123")
    assert started.store.subscriber(EN).password_hash is not None

    # Phone A opens the app: the simulated network vouches for the number, no password.
    await a.get_by_test_id("open-app").click()
    app = a.locator("[data-role=account-app]")
    await app.locator("[data-role=balance]").wait_for()
    assert await a.get_attribute("data-app") == "open"
    assert await app.locator("[data-role=balance]").inner_text() == "120.50 руб."
    remains = await app.locator("[data-role=package]").inner_text()
    assert "300 мин" in remains and "100 SMS" in remains and "5120 МБ" in remains
    assert await app.locator("[data-role=numbers-empty]").is_visible()
    # The app covers the keypad: typing digits does not dial behind it.
    await page.keyboard.type("5")
    assert await a.get_by_test_id("input").text_content() == ""

    form = app.locator("[data-role=add-number]")
    await form.locator("input[name=msisdn]").fill("8 916 111-22-33")
    await form.locator("input[name=password]").fill("bpass123")
    await form.locator("[data-role=add-submit]").click()
    added = app.locator(f'[data-role=number][data-number="{EN}"]')
    await added.wait_for()
    assert await added.get_attribute("data-state") == "active"
    assert "42.00" in await added.inner_text()
    link = started.store.link(EN)
    assert link is not None and link.account == RU and link.flow == "app"
    # Both handsets get their SMS live, each in its own inbox (SPEC §7 app flow).
    await a.get_by_test_id("sms").filter(has_text="привязан к вашему").wait_for()
    await b.get_by_test_id("sms").filter(has_text="linked to the personal account").wait_for()

    OUTPUT.mkdir(exist_ok=True)
    await page.screenshot(
        path=str(OUTPUT / "my-account.png"), full_page=True, animations="disabled"
    )

    # The page's language switch reaches the open app.
    await page.get_by_test_id("lang-en").click()
    await app.locator(".ua-title", has_text="My account").wait_for()
    assert await app.locator("[data-role=balance]").inner_text() == "120.50 RUB"

    # Phone B's own app: it signs out and back in with number + password.
    await b.get_by_test_id("open-app").click()
    app_b = b.locator("[data-role=account-app]")
    await app_b.locator("[data-role=balance]").wait_for()
    assert "+7 916 123-45-67" in await app_b.inner_text()  # linked to A's account
    await app_b.locator("[data-role=logout]").click()
    await app_b.locator("[data-role=via-password]").click()
    sign_in = app_b.locator("[data-role=sign-in]")
    await sign_in.locator("input[name=password]").fill("bpass123")
    await sign_in.locator("[data-role=sign-in-submit]").click()
    await app_b.locator("[data-role=balance]").wait_for()
    assert await app_b.locator("[data-role=balance]").inner_text() == "42.00 RUB"
    assert await app.locator("[data-role=balance]").is_visible()  # A's app is untouched

    # Back to USSD: the back key, or Escape on the active phone.
    await a.locator("[data-role=close]").click()
    await a.get_by_test_id("display").wait_for()
    assert await a.get_attribute("data-app") is None
    assert await a.get_by_test_id("app-screen").is_hidden()
    await b.click(position={"x": 150, "y": 20})
    await page.keyboard.press("Escape")
    await b.get_by_test_id("app-screen").wait_for(state="hidden")


async def test_record_button_downloads_a_scenario_that_replays(page: Any, started: Gateway) -> None:
    phone = page.get_by_test_id("phone").first
    await phone.get_by_test_id("number-select").select_option(RU)
    await page.wait_for_selector(f'[data-testid=phone][data-msisdn="{RU}"][data-online=true]')
    await phone.get_by_test_id("record").click()
    await phone.locator(":scope[data-recording=true]").wait_for()
    assert await phone.get_by_test_id("rec-indicator").is_visible()
    assert await phone.get_by_test_id("record").get_attribute("aria-pressed") == "true"

    await _press(phone, "*100#")
    await phone.get_by_test_id("key-call").click()
    await phone.get_by_test_id("screen-text").filter(has_text="Ваш баланс").wait_for()

    async with page.expect_download() as info:
        await phone.get_by_test_id("record").click()
    download = await info.value
    assert download.suggested_filename.startswith(f"scenario-{RU}-")
    assert download.suggested_filename.endswith(".yaml")
    saved = Path(await download.path())
    text = await asyncio.to_thread(saved.read_text, encoding="utf-8")
    assert await phone.get_by_test_id("rec-indicator").is_hidden()

    (scenario,) = sc.loads(text, "downloaded.yaml")
    assert [s.kind for s in scenario.steps] == ["dial"]
    assert scenario.subscribers[0]["msisdn"] == RU
    result = await runner.run_async(scenario, InProcessTarget())
    assert result.passed, runner.format_failure(result)
