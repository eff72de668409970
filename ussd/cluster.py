"""Cluster mode: the engine's dialogs registered in Redis, shared by every worker (docs/cluster.md).

The engine stays sans-IO and keeps the dialogs it runs in memory; this adapter listens to its
events and keeps Redis the one place that says which worker holds the dialog of an MSISDN:

- a dial registers the new dialog atomically (one Lua script): a dialog another worker held
  for that MSISDN is replaced, and that worker is told to end its copy (TS 24.090: one USSD
  transaction per subscriber; docs/services.md);
- every screen saves the dialog's plain state (`Dialog.to_state()`) with its next deadline, only
  while the dialog is still the registered one;
- a reply or release that reaches a worker without the dialog takes it over from Redis
  (`Dialog.from_state()`), so any worker serves any HTTP request;
- a dialog's own worker expires it; the dialogs of a worker that stopped beating (killed) are
  expired by exactly one other worker, the one whose script removes them.

Registrations are sent in one pipeline per pass of the event loop, not one round trip per
event, so the cost per step stays a fraction of a step. Messages between workers go through a
Redis stream per worker (its inbox).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio as aredis
from redis.commands.core import AsyncScript, Script

from ussd import log
from ussd.engine import Dialog, DialogBusy, Engine
from ussd.events import DialogEnded, DialogStarted, Event, Outcome, ScreenShown

_log = log.get("cluster")

PREFIX = "ussd:"
DIALOG = PREFIX + "dialog:"  # + msisdn: hash of worker, session, state (JSON), deadline
DEADLINES = PREFIX + "deadlines"  # sorted set: msisdn by its dialog's next deadline
WORKER = PREFIX + "worker:"  # + worker id: present while the worker beats
INBOX = PREFIX + "inbox:"  # + worker id: a stream of what other workers tell it

HEARTBEAT = 1.0  # seconds between beats (and passes of the expiry of dead workers' dialogs)
ALIVE = 3.0  # a worker that has not beaten for this long is dead: its dialogs are reaped
GRACE = 1.0  # a dialog past its deadline this long is reaped when its worker is dead
REAP_BATCH = 100
INBOX_LENGTH = 10_000  # entries kept per inbox (MAXLEN ~)
TIMEOUT = 2.0  # seconds to connect to Redis or wait for an answer: an outage is an error

# KEYS: dialog, deadlines. ARGV: worker, session, deadline, msisdn, inbox prefix, inbox length.
_CLAIM = """
local prev = redis.call('HMGET', KEYS[1], 'worker', 'session')
redis.call('HSET', KEYS[1], 'worker', ARGV[1], 'session', ARGV[2], 'state', '',
           'deadline', ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
if prev[1] and prev[1] ~= ARGV[1] and prev[2] ~= ARGV[2] then
  redis.call('XADD', ARGV[5] .. prev[1], 'MAXLEN', '~', ARGV[6], '*',
             'op', 'replaced', 'msisdn', ARGV[4], 'session', prev[2])
  return prev[1]
end
return false
"""
# KEYS: dialog, deadlines. ARGV: worker, session, state, deadline, msisdn, waiting (0/1).
_SAVE = """
if redis.call('HGET', KEYS[1], 'session') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'worker', ARGV[1], 'state', ARGV[3], 'deadline', ARGV[4],
           'waiting', ARGV[6])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[5])
return 1
"""
# KEYS: dialog, deadlines. ARGV: session, msisdn.
_RELEASE = """
if redis.call('HGET', KEYS[1], 'session') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[2])
return 1
"""
# KEYS: dialog. ARGV: worker, msisdn, inbox prefix, inbox length.
_TAKE = """
local d = redis.call('HMGET', KEYS[1], 'worker', 'session', 'state', 'waiting')
if not d[1] or not d[3] or d[3] == '' then return false end
-- Its worker performs the outside answer the dialog waits for: it stays there.
if d[4] == '1' and d[1] ~= ARGV[1] then return {d[1], d[2], ''} end
if d[1] ~= ARGV[1] then
  redis.call('HSET', KEYS[1], 'worker', ARGV[1])
  redis.call('XADD', ARGV[3] .. d[1], 'MAXLEN', '~', ARGV[4], '*',
             'op', 'moved', 'msisdn', ARGV[2], 'session', d[2])
