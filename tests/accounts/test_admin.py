"""The admin API over real HTTP (docs/phones.md): token, subscribers, clock, office links, sessions,
SMS injection, and the one-account-per-number rule under concurrent requests."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from tests.accounts.conftest import (
    ADMIN,
    DAY,
    EN,
    MINUTE,
    OTHER,
    RU,
    call,
    enable_management,
    serving,
    texts,
)
from tests.conftest import make_config
from ussd.clock import RealClock
from ussd.runtime import Gateway

ROUTES = [
    ("GET", "/api/v1/subscribers", None),
    ("POST", "/api/v1/subscribers", {"msisdn": OTHER}),
    ("GET", f"/api/v1/subscribers/{RU}", None),
    ("PATCH", f"/api/v1/subscribers/{RU}", {"balance": 1}),
    ("GET", "/api/v1/clock", None),
    ("POST", "/api/v1/clock/advance", {"by": "1s"}),
    ("POST", "/api/v1/office/links", {"account": RU, "number": EN}),
    ("GET", "/api/v1/sessions", None),
    ("POST", "/api/v1/sms", {"to": RU, "text": "hi"}),
]


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
@pytest.mark.parametrize(
    ("headers", "code", "says"),
    [
        ({}, "unauthorized", "required"),
        ({"Authorization": "Basic change-me"}, "unauthorized", "required"),
        ({"Authorization": "change-me"}, "unauthorized", "required"),
        ({"Authorization": "Bearer "}, "unauthorized", "required"),
        # A token was sent and is wrong: "required" would send the user looking for a header.
        ({"Authorization": "Bearer wrong"}, "invalid_token", "invalid"),
        ({"Authorization": "Bearer change-m"}, "invalid_token", "invalid"),
        ({"Authorization": "bearer change-me-too"}, "invalid_token", "invalid"),
    ],
)
async def test_admin_token_required(
    gateway: Gateway,
    http: aiohttp.ClientSession,
    method: str,
    path: str,
    body: Any,
    headers: dict[str, str],
    code: str,
    says: str,
) -> None:
    before = gateway.clock.now()
    status, data, hdrs = await call(http, method, path, body, headers=headers)
    assert status == 401
    assert data["error"]["code"] == code
    assert says in data["error"]["message"]
    assert "WWW-Authenticate" in hdrs
    assert gateway.store.subscriber(OTHER) is None and gateway.clock.now() == before
    assert gateway.sms.inbox(RU) == []


# -- subscribers --------------------------------------------------------------------------------


async def test_list_subscribers(http: aiohttp.ClientSession) -> None:
    status, body, _ = await call(http, "GET", "/api/v1/subscribers", headers=ADMIN)
    assert status == 200
    assert [s["msisdn"] for s in body["subscribers"]] == [EN, RU]
    assert all("password_hash" not in s for s in body["subscribers"])


async def test_create_subscriber(http: aiohttp.ClientSession) -> None:
    new = {"msisdn": "+7 916 000-00-01", "balance": 5, "language": "en", "password": "abcd"}
    status, body, _ = await call(http, "POST", "/api/v1/subscribers", new, headers=ADMIN)
    assert status == 201, body
    assert body["msisdn"] == OTHER and body["balance"] == 5.0 and body["has_password"]
    status, body, _ = await call(http, "POST", "/api/v1/subscribers", new, headers=ADMIN)
    assert status == 409 and body["error"]["code"] == "exists"
    login = {"msisdn": OTHER, "password": "abcd"}
    status, _, _ = await call(http, "POST", "/api/v1/auth/login", login)
    assert status == 200


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "missing_field"),
        ({"msisdn": "x"}, "bad_msisdn"),
        ({"msisdn": OTHER, "balance": "lots"}, "bad_field"),
        ({"msisdn": OTHER, "colour": "red"}, "unknown_field"),
    ],
)
async def test_create_subscriber_bad_request(
    http: aiohttp.ClientSession, body: Any, code: str
) -> None:
    status, data, _ = await call(http, "POST", "/api/v1/subscribers", body, headers=ADMIN)
    assert status == 400 and data["error"]["code"] == code


async def test_get_subscriber(gateway: Gateway, http: aiohttp.ClientSession) -> None:
    status, body, _ = await call(http, "GET", f"/api/v1/subscribers/+{RU}", headers=ADMIN)
    assert status == 200
    assert body["msisdn"] == RU and body["language"] == "ru" and "password_hash" not in body
    status, listed, _ = await call(http, "GET", "/api/v1/subscribers", headers=ADMIN)
    # The same record as in the list, plus the supplementary services (docs/network.md).
    assert body.pop("ss")["barring_password"]["blocked"] is False
    assert body in listed["subscribers"]
    status, body, _ = await call(http, "GET", f"/api/v1/subscribers/{OTHER}", headers=ADMIN)
    assert status == 404 and body["error"]["code"] == "unknown_msisdn"
    assert gateway.store.subscriber(OTHER) is None  # GET never provisions
    status, body, _ = await call(http, "GET", "/api/v1/subscribers/not-a-number", headers=ADMIN)
    assert status == 400 and body["error"]["code"] == "bad_msisdn"


async def test_update_subscriber(gateway: Gateway, http: aiohttp.ClientSession) -> None:
    patch = {"balance": 99.5, "package": {"sms": 7}, "number_management": True}
    status, body, _ = await call(http, "PATCH", f"/api/v1/subscribers/{RU}", patch, headers=ADMIN)
    assert status == 200, body
    assert body["balance"] == 99.5 and body["package"]["sms"] == 7
    assert body["package"]["minutes"] == 300 and body["number_management"]
    status, body, _ = await call(
        http, "PATCH", f"/api/v1/subscribers/{OTHER}", {"balance": 1}, headers=ADMIN
    )
    assert status == 404 and body["error"]["code"] == "unknown_msisdn"
    assert gateway.store.subscriber(OTHER) is None  # PATCH never provisions
    status, body, _ = await call(
        http, "PATCH", f"/api/v1/subscribers/{RU}", {"bonus_points": -1}, headers=ADMIN
    )
    assert status == 400 and body["error"]["code"] == "bad_field"


# -- the clock ----------------------------------------------------------------------------------


async def test_clock_show_and_advance(gateway: Gateway, http: aiohttp.ClientSession) -> None:
    status, body, _ = await call(http, "GET", "/api/v1/clock", headers=ADMIN)
    assert status == 200
    assert body == {"now": "2026-05-28T20:26:40Z", "epoch": 1_780_000_000.0, "mode": "simulated"}
    status, body, _ = await call(http, "POST", "/api/v1/clock/advance", {"by": "2d"}, headers=ADMIN)
    assert status == 200
    assert body["now"] == "2026-05-30T20:26:40Z" and body["epoch"] == 1_780_000_000.0 + 2 * DAY
    assert gateway.clock.now() == body["epoch"]
    status, body, _ = await call(http, "POST", "/api/v1/clock/advance", {"by": 90}, headers=ADMIN)
    assert body["epoch"] == 1_780_000_000.0 + 2 * DAY + 90


@pytest.mark.parametrize(
    ("body", "code"),
    [({}, "missing_field"), ({"by": "soon"}, "bad_duration"), ({"by": "-1s"}, "bad_duration")],
)
async def test_advance_bad_request(http: aiohttp.ClientSession, body: Any, code: str) -> None:
    status, data, _ = await call(http, "POST", "/api/v1/clock/advance", body, headers=ADMIN)
    assert status == 400 and data["error"]["code"] == code


async def test_advance_on_a_real_clock_is_409() -> None:
    gw = Gateway.create(make_config(clock={"mode": "real"}), clock=RealClock(), database=":memory:")
    async with serving(gw) as http:
        status, body, _ = await call(http, "GET", "/api/v1/clock", headers=ADMIN)
        assert status == 200 and body["mode"] == "real"
        status, body, _ = await call(
            http, "POST", "/api/v1/clock/advance", {"by": "2d"}, headers=ADMIN
        )
        assert status == 409 and body["error"]["code"] == "real_clock"
        # The answer says how to get a clock that can be advanced.
        assert "clock: {mode: simulated}" in body["error"]["message"]
        assert "--clock simulated" in body["error"]["message"]


async def test_advance_runs_dialog_timeouts(gateway: Gateway, http: aiohttp.ClientSession) -> None:
    gateway.engine.dial(RU, "*111*17#")
    await call(http, "POST", "/api/v1/clock/advance", {"by": "31s"}, headers=ADMIN)
    assert gateway.engine.dialog(RU) is None


# -- office links -------------------------------------------------------------------------------


async def test_office_link_flow(gateway: Gateway, http: aiohttp.ClientSession) -> None:
    link = {"account": RU, "number": EN}
    status, body, _ = await call(http, "POST", "/api/v1/office/links", link, headers=ADMIN)
    assert status == 409 and body["error"]["code"] == "number_management_off"
    enable_management(gateway, EN)
    status, body, _ = await call(http, "POST", "/api/v1/office/links", link, headers=ADMIN)
    assert status == 201, body
    assert body["state"] == "pending" and body["active_at"] == "2026-05-30T20:26:40Z"
    await call(http, "POST", "/api/v1/clock/advance", {"by": "1d"}, headers=ADMIN)
    await call(http, "POST", "/api/v1/clock/advance", {"by": "23h"}, headers=ADMIN)
    await call(http, "POST", "/api/v1/clock/advance", {"by": "59m"}, headers=ADMIN)
    assert not any("linked" in t for t in texts(gateway, EN))
    await call(http, "POST", "/api/v1/clock/advance", {"by": "1m"}, headers=ADMIN)
    assert len([t for t in texts(gateway, EN) if "linked" in t]) == 1
    assert len([t for t in texts(gateway, RU) if "привязан" in t]) == 1
    status, body, _ = await call(http, "POST", "/api/v1/office/links", link, headers=ADMIN)
    assert status == 409 and body["error"]["code"] == "already_linked"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"account": RU}, 400, "missing_field"),
        ({"account": RU, "number": "12"}, 400, "bad_msisdn"),
        ({"account": EN, "number": EN}, 409, "self_link"),
    ],
)
async def test_office_link_errors(
    gateway: Gateway, http: aiohttp.ClientSession, body: Any, status: int, code: str
) -> None:
    enable_management(gateway, EN)
    got, data, _ = await call(http, "POST", "/api/v1/office/links", body, headers=ADMIN)
    assert (got, data["error"]["code"]) == (status, code)


async def test_office_link_race_one_account_wins(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    enable_management(gateway, OTHER)
    accounts = [f"7916555{i:04d}" for i in range(30)]
    results = await asyncio.gather(
        *(
            call(
                http,
                "POST",
                "/api/v1/office/links",
                {"account": a, "number": OTHER},
                headers=ADMIN,
            )
            for a in accounts
        )
    )
    statuses = sorted(status for status, _, _ in results)
    assert statuses == [201] + [409] * 29
    (winner,) = [body for status, body, _ in results if status == 201]
    assert gateway.store.link(OTHER).account == winner["account"]  # type: ignore[union-attr]
    assert {b["error"]["code"] for s, b, _ in results if s == 409} == {"already_linked"}


async def test_cancel_pending_office_link_by_ussd(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    enable_management(gateway, EN)
    link = {"account": RU, "number": EN}
    status, _, _ = await call(http, "POST", "/api/v1/office/links", link, headers=ADMIN)
    assert status == 201
    status, body, _ = await call(http, "POST", f"/api/v1/phones/{EN}/dial", {"text": "*111*828*2#"})
    assert status == 200 and body["end"]
    await call(http, "POST", "/api/v1/clock/advance", {"by": "3d"}, headers=ADMIN)
    assert not any("linked" in t for t in texts(gateway, EN))
    assert gateway.store.link(EN) is None


# -- sessions and SMS ---------------------------------------------------------------------------


async def test_sessions(gateway: Gateway, http: aiohttp.ClientSession) -> None:
    status, body, _ = await call(http, "GET", "/api/v1/sessions", headers=ADMIN)
    assert status == 200 and body == {"sessions": []}
    gateway.engine.dial(RU, "*111*17#")
    gateway.engine.reply(RU, "secret12")
    _, body, _ = await call(http, "GET", "/api/v1/sessions", headers=ADMIN)
    (session,) = body["sessions"]
    assert session["msisdn"] == RU and session["service"] == "password.set"
    assert "secret12" not in repr(body)


async def test_inject_sms(gateway: Gateway, http: aiohttp.ClientSession) -> None:
    status, body, _ = await call(
        http, "POST", "/api/v1/sms", {"to": "89161234567", "text": "Привет"}, headers=ADMIN
    )
    assert status == 201, body
    assert body["recipient"] == RU and body["text"] == "Привет" and body["sender"] == "MTS"
    assert body["state"] == "queued"
    (sms,) = gateway.sms.inbox(RU)
    assert sms.id == body["id"]
    status, body, _ = await call(
        http,
        "POST",
        "/api/v1/sms",
        {"to": RU, "text": "hi", "sender": "79160000001"},
        headers=ADMIN,
    )
    assert status == 201 and body["sender_is_alpha"] is False
    status, body, _ = await call(
        http, "POST", "/api/v1/sms", {"to": RU, "text": "hi", "sender": None}, headers=ADMIN
    )
    assert status == 201 and body["sender"] == "MTS"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"to": RU}, "missing_field"),
        ({"to": RU, "text": ""}, "bad_field"),
        ({"to": "nope", "text": "x"}, "bad_msisdn"),
        ({"to": RU, "text": "x", "sender": "AVeryLongSenderName"}, "bad_field"),
        ({"to": RU, "text": "x" * 1601}, "bad_field"),
    ],
)
async def test_inject_sms_bad_request(http: aiohttp.ClientSession, body: Any, code: str) -> None:
    status, data, _ = await call(http, "POST", "/api/v1/sms", body, headers=ADMIN)
    assert status == 400 and data["error"]["code"] == code


async def test_lock_lifts_after_fifteen_minutes_via_admin_clock(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    await call(http, "PATCH", f"/api/v1/subscribers/{RU}", {"password": "secret12"}, headers=ADMIN)
    for _ in range(5):
        await call(http, "POST", "/api/v1/auth/login", {"msisdn": RU, "password": "x"})
    right = {"msisdn": RU, "password": "secret12"}
    await call(http, "POST", "/api/v1/clock/advance", {"by": 15 * MINUTE - 1}, headers=ADMIN)
    status, _, _ = await call(http, "POST", "/api/v1/auth/login", right)
    assert status == 423
    await call(http, "POST", "/api/v1/clock/advance", {"by": "1s"}, headers=ADMIN)
    status, _, _ = await call(http, "POST", "/api/v1/auth/login", right)
    assert status == 200
