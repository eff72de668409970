"""Two processes on one database file (README tour): a running `ussd-sim serve` sees what
`ussd-sim subscribers set` writes at once, and a bad database file stops start-up cleanly."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import yaml

from tests.conftest import ROOT
from tests.test_serve import start
from tests.test_store import BAD_FILES

RU = "79161234567"  # seeded with balance 120.50


def config_for(tmp_path: Path, database: Path) -> Path:
    data = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    data["storage"] = {"database": str(database)}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


async def cli(*args: str, cwd: Path) -> tuple[int, str, str]:
    """`ussd-sim ARGS` in a process of its own: (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ussd.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[str]:
    """A running `ussd-sim serve` on tmp_path/ussd.sqlite3; its base URL."""
    proc, url, _smpp = await start(tmp_path)
    try:
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 20) == 0


async def dial(http: aiohttp.ClientSession, url: str, text: str) -> str:
    async with http.post(f"{url}/api/v1/phones/{RU}/dial", json={"text": text}) as r:
        body = await r.json()
        assert r.status == 200, body
        return str(body["text"])


async def test_running_gateway_sees_another_processes_writes(tmp_path: Path, served: str) -> None:
    config = config_for(tmp_path, tmp_path / "ussd.sqlite3")  # the file `served` uses
    async with aiohttp.ClientSession() as http:
        assert "120.50" in await dial(http, served, "*100#")  # read, and cached, by the gateway
        code, _, err = await cli(
            "subscribers",
            "set",
            RU,
            "balance=777.25",
            "password=fromCli9",
            "--config",
            str(config),
            cwd=tmp_path,
        )
        assert code == 0, err
        assert "777.25" in await dial(http, served, "*100#")  # no restart needed
        login = {"msisdn": RU, "password": "fromCli9"}
        async with http.post(f"{served}/api/v1/auth/login", json=login) as r:
            assert r.status == 200, await r.text()


@pytest.mark.parametrize(
    ("make", "below"),
    [(make, below) for _, make, below, _ in BAD_FILES],
    ids=[name for name, *_ in BAD_FILES],
)
async def test_bad_database_stops_start_up_with_one_line(
    tmp_path: Path, make: object, below: str
) -> None:
    bad = tmp_path / "ussd.sqlite3"
    make(bad)  # type: ignore[operator]
    database = bad / below if below else bad
    code, out, err = await cli(
        "serve",
        "--config",
        str(config_for(tmp_path, database)),
        "--smpp-listen",
        "127.0.0.1:0",
        "--http-listen",
        "127.0.0.1:0",
        cwd=tmp_path,
    )
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "storage.database" in lines[0] and "Traceback" not in err
    assert "ready" not in out


async def test_a_newer_schema_is_left_untouched(tmp_path: Path) -> None:
    bad = tmp_path / "ussd.sqlite3"
    db = sqlite3.connect(bad)
    db.execute("PRAGMA user_version = 999")
    db.close()
    code, _, err = await cli("serve", "--config", str(config_for(tmp_path, bad)), cwd=tmp_path)
    assert code == 2 and "newer" in err
    db = sqlite3.connect(bad)
    assert db.execute("PRAGMA user_version").fetchone()[0] == 999
    assert db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0] == 0
    db.close()
