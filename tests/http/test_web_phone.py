"""The web phone in a real headless Chromium (README.md: never silently skipped under CI=true):
USSD on the keypad, several phones, the "My account" app and recording."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from sim import runner
from sim import scenario as sc
from sim.targets import InProcessTarget
from tests.browser import OUTPUT
from tests.http.conftest import EN, RU, eventually
from ussd.events import Screen, ScreenShown
from ussd.records import Query
from ussd.runtime import Gateway

pytestmark = pytest.mark.browser


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

    # Letters come from the computer keyboard; Enter is the send key. A password prompt
    # (`"secret": true`) shows dots, as a password field does.
    await page.keyboard.type("secret12")
    assert await phone.get_by_test_id("input").text_content() == "•" * 8
    assert await phone.get_attribute("data-secret") == "true"
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
    await phone.get_by_test_id("screen").click()  # the display: a click on a key would type
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
    # Its record says the web phone dialled it and the End key ended it (docs/operations.md).
    (row,) = started.records.query(Query(msisdn=RU))
    assert (row.record.via, row.record.cause, row.record.steps) == ("web", "user_release", 2)


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
    await phone.get_by_test_id("screen").click()  # the display: a click on a key would type
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
    """`*111*17#` on this (English) phone, typed as a user would (docs/services.md)."""
    await phone.get_by_test_id("number-select").select_option(msisdn)
    await page.wait_for_selector(f'[data-testid=phone][data-msisdn="{msisdn}"][data-online=true]')
    await phone.get_by_test_id("screen").click()  # the display: a click on a key would type
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
    # Both handsets get their SMS live, each in its own inbox (docs/account.md app flow).
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


# -- hardening: what a new user hit -------------------------------------------------------------


async def _use(page: Any, msisdn: str = RU) -> Any:
    phone = page.get_by_test_id("phone").first
    await phone.get_by_test_id("number-select").select_option(msisdn)
    await page.wait_for_selector(f'[data-testid=phone][data-msisdn="{msisdn}"][data-online=true]')
    return phone


async def _in_view(container: Any, item: Any) -> bool:
    """True when `item` is inside `container`'s visible box and is what is drawn there."""
    box = await container.bounding_box()
    rect = await item.bounding_box()
    assert box is not None and rect is not None
    inside = (
        rect["y"] >= box["y"] - 1 and rect["y"] + rect["height"] <= box["y"] + box["height"] + 1
    )
    x, y = rect["x"] + rect["width"] / 2, rect["y"] + rect["height"] / 2
    hit: bool = await item.evaluate(
        "(el, [x, y]) => { const top = document.elementFromPoint(x, y);"
        " return top !== null && (el === top || el.contains(top) || top.contains(el)); }",
        [x, y],
    )
    return inside and hit


async def test_the_newest_sms_is_in_view(page: Any, started: Gateway) -> None:
    for i in range(12):
        started.sms.send(RU, f"Сообщение номер {i}")
    phone = await _use(page)
    sms_list = phone.get_by_test_id("sms-list")
    await phone.get_by_test_id("sms-count").filter(has_text="12").wait_for()
    # The inbox opens on the newest SMS, not the oldest.
    newest = phone.get_by_test_id("sms").filter(has_text="Сообщение номер 11")
    assert await _in_view(sms_list, newest)
    assert not await _in_view(sms_list, phone.get_by_test_id("sms").filter(has_text="номер 0"))
    # Scrolled down to old ones, a new SMS still comes into view when it arrives.
    await sms_list.evaluate("el => { el.scrollTop = el.scrollHeight; }")
    started.sms.send(RU, "Самое новое")
    fresh = phone.get_by_test_id("sms").filter(has_text="Самое новое")
    await fresh.wait_for()
    await eventually(lambda: _in_view(sms_list, fresh))


def _full_screen() -> str:
    lines = [f"{i}. Option number {i}" for i in range(1, 10)]
    text = "Pick one:\n" + "\n".join(lines)
    text += "\n" + "x" * (182 - len(text) - 1)
    assert len(text) == 182
    return text


async def _prompt(page: Any, started: Gateway, text: str) -> Any:
    """A dialog screen pushed as another transport would (the phone shows it as is)."""
    phone = await _use(page)
    started.engine.bus.emit(ScreenShown(RU, Screen("s-test", text, False)))
    await phone.locator(":scope[data-state=dialog]").wait_for()
    await phone.get_by_test_id("display").click()
    return phone


