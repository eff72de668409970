"""The scenario loader: a table of bad files → exact messages (file, scenario, step)."""

from __future__ import annotations

import textwrap
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
import yaml

from sim import scenario as sc
from ussd import yamlload

HEAD = """\
name: Password through *111*17#
subscribers: [{msisdn: "79161234567"}, {msisdn: "79161112233"}]
steps:
"""
WHERE = 'bad.yaml: scenario "Password through *111*17#"'


def steps(text: str) -> str:
    return HEAD + textwrap.indent(textwrap.dedent(text), "  ")


# libyaml and PyYAML word this one differently; ussd.yamlload uses libyaml when present.
UNCLOSED = (
    "did not find expected ',' or ']'"
    if yamlload.Loader is not yaml.SafeLoader
    else "expected ',' or ']', but got '<stream end>'"
)

BAD: list[tuple[str, str]] = [
    # the brief's own example
    (
        steps("""\
            - dial: "*111*17#"
            - reply: "secret12"
            - repyl: "secret12"
        """),
        f"{WHERE}: step 3: unknown key 'repyl'",
    ),
    (steps('- reply: "x"\n'), f"{WHERE}: step 1: reply before any dial from 79161234567"),
    (
        steps('- dial: "*100#"\n  expect: {end: true}\n- reply: "1"\n'),
        f"{WHERE}: step 2: reply after the dialog of 79161234567 ended (expect end)",
    ),
    (
        steps("- wait_timeout: true\n"),
        f"{WHERE}: step 1: wait_timeout before any dial from 79161234567",
    ),
    (steps("- release: true\n"), f"{WHERE}: step 1: release before any dial from 79161234567"),
    (
        steps('- dial: "*100#"\n  as: "79990000000"\n'),
        f"{WHERE}: step 1: as: 79990000000 is not one of the scenario's subscribers",
    ),
    (
        steps('- dial: "*100#"\n  reply: "1"\n'),
        f"{WHERE}: step 1: two actions ('dial' and 'reply'): a step has one",
    ),
    (
        steps("- expect: {end: true}\n"),
        f"{WHERE}: step 1: no action: a step has one of " + ", ".join(sc.ACTIONS),
    ),
    (
        steps("- advance: soon\n"),
        f"{WHERE}: step 1: advance: expected a duration such as 30s, 5m, 1.5h, 2d or 1d12h, "
        "got 'soon'",
    ),
    (
        steps("- advance: 0s\n"),
        f"{WHERE}: step 1: advance: expected a duration greater than zero, got '0s'",
    ),
    (
        steps('- dial: "*100#"\n  expect: {balance: 10}\n'),
        f"{WHERE}: step 1: expect: 'balance' makes no sense for a dial step "
        "(allowed: continue, end, error, ok, page, pages, status, text)",
    ),
    (
        steps('- login: {msisdn: "79161234567", password: "x"}\n  expect: {continue: true}\n'),
        f"{WHERE}: step 1: expect: 'continue' makes no sense for a login step "
        "(allowed: error, ok, status)",
    ),
    (
        steps("- advance: 1m\n  expect: {ok: true}\n"),
        f"{WHERE}: step 1: expect: a advance step takes no expect",
    ),
    (
        steps('- dial: "*100#"\n  expect: {contine: true}\n'),
        f"{WHERE}: step 1: expect: unknown key 'contine'",
    ),
    (
        steps('- dial: "*100#"\n  expect: {text: "/(/"}\n'),
        f"{WHERE}: step 1: expect: text: bad matcher '/(/': "
        "missing ), unterminated subpattern at position 0",
    ),
    (
        steps('- dial: "*100#"\n  expect: {text: "/x/q"}\n'),
        f"{WHERE}: step 1: expect: text: bad matcher '/x/q': unknown regex flag 'q'",
    ),
    (
        steps('- dial: "*100#"\n  expect: {continue: true, end: true}\n'),
        f"{WHERE}: step 1: expect: continue and end contradict each other",
    ),
    (
        steps('- dial: "*111#"\n- reply: 00\n'),
        f"{WHERE}: step 2: reply: expected a string, got 0 (quote it)",
    ),
    (
        steps('- sms: {to: "79161234567", txt: "x"}\n'),
        f"{WHERE}: step 1: sms: unknown key 'txt'",
    ),
    (
        steps('- sms: {to: "79161234567", count: -1}\n'),
        f"{WHERE}: step 1: sms: count: expected an integer ≥ 0, got -1",
    ),
    (
        steps('- login: {msisdn: "79161234567"}\n'),
        f"{WHERE}: step 1: login: password: required",
    ),
    (
        steps('- office_link: {account: "79161234567", number: "70000000000"}\n'),
        f"{WHERE}: step 1: office_link: number: "
        "70000000000 is not one of the scenario's subscribers",
    ),
    (
        steps(
            '- account: {msisdn: "79161234567"}\n'
            '  expect: {linked: [{msisdn: "79161112233", state: on}]}\n'
        ),
        f"{WHERE}: step 1: expect: linked[0]: state: expected pending or active, got True",
    ),
    (
        steps('- mo_sms: {to: "79161112233", text: "hi", receipt: "yes"}\n'),
        f"{WHERE}: step 1: mo_sms: receipt: expected true or false, got 'yes'",
    ),
    (steps("- 42\n"), f"{WHERE}: step 1: expected a mapping with one action, got 42"),
    (
        steps("- advance: 2950000d\n"),
        f"{WHERE}: step 1: advance: expected a duration of at most 3650d, got '2950000d'",
    ),
    (
        steps("- advance: 30m1h\n"),
        f"{WHERE}: step 1: advance: expected a duration such as 30s, 5m, 1.5h, 2d or 1d12h, "
        "got '30m1h'",
    ),
    (
        steps("- dial: " + "1" * 100 + "\n"),  # an unquoted number is quoted briefly
        f"{WHERE}: step 1: dial: expected a dial string, "
        f"got <an integer of {int('1' * 100).bit_length()} bits> (quote it)",
    ),
    # scenario-level problems
    (
        HEAD.replace("steps:", "stpes:") + "  - dial: '*100#'\n",
        f"{WHERE}: unknown key 'stpes'",
    ),
    (HEAD, f"{WHERE}: steps: required, a non-empty list of steps"),
    (
        "name: X\nsubscribers: []\nsteps: [{dial: '*100#'}]\n",
        'bad.yaml: scenario "X": subscribers: required, a non-empty list of subscribers',
    ),
    (
        "name: X\nsubscribers: [{msisdn: '79161234567', balance: lots}]\n"
        "steps: [{dial: '*100#'}]\n",
        "bad.yaml: scenario \"X\": subscribers[0].balance: expected a number, got 'lots'",
    ),
    (
        "name: X\nsubscribers: [{msisdn: '79161234567', colour: red}]\nsteps: [{dial: '*100#'}]\n",
        'bad.yaml: scenario "X": subscribers[0].colour: unknown key',
    ),
    (
        "name: X\nsubscribers: [{msisdn: '79161234567'}]\nconfig: {ussd: {reply_timeout: never}}\n"
        "steps: [{dial: '*100#'}]\n",
        'bad.yaml: scenario "X": config.ussd.reply_timeout: expected a duration such as 30s, '
        "5m, 1.5h, 2d or 1d12h, got 'never'",
    ),
    (
        "- name: A\n  subscribers: [{msisdn: '79161234567'}]\n  steps: [{dial: '*100#'}]\n"
        "- subscribers: [{msisdn: '79161234567'}]\n  steps: [{dial: '*100#'}]\n",
        "bad.yaml: scenario #2: name: required, a non-empty string",
    ),
    (
        "- name: A\n  subscribers: [{msisdn: '79161234567'}]\n  steps: [{dial: '*100#'}]\n"
        "- name: A\n  subscribers: [{msisdn: '79161234567'}]\n  steps: [{dial: '*100#'}]\n",
        'bad.yaml: scenario "A": two scenarios share this name',
    ),
    # file-level problems
    ("just text\n", "bad.yaml: expected a scenario (a mapping) or a list of scenarios"),
    ("", "bad.yaml: expected a scenario (a mapping) or a list of scenarios"),
    (
        "name: [unclosed\n",
        f"bad.yaml: not valid YAML at line 2, column 1: {UNCLOSED}",
    ),
]


