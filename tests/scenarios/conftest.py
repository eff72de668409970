"""Scenario fixtures: the shipped config as the base of every scenario world."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sim.scenario import base_config_data

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "sim" / "scenarios"


@pytest.fixture(scope="session")
def base() -> dict[str, Any]:
    """The raw shipped config.yaml (scenario worlds start from it)."""
    return base_config_data(ROOT / "config.yaml")
