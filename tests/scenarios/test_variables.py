"""Scenario variables (`vars:` and `${name}`, sim/variables.py): secrets stay out of files."""

from __future__ import annotations

from typing import Any

import pytest

from sim import runner, variables
from sim import scenario as sc

SCENARIO = """
name: Password from the environment
subscribers: [{msisdn: "79161234567"}]
vars:
  password: {env: TEST_USSD_PASSWORD}
  greeting: "$${not a variable}"
steps:
  - dial: "*111*17#"
    expect: {continue: true}
  - reply: "${password}"
  - reply: "${password}"
    expect: {end: true}
  - login: {msisdn: "79161234567", password: "${password}"}
    expect: {ok: true}
"""


def test_a_secret_comes_from_the_environment(
    base: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_USSD_PASSWORD", "Sekret42")
    (scenario,) = sc.loads(SCENARIO, "vars.yaml", base)
    reply = scenario.steps[1].action
    assert isinstance(reply, sc.Reply) and reply.text == "Sekret42"
    # Reports quote the step as written, never the secret.
    assert scenario.steps[1].source == "{reply: '${password}'}"
    assert all("Sekret42" not in step.source for step in scenario.steps)
    result = runner.run_scenario(scenario)
    assert result.passed, runner.format_failure(result)


def test_an_unset_environment_variable_is_a_load_error(
    base: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TEST_USSD_PASSWORD", raising=False)
    with pytest.raises(sc.ScenarioError) as info:
        sc.loads(SCENARIO, "vars.yaml", base)
    assert str(info.value) == (
        'vars.yaml: scenario "Password from the environment": '
        "vars.password: environment variable TEST_USSD_PASSWORD is not set"
    )


@pytest.mark.parametrize(
    ("vars_", "step", "message"),
    [
        ("{}", '{reply: "${nope}"}', "step 2: ${nope}: no such variable (define it under vars:)"),
        ("[a]", '{reply: "x"}', "vars: expected a mapping of name to value or {env: NAME}"),
        ('{"a-b": x}', '{reply: "x"}', "vars: 'a-b' is not a variable name (letters, digits, _)"),
        ("{a: 5}", '{reply: "x"}', "vars.a: expected a string or {env: NAME} (quote it)"),
        ("{a: {env: X, y: 1}}", '{reply: "x"}', "vars.a: expected a string or {env: NAME}"),
    ],
)
def test_bad_vars_fail_at_load(base: dict[str, Any], vars_: str, step: str, message: str) -> None:
    text = (
        'name: v\nsubscribers: [{msisdn: "79161234567"}]\n'
        f'vars: {vars_}\nsteps:\n  - dial: "*100#"\n  - {step}\n'
    )
    with pytest.raises(sc.ScenarioError) as info:
        sc.loads(text, "v.yaml", base)
    assert str(info.value).endswith(message)


def test_substitute_fills_in_nested_values_and_keeps_the_rest() -> None:
    values = {"p": "x1"}
    raw = {"login": {"msisdn": "7", "password": "${p}"}, "expect": {"ok": True}}
    assert variables.substitute(raw, values) == {
        "login": {"msisdn": "7", "password": "x1"},
        "expect": {"ok": True},
    }
    unchanged = {"reply": "$5 and $${p}"}
    assert variables.substitute({"reply": "plain"}, values) == {"reply": "plain"}
    assert variables.substitute(unchanged, values) == {"reply": "$5 and ${p}"}


def test_subscribers_take_variables(base: dict[str, Any]) -> None:
    text = (
        'name: seeded\nvars: {pw: "Abc123"}\n'
        'subscribers: [{msisdn: "79161234567", password: "${pw}"}]\n'
        'steps:\n  - login: {msisdn: "79161234567", password: "${pw}"}\n    expect: {ok: true}\n'
    )
    (scenario,) = sc.loads(text, "seeded.yaml", base)
    assert scenario.subscribers[0]["password"] == "Abc123"
    result = runner.run_scenario(scenario)
    assert result.passed, runner.format_failure(result)
    bad = text.replace('password: "${pw}"}]', 'password: "${nope}"}]')
    with pytest.raises(sc.ScenarioError, match=r"subscribers: \$\{nope\}: no such variable"):
        sc.loads(bad, "seeded.yaml", base)
