""" "Мой МТС" over real HTTP on 127.0.0.1 (docs/account.md): every new route, every error status.

Spending control, instalments, "МТС Бонус", services on/off, "Не помню пароль" through the
network, switching to a linked number (`?number=`), the admin's charge of simulated usage,
and the rule that the app's own traffic is free.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.accounts.conftest import ADMIN, EN, OTHER, RU, call, serving, set_password, texts
from tests.accounts.test_http_account import assert_error, login, network
from tests.conftest import make_config
from ussd.clock import SimulatedClock
from ussd.runtime import Gateway

# The simulated clock of the fixtures starts at 2026-05-28T20:26:40Z.
CHARGES = [
    {"date": "2026-05-03", "category": "calls", "amount": 12.5, "description": "Calls"},
    {"date": "2026-05-10", "category": "subscriptions", "amount": 99},
    {"date": "2026-05-20T08:00:00Z", "category": "internet", "amount": 30},
    {"date": "2026-04-30", "category": "sms", "amount": 5},
]
PLAN = {"item": "Смартфон", "total": 300, "months": 3, "first_due": "2026-05-15", "paid": 1}


def seed(gateway: Gateway, msisdn: str = RU, **fields: Any) -> None:
    values = {"charges": CHARGES, "instalments": [PLAN], **fields}
    gateway.accounts.update_subscriber(msisdn, values)


def link(gateway: Gateway, account: str, number: str) -> None:
    """number becomes actively linked to account (app flow, the number's password)."""
    set_password(gateway, number, "linkme1")
    gateway.accounts.app_link(account, number, "linkme1")


# -- spending control ---------------------------------------------------------------------------


async def test_spending_defaults_to_this_month(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    seed(gateway)
    token = await network(http, RU)
    status, body, _ = await call(http, "GET", "/api/v1/account/spending", token=token)
    assert status == 200, body
    assert (body["from"], body["to"]) == ("2026-05-01", "2026-05-28")
    assert body["categories"] == {
        "calls": 12.5,
        "sms": 0.0,
        "internet": 30.0,
        "subscriptions": 99.0,
    }
    assert body["total"] == 141.5 and body["count"] == 3
    assert [c["amount"] for c in body["charges"]] == [30.0, 99.0, 12.5]  # newest first
    assert body["charges"][2]["description"] == "Calls"


async def test_spending_over_a_chosen_period(gateway: Gateway, http: aiohttp.ClientSession) -> None:
    seed(gateway)
    token = await network(http, RU)
    path = "/api/v1/account/spending?from=2026-04-01&to=2026-05-05"
    status, body, _ = await call(http, "GET", path, token=token)
    assert status == 200
    assert body["categories"]["sms"] == 5.0 and body["categories"]["calls"] == 12.5
    assert body["total"] == 17.5


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("from=2026-13-01", "bad_date"),
        ("to=yesterday", "bad_date"),
        ("from=2026-05-10&to=2026-05-01", "bad_period"),
        ("from=2024-01-01&to=2026-05-01", "bad_period"),
    ],
)
async def test_spending_bad_period(http: aiohttp.ClientSession, query: str, code: str) -> None:
    token = await network(http, RU)
    status, body, _ = await call(http, "GET", f"/api/v1/account/spending?{query}", token=token)
    assert_error(status, body, 400, code)


async def test_admin_records_a_charge(gateway: Gateway, http: aiohttp.ClientSession) -> None:
    charge = {"category": "sms", "amount": 2.5, "description": "SMS to 79160000001"}
    status, body, _ = await call(
        http, "POST", f"/api/v1/subscribers/{RU}/charges", charge, headers=ADMIN
    )
    assert status == 201, body
    assert body["category"] == "sms" and body["at"] == "2026-05-28T20:26:40Z"
    assert gateway.store.subscriber(RU).balance == 118.0  # type: ignore[union-attr]
    token = await network(http, RU)
    _, spent, _ = await call(http, "GET", "/api/v1/account/spending", token=token)
    assert spent["categories"]["sms"] == 2.5


