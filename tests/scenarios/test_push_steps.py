"""The scenario `push` step (docs/scenarios.md, docs/smpp.md "Pushes"): loading, and running it
in-process and over HTTP, where the handset's pushed screen is what `expect` checks."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from sim import runner
from sim import scenario as sc
from sim.recorder import Recorder
from sim.targets import HttpTarget
from tests.conftest import make_config
from tests.scenarios.test_targets import TOKEN, world
from ussd.clock import SimulatedClock
from ussd.runtime import Gateway

RU = "79161234567"  # seeded, Russian

__all__ = ["world"]  # the fixture, used by name below

PUSHES = """\
name: Pushes
subscribers: [{msisdn: "79161234567"}]
steps:
  - push: {text: "Low balance. 1. Top up", from: 900}
    expect: {continue: true, text: "/Low balance/"}
  - reply: "1"
    expect: {end: true}
  - push: {text: "Maintenance tonight", reply: false, from: Operator}
    expect: {continue: true, text: "Maintenance tonight"}
  - reply: ""
    expect: {end: true}
  - dial: "*111#"
    expect: {continue: true}
  - push: "Busy?"
    expect: {error: subscriber_busy, status: 409}
"""


def one(text: str, base: dict[str, Any]) -> sc.Scenario:
    (s,) = sc.loads(textwrap.dedent(text), "t.yaml", base)
    return s


def test_pushes_in_process(base: dict[str, Any]) -> None:
    result = runner.run_scenario(one(PUSHES, base))
    assert result.passed, runner.format_failure(result)
    assert result.ran == 6


async def test_pushes_over_http(world: Any, base: dict[str, Any]) -> None:
    _, url = world
    result = await runner.run_async(one(PUSHES, base), HttpTarget(url, TOKEN))
    assert result.passed, runner.format_failure(result)


def test_a_push_opens_the_dialog_a_reply_needs(base: dict[str, Any]) -> None:
    scenario = one(
        """\
        name: Reply to a push
        subscribers: [{msisdn: "79161234567"}]
        steps:
          - push: "Rate us 1-5"
          - reply: "5"
        """,
        base,
    )
    step = scenario.steps[0]
    assert step.action == sc.Push("Rate us 1-5", True, "")


@pytest.mark.parametrize(
    ("push", "message"),
    [
        ('{text: ""}', "push: text: a push needs some text"),
        ("{reply: true}", "push: text: required"),
        ('{text: "x", reply: "yes"}', "push: reply: expected true or false"),
        ('{text: "x", colour: red}', "push: unknown key"),
        ('{text: "x", from: [1]}', "push: from: expected a sender or smpp:SYSTEM_ID"),
        ("42", "push: expected a mapping"),
    ],
)
def test_bad_push_steps_are_refused_at_load(push: str, message: str, base: dict[str, Any]) -> None:
    text = f"""\
name: Bad
subscribers: [{{msisdn: "79161234567"}}]
steps:
  - push: {push}
"""
    with pytest.raises(sc.ScenarioError) as exc:
        one(text, base)
    assert message in str(exc.value)


def test_a_recorded_push_replays_green(tmp_path: Path, base: dict[str, Any]) -> None:
    gw = Gateway.create(make_config(), clock=SimulatedClock(), database=":memory:")
    rec = Recorder("Recorded: pushes")
    detach = rec.attach(gw)
    e = gw.engine
    e.push(RU, "Low balance. 1. Top up", True, "tester", "900")
    rec.reply(RU, "1", e.reply(RU, "1"))
    e.push(RU, "Maintenance tonight", False, "tester", "")
    rec.reply(RU, "", e.reply(RU, ""))
    detach()
    gw.engine.shutdown()
    gw.store.close()

    steps = rec.to_data()["steps"]
    assert steps[0]["push"] == {"text": "Low balance. 1. Top up", "reply": True, "from": "900"}
    assert steps[2]["push"] == {"text": "Maintenance tonight", "reply": False}
    (scenario,) = sc.load(rec.save(tmp_path / "pushes.yaml"), base)
    result = runner.run_scenario(scenario)
    assert result.passed, runner.format_failure(result)
