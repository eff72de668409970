"""Password hashing off the event loop (docs/design.md: nothing slow on the loop).

scrypt costs about 40 ms of CPU per call. On the event loop, forty clients trying passwords
for unknown numbers stall every SMPP and HTTP dialog behind them. So the account rules
(ussd/accounts.py) stay sans-IO: a method that needs a hash is written as a *flow*, a generator
that yields a job (`Verify`, `Hash`) and is sent back the result. Who runs the
flow decides where the work happens:

- `drive(flow)` runs the jobs right here (CLI commands, start-up, unit tests);
- `HashPool.drive(flow)` awaits them on a few worker threads while the loop serves others
  (the gateway's HTTP API). hashlib.scrypt releases the GIL, so the threads really run in
  parallel with the loop.

The pool admits at most `workers` jobs at a time with a semaphore: requests beyond that wait
as cheap coroutines, and one whose client gives up is simply dropped before it costs a hash
(a job queued inside the executor would still run).

`*111*17#` hashes through the pool too, as an effect its confirming step awaits
(`Gateway.hash_off_loop`): the hash is stored before "password set" is shown.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Generator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from ussd import log, store

_log = log.get("passwords")

T = TypeVar("T")

HASH_WORKERS = 2  # the machine's cores are shared with the loop itself; more only queues


@dataclass(frozen=True, slots=True)
class Verify:
    """Is `password` the one hashed in `encoded`? (None: spend the same work, answer no)."""

    password: str
    encoded: str | None


@dataclass(frozen=True, slots=True)
class Hash:
    """A new salted hash of `password`."""

    password: str


Job = Verify | Hash
Flow = Generator[Job, Any, T]


def work(job: Verify | Hash) -> bool | str:
    """The CPU part of a job; runs on whichever thread the driver chose."""
    if isinstance(job, Verify):
        return store.verify_password(job.password, job.encoded)
    return store.hash_password(job.password)


def drive(flow: Flow[T]) -> T:
    """Run a flow to its end on this thread (no event loop in sight)."""
    try:
        job = next(flow)
        while True:
            job = flow.send(work(job))
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


class HashPool:
    """A bounded set of hashing threads for one event loop."""

    def __init__(self, workers: int = HASH_WORKERS) -> None:
        self.workers = workers
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ussd-scrypt")
        self._slots = asyncio.Semaphore(workers)
        self.busy = 0  # jobs on a thread now (never more than `workers`)
        self.busy_max = 0
        self._busy_lock = threading.Lock()

    def _work(self, job: Verify | Hash) -> bool | str:
        with self._busy_lock:
            self.busy += 1
            self.busy_max = max(self.busy_max, self.busy)
        try:
            return work(job)
        finally:
            with self._busy_lock:
                self.busy -= 1

    async def run(self, job: Verify | Hash) -> bool | str:
        """The result of one job, computed on a worker thread."""
        async with self._slots:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, self._work, job)

    async def drive(self, flow: Flow[T]) -> T:
        """Run a flow, awaiting its jobs off the loop; the flow's own code runs on the loop."""
        try:
            job = next(flow)
            while True:
                try:
                    result = await self.run(job)
                except BaseException:
                    flow.close()  # cancelled (client gone) or failed: the flow ends here
                    raise
                job = flow.send(result)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    def close(self) -> None:
        """Stop the threads; queued jobs are dropped."""
        self._executor.shutdown(wait=False, cancel_futures=True)
