"""Deterministic network faults (docs/network.md "Faults"): rules, matching, a seed.

Pure: no I/O, no clock of its own, no asyncio. The places where a fault can bite ask one
question each and act on the answer:

* the SMS centre (ussd/sms.py): `sms(to)` → lost or delayed;
* the engine (ussd/engine.py): `ussd(at, msisdn, code)` → a network error screen, or the dialog
  dropped (the subscriber's answers vanish and the handset times out);
* HTTP and SMPP applications: `app(msisdn, code, app)` → a timeout or an error instead of
  asking the application;
* the SMPP adapter (ussd/smpp/server.py): `smpp(system_id, bind, now)` → ESME_RTHROTTLED above
  a rate, or no response at all.

Each rule matches by MSISDN (a glob such as `7916*`), service code, SMPP system_id or
application name, then fires on every Nth match and with a probability, at most `times` times.
Every rule draws from its own `random.Random` seeded with the set's seed and the rule's id, so
the same seed and the same rules inject the same faults in the same places on every run, and
adding a rule never changes what another one draws.

In cluster mode (docs/cluster.md) the workers share one set: ussd/cluster_faults.py keeps it in
Redis, puts it in force here (`adopt`) and, as `shared`, decides each matching event for all
of them (one count and one draw across the cluster). With no rule in force nothing is asked.
"""

from __future__ import annotations

import fnmatch
import random
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ussd import durations
from ussd.yamlload import brief

SMS_LOST = "sms_lost"
SMS_DELAYED = "sms_delayed"
USSD_NETWORK_ERROR = "ussd_network_error"
DIALOG_DROPPED = "dialog_dropped"
APP_TIMEOUT = "app_timeout"
APP_ERROR = "app_error"
SMPP_THROTTLE = "smpp_throttle"
SMPP_WITHHOLD = "smpp_withhold_response"

KINDS = (
    SMS_LOST,
    SMS_DELAYED,
    USSD_NETWORK_ERROR,
    DIALOG_DROPPED,
    APP_TIMEOUT,
    APP_ERROR,
    SMPP_THROTTLE,
    SMPP_WITHHOLD,
)
SMS_KINDS = (SMS_LOST, SMS_DELAYED)
USSD_KINDS = (USSD_NETWORK_ERROR, DIALOG_DROPPED)
APP_KINDS = (APP_TIMEOUT, APP_ERROR)
SMPP_KINDS = (SMPP_THROTTLE, SMPP_WITHHOLD)

# Which `match` keys make sense for which kinds: a key that can never match is a typo.
_MATCH_KEYS: dict[str, tuple[str, ...]] = {
    SMS_LOST: ("msisdn",),
    SMS_DELAYED: ("msisdn",),
    USSD_NETWORK_ERROR: ("msisdn", "code"),
    DIALOG_DROPPED: ("msisdn", "code"),
    APP_TIMEOUT: ("msisdn", "code", "app"),
    APP_ERROR: ("msisdn", "code", "app"),
    SMPP_THROTTLE: ("system_id",),
    SMPP_WITHHOLD: ("system_id", "msisdn"),
}
_COMMON_MATCH = ("probability", "every")
_RULE_KEYS = ("id", "kind", "match", "times", "at", "delay", "rate")

# Bounds (docs/network.md "Faults"): each rule costs a little work on every SMS, dial and PDU.
MAX_RULES = 100
MAX_DELAY = 86400.0  # an SMS delayed a day is as good as lost; longer is a typo
MAX_RATE = 100_000  # submit_sm per second per bind
MAX_EVERY = 1_000_000
MAX_RECENT = 100  # injections kept for the admin API
MAX_PATTERN = 64
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


