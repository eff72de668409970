"""Dial-string patterns → services: the most specific pattern wins, whatever the order."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ussd import log
from ussd.config import ConfigError
from ussd.dialstring import DialString, DialStringError, parse

# TS 22.030 Annex B: every supplementary-service string goes to the network's SS handler
# (ussd/services/supplementary.py), whatever `ussd.routes` says: routes are for USSD only.
SS_SERVICE = "ss"

# Route targets that are outside applications (docs/apps.md): a route to one covers its code
# and every direct-dial string under it, as aggregators do (`*384*1*2#` starts the dialog with
# the inputs `1`, `2` already given). The match hands the whole dial string on as `dial`.
CODE_ROUTE_PREFIXES = ("app:", "smpp:")

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_log = log.get("routing")


@dataclass(frozen=True, slots=True)
class Route:
    """One `ussd.routes` entry."""

    pattern: str
    service: str
    placeholder: str | None  # name captured by a trailing `{name}`, if any
    prefix: str  # the literal text before the placeholder (or the whole pattern)
    suffix: str  # the literal text after it (`#`)

    @property
    def specificity(self) -> int:
        # A literal pattern beats any placeholder; among placeholders, the longer literal wins.
        return 10_000 if self.placeholder is None else len(self.prefix) + len(self.suffix)


@dataclass(frozen=True, slots=True)
class Match:
    """What the router found for a dial string."""

    route: Route
    args: Mapping[str, str]


class Router:
    """Exact patterns by dict lookup; `{name}` patterns tried from the most specific down."""

    def __init__(self, routes: Mapping[str, str], known_services: Iterable[str] | None = None):
        services = set(known_services) if known_services is not None else None
        self.routes: list[Route] = []
        self._exact: dict[str, Route] = {}
        self._wild: list[Route] = []
        self._codes: list[tuple[str, Route]] = []  # (`*384*`, route): direct-dial strings
        for pattern, service in routes.items():
            key = f'ussd.routes."{pattern}"'
            if services is not None and service not in services:
                raise ConfigError(key, f"unknown service {service!r}")
            route = _compile(pattern, service, key)
            self.routes.append(route)
            if route.placeholder is None:
                self._exact[pattern] = route
                if service.startswith(CODE_ROUTE_PREFIXES):
                    self._codes.append((pattern[:-1] + "*", route))
            else:
                self._wild.append(route)
        self._wild.sort(key=lambda r: -r.specificity)
        # The longest code first: `*384*5#` to one app beats `*384#` to another for `*384*5*1#`.
        self._codes.sort(key=lambda item: -len(item[0]))
        self._check_overlaps()

    def _check_overlaps(self) -> None:
        # docs/services.md: overlapping or unreachable patterns are reported at load. Two
        # placeholder
        # patterns with the same literal parts can never be told apart: the second is dead.
        seen: dict[tuple[str, str], Route] = {}
        for route in self._wild:
            shape = (route.prefix, route.suffix)
            if shape in seen:
                raise ConfigError(
                    f'ussd.routes."{route.pattern}"',
                    f'unreachable: "{seen[shape].pattern}" matches exactly the same strings',
                )
            seen[shape] = route
        for route in self._wild:
            shadowed = [p for p, r in self._exact.items() if _wild_matches(route, p) is not None]
            if shadowed:
                # Not an error: the literal wins by design. Still worth telling the operator.
                _log.info(
                    "route_overlap",
                    pattern=route.pattern,
                    more_specific=sorted(shadowed),
                )

    def match(self, dial: DialString) -> Match | None:
        """The route for a USSD or SS dial string, or None (the caller shows "unknown request")."""
        text = dial.text
        if dial.kind == "ss":
            return Match(_SS_ROUTE, {"text": text})
        route = self._exact.get(text)
        if route is not None:
            return Match(route, _code_args(route, text))
        for route in self._wild:
            value = _wild_matches(route, text)
            if value is not None:
                assert route.placeholder is not None
                return Match(route, {route.placeholder: value})
        for prefix, route in self._codes:
            if text.startswith(prefix) and text.endswith("#"):
                return Match(route, _code_args(route, text))
        return None


def _code_args(route: Route, text: str) -> Mapping[str, str]:
    # An outside application is told the code and the whole string the user dialled.
    if route.service.startswith(CODE_ROUTE_PREFIXES):
        return {"code": route.pattern, "dial": text}
    return {}


_SS_ROUTE = Route(pattern="", service=SS_SERVICE, placeholder=None, prefix="", suffix="")


def _wild_matches(route: Route, text: str) -> str | None:
    if not (text.startswith(route.prefix) and text.endswith(route.suffix)):
        return None
    value = text[len(route.prefix) : len(text) - len(route.suffix)]
    # The placeholder captures one supplementary-information field (TS 22.030 §6.5.2): no `*`.
    if not value or "*" in value or "#" in value:
        return None
    return value


def _compile(pattern: str, service: str, key: str) -> Route:
    found = list(_PLACEHOLDER.finditer(pattern))
    if len(found) > 1:
        raise ConfigError(key, "a pattern may hold one {name} placeholder, at its end")
    if found:
        m = found[0]
        prefix, suffix = pattern[: m.start()], pattern[m.end() :]
        if suffix != "#" or not prefix.endswith("*"):
            raise ConfigError(key, "the {name} placeholder must be the last field, as in *102*{n}#")
        sample = prefix + "1" + suffix
    else:
        prefix, suffix, sample = pattern, "", pattern
    try:
        dial = parse(sample)
    except DialStringError as exc:
        raise ConfigError(key, f"not a dial string: {exc}") from exc
    if dial.kind != "ussd":
        # SS, handset-local codes and calls never reach the router (docs/services.md): unreachable.
        raise ConfigError(key, f"unreachable: this is a {dial.kind} string, not USSD")
    return Route(
        pattern=pattern,
        service=service,
        placeholder=found[0].group(1) if found else None,
        prefix=prefix,
        suffix=suffix,
    )
