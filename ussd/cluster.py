"""Cluster mode: the engine's dialogs registered in Redis, shared by every worker (docs/cluster.md).

The engine stays sans-IO and keeps the dialogs it runs in memory; this adapter listens to its
events and keeps Redis the one place that says which worker holds the dialog of an MSISDN:

- a dial registers the new dialog atomically (one Lua script): a dialog another worker held
  for that MSISDN is replaced, and that worker is told to end its copy (TS 24.090: one USSD
  transaction per subscriber; docs/services.md);
- every screen saves the dialog's plain state (`Dialog.to_state()`) with its next deadline, only
  while the dialog is still the registered one;
- a reply or release asks Redis first whether this worker's copy is still the dialog, and
  takes it over from its saved state (`Dialog.from_state()`) when another worker held it, so
  any worker serves any HTTP request;
- a dialog's own worker expires it; the dialogs of a worker that stopped beating (killed) are
  expired by exactly one other worker, the one whose script removes them.

Each of these is one Lua script, made before the step's answer is out: the next request for
the MSISDN may reach another worker as soon as it is. Alone, a step costs two round trips to
Redis (the check before it, the save after it). Inside `batch()` (the PDUs of one SMPP read)
the claims, saves and releases wait and go together, in order, with the read's next check or
when the read ends, before its answers are written: a read of n steps costs at most n + 1
round trips instead of 2n. Messages between workers go through a Redis stream per worker (its
inbox).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import os
import socket
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast

import redis
import redis.asyncio as aredis
from redis.commands.core import Script
from redis.connection import ConnectionPool
from redis.exceptions import NoScriptError, ResponseError

from ussd import log
from ussd.engine import Dialog, DialogBusy, Engine
from ussd.events import DialogEnded, DialogStarted, Event, Outcome, ScreenShown

_log = log.get("cluster")
_T = TypeVar("_T")

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
_LENGTH = str(INBOX_LENGTH)
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
# KEYS: dialog. ARGV: worker, msisdn, inbox prefix, inbox length.
_RELEASE_ELSEWHERE = """
local d = redis.call('HMGET', KEYS[1], 'worker', 'session', 'waiting')
if not d[1] or d[1] == ARGV[1] or d[3] ~= '1' then return 0 end
redis.call('XADD', ARGV[3] .. d[1], 'MAXLEN', '~', ARGV[4], '*',
           'op', 'released', 'msisdn', ARGV[2], 'session', d[2])
return 1
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


def _tail(keys: Sequence[str], args: Sequence[str]) -> list[bytes]:
    # EVALSHA/EVAL's arguments after the script: the number of keys, the keys, the arguments.
    return [str(len(keys)).encode(), *(k.encode() for k in keys), *(a.encode() for a in args)]


def _pack(*args: bytes) -> bytes:
    # One command in RESP (the Redis protocol): an array of bulk strings.
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        out.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(out)


class _Connection(Protocol):
    # What _Scripts uses of redis-py's (untyped) Connection.
    def send_packed_command(self, command: list[bytes], check_health: bool = ...) -> None: ...
    def read_response(self) -> Any: ...
    def disconnect(self) -> None: ...


