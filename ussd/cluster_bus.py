"""Cluster mode: engine events routed to the worker whose socket or bind shows them.

A web-phone socket and an SMPP bind stay on the worker that accepted them, while the dialog or
SMS they show may be run by any worker (docs/cluster.md "What is routed"). So each worker
tells the others what it holds that their events matter to:

- the numbers its web-phone sockets watch (`ws:<msisdn>`);
- the receiving harness binds it holds and the numbers they take (`rx:<bind>`: sms_ranges).

Each worker keeps these in a Redis hash of its own (what a joining worker reads) and appends
every change to one shared stream; every worker holds the others' in memory. Whether an event
goes anywhere is therefore a dict lookup on the step path, with no Redis call, and nothing at
all is sent while no other worker holds such a socket or bind. What does go is batched per
loop iteration into one pipeline of XADDs to the stream of each worker concerned (MAXLEN ~),
which that worker reads with the changes in one blocking XREAD:

- a screen, dialog end, SMS or app exchange of a number: to the workers whose sockets watch
  it, whose hub sends it as if it were its own;
- a queued SMS for a number no receiving bind here takes: to one worker whose bind does, whose
  SMS centre offers it at once (not at its next scan of the queue);
- a push (network-initiated USSD) to such a number: its start, first screen and end, to the
  worker whose bind plays the handset; the harness's answer takes the dialog over there;
- an MO SMS delivered or expired: to every worker with a receiving bind, whose SMS centre
  sends the delivery receipts its binds are owed;
- the end of a dialog taken over from workers with a receiving bind (however many times it
  moved: Redis keeps every worker that held it): to each of them once, whose harness may be
  playing it and hears its end as on one worker.

It also agrees with the other workers on the password dialog's candidate key (share_key).

Routed events are not durable: a worker gone or a Redis away loses what was in flight, as a
dropped socket would; SMS stay queued in PostgreSQL and go at the bind's next scan.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import zlib
from collections import OrderedDict
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import redis
import redis.asyncio as aredis

from ussd import log
from ussd.cluster import HEARTBEAT, PREFIX, TIMEOUT, WORKER
from ussd.events import (
    AppExchange,
    DialogEnded,
    DialogStarted,
    Event,
    FaultInjected,
    Outcome,
    Screen,
    ScreenShown,
    Sms,
    SmsQueued,
    SmsState,
    SmsStateChanged,
)
from ussd.http.phones import event_message
from ussd.services import password
from ussd.sms import covered

if TYPE_CHECKING:
    from ussd.cluster import Cluster
    from ussd.config import SmppAccount
    from ussd.http.phones import Hub
    from ussd.smpp.server import SmppServer

_log = log.get("cluster")

INTERESTS = PREFIX + "interests:"  # + worker: hash of "ws:<msisdn>" / "rx:<bind>" -> ranges
INTERESTED = PREFIX + "interested"  # set of the workers that have such a hash
CHANGES = PREFIX + "interests"  # stream: every worker's interest changes
EVENTS = PREFIX + "events:"  # + worker: stream of the events routed to it

STREAM_LENGTH = 10_000  # entries kept per stream (MAXLEN ~)
OUT_MAX = 10_000  # events waiting to be sent at most; past it they are dropped and counted
READ_BATCH = 500  # entries per XREAD
BLOCK_MS = 1000  # an XREAD waits this long at most, so a stop or a dead worker is seen
PUSHES_MAX = 10_000  # pushes routed elsewhere whose end is still to be routed there
FORGET_AFTER = 60.0  # seconds a worker may not beat before its interests are deleted
# The key of the password dialog's candidate digests, one for every worker (share_key).
PASSWORD_KEY = PREFIX + "password-key"

# What a web phone shows (ussd/http/phones.py event_message), and what an SMS centre takes.
_WS_EVENTS = (ScreenShown, DialogEnded, SmsQueued, SmsStateChanged, AppExchange, FaultInjected)


def _ranges(account: SmppAccount) -> str:
    return json.dumps(list(account.sms_ranges))


Routed = DialogStarted | ScreenShown | DialogEnded | SmsQueued | SmsStateChanged


def encode(event: Routed) -> str:
    """An event for another worker's SMS centre, as JSON (decode() reads it back)."""
    if isinstance(event, SmsQueued):
        return json.dumps({"type": "sms", **event.sms.to_json()})
    if isinstance(event, SmsStateChanged):
        return json.dumps({"type": "sms_state", **event.sms.to_json()})
    if isinstance(event, DialogStarted):
        return json.dumps({"type": "started", **asdict(event)})
    if isinstance(event, ScreenShown):
        return json.dumps({"type": "screen", "msisdn": event.msisdn, **asdict(event.screen)})
    screen = asdict(event.screen) if event.screen is not None else None
    return json.dumps(
        {
            "type": "ended",
            "msisdn": event.msisdn,
            "session": event.session,
            "outcome": event.outcome.value,
            "screen": screen,
        }
    )


