"""In-process dialog steps per second and memory with 100,000 open dialogs (docs/performance.md).

Run: .venv/bin/python -m bench.engine   (prints figures; asserts nothing)
"""

from __future__ import annotations

import gc
import os
import time
from pathlib import Path

import yaml

from ussd import config as config_mod
from ussd import log
from ussd.clock import SimulatedClock
from ussd.runtime import Gateway

ROOT = Path(__file__).resolve().parent.parent


def rss_mb() -> float:
    """Resident set size of this process in MB (Linux /proc)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def make_gateway() -> Gateway:
    data = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    data["storage"] = {"database": ":memory:"}
    data["clock"] = {"mode": "simulated"}
    config = config_mod.from_mapping(data, source="bench")
    return Gateway.create(config, clock=SimulatedClock())


def steps_per_second(n_dialogs: int = 20_000) -> tuple[float, int]:
    """Dial *111# → 3 → 3 (number-management status, an end screen): three steps a dialog."""
    gw = make_gateway()
    numbers = [f"7926{i:07d}" for i in range(n_dialogs)]
    now = gw.clock.now()
    for msisdn in numbers:
        gw.store.create_subscriber(msisdn, "ru", now)
    engine = gw.engine
    gc.collect()
    start = time.perf_counter()
    for msisdn in numbers:
        engine.dial(msisdn, "*111#")
        engine.reply(msisdn, "3")
        screen = engine.reply(msisdn, "3")
        assert screen.end
    elapsed = time.perf_counter() - start
    return 3 * n_dialogs / elapsed, 3 * n_dialogs


def open_dialogs_memory(n: int = 100_000) -> tuple[float, float, float]:
    """RSS before and after opening n dialogs (menu screens awaiting a reply)."""
    gw = make_gateway()
    now = gw.clock.now()
    numbers = [f"7927{i:07d}" for i in range(n)]
    for msisdn in numbers:
        gw.store.create_subscriber(msisdn, "ru", now)
    gc.collect()
    before = rss_mb()
    start = time.perf_counter()
    for msisdn in numbers:
        gw.engine.dial(msisdn, "*111#")
    elapsed = time.perf_counter() - start
    gc.collect()
    after = rss_mb()
    assert len(gw.engine.dialogs) == n
    return before, after, elapsed


def main() -> None:
    log.configure("console", "error")
    cores = os.cpu_count()
    rate, steps = steps_per_second()
    print(
        f"engine: in-process dialog steps/s      {rate:>12,.0f}  "
        f"({steps:,} steps on 1 core; {cores} cores)"
    )
    before, after, elapsed = open_dialogs_memory()
    print(
        f"engine: RSS with 100,000 open dialogs  {after:>12,.1f} MB  "
        f"(process before dialling {before:,.1f} MB; opened in {elapsed:.1f} s; {cores} cores)"
    )


if __name__ == "__main__":
    main()