class _Scripts:
    """The step's scripts on a connection of their own (claim, save, release, take).

    A step runs two of them, synchronously: the command is packed here and sent and read on
    redis-py's connection (its URL, AUTH, SELECT, TLS and timeouts), without the client's
    per-command pool, retry and instrumentation, which cost several times the round trip's own
    CPU. EVALSHA, and EVAL once when Redis does not know the script (a restarted Redis). A
    connection that fails is dropped. When it had served before (Redis restarted since, say),
    the command is sent once more on a new one, never after a timeout: each script may run
    twice, as a second run finds what the first left and changes nothing more.
    """

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool
        self._conn: _Connection | None = None

    def __call__(self, script: _Lua, keys: Sequence[str], args: Sequence[str]) -> Any:
        tail = _tail(keys, args)
        return self._retrying(lambda conn: self._run(conn, script, tail))

    def _retrying(self, run: Callable[[_Connection], _T]) -> _T:
        """run(connection), once more on a new connection when a kept one turned out broken
        (the scripts do nothing more when run twice); a timeout or a fresh connection's
        failure is the caller's error."""
        fresh = self._conn is None
        conn = self._connection()
        try:
            return run(conn)
        except redis.TimeoutError:
            self._drop()
            raise
        except redis.ConnectionError:
            self._drop()
            if fresh:
                raise
        return run(self._connection())

    def _run(self, conn: _Connection, script: _Lua, tail: list[bytes]) -> Any:
        conn.send_packed_command([_pack(b"EVALSHA", script.sha, *tail)], check_health=False)
        try:
            return conn.read_response()
        except NoScriptError:
            conn.send_packed_command([_pack(b"EVAL", script.source, *tail)], check_health=False)
            return conn.read_response()

    def many(self, calls: Sequence[tuple[_Lua, Sequence[str], Sequence[str]]]) -> list[Any]:
        """Several scripts in one round trip, run in order: each one's answer, or in its place
        the error it got (ResponseError). Connection failures as for one script."""
        scripts = [script for script, _, _ in calls]
        tails = [_tail(keys, args) for _, keys, args in calls]
        return self._retrying(lambda conn: self._run_many(conn, scripts, tails))

    def _run_many(
        self, conn: _Connection, scripts: list[_Lua], tails: list[list[bytes]]
    ) -> list[Any]:
        packed = b"".join(_pack(b"EVALSHA", s.sha, *t) for s, t in zip(scripts, tails, strict=True))
        conn.send_packed_command([packed], check_health=False)
        out = [_answer(conn) for _ in tails]
        for i, result in enumerate(out):
            if isinstance(result, NoScriptError):
                # Redis lost its scripts (restarted, or flushed). Those after the first unknown
                # one ran without it: they all run again, in order, with their source (a tail of
                # these scripts run twice leaves what it left once).
                packed = b"".join(
                    _pack(b"EVAL", s.source, *t)
                    for s, t in zip(scripts[i:], tails[i:], strict=True)
                )
                conn.send_packed_command([packed], check_health=False)
                out[i:] = [_answer(conn) for _ in tails[i:]]
                break
        return out

    def _connection(self) -> _Connection:
        if self._conn is None:
            self._conn = cast(_Connection, self._pool.make_connection())
        return self._conn

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.disconnect()

    def close(self) -> None:
        self._drop()


def _answer(conn: _Connection) -> Any:
    # One command's answer; an error answer is returned, so the answers after it are read too.
    try:
        return conn.read_response()
    except ResponseError as exc:
        return exc


@dataclass(frozen=True, slots=True)
class _Lua:
    source: bytes
    sha: bytes

    @classmethod
    def of(cls, source: str) -> _Lua:
        data = source.encode()
        return cls(data, hashlib.sha1(data).hexdigest().encode())


_CLAIM_LUA, _SAVE_LUA, _RELEASE_LUA, _TAKE_LUA = (
    _Lua.of(s) for s in (_CLAIM, _SAVE, _RELEASE, _TAKE)
)
_FIELDS = tuple(f.name for f in dataclasses.fields(Dialog))
_JSON = json.JSONEncoder(separators=(",", ":"))


