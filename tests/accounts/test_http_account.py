"""Self-care over real HTTP on 127.0.0.1: every route and every error status."""

from __future__ import annotations

import re
from typing import Any

import aiohttp
import pytest
from structlog.testing import capture_logs

from tests.accounts.conftest import (
    ADMIN,
    EN,
    MINUTE,
    OTHER,
    RU,
    call,
    enable_management,
    serving,
    set_password,
)
from tests.conftest import make_config
from ussd.clock import SimulatedClock
from ussd.runtime import Gateway


async def login(http: aiohttp.ClientSession, msisdn: str, password: str) -> str:
    status, body, _ = await call(
        http, "POST", "/api/v1/auth/login", {"msisdn": msisdn, "password": password}
    )
    assert status == 200, body
    assert body["token_type"] == "Bearer" and body["msisdn"] == msisdn
    return str(body["token"])


async def network(http: aiohttp.ClientSession, msisdn: str) -> str:
    status, body, _ = await call(http, "POST", "/api/v1/auth/network", {"msisdn": msisdn})
    assert status == 200, body
    return str(body["token"])


def assert_error(status: int, body: Any, expected_status: int, code: str) -> None:
    assert status == expected_status, body
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code


# -- login --------------------------------------------------------------------------------------


async def test_login(gateway: Gateway, http: aiohttp.ClientSession) -> None:
    set_password(gateway, RU, "secret12")
    token = await login(http, RU, "secret12")
    status, body, _ = await call(http, "GET", "/api/v1/account", token=token)
    assert status == 200
    assert body["msisdn"] == RU and body["balance"] == 120.5
    assert body["package"] == {"minutes": 300, "sms": 100, "mb": 5120}


async def test_login_wrong_password(gateway: Gateway, http: aiohttp.ClientSession) -> None:
    set_password(gateway, RU, "secret12")
    status, body, _ = await call(
        http, "POST", "/api/v1/auth/login", {"msisdn": RU, "password": "nope"}
    )
    assert_error(status, body, 401, "bad_credentials")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"msisdn": RU}, "missing_field"),
        ({"password": "x"}, "missing_field"),
        ({"msisdn": 79161234567, "password": "x"}, "bad_field"),
        ({"msisdn": "abc", "password": "x"}, "bad_msisdn"),
        ({"msisdn": RU, "password": "x" * 129}, "bad_field"),
    ],
)
async def test_login_bad_request(http: aiohttp.ClientSession, body: Any, code: str) -> None:
    status, data, _ = await call(http, "POST", "/api/v1/auth/login", body)
    assert_error(status, data, 400, code)


async def test_login_bad_json(http: aiohttp.ClientSession) -> None:
    async with http.post(
        "/api/v1/auth/login", data=b"{nope", headers={"Content-Type": "application/json"}
    ) as r:
        assert r.status == 400
        assert (await r.json())["error"]["code"] == "bad_json"


async def test_lockout_423_with_retry_after_then_lifts(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    set_password(gateway, RU, "secret12")
    wrong = {"msisdn": RU, "password": "wrong"}
    for _ in range(4):
        status, _, _ = await call(http, "POST", "/api/v1/auth/login", wrong)
        assert status == 401
    status, body, headers = await call(http, "POST", "/api/v1/auth/login", wrong)
    assert_error(status, body, 423, "locked")
    assert headers["Retry-After"] == "900"
    status, _, _ = await call(http, "POST", "/api/v1/clock/advance", {"by": "10m"}, headers=ADMIN)
    assert status == 200
    right = {"msisdn": RU, "password": "secret12"}
    status, body, headers = await call(http, "POST", "/api/v1/auth/login", right)
    assert_error(status, body, 423, "locked")
    assert headers["Retry-After"] == "300"
    await call(http, "POST", "/api/v1/clock/advance", {"by": "5m"}, headers=ADMIN)
    assert await login(http, RU, "secret12")


async def test_network_login(http: aiohttp.ClientSession) -> None:
    token = await network(http, "8 916 111-22-33")
    status, body, _ = await call(http, "GET", "/api/v1/account", token=token)
    assert status == 200 and body["msisdn"] == EN


async def test_network_login_unknown_without_provisioning() -> None:
    config = make_config(subscribers={"auto_provision": False})
    gw = Gateway.create(config, clock=SimulatedClock(), database=":memory:")
    async with serving(gw) as http:
        status, body, _ = await call(http, "POST", "/api/v1/auth/network", {"msisdn": OTHER})
        assert_error(status, body, 404, "unknown_msisdn")
        status, body, _ = await call(http, "POST", "/api/v1/auth/sms-password", {"msisdn": OTHER})
        assert_error(status, body, 404, "unknown_msisdn")


# -- SMS password -------------------------------------------------------------------------------


async def test_sms_password_and_429(gateway: Gateway, http: aiohttp.ClientSession) -> None:
    status, body, _ = await call(http, "POST", "/api/v1/auth/sms-password", {"msisdn": RU})
    assert status == 200 and body == {"sent": True, "msisdn": RU, "retry_after": 60}
    (sms,) = gateway.sms.inbox(RU)
    match = re.search(r": ([A-Za-z0-9]{8})\.", sms.text)
    assert match
    assert await login(http, RU, match.group(1))
    gateway.advance(0.5)
    status, body, headers = await call(http, "POST", "/api/v1/auth/sms-password", {"msisdn": RU})
    assert_error(status, body, 429, "rate_limited")
    assert headers["Retry-After"] == "60"  # 59.5 s rounded up (RFC 9110 §10.2.3)
    gateway.advance(59.4)
    _, _, headers = await call(http, "POST", "/api/v1/auth/sms-password", {"msisdn": RU})
    assert headers["Retry-After"] == "1"
    gateway.advance(0.1)
    status, _, _ = await call(http, "POST", "/api/v1/auth/sms-password", {"msisdn": RU})
    assert status == 200


async def test_sms_password_never_logged(gateway: Gateway, http: aiohttp.ClientSession) -> None:
    with capture_logs() as logs:
        await call(http, "POST", "/api/v1/auth/sms-password", {"msisdn": RU})
        password = gateway.sms.inbox(RU)[-1].text.split(": ")[1][:8]
        await login(http, RU, password)
    assert password not in repr(logs)


# -- the account --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer nonsense"}, {"Authorization": "Basic abc"}, ADMIN],
)
async def test_account_needs_a_token(http: aiohttp.ClientSession, headers: dict[str, str]) -> None:
    status, body, hdrs = await call(http, "GET", "/api/v1/account", headers=headers)
    assert status == 401
    assert body["error"]["code"] in ("unauthorized", "invalid_token")
    assert hdrs["WWW-Authenticate"].startswith("Bearer")