class FaultError(ValueError):
    """A rule that cannot be used; `key` is the field at fault (`match.probability`)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}" if key else message)
        self.key = key
        self.message = message


class RuleExists(FaultError):
    """A rule with this id is in force (the admin API's 409 `rule_exists`)."""


class TooManyRules(FaultError):
    """MAX_RULES are in force (the admin API's 409 `too_many_rules`)."""


@dataclass(frozen=True, slots=True)
class Match:
    """Where a rule bites; None matches anything."""

    msisdn: str | None = None  # glob on international digits, "7916*"
    code: str | None = None  # service code, "*111#" or "111" (glob: "*11?#")
    system_id: str | None = None  # SMPP bind (glob)
    app: str | None = None  # application name of an `app:NAME` route (glob)
    probability: float = 1.0
    every: int = 1  # the Nth, 2Nth, … matching event

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            k: v
            for k, v in (
                ("msisdn", self.msisdn),
                ("code", self.code),
                ("system_id", self.system_id),
                ("app", self.app),
            )
            if v is not None
        }
        if self.probability != 1.0:
            data["probability"] = self.probability
        if self.every != 1:
            data["every"] = self.every
        return data


@dataclass(frozen=True, slots=True)
class Rule:
    """One fault rule: its kind, where it matches and the kind's parameters."""

    id: str
    kind: str
    match: Match = Match()
    times: int | None = None  # fire at most this often (None: no limit)
    at: str = "dial"  # USSD faults: "dial" or "reply"
    delay: float = 0.0  # sms_delayed: seconds
    rate: int = 0  # smpp_throttle: submit_sm per second per bind answered normally

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "kind": self.kind, "match": self.match.to_json()}
        if self.times is not None:
            data["times"] = self.times
        if self.kind in USSD_KINDS:
            data["at"] = self.at
        if self.kind == SMS_DELAYED:
            data["delay"] = self.delay
        if self.kind == SMPP_THROTTLE:
            data["rate"] = self.rate
        return data


@dataclass(frozen=True, slots=True)
class Injection:
    """A fault that fired: what the log line, the counter and the web phone say."""

    rule: str
    kind: str
    msisdn: str | None = None
    code: str | None = None
    system_id: str | None = None
    at: str = ""  # dial | reply | sms | app | submit_sm
    delay: float = 0.0

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"rule": self.rule, "kind": self.kind, "at": self.at}
        for key in ("msisdn", "code", "system_id"):
            value = getattr(self, key)
            if value is not None:
                data[key] = value
        if self.kind == SMS_DELAYED:
            data["delay"] = self.delay
        return data


# -- parsing: config, admin API and scenario files share one validator --------------------------


def _code(value: str) -> str:
    # "*111#", "111" and "*111*#" name the same code: compare the bare digits and wildcards.
    return value.strip().strip("*#")


