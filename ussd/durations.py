"""Durations: one grammar for config, scenarios, `ussd-sim clock advance` and the admin API.

A duration is a bare number of seconds (`45`, `1.5`), or one or more `<number><unit>` parts
with units in descending order, each at most once: `250ms`, `30s`, `5m`, `1.5h`, `2d`,
`1d12h`, `1d 23h 59m 30s`. It is finite, not negative and at most `MAX_SECONDS`, so a
deadline computed from it stays a representable date (docs/config.md, "Durations").
"""

from __future__ import annotations

import math
import re

from ussd.yamlload import brief

# Ten years: long enough for any validity, lock or link delay worth simulating; a simulated
# clock moved by more is moved past the dates Python (and SQLite's date functions) can show.
MAX_DAYS = 3650
MAX_SECONDS = MAX_DAYS * 86400.0

# A simulated clock is not advanced past 9000-01-01 UTC: dates are shown through datetime,
# which ends with year 9999, and deadlines lie up to MAX_SECONDS past the clock.
LATEST = 221_845_392_000.0

UNITS: dict[str, float] = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_ORDER = {unit: i for i, unit in enumerate(UNITS)}
_NUMBER = re.compile(r"[0-9]{1,15}(?:\.[0-9]{1,9})?")
_PART = re.compile(r"([0-9]{1,15}(?:\.[0-9]{1,9})?)\s*(ms|s|m|h|d)\s*")
_EXAMPLES = "30s, 5m, 1.5h, 2d or 1d12h"


class DurationError(ValueError):
    """Not a duration, or one out of bounds; the message says which and quotes the value."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def parse(value: object, *, maximum: float = MAX_SECONDS) -> float:
    """Seconds from a duration (a string of the grammar above, or a number of seconds)."""
    if isinstance(value, bool):
        raise DurationError(f"expected a duration such as {_EXAMPLES}, got {brief(value)}")
    if isinstance(value, int | float):
        # An int of any size must not reach float() (OverflowError past ~1e308).
        seconds = float(max(min(value, 2**63), -1)) if isinstance(value, int) else value
    elif isinstance(value, str):
        seconds = _parse_text(value)
    else:
        raise DurationError(f"expected a duration such as {_EXAMPLES}, got {brief(value)}")
    if not math.isfinite(seconds):
        # YAML's .nan and .inf are floats; a timer cannot be armed with either.
        raise DurationError(f"expected a finite duration, got {brief(value)}")
    if seconds < 0:
        raise DurationError(f"a duration cannot be negative, got {brief(value)}")
    if seconds > maximum:
        raise DurationError(
            f"expected a duration of at most {to_text(maximum)}, got {brief(value)}"
        )
    return seconds


def room(now: float) -> float:
    """The longest advance of a clock standing at `now`: MAX_SECONDS, less near LATEST."""
    return float(max(0, int(min(MAX_SECONDS, LATEST - now))))


def _parse_text(text: str) -> float:
    compact = text.strip()
    if _NUMBER.fullmatch(compact):
        return float(compact)
    seconds = 0.0
    pos = 0
    last = -1
    while pos < len(compact):
        m = _PART.match(compact, pos)
        if m is None or _ORDER[m.group(2)] <= last:
            raise DurationError(f"expected a duration such as {_EXAMPLES}, got {brief(text)}")
        last = _ORDER[m.group(2)]
        seconds += float(m.group(1)) * UNITS[m.group(2)]
        pos = m.end()
    if pos == 0:
        raise DurationError(f"expected a duration such as {_EXAMPLES}, got {brief(text)}")
    return seconds


def to_text(seconds: float) -> str:
    """The shortest text of the grammar for whole seconds (`1d12h`, `90s` → `1m30s`)."""
    if seconds != int(seconds):
        return f"{seconds:g}s"
    rest = int(seconds)
    if rest == 0:
        return "0s"
    parts = []
    for unit in ("d", "h", "m", "s"):
        size = int(UNITS[unit])
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(parts)
