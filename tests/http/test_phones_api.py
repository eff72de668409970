"""The phones API on a real socket: dialogs, local codes and every kind of bad request."""

from __future__ import annotations

import json

import pytest

from tests.http.conftest import EN, RU, Client, gateway_with
from ussd.http import start_http
from ussd.http.phones import imei
from ussd.runtime import Gateway


def _luhn_ok(number: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


async def test_healthz(http: Client) -> None:
    assert await http.get("/healthz") == (200, {"status": "ok"})


async def test_password_dialog_end_to_end(http: Client) -> None:
    status, screen = await http.dial(RU, "*111*17#")
    assert status == 200
    # A password prompt says so (`secret`): handsets mask the reply, recordings omit it.
    assert set(screen) == {"session", "text", "end", "page", "pages", "secret"}
    assert screen["secret"] is True
    assert screen["end"] is False and "парол" in screen["text"].lower()
    session = screen["session"]

    status, screen = await http.reply(RU, "ab")  # too short: re-prompt with the reason
    assert (status, screen["end"], screen["session"]) == (200, False, session)

    assert (await http.reply(RU, "secret12"))[1]["end"] is False
    status, screen = await http.reply(RU, "secret12")
    assert status == 200 and screen["end"] is True

    status, inbox = await http.get(f"/api/v1/phones/{RU}/sms")
    assert status == 200
    assert [s["recipient"] for s in inbox["sms"]] == [RU]
    assert "парол" in inbox["sms"][0]["text"].lower()
    assert "secret12" not in inbox["sms"][0]["text"]  # docs/services.md: never the password


@pytest.mark.parametrize("spelling", ["89161234567", "+79161234567", "+7%20916%20123-45-67"])
async def test_msisdn_spellings_are_one_phone(http: Client, spelling: str) -> None:
    status, screen = await http.dial(spelling, "*111*17#")
    assert status == 200 and screen["end"] is False
    # The same dialog answers under the canonical number.
    status, screen = await http.reply(RU, "secret12")
    assert status == 200 and screen["end"] is False


@pytest.mark.parametrize("bad", ["abc", "12", "+", "7916123456789012345"])
async def test_invalid_msisdn_is_400(http: Client, bad: str) -> None:
    status, body = await http.dial(bad, "*100#")
    assert status == 400
    assert body["error"]["code"] == "bad_msisdn"


async def test_english_subscriber_gets_english(http: Client) -> None:
    _, screen = await http.dial(EN, "*111*17#")
    assert "password" in screen["text"].lower()


async def test_imei_is_local_and_valid(http: Client) -> None:
    status, body = await http.dial(RU, "*#06#")
    assert status == 200
    assert body["local"] is True and body["session"] is None and body["end"] is True
    number = body["text"].split()[-1]
    assert number == imei(RU) and len(number) == 15 and _luhn_ok(number)
    # Stable per handset, different between handsets.
    assert imei(RU) == imei(RU) != imei(EN)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("**04*1234*5678*5678#", "ПИН-код изменён"),
        ("**042*1234*5678*5678#", "ПИН2-код изменён"),
        ("**04*1234*5678*5679#", "ПИН-коды не совпадают"),
        ("**04*1234*56*56#", "от 4 до 8 цифр"),
        ("**05*12345678*5678*5678#", "ПИН-код разблокирован"),
        ("**052*12345678*5678*5678#", "ПИН2-код разблокирован"),
        ("**05*123*5678*5678#", "PUK"),
        ("*04#", "Неверный MMI-код"),
    ],
)
async def test_pin_codes_are_answered_by_the_handset(
    http: Client, started: Gateway, text: str, expected: str
) -> None:
    seen: list[object] = []
    started.engine.subscribe(seen.append)
    status, body = await http.dial(RU, text)
    assert status == 200 and body["local"] is True
    assert expected in body["text"]
    assert seen == []  # never reached the network (docs/grammar.md)


async def test_pin_answer_in_english(http: Client) -> None:
    _, body = await http.dial(EN, "**04*1234*5678*5678#")
    assert body["text"] == "PIN changed"


@pytest.mark.parametrize("text", ["84951234567", "+79161112233", "12"])
async def test_calls_are_not_ussd(http: Client, text: str) -> None:
    status, body = await http.dial(RU, text)
    assert status == 400
    assert body["error"]["code"] == "not_ussd"


