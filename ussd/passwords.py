"""Password hashing off the event loop (docs/design.md: nothing slow on the loop; docs/design.md).

scrypt costs about 40 ms of CPU per call. On the event loop, forty clients trying passwords
for unknown numbers stall every SMPP and HTTP dialog behind them. So the account rules
(ussd/accounts.py) stay sans-IO: a method that needs a hash is written as a *flow*, a generator
that yields a job (`Verify`, `Hash`, `Settle`) and is sent back the result. Who runs the
flow decides where the work happens:

- `drive(flow)` runs the jobs right here (CLI commands, start-up, unit tests);
- `HashPool.drive(flow)` awaits them on a few worker threads while the loop serves others
  (the gateway's HTTP API). hashlib.scrypt releases the GIL, so the threads really run in
  parallel with the loop.

The pool admits at most `workers` jobs at a time with a semaphore: requests beyond that wait
as cheap coroutines, and one whose client gives up is simply dropped before it costs a hash
(a job queued inside the executor would still run).

`HashPool.hash_later` is the other direction: `*111*17#` (a synchronous engine step) ends its
dialog at once and the hash is stored when the thread finishes. Until then a login of that
number waits for it (`Settle`), so a client never sees the old password after the new one
was confirmed.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Generator
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


@dataclass(frozen=True, slots=True)
class Settle:
    """Wait until password writes of `msisdn` started earlier have landed."""

    msisdn: str


Job = Verify | Hash | Settle
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
            job = flow.send(None if isinstance(job, Settle) else work(job))
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


class HashPool:
    """A bounded set of hashing threads for one event loop."""

    def __init__(self, workers: int = HASH_WORKERS) -> None:
        self.workers = workers
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ussd-scrypt")
        self._slots = asyncio.Semaphore(workers)
        # Per number, the hash_later job whose result is to be stored (a newer one wins).
        self._pending: dict[str, asyncio.Future[str]] = {}
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

    async def _hash(self, password: str) -> str:
        encoded = await self.run(Hash(password))
        assert isinstance(encoded, str)
        return encoded

    async def settle(self, msisdn: str) -> None:
        """Return once no hash_later of msisdn is in flight."""
        while (pending := self._pending.get(msisdn)) is not None:
            await asyncio.wait([pending])

    async def drive(self, flow: Flow[T]) -> T:
        """Run a flow, awaiting its jobs off the loop; the flow's own code runs on the loop."""
        try:
            job = next(flow)
            while True:
                try:
                    result: object = None
                    if isinstance(job, Settle):
                        await self.settle(job.msisdn)
                    else:
                        result = await self.run(job)
                except BaseException:
                    flow.close()  # cancelled (client gone) or failed: the flow ends here
                    raise
                job = flow.send(result)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    def hash_later(self, msisdn: str, password: str, store_hash: Callable[[str], None]) -> None:
        """Hash on a thread, then call `store_hash(hash)` on the loop (needs a running loop)."""
        future = asyncio.ensure_future(self._hash(password))
        self._pending[msisdn] = future

        def landed(done: asyncio.Future[str]) -> None:
            if self._pending.get(msisdn) is not done:
                return  # a newer password for the number was confirmed meanwhile
            try:
                if done.cancelled():
                    _log.warning("password_not_stored", msisdn=msisdn, reason="shutdown")
                elif done.exception() is not None:
                    _log.error("password_hash_failed", msisdn=msisdn)
                else:
                    store_hash(done.result())
            finally:
                del self._pending[msisdn]

        future.add_done_callback(landed)

    def close(self) -> None:
        """Stop the threads; queued jobs are dropped."""
        for future in list(self._pending.values()):
            future.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)
