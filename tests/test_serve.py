"""`ussd-sim serve` as a real process: ready banner, traffic, clean stop."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import ROOT

READY = re.compile(r"ussd-sim ready in ([\d.]+) s")
WEB = re.compile(r"web phone:\s+(http://[\d.]+:\d+)/")
SMPP = re.compile(r"bind an ESME to ([\d.]+):(\d+)")


async def start(tmp_path: Path, *extra: str) -> tuple[asyncio.subprocess.Process, str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ussd.cli",
        "serve",
        "--config",
        str(ROOT / "config.yaml"),
        "--database",
        str(tmp_path / "ussd.sqlite3"),
        "--smpp-listen",
        "127.0.0.1:0",
        "--http-listen",
        "127.0.0.1:0",
        *extra,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=tmp_path,
        env=env,
    )
    assert proc.stdout is not None
    banner = ""
    while "stop with Ctrl-C" not in banner:
        line = await asyncio.wait_for(proc.stdout.readline(), 20)
        if not line:
            raise AssertionError(f"serve exited early: {banner}")
        banner += line.decode()
    assert READY.search(banner)
    web = WEB.search(banner)
    smpp = SMPP.search(banner)
    assert web and smpp
    return proc, web.group(1), f"{smpp.group(1)}:{smpp.group(2)}"


async def test_serve_answers_and_stops_cleanly(tmp_path: Path) -> None:
    proc, url, _smpp = await start(tmp_path)
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{url}/healthz") as r:
                assert r.status == 200
            async with http.post(
                f"{url}/api/v1/phones/79161234567/dial", json={"text": "*100#"}
            ) as r:
                body = await r.json()
                assert r.status == 200 and body["end"] is True and "120.50" in body["text"]
            async with http.get(f"{url}/") as r:
                assert r.status == 200 and "<html" in (await r.text()).lower()
    finally:
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 20)
    assert code == 0
    assert (tmp_path / "ussd.sqlite3").exists()


async def test_serve_keeps_state_across_restarts(tmp_path: Path) -> None:
    proc, url, _ = await start(tmp_path)
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{url}/api/v1/phones/79990000000/dial", json={"text": "*111*828*1#"}) as r,
    ):
        assert r.status == 200
    proc.send_signal(signal.SIGINT)
    assert await asyncio.wait_for(proc.wait(), 20) == 0
    proc, url, _ = await start(tmp_path)
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{url}/api/v1/phones/79990000000/dial", json={"text": "*111*828#"}) as r,
        ):
            assert "вкл." in (await r.json())["text"]
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 20)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--http-listen", "0.0.0.0:0"], "http.admin_token"),  # docs/config.md
        (["--smpp-listen", "nowhere"], "--smpp-listen"),
    ],
)
async def test_serve_refuses_bad_settings(tmp_path: Path, extra: list[str], message: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ussd.cli",
        "serve",
        "--config",
        str(ROOT / "config.yaml"),
        "--database",
        str(tmp_path / "x.sqlite3"),
        *extra,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=tmp_path,
    )
    _out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 2
    assert message in err.decode()