@pytest.mark.parametrize(
    ("msisdn", "body", "headers", "status", "code"),
    [
        (RU, {"category": "sms", "amount": 1}, {}, 401, "unauthorized"),
        (
            RU,
            {"category": "sms", "amount": 1},
            {"Authorization": "Bearer no"},
            401,
            "invalid_token",
        ),
        (RU, {"category": "travel", "amount": 1}, ADMIN, 400, "bad_field"),
        (RU, {"category": "sms", "amount": -1}, ADMIN, 400, "bad_field"),
        (RU, {"category": "sms", "amount": 1, "date": "soon"}, ADMIN, 400, "bad_field"),
        (RU, {"category": "sms", "amount": 1, "extra": 1}, ADMIN, 400, "bad_field"),
        ("not-a-number", {"category": "sms", "amount": 1}, ADMIN, 400, "bad_msisdn"),
        (OTHER, {"category": "sms", "amount": 1}, ADMIN, 404, "unknown_msisdn"),
    ],
)
async def test_admin_charge_errors(
    gateway: Gateway,
    http: aiohttp.ClientSession,
    msisdn: str,
    body: Any,
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    before = gateway.store.spending(RU, 0, 2e9)  # the shipped config seeds a demo ledger
    got, data, _ = await call(
        http, "POST", f"/api/v1/subscribers/{msisdn}/charges", body, headers=headers
    )
    assert_error(got, data, status, code)
    assert gateway.store.spending(RU, 0, 2e9) == before


# -- instalments ------------------------------------------------------------------------------


async def test_instalments_and_paying_the_next(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    seed(gateway)
    token = await network(http, RU)
    status, body, _ = await call(http, "GET", "/api/v1/account/instalments", token=token)
    assert status == 200
    (plan,) = body["plans"]
    assert (plan["total"], plan["paid"], plan["due"], plan["paid_count"]) == (
        300.0,
        100.0,
        200.0,
        1,
    )
    assert [s["due"] for s in plan["schedule"]] == ["2026-05-15", "2026-06-15", "2026-07-15"]
    assert plan["next"] == {"seq": 2, "due": "2026-06-15", "amount": 100.0}
    status, paid, _ = await call(
        http, "POST", f"/api/v1/account/instalments/{plan['id']}/pay", token=token
    )
    assert status == 200, paid
    assert paid["paid"] == {"seq": 2, "amount": 100.0} and paid["balance"] == 20.5
    assert paid["plan"]["due"] == 100.0 and paid["plan"]["next"]["seq"] == 3
    assert any("оплачен платёж 2 из 3" in t for t in texts(gateway, RU))
    # 20.50 is short of the last 100: refused, nothing taken.
    status, body, _ = await call(
        http, "POST", f"/api/v1/account/instalments/{plan['id']}/pay", token=token
    )
    assert_error(status, body, 409, "insufficient_funds")
    assert "20.50" in body["error"]["message"]
    assert gateway.store.subscriber(RU).balance == 20.5  # type: ignore[union-attr]
    gateway.accounts.update_subscriber(RU, {"balance": 500})
    await call(http, "POST", f"/api/v1/account/instalments/{plan['id']}/pay", token=token)
    status, body, _ = await call(
        http, "POST", f"/api/v1/account/instalments/{plan['id']}/pay", token=token
    )
    assert_error(status, body, 409, "paid_off")


async def test_pay_instalment_errors(gateway: Gateway, http: aiohttp.ClientSession) -> None:
    seed(gateway, EN)
    (plan,) = gateway.store.instalment_plans(EN)
    token = await network(http, RU)
    for path, status, code in [
        ("/api/v1/account/instalments/abc/pay", 400, "bad_plan_id"),
        ("/api/v1/account/instalments/99999999999999999999/pay", 400, "bad_plan_id"),
        ("/api/v1/account/instalments/999/pay", 404, "unknown_plan"),
        (f"/api/v1/account/instalments/{plan.id}/pay", 404, "unknown_plan"),  # EN's plan
    ]:
        got, body, _ = await call(http, "POST", path, token=token)
        assert_error(got, body, status, code)
    got, body, _ = await call(http, "POST", f"/api/v1/account/instalments/{plan.id}/pay")
    assert_error(got, body, 401, "unauthorized")
    assert gateway.store.instalment_plan(plan.id).next.seq == 2  # type: ignore[union-attr]


# -- МТС Бонус -------------------------------------------------------------------------------


async def test_bonus_exchange(gateway: Gateway, http: aiohttp.ClientSession) -> None:
    token = await network(http, RU)
    status, body, _ = await call(http, "GET", "/api/v1/account/bonus", token=token)
    assert status == 200 and body["points"] == 250 and body["history"] == []
    gift = next(g for g in body["gifts"] if g["id"] == "internet_1gb")
    assert gift["points"] == 150 and gift["affordable"] and gift["name"]["en"]
    status, done, _ = await call(
        http, "POST", "/api/v1/account/bonus/exchange", {"gift": "internet_1gb"}, token=token
    )
    assert status == 200, done
    assert done["points"] == 100
    sub = gateway.store.subscriber(RU)
    assert sub is not None and sub.bonus_points == 100 and sub.package_mb == 5120 + 1024
    assert any("подарок «1 ГБ интернета»" in t for t in texts(gateway, RU))
    _, body, _ = await call(http, "GET", "/api/v1/account/bonus", token=token)
    assert [h["gift"] for h in body["history"]] == ["internet_1gb"]
    assert body["history"][0]["points"] == 150


async def test_bonus_exchange_errors(gateway: Gateway, http: aiohttp.ClientSession) -> None:
    token = await network(http, RU)
    path = "/api/v1/account/bonus/exchange"
    got, body, _ = await call(http, "POST", path, {"gift": "yacht"}, token=token)
    assert_error(got, body, 404, "unknown_gift")
    got, body, _ = await call(http, "POST", path, {"gift": "balance_100"}, token=token)
    assert_error(got, body, 409, "insufficient_points")
    got, body, _ = await call(http, "POST", path, {}, token=token)
    assert_error(got, body, 400, "missing_field")
    got, body, _ = await call(http, "POST", path, {"gift": 7}, token=token)
    assert_error(got, body, 400, "bad_field")
    got, body, _ = await call(http, "POST", path, {"gift": "sms_50"})
    assert_error(got, body, 401, "unauthorized")
    assert gateway.store.subscriber(RU).bonus_points == 250  # type: ignore[union-attr]
    assert gateway.store.bonus_exchanges(RU) == []


# -- services on/off -------------------------------------------------------------------------


async def test_services_on_off(gateway: Gateway, http: aiohttp.ClientSession) -> None:
    token = await network(http, RU)
    path = "/api/v1/account/services"
    status, body, _ = await call(http, "POST", path, {"name": "voicemail", "on": True}, token=token)
    assert status == 200 and body["services"]["voicemail"] is True
    assert gateway.store.subscriber(RU).services["voicemail"] is True  # type: ignore[union-attr]
    for data, code, expected in [
        ({"name": "teleport", "on": True}, "unknown_service", 404),
        ({"name": "roaming", "on": "yes"}, "bad_field", 400),
        ({"name": "roaming"}, "missing_field", 400),
    ]:
        got, body, _ = await call(http, "POST", path, data, token=token)
        assert_error(got, body, expected, code)


# -- "Не помню пароль": the network vouches -------------------------------------------------


async def test_network_password(gateway: Gateway, http: aiohttp.ClientSession) -> None:
    set_password(gateway, RU, "oldpass1")
    path = "/api/v1/auth/network-password"
    status, body, _ = await call(http, "POST", path, {"msisdn": RU, "password": "newpass2"})
    assert status == 200, body
    assert body["msisdn"] == RU and body["token"]
    status, _, _ = await call(http, "GET", "/api/v1/account", token=body["token"])
    assert status == 200
    await login(http, RU, "newpass2")  # the new password signs in from now on
    got, bad, _ = await call(
        http, "POST", "/api/v1/auth/login", {"msisdn": RU, "password": "oldpass1"}
    )
    assert_error(got, bad, 401, "bad_credentials")
    assert any("изменён" in t for t in texts(gateway, RU))
    assert all("newpass2" not in t for t in texts(gateway, RU))


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"msisdn": RU, "password": "ab"}, 400, "invalid_password"),
        ({"msisdn": RU, "password": "пароль12"}, 400, "invalid_password"),
        ({"msisdn": RU}, 400, "missing_field"),
        ({"msisdn": "abc", "password": "abcd1"}, 400, "bad_msisdn"),
    ],
)
async def test_network_password_errors(
    gateway: Gateway, http: aiohttp.ClientSession, body: Any, status: int, code: str
) -> None:
    got, data, _ = await call(http, "POST", "/api/v1/auth/network-password", body)
    assert_error(got, data, status, code)
    assert gateway.store.subscriber(RU).password_hash is None  # type: ignore[union-attr]


