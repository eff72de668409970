"""Operator profiles (ussd/profiles.py): each one's timers on the simulated clock, its screens."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import make_config
from ussd import profiles, screens
from ussd.clock import SimulatedClock
from ussd.config import ConfigError
from ussd.events import DialogEnded, Event, Outcome
from ussd.runtime import Gateway
from ussd.services.base import Context, Continue, End, Step

MSISDN = "79161234567"
NEW = "79990000001"  # not seeded: provisioned in the profile's language
LONG = " ".join(f"word{i}" for i in range(80))  # about 560 characters of GSM 7-bit text


class Long:
    """A service whose one screen is far longer than any screen."""

    texts_used: tuple[str, ...] = ()

    def start(self, ctx: Context, args: dict[str, Any]) -> Step:
        return Continue("long", LONG)

    def reply(self, ctx: Context, screen: str, values: dict[str, Any], text: str) -> Step:
        return End(LONG) if text == "end" else Continue("long", LONG)


def gateway_for(profile: str, **ussd: Any) -> Gateway:
    config = make_config(
        operator={"profile": profile},
        ussd={"routes": {"*555#": "long", "*111#": "menu:main"}, **ussd},
    )
    services = {"long": Long()}
    return Gateway.create(config, clock=SimulatedClock(), database=":memory:", services=services)


def outcomes(seen: list[Event]) -> list[Outcome]:
    return [e.outcome for e in seen if isinstance(e, DialogEnded)]


@pytest.mark.parametrize("name", list(profiles.PROFILES))
def test_each_profile_times_out_an_idle_subscriber(name: str) -> None:
    profile = profiles.PROFILES[name]
    gw = gateway_for(name)
    seen: list[Event] = []
    gw.engine.subscribe(seen.append)
    gw.engine.dial(MSISDN, "*555#")
    gw.advance(profile.idle_timeout - 0.001)
    assert gw.engine.dialog(MSISDN) is not None
    gw.advance(0.001)
    assert outcomes(seen) == [Outcome.TIMEOUT]
    gw.close()


@pytest.mark.parametrize("name", list(profiles.PROFILES))
def test_each_profile_ends_a_dialog_at_its_session_maximum(name: str) -> None:
    profile = profiles.PROFILES[name]
    gw = gateway_for(name)
    seen: list[Event] = []
    gw.engine.subscribe(seen.append)
    gw.engine.dial(MSISDN, "*555#")
    start = gw.clock.now()
    # Answer just inside the idle timeout, again and again, until the maximum is reached.
    step = profile.idle_timeout * 0.9
    while gw.clock.now() + step < start + profile.session_max:
        gw.advance(step)
        assert not gw.engine.reply(MSISDN, "1").end
    assert outcomes(seen) == []
    gw.advance(start + profile.session_max - gw.clock.now())
    assert outcomes(seen) == [Outcome.MAX_DURATION]
    gw.close()


@pytest.mark.parametrize(
    ("name", "figures"),
    [
        ("mts", (180.0, 30.0, 15.0, "paginate", "ru", "25001", "africastalking")),
        ("africastalking", (180.0, 30.0, 15.0, "truncate", "en", "63902", "africastalking")),
        ("clickatell", (120.0, 20.0, 15.0, "truncate", "en", "65501", "json")),
        ("hubtel", (180.0, 120.0, 15.0, "truncate", "en", "62001", "hubtel")),
    ],
)
def test_the_config_carries_each_profiles_figures(name: str, figures: tuple[Any, ...]) -> None:
    c = make_config(operator={"profile": name})
    got = (
        c.ussd.dialog_timeout,
        c.ussd.reply_timeout,
        c.operator.app_timeout,
        c.ussd.screen_policy,
        c.operator.language,
        c.operator.network_code,
        c.operator.dialect,
    )
    assert got == figures
    assert c.operator.profile == name and c.ussd.screen_length == 182


def test_mts_is_the_default_and_todays_behaviour() -> None:
    c = make_config()
    assert c.operator.profile == "mts"
    assert (c.ussd.reply_timeout, c.ussd.dialog_timeout, c.ussd.screen_policy) == (
        30.0,
        180.0,
        "paginate",
    )


def test_explicit_keys_override_the_profile() -> None:
    c = make_config(
        operator={"profile": "clickatell", "language": "ru", "app_timeout": "3s"},
        ussd={"reply_timeout": "45s", "screen_policy": "paginate", "screen_length": 120},
    )
    assert c.operator.language == "ru" and c.operator.app_timeout == 3.0
    assert c.ussd.reply_timeout == 45.0 and c.ussd.dialog_timeout == 120.0
    assert c.ussd.screen_policy == "paginate" and c.ussd.screen_length == 120


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("operator", "profile", "vodafone"),
        ("operator", "network_code", "2500"),
        ("operator", "network_code", "25001x"),
        ("operator", "app_timeout", "0s"),
        ("operator", "app_timeout", "10m"),
        ("operator", "dialect", "soap"),
        ("ussd", "screen_policy", "scroll"),
        ("ussd", "screen_length", 19),
        ("ussd", "screen_length", 183),
        ("ussd", "screen_length", "160"),
    ],
)
def test_bad_profile_values_name_their_key(section: str, key: str, value: object) -> None:
    with pytest.raises(ConfigError) as info:
        make_config(**{section: {key: value}})
    assert info.value.key == f"{section}.{key}"


def test_a_new_subscriber_gets_the_profiles_language() -> None:
    gw = gateway_for("africastalking")
    screen = gw.engine.dial(NEW, "*999#")
    assert screen.text == "Unknown request."
    gw.close()


def test_paginate_shows_every_word_over_several_screens() -> None:
    gw = gateway_for("mts")
    screen = gw.engine.dial(MSISDN, "*555#")
    pages = [screen.text]
    for _ in range(screen.pages - 1):
        pages.append(gw.engine.reply(MSISDN, "98").text)
    assert screen.pages > 1
    shown = " ".join(p.removesuffix("\n98. Далее") for p in pages)
    assert shown.split() == LONG.split()
    assert all(screens.fits(p) for p in pages)
    gw.close()


def test_truncate_cuts_the_screen_and_drops_the_rest() -> None:
    gw = gateway_for("africastalking")
    screen = gw.engine.dial(MSISDN, "*555#")
    assert screen.pages == 1 and not screen.end
    assert len(screen.text) <= 182 and LONG.startswith(screen.text)
    assert "98" not in screen.text
    final = gw.engine.reply(MSISDN, "end")
    assert final.end and final.pages == 1 and LONG.startswith(final.text)
    gw.close()


def test_a_shorter_screen_length_pages_shorter() -> None:
    gw = gateway_for("mts", screen_length=100)
    screen = gw.engine.dial(MSISDN, "*555#")
    assert len(screen.text) <= 100 and screen.pages > 5
    gw.close()


def test_truncating_a_menu_keeps_its_first_lines() -> None:
    gw = gateway_for("hubtel", screen_length=40)
    screen = gw.engine.dial(MSISDN, "*111#")
    assert screen.pages == 1 and 0 < len(screen.text) <= 40
    gw.close()


@given(text=st.text(min_size=1, max_size=400), limit=st.integers(20, 182))
def test_truncate_keeps_a_prefix_that_fits(text: str, limit: int) -> None:
    cut = screens.truncate(text, limit)
    assert screens.fits(cut, limit)
    assert text.startswith(cut)
    if screens.fits(text, limit):
        assert cut == text
