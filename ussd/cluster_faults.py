"""Cluster mode: one fault rule set for every worker, counted and drawn in Redis.

The rules of docs/network.md "Faults" belong to one process in the embedded gateway. With
several workers (docs/cluster.md) any of them answers the admin API, so the set, its counts
and its recent injections live in Redis, and every worker holds a copy of the set in its
`Faults` (ussd/faults.py), which decides nothing alone:

- a change through the admin API is one script here (atomic: a duplicate id or a full set is
  refused as on one worker), which bumps the set's version and appends it to a stream that
  every worker reads, blocking, to adopt the new set at once; each also compares the version
  once a beat, which catches what a lost connection missed;
- a matching event on any worker is decided by one script call: `seen`, `fired`, `every` and
  `times` count across the cluster, a rule's recent injection goes to one bounded list, and a
  probability draws, for the rule's k-th candidate event (every `every`-th match), the number
  sha1(seed:rule:k)'s first 52 bits give (`draw`): the same seed, rules and traffic fire in
  the same places whichever worker takes each event. With no rule in force nothing is asked
  (Faults keeps `if not self._states: return None` first);
- a worker starting with rules in its config stores them when Redis holds no set; otherwise
  it adopts the live one. A Redis that lost the set (restarted empty) gets the set of the
  first worker that looks, with every count at zero;
- a decision that cannot ask Redis is "no fault" (logged once per outage), and for one beat
  after a failure nothing is asked, so a step never waits on a Redis that is away.

smpp_throttle's per-second windows stay per worker: a bind lives on one worker; only a
submit_sm past the rate is a matching event decided here.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import secrets
import time
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import redis
import redis.asyncio as aredis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ussd import log
from ussd.cluster import HEARTBEAT, PREFIX, TIMEOUT, DirectScript
from ussd.faults import (
    MAX_RECENT,
    MAX_RULES,
    FaultError,
    Faults,
    Injection,
    Rule,
    RuleExists,
    TooManyRules,
    parse_rule,
)

_log = log.get("cluster")

# hash: seed, epoch (new at every replacement of the whole set), version (every change),
# n (instances handed out: a rule put in force is counted under a new one), next (the next
# automatic id, f1, f2, …, as Faults.new_id).
FAULTS = PREFIX + "faults"
RULES = PREFIX + "faults:rules"  # hash: id -> {"n": instance, "rule": the rule without id}
COUNTS = PREFIX + "faults:counts"  # hash: "<n>:s" matching events seen, "<n>:f" fired
RECENT = PREFIX + "faults:recent"  # list: the last MAX_RECENT injections (JSON), oldest first
CHANGES = PREFIX + "faults:changes"  # stream: {"version"} per change of the set (MAXLEN ~ 100)
BLOCK_MS = 1000  # an XREAD of CHANGES waits this long at most, so a stop is seen

# A change's last act: the version moves and every worker reading CHANGES hears it.
_CHANGED = """
local function changed()
  local v = redis.call('HINCRBY', KEYS[1], 'version', 1)
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', 100, '*', 'version', v)
end
"""
# KEYS: FAULTS, RULES, COUNTS, CHANGES. ARGV: only if Redis holds no set (1/0), seed, epoch,
# then id and rule JSON (without id) of each rule, in order. 0 when a set was there already.
_RESET = (
    _CHANGED
    + """
if ARGV[1] == '1' and redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('HSET', KEYS[1], 'seed', ARGV[2], 'epoch', ARGV[3], 'next', 1)
for i = 4, #ARGV, 2 do
  local n = redis.call('HINCRBY', KEYS[1], 'n', 1)
  redis.call('HSET', KEYS[2], ARGV[i], '{"n":' .. n .. ',"rule":' .. ARGV[i + 1] .. '}')
  redis.call('HSET', KEYS[3], n .. ':s', 0, n .. ':f', 0)
end
changed()
return 1
"""
)
# KEYS: as _RESET. ARGV: id ('' for the next automatic one), rule JSON (without id), the most
# rules. {'added'|'exists'|'full', id}.
_ADD = (
    _CHANGED
    + """
local id = ARGV[1]
if id == '' then
  local k = tonumber(redis.call('HGET', KEYS[1], 'next') or '1')
  while redis.call('HEXISTS', KEYS[2], 'f' .. k) == 1 do k = k + 1 end
  redis.call('HSET', KEYS[1], 'next', k)
  id = 'f' .. k
elseif redis.call('HEXISTS', KEYS[2], id) == 1 then
  return {'exists', id}
