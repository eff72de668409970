"""Pushes on the web phone in a real headless Chromium (docs/smpp.md "Pushes"): the display
lights up and waits for the answer, a USSN notice for its acknowledgement."""

from __future__ import annotations

from typing import Any

import pytest

from tests.http.conftest import RU, eventually
from ussd.runtime import Gateway

pytestmark = pytest.mark.browser


async def test_a_push_lights_the_phone_up_and_takes_the_answer(page: Any, started: Gateway) -> None:
    phone = page.get_by_test_id("phone").first
    await phone.get_by_test_id("number-select").select_option(RU)
    await page.wait_for_selector(f'[data-testid=phone][data-msisdn="{RU}"][data-online=true]')

    started.engine.push(RU, "Low balance. 1. Top up", True, "tester", "900")
    screen = phone.get_by_test_id("screen-text")
    await screen.filter(has_text="Low balance").wait_for()
    assert await phone.get_attribute("data-state") == "dialog"
    assert await phone.get_attribute("data-pushed") == "true"
    assert await phone.get_attribute("data-notice") == "false"

    await phone.get_by_test_id("key-1").click()  # a key press: the light goes out
    assert await phone.get_attribute("data-pushed") is None
    await phone.get_by_test_id("key-call").click()
    await page.wait_for_selector("[data-testid=phone][data-state=ended]")
    await eventually(lambda: started.engine.dialog(RU) is None)


async def test_a_notice_is_acknowledged_with_the_call_key(page: Any, started: Gateway) -> None:
    phone = page.get_by_test_id("phone").first
    await phone.get_by_test_id("number-select").select_option(RU)
    await page.wait_for_selector(f'[data-testid=phone][data-msisdn="{RU}"][data-online=true]')

    started.engine.push(RU, "Maintenance tonight", False, "tester", "Operator")
    await phone.get_by_test_id("screen-text").filter(has_text="Maintenance").wait_for()
    assert await phone.get_attribute("data-notice") == "true"
    assert await phone.get_by_test_id("hint").text_content() == "OK"
    await phone.get_by_test_id("key-call").click()
    await page.wait_for_selector("[data-testid=phone][data-state=ended]")
    await eventually(lambda: started.engine.dialog(RU) is None)
