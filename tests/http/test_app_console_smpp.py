"""The web phone's app console with an SMPP application (docs/smpp.md "SMPP applications"):
each deliver_sm and the submit_sm that answered it, in a real headless Chromium."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from bench.smpp_apps import EchoApp
from sim.esme import connect
from tests.http.conftest import RU
from tests.smpp.helpers import start_server
from tests.smpp.test_apps import apps_config
from ussd.config import Config
from ussd.runtime import Gateway

pytestmark = pytest.mark.browser


@pytest.fixture
def config() -> Config:
    return apps_config()


@pytest.fixture
async def echo_app(started: Gateway) -> AsyncIterator[EchoApp]:
    smpp = await start_server(started)
    host, port = smpp.address  # type: ignore[attr-defined]
    app = await connect(EchoApp, host, port)
    await app.bind("shop", "shoppw")
    yield app
    await app.aclose()
    await smpp.stop()


async def test_the_console_shows_an_smpp_app(page: Any, echo_app: EchoApp) -> None:
    phone = page.get_by_test_id("phone").first
    await phone.get_by_test_id("number-select").select_option(RU)
    await page.wait_for_selector(f'[data-testid=phone][data-msisdn="{RU}"][data-online=true]')
    await phone.get_by_test_id("screen").click()
    await page.keyboard.type("*555*4#")
    await page.keyboard.press("Enter")
    await phone.get_by_test_id("screen-text").filter(has_text="Echo: *555*4#").wait_for()
    exchange = phone.locator('[data-testid=app-exchange][data-outcome="continue"]').first
    await exchange.wait_for()
    assert "deliver_sm op 1" in (await exchange.get_by_test_id("app-request").text_content() or "")
    answer = await exchange.get_by_test_id("app-answer").text_content() or ""
    assert "submit_sm op 2" in answer and "Echo: *555*4#" in answer
    assert "smpp:shop · smpp/standard" in (await exchange.text_content() or "")
    assert await exchange.get_by_test_id("app-status").text_content() == "—"
    assert await exchange.locator(".app-status.bad").count() == 0  # answered: not a failure
