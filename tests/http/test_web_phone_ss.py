"""The web phone's "Network" line (docs/network.md) in a real headless Chromium."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser import OUTPUT
from tests.http.conftest import RU
from ussd.runtime import Gateway

pytestmark = pytest.mark.browser


async def test_the_network_line_follows_ss_requests(page: Any, started: Gateway) -> None:
    phone = page.get_by_test_id("phone").first
    await phone.get_by_test_id("number-select").select_option(RU)
    await page.wait_for_selector(f'[data-testid=phone][data-msisdn="{RU}"][data-online=true]')
    line = phone.get_by_test_id("ss-status")
    await line.filter(has_text="Сеть: переадресация, ожидание и запреты выключены").wait_for()

    await phone.get_by_test_id("screen-text").click()
    await page.keyboard.type("**21*+79160000000#")
    await page.keyboard.press("Enter")
    screen = phone.get_by_test_id("screen-text")
    await screen.filter(has_text="включена на +79160000000").wait_for()
    await line.filter(has_text="Сеть: CF 21→+79160000000").wait_for()

    await page.keyboard.press("Escape")
    await page.keyboard.type("*33*1111#")
    await page.keyboard.press("Enter")
    await screen.filter(has_text="Осталось попыток: 2").wait_for()
    for _ in range(2):
        await page.keyboard.press("Escape")
        await page.keyboard.type("*33*1111#")
        await page.keyboard.press("Enter")
    await line.filter(has_text="пароль запрета заблокирован").wait_for()
    assert "1111" not in (await line.text_content() or "")

    await page.get_by_test_id("lang-en").click()
    await line.filter(has_text="Network: CF 21→+79160000000 · barring password blocked").wait_for()
    OUTPUT.mkdir(exist_ok=True)
    await page.screenshot(path=str(OUTPUT / "web-phone-ss.png"), full_page=True)
