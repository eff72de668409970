"""ussd.durations: one grammar, one set of bounds, for every place that takes a duration."""

from __future__ import annotations

import argparse
import math

import pytest

from ussd import cli, durations
from ussd.config import ConfigError, parse_duration
from ussd.durations import MAX_SECONDS, DurationError

GOOD: list[tuple[object, float]] = [
    ("30s", 30.0),
    ("5m", 300.0),
    ("2d", 172800.0),
    ("1.5h", 5400.0),
    ("250ms", 0.25),
    ("1d12h", 129600.0),
    ("1d23h59m", 172740.0),
    ("1d 23h 59m 30s", 172770.0),
    ("1h30m", 5400.0),
    ("1m500ms", 60.5),
    (" 10 s ", 10.0),
    ("45", 45.0),
    ("0.5", 0.5),
    (45, 45.0),
    (1.5, 1.5),
    (0, 0.0),
    ("0s", 0.0),
    ("3650d", MAX_SECONDS),
    (MAX_SECONDS, MAX_SECONDS),
]

BAD: list[tuple[object, str]] = [
    ("soon", "expected a duration such as 30s, 5m, 1.5h, 2d or 1d12h, got 'soon'"),
    ("", "expected a duration such as"),
    ("2w", "expected a duration such as"),
    ("-5s", "expected a duration such as"),
    ("1h1h", "expected a duration such as"),  # a unit twice
    ("30m1h", "expected a duration such as"),  # units out of order
    ("1d12", "expected a duration such as"),  # a bare number after a unit
    ("1e3s", "expected a duration such as"),
    ("٣٠s", "expected a duration such as"),  # Arabic-Indic digits are not ASCII digits
    ("1 d 2", "expected a duration such as"),
    (True, "expected a duration such as 30s, 5m, 1.5h, 2d or 1d12h, got True"),
    (None, "expected a duration such as"),
    ([1], "expected a duration such as"),
    (-1, "a duration cannot be negative, got -1"),
    (math.nan, "expected a finite duration, got nan"),
    (math.inf, "expected a finite duration, got inf"),
    (1e308, "expected a duration of at most 3650d, got 1e+308"),
    (10**400, "expected a duration of at most 3650d, got <an integer of 1329 bits>"),
    ("2950000d", "expected a duration of at most 3650d, got '2950000d'"),
    ("3650d1s", "expected a duration of at most 3650d, got '3650d1s'"),
    ("9" * 400 + "d", "expected a duration such as"),  # digits beyond any sane number
    ("1" * 10_000, "got '11111111111111111...111111111111111111'"),  # quoted briefly
]


@pytest.mark.parametrize(("value", "seconds"), GOOD, ids=[repr(v)[:20] for v, _ in GOOD])
def test_good(value: object, seconds: float) -> None:
    assert durations.parse(value) == seconds
    assert parse_duration(value, "k") == seconds


@pytest.mark.parametrize(("value", "message"), BAD, ids=[repr(v)[:20] for v, _ in BAD])
def test_bad(value: object, message: str) -> None:
    with pytest.raises(DurationError) as info:
        durations.parse(value)
    assert message in info.value.message
    assert len(info.value.message) < 120
    with pytest.raises(ConfigError) as config_info:
        parse_duration(value, "links.office_delay")
    assert config_info.value.key == "links.office_delay"
    assert config_info.value.message == info.value.message


def test_a_lower_maximum() -> None:
    assert durations.parse("1h", maximum=3600.0) == 3600.0
    with pytest.raises(DurationError, match="at most 1h, got '61m'"):
        durations.parse("61m", maximum=3600.0)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (90, "1m30s"), (129600, "1d12h"), (MAX_SECONDS, "3650d"), (0.25, "0.25s")],
)
def test_to_text_round_trips(seconds: float, text: str) -> None:
    assert durations.to_text(seconds) == text
    assert durations.parse(text) == seconds


def clock_advance(word: str) -> argparse.Namespace:
    return cli.build_parser().parse_args(["clock", "advance", word])


def test_clock_advance_cli_takes_the_same_grammar(capsys: pytest.CaptureFixture[str]) -> None:
    assert clock_advance("1d12h").duration == "1d12h"
    with pytest.raises(SystemExit) as info:
        clock_advance("2950000d")
    assert info.value.code == 2
    assert "at most 3650d, got '2950000d'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("now", "room"),
    [
        (0.0, MAX_SECONDS),
        (durations.LATEST - MAX_SECONDS, MAX_SECONDS),
        (durations.LATEST - 86400.5, 86400.0),
        (durations.LATEST, 0.0),
        (durations.LATEST + 1, 0.0),
    ],
)
def test_room_keeps_a_clock_before_latest(now: float, room: float) -> None:
    assert durations.room(now) == room
