"""What the gateway adds per step to an external app's own latency (docs/apps.md, `make bench`).

A null app (the `json` dialect, answering at once) runs in a process of its own. The same steps
are offered at a fixed rate twice: straight to the app with an aiohttp client like the
gateway's, which is the app's own latency; then as replies through the gateway
(`Gateway.reply`: engine step, effect, request in the dialect, answer, screen). The figure is the
difference of the means, in ms per step. Both are then run one step at a time as well, which
shows the cost of a step with nothing queued in front of it (the difference of the medians).

Run: .venv/bin/python -m bench.apps   (prints figures; asserts nothing)
"""

from __future__ import annotations

import asyncio
import itertools
import json
import statistics
import subprocess
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from ussd import config as config_mod
from ussd import log
from ussd.clock import SimulatedClock
from ussd.runtime import Gateway

ROOT = Path(__file__).resolve().parent.parent
RATE = 1000.0  # steps per second offered
STEPS = 5000  # measured steps per phase (5 s at RATE)
WARMUP = 500
SERIAL = 2000  # steps one at a time, after the offered ones
DIALOGS = 200  # open dialogs that take the replies in turn
ANSWER = b'{"text": "ok", "end": false}'


RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
    len(ANSWER),
    ANSWER,
)


class NullApp(asyncio.Protocol):
    """Answers each HTTP/1.1 request at once, keep-alive: the app costs next to nothing, so
    the bench measures the gateway, not an app framework (like bench/peer/null_smsc.py)."""

    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (head_end := self.buffer.find(b"\r\n\r\n")) >= 0:
            length = 0
            for line in self.buffer[:head_end].split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            end = head_end + 4 + length
            if len(self.buffer) < end:
                return
            self.buffer = self.buffer[end:]
            assert self.transport is not None
            self.transport.write(RESPONSE)


def serve_null_app() -> None:
    """The null app: prints its port, runs until stdin closes."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(NullApp, "127.0.0.1", 0)
        print(server.sockets[0].getsockname()[1], flush=True)
        await loop.run_in_executor(None, sys.stdin.read)
        server.close()

    asyncio.run(main())


async def offered(step: Callable[[int], Awaitable[None]], n: int) -> list[float]:
    """Start step(i) every 1/RATE s (open model); each one's latency in ms."""
    loop = asyncio.get_running_loop()
    latencies: list[float] = []

    async def timed(i: int, due: float) -> None:
        await step(i)
        # From when it was due, not when it started: a late start is the gateway's cost too.
        latencies.append((loop.time() - due) * 1000.0)

    start = loop.time()
    tasks = []
    for i in range(n):
        due = start + i / RATE
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(timed(i, due)))
    await asyncio.gather(*tasks)
    return latencies


async def one_at_a_time(step: Callable[[int], Awaitable[None]], n: int) -> list[float]:
    """step(i) after step(i - 1) has finished: latency with no queueing at all, in ms."""
    latencies: list[float] = []
    for i in range(n):
        began = time.perf_counter()
        await step(i)
        latencies.append((time.perf_counter() - began) * 1000.0)
    return latencies


def summary(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "mean": statistics.fmean(ordered),
        "p50": ordered[len(ordered) // 2],
        "p99": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
    }


async def measure(port: int) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}/ussd"
    # The app alone, through a client set up as the gateway's (ussd/apps/client.py).
    body = json.dumps(
        {"session": "s", "msisdn": "79260000000", "code": "*384#", "text": "1", "inputs": ["1"]}
    ).encode()
    connector = aiohttp.TCPConnector(limit=100, limit_per_host=0)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def direct(_: int) -> None:
            async with http.post(
                url, data=body, headers={"Content-Type": "application/json"}
            ) as response:
                await response.read()

        await offered(direct, WARMUP)
        alone = await offered(direct, STEPS)
        alone_serial = await one_at_a_time(direct, SERIAL)

    data = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    data["storage"] = {"database": ":memory:"}
    data["clock"] = {"mode": "simulated"}  # the app answers long before any deadline
    data["apps"] = {"null": {"url": url, "dialect": "json"}}
    data["ussd"] = {**data.get("ussd", {}), "routes": {"*384#": "app:null"}}
    gw = Gateway.create(config_mod.from_mapping(data, source="bench"), clock=SimulatedClock())
    await gw.start()
    try:
        idle: deque[str] = deque()  # open dialogs showing the app's screen
        numbers = (f"7926{i:07d}" for i in itertools.count())
        for _ in range(DIALOGS):
            msisdn = next(numbers)
            await gw.dial(msisdn, "*384#")
            idle.append(msisdn)

        async def through(_: int) -> None:
            # A reply on an idle dialog; should all wait for the app (an overloaded gateway),
            # a dial on a new number, which asks the app just the same.
            if idle:
                msisdn = idle.popleft()
                await gw.reply(msisdn, "1")
            else:
                msisdn = next(numbers)
                await gw.dial(msisdn, "*384#")
            idle.append(msisdn)

        await offered(through, WARMUP)
        gateway = await offered(through, STEPS)
        gateway_serial = await one_at_a_time(through, SERIAL)
    finally:
        await gw.stop()
    a, g = summary(alone), summary(gateway)
    a1, g1 = summary(alone_serial), summary(gateway_serial)
    return {
        "rate": RATE,
        "steps": STEPS,
        "app_alone_ms": a,
        "through_gateway_ms": g,
        "overhead_ms": g["mean"] - a["mean"],
        # One step at a time: what a step costs with nothing queued in front of it.
        "serial": {
            "app_alone_ms": a1,
            "through_gateway_ms": g1,
            "overhead_ms": g1["p50"] - a1["p50"],
        },
    }


def run() -> dict[str, Any]:
    log.configure("console", "error")
    app = subprocess.Popen(
        [sys.executable, "-m", "bench.apps", "--serve"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert app.stdout is not None and app.stdin is not None
        port = int(app.stdout.readline())
        return asyncio.run(measure(port))
    finally:
        if app.stdin is not None:
            app.stdin.close()
        try:
            app.wait(10)
        except subprocess.TimeoutExpired:
            app.kill()


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        serve_null_app()
    else:
        started = time.perf_counter()
        print(json.dumps(run(), indent=2))
        print(f"{time.perf_counter() - started:.1f} s", file=sys.stderr)
