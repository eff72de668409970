"""`ussd-sim serve` workers as separate processes on real sockets (docs/cluster.md).

Two workers share one Redis and one PostgreSQL, each on ports of its own, as workers on two
hosts would; the kill test SIGKILLs one under MO SMS and USSD load and counts what was
acknowledged against what survived.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest
import yaml

from tests.conftest import ROOT, make_config
from tests.services import free_port
from tests.smpp.helpers import RecordingEsme
from ussd.clock import SimulatedClock
from ussd.runtime import Gateway

RU = "79161234567"
READY_TIMEOUT = 60.0


@dataclass
class Process:
    """One `ussd-sim serve` worker."""

    name: str
    config: Path
    http: int
    smpp: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http}"

    def start(self, *options: str, ready: int = 1) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ussd.cli", "serve", "--config", str(self.config), *options],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        self.banner = ""
        self.read_until(b"ussd-sim ready", ready)

    def read_until(self, marker: bytes, count: int = 1) -> str:
        """Read the output until `marker` was printed `count` more times; returns it."""
        assert self.proc is not None and self.proc.stdout is not None
        seen = b""
        deadline = time.monotonic() + READY_TIMEOUT
        while seen.count(marker) < count:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.proc.stdout], [], [], max(left, 0))
            chunk = os.read(self.proc.stdout.fileno(), 65536) if ready else b""
            if not chunk:
                self.stop()
                raise AssertionError(f"{self.name}: no {marker!r}:\n{seen.decode()[-3000:]}")
            seen += chunk
        self.banner += seen.decode()
        return seen.decode()

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _config(tmp: Path, name: str, redis_url: str, postgres_url: str) -> Process:
    data: dict[str, Any] = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    http, smpp = free_port(), free_port()
    data["http"] = {**data.get("http", {}), "listen": f"127.0.0.1:{http}"}
    data["smpp"] = {**data.get("smpp", {}), "listen": f"127.0.0.1:{smpp}"}
    data["cluster"] = {"redis": redis_url, "postgres": postgres_url, "worker": name}
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return Process(name, path, http, smpp)


@contextlib.contextmanager
def started(procs: list[Process]) -> Iterator[list[Process]]:
    """The workers started in order, each stopped on leaving (also when a start failed)."""
    try:
        for proc in procs:
            proc.start()
        yield procs
    finally:
        for proc in procs:
            proc.stop()


@pytest.fixture
def workers(tmp_path: Path, redis_url: str, postgres_url: str) -> Iterator[list[Process]]:
    with started(
        [_config(tmp_path, name, redis_url, postgres_url) for name in ("wa", "wb")]
    ) as procs:
        yield procs


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        yield session


async def _step(http: aiohttp.ClientSession, worker: Process, op: str, text: str) -> str:
    async with http.post(f"{worker.url}/api/v1/phones/{RU}/{op}", json={"text": text}) as r:
        body = await r.json()
        assert r.status == 200, body
        return str(body["text"])


async def test_any_worker_answers_any_step_over_http(
    workers: list[Process], http: aiohttp.ClientSession
) -> None:
    a, b = workers
    assert "cluster:    worker wa" in a.banner and "PostgreSQL 127.0.0.1" in a.banner
    alone = Gateway.create(make_config(), clock=SimulatedClock())
    steps = ["3", "0", "3"]
    expected = [alone.engine.dial(RU, "*111#").text]
    expected += [alone.engine.reply(RU, text).text for text in steps]
    alone.close()
    shown = [await _step(http, a, "dial", "*111#")]
    for text, worker in zip(steps, [b, a, b], strict=True):
        shown.append(await _step(http, worker, "reply", text))
    assert shown == expected


async def test_kill_9_of_a_worker_under_load_loses_no_acknowledged_sms(
    workers: list[Process], http: aiohttp.ClientSession, postgres_url: str
) -> None:
    a, b = workers
    esme = await RecordingEsme.connect(("127.0.0.1", a.smpp))
    assert (await esme.bind()).command_status == 0
    acknowledged: list[str] = []
    enough = asyncio.Event()

    async def mo_sms(i: int) -> None:
        text = f"load-{i:05d}"
        resp = await esme.submit("79160000001", text, op=None, destination_addr="79160000002")
        if resp.command_status == 0:
            acknowledged.append(text)
            if len(acknowledged) >= 100:
                enough.set()

    async def dials() -> None:
        while not enough.is_set():
            await _step(http, a, "dial", "*100#")

    sent = [asyncio.ensure_future(mo_sms(i)) for i in range(400)]
    load = asyncio.ensure_future(dials())
    async with asyncio.timeout(60):
        await enough.wait()
    a.kill()  # SIGKILL: no unbind, no flush, no goodbye
    await asyncio.gather(*sent, load, return_exceptions=True)
    with psycopg.connect(postgres_url) as conn:
        rows = conn.execute("SELECT text FROM sms WHERE text LIKE 'load-%'").fetchall()
    stored = {r[0] for r in rows}
    lost = sorted(set(acknowledged) - stored)
    print(f"MO SMS: sent 400, acknowledged {len(acknowledged)}, stored {len(stored)}")
    assert lost == [] and len(acknowledged) >= 100
    # The other worker keeps serving, and a restarted worker serves again.
    assert "Мой МТС" in await _step(http, b, "dial", "*111#")
    a.start()
    assert "Мой МТС" in await _step(http, a, "dial", "*111#")
    await esme.close()


async def test_serve_workers_share_the_ports_and_a_killed_worker_is_started_again(
    tmp_path: Path, redis_url: str, postgres_url: str, http: aiohttp.ClientSession
) -> None:
    server = _config(tmp_path, "shared", redis_url, postgres_url)
    # Each worker of one `serve --workers` needs its own id: the default, host:pid.
    data = yaml.safe_load(server.config.read_text(encoding="utf-8"))
    del data["cluster"]["worker"]
    server.config.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    server.start("--workers", "2", ready=2)
    try:
        pids = [int(p) for p in server.banner.split("pids ")[1].split("\n")[0].split()]
        assert len(pids) == 2
        assert "Мой МТС" in await _step(http, server, "dial", "*111#")
        os.kill(pids[0], signal.SIGKILL)
        server.read_until(b"ussd-sim ready")  # the supervisor started another
        assert f"worker {pids[0]} exited (-9)" in server.banner
        for _ in range(4):  # whichever worker the kernel hands the connection to
            async with aiohttp.ClientSession() as fresh:
                assert "Мой МТС" in await _step(fresh, server, "dial", "*111#")
    finally:
        server.stop()
    assert server.proc is not None and server.proc.returncode == 0
