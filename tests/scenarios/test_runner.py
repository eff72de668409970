"""The runner: results, failure reports with expected vs actual, exit codes, -j."""

from __future__ import annotations

import io
import socket
import textwrap
from pathlib import Path
from typing import Any

import pytest

from sim import runner
from sim import scenario as sc
from tests.scenarios.conftest import ROOT, SHIPPED
from ussd import cli

FAILING = """\
name: Deliberately failing
subscribers: [{msisdn: "79161234567"}]
steps:
  - dial: "*100#"
    expect: {end: true}
  - dial: "*111*17#"
    expect: {end: true, text: "/баланс/i", page: 2}
  - dial: "*100#"  # never reached
"""

PASSING = """\
name: Balance
subscribers: [{msisdn: "79161234567", balance: 7}]
steps:
  - dial: "*100#"
    expect: {end: true, text: "Ваш баланс: 7.00 руб."}
"""


def one(text: str, base: dict[str, Any], source: str = "t.yaml") -> sc.Scenario:
    (s,) = sc.loads(textwrap.dedent(text), source, base)
    return s


def test_a_passing_scenario(base: dict[str, Any]) -> None:
    result = runner.run_scenario(one(PASSING, base))
    assert result.passed
    assert (result.file, result.name, result.steps, result.ran) == ("t.yaml", "Balance", 1, 1)
    assert runner.format_result(result).startswith("✓ Balance (1 step, ")


def test_a_failing_step_reports_expected_and_actual_side_by_side(base: dict[str, Any]) -> None:
    result = runner.run_scenario(one(FAILING, base, "failing.yaml"))
    assert not result.passed and result.failure is not None
    assert (result.ran, result.failure.step) == (2, 2)
    assert [(m.field, m.expected) for m in result.failure.mismatches] == [
        ("end", "true"),
        ("text", "/баланс/i"),
        ("page", "2"),
    ]
    prompt = '"Введите новый пароль Личного кабинета (4-10 латинских букв и цифр):"'
    assert runner.format_failure(result).splitlines() == [
        'failing.yaml: scenario "Deliberately failing": step 2',
        "  step:  {dial: '*111*17#', expect: {end: true, text: /баланс/i, page: 2}}",
        "  field  expected   actual",
        "  end    true       false (continue)",
        f"  text   /баланс/i  {prompt}",
        "  page   2          1",
    ]
    assert result.failure.summary == "step 2: end: expected true, got false (continue) (and 2 more)"
    assert runner.format_result(result).startswith("✗ Deliberately failing (2 of 3 steps, ")


