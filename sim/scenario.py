"""Scenario files (docs/scenarios.md): the one loader, ussd.yamlload into frozen dataclasses.

A file holds one scenario (a mapping) or a list of them. Everything that can be checked without
running is checked here: unknown keys, bad matchers, bad durations, steps that cannot happen
(a reply before any dial, `as:` naming a number that is not a subscriber, two actions in one
step, `expect` keys that make no sense for the step). Errors are `ScenarioError`, naming the
file, the scenario (name or index) and the step number, 1-based.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import yaml

from sim import variables, web
from ussd import config as config_mod
from ussd import durations, faults, yamlload
from ussd.config import Config, ConfigError
from ussd.msisdn import InvalidMsisdn, normalise
from ussd.yamlload import brief


class ScenarioError(Exception):
    """A scenario file that cannot run: `file: scenario "name": step N: what is wrong`."""

    def __init__(
        self, file: str, message: str, scenario: str | None = None, step: int | None = None
    ) -> None:
        where = [file]
        if scenario is not None:
            where.append(scenario)
        if step is not None:
            where.append(f"step {step}")
        super().__init__(": ".join([*where, message]))
        self.file = file
        self.scenario = scenario
        self.step = step
        self.message = message


class _Problem(Exception):
    """Raised inside the loader; the caller adds file, scenario and step."""


# -- text matchers ------------------------------------------------------------------------------

_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL}


@dataclass(frozen=True, slots=True)
class Matcher:
    """A plain substring, or `/regex/flags` with flags among i, m, s (docs/scenarios.md)."""

    source: str
    pattern: re.Pattern[str] | None = None

    def matches(self, text: str) -> bool:
        if self.pattern is not None:
            return self.pattern.search(text) is not None
        return self.source in text

    def __str__(self) -> str:
        return self.source if self.pattern is not None else _quote(self.source)


def matcher(value: object, key: str = "text") -> Matcher:
    """Parse a text matcher; `_Problem` for a non-string, a bad flag or an invalid regex."""
    if not isinstance(value, str):
        raise _Problem(f"{key}: expected a string, got {brief(value)} (quote it)")
    if len(value) >= 2 and value.startswith("/") and "/" in value[1:]:
        end = value.rindex("/")
        body, flags = value[1:end], value[end + 1 :]
        bits = 0
        for flag in flags:
            if flag not in _FLAGS:
                raise _Problem(
                    f"{key}: bad matcher {brief(value)}: unknown regex flag {brief(flag)}"
                )
            bits |= _FLAGS[flag]
        try:
            return Matcher(value, re.compile(body, bits))
        except re.error as exc:
            raise _Problem(f"{key}: bad matcher {brief(value)}: {exc}") from None
    return Matcher(value)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


# -- expectations ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LinkedExpect:
    """One number expected among an account's linked numbers (docs/account.md)."""

    msisdn: str
    state: str | None = None  # pending | active; None: either


@dataclass(frozen=True, slots=True)
class Expect:
    """What a step must produce; None fields are not checked."""

    continue_: bool | None = None
    end: bool | None = None
    text: Matcher | None = None
    page: int | None = None
    pages: int | None = None
    timeout: bool | None = None
    ok: bool | None = None
    status: int | None = None
    error: str | None = None
    balance: float | None = None
    linked: tuple[LinkedExpect, ...] | None = None
    number_management: bool | None = None
    has_password: bool | None = None
    json: tuple[tuple[str, Any], ...] | None = None  # web/app steps: (path, value) pairs

    @property
    def about_errors(self) -> bool:
        """True when the step says how a refusal should look (so one is not a failure)."""
        return self.ok is not None or self.status is not None or self.error is not None


_EXPECT_KEYS = {
    "continue": "continue_",
    "end": "end",
    "text": "text",
    "page": "page",
    "pages": "pages",
    "timeout": "timeout",
    "ok": "ok",
    "status": "status",
    "error": "error",
    "balance": "balance",
    "linked": "linked",
    "number_management": "number_management",
    "has_password": "has_password",
    "json": "json",
}
_RESULT = ("ok", "status", "error")
_SCREEN = ("continue", "end", "text", "page", "pages", *_RESULT)