end
if redis.call('HLEN', KEYS[2]) >= tonumber(ARGV[3]) then return {'full', id} end
local n = redis.call('HINCRBY', KEYS[1], 'n', 1)
redis.call('HSET', KEYS[2], id, '{"n":' .. n .. ',"rule":' .. ARGV[2] .. '}')
redis.call('HSET', KEYS[3], n .. ':s', 0, n .. ':f', 0)
changed()
return {'added', id}
"""
)
# KEYS: as _RESET. ARGV: id, or nothing for every rule. How many were removed.
_REMOVE = (
    _CHANGED
    + """
local removed
if #ARGV == 0 then
  removed = redis.call('HLEN', KEYS[2])
  redis.call('DEL', KEYS[2], KEYS[3])
else
  local held = redis.call('HGET', KEYS[2], ARGV[1])
  if not held then return 0 end
  local n = string.match(held, '^{"n":(%d+),')
  redis.call('HDEL', KEYS[2], ARGV[1])
  redis.call('HDEL', KEYS[3], n .. ':s', n .. ':f')
  removed = 1
end
changed()
return removed
"""
)
# One matching event of a rule, on any worker (Faults._fires, counted across the cluster).
# KEYS: FAULTS, COUNTS, RECENT. ARGV: id, instance, times (0: no limit), every, probability,
# the injection (JSON), MAX_RECENT. {fires 0/1, seen, fired}, or false when that instance of
# the rule is no longer in force (removed, or the set replaced): no fault.
_DECIDE = """
local s, f = ARGV[2] .. ':s', ARGV[2] .. ':f'
local fired = redis.call('HGET', KEYS[2], f)
if not fired then return false end
fired = tonumber(fired)
local times = tonumber(ARGV[3])
if times > 0 and fired >= times then
  return {0, tonumber(redis.call('HGET', KEYS[2], s) or '0'), fired}
end
local seen = redis.call('HINCRBY', KEYS[2], s, 1)
local every = tonumber(ARGV[4])
if seen % every ~= 0 then return {0, seen, fired} end
local p = tonumber(ARGV[5])
if p < 1 then
  local seed = redis.call('HGET', KEYS[1], 'seed') or '0'
  local k = string.format('%d', seen / every)
  local h = redis.sha1hex(seed .. ':' .. ARGV[1] .. ':' .. k)
  if tonumber(string.sub(h, 1, 13), 16) / 4503599627370496 >= p then
    return {0, seen, fired}
  end