@pytest.mark.parametrize(
    ("steps", "field", "expected", "actual"),
    [
        (
            '- login: {msisdn: "79161234567", password: "nope"}',
            "ok",
            "true",
            "false (401 bad_credentials: wrong number or password)",
        ),
        (
            '- login: {msisdn: "79161234567", password: "nope"}\n  expect: {status: 423}',
            "status",
            "423",
            "401 (bad_credentials)",
        ),
        (
            '- sms: {to: "79161234567", text: "x"}',
            "sms",
            'at least 1 SMS to 79161234567, text "x"',
            "empty inbox",
        ),
        (
            '- dial: "*111*828*1#"\n- sms: {to: "79161234567", count: 2}',
            "sms",
            "2 SMS to 79161234567",
            '1 matching of 1: "Услуга «Управление номерами» подключена."',
        ),
        (
            '- dial: "*111#"\n- advance: 31s\n- reply: "1"',
            "ok",
            "true",
            "false (409 no_dialog: no open dialog for 79161234567)",
        ),
        (
            '- dial: "*111#"\n- wait_timeout: true\n  expect: {text: "nothing like it"}',
            "text",
            '"nothing like it"',
            '"Время ожидания ответа истекло."',
        ),
        (
            '- account: {msisdn: "79161234567"}\n  expect: {balance: 1, linked: []}',
            "balance",
            "1",
            "0.0",
        ),
        (
            '- dial: "89161112233"\n  expect: {error: no_dialog}',
            "error",
            "no_dialog",
            "not_ussd",
        ),
    ],
)
def test_failures_name_the_field(
    steps: str, field: str, expected: str, actual: str, base: dict[str, Any]
) -> None:
    text = 'name: F\nsubscribers: [{msisdn: "79161234567"}]\nsteps:\n' + textwrap.indent(
        steps, "  "
    )
    result = runner.run_scenario(one(text, base))
    assert result.failure is not None
    first = result.failure.mismatches[0]
    assert (first.field, first.expected, first.actual) == (field, expected, actual)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_cli_exit_codes_and_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(tmp_path, "good.yaml", PASSING)
    bad = write(tmp_path, "bad.yaml", FAILING)
    broken = write(tmp_path, "broken.yaml", PASSING.replace("steps:", "stpes:"))
    config = str(ROOT / "config.yaml")

    assert cli.main(["run", str(good), "--config", config]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("✓ Balance (1 step, ")
    assert out[-1].startswith("1 scenario, 1 passed, 0 failed (1 step, ")

    assert cli.main(["run", str(good), str(bad), "--config", config]) == 1
    out = capsys.readouterr().out
    assert "✗ Deliberately failing (2 of 3 steps" in out
    assert f'{bad}: scenario "Deliberately failing": step 2' in out
    assert "2 scenarios, 1 passed, 1 failed" in out

    assert cli.main(["run", str(tmp_path), "--config", config]) == 2
    out = capsys.readouterr().out
    assert f"✗ {broken}: scenario \"Balance\": unknown key 'stpes'" in out
    assert "✓" not in out  # nothing runs when a file does not load


def test_cli_refuses_bad_targets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(tmp_path, "good.yaml", PASSING)
    assert cli.main(["run", str(good), "--target", "ftp://x"]) == 2
    assert "--target takes at most one smpp://" in capsys.readouterr().err
    assert cli.main(["run", str(good), "--target", "smpp://nohost"]) == 2


def key(results: list[runner.ScenarioResult]) -> list[tuple[Any, ...]]:
    return [
        (r.file, r.name, r.passed, r.ran, r.failure.mismatches if r.failure else None)
        for r in results
    ]


def test_parallel_runs_give_the_same_results_in_the_same_order(
    tmp_path: Path, base: dict[str, Any]
) -> None:
    bad = write(tmp_path, "zz_failing.yaml", FAILING)
    scenarios, errors = runner.load_all([SHIPPED, bad], base)
    assert not errors
    serial = list(runner.run_many(scenarios, runner.Options(jobs=1, base=base)))
    parallel = list(runner.run_many(scenarios, runner.Options(jobs=2, base=base)))
    assert key(serial) == key(parallel)
    assert [r.name for r in parallel] == [s.name for s in scenarios]
    assert [r.passed for r in parallel].count(False) == 1


def test_no_files(tmp_path: Path, base: dict[str, Any]) -> None:
    scenarios, errors = runner.load_all([tmp_path], base)
    assert scenarios == [] and len(errors) == 1
    assert str(errors[0]).endswith(": no scenario files")


def test_all_load_errors_at_once_duplicates_first(
    tmp_path: Path, base: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    one_file = """\
    - name: Bad step
      subscribers: [{msisdn: "79161234567"}]
      steps: [{dial: 100}]
    - name: Twice
      subscribers: [{msisdn: "79161234567"}]
      steps: [{dial: "*100#"}]
    - name: Bad subscriber
      subscribers: [{msisdn: "79161234567", password: x}]
      steps: [{dial: "*100#"}]
    - name: Twice
      subscribers: [{msisdn: "79161234567"}]
      steps: [{dial: "*100#"}]
    """
    bad = write(tmp_path, "a.yaml", one_file)
    other = write(tmp_path, "b.yaml", PASSING.replace("steps:", "stpes:"))
    scenarios, errors = runner.load_all([tmp_path], base)
    assert [str(e) for e in errors] == [
        f'{bad}: scenario "Twice": two scenarios share this name',
        f'{bad}: scenario "Bad step": step 1: dial: expected a dial string, got 100 (quote it)',
        f'{bad}: scenario "Bad subscriber": subscribers[0].password: '
        "expected 4-10 Latin letters and digits",
        f"{other}: scenario \"Balance\": unknown key 'stpes'",
    ]
    assert [s.name for s in scenarios] == ["Twice", "Twice"]  # loaded, but nothing runs

    out = io.StringIO()
    assert runner.run([tmp_path], runner.Options(base=base), out) == 2
    lines = out.getvalue().splitlines()
    assert lines[:4] == [f"✗ {e}" for e in errors]
    assert lines[4] == "4 load errors in 2 files; nothing was run"


def test_an_unreachable_target_is_reported_once(base: dict[str, Any]) -> None:
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    scenarios, errors = runner.load_all([SHIPPED], base)
    assert len(scenarios) > 1 and not errors
    out = io.StringIO()
    url = f"smpp://harness:secret@127.0.0.1:{port}"
    options = runner.Options(base=base, targets=(url,))
    assert runner.run([SHIPPED], options, out) == runner.EXIT_LOAD
    lines = out.getvalue().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"✗ cannot reach smpp://harness:***@127.0.0.1:{port}: ")
    assert lines[0].endswith("; nothing was run")
    assert "secret" not in lines[0]


def test_plural() -> None:
    assert [runner.plural(n, "step") for n in (0, 1, 2)] == ["0 steps", "1 step", "2 steps"]