# -- actions ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Dial:
    """Dial a code from the acting MSISDN."""

    kind: ClassVar[str] = "dial"
    text: str


@dataclass(frozen=True, slots=True)
class Reply:
    """Answer the open dialog."""

    kind: ClassVar[str] = "reply"
    text: str


@dataclass(frozen=True, slots=True)
class Release:
    """The user ends the dialog."""

    kind: ClassVar[str] = "release"


@dataclass(frozen=True, slots=True)
class Push:
    """Network-initiated USSD to the acting MSISDN (docs/smpp.md "Pushes"): its handset shows
    `text` and waits for an answer (`reply`), or for the acknowledgement of a notice."""

    kind: ClassVar[str] = "push"
    text: str
    reply: bool = True
    origin: str = ""  # `from`: a sender shown, or smpp:SYSTEM_ID to hand the answer to an app


@dataclass(frozen=True, slots=True)
class SmsCheck:
    """Assert SMS in `to`'s inbox: at least one matching, or exactly `count`."""

    kind: ClassVar[str] = "sms"
    to: str
    text: Matcher | None = None
    count: int | None = None
    sender: str | None = None
    sms_kind: str | None = None  # network | mo | receipt


@dataclass(frozen=True, slots=True)
class Login:
    """Personal-account login with number + password (docs/account.md)."""

    kind: ClassVar[str] = "login"
    msisdn: str
    password: str


@dataclass(frozen=True, slots=True)
class Advance:
    """Move the simulated clock forward."""

    kind: ClassVar[str] = "advance"
    seconds: float
    written: str


@dataclass(frozen=True, slots=True)
class WaitTimeout:
    """Advance to the open dialog's reply timeout; the dialog must end with a timeout screen."""

    kind: ClassVar[str] = "wait_timeout"


@dataclass(frozen=True, slots=True)
class OfficeLink:
    """An operator links `number` to `account` (docs/account.md office flow)."""

    kind: ClassVar[str] = "office_link"
    account: str
    number: str


@dataclass(frozen=True, slots=True)
class AppLink:
    """The account holder adds `number` with its password (docs/account.md app flow)."""

    kind: ClassVar[str] = "app_link"
    account: str
    number: str
    password: str


@dataclass(frozen=True, slots=True)
class SmsPassword:
    """Get a password by SMS (docs/account.md, rate-limited)."""

    kind: ClassVar[str] = "sms_password"
    msisdn: str
    # Set: through the website, answering a fresh captcha with this (docs/account.md "Website").
    captcha: str | None = None


@dataclass(frozen=True, slots=True)
class MoSms:
    """A subscriber sends an SMS to another (docs/smpp.md MO SMS), optionally with a receipt."""

    kind: ClassVar[str] = "mo_sms"
    sender: str
    to: str
    text: str
    receipt: bool = False


@dataclass(frozen=True, slots=True)
class Account:
    """Read an account's state (balance, linked numbers)."""

    kind: ClassVar[str] = "account"
    msisdn: str


@dataclass(frozen=True, slots=True)
class Fault:
    """Put a network fault rule in force from this step on (docs/network.md "Faults"); with
    `clear: true`, remove every rule."""

    kind: ClassVar[str] = "fault"
    rule: Mapping[str, Any] | None  # as written (checked at load); None: clear


Action = (
    Dial
    | Reply
    | Release
    | Push
    | SmsCheck
    | Login
    | Advance
    | WaitTimeout
    | OfficeLink
    | AppLink
    | SmsPassword
    | MoSms
    | Account
    | Fault
    | web.WebAction
)

