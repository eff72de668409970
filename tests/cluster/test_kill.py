"""kill -9 of a worker under load loses nothing it acknowledged (docs/cluster.md "Failures").

Beside tests/cluster/test_workers.py's MO SMS count: passwords (`*111*17#` dialogs that showed
their end screen) and linked numbers (`*111*828*1#`), each acknowledged by worker a's answer
over HTTP, are counted against what PostgreSQL holds once a was SIGKILLed in the middle.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiohttp
import psycopg

from tests.cluster.test_workers import Process, http, workers  # noqa: F401 (fixtures)

PASSWORD = "abc12345"
DONE = ("Пароль от Личного кабинета установлен.", "Your personal account password has been set.")
ENABLED = (
    "Услуга «Управление номерами» подключена.",
    "Number management is on: this number can be linked to another account.",
)
ENOUGH = 25  # of each, acknowledged before the kill
LOOPS = 8  # concurrent dialogs of each kind


async def _step(session: aiohttp.ClientSession, url: str, text: str) -> dict[str, object]:
    async with session.post(url, json={"text": text}) as r:
        body: dict[str, object] = await r.json()
        assert r.status == 200, body
        return body


async def test_kill_9_under_load_loses_no_acknowledged_password_or_link(
    workers: list[Process],  # noqa: F811
    http: aiohttp.ClientSession,  # noqa: F811
    postgres_url: str,
) -> None:
    a, _b = workers
    passwords: list[str] = []
    links: list[str] = []
    enough = asyncio.Event()
    numbers = iter(range(1_000_000))

    def check() -> None:
        if len(passwords) >= ENOUGH and len(links) >= ENOUGH:
            enough.set()

    async def password() -> None:
        msisdn = f"7916{1_000_000 + next(numbers):07d}"
        phone = f"{a.url}/api/v1/phones/{msisdn}"
        await _step(http, f"{phone}/dial", "*111*17#")
        await _step(http, f"{phone}/reply", PASSWORD)
        last = await _step(http, f"{phone}/reply", PASSWORD)
        if last["end"] and last["text"] in DONE:
            passwords.append(msisdn)
            check()

    async def link() -> None:
        msisdn = f"7916{2_000_000 + next(numbers):07d}"
        last = await _step(http, f"{a.url}/api/v1/phones/{msisdn}/dial", "*111*828*1#")
        if last["end"] and last["text"] in ENABLED:
            links.append(msisdn)
            check()

    async def loop(one: Callable[[], Awaitable[None]]) -> None:
        while not enough.is_set():
            await one()

    load = [asyncio.ensure_future(loop(f)) for f in (password, link) for _ in range(LOOPS)]
    async with asyncio.timeout(120):
        await enough.wait()
    a.kill()  # SIGKILL mid-load: dialogs and requests in flight die with it
    await asyncio.gather(*load, return_exceptions=True)
    with psycopg.connect(postgres_url) as conn:
        hashed = {
            r[0]
            for r in conn.execute(
                "SELECT msisdn FROM subscribers WHERE password_hash IS NOT NULL"
            ).fetchall()
        }
        managed = {
            r[0]
            for r in conn.execute(
                "SELECT msisdn FROM subscribers WHERE number_management = 1"
            ).fetchall()
        }
    print(f"acknowledged: {len(passwords)} passwords, {len(links)} links")
    assert len(passwords) >= ENOUGH and len(links) >= ENOUGH
    assert sorted(set(passwords) - hashed) == []
    assert sorted(set(links) - managed) == []