@pytest.mark.parametrize(("text", "message"), BAD, ids=[m.split(": ", 1)[-1][:60] for _, m in BAD])
def test_bad_files_fail_at_load_with_exact_messages(
    text: str, message: str, base: dict[str, Any]
) -> None:
    with pytest.raises(sc.ScenarioError) as info:
        sc.loads(text, "bad.yaml", base)
    assert str(info.value) == message


def test_error_carries_its_parts(base: dict[str, Any]) -> None:
    with pytest.raises(sc.ScenarioError) as info:
        sc.loads(steps('- dial: "*100#"\n- repyl: x\n'), "bad.yaml", base)
    assert info.value.file == "bad.yaml"
    assert info.value.scenario == 'scenario "Password through *111*17#"'
    assert info.value.step == 2
    assert info.value.message == "unknown key 'repyl'"


def test_load_names_the_path(tmp_path: Path, base: dict[str, Any]) -> None:
    path = tmp_path / "password.yaml"
    path.write_text(steps('- dial: "*111*17#"\n- repyl: "x"\n'), encoding="utf-8")
    with pytest.raises(sc.ScenarioError, match=r"password\.yaml: scenario \"Password through"):
        sc.load(path, base)


def test_the_spec_example_loads(base: dict[str, Any]) -> None:
    text = """\
        name: Password through *111*17#
        subscribers: [{msisdn: "79161234567", balance: 120}]
        steps:
          - dial: "*111*17#"              # from the first subscriber unless `as:` names another
            expect: {continue: true, text: "/парол/i"}
          - reply: "ab"
            expect: {continue: true}
          - reply: "secret12"
          - reply: "secret12"
            expect: {end: true}
          - sms: {to: "79161234567", text: "/парол/i"}
          - login: {msisdn: "79161234567", password: "secret12"}
            expect: {ok: true}
          - advance: 2d
    """
    (s,) = sc.loads(textwrap.dedent(text), "password.yaml", base)
    assert s.name == "Password through *111*17#"
    assert [step.kind for step in s.steps] == [
        "dial", "reply", "reply", "reply", "sms", "login", "advance",
    ]  # fmt: skip
    assert s.msisdns == ("79161234567",)
    assert s.steps[0].msisdn == "79161234567"
    assert s.steps[0].expect == sc.Expect(continue_=True, text=sc.matcher("/парол/i"))
    assert isinstance(s.steps[6].action, sc.Advance) and s.steps[6].action.seconds == 172_800
    assert s.config.subscribers.seed[0].balance == 120
    assert s.config.storage_database == ":memory:" and s.config.clock_mode == "simulated"


