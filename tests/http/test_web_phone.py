"""The web phone in a real headless Chromium (SPEC §1: never silently skipped under CI=true)."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.http.conftest import RU, eventually
from ussd.http import HttpServer
from ussd.runtime import Gateway

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "test-output"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 10_000


def _chromium() -> str:
    path = CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")
    if path:
        return path
    message = f"Chromium not found at {CHROMIUM} (install Debian's `chromium`, or `make browser`)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)  # SPEC §1: under CI a missing browser is a failure, not a skip
    pytest.skip(message)


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    executable = _chromium()
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=executable, args=FLAGS)
        try:
            yield chromium
        finally:
            await chromium.close()


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
