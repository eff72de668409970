"""Cluster mode: the engine's dialogs registered in Redis, shared by every worker (docs/cluster.md).

The engine stays sans-IO and keeps the dialogs it runs in memory; this adapter listens to its
events and keeps Redis the one place that says which worker holds the dialog of an MSISDN:

- a dial registers the new dialog atomically: a dialog another worker held for that MSISDN is
  replaced, and that worker is told to end its copy (TS 24.090: one USSD transaction per
  subscriber; docs/services.md);
- every screen saves the dialog's plain state (`Dialog.to_state()`) with its next deadline, only
  while the dialog is still the registered one;
- a reply or release asks Redis first whether this worker's copy is still the dialog, and
  takes it over from its saved state (`Dialog.from_state()`) when another worker held it, so
  any worker serves any HTTP request;
- a dialog's own worker expires it; the dialogs of a worker that stopped beating (killed) are
  expired by exactly one other worker, the one whose script removes them.

Each of these is an operation of one Lua script (_STEPS), atomic, made before the step's
answer is out: the next request for the MSISDN may reach another worker as soon as it is.
Alone, a step costs two round trips to Redis (the check before it, the save after it). Inside
`batch()` (the PDUs of one SMPP read) the claims, saves and releases wait and go together, in
order, with the read's first check or when the read ends, before its answers are written; that
first check also asks who holds the dialogs of the read's other numbers, so a later reply on
a dialog this worker holds needs no check of its own: a read costs one or two round trips,
whatever it carries. Messages between workers go through a Redis stream per worker (its inbox).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

import orjson
import redis
import redis.asyncio as aredis
from redis.commands.core import Script
from redis.connection import ConnectionPool
from redis.exceptions import NoScriptError

from ussd import log
from ussd.engine import Dialog, DialogBusy, Engine
from ussd.events import DialogEnded, DialogStarted, Event, Outcome, ScreenShown

_log = log.get("cluster")

PREFIX = "ussd:"
# + msisdn: hash of worker, session, state (JSON), deadline, waiting, and `before`: the workers
# that held the dialog before its worker took it over, each once, comma-separated.
DIALOG = PREFIX + "dialog:"
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

# The operations of the steps, any number of them in one call, run in order (one round trip
# and one script run per SMPP read, docs/cluster.md "Performance"). KEYS[1]: the deadlines
# set; KEYS[i + 1]: the dialog of operation i. ARGV: each operation's name, then its
# arguments (how many is fixed per name, _ARITY):
#   c (claim)    worker, session, deadline, msisdn, inbox prefix, inbox length
#   s (save)     worker, session, state, deadline, msisdn, waiting (0/1)
#   r (release)  session, msisdn
#   t (take)     worker, msisdn, inbox prefix, inbox length: {worker, session, state, before}
#                (state '' while it waits on another worker; `before` with the worker it is
#                taken from, when this take moved it), or false when there is none
#   p (peek)     none: who holds the dialog, {worker, session}
# One answer per operation, in order.
_STEPS = """
local D = KEYS[1]
local function claim(k, a)
  local prev = redis.call('HMGET', k, 'worker', 'session')
  redis.call('HSET', k, 'worker', ARGV[a + 1], 'session', ARGV[a + 2], 'state', '',
             'deadline', ARGV[a + 3], 'before', '')
  redis.call('ZADD', D, ARGV[a + 3], ARGV[a + 4])
  if prev[1] and prev[1] ~= ARGV[a + 1] and prev[2] ~= ARGV[a + 2] then
    redis.call('XADD', ARGV[a + 5] .. prev[1], 'MAXLEN', '~', ARGV[a + 6], '*',
               'op', 'replaced', 'msisdn', ARGV[a + 4], 'session', prev[2])
    return prev[1]
  end
  return false
end
local function save(k, a)
  if redis.call('HGET', k, 'session') ~= ARGV[a + 2] then return 0 end
  redis.call('HSET', k, 'worker', ARGV[a + 1], 'state', ARGV[a + 3], 'deadline', ARGV[a + 4],
             'waiting', ARGV[a + 6])
  redis.call('ZADD', D, ARGV[a + 4], ARGV[a + 5])
  return 1
end
local function release(k, a)
  if redis.call('HGET', k, 'session') ~= ARGV[a + 1] then return 0 end
  redis.call('DEL', k)
  redis.call('ZREM', D, ARGV[a + 2])
  return 1
