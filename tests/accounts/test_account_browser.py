"""The "My account" widget in a real headless Chromium (docs/account.md): sign in on the simulated
network or with a password, see balance and linked numbers, add a number.

The widget is served by a test-only page that mounts it; the gateway app is the real one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

import pytest
from aiohttp import web

from tests.accounts.conftest import EN, OTHER, RU, enable_management, set_password
from tests.browser import OUTPUT, TIMEOUT_MS
from ussd.http import make_app
from ussd.runtime import Gateway

pytestmark = pytest.mark.browser


PAGE = """<!doctype html>
<html lang="ru"><head><meta charset="utf-8"><title>account widget</title>
<link rel="stylesheet" href="/test/account.css"></head>
<body style="background:#1d2433;padding:24px">
<div id="app"></div>
<script src="/test/account.js"></script>
<script>
  const q = new URLSearchParams(location.search);
  window.app = window.UssdAccountApp.mount(document.getElementById("app"), q.get("msisdn"), {
    lang: q.get("lang") || "ru",
    network: q.get("network") !== "0",
  });
  document.body.dataset.ready = "true";
</script>
</body></html>
"""


async def _page(request: web.Request) -> web.Response:
    return web.Response(text=PAGE, content_type="text/html")


def _asset(name: str, content_type: str) -> Any:
    async def handler(request: web.Request) -> web.Response:
        body = resources.files("ussd.http").joinpath("static", name).read_bytes()
        return web.Response(body=body, content_type=content_type, charset="utf-8")

    return handler


@pytest.fixture
async def site(gateway: Gateway) -> AsyncIterator[str]:
    """The real app plus a test page that mounts the widget, on 127.0.0.1:0."""
    await gateway.start()
    app = make_app(gateway)
    app.router.add_get("/test/account", _page)
    app.router.add_get("/test/account.js", _asset("account.js", "text/javascript"))
    app.router.add_get("/test/account.css", _asset("account.css", "text/css"))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    tcp = web.TCPSite(runner, "127.0.0.1", 0)
    await tcp.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()
    await gateway.stop()


@pytest.fixture
async def open_page(browser: Any, site: str) -> AsyncIterator[Any]:
    context = await browser.new_context(viewport={"width": 480, "height": 900})
    errors: list[str] = []
    requested: list[str] = []

    async def go(query: str) -> Any:
        page = await context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("request", lambda request: requested.append(request.url))
        await page.goto(f"{site}/test/account?{query}")
        await page.wait_for_selector("body[data-ready=true]")
        return page

    yield go
    await context.close()
    assert not errors, f"JavaScript errors: {errors}"
    foreign = [u for u in requested if not u.startswith(site)]
    assert not foreign, f"requests outside the gateway: {foreign}"


async def test_add_a_number_on_the_mobile_network(gateway: Gateway, open_page: Any) -> None:
    set_password(gateway, EN, "bpass123")
    enable_management(gateway, OTHER)
    gateway.accounts.office_link(RU, OTHER)  # pending: shown with its activation time
    page = await open_page(f"msisdn={RU}")
    app = page.locator("[data-role=account-app]")
    assert await app.locator("[data-role=via-network]").get_attribute("aria-pressed") == "true"
    await app.locator("[data-role=sign-in-submit]").click()
    await app.locator("[data-role=balance]").wait_for()
    assert await app.locator("[data-role=balance]").inner_text() == "120.50 руб."
    assert "300 мин" in await app.locator("[data-role=package]").inner_text()
    pending = app.locator(f"[data-number='{OTHER}']")
    assert await pending.get_attribute("data-state") == "pending"
    assert "30.05.2026" in await pending.inner_text()

    form = app.locator("[data-role=add-number]")
    await form.locator("input[name=msisdn]").fill("8 916 111-22-33")
    await form.locator("input[name=password]").fill("wrong")
    await form.locator("[data-role=add-submit]").click()
    message = app.locator("[data-role=message]")
    await message.wait_for()
    assert await message.inner_text() == "Неверный номер или пароль."
    assert gateway.store.link(EN) is None

    form = app.locator("[data-role=add-number]")  # re-rendered
    await form.locator("input[name=msisdn]").fill("8 916 111-22-33")
    await form.locator("input[name=password]").fill("bpass123")
    await form.locator("[data-role=add-submit]").click()
    added = app.locator(f"[data-number='{EN}']")
    await added.wait_for()
    assert await added.get_attribute("data-state") == "active"
    assert "42.00" in await added.inner_text()
    assert await message.inner_text() == f"Номер {EN} добавлен."
    link = gateway.store.link(EN)
    assert link is not None and link.account == RU and link.flow == "app"
    OUTPUT.mkdir(exist_ok=True)
    await page.screenshot(path=str(OUTPUT / "account-app.png"), full_page=True)


async def test_password_sign_in_in_english(gateway: Gateway, open_page: Any) -> None:
    set_password(gateway, EN, "bpass123")
    page = await open_page(f"msisdn={EN}&lang=en&network=0")
    app = page.locator("[data-role=account-app]")
    form = app.locator("[data-role=sign-in]")
    await form.locator("input[name=password]").fill("nope")
    await form.locator("[data-role=sign-in-submit]").click()
    await app.locator("[data-role=message]").wait_for()
    assert await app.locator("[data-role=message]").inner_text() == "Wrong number or password."
    form = app.locator("[data-role=sign-in]")
    await form.locator("input[name=password]").fill("bpass123")
    await form.locator("[data-role=sign-in-submit]").click()
    await app.locator("[data-role=balance]").wait_for()
    assert await app.locator("[data-role=balance]").inner_text() == "42.00 RUB"
    assert await app.locator("[data-role=numbers-empty]").inner_text() == "No linked numbers"
    await app.locator("[data-role=logout]").click()
    await app.locator("[data-role=sign-in]").wait_for()


async def test_sms_password_rate_limit_message(gateway: Gateway, open_page: Any) -> None:
    page = await open_page(f"msisdn={RU}&network=0")
    app = page.locator("[data-role=account-app]")
    await app.locator("[data-role=sms-password]").click()
    message = app.locator("[data-role=message]")
    await message.wait_for()
    assert await message.inner_text() == "Пароль отправлен в SMS."
    assert len(gateway.sms.inbox(RU)) == 1
    await app.locator("[data-role=sms-password]").click()
    await page.wait_for_function(
        "document.querySelector('[data-role=message]')?.textContent.includes('60')"
    )
    assert "Повторите через 60 с." in await message.inner_text()