async def test_the_reply_stays_visible_under_a_full_screen(page: Any, started: Gateway) -> None:
    phone = await _prompt(page, started, _full_screen())
    await page.keyboard.type("my answer")
    assert await phone.get_by_test_id("input").text_content() == "my answer"
    display = phone.get_by_test_id("display")
    assert await _in_view(display, phone.get_by_test_id("input"))
    # A reply as long as a screen: its end (and the cursor) is still in view.
    await page.keyboard.type(" " + "z" * 150)
    assert await _in_view(display, phone.locator(".cursor"))
    assert await _in_view(display, phone.get_by_test_id("screen"))


async def test_a_length_hint_instead_of_silent_truncation(page: Any, started: Gateway) -> None:
    phone = await _prompt(page, started, "Your text:")
    length = phone.get_by_test_id("length")
    assert await length.is_hidden()
    await page.keyboard.type("a" * 180)
    assert await length.text_content() == "180/182"
    assert await length.get_attribute("class") == "length"
    await page.keyboard.type("€a")  # the euro sign takes two septets (TS 23.038 extension)
    assert await length.text_content() == "182/182"
    assert await length.is_visible()
    assert "full" in (await length.get_attribute("class") or "")
    assert len(await phone.get_by_test_id("input").text_content() or "") == 181
    await page.keyboard.press("Backspace")
    await page.keyboard.press("Backspace")
    assert await length.text_content() == "179/182"
    assert "full" not in (await length.get_attribute("class") or "")
    # Cyrillic needs UCS-2: 80 characters.
    await page.keyboard.press("Escape")
    phone = await _prompt(page, started, "Ваш ответ:")
    await page.keyboard.type("да")
    assert await length.text_content() == "2/80"


async def test_paste_and_input_methods_at_a_prompt(page: Any, started: Gateway) -> None:
    phone = await _prompt(page, started, "Your text:")
    entered = phone.get_by_test_id("input")
    # An input method composes first (nothing is typed yet), then commits its text.
    cdp = await page.context.new_cdp_session(page)
    await cdp.send(
        "Input.imeSetComposition", {"text": "при", "selectionStart": 3, "selectionEnd": 3}
    )
    assert await entered.text_content() == ""
    await cdp.send("Input.insertText", {"text": "привет"})
    await entered.filter(has_text="привет").wait_for()
    assert await entered.text_content() == "привет"
    # Paste (Ctrl+V) types the clipboard's text; line breaks become spaces.
    await page.evaluate(
        """() => { const data = new DataTransfer(); data.setData("text/plain", " мир\\n42");
        document.activeElement.dispatchEvent(new ClipboardEvent("paste",
          {clipboardData: data, bubbles: true, cancelable: true})); }"""
    )
    assert await entered.text_content() == "привет мир 42"
    # At the idle screen a pasted dial string keeps its dialling characters only, and
    # full-width digits from an input method are digits.
    await page.keyboard.press("Escape")
    await page.keyboard.insert_text("＊１００＃")
    assert await entered.text_content() == "*100#"
    await page.keyboard.press("Enter")
    await phone.get_by_test_id("screen-text").filter(has_text="Ваш баланс").wait_for()


async def test_add_phone_is_disabled_at_the_maximum(page: Any) -> None:
    add = page.get_by_test_id("add-phone")
    for _ in range(5):
        assert await add.is_enabled()
        await add.click()
    assert await page.get_by_test_id("phone").count() == 6
    assert await add.is_disabled()
    assert await add.get_attribute("title") == "Не больше 6 телефонов"
    await page.get_by_test_id("close-phone").first.click()
    assert await page.get_by_test_id("phone").count() == 5
    assert await add.is_enabled()


