"""SMPP benches driven by `sim.load`: the gateway as a `ussd-sim serve` subprocess.

Run one part: .venv/bin/python -m bench.load PART   (prints one JSON object; asserts nothing)

Parts:
  e2e      USSD dialog steps/s end to end, closed model (*111# → 3 → 3)
  p99      latency at fixed offered rates (1,000 and 2,000 steps/s), open model
  ready    start to ready: spawn `ussd-sim serve`, wall time to the banner, median of 5
  ceiling  the load generator's own ceiling against bench/peer/null_smsc.py (*100#)
  peer     submit_sm throughput, same load, same run: the npm `smpp` peer, ussd-sim's SMPP
           layer alone (bench/peer/bare_smsc.py) and the gateway (MO SMS; USSD *100#)

The server runs on a simulated clock (no timer fires during a run) with a SQLite file in a
temporary directory, as `make run` would use it; the load generator is this process, so each
side has a core of its own on a 2-core machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sim.load import JourneyStep, LoadOptions, Mode, SmppAddress, run_load, submit_journey

ROOT = Path(__file__).resolve().parent.parent
PEER_DIR = ROOT / "bench" / "peer"
_SCRIPT = Path(sys.executable).parent / "ussd-sim"
# The console script, as a user starts it (start-to-ready counts its imports too).
USSD_SIM = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "ussd.cli"]
_BANNER = re.compile(r"bind an ESME to ([\d.]+):(\d+)")
_LISTENING = re.compile(r"listening ([\d.]+):(\d+)")

BINDS = 4
SUBSCRIBERS = 2_000
DURATION = 8.0
WARMUP = 2.0
CONCURRENCY = 64  # closed model: enough to keep both processes busy, not a queue
MENU: tuple[JourneyStep, ...] = (
    JourneyStep("dial", "*111#", "dial", True, False),
    JourneyStep("reply", "3", "reply #1", True, False),
    JourneyStep("reply", "3", "reply #2", True, True),
)
BALANCE: tuple[JourneyStep, ...] = (JourneyStep("dial", "*100#", "dial", True, True),)


# -- processes ----------------------------------------------------------------------------------


@contextlib.contextmanager
def spawned(
    cmd: list[str], pattern: re.Pattern[str], cwd: Path = ROOT
) -> Iterator[tuple[int, float]]:
    """Start cmd, wait for its address line; yield (port, seconds to that line); stop it."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert proc.stdout is not None
        port = 0
        deadline = started + 30
        while time.perf_counter() < deadline:
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError(f"{cmd[0:3]} exited before it was ready")
            match = pattern.search(line)
            if match:
                port = int(match.group(2))
                break
        if not port:
            raise RuntimeError(f"{cmd} printed no address within 30 s")
        yield port, time.perf_counter() - started
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def gateway(config: Path = ROOT / "config.yaml") -> Iterator[int]:
    """`ussd-sim serve` on 127.0.0.1:0, simulated clock, SQLite in a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="ussd-bench-") as tmp:
        cmd = [
            *USSD_SIM,
            "serve",
            "--smpp-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--database",
            os.path.join(tmp, "bench.sqlite3"),
            "--clock",
            "simulated",
            "--config",
            str(config),
        ]
        with spawned(cmd, _BANNER) as (port, _):
            yield port


def node_peer_available() -> str | None:
    """None when the npm peer can run, else why not."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not (PEER_DIR / "node_modules" / "smpp").is_dir():
        return "npm smpp is not installed (npm install --prefix bench/peer)"
    return None


# -- runs ---------------------------------------------------------------------------------------


def load(
    port: int,
    journey: tuple[JourneyStep, ...],
    *,
    mode: Mode = "ussd",
    rate: float | None = None,
    concurrency: int | None = None,
    duration: float = DURATION,
    warmup: float = WARMUP,
    prefix: str = "7990",
    system_id: str = "harness",
) -> dict[str, Any]:
    options = LoadOptions(
        target=SmppAddress("127.0.0.1", port, system_id, "secret"),
        journey=journey,
        mode=mode,
        rate=rate,
        concurrency=concurrency,
        duration=duration,
        warmup=warmup,
        binds=BINDS,
        subscribers=SUBSCRIBERS,
        prefix=prefix,
    )
    return asyncio.run(run_load(options)).to_dict()


def part_e2e() -> dict[str, Any]:
    with gateway() as port:
        return load(port, MENU, concurrency=CONCURRENCY)


def part_p99() -> dict[str, Any]:
    out: dict[str, Any] = {}
    with gateway() as port:
        for i, rate in enumerate((1000.0, 2000.0)):
            # Distinct MSISDN ranges: each rate provisions its own during its warm-up.
            out[f"{rate:.0f}"] = load(port, MENU, rate=rate, prefix=f"799{i + 1}")
    return out


def part_ready(runs: int = 5) -> dict[str, Any]:
    times = []
    for _ in range(runs):
        with gateway_ready() as seconds:
            times.append(seconds)
    return {"median": statistics.median(times), "runs": times}


@contextlib.contextmanager
def gateway_ready() -> Iterator[float]:
    with tempfile.TemporaryDirectory(prefix="ussd-ready-") as tmp:
        cmd = [
            *USSD_SIM,
            "serve",
            "--smpp-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--database",
            os.path.join(tmp, "ready.sqlite3"),
            "--config",
            str(ROOT / "config.yaml"),
        ]
        with spawned(cmd, _BANNER) as (_, seconds):
            yield seconds


def part_ceiling() -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.peer.null_smsc"]
    with spawned(cmd, _LISTENING) as (port, _):
        return load(port, BALANCE, concurrency=256, duration=5.0, warmup=1.0)


def part_peer() -> dict[str, Any]:
    out: dict[str, Any] = {}
    why = node_peer_available()
    runs: list[tuple[str, Mode]] = [("submit", "submit"), ("submit_ussd", "submit-ussd")]
    if why is None:
        with spawned(["node", str(PEER_DIR / "smsc.js"), "0"], _LISTENING) as (port, _):
            for name, mode in runs:
                out[f"peer_{name}"] = load(
                    port, submit_journey(mode), mode=mode, concurrency=CONCURRENCY
                )
    else:
        out["peer_unavailable"] = why
    # ussd-sim's SMPP layer alone (codec + sans-IO connection, no engine): layer vs layer.
    with spawned([sys.executable, "-m", "bench.peer.bare_smsc"], _LISTENING) as (port, _):
        out["layer_submit"] = load(
            port, submit_journey("submit"), mode="submit", concurrency=CONCURRENCY
        )
    with gateway() as port:
        for i, (name, mode) in enumerate(runs):
            out[f"ussd_sim_{name}"] = load(
                port, submit_journey(mode), mode=mode, concurrency=CONCURRENCY, prefix=f"799{i}"
            )
    return out


PARTS = {
    "e2e": part_e2e,
    "p99": part_p99,
    "ready": part_ready,
    "ceiling": part_ceiling,
    "peer": part_peer,
}


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] not in PARTS:
        print(f"usage: python -m bench.load {{{','.join(PARTS)}}}", file=sys.stderr)
        raise SystemExit(2)
    from ussd import log

    log.configure("console", "error")
    print(json.dumps(PARTS[args[0]]()))


if __name__ == "__main__":
    main()