def _pattern(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value or len(value) > MAX_PATTERN:
        raise FaultError(f"match.{key}", f"expected a pattern of 1-{MAX_PATTERN} characters")
    if key == "msisdn":
        return value.lstrip("+")
    if key == "code":
        code = _code(value)
        if not code:
            raise FaultError(
                "match.code", f"expected a service code such as *111#, got {brief(value)}"
            )
        return code
    return value


def _match(raw: object, kind: str) -> Match:
    if raw is None:
        return Match()
    if not isinstance(raw, Mapping):
        raise FaultError("match", "expected a mapping")
    allowed = (*_MATCH_KEYS[kind], *_COMMON_MATCH)
    for key in raw:
        if key not in allowed:
            raise FaultError(
                f"match.{key}", f"not a match key of {kind} (allowed: {', '.join(allowed)})"
            )
    probability = raw.get("probability", 1.0)
    if (
        isinstance(probability, bool)
        or not isinstance(probability, int | float)
        or not 0 < probability <= 1
    ):
        raise FaultError(
            "match.probability", f"expected a number in (0, 1], got {brief(probability)}"
        )
    every = raw.get("every", 1)
    if isinstance(every, bool) or not isinstance(every, int) or not 1 <= every <= MAX_EVERY:
        raise FaultError("match.every", f"expected an integer 1-{MAX_EVERY:_}, got {brief(every)}")
    return Match(
        msisdn=_pattern(raw, "msisdn"),
        code=_pattern(raw, "code"),
        system_id=_pattern(raw, "system_id"),
        app=_pattern(raw, "app"),
        probability=float(probability),
        every=every,
    )


def parse_rule(raw: object, default_id: str) -> Rule:
    """A rule from its mapping (config, admin API, scenario); FaultError names the bad field."""
    if not isinstance(raw, Mapping):
        raise FaultError("", "expected a mapping with a kind")
    for key in raw:
        if key not in _RULE_KEYS:
            raise FaultError(str(key)[:40], "unknown key")
    kind = raw.get("kind")
    if kind not in KINDS:
        raise FaultError("kind", f"expected one of {', '.join(KINDS)}, got {brief(kind)}")
    rule_id = raw.get("id", default_id)
    if not isinstance(rule_id, str) or not 1 <= len(rule_id) <= 40 or not set(rule_id) <= _ID_CHARS:
        raise FaultError("id", "expected 1-40 letters, digits, '_', '.' or '-'")
    times = raw.get("times")
    if times is not None and (
        isinstance(times, bool) or not isinstance(times, int) or not 1 <= times <= MAX_EVERY
    ):
        raise FaultError("times", f"expected an integer 1-{MAX_EVERY:_}, got {brief(times)}")
    at = raw.get("at", "dial")
    if "at" in raw and kind not in USSD_KINDS:
        raise FaultError("at", f"only USSD faults ({', '.join(USSD_KINDS)}) take at")
    if at not in ("dial", "reply"):
        raise FaultError("at", f"expected dial or reply, got {brief(at)}")
    delay = 0.0
    if kind == SMS_DELAYED:
        if "delay" not in raw:
            raise FaultError("delay", "required for sms_delayed (e.g. 30s, 5m)")
        try:
            delay = durations.parse(raw["delay"], maximum=MAX_DELAY)
        except durations.DurationError as exc:
            raise FaultError("delay", exc.message) from None
        if delay <= 0:
            raise FaultError("delay", "expected a duration greater than zero")
    elif "delay" in raw:
        raise FaultError("delay", "only sms_delayed takes a delay")
    rate = 0
    if kind == SMPP_THROTTLE:
        rate = raw.get("rate", -1)
        if isinstance(rate, bool) or not isinstance(rate, int) or not 0 <= rate <= MAX_RATE:
            raise FaultError(
                "rate",
                f"required: submit_sm per second per bind, 0-{MAX_RATE:_}, got {brief(rate)}",
            )
    elif "rate" in raw:
        raise FaultError("rate", "only smpp_throttle takes a rate")
    return Rule(
        id=rule_id,
        kind=kind,
        match=_match(raw.get("match"), kind),
        times=times,
        at=at,
        delay=delay,
        rate=rate,
    )


def parse_rules(raw: object, start: int = 1) -> tuple[Rule, ...]:
    """A list of rules; ids default to f1, f2, …; FaultError keys start with `[i]`."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise FaultError("", "expected a list of rules")
    if len(raw) > MAX_RULES:
        raise FaultError("", f"at most {MAX_RULES} rules")
    rules: list[Rule] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        try:
            rule = parse_rule(item, f"f{start + i}")
        except FaultError as exc:
            raise FaultError(f"[{i}].{exc.key}" if exc.key else f"[{i}]", exc.message) from None
        if rule.id in seen:
            raise FaultError(f"[{i}].id", f"duplicate rule id {rule.id!r}")
        seen.add(rule.id)
        rules.append(rule)
    return tuple(rules)


# -- the live set -----------------------------------------------------------------------------


@dataclass(slots=True)
class _State:
    rule: Rule
    rng: random.Random
    seen: int = 0  # matching events so far
    fired: int = 0
    # smpp_throttle: bind -> (the second it counts, submit_sm counted in it)
    windows: dict[object, tuple[int, int]] = field(default_factory=dict)
    instance: int = 0  # cluster mode: its number in Redis, new each time it is put in force


class Shared(Protocol):
    """Where the counts and draws live when several gateways share one rule set (cluster
    mode, ussd/cluster_faults.py): it decides each matching event for all of them."""

    def decide(
        self, rule: Rule, instance: int, injection: Injection
    ) -> tuple[bool, int, int] | None:
        """(fires, seen, fired), counted across every gateway; None: no fault (the rule is no
        longer in force, or nobody could be asked)."""
        ...


def _glob(pattern: str | None, value: str | None) -> bool:
    if pattern is None:
        return True
    return value is not None and fnmatch.fnmatchcase(value, pattern)


class Faults:
    """The rules in force and what they have done; one per gateway (`gateway.faults`)."""

    def __init__(self, rules: Iterable[Rule] = (), seed: int = 0) -> None:
        self.seed = seed
        self._states: dict[str, _State] = {}
        self._next_id = 1
        self.recent: deque[Injection] = deque(maxlen=MAX_RECENT)
        self.counts: dict[str, int] = dict.fromkeys(KINDS, 0)
        self._listeners: list[Callable[[Injection], None]] = []
        # Cluster mode: the set is adopted from Redis and each matching event decided there.
        self.shared: Shared | None = None
        for rule in rules:
            self.add(rule)

    # -- the rule set ----------------------------------------------------------------------

    def listen(self, listener: Callable[[Injection], None]) -> None:
        """Call listener for every injection (the gateway logs, counts and tells the phone)."""
        self._listeners.append(listener)

    def new_id(self) -> str:
        """The next free automatic id (f1, f2, …)."""
        while f"f{self._next_id}" in self._states:
            self._next_id += 1
        return f"f{self._next_id}"

    def add(self, rule: Rule) -> Rule:
        """Put a rule in force; FaultError for a duplicate id or too many rules."""
        if rule.id in self._states:
            raise RuleExists("id", f"a rule with id {rule.id!r} exists")
        if len(self._states) >= MAX_RULES:
            raise TooManyRules("", f"at most {MAX_RULES} rules")
        # A string seed is hashed with SHA-512 (random.seed, version 2): the same on every run
        # and every machine, unlike hash().
        rng = random.Random(f"{self.seed}:{rule.id}")
        self._states[rule.id] = _State(rule, rng)
        return rule

    def add_raw(self, raw: object) -> Rule:
        """parse_rule + add, with the next automatic id (admin API, scenario `fault` step)."""
        return self.add(parse_rule(raw, self.new_id()))

    def remove(self, rule_id: str) -> bool:
        return self._states.pop(rule_id, None) is not None

    def clear(self) -> int:
        count = len(self._states)
        self._states.clear()
        return count

    def reset(self, rules: Iterable[Rule], seed: int) -> None:
        """Put exactly `rules` in force, drawing from `seed` with every count at zero."""
        rules = tuple(rules)
        if len(rules) > MAX_RULES:
            raise FaultError("rules", f"at most {MAX_RULES} rules")
        self.seed = seed
        self._states.clear()
        self._next_id = 1
        for rule in rules:
            self.add(rule)

    def adopt(self, seed: int, rules: Iterable[tuple[int, Rule]]) -> None:
        """Put a shared set in force as it is (cluster mode): (instance, rule) in order. A rule
        whose instance is unchanged keeps its state (smpp_throttle's windows of this worker's
        binds); the counts and draws are the shared ones' (`shared`)."""
        states: dict[str, _State] = {}
        for instance, rule in rules:
            old = self._states.get(rule.id)
            if old is not None and old.instance == instance and old.rule == rule:
                states[rule.id] = old
            else:
                rng = random.Random(f"{seed}:{rule.id}")
                states[rule.id] = _State(rule, rng, instance=instance)
        self.seed = seed
        # Swapped whole, never changed in place: a step on another thread may be iterating.
        self._states = states

    def rules(self) -> list[Rule]:
        return [s.rule for s in self._states.values()]

    def to_json(self) -> dict[str, Any]:
        """The admin API's view: seed, rules with their counts, recent injections."""
        return {
            "seed": self.seed,
            "rules": [
                {**s.rule.to_json(), "seen": s.seen, "fired": s.fired}
                for s in self._states.values()
            ],
            "injected": [i.to_json() for i in self.recent],
        }

    def __bool__(self) -> bool:
        return bool(self._states)

    # -- the questions ---------------------------------------------------------------------

    def sms(self, to: str) -> Injection | None:
        """A network SMS to `to` is about to be queued: lost, delayed, or (None) neither."""
        return self._first(SMS_KINDS, "sms", msisdn=to)

    def ussd(
        self, at: str, msisdn: str, code: str, kinds: tuple[str, ...] = USSD_KINDS
    ) -> Injection | None:
        """A dial (`at="dial"`) or a reply reaches the network: an error, a drop, or None."""
        if not self._states:  # every dial and reply asks: no rules must cost next to nothing
            return None
        return self._first(kinds, at, msisdn=msisdn, code=_code(code), stage=at)

    def app(self, msisdn: str, code: str, app: str) -> Injection | None:
        """An application is about to be asked: kind app_timeout or app_error, or None."""
        if not self._states:
            return None
        return self._first(APP_KINDS, "app", msisdn=msisdn, code=_code(code), app=app)

    def smpp(
        self, system_id: str, bind: object, now: float, msisdn: str | None = None
    ) -> Injection | None:
        """A submit_sm on `bind`: answer ESME_RTHROTTLED, withhold the response, or None."""
        if not self._states:
            return None
        for state in self._states.values():
            rule = state.rule
            if rule.kind != SMPP_THROTTLE or not _glob(rule.match.system_id, system_id):
                continue
            second = int(now)
            start, count = state.windows.get(bind, (second, 0))
            if start != second:
                count = 0
            state.windows[bind] = (second, count + 1)
            if count + 1 <= rule.rate:
                continue  # within the rate: not a matching event
            if self.shared is not None:
                found = self._shared(state, "submit_sm", system_id=system_id, msisdn=msisdn)
                if found is not None:
                    return found
            elif self._fires(state):
                return self._inject(state, "submit_sm", system_id=system_id, msisdn=msisdn)
        return self._first((SMPP_WITHHOLD,), "submit_sm", system_id=system_id, msisdn=msisdn)

    def forget_bind(self, bind: object) -> None:
        """A bind closed: drop its throttling window (memory stays bounded by open binds)."""
        for state in self._states.values():
            state.windows.pop(bind, None)

    # -- internals -------------------------------------------------------------------------

    def _first(
        self,
        kinds: tuple[str, ...],
        at: str,
        *,
        msisdn: str | None = None,
        code: str | None = None,
        app: str | None = None,
        system_id: str | None = None,
        stage: str | None = None,
    ) -> Injection | None:
        if not self._states:
            return None
        for state in self._states.values():
            rule = state.rule
            m = rule.match
            if (
                rule.kind not in kinds
                or (stage is not None and rule.at != stage)
                or not _glob(m.msisdn, msisdn)
                or not _glob(m.code, code)
                or not _glob(m.app, app)
                or not _glob(m.system_id, system_id)
            ):
                continue
            if self.shared is not None:
                found = self._shared(state, at, msisdn=msisdn, code=code, system_id=system_id)
                if found is not None:
                    return found
            elif self._fires(state):
                return self._inject(state, at, msisdn=msisdn, code=code, system_id=system_id)
        return None

    def _fires(self, state: _State) -> bool:
        rule = state.rule
        if rule.times is not None and state.fired >= rule.times:
            return False
        state.seen += 1
        if state.seen % rule.match.every:
            return False
        # One draw per candidate, and only when there is a probability: a rule without one
        # never consumes draws, so its neighbours' sequences do not depend on it.
        return rule.match.probability >= 1.0 or state.rng.random() < rule.match.probability

    def _inject(
        self,
        state: _State,
        at: str,
        *,
        msisdn: str | None = None,
        code: str | None = None,
        system_id: str | None = None,
    ) -> Injection:
        state.fired += 1
        injection = _injection(state.rule, at, msisdn, code, system_id)
        self._announce(injection)
        return injection

    def _shared(
        self,
        state: _State,
        at: str,
        *,
        msisdn: str | None = None,
        code: str | None = None,
        system_id: str | None = None,
    ) -> Injection | None:
        # Cluster mode: the shared set counts and draws for every worker (one call to Redis).
        assert self.shared is not None
        injection = _injection(state.rule, at, msisdn, code, system_id)
        answer = self.shared.decide(state.rule, state.instance, injection)
        if answer is None:
            return None
        fires, state.seen, state.fired = answer
        if not fires:
            return None
        self._announce(injection)
        return injection

    def _announce(self, injection: Injection) -> None:
        self.recent.append(injection)
        self.counts[injection.kind] += 1
        for listener in tuple(self._listeners):
            listener(injection)


def _injection(
    rule: Rule, at: str, msisdn: str | None, code: str | None, system_id: str | None
) -> Injection:
    return Injection(
        rule=rule.id,
        kind=rule.kind,
        msisdn=msisdn,
        code=code,
        system_id=system_id,
        at=at,
        delay=rule.delay,
    )