async def test_network_password_unknown_number() -> None:
    # config.yaml provisions on first contact; with it off an unknown number is 404.
    config = make_config(subscribers={"auto_provision": False})
    gateway = Gateway.create(config, clock=SimulatedClock(), database=":memory:")
    async with serving(gateway) as http:
        body = {"msisdn": OTHER, "password": "abcd1"}
        got, data, _ = await call(http, "POST", "/api/v1/auth/network-password", body)
        assert_error(got, data, 404, "unknown_msisdn")
        assert gateway.store.subscriber(OTHER) is None


# -- switching to a linked number ------------------------------------------------------------


async def test_switch_to_a_linked_number(gateway: Gateway, http: aiohttp.ClientSession) -> None:
    link(gateway, RU, EN)
    seed(gateway, EN)
    token = await network(http, RU)
    status, body, _ = await call(http, "GET", f"/api/v1/account?number={EN}", token=token)
    assert status == 200 and body["msisdn"] == EN and body["balance"] == 42.0
    _, plans, _ = await call(http, "GET", f"/api/v1/account/instalments?number={EN}", token=token)
    assert plans["msisdn"] == EN and len(plans["plans"]) == 1
    _, spent, _ = await call(http, "GET", f"/api/v1/account/spending?number={EN}", token=token)
    assert spent["msisdn"] == EN and spent["total"] == 141.5
    status, _, _ = await call(
        http,
        "POST",
        f"/api/v1/account/bonus/exchange?number={EN}",
        {"gift": "sms_50"},
        token=token,
    )
    assert status == 409  # EN has no points; RU's 250 are not spent for it
    assert gateway.store.subscriber(RU).bonus_points == 250  # type: ignore[union-attr]


