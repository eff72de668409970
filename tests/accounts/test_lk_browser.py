"""The personal-account website at /lk in a real headless Chromium (docs/account.md "Website"):
the SMS password behind a captcha (test mode), the generated-password recommendation and its
replacement, social sign-in through a simulated provider's pages with binding and removal, and
an office link's countdown on the gateway's simulated clock.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from playwright.async_api import expect

from tests.accounts.conftest import ADMIN, EN, OTHER, RU, enable_management, set_password, texts
from tests.browser import OUTPUT, TIMEOUT_MS
from tests.conftest import make_config
from ussd.captcha import TEST_ANSWER
from ussd.config import Config
from ussd.http import start_http
from ussd.runtime import Gateway

pytestmark = pytest.mark.browser


@pytest.fixture
def config() -> Config:
    # Tokens outlive the simulated days the countdown test moves through.
    return make_config(website={"captcha": "test"}, auth={"token_ttl": "5d"})


@pytest.fixture
async def site(gateway: Gateway) -> AsyncIterator[str]:
    await gateway.start()
    srv = await start_http(gateway, "127.0.0.1", 0)
    yield srv.url
    await srv.stop()
    await gateway.stop()


@pytest.fixture
async def open_page(browser: Any, site: str) -> AsyncIterator[Any]:
    context = await browser.new_context(viewport={"width": 1100, "height": 1000})
    errors: list[str] = []
    requested: list[str] = []
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("request", lambda request: requested.append(request.url))

    async def go(path: str = "/lk") -> Any:
        await page.goto(site + path)
        await page.wait_for_selector("body[data-ready=true]")
        return page

    yield go
    await context.close()
    assert not errors, f"JavaScript errors: {errors}"
    foreign = [u for u in requested if not u.startswith((site, "data:"))]
    assert not foreign, f"requests outside the gateway: {foreign}"


async def shot(page: Any, name: str) -> None:
    OUTPUT.mkdir(exist_ok=True)
    await page.screenshot(path=str(OUTPUT / f"lk-{name}.png"), full_page=True)


async def to_mobile_login(page: Any) -> None:
    await page.click("#lk-signin")
    await page.click("#lk-service-mobile")
    await page.wait_for_selector("#lk-login-form")


async def sign_in(page: Any, msisdn: str, password: str) -> None:
    await page.fill("#lk-number", msisdn)
    await page.fill("#lk-password", password)
    await page.click("#lk-login-submit")
    await page.wait_for_selector("#lk-balance")


async def captcha_shown(page: Any, other_than: str | None = None) -> str:
    """The captcha picture's src once it is a PNG (and not `other_than`).

    Playwright's expect, not wait_for_function: the site's Content-Security-Policy forbids
    eval, which wait_for_function's polling needs once its first check comes out false.
    """
    img = page.locator("#lk-captcha-img")
    if other_than is not None:
        await expect(img).not_to_have_attribute("src", other_than, timeout=TIMEOUT_MS)
    await expect(img).to_have_attribute("src", re.compile(r"^data:image/png"), timeout=TIMEOUT_MS)
    src = await img.get_attribute("src")
    assert src is not None
    return str(src)


async def test_sms_password_with_captcha_then_replace_it(gateway: Gateway, open_page: Any) -> None:
    page = await open_page()
    assert await page.inner_text(".lk-brand-title") == "Личный кабинет"
    await to_mobile_login(page)
    await page.click("#lk-sms-link")
    first = await captcha_shown(page)
    assert TEST_ANSWER not in (await page.content()).replace(first or "", "")

    # A wrong answer: a clear error, a new picture, no SMS.
    await page.fill("#lk-sms-number", "8 916 123-45-67")
    await page.fill("#lk-captcha-answer", "99999")
    await page.click("#lk-sms-submit")
    await page.wait_for_selector("#lk-error")
    assert "неверно" in await page.inner_text("#lk-error")
    await captcha_shown(page, other_than=first)
    assert texts(gateway, RU) == []
    await shot(page, "captcha")

    await page.fill("#lk-captcha-answer", TEST_ANSWER)
    await page.click("#lk-sms-submit")
    await page.wait_for_selector("#lk-notice")
    assert "SMS с паролем отправлено на номер +79161234567" in await page.inner_text("#lk-notice")
    (sms,) = texts(gateway, RU)
    password = re.findall(r"[A-Za-z0-9]{8}(?=\.)", sms)[-1]

    # Signed in with the generated password: the page recommends replacing it.
    assert await page.input_value("#lk-number") == RU
    await page.fill("#lk-password", password)
    await page.click("#lk-login-submit")
    await page.wait_for_selector("#lk-recommend")
    assert "Рекомендуем заменить" in await page.inner_text("#lk-recommend")
    assert await page.inner_text("#lk-balance") == "120.50 ₽"
    assert "null" not in await page.inner_text("#lk-main")
    await shot(page, "recommend")

    await page.click("#lk-recommend-action")
    await page.fill("#lk-current", password)
    await page.fill("#lk-new", "mine1234")
    await page.fill("#lk-repeat", "mine1234")
    await page.click("#lk-password-submit")
    await page.wait_for_selector("#lk-notice >> text=Пароль изменён.")
    assert await page.locator("#lk-recommend").count() == 0
    assert not gateway.accounts.password_generated(RU)
    # Still signed in (with a fresh token), and the new password works.
    await page.click("#lk-refresh")
    await page.wait_for_selector("#lk-balance")
    assert gateway.accounts.login(RU, "mine1234")


async def test_sms_password_rate_limit_says_when(gateway: Gateway, open_page: Any) -> None:
    gateway.accounts.send_sms_password(RU)
    gateway.clock.advance(15)  # type: ignore[attr-defined]
    page = await open_page("/lk?lang=en")
    await to_mobile_login(page)
    await page.click("#lk-sms-link")
    await captcha_shown(page)
    await page.fill("#lk-sms-number", RU)
    await page.fill("#lk-captcha-answer", TEST_ANSWER)
    await page.click("#lk-sms-submit")
    await page.wait_for_selector("#lk-error")
    assert await page.inner_text("#lk-error") == ("A password was sent already. Try again in 45 s.")


async def provider_flow(page: Any, provider: str, login: str, password: str = "social") -> None:
    await page.wait_for_selector("body[data-ready=true]")
    assert f"/lk/provider/{provider}" in page.url
    await page.fill("#pv-login", login)
    await page.fill("#pv-password", password)
    await page.click("#pv-submit")
    await page.wait_for_selector("#pv-allow")
    assert login.lower() in await page.inner_text("#pv-consent-text")
    assert "null" not in await page.inner_text("#pv-main")
    await page.click("#pv-allow")
    await page.wait_for_url(re.compile(r"/lk$"))
    await page.wait_for_selector("body[data-ready=true]")


async def test_social_sign_in_binding_and_removal(gateway: Gateway, open_page: Any) -> None:
    set_password(gateway, RU, "secret12")
    page = await open_page()
    await to_mobile_login(page)
    await page.click("#lk-social-vk")
    # The provider's own login page: a wrong provider password is its own error.
    await page.wait_for_selector("#pv-form")
    await page.fill("#pv-login", "ann")
    await page.fill("#pv-password", "nope")
    await page.click("#pv-submit")
    await page.wait_for_selector("#pv-error")
    await shot(page, "provider")
    await provider_flow(page, "vk", "Ann")

    # First time: the site asks for number and password once.
    await page.wait_for_selector("#lk-bind-form")
    assert "ann" in await page.inner_text("#lk-bind-text")
    await page.fill("#lk-bind-number", RU)
    await page.fill("#lk-bind-password", "secret12")
    await page.click("#lk-bind-submit")
    await page.wait_for_selector("#lk-social-list [data-provider=vk]")
    assert gateway.accounts.social_login("vk", "ann")
    await shot(page, "social-bound")

    # Later visits through the provider need no number.
    await page.click("#lk-signout")
    await to_mobile_login(page)
    await page.click("#lk-social-vk")
    await provider_flow(page, "vk", "ann")
    await page.wait_for_selector("#lk-balance")
    assert await page.inner_text("#lk-me") == "+" + RU

    # Removed in settings.
    await page.click("#lk-social-list [data-provider=vk] button")
    await page.wait_for_selector("#lk-notice")
    assert await page.locator("#lk-social-list [data-provider]").count() == 0
    assert gateway.accounts.social_bindings(RU) == []


async def test_bind_a_provider_from_settings(gateway: Gateway, open_page: Any) -> None:
    set_password(gateway, EN, "bpass123")
    page = await open_page("/lk?lang=en")
    await to_mobile_login(page)
    await sign_in(page, EN, "bpass123")
    await page.click("#lk-bind-yandex")
    await provider_flow(page, "yandex", "bob@example.org")
    await page.wait_for_selector("#lk-social-list [data-provider=yandex]")
    assert "Yandex ID account bob@example.org is bound." in await page.inner_text("#lk-notice")


async def test_office_link_counts_down_on_the_gateway_clock(
    gateway: Gateway, open_page: Any, site: str
) -> None:
    set_password(gateway, RU, "secret12")
    set_password(gateway, EN, "bpass123")
    enable_management(gateway, OTHER)
    async with aiohttp.ClientSession(base_url=site, headers=ADMIN) as admin:

        async def post(path: str, body: dict[str, str]) -> None:
            async with admin.post(path, json=body) as r:
                assert r.status in (200, 201), await r.text()

        await post("/api/v1/office/links", {"account": RU, "number": OTHER})
        page = await open_page()
        await to_mobile_login(page)
        await sign_in(page, RU, "secret12")
        row = page.locator(f"#lk-numbers [data-number='{OTHER}']")
        assert await row.get_attribute("data-state") == "pending"
        assert "станет активен через 2 д 0 ч 0 мин" in await row.inner_text()

        # Added with the number's password: active at once.
        await page.fill("#lk-add-number", EN)
        await page.fill("#lk-add-password", "bpass123")
        await page.click("#lk-add-submit")
        await page.wait_for_selector(f"#lk-numbers [data-number='{EN}'][data-state=active]")

        await post("/api/v1/clock/advance", {"by": "1d2h30m"})
        await page.click("#lk-refresh")
        await page.wait_for_selector(f"#lk-numbers [data-number='{OTHER}'] >> text=21 ч 30 мин")
        await shot(page, "countdown")
        await post("/api/v1/clock/advance", {"by": "22h"})
        await page.click("#lk-refresh")
        await page.wait_for_selector(f"#lk-numbers [data-number='{OTHER}'][data-state=active]")

        # Removal.
        await page.click(f"#lk-numbers [data-number='{OTHER}'] button")
        await page.wait_for_selector(f"#lk-notice >> text=Номер +{OTHER} удалён.")
        assert gateway.store.link(OTHER) is None


async def test_consent_denied_and_foreign_returns(gateway: Gateway, open_page: Any) -> None:
    page = await open_page()
    # A return the tab did not start (no stored state) is ignored: no code is traded.
    traded: list[str] = []
    page.on("request", lambda r: traded.append(r.url) if "/social/login" in r.url else None)
    await open_page("/lk?provider=vk&code=stolen&state=forged")
    assert traded == [] and page.url.endswith("/lk")
    # Denied at the provider: back on the site with a notice, nothing bound.
    await page.click("#lk-lang")  # switch to English
    await to_mobile_login(page)
    assert await page.inner_text("#lk-login-submit") == "Sign in"
    await page.click("#lk-social-google")
    await page.wait_for_selector("#pv-form")
    await page.fill("#pv-login", "ann")
    await page.fill("#pv-password", "social")
    await page.click("#pv-submit")
    await page.click("#pv-deny")
    await page.wait_for_url(re.compile(r"/lk$"))
    await page.wait_for_selector("#lk-error")
    assert await page.inner_text("#lk-error") == "Sign-in with Google was cancelled."
    assert traded == []


async def test_binding_an_identity_of_another_account_is_refused(
    gateway: Gateway, open_page: Any
) -> None:
    set_password(gateway, RU, "secret12")
    gateway.accounts.social_bind(EN, "vk", "ann")
    page = await open_page()
    await to_mobile_login(page)
    await sign_in(page, RU, "secret12")
    await page.click("#lk-bind-vk")
    await provider_flow(page, "vk", "ann")
    await page.wait_for_selector("#lk-error")
    assert await page.inner_text("#lk-error") == "Этот аккаунт привязан к другому номеру."
    assert await page.inner_text("#lk-me") == "+" + RU
    # The token the code brought for the other account was given back at once.
    tokens = gateway.store.db.execute(
        "SELECT COUNT(*) FROM auth_tokens WHERE msisdn = ?", (EN,)
    ).fetchone()[0]
    assert tokens == 0
    assert gateway.accounts.social_bindings(RU) == []