end
fired = redis.call('HINCRBY', KEYS[2], f, 1)
redis.call('RPUSH', KEYS[3], ARGV[6])
redis.call('LTRIM', KEYS[3], -tonumber(ARGV[7]), -1)
return {1, seen, fired}
"""
_KEYS = [FAULTS, RULES, COUNTS, CHANGES]


def draw(seed: int, rule_id: str, k: int) -> float:
    """The draw in [0, 1) of a rule's k-th candidate event (1, 2, …) in cluster mode: the first
    52 bits of sha1("seed:rule:k"), as the decision script computes it."""
    digest = hashlib.sha1(f"{seed}:{rule_id}:{k}".encode()).hexdigest()
    return int(digest[:13], 16) / 2**52


_DECIDE_KEYS = [b"3", FAULTS.encode(), COUNTS.encode(), RECENT.encode()]


def _stored(rule: Rule) -> str:
    # A rule as RULES keeps it: its JSON without the id (the hash's field), read back by
    # parse_rule with the id added.
    data = rule.to_json()
    del data["id"]
    return json.dumps(data, separators=(",", ":"))


def _text(value: Any) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


class ClusterFaults:
    """One worker's share of the cluster's fault rules: start() puts it in `faults.shared`."""

    def __init__(self, faults: Faults, url: str) -> None:
        self.faults = faults
        self.url = url
        # The decisions are made inside a synchronous step (maybe off the loop's thread): a
        # connection of their own, never retried after a timeout, so a step waits TIMEOUT
        # at most.
        self._sync = redis.Redis.from_url(
            url,
            socket_timeout=TIMEOUT,
            socket_connect_timeout=TIMEOUT,
            retry=Retry(NoBackoff(), 1, (redis.ConnectionError,)),
        )
        self._decide = DirectScript(self._sync.connection_pool, _DECIDE)
        # The loop's clients: changes and reads, and the blocking read of CHANGES.
        self._async = aredis.Redis.from_url(
            url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT
        )
        self._reader = aredis.Redis.from_url(url, socket_connect_timeout=TIMEOUT)
        self._reset = self._async.register_script(_RESET)
        self._add = self._async.register_script(_ADD)
        self._remove = self._async.register_script(_REMOVE)
        self._lock = asyncio.Lock()  # one reload at a time: a later one reads a later set
        self._held: tuple[str | None, str | None] | None = None  # (epoch, version) adopted
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._quiet_until = 0.0  # time.monotonic(): no decision asks Redis before (it failed)
        self._down = False
        self.adopted = asyncio.Event()  # set whenever another set is put in force here
        self.calls = 0  # decisions asked of Redis
        self.errors = 0  # Redis operations that failed

    # -- life ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Store this worker's rules when Redis holds no set, else adopt the live one; from
        now on decide every matching event in Redis and follow every change."""
        self._stopping = False
        self.faults.shared = self
        last: str | None
        try:
            last = await self._newest()
            await self.reload()
            self._up()
        except redis.RedisError as exc:
            self._failed("reading the fault rules", exc)
            last = None  # the loop tries again at the next beat
        self._task = asyncio.create_task(self._following(last), name="cluster-faults")

    async def stop(self) -> None:
        """Stop deciding and following (bounded by TIMEOUT); the set adopted stays in force
        locally."""
        self._stopping = True
        if self.faults.shared is self:
            self.faults.shared = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError, redis.RedisError):
                async with asyncio.timeout(TIMEOUT):
                    await self._task
            self._task = None
        for client in (self._async, self._reader):
            with contextlib.suppress(TimeoutError, redis.RedisError):
                async with asyncio.timeout(TIMEOUT):
                    await client.aclose()
        self._decide.close()
        self._sync.close()

    @property
    def held(self) -> tuple[str | None, str | None] | None:
        """Which set is in force here, (epoch, version): the same on two workers, the same set."""
        return self._held

    # -- the decisions (Shared, ussd/faults.py) ------------------------------------------------

    def decide(
        self, rule: Rule, instance: int, injection: Injection
    ) -> tuple[bool, int, int] | None:
        """One matching event of `rule`, counted and drawn for the whole cluster."""
        if time.monotonic() < self._quiet_until:
            return None  # Redis failed a moment ago: no fault, and no wait
        self.calls += 1
        tail = [
            *_DECIDE_KEYS,
            rule.id.encode(),
            b"%d" % instance,
            b"%d" % (rule.times or 0),
            b"%d" % rule.match.every,
            repr(rule.match.probability).encode(),
            json.dumps(injection.to_json(), ensure_ascii=False).encode(),
            b"%d" % MAX_RECENT,
        ]
        try:
            answer: Any = self._decide(tail)
        except redis.RedisError as exc:
            self._quiet_until = time.monotonic() + HEARTBEAT
            self._failed("a fault decision", exc)
            return None
        self._up()
        if not answer:
            return None  # no longer in force: this worker adopts the change in a moment
        return bool(answer[0]), int(answer[1]), int(answer[2])

    # -- the set --------------------------------------------------------------------------------

    async def reload(self) -> None:
        """Adopt the set Redis holds, when it changed since the last time; store this worker's
        own when Redis holds none."""
        async with self._lock:
            meta, raw = await self._read()
            if meta[0] is None:
                # A fresh Redis, or one restarted empty: this worker's set, counts from zero.
                if await self._store(self.faults.rules(), self.faults.seed, only_if_absent=True):
                    _log.info("cluster_faults_stored", rules=len(self.faults.rules()))
                meta, raw = await self._read()
            held = (_text(meta[0]), _text(meta[1]))
            if held == self._held:
                return
            self.faults.adopt(int(meta[2] or 0), self._parse(raw))
            self._held = held
            self.adopted.set()

    async def snapshot(self) -> dict[str, Any]:
        """The admin API's view, the same on every worker: seed, rules with the cluster's
        counts, the cluster's last injections. ConnectionError when Redis cannot say."""
        try:
            pipe = self._async.pipeline(transaction=True)
            pipe.hget(FAULTS, "seed")
            pipe.hgetall(RULES)
            pipe.hgetall(COUNTS)
            pipe.lrange(RECENT, 0, -1)
            seed, raw, counts, recent = await pipe.execute()
        except redis.RedisError as exc:
            raise self._unavailable(exc) from None
        rules = []
        for n, rule in self._parse(raw):
            seen = int(counts.get(f"{n}:s".encode(), 0))
            fired = int(counts.get(f"{n}:f".encode(), 0))
            rules.append({**rule.to_json(), "seen": seen, "fired": fired})
        return {
            "seed": int(seed or 0),
            "rules": rules,
            "injected": [json.loads(item) for item in recent],
        }

    async def add(self, rule: Rule, *, automatic: bool = False) -> Rule:
        """Put `rule` in force on every worker (with the next automatic id when `automatic`);
        RuleExists, TooManyRules, or ConnectionError when Redis cannot be asked."""
        try:
            answer: Any = await self._add(
                keys=_KEYS, args=["" if automatic else rule.id, _stored(rule), MAX_RULES]
            )
            status, rule_id = answer[0].decode(), answer[1].decode()
            if status == "exists":
                raise RuleExists("id", f"a rule with id {rule_id!r} exists")
            if status == "full":
                raise TooManyRules("", f"at most {MAX_RULES} rules")
            await self.reload()  # the answer of the worker that made it shows it at once
        except redis.RedisError as exc:
            raise self._unavailable(exc) from None
        return replace(rule, id=rule_id)

    async def remove(self, rule_id: str) -> bool:
        """Take one rule out of force on every worker; False when there was none."""
        return bool(await self._removing([rule_id]))

    async def clear(self) -> int:
        """Take every rule out of force on every worker; how many there were."""
        return await self._removing([])

    async def reset(self, rules: Iterable[Rule], seed: int) -> None:
        """Put exactly `rules` in force on every worker, drawing from `seed`, every count at
        zero (the recent injections stay, as on one worker)."""
        try:
            await self._store(tuple(rules), seed, only_if_absent=False)
            await self.reload()
        except redis.RedisError as exc:
            raise self._unavailable(exc) from None

    async def _removing(self, args: list[str]) -> int:
        try:
            removed: Any = await self._remove(keys=_KEYS, args=args)
            await self.reload()
        except redis.RedisError as exc:
            raise self._unavailable(exc) from None
        return int(removed)

    async def _store(self, rules: Iterable[Rule], seed: int, *, only_if_absent: bool) -> bool:
        args: list[str | int] = ["1" if only_if_absent else "0", seed, secrets.token_hex(8)]
        for rule in rules:
            args += [rule.id, _stored(rule)]
        return bool(await self._reset(keys=_KEYS, args=args))

    async def _read(self) -> tuple[list[Any], dict[bytes, bytes]]:
        pipe = self._async.pipeline(transaction=True)
        pipe.hmget(FAULTS, ["epoch", "version", "seed"])
        pipe.hgetall(RULES)
        meta, raw = await pipe.execute()
        return meta, raw

    def _parse(self, raw: dict[bytes, bytes]) -> list[tuple[int, Rule]]:
        # RULES' entries in the order they were put in force (the first matching rule fires).
        rules: list[tuple[int, Rule]] = []
        for key, value in raw.items():
            rule_id = key.decode()
            try:
                held = json.loads(value)
                rule = parse_rule({**held["rule"], "id": rule_id}, rule_id)
                rules.append((int(held["n"]), rule))
            except (ValueError, KeyError, TypeError, FaultError):
                _log.warning("cluster_fault_rule_bad", rule=rule_id[:40])
        rules.sort(key=lambda item: item[0])
        return rules

    # -- following the changes ------------------------------------------------------------------

    async def _newest(self) -> str:
        newest: Any = await self._async.xrevrange(CHANGES, count=1)
        return str(newest[0][0].decode()) if newest else "0-0"

    async def _following(self, last: str | None) -> None:
        loop = asyncio.get_running_loop()
        check = loop.time() + HEARTBEAT
        while not self._stopping:
            try:
                if last is None:  # Redis was away: read on from now, and adopt what it holds
                    last = await self._newest()
                    await self.reload()
                streams: Any = {CHANGES: last}
                answer: Any = await self._reader.xread(streams, block=BLOCK_MS, count=100)
                for _stream, entries in answer or ():
                    last = entries[-1][0].decode()
                if answer:
                    await self.reload()
                if loop.time() >= check:  # once a beat: a change a lost read missed
                    check = loop.time() + HEARTBEAT
                    meta: Any = await self._async.hmget(FAULTS, ["epoch", "version"])
                    if (_text(meta[0]), _text(meta[1])) != self._held:
                        await self.reload()
                self._up()
            except redis.RedisError as exc:
                self._failed("following the fault rules", exc)
                last = None
                await asyncio.sleep(HEARTBEAT)  # Redis is away: try again at the next beat

    # -- Redis health (logged once per outage) -------------------------------------------------

    def _unavailable(self, exc: Exception) -> ConnectionError:
        self._failed("the fault rules", exc)
        return ConnectionError(f"Redis does not answer: {exc}")

    def _failed(self, what: str, exc: Exception) -> None:
        self.errors += 1
        if not self._down:
            self._down = True
            _log.error("cluster_faults_unavailable", lost=what, error=str(exc))

    def _up(self) -> None:
        if self._down:
            self._down = False
            _log.info("cluster_faults_back")