end
local function take(k, a)
  local d = redis.call('HMGET', k, 'worker', 'session', 'state', 'waiting', 'before')
  if not d[1] or not d[3] or d[3] == '' then return false end
  local before = d[5] or ''
  -- Its worker performs the outside answer the dialog waits for: it stays there.
  if d[4] == '1' and d[1] ~= ARGV[a + 1] then return {d[1], d[2], '', before} end
  if d[1] ~= ARGV[a + 1] then
    -- Every worker that held it, each once: a harness there may play it and hears its end
    -- however many times it moved (ussd/cluster_bus.py).
    if not string.find(',' .. before .. ',', ',' .. d[1] .. ',', 1, true) then
      if before == '' then before = d[1] else before = before .. ',' .. d[1] end
    end
    redis.call('HSET', k, 'worker', ARGV[a + 1], 'before', before)
    redis.call('XADD', ARGV[a + 3] .. d[1], 'MAXLEN', '~', ARGV[a + 4], '*',
               'op', 'moved', 'msisdn', ARGV[a + 2], 'session', d[2])
  end
  return {d[1], d[2], d[3], before}
end
local function peek(k, a)
  return redis.call('HMGET', k, 'worker', 'session')
end
local ops = {c = {claim, 6}, s = {save, 6}, r = {release, 2}, t = {take, 4}, p = {peek, 0}}
local out, a = {}, 0
for i = 2, #KEYS do
  local op = ops[ARGV[a + 1]]
  if not op then return redis.error_reply('unknown operation ' .. tostring(ARGV[a + 1])) end
  out[i - 1] = op[1](KEYS[i], a + 1)
  a = a + 1 + op[2]
end
return out
"""
_ARITY = {b"c": 6, b"s": 6, b"r": 2, b"t": 4, b"p": 0}
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


def pack(*args: bytes) -> bytes:
    """One command in RESP (the Redis protocol): an array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        out.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(out)


# One operation of _STEPS: its name, the dialog's key, its arguments.
_Op = tuple[bytes, str, Sequence[str | bytes]]


def _steps_tail(ops: Sequence[_Op]) -> list[bytes]:
    # EVALSHA/EVAL's arguments after the script: the number of keys, the keys, the arguments.
    keys = [_DEADLINES]
    argv: list[bytes] = []
    for name, key, args in ops:
        if len(args) != _ARITY.get(name, -1):
            raise ValueError(f"not an operation of the steps script: {name!r} with {len(args)}")
        keys.append(key.encode())
        argv.append(name)
        argv.extend(a if isinstance(a, bytes) else a.encode() for a in args)
    return [b"%d" % len(keys), *keys, *argv]


class _Connection(Protocol):
    # What _Scripts uses of redis-py's (untyped) Connection.
    def send_packed_command(self, command: list[bytes], check_health: bool = ...) -> None: ...
    def read_response(self) -> Any: ...
    def disconnect(self) -> None: ...


class DirectScript:
    """One Lua script called synchronously on a connection of its own (the steps' operations,
    the fault decisions of ussd/cluster_faults.py: both in the middle of a step).

    The command is packed here and sent and read on redis-py's connection (its URL, AUTH,
    SELECT, TLS and timeouts), without the client's per-command pool, retry and
    instrumentation, which cost several times the round trip's own CPU. EVALSHA, and EVAL
    once when Redis does not know the script (a restarted Redis). A connection that fails is
    dropped. When it had served before (Redis restarted since, say), the call is sent once
    more on a new one, never after a timeout: a script called here must leave, run twice,
    what it leaves run once. One call at a time (a lock: cheap, and safe off the loop).
    """

    def __init__(self, pool: ConnectionPool, source: str) -> None:
        self._pool = pool
        self._lua = _Lua.of(source)
        self._conn: _Connection | None = None
        self._lock = threading.Lock()

    def __call__(self, tail: list[bytes]) -> Any:
        """The script's answer; `tail`: the number of keys, the keys, the arguments.
        ResponseError when Redis refused it."""
        with self._lock:
            fresh = self._conn is None
            try:
                return self._run(self._connection(), tail)
            except redis.TimeoutError:
                self.close()
                raise
            except redis.ConnectionError:
                self.close()
                if fresh:
                    raise
            return self._run(self._connection(), tail)

    def _run(self, conn: _Connection, tail: list[bytes]) -> Any:
        conn.send_packed_command([pack(b"EVALSHA", self._lua.sha, *tail)], check_health=False)
        try:
            return conn.read_response()
        except NoScriptError:
            conn.send_packed_command([pack(b"EVAL", self._lua.source, *tail)], check_health=False)
            return conn.read_response()

    def _connection(self) -> _Connection:
        if self._conn is None:
            self._conn = cast(_Connection, self._pool.make_connection())
        return self._conn

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.disconnect()


