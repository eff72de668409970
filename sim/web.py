"""Scenario steps on the personal-account website and the "Мой МТС" app (docs/scenarios.md).

`web: {OP: ARGS}` does what a visitor of `/lk` does, `app: {OP: ARGS}` what the app in the web
phone does; both through the HTTP API the pages call (docs/account.md), so a scenario walks the
operator's instructions step by step. This module is the language only: which operations
exist, what they take, and how `expect: {json: ...}` compares. sim/browser.py performs them.

Pure: no I/O, no targets (sim/scenario.py imports it).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ussd.yamlload import brief

# Argument kinds: a scenario subscriber's number, text, true/false, a day (YYYY-MM-DD).
MSISDN, TEXT, BOOL, DAY = "msisdn", "text", "bool", "day"


@dataclass(frozen=True, slots=True)
class Op:
    """One operation: its arguments by kind, which are required, and which one-of pairs."""

    args: Mapping[str, str]
    required: tuple[str, ...] = ()
    # Exactly one of these must be given (a typed password, or the one the SMS brought).
    one_of: tuple[str, ...] = ()


_NONE = Op({})  # `account: true`: no arguments
_PASSWORD = {"password": TEXT, "from_sms": BOOL}

WEB_OPS: dict[str, Op] = {
    "sms_password": Op({"msisdn": MSISDN, "captcha": TEXT}),
    "sign_in": Op({"msisdn": MSISDN, **_PASSWORD}, one_of=("password", "from_sms")),
    "sign_out": _NONE,
    "account": _NONE,
    "replace_password": Op({"new": TEXT, "current": TEXT}, ("new",)),
    "social": Op(
        {"provider": TEXT, "login": TEXT, "password": TEXT, "consent": BOOL},
        ("provider", "login"),
    ),
    "social_bind": Op({"msisdn": MSISDN, **_PASSWORD}, one_of=("password", "from_sms")),
    "unbind": Op({"provider": TEXT, "login": TEXT}, ("provider", "login")),
    "add_number": Op({"msisdn": MSISDN, **_PASSWORD}, ("msisdn",), ("password", "from_sms")),
    "remove_number": Op({"msisdn": MSISDN}, ("msisdn",)),
}

APP_OPS: dict[str, Op] = {
    "set_password": Op({"msisdn": MSISDN, "password": TEXT}, ("password",)),
    "switch": Op({"msisdn": MSISDN}, ("msisdn",)),
    "account": _NONE,
    "services": Op({"name": TEXT, "on": BOOL}, ("name", "on")),
    "spending": Op({"from": DAY, "to": DAY}),
    "instalments": _NONE,
    "pay_instalment": Op({"item": TEXT}),
    "bonus": _NONE,
    "exchange": Op({"gift": TEXT}, ("gift",)),
    "add_number": Op({"msisdn": MSISDN, **_PASSWORD}, ("msisdn",), ("password", "from_sms")),
    "remove_number": Op({"msisdn": MSISDN}, ("msisdn",)),
    "sign_out": _NONE,
}

SURFACES: dict[str, dict[str, Op]] = {"web": WEB_OPS, "app": APP_OPS}


class WebProblem(Exception):
    """A web/app step that cannot run; sim/scenario.py adds file, scenario and step."""


@dataclass(frozen=True, slots=True)
class WebAction:
    """`web: {op: args}` or `app: {op: args}`: one thing the page or the app does."""

    surface: str  # web | app
    op: str
    args: Mapping[str, Any]

    @property
    def kind(self) -> str:
        return self.surface


def parse(surface: str, value: object, number: Callable[[object, str], str]) -> WebAction:
    """A step's `web:`/`app:` value; `number(value, key)` checks a subscriber's number."""
    ops = SURFACES[surface]
    names = ", ".join(ops)
    if not isinstance(value, dict) or len(value) != 1:
        raise WebProblem(f"{surface}: expected one operation, {{OP: ARGS}}, of: {names}")
    ((op, raw),) = value.items()
    if op not in ops:
        raise WebProblem(f"{surface}: unknown operation {brief(str(op))} (one of: {names})")
    spec = ops[op]
    where = f"{surface}: {op}"
    if raw is True or raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise WebProblem(f"{where}: expected a mapping of arguments or true, got {brief(raw)}")
    args: dict[str, Any] = {}
    for key, item in raw.items():
        kind = spec.args.get(key) if isinstance(key, str) else None
        if kind is None:
            allowed = ", ".join(spec.args) or "none"
            raise WebProblem(f"{where}: unknown key {brief(str(key))} (allowed: {allowed})")
        args[key] = _value(kind, item, f"{where}: {key}", number)
    for key in spec.required:
        if key not in args:
            raise WebProblem(f"{where}: {key}: required")
    if spec.one_of and sum(k in args for k in spec.one_of) != 1:
        raise WebProblem(f"{where}: give exactly one of {' or '.join(spec.one_of)}")
    if args.get("from_sms") is False:
        raise WebProblem(f"{where}: from_sms: only true makes sense (or give password)")
    return WebAction(surface, op, args)


def _value(kind: str, item: object, where: str, number: Callable[[object, str], str]) -> Any:
    if kind == MSISDN:
        return number(item, where)
    if kind == BOOL:
        if not isinstance(item, bool):
            raise WebProblem(f"{where}: expected true or false, got {brief(item)}")
        return item
    if kind == DAY and isinstance(item, dt.date):
        return item.isoformat()  # YAML reads an unquoted 2026-05-01 as a date
    if not isinstance(item, str):
        raise WebProblem(f"{where}: expected a string, got {brief(item)} (quote it)")
    return item  # a bad day is sent as typed: the gateway's 400 is what a scenario may check


# -- expect: {json: {path: value}} ---------------------------------------------------------------

_MISSING = object()
_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL}
_PATH = re.compile(r"[^.\s]+(\.[^.\s]+)*")


def json_expect(raw: object) -> tuple[tuple[str, Any], ...]:
    """`json: {"numbers.0.state": active, "social.#": 1}` as (path, expected) pairs.

    A string is compared whole; `/regex/flags` (i, m, s) is searched for, as text matchers are.
    Numbers compare as numbers (2000 equals 2000.0); lists and mappings compare whole.
    """
    if not isinstance(raw, dict) or not raw:
        raise WebProblem("expect: json: expected a mapping of paths to values")
    pairs = []
    for path, value in raw.items():
        if not isinstance(path, str) or not _PATH.fullmatch(path):
            raise WebProblem(f"expect: json: bad path {brief(path)} (keys and indexes with dots)")
        if isinstance(value, str) and len(value) >= 2 and value.startswith("/"):
            end = value.rfind("/")
            flags = value[end + 1 :]
            if end > 0:
                if any(f not in _FLAGS for f in flags):
                    raise WebProblem(f"expect: json: {path}: flags are among i, m, s")
                try:
                    value = re.compile(value[1:end], sum(_FLAGS[f] for f in set(flags)))
                except re.error as exc:
                    raise WebProblem(f"expect: json: {path}: bad regex: {exc}") from None
        pairs.append((path, value))
    return tuple(pairs)


def lookup(data: object, path: str) -> object:
    """The value at a dotted path: keys, list indexes, and `#` for a list's length."""
    node: object = data
    for part in path.split("."):
        if part == "#" and isinstance(node, list | dict):
            node = len(node)
        elif isinstance(node, dict):
            node = node.get(part, _MISSING)
        elif isinstance(node, list) and part.lstrip("-").isdigit():
            index = int(part)
            node = node[index] if -len(node) <= index < len(node) else _MISSING
        else:
            node = _MISSING
        if node is _MISSING:
            return _MISSING
    return node


def _same(expected: object, actual: object) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected is actual
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        return math.isclose(expected, actual, rel_tol=0, abs_tol=1e-9)
    if isinstance(expected, re.Pattern):
        return isinstance(actual, str) and expected.search(actual) is not None
    return expected == actual


def check_json(data: object, pairs: tuple[tuple[str, Any], ...]) -> list[tuple[str, str, str]]:
    """(field, expected, actual) for each path whose value is not the expected one."""
    out = []
    for path, expected in pairs:
        actual = lookup(data, path)
        if actual is _MISSING or not _same(expected, actual):
            shown = "missing" if actual is _MISSING else _show(actual)
            out.append((f"json {path}", _show(expected), shown))
    return out


def _show(value: object) -> str:
    if isinstance(value, re.Pattern):
        return f"/{value.pattern}/"
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, str):
        return '"' + value + '"' if len(value) <= 80 else '"' + value[:77] + '..."'
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
