"""The web phone's app console in a real headless Chromium (docs/apps.md): each request to an
external app and its answer, status and latency, beside the phone."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from examples import at_app
from tests.browser import OUTPUT
from tests.conftest import make_config
from tests.http.conftest import RU
from ussd import config as config_mod

pytestmark = pytest.mark.browser


@pytest.fixture
async def app_server() -> AsyncIterator[TestServer]:
    server = TestServer(at_app.make_app(), host="127.0.0.1", port=0)
    await server.start_server()
    yield server
    await server.close()


@pytest.fixture
def config(app_server: TestServer) -> config_mod.Config:
    """The shipped config with the example shop on *384# and a broken app (404) on *385#."""
    routes = {**make_config().ussd.routes, "*384#": "app:shop", "*385#": "app:broken"}
    return make_config(
        apps={
            "shop": {
                "url": str(app_server.make_url("/ussd")),
                "end_url": str(app_server.make_url("/ussd/end")),
            },
            "broken": {"url": str(app_server.make_url("/nowhere"))},
        },
        ussd={"routes": routes},
    )


async def _dial(page: Any, phone: Any, code: str) -> None:
    await page.keyboard.type(code)
    await page.keyboard.press("Enter")


async def test_the_console_shows_each_exchange_beside_the_phone(page: Any) -> None:
    phone = page.get_by_test_id("phone").first
    console = phone.get_by_test_id("app-console")
    await phone.get_by_test_id("number-select").select_option(RU)
    await page.wait_for_selector(f'[data-testid=phone][data-msisdn="{RU}"][data-online=true]')
    assert await console.is_hidden()  # no app asked yet: nothing to show

    await phone.get_by_test_id("screen").click()
    await _dial(page, phone, "*384#")
    screen = phone.get_by_test_id("screen-text")
    await screen.filter(has_text="Welcome to the shop").wait_for()
    exchanges = phone.get_by_test_id("app-exchange")
    await exchanges.first.wait_for()
    assert await console.is_visible()
    first = exchanges.nth(0)
    assert await first.get_attribute("data-outcome") == "continue"
    assert await first.get_by_test_id("app-status").text_content() == "200"
    request = await first.get_by_test_id("app-request").text_content() or ""
    # AT's form, a field a line and decoded: the first request's text is empty.
    assert "serviceCode = *384#" in request and "phoneNumber = +79161234567" in request
    assert request.splitlines()[-1] == "text = "
    answer = await first.get_by_test_id("app-answer").text_content() or ""
    assert answer.startswith("CON Welcome to the shop")
    assert (await first.get_by_test_id("app-latency").text_content() or "").endswith(" ms")

    # Beside the phone, not under it.
    device = await phone.locator(".device").bounding_box()
    box = await console.bounding_box()
    assert device is not None and box is not None
    assert box["x"] >= device["x"] + device["width"]

    await page.keyboard.type("1")
    await page.keyboard.press("Enter")
    await screen.filter(has_text="Your balance is 100.00").wait_for()
    await phone.locator('[data-testid=app-exchange][data-outcome="end"]').wait_for()
    second = exchanges.nth(1)
    assert "text = 1" in (await second.get_by_test_id("app-request").text_content() or "")
    # The end-of-session notification to end_url shows too, as AT's own logs list it.
    notice = phone.locator('[data-testid=app-exchange][data-outcome="notified"]')
    await notice.wait_for()
    assert "status = Success" in (await notice.get_by_test_id("app-request").text_content() or "")
    assert "/ussd/end" in (await notice.text_content() or "")
    assert await phone.get_by_test_id("app-count").text_content() == "3"

    OUTPUT.mkdir(exist_ok=True)
    await page.screenshot(path=str(OUTPUT / "web-phone-app-console.png"), full_page=True)

    # A broken app: its status and the outcome show in the console, the error on the phone.
    await page.keyboard.press("Escape")
    await phone.get_by_test_id("screen").click()
    await _dial(page, phone, "*385#")
    bad = phone.locator('[data-testid=app-exchange][data-outcome="error"]')
    await bad.wait_for()
    assert await bad.get_by_test_id("app-status").text_content() == "404"
    assert await bad.locator(".app-status.bad").count() == 1
    assert await phone.get_attribute("data-state") == "ended"

    # Clearing empties the log and leaves the console open; EN relabels it.
    await phone.get_by_test_id("app-clear").click()
    assert await exchanges.count() == 0
    assert await phone.get_by_test_id("app-count").text_content() == "0"
    assert await console.is_visible()
    await page.get_by_test_id("lang-en").click()
    assert "App console" in (await console.text_content() or "")
