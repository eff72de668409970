"""Supplementary services over HTTP: the `ss` object of `GET /api/v1/subscribers/{msisdn}` and
the operator's `PATCH /api/v1/subscribers/{msisdn}/ss` (docs/network.md, docs/openapi.yaml)."""

from __future__ import annotations

from typing import Any

from tests.http.conftest import RU, Client

ADMIN = {"Authorization": "Bearer change-me"}


async def _ss(http: Client, msisdn: str = RU) -> Any:
    async with http.session.get(f"/api/v1/subscribers/{msisdn}", headers=ADMIN) as r:
        assert r.status == 200
        return (await r.json())["ss"]


async def _patch(http: Client, body: Any, msisdn: str = RU) -> tuple[int, Any]:
    url = f"/api/v1/subscribers/{msisdn}/ss"
    async with http.session.patch(url, json=body, headers=ADMIN) as r:
        return r.status, await r.json()


async def test_the_admin_api_shows_what_the_subscriber_dialled(http: Client) -> None:
    assert await _ss(http) == {
        "forwarding": [],
        "call_waiting": [],
        "barring": [],
        "clip": "provisioned",
        "clir": "temporary_allowed",
        "barring_password": {"changed": False, "failures": 0, "blocked": False},
    }
    for text in ("**61*+79160000000*11*15#", "*43*11#", "*331*0000*16#", "**03**0000*1357*1357#"):
        status, body = await http.dial(RU, text)
        assert status == 200 and body["end"], body
    status, body = await http.dial(RU, "*33*9999#")
    ss = await _ss(http)
    assert ss["forwarding"] == [
        {
            "code": "61",
            "basic": "telephony",
            "active": True,
            "number": "+79160000000",
            "no_reply_time": 15,
        }
    ]
    assert ss["call_waiting"] == ["telephony"]
    assert ss["barring"] == [{"code": "331", "basic": "sms"}]
    assert ss["barring_password"] == {"changed": True, "failures": 1, "blocked": False}
    assert "1357" not in str(ss) and "9999" not in str(ss)


async def test_only_the_operator_unblocks_the_barring_password(http: Client) -> None:
    for _ in range(3):
        await http.dial(RU, "*33*9999#")
    assert (await _ss(http))["barring_password"]["blocked"] is True
    status, body = await http.dial(RU, "*33*0000#")
    assert "заблокирован" in body["text"]
    status, body = await _patch(http, {"barring_password": "reset", "clir": "permanent"})
    assert status == 200, body
    assert body["barring_password"] == {"changed": False, "failures": 0, "blocked": False}
    assert body["clir"] == "permanent"
    status, body = await http.dial(RU, "*33*0000#")
    assert body["text"] == "Запрет всех исходящих: услуга включена."
    status, body = await http.dial(RU, "*#31#")
    assert body["text"] == "Скрытие номера (CLIR): постоянно, номер скрыт."


async def test_bad_operator_changes_are_refused_and_change_nothing(http: Client) -> None:
    for body in ({"barring_password": "1234"}, {"clir": "maybe"}, {"pin": "0000"}):
        status, answer = await _patch(http, body)
        assert status == 400 and answer["error"]["code"] == "bad_field", answer
    assert (await _ss(http))["clir"] == "temporary_allowed"
    status, answer = await _patch(http, {"clir": "permanent"}, msisdn="79990000000")
    assert status == 404 and answer["error"]["code"] == "unknown_msisdn"
    async with http.session.patch(f"/api/v1/subscribers/{RU}/ss", json={}) as r:
        assert r.status == 401


async def test_the_phone_sees_its_network_settings(http: Client) -> None:
    await http.dial(RU, "**21*+79160000000*11#")
    status, body = await http.get(f"/api/v1/phones/{RU}/ss")
    assert status == 200
    assert body == await _ss(http)
    assert body["forwarding"][0]["number"] == "+79160000000"
    status, body = await http.get("/api/v1/phones/79990000000/ss")
    assert status == 404 and body["error"]["code"] == "unknown_msisdn"
    status, body = await http.get("/api/v1/phones/12/ss")
    assert status == 400 and body["error"]["code"] == "bad_msisdn"
