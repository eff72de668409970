"""The operations console in a real headless Chromium (README.md: never silently skipped under
CI=true): a harness bind appears, its dialog shows up live, the bind's trace shows the dialog's
PDUs decoded, and the record with its end cause appears when the dialog ends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.browser import OUTPUT, TIMEOUT_MS, gateway_page
from tests.smpp.helpers import ALICE, BOB, bound, server_config, start_server
from ussd.config import Config
from ussd.http import HttpServer, start_http
from ussd.runtime import Gateway
from ussd.smpp.constants import UssdServiceOp
from ussd.smpp.server import SmppServer

pytestmark = pytest.mark.browser


@pytest.fixture
def config() -> Config:
    return server_config()


@pytest.fixture
async def smpp(gateway: Gateway) -> AsyncIterator[SmppServer]:
    await gateway.start()
    srv = await start_server(gateway)
    yield srv
    await srv.stop()
    await gateway.stop()


@pytest.fixture
async def web(smpp: SmppServer) -> AsyncIterator[HttpServer]:
    srv = await start_http(smpp.gateway, "127.0.0.1", 0, smpp=smpp)
    yield srv
    await srv.stop()


@pytest.fixture
async def console(browser: Any, web: HttpServer) -> AsyncIterator[Any]:
    """/console signed in with the admin token; fails on JavaScript errors and on any request
    outside the gateway."""
    ready = "body[data-ready=true][data-updated]"
    async with gateway_page(browser, web.url, "/console#token=change-me", ready, (1400, 1000)) as p:
        assert "token" not in p.url  # taken out of the address bar
        yield p


async def test_a_bind_its_dialog_its_trace_and_its_record(console: Any, smpp: SmppServer) -> None:
    page = console
    assert await page.get_by_test_id("records").is_visible()  # GET /api/v1/dialogs answers
    client = await bound(smpp)
    bind = page.locator("[data-testid=bind][data-system-id=harness]")
    await bind.wait_for()
    assert await bind.get_attribute("data-bind-type") == "transceiver"
    await bind.click()  # follow its trace from now on
    await page.get_by_test_id("trace-of").filter(has_text="harness").wait_for()

    await client.submit(ALICE, "*111#")
    await client.deliver_sm()
    dialog = page.locator(f"[data-testid=dialog][data-msisdn='{ALICE}']")
    await dialog.wait_for()
    assert "111" in (await dialog.text_content() or "")

    # The trace: the dial in, its response and the menu out, decoded.
    screen = page.locator("[data-testid=pdu][data-command=deliver_sm][data-dir=out]").first
    await screen.wait_for()
    row = await screen.text_content() or ""
    assert "ussr_request" in row and f"→ {ALICE}" in row and "session" in row
    dial = page.locator("[data-testid=pdu][data-command=submit_sm][data-dir=in]").first
    assert "pssr_indication" in (await dial.text_content() or "")
    assert '"*111#"' in (await dial.text_content() or "")

    # The subscriber releases: the dialog leaves, its record arrives with the cause.
    await client.submit(ALICE, "", op=UssdServiceOp.RELEASE)
    await (
        page.locator("[data-testid=pdu][data-command=submit_sm]")
        .filter(has_text="0x81 release")
        .wait_for()
    )
    record = page.locator(f"[data-testid=record][data-msisdn='{ALICE}']")
    await record.wait_for()
    assert await record.get_attribute("data-cause") == "user_release"
    assert await record.get_by_test_id("cause").text_content() == "user_release"
    await dialog.wait_for(state="detached")
    await page.get_by_test_id("dialogs-count").filter(has_text="0 open").wait_for()

    # A sample a second: the throughput chart has drawn a line by now, or soon.
    await page.locator("[data-testid=chart-rate] polyline.pdus:not([data-points='0'])").wait_for()
    OUTPUT.mkdir(exist_ok=True)
    await page.screenshot(path=str(OUTPUT / "console.png"), full_page=True)

    # The bind closes: it stays listed as closed, its trace still readable.
    await client.close()
    closed = page.locator("[data-testid=closed-bind]")
    await closed.wait_for()
    await page.get_by_test_id("trace-of").filter(has_text="closed").wait_for()
    await page.screenshot(path=str(OUTPUT / "console-closed.png"), full_page=True)


async def test_a_wrong_token_asks_for_the_right_one(browser: Any, web: HttpServer) -> None:
    context = await browser.new_context()
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        await page.goto(web.url + "/console#token=wrong")
        form = page.get_by_test_id("token-form")
        await form.wait_for()
        assert "401" in (await page.get_by_test_id("token-error").text_content() or "")
        await page.get_by_test_id("token").fill("change-me")
        await page.get_by_test_id("token-submit").click()
        await page.wait_for_selector("body[data-updated]")
        assert await form.is_hidden()
        await page.get_by_test_id("binds").filter(has_text="no SMPP connection").wait_for()
    finally:
        await context.close()


async def test_a_fault_rule_and_the_dialog_it_ended(console: Any, smpp: SmppServer) -> None:
    """How a failing test reads on the console: the rule that fired, and the record it left."""
    page = console
    rule = {"id": "drop-alice", "kind": "ussd_network_error", "match": {"msisdn": ALICE}}
    status, body = await page.evaluate(
        """async (rule) => {
            const r = await fetch("/api/v1/faults", {method: "POST",
                headers: {"Authorization": "Bearer change-me", "Content-Type": "application/json"},
                body: JSON.stringify(rule)});
            return [r.status, await r.json()];
        }""",
        rule,
    )
    assert status == 201, body
    fault = page.locator("[data-testid=fault][data-kind=ussd_network_error]")
    await fault.wait_for()
    assert "drop-alice" in (await fault.text_content() or "")

    client = await bound(smpp)
    await client.submit(ALICE, "*111#")
    record = page.locator(f"[data-testid=record][data-msisdn='{ALICE}']")
    await record.wait_for()
    assert await record.get_attribute("data-cause") == "network_fault"
    assert "drop-alice" in (await record.text_content() or "")  # the detail names the rule
    cells = fault.locator("td")
    await cells.nth(5).filter(has_text="1").wait_for()  # fired once
    OUTPUT.mkdir(exist_ok=True)
    await page.screenshot(path=str(OUTPUT / "console-fault.png"), full_page=True)
    await client.close()


async def test_the_trace_follows_the_newest_bind(console: Any, smpp: SmppServer) -> None:
    page = console
    first = await bound(smpp)
    await page.locator("[data-testid=bind].selected").wait_for()
    first_id = await page.locator("[data-testid=bind].selected").get_attribute("data-bind")
    second = await bound(smpp)
    second_row = page.locator(f"[data-testid=bind][data-bind='{int(first_id or 0) + 1}']")
    await second_row.and_(page.locator(".selected")).wait_for()  # followed, untouched
    await (
        page.get_by_test_id("trace-of")
        .filter(has_text=f"bind {int(first_id or 0) + 1} ")
        .wait_for()
    )
    await second.submit(ALICE, "*100#")
    await page.locator("[data-testid=pdu][data-command=submit_sm]").wait_for()
    # Each PDU once, numbered in order, although the pick and the poll may cross.
    numbers = await page.locator("[data-testid=pdu]").evaluate_all(
        "rows => rows.map(r => Number(r.getAttribute('data-n')))"
    )
    assert numbers == sorted(set(numbers))

    # A bind picked by hand holds the trace; following stops until ticked again.
    await page.locator(f"[data-testid=bind][data-bind='{first_id}']").click()
    assert not await page.get_by_test_id("follow").is_checked()
    third = await bound(smpp)
    await page.locator("[data-testid=bind]").nth(2).wait_for()
    assert await page.get_by_test_id("trace-of").get_attribute("data-bind") == first_id
    for client in (first, second, third):
        await client.close()


async def test_the_records_filter(console: Any, smpp: SmppServer) -> None:
    page = console
    client = await bound(smpp)
    for msisdn in (ALICE, BOB):
        await client.submit(msisdn, "*111#")
        await client.deliver_sm()
        await client.submit(msisdn, "", op=UssdServiceOp.RELEASE)
    records = page.locator("[data-testid=record]")
    await page.locator(f"[data-testid=record][data-msisdn='{BOB}']").wait_for()
    await page.get_by_test_id("filter-msisdn").fill(ALICE)
    await page.get_by_test_id("filter-msisdn").press("Enter")
    await page.get_by_test_id("records-count").filter(has_text="matching").wait_for()
    assert await records.evaluate_all("rows => rows.map(r => r.dataset.msisdn)") == [ALICE]

    await page.get_by_test_id("filter-cause").fill("idle_timeout")
    await page.get_by_test_id("filter-cause").press("Enter")
    await page.get_by_test_id("records").filter(has_text="no record matches").wait_for()
    await page.get_by_test_id("filter-cause").fill("nonsense")
    await page.get_by_test_id("filter-cause").press("Enter")
    error = page.get_by_test_id("records-error")
    await error.filter(has_text="cause").wait_for()  # the gateway's 400 says why
    assert await page.get_by_test_id("status").get_attribute("class") == "status ok"
    await client.close()