def test_config_overrides_and_as(base: dict[str, Any]) -> None:
    text = """\
        name: T
        subscribers: [{msisdn: "79161234567"}, {msisdn: "+79161112233"}]
        config: {ussd: {reply_timeout: 5s}}
        steps:
          - dial: "*100#"
            as: "89161112233"
    """
    (s,) = sc.loads(textwrap.dedent(text), "t.yaml", base)
    assert s.config.ussd.reply_timeout == 5
    assert s.config.ussd.dialog_timeout == 180  # the rest of the section is the base's
    assert s.steps[0].msisdn == "79161112233"  # normalised (docs/smpp.md trunk prefix 8)


@pytest.mark.parametrize(
    ("source", "text", "hit"),
    [
        ("парол", "Введите пароль", True),
        ("Парол", "Введите пароль", False),
        ("/парол/i", "ПАРОЛЬ", True),
        ("/^a.b$/", "a\nb", False),
        ("/^a.b$/s", "a\nb", True),
        ("/^b$/m", "a\nb", True),
        ("/^b$/", "a\nb", False),
        ("/", "a/b", True),  # a lone slash is plain text
        ("a/b/", "xa/b/", True),  # only a leading slash starts a regex
    ],
)
def test_matchers(source: str, text: str, hit: bool) -> None:
    assert sc.matcher(source).matches(text) is hit