async def test_switch_refused(gateway: Gateway, http: aiohttp.ClientSession) -> None:
    token = await network(http, RU)
    got, body, _ = await call(http, "GET", f"/api/v1/account?number={EN}", token=token)
    assert_error(got, body, 403, "not_linked")
    got, body, _ = await call(http, "GET", "/api/v1/account/bonus?number=xyz", token=token)
    assert_error(got, body, 400, "bad_msisdn")
    # The office flow's link is pending for 2 days: nothing of the number shows yet.
    gateway.engine.dial(EN, "*111*828*1#")
    gateway.accounts.office_link(RU, EN)
    got, body, _ = await call(http, "GET", f"/api/v1/account/spending?number={EN}", token=token)
    assert_error(got, body, 403, "link_pending")


# -- the app's own traffic is free ------------------------------------------------------------


async def test_the_apps_traffic_is_free(gateway: Gateway, http: aiohttp.ClientSession) -> None:
    """Every app request leaves the package's megabytes and the ledger as they were."""
    before = gateway.store.subscriber(RU)
    assert before is not None
    ledger = gateway.store.spending(RU, 0, 2e9)  # the shipped config seeds a demo ledger
    token = await network(http, RU)
    for _ in range(20):
        for path in (
            "/api/v1/account",
            "/api/v1/account/spending",
            "/api/v1/account/instalments",
            "/api/v1/account/bonus",
        ):
            status, _, _ = await call(http, "GET", path, token=token)
            assert status == 200
    after = gateway.store.subscriber(RU)
    assert after is not None
    assert after.package_mb == before.package_mb and after.balance == before.balance
    assert gateway.store.spending(RU, 0, 2e9) == ledger
    _, body, _ = await call(http, "GET", "/api/v1/account", token=token)
    assert body["app_traffic"] == "free"


APP_ROUTES = [
    ("GET", "/api/v1/account", None),
    ("POST", "/api/v1/account/services", {"name": "roaming", "on": False}),
    ("GET", "/api/v1/account/spending", None),
    ("GET", "/api/v1/account/instalments", None),
    ("POST", "/api/v1/account/instalments/1/pay", None),
    ("GET", "/api/v1/account/bonus", None),
    ("POST", "/api/v1/account/bonus/exchange", {"gift": "sms_50"}),
]


@pytest.mark.parametrize(("method", "path", "body"), APP_ROUTES)
async def test_every_app_route_needs_a_token_and_a_linked_number(
    gateway: Gateway, http: aiohttp.ClientSession, method: str, path: str, body: Any
) -> None:
    seed(gateway, EN)
    got, data, headers = await call(http, method, path, body)
    assert_error(got, data, 401, "unauthorized")
    assert headers["WWW-Authenticate"].startswith("Bearer")
    got, data, _ = await call(http, method, path, body, token="forged")
    assert_error(got, data, 401, "invalid_token")
    token = await network(http, RU)
    got, data, _ = await call(http, method, f"{path}?number={EN}", body, token=token)
    assert_error(got, data, 403, "not_linked")
    after = gateway.store.subscriber(EN)
    assert after is not None and after.balance == 42.0 and after.services == {}
    assert gateway.store.instalment_plans(EN)[0].next.seq == 2  # type: ignore[union-attr]
