"""The shipped scenarios all pass in-process."""

from __future__ import annotations

from typing import Any

import pytest

from sim import runner
from sim import scenario as sc
from tests.scenarios.conftest import SHIPPED

FILES = sorted(SHIPPED.glob("*.yaml"))

# Every flow the brief names has a scenario (checked by name so none silently disappears).
FLOWS = {
    "password.yaml": 7,
    "numbers.yaml": 2,
    "office_link.yaml": 2,
    "app_link.yaml": 2,
    "sms_password.yaml": 1,
    "lk_sms_password.yaml": 2,
    "lockout.yaml": 1,
    "timeouts.yaml": 3,
    "menu.yaml": 3,
    "codes.yaml": 3,
    "mo_sms.yaml": 2,
    "bonus.yaml": 2,
    "instalments.yaml": 2,
    "spending.yaml": 2,
    "ss.yaml": 3,
    "lk_website.yaml": 5,
    "my_mts_app.yaml": 6,
    "lost_sms_password.yaml": 2,
}


def test_every_flow_is_shipped(base: dict[str, Any]) -> None:
    assert {p.name: len(sc.load(p, base)) for p in FILES} == FLOWS


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_shipped_file_passes(path: Any, base: dict[str, Any]) -> None:
    for scenario in sc.load(path, base):
        result = runner.run_scenario(scenario)
        assert result.passed, runner.format_failure(result)
        assert result.ran == len(scenario.steps)


def test_office_link_is_pending_one_minute_before_two_days(base: dict[str, Any]) -> None:
    # The shipped scenario's boundary matters: the same steps with the minute left out fail.
    (first, _) = sc.load(SHIPPED / "office_link.yaml", base)
    cut = [
        s for s in first.steps if not (isinstance(s.action, sc.Advance) and s.action.seconds == 60)
    ]
    from dataclasses import replace

    result = runner.run_scenario(replace(first, steps=tuple(cut)))
    assert not result.passed and result.failure is not None
    assert result.failure.mismatches[0].field == "linked"
