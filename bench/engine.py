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


def records_cost(rounds: int = 6, n_dialogs: int = 3_000) -> tuple[float, float]:
    """Steps/s of *111# → 3 → 3 with dialog records kept and with `records.max: 0`, on file
    stores as `serve` uses (ussd/records.py): rounds alternate in one process so both meet the
    same machine load; the best round of each."""
    import tempfile

    data = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    data["clock"] = {"mode": "simulated"}
    best = {True: 0.0, False: 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        worlds = {}
        for kept in (True, False):
            data["storage"] = {"database": f"{tmp}/{kept}.sqlite3"}
            data["records"] = {"max": 100_000 if kept else 0}
            config = config_mod.from_mapping(data, source="bench")
            worlds[kept] = gw = Gateway.create(config, clock=SimulatedClock())
            for i in range(n_dialogs):
                gw.store.create_subscriber(f"7928{i:07d}", "ru", gw.clock.now())
        numbers = [f"7928{i:07d}" for i in range(n_dialogs)]
        for turn in range(2 * rounds):
            kept = turn % 2 == 0
            engine = worlds[kept].engine
            gc.collect()
            start = time.perf_counter()
            for msisdn in numbers:
                engine.dial(msisdn, "*111#")
                engine.reply(msisdn, "3")
                engine.reply(msisdn, "3")
            worlds[kept].records.flush()  # the batch still waiting is part of the cost
            best[kept] = max(best[kept], 3 * n_dialogs / (time.perf_counter() - start))
        for gw in worlds.values():
            gw.close()
    return best[True], best[False]


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
