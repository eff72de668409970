"""`make bench`: every figure of docs/performance.md in one table, each bench in its own subprocess.

Run: .venv/bin/python -m bench [--json OUT.json] [--only NAME,...]   (asserts nothing)

Each bench runs in a fresh interpreter (`python -m bench --part NAME`, `python -m bench.load
PART`) so one bench's heap, caches and threads cannot disturb the next; the parent only
collects their JSON and prints the table: the figure, the machine's core count, the target
of docs/performance.md and whether it was met. Targets are stated for a 2-core machine with
the load generator on the same machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PART_TIMEOUT = 600  # seconds: every bench is bounded


# -- parts that run in their own subprocess ---------------------------------------------------


def _part_parse() -> dict[str, Any]:
    import random

    from bench import parse
    from ussd import dialstring

    texts = parse.distinct_strings(parse.DISTINCT)
    dialstring.cache_clear()
    distinct = parse.rate(texts, dialstring.parse)
    mix = random.Random(7).choices(parse.COMMON, k=parse.REPEATED)
    dialstring.cache_clear()
    repeated = parse.rate(mix, dialstring.parse)
    return {"distinct": distinct, "repeated": repeated}


def _part_engine_steps() -> dict[str, Any]:
    from bench import engine
    from ussd import log

    log.configure("console", "error")
    rate, steps = engine.steps_per_second()
    return {"steps_per_second": rate, "steps": steps}


def _part_records() -> dict[str, Any]:
    from bench import engine
    from ussd import log

    log.configure("console", "error")
    kept, not_kept = engine.records_cost()
    return {"kept": kept, "not_kept": not_kept}


def _part_engine_memory() -> dict[str, Any]:
    from bench import engine
    from ussd import log

    log.configure("console", "error")
    before, after, elapsed = engine.open_dialogs_memory()
    return {"rss_before_mb": before, "rss_mb": after, "seconds": elapsed}


def _part_drain() -> dict[str, Any]:
    from bench import drain

    return dict(drain.run(drain.DRAIN_SMS))


def _part_apps() -> dict[str, Any]:
    from bench import apps

    return apps.run()


def _part_smpp_apps() -> dict[str, Any]:
    from bench import smpp_apps

    return smpp_apps.run()


def _part_cluster() -> dict[str, Any]:
    from bench import cluster

    return cluster.part_cluster()


LOCAL_PARTS: dict[str, Callable[[], dict[str, Any]]] = {
    "parse": _part_parse,
    "engine_steps": _part_engine_steps,
    "engine_memory": _part_engine_memory,
    "records": _part_records,
    "drain": _part_drain,
    "apps": _part_apps,
    "cluster": _part_cluster,
    "smpp_apps": _part_smpp_apps,
}
LOAD_PARTS = ("e2e", "p99", "ready", "ceiling", "peer")


def run_part(name: str) -> dict[str, Any]:
    """One bench in a fresh interpreter; {"error": ...} when it fails."""
    if name in LOCAL_PARTS:
        cmd = [sys.executable, "-m", "bench", "--part", name]
    else:
        cmd = [sys.executable, "-m", "bench.load", name]
    print(f"  running {name} …", file=sys.stderr, flush=True)
    try:
        done = subprocess.run(
            cmd, cwd=ROOT, capture_output=True, text=True, timeout=PART_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {PART_TIMEOUT} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return {"error": f"exit {done.returncode}: " + " | ".join(tail)}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


# -- the table ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Row:
    figure: str
    value: float | None
    unit: str
    target: str
    met: bool | None  # None: no target, or not measured
    note: str = ""


def _fmt(value: float | None, unit: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if unit in ("ms", "s", "MB", "×"):
        return f"{value:,.2f} {unit}"
    return f"{value:,.0f} {unit}"


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _get(data: dict[str, Any], *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def _steps(report: dict[str, Any] | None) -> float | None:
    value = _get(report or {}, "steps", "per_second")
    return float(value) if value is not None else None


def _errors(report: dict[str, Any] | None) -> str:
    if not report or "error_count" not in report:
        return ""
    n = int(report["error_count"])
    return "" if n == 0 else f"{n:,} errors: {report.get('errors')}"


def build_rows(results: dict[str, dict[str, Any]]) -> list[Row]:
    rows: list[Row] = []

    def at_least(value: float | None, target: float) -> bool | None:
        return None if value is None else value >= target

    def at_most(value: float | None, target: float) -> bool | None:
        return None if value is None else value <= target

    parse = results.get("parse", {})
    v = parse.get("distinct")
    rows.append(
        Row("parse, distinct strings (1 core)", v, "/s", "≥ 25,000/s per core", at_least(v, 25e3))
    )
    v = parse.get("repeated")
    rows.append(
        Row("parse, repeated strings (1 core)", v, "/s", "≥ 1,000,000/s per core", at_least(v, 1e6))
    )
    v = results.get("engine_steps", {}).get("steps_per_second")
    rows.append(
        Row("in-process dialog steps (1 core)", v, "/s", "≥ 20,000/s per core", at_least(v, 2e4))
    )
    records = results.get("records", {})
    if records:
        ratio = records["kept"] / records["not_kept"] if records.get("not_kept") else None
        rows.append(
            Row(
                "ratio steps with dialog records / without",
                ratio,
                "×",
                "",
                None,
                "*111#→3→3 in-process, file stores, one record a dialog (docs/operations.md)",
            )
        )
    e2e = results.get("e2e")
    v = _steps(e2e)
    p99 = _get(e2e or {}, "latency_ms", "all steps", "p99")
    rows.append(
        Row(
            "USSD over SMPP end to end, steps/s",
            v,
            "/s",
            "≥ 5,000/s",
            at_least(v, 5000),
            f"*111#→3→3, closed, {_get(e2e or {}, 'concurrency')} users, "
            f"{_get(e2e or {}, 'binds')} binds; p99 {p99 if p99 is None else round(p99, 1)} ms"
            + (f"; {_errors(e2e)}" if _errors(e2e) else ""),
        )
    )
    for rate in ("1000", "2000"):
        report = _get(results.get("p99", {}), rate)
        v = _get(report or {}, "latency_ms", "all steps", "p99")
        got = _steps(report)
        rows.append(
            Row(
                f"p99 latency at {int(rate):,} steps/s offered",
                v,
                "ms",
                "≤ 20 ms" if rate == "2000" else "≤ 20 ms (same bar)",
                at_most(v, 20.0),
                f"open model, {got if got is None else round(got)} steps/s answered"
                + (f"; {_errors(report)}" if _errors(report) else ""),
            )
        )
    mem = results.get("engine_memory", {})
    v = mem.get("rss_mb")
    rows.append(
        Row(
            "RSS with 100,000 open dialogs",
            v,
            "MB",
            "≤ 300 MB",
            at_most(v, 300.0),
            f"whole process; {mem.get('rss_before_mb', float('nan')):.0f} MB before dialling",
        )
    )
    v = results.get("ready", {}).get("median")
    runs = results.get("ready", {}).get("runs", [])
    rows.append(
        Row(
            "start to ready (`ussd-sim serve`)",
            v,
            "s",
            "≤ 1.5 s",
            at_most(v, 1.5),
            "median of 5, spawn to banner: " + ", ".join(f"{t:.2f}" for t in runs),
        )
    )
    ceiling = _steps(results.get("ceiling"))
    rows.append(
        Row(
            "load generator ceiling (null SMSC)",
            ceiling,
            "/s",
            "≥ 2 × 5,000/s (not the bottleneck)",
            at_least(ceiling, 10_000),
            "*100# against bench/peer/null_smsc.py"
            + (f"; {_errors(results.get('ceiling'))}" if _errors(results.get("ceiling")) else ""),
        )
    )
    peer = results.get("peer", {})
    if "peer_unavailable" in peer:
        rows.append(Row("peer: npm smpp", None, "/s", "", None, str(peer["peer_unavailable"])))
    base = _steps(peer.get("peer_submit"))
    layer = _steps(peer.get("layer_submit"))
    rows.append(
        Row(
            "ussd-sim SMPP layer alone: submit_sm",
            layer,
            "/s",
            "",
            None,
            "bench/peer/bare_smsc.py: codec + sans-IO connection, no engine",
        )
    )
    ratio = _ratio(layer, base)
    rows.append(
        Row("ratio SMPP layer / peer, submit_sm", ratio, "×", "≥ 0.8", at_least(ratio, 0.8))
    )
    for name, label in (("submit", "MO submit_sm"), ("submit_ussd", "USSD submit_sm *100#")):
        base = _steps(peer.get(f"peer_{name}"))
        ours = _steps(peer.get(f"ussd_sim_{name}"))
        rows.append(Row(f"peer (npm smpp): {label}", base, "/s", "", None, "bare SMSC, Node"))
        # The gateway does more than the peer per submit_sm (engine, store): shown, not hidden.
        rows.append(
            Row(
                f"ussd-sim gateway: {label}",
                ours,
                "/s",
                "",
                None,
                "persists the MO SMS, delivers it back" if name == "submit" else "runs *100#",
            )
        )
        ratio = _ratio(ours, base)
        rows.append(
            Row(
                f"ratio gateway / peer, {label}",
                ratio,
                "×",
                "≥ 0.8",
                at_least(ratio, 0.8),
            )
        )
    # The gateway against its own SMPP layer alone, same run: what the engine and the store
    # cost per submit_sm, independent of how fast this machine or the peer is today.
    for name, label, target in (("submit_ussd", "USSD *100#", 0.5), ("submit", "MO SMS", 0.25)):
        ratio = _ratio(_steps(peer.get(f"ussd_sim_{name}")), layer)
        rows.append(
            Row(
                f"ratio gateway / own layer, {label}",
                ratio,
                "×",
                f"≥ {target}",
                at_least(ratio, target),
            )
        )
    apps = results.get("apps", {})
    v = apps.get("overhead_ms")
    alone, through = apps.get("app_alone_ms", {}), apps.get("through_gateway_ms", {})
    rows.append(
        Row(
            "gateway overhead per app step (null app)",
            v,
            "ms",
            "≤ 1 ms over the app's own latency",
            at_most(v, 1.0),
            f"{apps.get('rate', 0):,.0f} steps/s offered; mean "
            f"{_fmt(through.get('mean'), 'ms')} through the gateway vs "
            f"{_fmt(alone.get('mean'), 'ms')} to the app alone; p99 "
            f"{_fmt(through.get('p99'), 'ms')} vs {_fmt(alone.get('p99'), 'ms')}; one step at a "
            f"time {_fmt(_get(apps, 'serial', 'overhead_ms'), 'ms')} more (bench/apps.py)"
            if apps and "error" not in apps
            else "",
        )
    )
    smpp_apps = results.get("smpp_apps", {})
    closed = smpp_apps.get("closed")
    v = _steps(closed)
    rows.append(
        Row(
            "USSD through an app bind (harness → gateway → echo app), steps/s",
            v,
            "/s",
            "",
            None,
            f"*555#→1→0, closed, {_get(closed or {}, 'concurrency')} users (bench/smpp_apps.py)"
            + (f"; {_errors(closed)}" if _errors(closed) else ""),
        )
    )
    report = smpp_apps.get("1000")
    v = _get(report or {}, "latency_ms", "all steps", "p99")
    got = _steps(report)
    rows.append(
        Row(
            "p99 through an app bind at 1,000 steps/s offered",
            v,
            "ms",
            "≤ 20 ms (the built-in bar)",
            at_most(v, 20.0),
            f"open model, {got if got is None else round(got)} steps/s answered"
            + (f"; {_errors(report)}" if _errors(report) else ""),
        )
    )
    drain = results.get("drain", {})
    v = drain.get("sms_per_second")
    rows.append(
        Row(
            f"store-and-forward drain, {drain.get('sms', 0):,} queued SMS",
            v,
            "/s",
            "",
            None,
            "one bind, window 100, file store (bench/drain.py)",
        )
    )
    during, after = drain.get("dial_during_median_ms"), drain.get("dial_after_median_ms")
    rows.append(
        Row(
            "*100# during the drain, median",
            during,
            "ms",
            "",
            None,
            f"{_fmt(after, 'ms')} once the queue is empty" if after is not None else "",
        )
    )
    rows.extend(_cluster_rows(results.get("cluster", {})))
    return rows


def _cluster_rows(cluster: dict[str, Any]) -> list[Row]:
    """Embedded, one worker and two workers side by side (docs/cluster.md)."""
    if "error" in cluster:
        return [Row("cluster mode", None, "", "", None, str(cluster["error"]))]
    rows: list[Row] = []
    embedded = cluster.get("embedded", {})
    base_cpu = embedded.get("cpu_per_1000_steps")
    for key, label in (
        ("embedded", "embedded"),
        ("workers_1", "1 worker"),
        ("workers_2", "2 workers"),
    ):
        run = cluster.get(key, {})
        cpu = run.get("cpu_per_1000_steps")
        rows.append(
            Row(
                f"USSD over SMPP, {label}, steps/s",
                run.get("steps_per_second"),
                "/s",
                "",
                None,
                f"{cpu} CPU-s per 1,000 steps (gateway processes)" if cpu is not None else "",
            )
        )
    for key, label in (("workers_1", "1 worker"), ("workers_2", "2 workers")):
        cpu = cluster.get(key, {}).get("cpu_per_1000_steps")
        ratio = base_cpu / cpu if base_cpu and cpu else None
        rows.append(
            Row(
                f"cluster per-worker cost, embedded / {label}",
                ratio,
                "×",
                "≥ 0.6×",
                None if ratio is None else ratio >= 0.6,
                "CPU-s per 1,000 steps: the load generator shares the 2 cores",
            )
        )
    return rows


def format_table(rows: list[Row], header: str) -> str:
    cells = [
        (
            r.figure,
            _fmt(r.value, r.unit),
            r.target or "—",
            "met" if r.met else "MISSED" if r.met is False else "—",
            r.note,
        )
        for r in rows
    ]
    titles = ("figure", "measured", "target (2 cores)", "result", "notes")
    widths = [max(len(t), *(len(c[i]) for c in cells)) for i, t in enumerate(titles[:4])]
    lines = [header]
    line = "  ".join(t.ljust(widths[i]) for i, t in enumerate(titles[:4])) + "  " + titles[4]
    lines.append(line)
    lines.append("-" * min(len(line) + 40, 160))
    for c in cells:
        lines.append(
            "  ".join(
                (c[i].rjust(widths[i]) if i == 1 else c[i].ljust(widths[i])) for i in range(4)
            )
            + "  "
            + c[4]
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--part", choices=sorted(LOCAL_PARTS), help=argparse.SUPPRESS)
    parser.add_argument("--json", metavar="OUT.json", help="also write the raw results here")
    parser.add_argument(
        "--only",
        metavar="NAMES",
        help="comma-separated parts: " + ",".join([*LOCAL_PARTS, *LOAD_PARTS]),
    )
    args = parser.parse_args(argv)
    if args.part:
        print(json.dumps(LOCAL_PARTS[args.part]()))
        return 0
    names = [*LOCAL_PARTS, *LOAD_PARTS]
    if args.only:
        wanted = args.only.split(",")
        unknown = set(wanted) - set(names)
        if unknown:
            parser.error(f"unknown parts: {', '.join(sorted(unknown))}")
        names = [n for n in names if n in wanted]
    cores = os.cpu_count() or 0
    load_before = os.getloadavg()
    started = dt.datetime.now().astimezone()
    results = {name: run_part(name) for name in names}
    load_after = os.getloadavg()
    header = (
        f"ussd-sim bench, {started:%Y-%m-%d %H:%M %Z}; {cores} cores ({platform.machine()}, "
        f"Python {platform.python_version()}); load average {load_before[0]:.2f} before, "
        f"{load_after[0]:.2f} after"
    )
    print(format_table(build_rows(results), header))
    failed = {n: r["error"] for n, r in results.items() if "error" in r}
    for name, error in failed.items():
        print(f"  {name}: {error}")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {"header": header, "cores": cores, "results": results}, indent=2, default=str
            ),
            encoding="utf-8",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
