"""scrypt off the event loop (docs/design.md): logins and `*111*17#` hash on worker threads,
at most HashPool.workers at a time, and numbers that are no subscriber leave bounded state.

The hashes are held on a threading.Event while the test looks at the gateway: whether other
requests are served then is a matter of structure (which thread hashes), not of timing.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import aiohttp
import pytest

from tests.accounts.conftest import RU, call, serving
from ussd import accounts as accounts_mod
from ussd import store as store_mod
from ussd.accounts import BadCredentials, Locked
from ussd.engine import NoDialog
from ussd.runtime import Gateway

STRANGERS = [f"7900000{i:04d}" for i in range(40)]  # no subscribers (auto_provision is off)
WAIT = 10.0  # a bound for the waits below, never a sleep


class Gate:
    """Wraps a hash function: records the thread, holds every call until released."""

    def __init__(self, inner: Callable[..., Any]) -> None:
        self.inner = inner
        self.threads: set[int] = set()
        self.entered = threading.Semaphore(0)
        self.release = threading.Event()
        self.calls = 0
        self.on_loop = False
        self._lock = threading.Lock()

    def __call__(self, *args: Any) -> Any:
        with self._lock:
            self.threads.add(threading.get_ident())
            self.calls += 1
        self.entered.release()
        if threading.get_ident() == threading.main_thread().ident:
            # The event loop's own thread (pytest-asyncio runs it on the main thread): holding
            # it here would stall the very test that is to notice it. Fail at once instead.
            self.on_loop = True
            raise AssertionError("a password was hashed on the event loop's thread")
        assert self.release.wait(WAIT), "the test never released the hash"
        return self.inner(*args)

    async def wait_entered(self, count: int) -> None:
        """Until `count` calls are inside (each waits on `release`)."""

        def take() -> bool:
            return all(self.entered.acquire(timeout=WAIT) for _ in range(count))

        started = await asyncio.to_thread(take)
        assert not self.on_loop, "a password was hashed on the event loop's thread"
        assert started, "the hashes did not start"


@pytest.fixture
def verify_gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[Gate]:
    gate = Gate(store_mod.verify_password)
    monkeypatch.setattr(store_mod, "verify_password", gate)
    yield gate
    gate.release.set()


@pytest.fixture
def hash_gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[Gate]:
    gate = Gate(store_mod.hash_password)
    monkeypatch.setattr(store_mod, "hash_password", gate)
    yield gate
    gate.release.set()


@pytest.fixture
async def http(gateway: Gateway) -> AsyncIterator[aiohttp.ClientSession]:
    gateway.hash_off_loop()  # as `ussd-sim serve` does
    async with serving(gateway) as session:
        yield session


async def test_logins_hash_off_the_loop_with_bounded_concurrency(
    gateway: Gateway,
    http: aiohttp.ClientSession,
    verify_gate: Gate,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(accounts_mod, "UNKNOWN_AUTH_CAP", 8)
    workers = gateway.passwords.workers
    logins = [
        asyncio.create_task(
            call(http, "POST", "/api/v1/auth/login", {"msisdn": m, "password": "guess123"})
        )
        for m in STRANGERS
    ]
    await verify_gate.wait_entered(workers)
    # Every hashing thread is busy and 38 logins wait: the loop still serves everyone else.
    status, _, _ = await call(http, "GET", "/healthz")
    assert status == 200
    status, screen, _ = await call(http, "POST", f"/api/v1/phones/{RU}/dial", {"text": "*100#"})
    assert status == 200 and screen["end"], screen
    assert verify_gate.calls == workers  # the semaphore admits no more than the pool's threads
    assert threading.get_ident() not in verify_gate.threads
    verify_gate.release.set()
    results = await asyncio.wait_for(asyncio.gather(*logins), WAIT)
    assert {status for status, _, _ in results} == {401}
    assert {body["error"]["code"] for _, body, _ in results} == {"bad_credentials"}
    assert verify_gate.calls == len(STRANGERS)
    assert threading.get_ident() not in verify_gate.threads
    assert 1 <= gateway.passwords.busy_max <= workers
    # Numbers that are no subscriber leave no rows, and a bounded amount of memory.
    assert gateway.store.db.execute("SELECT COUNT(*) FROM auth_state").fetchone()[0] == 0
    assert len(gateway.accounts._strangers) == 8


async def test_a_login_given_up_by_its_client_costs_no_hash(
    gateway: Gateway, http: aiohttp.ClientSession, verify_gate: Gate
) -> None:
    workers = gateway.passwords.workers
    body = {"msisdn": STRANGERS[0], "password": "guess123"}
    running = [asyncio.create_task(call(http, "POST", "/api/v1/auth/login", body))]
    running += [
        asyncio.create_task(call(http, "POST", "/api/v1/auth/login", body))
        for _ in range(workers - 1)
    ]
    await verify_gate.wait_entered(workers)
    flow = gateway.accounts.login_flow(STRANGERS[1], "guess123")
    waiting = asyncio.create_task(gateway.passwords.drive(flow))
    await asyncio.sleep(0)  # one scheduling step: it runs up to the semaphore and waits there
    assert len(gateway.passwords._slots._waiters or ()) == 1
    waiting.cancel()
    verify_gate.release.set()
    await asyncio.wait_for(asyncio.gather(*running), WAIT)
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert verify_gate.calls == workers


async def test_ussd_password_is_hashed_off_the_loop_and_shown_once_stored(
    gateway: Gateway, http: aiohttp.ClientSession, hash_gate: Gate
) -> None:
    assert not (await gateway.dial(RU, "*111*17#")).end
    assert not (await gateway.reply(RU, "newpass1")).end
    confirming = asyncio.create_task(gateway.reply(RU, "newpass1"))
    await hash_gate.wait_entered(1)
    assert threading.get_ident() not in hash_gate.threads
    # The loop serves others while the hash is held, and nothing says "set" before it is.
    status, _, _ = await call(http, "GET", "/healthz")
    assert status == 200 and not confirming.done()
    assert gateway.store.subscriber(RU).password_hash is None  # type: ignore[union-attr]
    assert not gateway.sms.inbox(RU)
    hash_gate.release.set()
    screen = await asyncio.wait_for(confirming, WAIT)
    assert screen.end and screen.text == gateway.texts.get("password.done", "ru")
    assert gateway.store.subscriber(RU).password_hash is not None  # type: ignore[union-attr]
    [notice] = gateway.sms.inbox(RU)
    assert "newpass1" not in notice.text
    status, body, _ = await call(
        http, "POST", "/api/v1/auth/login", {"msisdn": RU, "password": "newpass1"}
    )
    assert status == 200, body


async def test_a_newer_ussd_password_replaces_a_dialog_waiting_for_its_hash(
    gateway: Gateway, http: aiohttp.ClientSession, hash_gate: Gate
) -> None:
    await gateway.dial(RU, "*111*17#")
    await gateway.reply(RU, "first111")
    first = asyncio.create_task(gateway.reply(RU, "first111"))
    await hash_gate.wait_entered(1)
    # A new dial on the number replaces the waiting dialog (TS 24.090): its hash is dropped.
    await gateway.dial(RU, "*111*17#")
    with pytest.raises(NoDialog):
        await asyncio.wait_for(first, WAIT)
    await gateway.reply(RU, "second22")
    second = asyncio.create_task(gateway.reply(RU, "second22"))
    await hash_gate.wait_entered(1)
    hash_gate.release.set()
    assert (await asyncio.wait_for(second, WAIT)).end
    status, _, _ = await call(
        http, "POST", "/api/v1/auth/login", {"msisdn": RU, "password": "second22"}
    )
    assert status == 200
    status, _, _ = await call(
        http, "POST", "/api/v1/auth/login", {"msisdn": RU, "password": "first111"}
    )
    assert status == 401
    assert len(gateway.sms.inbox(RU)) == 1  # one notice: the dropped password sent none


def test_strangers_lock_like_subscribers_without_rows(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(accounts_mod, "UNKNOWN_AUTH_CAP", 3)
    accounts = gateway.accounts
    stranger = STRANGERS[0]
    for _ in range(gateway.config.auth.max_failures - 1):
        with pytest.raises(BadCredentials):
            accounts.login(stranger, "guess123")
    with pytest.raises(Locked):  # same answer as for a subscriber: existence stays hidden
        accounts.login(stranger, "guess123")
    with pytest.raises(Locked):
        accounts.login(stranger, "guess123")
    for number in STRANGERS[1:20]:
        with pytest.raises(BadCredentials):
            accounts.login(number, "guess123")
    assert len(accounts._strangers) == 3
    assert gateway.store.db.execute("SELECT COUNT(*) FROM auth_state").fetchone()[0] == 0


def test_a_synchronous_caller_hashes_in_the_step(gateway: Gateway) -> None:
    gateway.hash_off_loop()
    engine = gateway.engine
    engine.dial(RU, "*111*17#")
    engine.reply(RU, "newpass1")
    screen = engine.reply(RU, "newpass1")
    assert screen.end and screen.text == gateway.texts.get("password.done", "ru")
    assert gateway.accounts.login(RU, "newpass1")
    assert len(gateway.sms.inbox(RU)) == 1


async def test_stopping_with_a_hash_in_flight(gateway: Gateway, hash_gate: Gate) -> None:
    gateway.hash_off_loop()
    await gateway.start()
    await gateway.dial(RU, "*111*17#")
    await gateway.reply(RU, "newpass1")
    confirming = asyncio.create_task(gateway.reply(RU, "newpass1"))
    await hash_gate.wait_entered(1)
    await gateway.stop()  # neither waits for the thread nor writes to the closed store
    hash_gate.release.set()
    with pytest.raises(NoDialog):  # the dialog ended with the gateway: nothing was said set
        await asyncio.wait_for(confirming, WAIT)


@pytest.mark.parametrize("method", ["POST", "PATCH"])
async def test_admin_passwords_hash_off_the_loop(
    gateway: Gateway, http: aiohttp.ClientSession, hash_gate: Gate, method: str
) -> None:
    number = RU if method == "PATCH" else STRANGERS[0]
    path = f"/api/v1/subscribers/{number}" if method == "PATCH" else "/api/v1/subscribers"
    body: dict[str, Any] = {"password": "admin123"}
    if method == "POST":
        body["msisdn"] = number
    admin = {"Authorization": "Bearer change-me"}
    request = asyncio.create_task(call(http, method, path, body, headers=admin))
    await hash_gate.wait_entered(1)
    status, _, _ = await call(http, "GET", "/healthz")
    assert status == 200 and not request.done()
    assert threading.get_ident() not in hash_gate.threads
    hash_gate.release.set()
    status, sub, _ = await asyncio.wait_for(request, WAIT)
    assert status in (200, 201) and sub["has_password"], sub
    assert gateway.accounts.login(number, "admin123")