async def test_switching_language_rerenders_everything(page: Any, started: Gateway) -> None:
    phone = await _use(page)
    started.sms.send(RU, "Привет")
    sms = phone.locator('[data-testid=sms][data-state="delivered"]')
    await sms.wait_for()
    assert "доставлено" in (await sms.text_content() or "")
    await phone.get_by_test_id("display").click()
    await page.keyboard.type("84951234567")
    await page.keyboard.press("Enter")
    screen = phone.get_by_test_id("screen-text")
    await screen.filter(has_text="Это номер для звонка").wait_for()
    await phone.get_by_test_id("add-number").click()
    await phone.get_by_test_id("new-number-input").fill("12")
    await phone.get_by_test_id("new-number-save").click()
    error = phone.get_by_test_id("new-number-error")
    await error.filter(has_text="Неверный номер").wait_for()

    # The app's own result message (wrong password for the number to add).
    await phone.get_by_test_id("open-app").click()
    app = phone.locator("[data-role=account-app]")
    form = app.locator("[data-role=add-number]")
    await form.locator("input[name=msisdn]").fill(EN)
    await form.locator("input[name=password]").fill("wrong1")
    await form.locator("[data-role=add-submit]").click()
    message = app.locator("[data-role=message]")
    await message.filter(has_text="Неверный номер или пароль").wait_for()

    await page.get_by_test_id("lang-en").click()
    assert "That is a number to call" in (await screen.text_content() or "")
    assert "delivered" in (await sms.text_content() or "")
    assert await error.text_content() == "Invalid number"
    assert await phone.get_by_test_id("hint").text_content() == "OK"
    assert await message.text_content() == "Wrong number or password."


async def test_zero_after_a_message_returns_to_its_menu_page(page: Any) -> None:
    phone = await _use(page)
    await phone.get_by_test_id("display").click()
    pager = phone.get_by_test_id("page")
    screen = phone.get_by_test_id("screen-text")
    for keys, shown in (("*111#", "1/3"), ("98", "2/3"), ("6", "1/2")):
        await page.keyboard.type(keys)
        await page.keyboard.press("Enter")
        await pager.filter(has_text=shown).wait_for()
    # Last payments, newest first; the message's own navigation line is whole on its page.
    text = await screen.text_content() or ""
    assert text.index("2026-11-01") < text.index("2026-10-01")
    await page.keyboard.type("98")
    await page.keyboard.press("Enter")
    await pager.filter(has_text="2/2").wait_for()
    assert await screen.text_content() == "0 Назад 00 Главное меню"
    await page.keyboard.type("0")
    await page.keyboard.press("Enter")
    await pager.filter(has_text="1/2").wait_for()
    await page.keyboard.type("0")
    await page.keyboard.press("Enter")
    await pager.filter(has_text="2/3").wait_for()  # the menu page "6" was chosen on
    assert "6. Последние платежи" in (await screen.text_content() or "")


async def test_my_account_lists_payments_newest_first(page: Any, started: Gateway) -> None:
    started.store.update_subscriber(
        RU,
        payments=[
            {"date": "2026-09-15", "amount": 100.0},
            {"date": "2026-11-01", "amount": 500.0},
            {"date": "2026-10-01", "amount": 300.0},
        ],
    )
    phone = await _use(page)
    await phone.get_by_test_id("open-app").click()
    app = phone.locator("[data-role=account-app]")
    await app.locator("[data-role=payments]").wait_for()
    dates = await app.locator("[data-role=payment]").evaluate_all(
        "items => items.map(li => li.dataset.date)"
    )
    assert dates == ["2026-11-01", "2026-10-01", "2026-09-15"]
    first = await app.locator("[data-role=payment]").first.inner_text()
    assert "+500.00 руб." in first


async def test_the_same_screen_again_keeps_the_reply_being_typed(
    page: Any, started: Gateway
) -> None:
    # The HTTP answer and the WebSocket both bring a screen; whichever comes second must not
    # wipe what the user has typed in between.
    phone = await _prompt(page, started, "Your text:")
    await page.keyboard.type("abc")
    started.engine.bus.emit(ScreenShown(RU, Screen("s-test", "Your text:", False)))
    started.sms.send(RU, "after the screen")  # the socket keeps order: the screen came first
    await phone.get_by_test_id("sms").filter(has_text="after the screen").wait_for()
    assert await phone.get_by_test_id("input").text_content() == "abc"
    # A different screen is a new prompt: the line starts empty.
    started.engine.bus.emit(ScreenShown(RU, Screen("s-test", "Another question:", False)))
    await phone.get_by_test_id("screen-text").filter(has_text="Another question").wait_for()
    assert await phone.get_by_test_id("input").text_content() == ""