@pytest.mark.parametrize("text", ["", "*111*17#extra", "*123#345", "*43#79161234567"])
async def test_not_a_dial_string(http: Client, text: str) -> None:
    status, body = await http.dial(RU, text)
    assert status == 400
    assert body["error"]["code"] == "bad_dial_string"
    assert body["error"]["message"]


async def test_unknown_code_and_ss_are_final_screens(http: Client) -> None:
    _, screen = await http.dial(RU, "*999#")
    assert screen["end"] is True
    _, screen = await http.dial(RU, "*#21#")
    assert screen["end"] is True


async def test_reply_without_dialog_is_409(http: Client) -> None:
    status, body = await http.reply(RU, "1")
    assert status == 409
    assert body["error"]["code"] == "no_dialog"


async def test_release(http: Client) -> None:
    path = f"/api/v1/phones/{RU}/release"
    assert await http.post(path) == (200, {"released": False})
    await http.dial(RU, "*111*17#")
    assert await http.post(path, {}) == (200, {"released": True})
    assert (await http.reply(RU, "secret12"))[0] == 409


async def test_new_dial_replaces_open_dialog(http: Client) -> None:
    _, first = await http.dial(RU, "*111*17#")
    _, second = await http.dial(RU, "*111*17#")
    assert first["session"] != second["session"]


async def test_timeout_ends_dialog(http: Client, started: Gateway) -> None:
    await http.dial(RU, "*111*17#")
    started.advance(started.config.ussd.reply_timeout + 1)
    assert (await http.reply(RU, "secret12"))[0] == 409


# -- bad requests -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", "bad_json"),
        (b"\xff\xfe", "bad_json"),
        (b"[1, 2]", "bad_json"),
        (b'"*100#"', "bad_json"),
        (b"{}", "missing_field"),
        (b'{"txt": "*100#"}', "missing_field"),
        (b'{"text": 100}', "bad_field"),
        (b'{"text": null}', "bad_field"),
        (b'{"text": ["*100#"]}', "bad_field"),
        (json.dumps({"text": "1" * 183}).encode(), "bad_field"),
    ],
)
@pytest.mark.parametrize("action", ["dial", "reply"])
async def test_bad_bodies_are_400(http: Client, action: str, body: bytes, code: str) -> None:
    status, answer = await http.post(
        f"/api/v1/phones/{RU}/{action}", data=body, headers={"Content-Type": "application/json"}
    )
    assert status == 400
    assert answer["error"]["code"] == code


async def test_empty_body_is_missing_text(http: Client) -> None:
    status, answer = await http.post(f"/api/v1/phones/{RU}/dial", data=b"")
    assert status == 400
    assert answer["error"]["code"] == "missing_field"


async def test_wrong_content_type_is_415(http: Client) -> None:
    status, answer = await http.post(
        f"/api/v1/phones/{RU}/dial", data=b"text=*100#", headers={"Content-Type": "text/plain"}
    )
    assert status == 415
    assert answer["error"]["code"] == "unsupported_media_type"


@pytest.mark.parametrize("chunked", [False, True])
async def test_huge_body_is_413(http: Client, chunked: bool) -> None:
    huge = json.dumps({"text": "*100#", "pad": "x" * 200_000}).encode()

    async def stream():  # no Content-Length: the limit must hold while reading too
        for i in range(0, len(huge), 8192):
            yield huge[i : i + 8192]

    status, answer = await http.post(
        f"/api/v1/phones/{RU}/dial",
        data=stream() if chunked else huge,
        headers={"Content-Type": "application/json"},
    )
    assert status == 413
    assert answer["error"]["code"] == "body_too_large"


async def test_wrong_method_is_405_json(http: Client) -> None:
    async with http.session.get(f"/api/v1/phones/{RU}/dial") as r:
        assert r.status == 405
        assert "POST" in r.headers["Allow"]
        assert (await r.json())["error"]["code"] == "method_not_allowed"


async def test_unknown_route_is_404_json(http: Client) -> None:
    status, body = await http.get("/api/v1/nothing-here")
    assert status == 404 and body["error"]["code"] == "not_found"
    status, body = await http.get("/static/../config.yaml")
    assert status == 404
    status, body = await http.get("/static/secret.txt")
    assert status == 404 and body["error"]["code"] == "not_found"