def _state(dialog: Dialog) -> str:
    """json.dumps(dialog.to_state()), without to_state()'s deep copy of every field (a screen
    saves it on every step); values it cannot encode as they are go through to_state()."""
    state = {name: getattr(dialog, name) for name in _FIELDS}
    state["pages"] = list(dialog.pages)
    try:
        return _JSON.encode(state)
    except TypeError:
        return _JSON.encode(dialog.to_state())


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
        self._scripts = _Scripts(self._sync.connection_pool)
        self._release_elsewhere: Script = self._sync.register_script(_RELEASE_ELSEWHERE)
        self._tasks: list[asyncio.Task[None]] = []
        # The loops end on this too: redis-py may turn a cancel inside a read into an error.
        self._stopping = False
        self._unsubscribe: Callable[[], None] | None = None
        self._down = False  # Redis was unreachable at the last attempt (logged once)
        self.lost = 0  # dialogs this worker ended because another worker replaced them
        self.taken = 0  # dialogs this worker took over from another
        self.reaped: list[Reaped] = []
        self.errors = 0  # Redis operations that failed
        # Inside batch(): the claims, saves and releases to send, in order (script, what it is,
        # msisdn, arguments, whether a 0 means this copy was replaced), and the copies found
        # replaced, ended when the batch ends.
        self._batching = False
        self._queued: list[tuple[_Lua, str, str, list[str], bool]] = []
        self._replaced: list[tuple[str, str]] = []
        # Told (msisdn, session, from worker) when this worker takes a dialog over
        # (ussd/cluster_bus.py: the end goes back to a harness bind there).
        self.on_taken: Callable[[str, str, str], None] | None = None

    # -- life ---------------------------------------------------------------------------------

    def attach(self) -> None:
        """Listen to the engine and answer its take-over questions."""
        self._unsubscribe = self.engine.subscribe(self._on_event)
        self.engine.remote = self.take
        self.engine.on_wait = self._waits
        self.engine.release_elsewhere = self.release_elsewhere

    async def start(self) -> None:
        """Check Redis answers, beat, and run the inbox and the expiry of dead workers' dialogs."""
        try:
            await self._async.ping()
        except redis.RedisError as exc:
            raise ConnectionError(f"Redis {self.where()}: {exc}") from None
        self._stopping = False
        await self._beat()
        # The inbox from its newest entry now (what came before is about connections that
        # are gone), fixed before any dialog of ours is registered.
        newest: Any = await self._inbox_client.xrevrange(self._inbox, count=1)
        self.attach()
        self._tasks = [
            asyncio.create_task(self._beating(), name="cluster-heartbeat"),
            asyncio.create_task(
                self._reading(newest[0][0].decode() if newest else "0-0"), name="cluster-inbox"
            ),
        ]
        _log.info("cluster_joined", worker=self.worker, redis=self.where())

    async def stop(self) -> None:
        """Leave: stop beating and reading the inbox (the dialogs end with the gateway).

        Each part is bounded by TIMEOUT: a Redis that is gone never holds a stop up.
        """
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=TIMEOUT)
        self._tasks = []
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self.engine.remote == self.take:
            self.engine.remote = None
        if self.engine.on_wait == self._waits:
            self.engine.on_wait = None
            self.engine.release_elsewhere = None
        for step, what in (
            (lambda: self._async.delete(WORKER + self.worker), "leave"),
            (self._async.aclose, "close"),
            (self._inbox_client.aclose, "close inbox"),
        ):
            try:
                async with asyncio.timeout(TIMEOUT):
                    await step()
            except (TimeoutError, redis.RedisError) as exc:
                _log.warning("cluster_stop_incomplete", step=what, error=str(exc) or "timeout")
        self._scripts.close()
        self._sync.close()

    def where(self) -> str:
        """host:port of the Redis (never a password the URL may carry)."""
        kwargs = self._sync.connection_pool.connection_kwargs
        return f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"

    # -- registrations, one pipeline per pass of the loop ---------------------------------------

    def _on_event(self, event: Event) -> None:
        # Synchronous, at the step's boundary: the next request for this MSISDN may reach
        # another worker as soon as this step's answer is out, and must find it registered.
        if isinstance(event, DialogStarted):
            deadline = self.engine.clock.now() + self.engine.config.ussd.reply_timeout
            args = [self.worker, event.session, repr(deadline), event.msisdn, INBOX, _LENGTH]
            self._run(_CLAIM_LUA, "a claim", event.msisdn, args)
        elif isinstance(event, ScreenShown):
            dialog = self.engine.dialog(event.msisdn)
            if dialog is None or dialog.session != event.screen.session or event.screen.end:
                return
            try:
                state = _state(dialog)
            except (TypeError, ValueError):
                _log.warning("cluster_state_not_serialisable", session=dialog.session)
                return
            due = repr(_next_deadline(dialog))
            waiting = "1" if dialog.waiting else "0"
            args = [self.worker, dialog.session, state, due, dialog.msisdn, waiting]
            # A 0: replaced on another worker meanwhile, and this copy ends here.
            self._run(_SAVE_LUA, "a save", dialog.msisdn, args, ends=True)
        elif isinstance(event, DialogEnded):
            self._run(_RELEASE_LUA, "a release", event.msisdn, [event.session, event.msisdn])

    def _waits(self, dialog: Dialog) -> None:
        # The dialog waits for an outside answer that this worker performs: saved as waiting,
        # so a reply on another worker meanwhile is refused (dialog_busy) rather than taken
        # over from the last screen's state. The resumed step's screen saves it again.
        try:
            state = _state(dialog)
        except (TypeError, ValueError):
            _log.warning("cluster_state_not_serialisable", session=dialog.session)
            return
        due = repr(_next_deadline(dialog))
        args = [self.worker, dialog.session, state, due, dialog.msisdn, "1"]
        self._run(_SAVE_LUA, "a save", dialog.msisdn, args)

    def _run(
        self, script: _Lua, what: str, msisdn: str, args: list[str], *, ends: bool = False
    ) -> None:
        # A claim, save or release: now, or queued inside batch(). `ends`: a save, whose 0
        # says another worker replaced the dialog (args[1] is its session).
        if self._batching:
            self._queued.append((script, what, msisdn, args, ends))
            return
        if self._call(script, what, msisdn, args) == 0 and ends:
            self._end_local(msisdn, args[1], Outcome.REPLACED)

    # -- one round trip per SMPP read ----------------------------------------------------------

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Queue the claims, saves and releases of the steps run inside, and send them in one
        round trip as it ends (SmppServer.around_read: the PDUs of one read, whose answers are
        written after it). A take meanwhile carries those queued before it, so Redis sees
        every operation in the order the steps made them, and each is acknowledged before the
        answer of its step goes out (docs/cluster.md "How a dialog is shared"). Nested: joins.
        """
        if self._batching:
            yield
            return
        self._batching = True
        try:
            yield
        finally:
            try:
                self._settle()
            finally:
                self._batching = False

    def _settle(self) -> None:
        # Send what is queued; end the copies found replaced (their releases are queued in
        # turn and sent by the next pass).
        while self._queued or self._replaced:
            if self._queued:
                try:
                    self._send()
                except redis.RedisError:
                    pass  # counted and logged: as when each went alone and failed
            replaced, self._replaced = self._replaced, []
            for msisdn, session in replaced:
                self._end_local(msisdn, session, Outcome.REPLACED)

    def _send(self, take: tuple[Sequence[str], Sequence[str]] | None = None) -> Any:
        """The queued scripts, then `take` (its keys and arguments) if given, in one round trip;
        the take's answer. RedisError when the round trip failed (or the take did)."""
        queued, self._queued = self._queued, []
        calls: list[tuple[_Lua, Sequence[str], Sequence[str]]] = [
            (script, (DIALOG + msisdn, DEADLINES), args) for script, _, msisdn, args, _ in queued
        ]
        if take is not None:
            calls.append((_TAKE_LUA, *take))
        try:
            results = self._scripts.many(calls)
        except redis.RedisError as exc:
            if queued:
                self._failed(queued[0][1], exc, len(queued))
            raise
        self._up()
        for (_, what, msisdn, args, ends), result in zip(queued, results, strict=False):
            if isinstance(result, redis.RedisError):
                self._failed(what, result)
            elif ends and result == 0:
                self._replaced.append((msisdn, args[1]))
        if take is None:
            return None
        found = results[-1]
        if isinstance(found, redis.RedisError):
            raise found
        return found

    def _call(self, script: _Lua, what: str, msisdn: str, args: list[str]) -> Any:
        try:
            result = self._scripts(script, (DIALOG + msisdn, DEADLINES), args)
        except redis.RedisError as exc:
            self._failed(what, exc)
            return None
        self._up()
        return result

    def _failed(self, what: str, exc: Exception, count: int = 1) -> None:
        self.errors += count
        if not self._down:
            self._down = True
            _log.error("cluster_redis_unavailable", redis=self.where(), lost=what, error=str(exc))

    def _up(self) -> None:
        if self._down:
            self._down = False
            _log.info("cluster_redis_back", redis=self.where())

    # -- taking a dialog over (a reply or release reached this worker) ---------------------------

    def take(self, msisdn: str, here: Dialog | None) -> Dialog | None:
        """The current dialog of msisdn for a reply or release on this worker (engine.remote).

        `here` is this worker's copy; Redis says whether it is still the dialog: another
        worker may have replaced it, taken it over or ended it since. A dialog another worker
        holds is taken over from its saved state. When Redis cannot be asked, `here` is used.
        """
        keys, args = (DIALOG + msisdn,), (self.worker, msisdn, INBOX, _LENGTH)
        try:
            if self._queued:  # inside batch(): the operations before it go first, with it
                found = self._send((keys, args))
            else:
                found = self._scripts(_TAKE_LUA, keys, args)
        except redis.RedisError as exc:
            self._failed("a take-over", exc)
            return here
        self._up()
        if not found:
            return None  # ended, or replaced and ended, on another worker
        worker, session, state = (v.decode() for v in found)
        if worker == self.worker and here is not None and here.session == session:
            return here
        if not state:
            # Its worker performs the outside answer it waits for; a reply now is early anyway.
            raise DialogBusy(f"the dialog on {msisdn} waits for an outside answer")
        dialog = Dialog.from_state(json.loads(state))
        if dialog.session != session:
            return None
        if dialog.waiting:
            # Saved while it waited (this worker's id, before a restart): the answer will not
            # come here, and its deadline lets a beating worker expire it (reap).
            raise DialogBusy(f"the dialog on {msisdn} waits for an outside answer")
        self.taken += 1
        _log.info("cluster_dialog_taken", msisdn=msisdn, session=session, from_worker=worker)
        if self.on_taken is not None:
            self.on_taken(msisdn, session, worker)
        return dialog

    def release_elsewhere(self, msisdn: str) -> bool:
        """A release of a dialog waiting on another worker: that worker is told to end it."""
        if self._queued:  # inside batch(): what came before goes first
            with contextlib.suppress(redis.RedisError):
                self._send()
        try:
            told = self._release_elsewhere(
                keys=[DIALOG + msisdn], args=[self.worker, msisdn, INBOX, INBOX_LENGTH]
            )
        except redis.RedisError as exc:
            self._failed("a release", exc)
            return False
        self._up()
        return bool(told)

    # -- the inbox ------------------------------------------------------------------------------

    async def _reading(self, last: str) -> None:
        # By id from where start() stood: "$" on every read would miss what arrives between
        # two reads.
        while not self._stopping:
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
        elif op == "released":
            # Released on another worker while it waited here for an outside answer.
            self.engine.end(msisdn, session, Outcome.RELEASED)
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
        while not self._stopping:
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
            got: Any = await self._async.eval(
                _REAP, 2, DIALOG + msisdn, DEADLINES, repr(due), msisdn, WORKER, self.worker, held
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