end
return {d[1], d[2], d[3]}
"""
# KEYS: dialog, deadlines. ARGV: due by, msisdn, worker prefix, this worker, held here (0/1).
_REAP = """
local score = redis.call('ZSCORE', KEYS[2], ARGV[2])
if not score or tonumber(score) > tonumber(ARGV[1]) then return false end
local d = redis.call('HMGET', KEYS[1], 'worker', 'session', 'state')
if d[1] then
  if d[1] == ARGV[4] then
    if ARGV[5] == '1' then return false end
  elseif redis.call('EXISTS', ARGV[3] .. d[1]) == 1 then
    return false
  end
end
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('DEL', KEYS[1])
return {d[1] or '', d[2] or '', d[3] or ''}
"""


def default_worker_id() -> str:
    """host:pid, unique on a host and across hosts."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True, slots=True)
class Reaped:
    """A dialog of a dead worker that this worker expired."""

    msisdn: str
    session: str
    worker: str


def _next_deadline(dialog: Dialog) -> float:
    if dialog.waiting:
        return min(dialog.waiting_deadline, dialog.max_deadline)
    return min(dialog.reply_deadline, dialog.max_deadline)


class Cluster:
    """One worker's link to the others: attach() to a gateway's engine, start() on the loop."""

    def __init__(self, engine: Engine, url: str, worker: str | None = None) -> None:
        self.engine = engine
        self.url = url
        self.worker = worker or default_worker_id()
        self._inbox = INBOX + self.worker
        # The loop's client for registrations, the inbox and beats; a plain one for take-overs,
        # which the engine asks for in the middle of a synchronous step (a rare path).
        self._async = aredis.Redis.from_url(
            url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT
        )
        self._inbox_client = aredis.Redis.from_url(url, socket_connect_timeout=TIMEOUT)
        self._sync = redis.Redis.from_url(
            url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT
        )
        self._scripts: dict[str, AsyncScript] = {
            name: self._async.register_script(lua)
            for name, lua in (("claim", _CLAIM), ("save", _SAVE), ("release", _RELEASE))
        }
        self._take: Script = self._sync.register_script(_TAKE)
        self._reap: AsyncScript = self._async.register_script(_REAP)
        self._ops: list[tuple[str, str, str, list[Any]]] = []  # (script, msisdn, session, args)
        self._flushing: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._unsubscribe: Callable[[], None] | None = None
        self._down = False  # Redis was unreachable at the last attempt (logged once)
        self.lost = 0  # dialogs this worker ended because another worker replaced them
        self.taken = 0  # dialogs this worker took over from another
        self.reaped: list[Reaped] = []
        self.errors = 0  # Redis operations that failed

    # -- life ---------------------------------------------------------------------------------

    def attach(self) -> None:
        """Listen to the engine and answer its take-over questions."""
        self._unsubscribe = self.engine.subscribe(self._on_event)
        self.engine.remote = self.take

    async def start(self) -> None:
        """Check Redis answers, beat, and run the inbox and the expiry of dead workers' dialogs."""
        try:
            await self._async.ping()
        except redis.RedisError as exc:
            raise ConnectionError(f"Redis {self._where()}: {exc}") from None
        await self._beat()
        self.attach()
        self._tasks = [
            asyncio.create_task(self._beating(), name="cluster-heartbeat"),
            asyncio.create_task(self._reading(), name="cluster-inbox"),
        ]
        _log.info("cluster_joined", worker=self.worker, redis=self._where())

    async def stop(self) -> None:
        """Leave: flush what is queued, stop beating (the dialogs end with the gateway).

        Each part is bounded by TIMEOUT: a Redis that is gone never holds a stop up.
        """
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=TIMEOUT)
        self._tasks = []
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self.engine.remote == self.take:
            self.engine.remote = None
        for step, what in (
            (self.flush, "flush"),
            (lambda: self._async.delete(WORKER + self.worker), "leave"),
            (self._async.aclose, "close"),
            (self._inbox_client.aclose, "close inbox"),
        ):
            try:
                async with asyncio.timeout(TIMEOUT):
                    await step()
            except (TimeoutError, redis.RedisError) as exc:
                _log.warning("cluster_stop_incomplete", step=what, error=str(exc) or "timeout")
        self._sync.close()

    def _where(self) -> str:
        kwargs = self._sync.connection_pool.connection_kwargs
        return f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"

    # -- registrations, one pipeline per pass of the loop ---------------------------------------

    def _on_event(self, event: Event) -> None:
        if isinstance(event, DialogStarted):
            deadline = self.engine.clock.now() + self.engine.config.ussd.reply_timeout
            args = [self.worker, event.session, repr(deadline), event.msisdn, INBOX, INBOX_LENGTH]
            self._queue("claim", event.msisdn, event.session, args)
        elif isinstance(event, ScreenShown):
            dialog = self.engine.dialog(event.msisdn)
            if dialog is None or dialog.session != event.screen.session or event.screen.end:
                return
            try:
                state = json.dumps(dialog.to_state(), separators=(",", ":"))
            except (TypeError, ValueError):
                _log.warning("cluster_state_not_serialisable", session=dialog.session)
                return
            due = repr(_next_deadline(dialog))
            waiting = "1" if dialog.waiting else "0"
            args = [self.worker, dialog.session, state, due, dialog.msisdn, waiting]
            self._queue("save", dialog.msisdn, dialog.session, args)
        elif isinstance(event, DialogEnded):
            self._queue("release", event.msisdn, event.session, [event.session, event.msisdn])

    def _queue(self, script: str, msisdn: str, session: str, args: list[Any]) -> None:
        self._ops.append((script, msisdn, session, args))
        if self._flushing is None or self._flushing.done():
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # an in-process command: flushed when a loop runs (flush())
            self._flushing = loop.create_task(self._flush())

    async def flush(self) -> None:
        """Wait until what is queued has been sent (in order: one sender at a time)."""
        while self._ops or (self._flushing is not None and not self._flushing.done()):
            if self._flushing is None or self._flushing.done():
                self._flushing = asyncio.get_running_loop().create_task(self._flush())
            await asyncio.shield(self._flushing)

    async def _flush(self) -> None:
        # One pipeline per pass: every registration queued since the last one.
        while self._ops:
            ops, self._ops = self._ops, []
            pipe = self._async.pipeline(transaction=False)
            for script, msisdn, _, args in ops:
                keys = [DIALOG + msisdn, DEADLINES]
                await self._scripts[script](keys=keys, args=args, client=pipe)
            try:
                results = await pipe.execute()
            except redis.RedisError as exc:
                self._failed("registrations", exc, len(ops))
                continue
            self._up()
            for (script, msisdn, session, _), result in zip(ops, results, strict=True):
                if script == "save" and result == 0:
                    # Replaced on another worker since: its inbox message may come later.
                    self._end_local(msisdn, session, Outcome.REPLACED)

    def _failed(self, what: str, exc: Exception, count: int = 1) -> None:
        self.errors += count
        if not self._down:
            self._down = True
            _log.error("cluster_redis_unavailable", redis=self._where(), lost=what, error=str(exc))

    def _up(self) -> None:
        if self._down:
            self._down = False
            _log.info("cluster_redis_back", redis=self._where())

    # -- taking a dialog over (a reply or release reached this worker) ---------------------------

    def take(self, msisdn: str) -> Dialog | None:
        """The dialog another worker holds for msisdn, now held here; None if there is none."""
        try:
            found = self._take(
                keys=[DIALOG + msisdn], args=[self.worker, msisdn, INBOX, INBOX_LENGTH]
            )
        except redis.RedisError as exc:
            self._failed("a take-over", exc)
            return None
        self._up()
        if not found:
            return None
        worker, session, state = (v.decode() for v in found)
        if not state:
            # Its worker performs the outside answer it waits for; a reply now is early anyway.
            raise DialogBusy(f"the dialog on {msisdn} waits for an outside answer")
        dialog = Dialog.from_state(json.loads(state))
        if dialog.session != session:
            return None
        self.taken += 1
        _log.info("cluster_dialog_taken", msisdn=msisdn, session=session, from_worker=worker)
        return dialog

    # -- the inbox ------------------------------------------------------------------------------

    async def _reading(self) -> None:
        # From the newest entry at start (what came before is about connections that are
        # gone), then by id: "$" on every read would miss what arrives between two reads.
        newest: Any = await self._inbox_client.xrevrange(self._inbox, count=1)
        last = newest[0][0].decode() if newest else "0-0"
        while True:
            try:
                answer: Any = await self._inbox_client.xread(
                    {self._inbox: last}, block=1000, count=100
                )
            except redis.RedisError as exc:
                self._failed("the inbox", exc)
                await asyncio.sleep(HEARTBEAT)  # Redis is away: try again at the next beat
                continue
            for _stream, entries in answer or ():
                for entry_id, fields in entries:
                    last = entry_id.decode()
                    self.handle({k.decode(): v.decode() for k, v in fields.items()})

    def handle(self, message: dict[str, str]) -> None:
        """One message from another worker."""
        op, msisdn, session = message.get("op"), message.get("msisdn", ""), message.get("session")
        if session is None:
            return
        if op == "replaced":
            self._end_local(msisdn, session, Outcome.REPLACED)
        elif op == "moved":
            # Another worker took it over (a reply reached it): forget it without ending it.
            self.engine.detach(msisdn, session)

    def _end_local(self, msisdn: str, session: str, outcome: Outcome) -> None:
        if self.engine.end(msisdn, session, outcome):
            self.lost += 1
            _log.info("cluster_dialog_replaced", msisdn=msisdn, session=session)

    # -- beats, and the dialogs of dead workers ------------------------------------------------

    async def _beat(self) -> None:
        await self._async.set(WORKER + self.worker, "1", px=int(ALIVE * 1000))

    async def _beating(self) -> None:
        while True:
            try:
                await self._beat()
                await self.reap()
                self._up()
            except redis.RedisError as exc:
                self._failed("a heartbeat", exc)
            await asyncio.sleep(HEARTBEAT)

    async def reap(self) -> list[Reaped]:
        """Expire the overdue dialogs of dead workers (and ours from before a restart).

        Each is removed by one script, so exactly one worker expires it and records its end.
        """
        due = self.engine.clock.now() - GRACE
        found: Any = await self._async.zrangebyscore(
            DEADLINES, "-inf", due, start=0, num=REAP_BATCH
        )
        reaped: list[Reaped] = []
        for raw in found:
            msisdn = raw.decode()
            held = "1" if self.engine.dialog(msisdn) is not None else "0"
            got = await self._reap(
                keys=[DIALOG + msisdn, DEADLINES],
                args=[repr(due), msisdn, WORKER, self.worker, held],
            )
            if not got:
                continue
            worker, session = got[0].decode(), got[1].decode()
            item = Reaped(msisdn, session, worker)
            reaped.append(item)
            _log.info("cluster_dialog_reaped", msisdn=msisdn, session=session, worker=worker)
            # Its end is recorded here, as the dead worker would have: its user side is gone.
            self.engine.bus.emit(DialogEnded(msisdn, session, Outcome.TIMEOUT, None))
        self.reaped.extend(reaped)
        return reaped
