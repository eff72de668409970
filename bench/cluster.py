"""Cluster mode beside the embedded gateway (docs/cluster.md, docs/performance.md).

Run: .venv/bin/python -m bench.cluster   (prints one JSON line; `make bench` shows it)

The same closed-model USSD load (bench/load.py: *111#→3→3 over SMPP) against the embedded
`ussd-sim serve` (SQLite, dialogs in memory), one cluster worker and `serve --workers 2`, each
on a private redis-server and PostgreSQL started here. On a 2-core machine the load generator
shares the cores with the workers, so beside the steps/s each run also gives what the gateway
processes spent: CPU-seconds per 1,000 steps, the fair per-worker comparison. Each gateway
has its 2,000 subscribers before the timed run (provision()): the rows compare steps.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import yaml

from bench.load import CONCURRENCY, MENU, SUBSCRIBERS, USSD_SIM, load
from tests.services import create_database, free_port, running, start_postgres, start_redis

ROOT = Path(__file__).resolve().parent.parent
_BANNER = re.compile(rb"bind an ESME to ([\d.]+):(\d+)")
READY = 60.0
PROVISION_PASSES = 4


@contextlib.contextmanager
def serving(config: Path, workers: int = 1) -> Iterator[tuple[int, list[psutil.Process]]]:
    """`ussd-sim serve` (with --workers N when N > 1) until every worker printed its banner."""
    cmd = [*USSD_SIM, "serve", "--config", str(config), "--clock", "simulated"]
    if workers > 1:
        cmd += ["--workers", str(workers)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    try:
        seen = b""
        deadline = time.monotonic() + READY
        while len(_BANNER.findall(seen)) < workers:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([proc.stdout], [], [], max(left, 0))
            chunk = os.read(proc.stdout.fileno(), 65536) if ready else b""
            if not chunk:
                raise RuntimeError(f"serve did not start: {seen.decode()[-500:]}")
            seen += chunk
        port = int(_BANNER.findall(seen)[0][1])
        parent = psutil.Process(proc.pid)
        gateways = parent.children() if workers > 1 else [parent]
        yield port, gateways
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _cpu(processes: list[psutil.Process]) -> float:
    total = 0.0
    for p in processes:
        times = p.cpu_times()
        total += times.user + times.system
    return total


def provision(port: int, prefix: str) -> dict[str, Any]:
    """Dial every number of the load once, untimed, before the timed run.

    The first dial of a number creates its subscriber: a durable write (a PostgreSQL
    transaction in cluster mode), once per number and not per step. The timed run's own
    warm-up does not cover all of them when a run is slow, and the rows compare the steps,
    so each gateway gets its numbers first. The load hands out its numbers in order, from the
    first, so one pass of at least as many journeys as numbers has dialled them all.
    """
    started = time.perf_counter()
    duration, passes = 2.0, 0
    while True:
        passes += 1
        report = load(
            port, MENU, concurrency=CONCURRENCY, prefix=prefix, duration=duration, warmup=0.0
        )
        journeys = report["journeys"]["count"]
        if journeys >= SUBSCRIBERS or passes == PROVISION_PASSES:
            break
        duration = 1.5 * SUBSCRIBERS / max(journeys / duration, 1.0)
    return {
        "seconds": round(time.perf_counter() - started, 1),
        "passes": passes,
        "complete": journeys >= SUBSCRIBERS,
    }


def measure(config: Path, workers: int, prefix: str) -> dict[str, Any]:
    with serving(config, workers) as (port, gateways):
        provisioned = provision(port, prefix)
        before = _cpu(gateways)
        report = load(port, MENU, concurrency=CONCURRENCY, prefix=prefix)
        cpu = _cpu(gateways) - before
    steps = report["steps"]["count"]
    return {
        "workers": workers,
        "steps_per_second": report["steps"]["per_second"],
        "steps": steps,
        "cpu_seconds": round(cpu, 3),
        "cpu_per_1000_steps": round(1000 * cpu / steps, 4) if steps else None,
        "errors": report.get("errors"),
        "provisioned": provisioned,
    }


def _config(tmp: Path, name: str, cluster: dict[str, str] | None) -> Path:
    data: dict[str, Any] = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    data["http"] = {**data.get("http", {}), "listen": f"127.0.0.1:{free_port()}"}
    data["smpp"] = {**data.get("smpp", {}), "listen": f"127.0.0.1:{free_port()}"}
    data["storage"] = {"database": str(tmp / f"{name}.sqlite3")}
    if cluster is not None:
        data["cluster"] = cluster
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def part_cluster() -> dict[str, Any]:
    out: dict[str, Any] = {}
    with (
        tempfile.TemporaryDirectory(prefix="ussd-bench-cluster-") as tmp_name,
        running(start_redis, "ussd-bench-redis-") as redis_server,
        running(start_postgres, "ussd-bench-pg-") as pg_server,
    ):
        tmp = Path(tmp_name)
        out["embedded"] = measure(_config(tmp, "embedded", None), 1, "7990")
        for workers in (1, 2):
            cluster = {
                "redis": f"redis://127.0.0.1:{redis_server.port}/{workers}",
                "postgres": create_database(pg_server, f"bench{workers}"),
            }
            config = _config(tmp, f"cluster{workers}", cluster)
            out[f"workers_{workers}"] = measure(config, workers, f"799{workers}")
    return out


def main() -> None:
    from ussd import log

    log.configure("console", "error")
    print(json.dumps(part_cluster()))


if __name__ == "__main__":
    main()
