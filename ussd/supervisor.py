"""`ussd-sim serve --workers N`: N worker processes on the same ports (docs/cluster.md).

Each worker is an ordinary `ussd-sim serve` that listens with SO_REUSEPORT, so the kernel
spreads connections among them; they share dialogs through Redis and data through PostgreSQL,
so this process only starts them, passes SIGINT/SIGTERM on, and starts again a worker that
dies (a `kill -9`, say): the others keep serving meanwhile.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from types import FrameType

from ussd import log

_log = log.get("supervisor")

# A worker that exits with one of these refused its configuration or could not listen:
# starting it again would fail the same way, so the supervisor stops instead.
FATAL = frozenset({1, 2})
MAX_RESTARTS = 100  # restarts in one run before the supervisor gives up


def supervise(argv: list[str], workers: int) -> int:
    """Run `workers` copies of argv until SIGINT/SIGTERM; returns the exit code."""
    stopping = False
    procs: list[subprocess.Popen[bytes]] = []

    def stop(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for proc in procs:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    code = 0
    restarts = 0
    try:
        procs.extend(subprocess.Popen(argv) for _ in range(workers))
        print(
            f"ussd-sim: {workers} workers, pids {' '.join(str(p.pid) for p in procs)}", flush=True
        )
        while any(p.returncode is None for p in procs):
            try:
                pid, status = os.wait()  # the next worker to exit; a signal runs stop() meanwhile
            except ChildProcessError:
                break
            index = next((i for i, p in enumerate(procs) if p.pid == pid), None)
            if index is None:
                continue
            procs[index].returncode = exit_code = os.waitstatus_to_exitcode(status)
            if stopping:
                continue
            if exit_code in FATAL or restarts >= MAX_RESTARTS:
                _log.error("worker_failed", pid=pid, status=exit_code)
                code = exit_code or 1
                stop(signal.SIGTERM, None)
                continue
            restarts += 1
            _log.warning("worker_restarted", pid=pid, status=exit_code)
            print(f"ussd-sim: worker {pid} exited ({exit_code}); starting another", flush=True)
            procs[index] = subprocess.Popen(argv)
        return code
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        sys.stdout.flush()