@pytest.mark.parametrize(
    ("written", "seconds"),
    [
        ("2d", 172_800),
        ("1d23h59m", 172_740),
        ("14m59s", 899),
        (30, 30),
        ("1.5h", 5400),
        ("1d 12h", 129_600),
    ],
)
def test_durations(written: object, seconds: float) -> None:
    assert sc.duration(written) == seconds


def test_a_list_of_scenarios(base: dict[str, Any]) -> None:
    text = "\n".join(
        f"- name: S{i}\n  subscribers: [{{msisdn: '79161234567'}}]\n  steps: [{{dial: '*100#'}}]"
        for i in range(3)
    )
    scenarios = sc.loads(text, "many.yaml", base)
    assert [s.name for s in scenarios] == ["S0", "S1", "S2"]
    assert [s.index for s in scenarios] == [0, 1, 2]
    assert {s.classname for s in scenarios} == {"many"}


def test_discover_finds_yaml_under_directories(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    for name in ("b/z.yaml", "a.yml", "c.yaml", "notes.txt"):
        (tmp_path / name).write_text("x", encoding="utf-8")
    found = sc.discover([tmp_path])
    assert [p.relative_to(tmp_path).as_posix() for p in found] == ["a.yml", "b/z.yaml", "c.yaml"]


def test_bombs_and_sizes_are_refused_in_bounded_memory(
    tmp_path: Path, base: dict[str, Any]
) -> None:
    bomb = 'a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n' + "".join(
        f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 10)
    )
    path = tmp_path / "bomb.yaml"
    path.write_text(bomb + "name: B\nsubscribers: [{msisdn: '79161234567'}]\nsteps: *a9\n")
    tracemalloc.start()
    try:
        with pytest.raises(sc.ScenarioError) as info:
            sc.load(path, base)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert str(info.value).startswith(f"{path}: more than 250,000 values once aliases")
    assert peak < 5_000_000, f"{peak:,} bytes"

    path.write_text("name: '" + "x" * (1 << 20) + "'\n")
    with pytest.raises(sc.ScenarioError, match=r"bomb\.yaml: larger than 1 MiB$"):
        sc.load(path, base)


def test_step_and_scenario_limits(base: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sc, "MAX_STEPS", 3)
    monkeypatch.setattr(sc, "MAX_SCENARIOS", 2)
    four = "[" + ", ".join(["{dial: '*100#'}"] * 4) + "]"
    with pytest.raises(sc.ScenarioError) as info:
        sc.loads(f"name: X\nsubscribers: [{{msisdn: '79161234567'}}]\nsteps: {four}\n", "t", base)
    assert str(info.value) == 't: scenario "X": steps: more than 3 steps in one scenario'
    one = "- name: S{}\n  subscribers: [{{msisdn: '79161234567'}}]\n  steps: [{{dial: '*100#'}}]\n"
    with pytest.raises(sc.ScenarioError) as info:
        sc.loads("".join(one.format(i) for i in range(3)), "t", base)
    assert str(info.value) == "t: more than 2 scenarios in one file"


def test_the_loader_reports_every_bad_scenario(tmp_path: Path, base: dict[str, Any]) -> None:
    path = tmp_path / "two.yaml"
    path.write_text(
        "- {name: A, subscribers: [{msisdn: '79161234567'}], steps: [{dial: 1}]}\n"
        "- {name: B, subscribers: [{msisdn: '79161234567'}], steps: [{dial: '*100#'}]}\n"
        "- {name: C, subscribers: [{msisdn: '79161234567'}], steps: [{reply: '1'}]}\n",
        encoding="utf-8",
    )
    scenarios, errors = sc.load_report(path, base)
    assert [s.name for s in scenarios] == ["B"]
    assert [(e.scenario, e.step) for e in errors] == [('scenario "A"', 1), ('scenario "C"', 1)]
    with pytest.raises(sc.ScenarioError) as info:
        sc.load(path, base)
    assert info.value is not None and info.value.scenario == 'scenario "A"'