class _Scripts:
    """The steps' operations (claim, save, release, take, peek) as one DirectScript (_STEPS).

    However many there are (the steps of one SMPP read), they go as one call: one round
    trip, one script run on Redis's side and one answer to parse. Run twice (DirectScript's retry),
    the operations find what the first run left and change nothing more.
    """

    def __init__(self, pool: ConnectionPool) -> None:
        self._script = DirectScript(pool, _STEPS)

    def __call__(self, ops: Sequence[_Op]) -> list[Any]:
        """Each operation's answer, in order. ResponseError when Redis refused the call (an
        operation that fails stops those after it; those before it stand)."""
        answers: list[Any] = self._script(_steps_tail(ops))
        return answers

    def close(self) -> None:
        self._script.close()


@dataclass(frozen=True, slots=True)
class _Lua:
    source: bytes
    sha: bytes

    @classmethod
    def of(cls, source: str) -> _Lua:
        data = source.encode()
        return cls(data, hashlib.sha1(data).hexdigest().encode())


_STEPS_SHA = _Lua.of(_STEPS).sha
_DEADLINES = DEADLINES.encode()


def _state(dialog: Dialog) -> bytes:
    """The JSON of dialog.to_state(), encoded from the dataclass as it is by orjson (a screen
    saves it on every step: json's encoder and to_state()'s deep copy cost five times as
    much). TypeError (orjson.JSONEncodeError) for a value JSON cannot hold."""
    return orjson.dumps(dialog, option=orjson.OPT_NON_STR_KEYS)


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
        self._queued: list[tuple[bytes, str, str, Sequence[str | bytes], bool]] = []
        self._replaced: list[tuple[str, str]] = []
        # Inside batch(): the source_addr of the read's PDUs not handled yet, until its first
        # take asks Redis about them too; and what that said of each number, (worker, session)
        # (None where there is no dialog), used once, by the number's next take in the read.
        self._ahead: Callable[[], Sequence[str]] | None = None
        self._peeked: dict[str, tuple[str | None, str | None]] = {}
        # Told (msisdn, session, workers) when this worker takes a dialog over: every worker
        # that held it before (Redis's `before`, with the one it is taken from), each once,
        # this one too when it comes back. ussd/cluster_bus.py routes the dialog's end to a
        # harness bind on any of them (docs/cluster.md "What is routed").
        self.on_taken: Callable[[str, str, tuple[str, ...]], None] | None = None

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
            self._run(b"c", "a claim", event.msisdn, args)
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
            saved: list[str | bytes] = [
                self.worker,
                dialog.session,
                state,
                due,
                dialog.msisdn,
                waiting,
            ]
            # A 0: replaced on another worker meanwhile, and this copy ends here.
            self._run(b"s", "a save", dialog.msisdn, saved, ends=True)
        elif isinstance(event, DialogEnded):
            self._run(b"r", "a release", event.msisdn, [event.session, event.msisdn])

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
        saved: list[str | bytes] = [self.worker, dialog.session, state, due, dialog.msisdn, "1"]
        self._run(b"s", "a save", dialog.msisdn, saved)

    def _run(
        self,
        op: bytes,
        what: str,
        msisdn: str,
        args: Sequence[str | bytes],
        *,
        ends: bool = False,
    ) -> None:
        # A claim, save or release: now, or queued inside batch(). `ends`: a save, whose 0
        # says another worker replaced the dialog (args[1] is its session).
        if self._batching:
            self._queued.append((op, what, msisdn, args, ends))
            return
        if self._call(op, what, msisdn, args) == 0 and ends:
            self._end_local(msisdn, str(args[1]), Outcome.REPLACED)

    # -- one round trip per SMPP read ----------------------------------------------------------

    @contextlib.contextmanager
    def batch(self, ahead: Callable[[], Sequence[str]] | None = None) -> Iterator[None]:
        """Queue the claims, saves and releases of the steps run inside, and send them in one
        round trip as it ends (SmppServer.around_read: the PDUs of one read, whose answers are
        written after it). A take meanwhile carries those queued before it, so Redis sees
        every operation in the order the steps made them, and each is acknowledged before the
        answer of its step goes out (docs/cluster.md "How a dialog is shared"). Nested: joins.

        `ahead` gives the numbers (source_addr, as sent) of the PDUs still to come in the read:
        its first take also asks Redis who holds each of their dialogs, and a later reply on
        a dialog Redis said this worker holds goes on without a round trip of its own.
        """
        if self._batching:
            yield
            return
        self._batching = True
        self._ahead = ahead
        try:
            yield
        finally:
            try:
                self._settle()
            finally:
                self._batching = False
                self._ahead = None
                self._peeked.clear()

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

    def _send(self, take: _Op | None = None, peek: Sequence[str] = ()) -> Any:
        """The queued operations, then `take` if given, then who holds the dialog of each
        number in `peek` (kept in _peeked), in one call; the take's answer. RedisError when
        the call failed: the queued operations count as failed."""
        queued, self._queued = self._queued, []
        ops: list[_Op] = [(op, DIALOG + msisdn, args) for op, _, msisdn, args, _ in queued]
        if take is not None:
            ops.append(take)
        ops.extend((b"p", DIALOG + number, ()) for number in peek)
        try:
            answers = self._scripts(ops)
        except redis.RedisError as exc:
            if queued:
                self._failed(queued[0][1], exc, len(queued))
            raise
        self._up()
        for (_, _, msisdn, args, ends), answer in zip(queued, answers, strict=False):
            if ends and answer == 0:
                self._replaced.append((msisdn, str(args[1])))
        done = len(queued) + (take is not None)
        for number, held in zip(peek, answers[done:], strict=False):
            worker, session = held
            self._peeked[number] = (
                worker.decode() if worker is not None else None,
                session.decode() if session is not None else None,
            )
        return answers[len(queued)] if take is not None else None

    def _call(self, op: bytes, what: str, msisdn: str, args: Sequence[str | bytes]) -> Any:
        try:
            result = self._scripts([(op, DIALOG + msisdn, args)])[0]
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

        Inside batch(), Redis may already have said who holds it as the read's first take
        went (batch's `ahead`), used by the number's first take after it: when that was this
        very copy (its session), or no dialog at all and there is none here, it stands. A
        step of this worker on the number in between (a dial, an end) leaves another copy or
        none here, which that answer does not match, so the take goes to Redis.
        """
        held = self._peeked.pop(msisdn, None)
        if held is not None:
            worker, session = held
            if here is None and worker is None:
                return None
            if here is not None and worker == self.worker and session == here.session:
                return here
        op: _Op = (b"t", DIALOG + msisdn, (self.worker, msisdn, INBOX, _LENGTH))
        try:
            # Inside batch() the operations queued before it go first, with it; the read's
            # first take also asks about the numbers still to come.
            ahead, self._ahead = self._ahead, None
            found = self._send(op, self._numbers(ahead(), msisdn) if ahead is not None else ())
        except redis.RedisError as exc:
            self._failed("a take-over", exc)
            return here
        self._up()
        if not found:
            return None  # ended, or replaced and ended, on another worker
        worker, session, state, before = (v.decode() for v in found)
        if worker == self.worker and here is not None and here.session == session:
            return here
        if not state:
            # Its worker performs the outside answer it waits for; a reply now is early anyway.
            raise DialogBusy(f"the dialog on {msisdn} waits for an outside answer")
        dialog = Dialog.from_state(orjson.loads(state))
        if dialog.session != session:
            return None
        if dialog.waiting:
            # Saved while it waited (this worker's id, before a restart): the answer will not
            # come here, and its deadline lets a beating worker expire it (reap).
            raise DialogBusy(f"the dialog on {msisdn} waits for an outside answer")
        self.taken += 1
        _log.info("cluster_dialog_taken", msisdn=msisdn, session=session, from_worker=worker)
        if self.on_taken is not None:
            self.on_taken(msisdn, session, tuple(w for w in before.split(",") if w))
        return dialog

    def _numbers(self, sources: Sequence[str], skip: str) -> list[str]:
        # The read's numbers still to come, as the engine names them, each once.
        numbers: dict[str, None] = {}
        for source in sources:
            try:
                number = self.engine.normalise(source)
            except ValueError:
                continue  # refused when its PDU is handled
            if number != skip:
                numbers[number] = None
        return list(numbers)

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
            self.reaped.append(item)  # at once: a beat's pass and another may run together
            _log.info("cluster_dialog_reaped", msisdn=msisdn, session=session, worker=worker)
            # Its end is recorded here, as the dead worker would have: its user side is gone.
            self.engine.bus.emit(DialogEnded(msisdn, session, Outcome.TIMEOUT, None))
        return reaped