# Which `expect` keys make sense for which action (None: the step takes no `expect`).
EXPECT_FOR: dict[str, tuple[str, ...] | None] = {
    "dial": _SCREEN,
    "reply": _SCREEN,
    "release": None,
    "push": _SCREEN,  # the screen the handset shows
    "sms": None,
    "advance": None,
    "wait_timeout": ("end", "timeout", "text"),
    "login": _RESULT,
    "office_link": _RESULT,
    "app_link": _RESULT,
    "sms_password": _RESULT,
    "mo_sms": _RESULT,
    "account": ("balance", "linked", "number_management", "has_password", *_RESULT),
    "fault": _RESULT,
    # The website and the "Мой МТС" app (sim/web.py): any field of the answer by `json`.
    "web": ("balance", "linked", "json", *_RESULT),
    "app": ("balance", "linked", "json", *_RESULT),
}
ACTIONS = tuple(EXPECT_FOR)


@dataclass(frozen=True, slots=True)
class Step:
    """One step: an action, who performs it, what it must produce, and how it was written."""

    number: int  # 1-based
    action: Action
    msisdn: str  # the acting subscriber (`as:`, default the first subscriber)
    expect: Expect | None
    source: str  # the step as written, one line of YAML flow style

    @property
    def kind(self) -> str:
        return self.action.kind