async def test_expired_token(gateway: Gateway, http: aiohttp.ClientSession) -> None:
    token = await network(http, RU)
    gateway.advance(gateway.config.auth.token_ttl)
    status, body, _ = await call(http, "GET", "/api/v1/account", token=token)
    assert_error(status, body, 401, "invalid_token")


async def test_logout(http: aiohttp.ClientSession) -> None:
    token = await network(http, RU)
    status, _, _ = await call(http, "POST", "/api/v1/auth/logout", token=token)
    assert status == 200
    status, _, _ = await call(http, "GET", "/api/v1/account", token=token)
    assert status == 401


async def test_change_password(gateway: Gateway, http: aiohttp.ClientSession) -> None:
    set_password(gateway, RU, "secret12")
    token = await login(http, RU, "secret12")
    path = "/api/v1/account/password"
    status, body, _ = await call(
        http, "POST", path, {"current": "secret12", "new": "ab"}, token=token
    )
    assert_error(status, body, 400, "invalid_password")
    status, body, _ = await call(
        http, "POST", path, {"current": "nope", "new": "abcd"}, token=token
    )
    assert_error(status, body, 401, "bad_credentials")
    status, body, _ = await call(http, "POST", path, {"current": "secret12"}, token=token)
    assert_error(status, body, 400, "missing_field")
    status, body, _ = await call(
        http, "POST", path, {"current": "secret12", "new": "Newpass1"}, token=token
    )
    assert status == 200 and body == {"changed": True}
    assert await login(http, RU, "Newpass1")
    status, _, _ = await call(http, "POST", path, {"current": "x", "new": "abcd"})
    assert status == 401


@pytest.mark.parametrize("how", ["account", "ussd", "admin", "sms"])
async def test_password_change_revokes_bearer_tokens(
    gateway: Gateway, http: aiohttp.ClientSession, how: str
) -> None:
    # Whoever learnt the old password keeps no session once the subscriber changes it.
    set_password(gateway, RU, "secret12")
    tokens = [await login(http, RU, "secret12"), await network(http, RU)]
    other = await network(http, EN)
    for token in tokens:
        assert (await call(http, "GET", "/api/v1/account", token=token))[0] == 200
    if how == "account":
        change = {"current": "secret12", "new": "Newpass1"}
        status, body, _ = await call(
            http, "POST", "/api/v1/account/password", change, token=tokens[0]
        )
        assert status == 200, body
    elif how == "ussd":
        set_password(gateway, RU, "Newpass1")
    elif how == "admin":
        patch = {"password": "Newpass1"}
        status, body, _ = await call(
            http, "PATCH", f"/api/v1/subscribers/{RU}", patch, headers=ADMIN
        )
        assert status == 200, body
    else:
        sms = {"msisdn": RU}
        assert (await call(http, "POST", "/api/v1/auth/sms-password", sms))[0] == 200
    for token in tokens:
        status, body, _ = await call(http, "GET", "/api/v1/account", token=token)
        assert_error(status, body, 401, "invalid_token")
    # Another number's session is untouched, and a fresh sign-in works.
    assert (await call(http, "GET", "/api/v1/account", token=other))[0] == 200
    fresh = await network(http, RU)
    assert (await call(http, "GET", "/api/v1/account", token=fresh))[0] == 200


