"""Scenario variables (docs/scenarios.md "Variables"): secrets out of scenario files.

A scenario's `vars:` maps names to values: a string, or `{env: NAME}` to read the value from
the environment when the file is loaded. Step values then say `${name}`, e.g.
`reply: "${password}"`; `$${` writes a literal `${`. Recorded sessions use this for replies to
password prompts, so a recording never carries a password (docs/scenarios.md "Recording").

Substitution happens at load time, on step values only (never keys), so what a step does is
fixed before it runs; an unknown name or an unset environment variable is a load error.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_PLACEHOLDER = re.compile(r"\$\$\{|\$\{([^}]*)\}")
# Variable values are short things typed at a prompt; a bound keeps a file from growing
# steps without limit through substitution.
MAX_VALUE = 1000
MAX_VARS = 100


class VariableError(ValueError):
    """A bad `vars:` section or a `${name}` that cannot be filled in."""


def parse(raw: object, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The values of a scenario's `vars:` section (empty when there is none)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise VariableError("vars: expected a mapping of name to value or {env: NAME}")
    if len(raw) > MAX_VARS:
        raise VariableError(f"vars: at most {MAX_VARS} variables")
    env = os.environ if environ is None else environ
    values: dict[str, str] = {}
    for name, spec in raw.items():
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            shown = str(name)[:40]
            raise VariableError(f"vars: {shown!r} is not a variable name (letters, digits, _)")
        if isinstance(spec, dict):
            if set(spec) != {"env"} or not isinstance(spec["env"], str) or not spec["env"]:
                raise VariableError(f"vars.{name}: expected a string or {{env: NAME}}")
            value = env.get(spec["env"])
            if value is None:
                # Never echo other variables' values: only names appear in errors.
                raise VariableError(
                    f"vars.{name}: environment variable {spec['env'][:64]} is not set"
                )
        elif isinstance(spec, str):
            value = spec
        else:
            raise VariableError(f"vars.{name}: expected a string or {{env: NAME}} (quote it)")
        if len(value) > MAX_VALUE:
            raise VariableError(f"vars.{name}: longer than {MAX_VALUE} characters")
        values[name] = value
    return values


def substitute(value: object, values: Mapping[str, str]) -> object:
    """`value` with every `${name}` in its strings filled in; the same object when none is."""
    if isinstance(value, str):
        if "$" not in value:
            return value
        return _PLACEHOLDER.sub(lambda m: _fill(m, values), value)
    if isinstance(value, dict):
        out = {k: substitute(v, values) for k, v in value.items()}
        return value if all(out[k] is value[k] for k in value) else out
    if isinstance(value, list):
        items = [substitute(v, values) for v in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    return value


def _fill(match: re.Match[str], values: Mapping[str, str]) -> str:
    name = match.group(1)
    if name is None:
        return "${"
    if name not in values:
        shown = name[:40]
        raise VariableError(f"${{{shown}}}: no such variable (define it under vars:)")
    return values[name]