@dataclass(frozen=True, slots=True)
class Scenario:
    """One scenario: its world (config with the subscribers as seed) and its steps."""

    name: str
    file: str
    index: int  # 0-based position in the file
    steps: tuple[Step, ...]
    config: Config
    subscribers: tuple[Mapping[str, Any], ...]  # as written: live targets create them
    msisdns: tuple[str, ...]  # normalised, in order
    description: str = ""
    overrides: Mapping[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return _label(self.name, self.index)

    @property
    def classname(self) -> str:
        """The file's stem (JUnit classname)."""
        return Path(self.file).stem


def _label(name: object, index: int) -> str:
    if isinstance(name, str) and name:
        return f'scenario "{name}"'
    return f"scenario #{index + 1}"


# -- the base configuration -----------------------------------------------------------------


def base_config_data(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The raw mapping of the config a scenario world starts from (the file `config.load` reads)."""
    data, candidate = config_mod.read(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("", f"{candidate}: expected a mapping")
    config_mod.from_mapping(data, source=str(candidate))  # a bad base is a config error
    return data


def world_config(
    base: Mapping[str, Any],
    overrides: Mapping[str, Any],
    subscribers: Sequence[Mapping[str, Any]],
    source: str = "scenario",
) -> Config:
    """Base config + the scenario's `config` overrides + its subscribers as the seed.

    In-memory store and simulated clock (docs/scenarios.md): a 2-day wait takes no time.
    """
    data: dict[str, Any] = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    data["storage"] = {"database": ":memory:"}
    data["clock"] = {"mode": "simulated"}
    subs = dict(data.get("subscribers") or {})
    subs["seed"] = [dict(s) for s in subscribers]
    data["subscribers"] = subs
    return config_mod.from_mapping(data, source=source)


# -- the loader -------------------------------------------------------------------------------

_SCENARIO_KEYS = ("name", "description", "subscribers", "config", "vars", "faults", "steps")
_STEP_EXTRA = ("as", "expect")
_LINK_STATES = ("pending", "active")
_SMS_KINDS = ("network", "mo", "receipt")
# Bounds of a file (docs/scenarios.md, "Limits"): the text itself is bounded by ussd.yamlload.
MAX_SCENARIOS = 1000  # per file
MAX_STEPS = 10_000  # per scenario


def duration(value: object) -> float:
    """Seconds from a duration of ussd.durations: `30s`, `2d`, `1d23h59m`, a bare number."""
    try:
        return durations.parse(value)
    except durations.DurationError as exc:
        raise _Problem(f"advance: {exc.message}") from None


def load(
    path: str | os.PathLike[str], base: Mapping[str, Any] | None = None
) -> tuple[Scenario, ...]:
    """Every scenario in one file; ScenarioError for anything wrong with it."""
    scenarios, errors = load_report(path, base)
    if errors:
        raise errors[0]
    return scenarios


def load_report(
    path: str | os.PathLike[str], base: Mapping[str, Any] | None = None
) -> tuple[tuple[Scenario, ...], list[ScenarioError]]:
    """The scenarios of a file that load, and an error for each one that does not.

    Each scenario reports its first problem; names shared by two scenarios come first, since
    they make the other reports ambiguous. A file that is not YAML is one error.
    """
    name = os.fspath(path)
    try:
        data = yamlload.load_file(path)
    except yamlload.YamlError as exc:
        return (), [ScenarioError(name, exc.message)]
    return _build(data, name, base)


def loads(
    text: str, source: str = "<scenario>", base: Mapping[str, Any] | None = None
) -> tuple[Scenario, ...]:
    """Every scenario in a YAML text; `source` names it in errors."""
    try:
        data = yamlload.loads(text)
    except yamlload.YamlError as exc:
        raise ScenarioError(source, exc.message) from None
    scenarios, errors = _build(data, source, base)
    if errors:
        raise errors[0]
    return scenarios


def _build(
    data: object, source: str, base: Mapping[str, Any] | None
) -> tuple[tuple[Scenario, ...], list[ScenarioError]]:
    if isinstance(data, dict):
        items: list[Any] = [data]
    elif isinstance(data, list) and data:
        items = data
    else:
        problem = "expected a scenario (a mapping) or a list of scenarios"
        return (), [ScenarioError(source, problem)]
    if len(items) > MAX_SCENARIOS:
        return (), [ScenarioError(source, f"more than {MAX_SCENARIOS:_} scenarios in one file")]
    if base is None:
        base = base_config_data()
    errors: list[ScenarioError] = []
    raw_names = [item.get("name") if isinstance(item, dict) else None for item in items]
    counts = Counter(n for n in raw_names if isinstance(n, str) and n)
    reported: set[str] = set()
    for i, n in enumerate(raw_names):
        if isinstance(n, str) and counts[n] > 1 and n not in reported:
            reported.add(n)
            errors.append(
                ScenarioError(
                    source, f"{_count_word(counts[n])} scenarios share this name", _label(n, i)
                )
            )
    scenarios: list[Scenario] = []
    for i, item in enumerate(items):
        try:
            scenarios.append(_scenario(item, source, i, base))
        except ScenarioError as exc:
            errors.append(exc)
    return tuple(scenarios), errors


def _count_word(n: int) -> str:
    return {2: "two", 3: "three"}.get(n, str(n))


def _scenario(item: object, source: str, index: int, base: Mapping[str, Any]) -> Scenario:
    raw_name = item.get("name") if isinstance(item, dict) else None
    label = _label(raw_name, index)

    def fail(message: str, step: int | None = None) -> ScenarioError:
        return ScenarioError(source, message, label, step)

    if not isinstance(item, dict):
        raise fail(f"expected a mapping, got {type(item).__name__}")
    for key in item:
        if key not in _SCENARIO_KEYS:
            raise fail(f"unknown key {brief(str(key))}")
    name = item.get("name")
    if not isinstance(name, str) or not name.strip():
        raise fail("name: required, a non-empty string")
    description = item.get("description", "")
    if not isinstance(description, str):
        raise fail("description: expected a string")
    subscribers = item.get("subscribers")
    if not isinstance(subscribers, list) or not subscribers:
        raise fail("subscribers: required, a non-empty list of subscribers")
    for i, sub in enumerate(subscribers):
        if not isinstance(sub, dict):
            raise fail(f"subscribers[{i}]: expected a mapping")
    try:  # `vars:` and `${name}` (sim/variables.py): secrets such as passwords stay out
        values = variables.parse(item.get("vars"))
    except variables.VariableError as exc:
        raise fail(str(exc)) from None
    try:
        seeds: list[Any] = [variables.substitute(sub, values) for sub in subscribers]
    except variables.VariableError as exc:
        raise fail(f"subscribers: {exc}") from None
    subscribers = seeds
    overrides = item.get("config", {}) or {}
    if not isinstance(overrides, dict):
        raise fail("config: expected a mapping of config sections")
    if isinstance(overrides.get("subscribers"), dict) and "seed" in overrides["subscribers"]:
        raise fail("config.subscribers.seed: list subscribers under `subscribers` instead")
    if "faults" in item:
        # The world's fault rules (docs/network.md "Faults"): a list, or {seed, rules}.
        if "faults" in overrides:
            raise fail("faults: give them at the top level or under config, not both")
        raw_faults = item["faults"]
        overrides = {
            **overrides,
            "faults": {"rules": raw_faults} if isinstance(raw_faults, list) else raw_faults,
        }
    try:
        config = world_config(base, overrides, subscribers, source=f"{source}: {label}")
    except ConfigError as exc:
        key = re.sub(r"^subscribers\.seed\[", "subscribers[", exc.key)
        top_level = key.startswith("subscribers[") or (
            key.startswith("faults") and "faults" in item
        )
        if not top_level:
            key = f"config.{key}" if key else "config"
        raise fail(f"{key}: {exc.message}") from None
    op = config.operator
    msisdns = tuple(
        normalise(s.msisdn, op.country_code, op.trunk_prefix) for s in config.subscribers.seed
    )

    steps_raw = item.get("steps")
    if not isinstance(steps_raw, list) or not steps_raw:
        raise fail("steps: required, a non-empty list of steps")
    if len(steps_raw) > MAX_STEPS:
        raise fail(f"steps: more than {MAX_STEPS:_} steps in one scenario")
    builder = _StepBuilder(msisdns, op.country_code, op.trunk_prefix)
    steps: list[Step] = []
    for number, raw in enumerate(steps_raw, start=1):
        try:
            filled = variables.substitute(raw, values)
            step = builder.build(number, filled)
            # Reports quote the step as written (`${password}`), never the value put in.
            steps.append(step if filled is raw else dataclasses.replace(step, source=_flow(raw)))
        except (_Problem, variables.VariableError) as exc:
            raise fail(str(exc), number) from None
    return Scenario(
        name=name,
        file=source,
        index=index,
        steps=tuple(steps),
        config=config,
        subscribers=tuple(dict(s) for s in subscribers),
        msisdns=msisdns,
        description=description,
        overrides=dict(overrides),
    )


def _flow(value: object) -> str:
    """One line of YAML flow style, for failure reports."""
    text = yaml.safe_dump(
        value, default_flow_style=True, allow_unicode=True, sort_keys=False, width=10_000
    )
    return text.strip().removesuffix("...").strip()


class _Args:
    """An action's mapping being read: leftovers are unknown keys."""

    def __init__(self, action: str, value: object) -> None:
        if not isinstance(value, dict):
            raise _Problem(f"{action}: expected a mapping, got {brief(value)}")
        self.action = action
        self.data: dict[Any, Any] = value
        for key in value:
            if not isinstance(key, str):
                raise _Problem(f"{action}: unknown key {brief(key)}")

    def known(self, *keys: str) -> None:
        for key in self.data:
            if key not in keys:
                raise _Problem(f"{self.action}: unknown key {brief(key)}")

    def str_(self, key: str, required: bool = True) -> str | None:
        value = self.data.get(key)
        if value is None:
            if required:
                raise _Problem(f"{self.action}: {key}: required")
            return None
        if not isinstance(value, str):
            raise _Problem(
                f"{self.action}: {key}: expected a string, got {brief(value)} (quote it)"
            )
        return value


class _StepBuilder:
    """Builds steps in order, tracking which MSISDNs may have an open dialog."""

    def __init__(self, msisdns: tuple[str, ...], country_code: str, trunk_prefix: str) -> None:
        self.msisdns = msisdns
        self.cc = country_code
        self.tp = trunk_prefix
        # None: never dialled; True: a dialog may be open; False: the last screen ended it.
        self.open: dict[str, bool | None] = dict.fromkeys(msisdns)

    def number(self, value: object, key: str) -> str:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise _Problem(f"{key}: expected a phone number, got {brief(value)}")
        try:
            msisdn = normalise(value, self.cc, self.tp)
        except InvalidMsisdn:
            raise _Problem(f"{key}: expected a phone number, got {brief(value)}") from None
        if msisdn not in self.msisdns:
            raise _Problem(f"{key}: {value} is not one of the scenario's subscribers")
        return msisdn

    def build(self, number: int, raw: object) -> Step:
        if not isinstance(raw, dict):
            raise _Problem(f"expected a mapping with one action, got {brief(raw)}")
        for key in raw:
            if key not in ACTIONS and key not in _STEP_EXTRA:
                raise _Problem(f"unknown key {brief(str(key))}")
        actions = [k for k in raw if k in ACTIONS]
        if not actions:
            raise _Problem(f"no action: a step has one of {', '.join(ACTIONS)}")
        if len(actions) > 1:
            raise _Problem(
                f"two actions ({brief(actions[0])} and {brief(actions[1])}): a step has one"
            )
        kind = actions[0]
        who = self.number(raw["as"], "as") if "as" in raw else self.msisdns[0]
        action = _BUILDERS[kind](self, raw[kind], who)
        expect = self.expect(kind, raw.get("expect")) if "expect" in raw else None
        self.track(action, who, expect)
        return Step(number, action, who, expect, _flow(raw))

    def track(self, action: Action, who: str, expect: Expect | None) -> None:
        """Impossible orders fail at load: a reply needs a dialog that may still be open."""
        ended = expect is not None and (expect.end is True or expect.continue_ is False)
        if isinstance(action, Dial | Push):
            self.open[who] = not ended
        elif isinstance(action, Reply | WaitTimeout):
            state = self.open[who]
            if state is None:
                raise _Problem(f"{action.kind} before any dial from {who}")
            if state is False and not (expect is not None and expect.about_errors):
                # Allowed only as a check that the gateway refuses it (`error: no_dialog`).
                raise _Problem(f"{action.kind} after the dialog of {who} ended (expect end)")
            if isinstance(action, WaitTimeout) or ended:
                self.open[who] = False
        elif isinstance(action, Release):
            if self.open[who] is None:
                raise _Problem(f"release before any dial from {who}")
            self.open[who] = False

    def expect(self, kind: str, raw: object) -> Expect:
        allowed = EXPECT_FOR[kind]
        if allowed is None:
            raise _Problem(f"expect: a {kind} step takes no expect")
        if not isinstance(raw, dict) or not raw:
            raise _Problem(f"expect: expected a mapping, got {brief(raw)}")
        values: dict[str, Any] = {}
        for key, value in raw.items():
            if key not in _EXPECT_KEYS:
                raise _Problem(f"expect: unknown key {brief(str(key))}")
            if key not in allowed:
                raise _Problem(
                    f"expect: {brief(key)} makes no sense for a {kind} step "
                    f"(allowed: {', '.join(sorted(allowed))})"
                )
            values[_EXPECT_KEYS[key]] = self.expect_value(key, value)
        both = values.get("continue_") is not None and values.get("end") is not None
        if both and values["continue_"] == values["end"]:
            raise _Problem("expect: continue and end contradict each other")
        if values.get("ok") is True and (values.get("error") or values.get("status", 0) >= 400):
            raise _Problem("expect: ok: true contradicts an error status or code")
        return Expect(**values)

    def expect_value(self, key: str, value: object) -> Any:
        if key in ("continue", "end", "timeout", "ok", "number_management", "has_password"):
            if not isinstance(value, bool):
                raise _Problem(f"expect: {key}: expected true or false, got {brief(value)}")
            return value
        if key == "text":
            return matcher(value, "expect: text")
        if key in ("page", "pages"):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise _Problem(f"expect: {key}: expected a page number ≥ 1, got {brief(value)}")
            return value
        if key == "status":
            if isinstance(value, bool) or not isinstance(value, int) or not 100 <= value <= 599:
                raise _Problem(f"expect: status: expected an HTTP status, got {brief(value)}")
            return value
        if key == "error":
            if not isinstance(value, str) or not value:
                raise _Problem(f"expect: error: expected an error code, got {brief(value)}")
            return value
        if key == "json":
            try:
                return web.json_expect(value)
            except web.WebProblem as exc:
                raise _Problem(str(exc)) from None
        if key == "balance":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise _Problem(f"expect: balance: expected a number, got {brief(value)}")
            return float(value)
        assert key == "linked"
        if not isinstance(value, list):
            raise _Problem("expect: linked: expected a list of {msisdn, state}")
        linked = []
        for i, item in enumerate(value):
            where = f"expect: linked[{i}]"
            if not isinstance(item, dict):
                raise _Problem(f"{where}: expected a mapping with msisdn and state")
            for k in item:
                if k not in ("msisdn", "state"):
                    raise _Problem(f"{where}: unknown key {brief(str(k))}")
            state = item.get("state")
            if state is not None and state not in _LINK_STATES:
                raise _Problem(f"{where}: state: expected pending or active, got {brief(state)}")
            linked.append(LinkedExpect(self.number(item.get("msisdn"), f"{where}.msisdn"), state))
        return tuple(linked)

    # -- one function per action ------------------------------------------------------------

    def _dial(self, value: object, who: str) -> Action:
        if not isinstance(value, str) or not value:
            raise _Problem(f"dial: expected a dial string, got {brief(value)} (quote it)")
        return Dial(value)

    def _reply(self, value: object, who: str) -> Action:
        if not isinstance(value, str):
            # `reply: 00` would reach us as 0: only a quoted string keeps what was typed.
            raise _Problem(f"reply: expected a string, got {brief(value)} (quote it)")
        return Reply(value)

    def _push(self, value: object, who: str) -> Action:
        if isinstance(value, str):
            value = {"text": value}
        a = _Args("push", value)
        a.known("text", "reply", "from")
        text = a.str_("text")
        if not text:
            raise _Problem("push: text: a push needs some text")
        reply = a.data.get("reply", True)
        if not isinstance(reply, bool):
            raise _Problem(f"push: reply: expected true or false, got {brief(reply)}")
        origin = a.data.get("from", "")
        if isinstance(origin, int) and not isinstance(origin, bool):
            origin = str(origin)  # `from: 900`
        if not isinstance(origin, str):
            raise _Problem(f"push: from: expected a sender or smpp:SYSTEM_ID, got {brief(origin)}")
        return Push(text, reply, origin)

    def _release(self, value: object, who: str) -> Action:
        if value is not True:
            raise _Problem(f"release: expected true, got {brief(value)}")
        return Release()

    def _wait_timeout(self, value: object, who: str) -> Action:
        if value is not True:
            raise _Problem(f"wait_timeout: expected true, got {brief(value)}")
        return WaitTimeout()

    def _advance(self, value: object, who: str) -> Action:
        seconds = duration(value)
        if seconds <= 0:
            raise _Problem(f"advance: expected a duration greater than zero, got {brief(value)}")
        return Advance(seconds, str(value))

    def _sms(self, value: object, who: str) -> Action:
        a = _Args("sms", value)
        a.known("to", "text", "count", "from", "kind")
        to = self.number(a.data.get("to", who), "sms: to")
        text = matcher(a.data["text"], "sms: text") if "text" in a.data else None
        count = a.data.get("count")
        if count is not None and (
            isinstance(count, bool) or not isinstance(count, int) or count < 0
        ):
            raise _Problem(f"sms: count: expected an integer ≥ 0, got {brief(count)}")
        sender = a.data.get("from")
        if sender is not None:
            sender = (
                str(sender) if isinstance(sender, int) and not isinstance(sender, bool) else sender
            )
            if not isinstance(sender, str):
                raise _Problem(f"sms: from: expected a sender id or number, got {brief(sender)}")
        kind = a.data.get("kind")
        if kind is not None and kind not in _SMS_KINDS:
            raise _Problem(f"sms: kind: expected one of {', '.join(_SMS_KINDS)}, got {brief(kind)}")
        return SmsCheck(to, text, count, sender, kind)

    def _login(self, value: object, who: str) -> Action:
        a = _Args("login", value)
        a.known("msisdn", "password")
        password = a.str_("password")
        assert password is not None
        return Login(self.number(a.data.get("msisdn", who), "login: msisdn"), password)

    def _office_link(self, value: object, who: str) -> Action:
        a = _Args("office_link", value)
        a.known("account", "number")
        account = self.number(a.data.get("account"), "office_link: account")
        return OfficeLink(account, self.number(a.data.get("number"), "office_link: number"))

    def _app_link(self, value: object, who: str) -> Action:
        a = _Args("app_link", value)
        a.known("account", "number", "password")
        account = self.number(a.data.get("account"), "app_link: account")
        number = self.number(a.data.get("number"), "app_link: number")
        password = a.str_("password")
        assert password is not None
        return AppLink(account, number, password)

    def _sms_password(self, value: object, who: str) -> Action:
        a = _Args("sms_password", value)
        a.known("msisdn", "captcha")
        number = self.number(a.data.get("msisdn", who), "sms_password: msisdn")
        return SmsPassword(number, a.str_("captcha", required=False))

    def _mo_sms(self, value: object, who: str) -> Action:
        a = _Args("mo_sms", value)
        a.known("from", "to", "text", "receipt")
        sender = self.number(a.data.get("from", who), "mo_sms: from")
        to = self.number(a.data.get("to"), "mo_sms: to")
        text = a.str_("text")
        assert text is not None
        receipt = a.data.get("receipt", False)
        if not isinstance(receipt, bool):
            raise _Problem(f"mo_sms: receipt: expected true or false, got {brief(receipt)}")
        return MoSms(sender, to, text, receipt)

    def _page(self, surface: str, value: object) -> Action:
        try:
            return web.parse(surface, value, self.number)
        except web.WebProblem as exc:
            raise _Problem(str(exc)) from None

    def _web(self, value: object, who: str) -> Action:
        return self._page("web", value)

    def _app(self, value: object, who: str) -> Action:
        return self._page("app", value)

    def _account(self, value: object, who: str) -> Action:
        a = _Args("account", value)
        a.known("msisdn")
        return Account(self.number(a.data.get("msisdn", who), "account: msisdn"))

    def _fault(self, value: object, who: str) -> Action:
        if isinstance(value, dict) and value.get("clear") is True and len(value) == 1:
            return Fault(None)
        try:
            faults.parse_rule(value, "f1")  # the gateway gives it its id when the step runs
        except faults.FaultError as exc:
            raise _Problem(f"fault: {exc}") from None
        assert isinstance(value, dict)
        return Fault(dict(value))


_BUILDERS: dict[str, Callable[[_StepBuilder, object, str], Action]] = {
    "dial": _StepBuilder._dial,
    "reply": _StepBuilder._reply,
    "release": _StepBuilder._release,
    "push": _StepBuilder._push,
    "sms": _StepBuilder._sms,
    "login": _StepBuilder._login,
    "advance": _StepBuilder._advance,
    "wait_timeout": _StepBuilder._wait_timeout,
    "office_link": _StepBuilder._office_link,
    "app_link": _StepBuilder._app_link,
    "sms_password": _StepBuilder._sms_password,
    "mo_sms": _StepBuilder._mo_sms,
    "account": _StepBuilder._account,
    "fault": _StepBuilder._fault,
    "web": _StepBuilder._web,
    "app": _StepBuilder._app,
}


def discover(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Files named on the command line, and `*.yaml`/`*.yml` under directories, sorted."""
    found: list[Path] = []
    for item in paths:
        p = Path(item)
        if p.is_dir():
            found.extend(sorted(q for q in p.rglob("*") if q.suffix in (".yaml", ".yml")))
        else:
            found.append(p)
    return found
