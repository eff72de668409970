"""Operator profiles (docs/network.md "Operator profiles"): the timers and screens of a network.

Pure data and one lookup. `operator.profile` in the config picks one; every figure in it is a
default that an explicit key overrides (`ussd.reply_timeout`, `operator.app_timeout`, …), so a
tester can start from "how Africa's Talking behaves" and change one thing. docs/network.md gives
the published source of each figure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

PAGINATE = "paginate"  # long text goes on several screens, "98" shows the next (the engine's)
TRUNCATE = "truncate"  # long text is cut at the screen length; the rest is never shown
SCREEN_POLICIES = (PAGINATE, TRUNCATE)


@dataclass(frozen=True, slots=True)
class Profile:
    """What a network or aggregator does with a USSD dialog."""

    name: str
    session_max: float  # seconds a dialog may last at most (ussd.dialog_timeout)
    idle_timeout: float  # seconds the subscriber has to answer a screen (ussd.reply_timeout)
    app_timeout: float  # seconds an application has to answer (operator.app_timeout)
    screen_policy: str  # paginate | truncate (ussd.screen_policy)
    screen_length: int  # GSM 7-bit characters a screen holds (ussd.screen_length)
    language: str  # the screens' language for new subscribers (operator.language)
    network_code: str  # MCC+MNC (ITU-T E.212) told to applications (operator.network_code)
    dialect: str  # default dialect of HTTP applications (operator.dialect, docs/apps.md)


PROFILES: Mapping[str, Profile] = {
    # The simulator's own behaviour before profiles existed, unchanged (docs/config.md); the
    # other profiles keep these figures wherever their sources give none (docs/network.md).
    "mts": Profile(
        name="mts",
        session_max=180.0,
        idle_timeout=30.0,
        app_timeout=15.0,
        screen_policy=PAGINATE,
        screen_length=182,
        language="ru",
        network_code="25001",
        dialect="africastalking",
    ),
    "africastalking": Profile(
        name="africastalking",
        session_max=180.0,
        idle_timeout=30.0,
        app_timeout=15.0,
        screen_policy=TRUNCATE,
        screen_length=182,
        language="en",
        network_code="63902",
        dialect="africastalking",
    ),
    "clickatell": Profile(
        name="clickatell",
        session_max=120.0,
        idle_timeout=20.0,
        app_timeout=15.0,
        screen_policy=TRUNCATE,
        screen_length=182,
        language="en",
        network_code="65501",
        dialect="json",
    ),
    "hubtel": Profile(
        name="hubtel",
        session_max=180.0,
        idle_timeout=120.0,
        app_timeout=15.0,
        screen_policy=TRUNCATE,
        screen_length=182,
        language="en",
        network_code="62001",
        dialect="hubtel",
    ),
}
DEFAULT = "mts"


def profile(name: str) -> Profile:
    """The profile called `name`; KeyError names the known ones."""
    try:
        return PROFILES[name]
    except KeyError:
        raise KeyError(f"unknown profile {name!r} (known: {', '.join(PROFILES)})") from None