async def test_unexpected_exception_is_500_without_traceback(
    http: Client, started: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(msisdn: str, text: str) -> None:
        raise RuntimeError("internal detail that must not leak")

    monkeypatch.setattr(started.engine, "handle_dial", broken)  # what the API calls
    async with http.session.post(f"/api/v1/phones/{RU}/dial", json={"text": "*100#"}) as r:
        assert r.status == 500
        raw = await r.text()
    assert json.loads(raw) == {"error": {"code": "internal", "message": "internal server error"}}
    assert "Traceback" not in raw and "internal detail" not in raw
    assert (await http.get("/healthz"))[0] == 200  # and the server carries on


# -- the number list and auto-provisioning --------------------------------------------------


async def test_list_and_add_phones(http: Client) -> None:
    status, body = await http.get("/api/v1/phones")
    assert status == 200 and body["operator"] == "MTS"
    assert {p["msisdn"] for p in body["phones"]} == {RU, EN}

    status, body = await http.post("/api/v1/phones", {"msisdn": "+7 (916) 555-00-11"})
    assert (status, body["msisdn"]) == (201, "79165550011")
    assert body["language"] == "ru"
    assert (await http.post("/api/v1/phones", {"msisdn": "89165550011"}))[0] == 200
    _, body = await http.get("/api/v1/phones")
    assert "79165550011" in {p["msisdn"] for p in body["phones"]}

    status, body = await http.post("/api/v1/phones", {"msisdn": "not a number"})
    assert (status, body["error"]["code"]) == (400, "bad_msisdn")
    status, body = await http.post("/api/v1/phones", {})
    assert (status, body["error"]["code"]) == (400, "missing_field")


async def test_first_contact_provisions(http: Client) -> None:
    status, _ = await http.dial("79160000001", "*100#")
    assert status == 200
    _, body = await http.get("/api/v1/phones")
    assert "79160000001" in {p["msisdn"] for p in body["phones"]}


async def test_unknown_number_without_auto_provision() -> None:
    gw = await gateway_with(subscribers={"auto_provision": False})
    srv = await start_http(gw, "127.0.0.1", 0)
    try:
        import aiohttp

        async with aiohttp.ClientSession(base_url=srv.url) as session:
            http = Client(session)
            for action in ("dial", "reply", "release"):
                status, body = await http.post(
                    f"/api/v1/phones/79160000001/{action}", {"text": "*100#"}
                )
                assert (status, body["error"]["code"]) == (404, "unknown_msisdn"), action
            for action in ("sms", "events"):
                status, body = await http.get(f"/api/v1/phones/79160000001/{action}")
                assert (status, body["error"]["code"]) == (404, "unknown_msisdn"), action
            status, body = await http.post("/api/v1/phones", {"msisdn": "79160000001"})
            assert (status, body["error"]["code"]) == (403, "provisioning_disabled")
            # Seeded numbers still work.
            assert (await http.dial(RU, "*100#"))[0] == 200
    finally:
        await srv.stop()
        await gw.stop()


# -- metrics ------------------------------------------------------------------------------


async def test_metrics_count_dialogs_and_sms(http: Client, started: Gateway) -> None:
    await http.dial(RU, "*111*17#")
    await http.reply(RU, "secret12")
    await http.reply(RU, "secret12")
    await http.dial(EN, "*111*17#")  # left open
    started.metrics.smpp_pdu("submit_sm", "ESME_ROK")  # what the SMPP transport reports
    started.metrics.bind_opened("transceiver")

    async with http.session.get("/metrics") as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain")
        text = await r.text()
    lines = set(text.splitlines())
    assert "ussd_dialogs_started_total 2.0" in lines
    assert 'ussd_dialogs_ended_total{outcome="completed"} 1.0' in lines
    assert "ussd_dialogs_open 1.0" in lines
    assert 'ussd_sms_total{event="queued"} 1.0' in lines
    assert 'ussd_smpp_pdus_total{command="submit_sm",status="ESME_ROK"} 1.0' in lines
    assert 'ussd_smpp_binds{bind_type="transceiver"} 1.0' in lines
    assert (
        'ussd_http_requests_total{route="/api/v1/phones/{msisdn}/dial",status="200"} 2.0' in lines
    )


async def test_metrics_registries_are_per_gateway(http: Client) -> None:
    other = await gateway_with()
    try:
        await http.dial(RU, "*100#")
        assert b"ussd_dialogs_started_total 0.0" in other.metrics.render()
    finally:
        await other.stop()
