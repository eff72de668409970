"""The website's per-client limits in a real headless Chromium (docs/account.md "Website"):
the page says when the next captcha or provider sign-in may come, on the gateway's clock."""

from __future__ import annotations

from typing import Any

import pytest

from tests.accounts.test_lk_browser import (  # noqa: F401
    captcha_shown,
    open_page,
    site,
    to_mobile_login,
)
from tests.conftest import make_config
from ussd.config import Config
from ussd.runtime import Gateway

pytestmark = pytest.mark.browser


@pytest.fixture
def config() -> Config:
    return make_config(
        website={"captcha": "test", "captchas_per_minute": 2, "provider_logins_per_minute": 1}
    )


async def test_too_many_captchas_says_when_the_next_comes(
    gateway: Gateway,
    open_page: Any,  # noqa: F811
) -> None:
    page = await open_page()
    await to_mobile_login(page)
    await page.click("#lk-sms-link")
    await captcha_shown(page)
    await page.click("#lk-captcha-new")  # the second of two a minute
    await page.wait_for_selector("#lk-captcha-img")
    await page.click("#lk-captcha-new")  # the third: refused for 30 s
    await page.wait_for_selector("#lk-error")
    assert (
        await page.inner_text("#lk-error") == "Слишком много картинок подряд. Новая — через 30 с."
    )
    gateway.advance(30)
    await page.click("#lk-captcha-new")
    await captcha_shown(page)
    assert await page.locator("#lk-error").count() == 0


async def test_too_many_provider_sign_ins_says_when(
    gateway: Gateway,
    open_page: Any,  # noqa: F811
) -> None:
    page = await open_page("/lk?lang=en")
    await to_mobile_login(page)
    await page.click("#lk-social-vk")
    await page.wait_for_selector("#pv-form")
    for expected in ("", "Too many sign-in attempts. Try again in 60 s."):
        await page.fill("#pv-login", "ann")
        await page.fill("#pv-password", "nope")
        await page.click("#pv-submit")
        await page.wait_for_selector("#pv-error")
        if expected:
            await page.wait_for_selector(f"#pv-error >> text={expected}")
    gateway.advance(60)
    await page.fill("#pv-password", "social")
    await page.click("#pv-submit")
    await page.wait_for_selector("#pv-allow")