def decode(text: str) -> Routed:
    """The event encode() wrote; ValueError (or KeyError, TypeError) for anything else."""
    data: Any = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("a routed event is a JSON object")
    kind = data.pop("type")
    if kind in ("sms", "sms_state"):
        sms = Sms(**{**data, "state": SmsState(data["state"])})
        if kind == "sms_state":
            return SmsStateChanged(sms.recipient, sms)
        return SmsQueued(sms.recipient, sms)
    if kind == "started":
        return DialogStarted(**data)
    if kind == "screen":
        msisdn = data.pop("msisdn")
        return ScreenShown(msisdn, Screen(**data))
    if kind == "ended":
        screen = Screen(**data["screen"]) if data["screen"] is not None else None
        return DialogEnded(data["msisdn"], data["session"], Outcome(data["outcome"]), screen)
    raise ValueError(f"unknown routed event {kind!r}")


class ClusterBus:
    """Routes one worker's engine events to the workers holding the sockets and binds."""

    def __init__(self, cluster: Cluster, hub: Hub | None, smpp: SmppServer | None) -> None:
        self.cluster = cluster
        self.worker = cluster.worker
        self.hub = hub
        self.smpp = smpp
        self._events = EVENTS + self.worker
        self._interests = INTERESTS + self.worker
        # Two connections: the reader blocks in XREAD, the writer sends meanwhile.
        self._reader = aredis.Redis.from_url(cluster.url, socket_connect_timeout=TIMEOUT)
        self._writer = aredis.Redis.from_url(
            cluster.url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT
        )
        # What this worker holds: numbers its sockets watch, its receiving binds' ranges.
        self._watched: set[str] = set()
        self._local_rx: dict[int, tuple[str, ...]] = {}
        # What the others hold: number -> workers watching it; worker -> bind -> ranges.
        self._watching: dict[str, set[str]] = {}
        self._receivers: dict[str, dict[str, tuple[str, ...]]] = {}
        self._pushed: OrderedDict[str, str] = OrderedDict()  # push session -> its worker
        # Sessions taken over here that workers with a receiving bind held before -> those
        # workers: a harness there may play the dialog, and hears its end as on one worker.
        self._ends: OrderedDict[str, tuple[str, ...]] = OrderedDict()
        # Workers whose beat is missing (killed, or Redis restarted and they have not beaten
        # again yet), since when: nothing goes to them; their interests are read again when
        # they beat, deleted when they have not for FORGET_AFTER.
        self._dormant: dict[str, float] = {}
        # Commands to send, in order: ("xadd", stream, fields), ("hset"|"hdel", field, value).
        self._out: list[tuple[str, str, Any]] = []
        self._routed = 0  # events among them (OUT_MAX counts these)
        self._rejoin = False  # an interest change was lost: publish everything again
        self._sending: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.get_ident()
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe: list[Any] = []
        self._stopping = False
        self._down = False
        self.sent = 0  # events routed to other workers
        self.received = 0  # events other workers routed here
        self.dropped = 0  # events not routed: too many waiting, or Redis failed
        self.errors = 0  # Redis operations that failed

    # -- life ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Publish what this worker holds, read the others', and route from now on."""
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self._stopping = False
        if self.hub is not None:
            self._watched = set(self.hub.watched())
            self.hub.on_watch = self._watch
        if self.smpp is not None:
            self.smpp.on_receiver = self._receiver
        self.cluster.on_taken = self._taken
        self._unsubscribe.append(self.cluster.engine.subscribe(self._on_event))
        try:
            last = await self._join()
        except redis.RedisError as exc:
            self._failed("joining", exc)
            last = None
        self._task = asyncio.create_task(self._reading(last), name="cluster-routes")

    async def stop(self) -> None:
        """Stop routing and withdraw this worker's interests (bounded by TIMEOUT each)."""
        self._stopping = True
        if self.hub is not None and self.hub.on_watch == self._watch:
            self.hub.on_watch = None
        if self.smpp is not None and self.smpp.on_receiver == self._receiver:
            self.smpp.on_receiver = None
        if self.cluster.on_taken == self._taken:
            self.cluster.on_taken = None
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()
        for task in (self._task, self._sending):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, TimeoutError, redis.RedisError):
                    async with asyncio.timeout(TIMEOUT):
                        await task
        self._task = self._sending = None
        try:
            async with asyncio.timeout(TIMEOUT):
                await self._writer.delete(self._interests)
                await self._writer.srem(INTERESTED, self.worker)
                await self._change("reset")
        except (TimeoutError, redis.RedisError) as exc:
            _log.warning("cluster_routes_stop_incomplete", error=str(exc) or "timeout")
        for client in (self._reader, self._writer):
            with contextlib.suppress(TimeoutError, redis.RedisError):
                async with asyncio.timeout(TIMEOUT):
                    await client.aclose()

    async def _join(self) -> dict[str, str]:
        """(Re)publish this worker's interests and load everyone else's; returns the stream
        ids to read on from (taken first: a change made meanwhile is read again, harmlessly)."""
        last = {
            CHANGES: await self._newest(CHANGES),
            self._events: await self._newest(self._events),
        }
        fields: dict[str, str] = {f"ws:{m}": "1" for m in self._watched}
        fields.update({f"rx:{k}": json.dumps(list(r)) for k, r in self._local_rx.items()})
        pipe = self._writer.pipeline(transaction=True)
        pipe.delete(self._interests)
        if fields:
            pipe.hset(self._interests, mapping=fields)  # type: ignore[arg-type]
        pipe.sadd(INTERESTED, self.worker)
        for op, key, value in [("reset", "", ""), *(("+", k, v) for k, v in fields.items())]:
            change = {"worker": self.worker, "op": op, "key": key, "value": value}
            pipe.xadd(CHANGES, change, maxlen=STREAM_LENGTH, approximate=True)  # type: ignore[arg-type]
        await pipe.execute()
        self._watching.clear()
        self._receivers.clear()
        self._dormant.clear()
        workers: Any = await self._writer.smembers(INTERESTED)
        others = {raw.decode() for raw in workers} - {self.worker}
        for worker in others:
            held: Any = await self._writer.hgetall(INTERESTS + worker)
            for key, value in held.items():
                self._apply(worker, "+", key.decode(), value.decode())
        await self._forget_dead(others)  # those holding nothing too: gone ones are cleared
        await self.share_key()
        self._up()
        return last

    async def share_key(self) -> None:
        """Agree with the other workers on the password dialog's candidate key.

        The first entry of a password is kept as a keyed digest until its confirmation, which
        any worker may take (ussd/services/password.py): the first worker to ask stores its
        key and every worker uses that one. Asked again at every beat, so after a Redis restart
        the first to beat stores the key they all hold, and a worker keyed otherwise adopts it.
        """
        mine = password.candidate_key()
        await self._writer.set(PASSWORD_KEY, mine.hex(), nx=True)
        shared: Any = await self._writer.get(PASSWORD_KEY)
        if shared is not None and shared.decode() != mine.hex():
            try:
                password.share_candidate_key(bytes.fromhex(shared.decode()))
            except ValueError:
                _log.warning("cluster_password_key_bad", key=PASSWORD_KEY)

    async def _newest(self, stream: str) -> str:
        newest: Any = await self._writer.xrevrange(stream, count=1)
        return str(newest[0][0].decode()) if newest else "0-0"

    async def _change(self, op: str, key: str = "", value: str = "") -> None:
        await self._writer.xadd(
            CHANGES,
            {"worker": self.worker, "op": op, "key": key, "value": value},
            maxlen=STREAM_LENGTH,
            approximate=True,
        )

    # -- what this worker holds ---------------------------------------------------------------

    def _watch(self, msisdn: str, on: bool) -> None:
        """Hub: the first socket for msisdn opened here (on), or its last closed."""
        if on:
            self._watched.add(msisdn)
        else:
            self._watched.discard(msisdn)
        self._publish("+" if on else "-", f"ws:{msisdn}", "1")

    def _receiver(self, key: int, account: SmppAccount | None) -> None:
        """SMPP server: a receiving harness bind opened here (its account), or a bind closed."""
        if account is not None:
            self._local_rx[key] = tuple(account.sms_ranges)
            self._publish("+", f"rx:{key}", _ranges(account))
        elif self._local_rx.pop(key, None) is not None:
            self._publish("-", f"rx:{key}", "")

    def _publish(self, op: str, key: str, value: str) -> None:
        # Through the one ordered pipeline of _sender: a socket closed right after it opened
        # must not reach Redis before its opening did. Never dropped (one per socket or bind).
        self._queue("hset" if op == "+" else "hdel", key, value)
        change = {"worker": self.worker, "op": op, "key": key, "value": value}
        self._queue("xadd", CHANGES, change)

    def _apply(self, worker: str, op: str, key: str, value: str) -> None:
        """Another worker's interest change (or one entry of its snapshot)."""
        if op == "reset":
            self._drop(worker)
            return
        kind, _, what = key.partition(":")
        if kind == "ws":
            if op == "+":
                self._watching.setdefault(what, set()).add(worker)
            elif (workers := self._watching.get(what)) is not None:
                workers.discard(worker)
                if not workers:
                    del self._watching[what]
        elif kind == "rx":
            if op == "+":
                try:
                    ranges = tuple(str(r) for r in json.loads(value))
                except (ValueError, TypeError):
                    return
                self._receivers.setdefault(worker, {})[what] = ranges
            elif (binds := self._receivers.get(worker)) is not None:
                binds.pop(what, None)
                if not binds:
                    del self._receivers[worker]

    def _drop(self, worker: str) -> None:
        for msisdn in [m for m, ws in self._watching.items() if worker in ws]:
            self._apply(worker, "-", f"ws:{msisdn}", "")
        self._receivers.pop(worker, None)

    async def _forget_dead(self, known: set[str] | None = None) -> None:
        """Route nothing to workers that no longer beat; read a worker's interests again when
        it beats again; delete them once it has not beaten for FORGET_AFTER."""
        others = {w for ws in self._watching.values() for w in ws} | set(self._receivers)
        names = sorted(others | set(self._dormant) | (known or set()))
        if not names:
            return
        assert self._loop is not None
        now = self._loop.time()
        beats: Any = await self._writer.mget([WORKER + w for w in names])
        for worker, beat in zip(names, beats, strict=True):
            since = self._dormant.get(worker)
            if beat is None and since is None:
                _log.info("cluster_routes_worker_gone", worker=worker)
                self._drop(worker)
                self._dormant[worker] = now
            elif beat is None and since is not None and now - since > FORGET_AFTER:
                del self._dormant[worker]
                await self._writer.srem(INTERESTED, worker)
                await self._writer.delete(INTERESTS + worker)
            elif beat is not None and since is not None:
                del self._dormant[worker]
                _log.info("cluster_routes_worker_back", worker=worker)
                held: Any = await self._writer.hgetall(INTERESTS + worker)
                for key, value in held.items():
                    self._apply(worker, "+", key.decode(), value.decode())

    # -- routing out: a dict lookup per event, one pipeline per loop iteration ---------------

    def _on_event(self, event: Event) -> None:
        if not self._watching and not self._receivers:
            return  # no other worker holds a socket or a bind: the common case, first
        if isinstance(event, _WS_EVENTS) and (workers := self._watching.get(event.msisdn)):
            message = event_message(event)
            if message is not None:
                text = json.dumps(message)
                for worker in workers:
                    self._send(worker, {"op": "ws", "msisdn": event.msisdn, "data": text})
        if self._receivers:
            self._route_smpp(event)

    def _route_smpp(self, event: Event) -> None:
        if isinstance(event, SmsQueued):
            target = self._bind_worker(event.msisdn, event.sms.id)
        elif isinstance(event, DialogStarted):
            if event.service != "push":
                return
            target = self._bind_worker(event.msisdn, zlib.crc32(event.session.encode()))
            if target is None:
                return
            self._pushed[event.session] = target
            while len(self._pushed) > PUSHES_MAX:
                self._pushed.popitem(last=False)
        elif isinstance(event, ScreenShown):
            target = self._pushed.get(event.screen.session)
        elif isinstance(event, DialogEnded):
            target = self._pushed.pop(event.session, None)
            if self._ends and (ends := self._ends.pop(event.session, None)) is not None:
                # Each worker once, the push's among them: its SMS centre hears it once.
                text = encode(event)
                for worker in dict.fromkeys((target, *ends) if target is not None else ends):
                    self._send(worker, {"op": "smpp", "msisdn": event.msisdn, "data": text})
                return
        elif isinstance(event, SmsStateChanged):
            # An MO SMS delivered or expired here may owe its sender's system a delivery
            # receipt (SMPP 3.4 §5.2.17), whose bind may be on any worker that has one.
            if event.sms.kind != "mo" or event.sms.state is SmsState.QUEUED:
                return
            text = encode(event)
            for worker in self._receivers:
                self._send(worker, {"op": "smpp", "msisdn": event.msisdn, "data": text})
            return
        else:
            return
        if target is not None:
            self._send(target, {"op": "smpp", "msisdn": event.msisdn, "data": encode(event)})

    def _taken(self, msisdn: str, session: str, before: tuple[str, ...]) -> None:
        """Cluster: this worker took a dialog over (a reply reached it); `before` are the
        workers that held it before, each once (docs/cluster.md "What is routed")."""
        ends = tuple(w for w in before if w in self._receivers)  # never this worker
        if ends:
            self._ends[session] = ends
            while len(self._ends) > PUSHES_MAX:
                self._ends.popitem(last=False)

    def _bind_worker(self, msisdn: str, spread: int) -> str | None:
        """The worker whose receiving bind takes msisdn's SMS; None when one here does (this
        worker's SMS centre delivers it) or none does anywhere."""
        if any(covered(msisdn, r) for r in self._local_rx.values()):
            return None
        workers = sorted(
            w
            for w, binds in self._receivers.items()
            if any(covered(msisdn, r) for r in binds.values())
        )
        return workers[spread % len(workers)] if workers else None

    def _send(self, worker: str, fields: dict[str, str]) -> None:
        if self._routed >= OUT_MAX:
            self.dropped += 1  # Redis is slower than the events: the sockets miss some
            return
        self._routed += 1
        self._queue("xadd", EVENTS + worker, fields)

    def _queue(self, command: str, key: str, value: Any) -> None:
        if self._stopping or self._loop is None:
            return
        self._out.append((command, key, value))
        if len(self._out) == 1:
            if threading.get_ident() == self._thread:
                self._loop.call_soon(self._flush)
            else:  # an engine call made off the loop thread
                self._loop.call_soon_threadsafe(self._flush)

    async def flushed(self) -> None:
        """Until what was queued so far has been sent, or dropped (Redis failed)."""
        if self._out:
            self._flush()
        if self._sending is not None and not self._sending.done():
            await asyncio.shield(self._sending)

    def _flush(self) -> None:
        if not self._stopping and (self._sending is None or self._sending.done()):
            self._sending = asyncio.ensure_future(self._sender())

    async def _sender(self) -> None:
        """Send what was queued, one pipeline per pass (what queues meanwhile goes next)."""
        while self._out and not self._stopping:
            batch, self._out = self._out, []
            routed, self._routed = self._routed, 0
            pipe = self._writer.pipeline(transaction=False)
            for command, key, value in batch:
                if command == "xadd":
                    pipe.xadd(key, value, maxlen=STREAM_LENGTH, approximate=True)
                elif command == "hset":
                    pipe.hset(self._interests, key, value)
                else:
                    pipe.hdel(self._interests, key)
            try:
                await pipe.execute()
            except redis.RedisError as exc:
                self.dropped += routed
                self._failed("routed events", exc, len(batch))
                if len(batch) > routed:
                    self._rejoin = True  # interest changes were lost: the reader rejoins
                continue
            self.sent += routed
            self._up()

    # -- routing in: one XREAD for the interest changes and this worker's events -------------

    async def _reading(self, last: dict[str, str] | None) -> None:
        assert self._loop is not None
        check = self._loop.time() + HEARTBEAT
        while not self._stopping:
            if last is None or self._rejoin:
                # Redis was away (it may have restarted empty): publish again and reload.
                self._rejoin = False
                try:
                    last = await self._join()
                except redis.RedisError as exc:
                    self._failed("joining", exc)
                    await asyncio.sleep(HEARTBEAT)  # Redis is away: try again at the next beat
                    last = None
                    continue
            try:
                streams: Any = last
                answer: Any = await self._reader.xread(streams, block=BLOCK_MS, count=READ_BATCH)
                if self._loop.time() >= check:  # once a beat: see who stopped beating
                    check = self._loop.time() + HEARTBEAT
                    await self._forget_dead()
                    await self.share_key()
            except redis.RedisError as exc:
                self._failed("reading routed events", exc)
                last = None
                continue
            for raw_stream, entries in answer or ():
                stream = raw_stream.decode()
                for entry_id, raw in entries:
                    last[stream] = entry_id.decode()
                    fields = {k.decode(): v.decode() for k, v in raw.items()}
                    if stream == CHANGES:
                        if fields.get("worker") != self.worker:
                            self._apply(
                                fields.get("worker", ""),
                                fields.get("op", ""),
                                fields.get("key", ""),
                                fields.get("value", ""),
                            )
                    else:
                        self.handle(fields)

    def handle(self, fields: dict[str, str]) -> None:
        """One event another worker routed here."""
        op, msisdn, data = fields.get("op"), fields.get("msisdn", ""), fields.get("data", "")
        try:
            if op == "ws" and self.hub is not None:
                message = json.loads(data)
                if not isinstance(message, dict):
                    raise ValueError("a routed message is a JSON object")
                self.hub.deliver(msisdn, message)
            elif op == "smpp" and self.smpp is not None:
                self.smpp.offer(decode(data))
            else:
                return
        except (ValueError, KeyError, TypeError):
            _log.warning("cluster_routed_event_bad", op=op, msisdn=msisdn)
            return
        self.received += 1

    # -- Redis health (logged once per outage) -----------------------------------------------

    def _failed(self, what: str, exc: Exception, count: int = 1) -> None:
        self.errors += count
        if not self._down:
            self._down = True
            _log.error("cluster_routes_unavailable", lost=what, error=str(exc))

    def _up(self) -> None:
        if self._down:
            self._down = False
            _log.info("cluster_routes_back")