async def test_add_and_remove_number(gateway: Gateway, http: aiohttp.ClientSession) -> None:
    set_password(gateway, EN, "bpass123")
    token = await network(http, RU)
    numbers = "/api/v1/account/numbers"
    status, body, _ = await call(
        http, "POST", numbers, {"msisdn": EN, "password": "wrong"}, token=token
    )
    assert_error(status, body, 401, "bad_credentials")
    status, body, _ = await call(
        http, "POST", numbers, {"msisdn": "+1 (916) 111 22 33x", "password": "a"}, token=token
    )
    assert_error(status, body, 400, "bad_msisdn")
    status, body, _ = await call(
        http, "POST", numbers, {"msisdn": "89161112233", "password": "bpass123"}, token=token
    )
    assert status == 201, body
    assert body["number"] == EN and body["state"] == "active" and body["flow"] == "app"
    status, body, _ = await call(http, "GET", "/api/v1/account", token=token)
    assert [(n["number"], n["state"]) for n in body["numbers"]] == [(EN, "active")]
    status, body, _ = await call(
        http, "POST", numbers, {"msisdn": EN, "password": "bpass123"}, token=token
    )
    assert_error(status, body, 409, "already_linked")
    status, body, _ = await call(
        http, "POST", numbers, {"msisdn": RU, "password": "x"}, token=token
    )
    assert_error(status, body, 409, "self_link")
    status, body, _ = await call(http, "DELETE", f"{numbers}/{EN}", token=token)
    assert status == 200 and body == {"unlinked": EN}
    status, body, _ = await call(http, "DELETE", f"{numbers}/{EN}", token=token)
    assert_error(status, body, 404, "not_linked")
    status, body, _ = await call(http, "DELETE", f"{numbers}/garbage", token=token)
    assert_error(status, body, 400, "bad_msisdn")
    status, _, _ = await call(http, "DELETE", f"{numbers}/{EN}")
    assert status == 401


async def test_add_number_locked_is_423(gateway: Gateway, http: aiohttp.ClientSession) -> None:
    set_password(gateway, EN, "bpass123")
    token = await network(http, RU)
    wrong = {"msisdn": EN, "password": "wrong"}
    for _ in range(4):
        await call(http, "POST", "/api/v1/account/numbers", wrong, token=token)
    status, body, headers = await call(http, "POST", "/api/v1/account/numbers", wrong, token=token)
    assert_error(status, body, 423, "locked")
    assert int(headers["Retry-After"]) == 15 * MINUTE


async def test_pending_office_link_in_the_account(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    enable_management(gateway, EN)
    gateway.accounts.office_link(RU, EN)
    token = await network(http, RU)
    _, body, _ = await call(http, "GET", "/api/v1/account", token=token)
    (item,) = body["numbers"]
    assert item["state"] == "pending"
    assert item["active_at"] == "2026-05-30T20:26:40Z"
    status, body, _ = await call(http, "GET", "/api/v1/account", token=await network(http, EN))
    assert status == 200
    assert body["linked_to"]["account"] == RU and body["linked_to"]["state"] == "pending"


# -- social sign-in -----------------------------------------------------------------------------


async def test_social_bind_and_sign_in(http: aiohttp.ClientSession) -> None:
    identity = {"provider": "vk", "external_id": "id777"}
    status, body, _ = await call(http, "POST", "/api/v1/auth/social", identity)
    assert_error(status, body, 401, "unknown_identity")
    status, _, _ = await call(http, "POST", "/api/v1/account/social", identity)
    assert status == 401
    token = await network(http, RU)
    status, body, _ = await call(http, "POST", "/api/v1/account/social", identity, token=token)
    assert status == 200 and body["msisdn"] == RU
    status, body, _ = await call(http, "POST", "/api/v1/auth/social", identity)
    assert status == 200 and body["msisdn"] == RU
    other = await network(http, EN)
    status, body, _ = await call(http, "POST", "/api/v1/account/social", identity, token=other)
    assert_error(status, body, 409, "identity_taken")
    status, body, _ = await call(
        http, "POST", "/api/v1/account/social", {"provider": "V K", "external_id": "x"}, token=other
    )
    assert_error(status, body, 400, "invalid_provider")


async def test_lone_surrogate_password_is_a_bad_body(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    # RFC 8259 §8.2: `\ud800` alone is no character; the body is refused before any password
    # check, so it neither logs in nor counts as a wrong password.
    set_password(gateway, RU, "secret12")
    body = b'{"msisdn": "79161234567", "password": "\\ud800"}'
    async with http.post(
        "/api/v1/auth/login", data=body, headers={"Content-Type": "application/json"}
    ) as r:
        assert r.status == 400
        assert (await r.json())["error"]["code"] == "bad_json"
    assert gateway.accounts.auth_state(RU).failures == 0
