"""Shared fixtures: a fresh in-process world on a simulated clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from ussd import config as config_mod
from ussd import log as log_mod
from ussd import store as store_mod
from ussd.clock import SimulatedClock
from ussd.events import Event
from ussd.runtime import Gateway

ROOT = Path(__file__).resolve().parent.parent

# The `browser` fixture (headless Debian Chromium) for every browser test; real redis-server
# and PostgreSQL for the cluster tests (tests/services.py).
pytest_plugins = ["tests.browser", "tests.services"]

# capture_logs() must see every logger, also after a test ran `ussd-sim` in-process.
log_mod.CACHE_LOGGERS = False


@pytest.fixture(autouse=True)
def _fresh_logging() -> Iterator[None]:
    # An in-process `ussd-sim` run configures structlog for the whole process (level, format);
    # the next test starts from structlog's defaults again.
    yield
    structlog.reset_defaults()


@pytest.fixture(autouse=True)
def _cheap_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    # The production cost (N=2^14) is kept by the hash format; tests hash with N=2^10 so a
    # thousand dialogs stay fast. verify_password reads N from each hash, so both work.
    monkeypatch.setattr(store_mod, "SCRYPT_N", 2**10)


def make_config(**sections: Any) -> config_mod.Config:
    """The shipped config.yaml with sections replaced (and an in-memory store)."""
    import yaml

    data = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    data["storage"] = {"database": ":memory:"}
    data["clock"] = {"mode": "simulated"}
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return config_mod.from_mapping(data, source="test")


@pytest.fixture
def config() -> config_mod.Config:
    return make_config()


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock()


@pytest.fixture
def gateway(config: config_mod.Config, clock: SimulatedClock) -> Iterator[Gateway]:
    gw = Gateway.create(config, clock=clock, database=":memory:")
    yield gw
    gw.engine.shutdown()
    gw.store.close()


@pytest.fixture
def events(gateway: Gateway) -> list[Event]:
    """Every event the gateway emits, in order."""
    seen: list[Event] = []
    gateway.engine.subscribe(seen.append)
    return seen
