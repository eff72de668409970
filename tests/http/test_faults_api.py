"""Fault rules over HTTP (`/api/v1/faults`, docs/network.md "Faults") and what the web phone's
side of the phones API sees of them: the fault pushed on the events socket, the SMS never."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType

from tests.browser import OUTPUT
from tests.http.conftest import EN, RU, Client
from ussd import faults
from ussd.runtime import Gateway

ADMIN = {"Authorization": "Bearer change-me"}


async def call(http: Client, method: str, path: str, body: Any = None, **kw: Any) -> Any:
    headers = kw.pop("headers", ADMIN)
    async with http.session.request(method, path, json=body, headers=headers, **kw) as r:
        data = await r.json() if r.content_type == "application/json" else None
        return r.status, data


async def _next(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    msg = await ws.receive(timeout=5)
    assert msg.type is WSMsgType.TEXT, msg
    data: dict[str, Any] = msg.json()
    return data


async def test_the_token_guards_every_route(http: Client) -> None:
    for method, path in [
        ("GET", "/api/v1/faults"),
        ("POST", "/api/v1/faults"),
        ("PUT", "/api/v1/faults"),
        ("DELETE", "/api/v1/faults"),
        ("DELETE", "/api/v1/faults/f1"),
    ]:
        status, body = await call(http, method, path, {"kind": "sms_lost"}, headers={})
        assert (status, body["error"]["code"]) == (401, "unauthorized"), (method, path)
        bad = {"Authorization": "Bearer nope"}
        status, body = await call(http, method, path, {"kind": "sms_lost"}, headers=bad)
        assert (status, body["error"]["code"]) == (401, "invalid_token"), (method, path)


async def test_add_list_remove(http: Client, started: Gateway) -> None:
    assert await call(http, "GET", "/api/v1/faults") == (
        200,
        {"seed": 0, "rules": [], "injected": []},
    )
    status, rule = await call(
        http, "POST", "/api/v1/faults", {"kind": "sms_lost", "match": {"msisdn": "+7916*"}}
    )
    assert status == 201
    assert rule == {"id": "f1", "kind": "sms_lost", "match": {"msisdn": "7916*"}}
    started.sms.send(RU, "gone")
    status, body = await call(http, "GET", "/api/v1/faults")
    assert body["rules"] == [{**rule, "seen": 1, "fired": 1}]
    assert body["injected"] == [{"rule": "f1", "kind": "sms_lost", "at": "sms", "msisdn": RU}]
    assert (await call(http, "DELETE", "/api/v1/faults/f1")) == (204, None)
    status, body = await call(http, "DELETE", "/api/v1/faults/f1")
    assert (status, body["error"]["code"]) == (404, "unknown_rule")


async def test_bad_rules_and_conflicts(http: Client) -> None:
    for body, message in [
        ({"kind": "volcano"}, "kind: expected one of"),
        ({"kind": "sms_delayed"}, "delay: required"),
        ({"kind": "sms_lost", "match": {"probability": 2}}, "match.probability"),
        ({"kind": "smpp_throttle", "rate": "fast"}, "rate:"),
        ([1, 2], "must be a JSON object"),
    ]:
        status, got = await call(http, "POST", "/api/v1/faults", body)
        assert status == 400, body
        assert got["error"]["code"] in ("bad_field", "bad_json"), got
        assert message in got["error"]["message"], got
    async with http.session.post("/api/v1/faults", data=b"{", headers=ADMIN) as r:
        assert r.status in (400, 415)
    status, _ = await call(http, "POST", "/api/v1/faults", {"id": "x", "kind": "sms_lost"})
    assert status == 201
    status, got = await call(http, "POST", "/api/v1/faults", {"id": "x", "kind": "sms_lost"})
    assert (status, got["error"]["code"]) == (409, "rule_exists")
    for _ in range(faults.MAX_RULES - 1):
        assert (await call(http, "POST", "/api/v1/faults", {"kind": "sms_lost"}))[0] == 201
    status, got = await call(http, "POST", "/api/v1/faults", {"kind": "sms_lost"})
    assert (status, got["error"]["code"]) == (409, "too_many_rules")
    status, got = await call(http, "DELETE", "/api/v1/faults")
    assert (status, got) == (200, {"removed": faults.MAX_RULES})


async def test_put_replaces_the_set_and_its_seed(http: Client, started: Gateway) -> None:
    rules = [{"kind": "sms_lost", "match": {"probability": 0.5}}]

    async def pattern() -> list[bool]:
        status, body = await call(http, "PUT", "/api/v1/faults", {"seed": 42, "rules": rules})
        assert status == 200 and body["seed"] == 42 and body["rules"][0]["fired"] == 0
        return [started.sms.send(EN, "x").id == 0 for _ in range(24)]

    first = await pattern()
    assert any(first) and not all(first)
    assert await pattern() == first  # the same seed and rules: the same SMS lost
    for body, key in [
        ({"seed": -1}, "seed"),
        ({"seed": "1"}, "seed"),
        ({"rules": {}}, "rules"),
        ({"rules": [{"kind": "sms_lost", "times": 0}]}, "rules[0].times"),
        ({"seeds": 1}, "seeds"),
    ]:
        status, got = await call(http, "PUT", "/api/v1/faults", body)
        assert (status, got["error"]["code"]) == (400, "bad_field"), body
        assert got["error"]["message"].startswith(key), got


async def test_the_web_phone_sees_the_fault_and_never_the_lost_sms(
    http: Client, started: Gateway
) -> None:
    ws = await http.session.ws_connect(f"/api/v1/phones/{RU}/events")
    assert (await _next(ws))["type"] == "ready"
    await call(http, "POST", "/api/v1/faults", {"kind": "sms_lost", "times": 1})
    status, sms = await call(http, "POST", "/api/v1/sms", {"to": RU, "text": "lost one"})
    assert status == 201 and sms["id"] == 0 and sms["state"] == "expired"
    assert await _next(ws) == {"type": "fault", "kind": "sms_lost", "rule": "f1", "at": "sms"}
    await call(http, "POST", "/api/v1/sms", {"to": RU, "text": "second"})
    arrived = await _next(ws)
    assert arrived["type"] == "sms" and arrived["text"] == "second"
    status, inbox = await http.get(f"/api/v1/phones/{RU}/sms")
    assert [m["text"] for m in inbox["sms"]] == ["second"]
    await ws.close()


async def test_a_network_error_reaches_the_phone_and_metrics(http: Client) -> None:
    rule = {"kind": "ussd_network_error", "at": "reply", "match": {"code": "*111#"}}
    await call(http, "POST", "/api/v1/faults", rule)
    status, first = await http.dial(EN, "*111#")
    assert status == 200 and not first["end"]
    status, screen = await http.reply(EN, "1")
    assert status == 200 and screen["end"]
    assert screen["text"].startswith("Network error.")
    status, text = await http.get("/metrics")
    assert 'ussd_faults_injected_total{kind="ussd_network_error"} 1.0' in text
    assert 'ussd_dialogs_ended_total{outcome="network_fault"} 1.0' in text


@pytest.mark.browser
async def test_the_web_phone_shows_a_lost_sms_and_a_network_error(
    page: Any, started: Gateway
) -> None:
    phone = page.get_by_test_id("phone").first
    await phone.get_by_test_id("number-select").select_option(RU)
    await page.wait_for_selector(f'[data-testid=phone][data-msisdn="{RU}"][data-online=true]')
    mark = phone.get_by_test_id("fault-indicator")
    assert await mark.is_hidden()
    started.faults.add_raw({"kind": "sms_lost", "times": 1})
    started.sms.send(RU, "never seen")
    await page.wait_for_selector("[data-testid=fault-indicator][data-kind=sms_lost]")
    assert await mark.get_attribute("title") == "sms_lost (f1, sms)"
    assert "never seen" not in (await phone.get_by_test_id("inbox").text_content() or "")

    started.faults.add_raw({"kind": "ussd_network_error", "match": {"code": "*100#"}})
    await phone.get_by_test_id("screen-text").click()
    await page.keyboard.type("*100#")
    await page.keyboard.press("Enter")
    screen = phone.get_by_test_id("screen-text")
    await screen.filter(has_text="Ошибка сети. Запрос не выполнен").wait_for()
    await page.wait_for_selector("[data-testid=fault-indicator][data-kind=ussd_network_error]")
    OUTPUT.mkdir(exist_ok=True)
    await page.screenshot(path=str(OUTPUT / "web-phone-fault.png"), full_page=True)


async def test_a_dropped_dialog_over_the_phones_api(http: Client, started: Gateway) -> None:
    await call(http, "POST", "/api/v1/faults", {"kind": "dialog_dropped", "at": "reply"})
    ws = await http.session.ws_connect(f"/api/v1/phones/{EN}/events")
    assert (await _next(ws))["type"] == "ready"
    status, first = await http.dial(EN, "*111#")
    assert status == 200 and not first["end"]
    assert (await _next(ws))["type"] == "screen"
    status, again = await http.reply(EN, "1")
    assert status == 200 and again == first  # the answer is lost: the handset keeps its screen
    assert await _next(ws) == {
        "type": "fault",
        "kind": "dialog_dropped",
        "rule": "f1",
        "at": "reply",
    }
    started.advance(started.config.ussd.reply_timeout)
    end = await _next(ws)
    assert end["type"] == "end" and end["outcome"] == "network_fault"
    assert end["screen"]["text"] == "The session timed out."
    await ws.close()
