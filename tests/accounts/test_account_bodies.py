"""Bodies every website and "Мой МТС" POST route refuses, and the instalment paid meanwhile
(docs/account.md error codes: 400 bad_json, 413, 415, 409 already_paid)."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.accounts.conftest import RU, call
from tests.conftest import make_config
from ussd.config import Config
from ussd.runtime import Gateway
from ussd.store import Store

POSTS = [
    "/api/v1/lk/sms-password",
    "/api/v1/lk/providers/vk/login",
    "/api/v1/lk/providers/vk/consent",
    "/api/v1/lk/social/login",
    "/api/v1/lk/social/bind",
    "/api/v1/auth/network-password",
    "/api/v1/account/services",
    "/api/v1/account/bonus/exchange",
]


@pytest.fixture
def config() -> Config:
    return make_config(website={"captcha": "test"})


async def network(http: aiohttp.ClientSession, msisdn: str = RU) -> str:
    status, body, _ = await call(http, "POST", "/api/v1/auth/network", {"msisdn": msisdn})
    assert status == 200, body
    return str(body["token"])


@pytest.mark.parametrize("path", POSTS)
@pytest.mark.parametrize(
    ("raw", "content_type", "status", "code"),
    [
        (b"{", "application/json", 400, "bad_json"),
        (b"[1, 2]", "application/json", 400, "bad_json"),
        (b"\xff\xfe", "application/json", 400, "bad_json"),
        (b"msisdn=79161234567", "application/x-www-form-urlencoded", 415, None),
        (b"x" * (2 * 1024 * 1024), "application/json", 413, None),
    ],
)
async def test_broken_bodies(
    http: aiohttp.ClientSession,
    path: str,
    raw: bytes,
    content_type: str,
    status: int,
    code: str | None,
) -> None:
    token = await network(http)
    headers = {"Content-Type": content_type, "Authorization": f"Bearer {token}"}
    async with http.post(path, data=raw, headers=headers) as r:
        assert r.status == status, await r.text()
        body: Any = await r.json()
    assert set(body) == {"error"}
    if code is not None:
        assert body["error"]["code"] == code


async def test_an_instalment_paid_meanwhile_is_409(
    gateway: Gateway, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process (the CLI on the same file) pays between the read and the write."""
    gateway.accounts.update_subscriber(
        RU,
        {
            "balance": 500,
            "instalments": [{"item": "Часы", "total": 300, "months": 3, "first_due": "2026-05-01"}],
        },
    )
    (plan,) = gateway.store.instalment_plans(RU)
    read = Store.instalment_plan

    def stale(store: Store, plan_id: int) -> Any:
        seen = read(store, plan_id)
        if seen is not None and seen.next is not None:
            assert store.pay_instalment(plan_id, seen.next.seq, seen.next.amount, 1.0) == "paid"
        return seen

    monkeypatch.setattr(Store, "instalment_plan", stale)
    token = await network(http)
    status, body, _ = await call(
        http, "POST", f"/api/v1/account/instalments/{plan.id}/pay", {}, token=token
    )
    assert status == 409 and body["error"]["code"] == "already_paid", body
    monkeypatch.undo()
    # The simulated other payment ran inside this request's transaction, which the refusal
    # rolls back whole: the refused request itself took nothing and paid nothing.
    after = gateway.store.instalment_plan(plan.id)
    assert after is not None and all(i.paid_at is None for i in after.schedule)
    assert gateway.store.subscriber(RU).balance == 500  # type: ignore[union-attr]
