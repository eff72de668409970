"""`web:` and `app:` steps (docs/scenarios.md "The website and the app"): the loader's errors,
`expect: {json}`, the SMS password as a subscriber reads it. The shipped website and app
scenarios run in-process (test_shipped.py) and against a running gateway (test_targets.py)."""

from __future__ import annotations

import textwrap
from typing import Any

import aiohttp
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from sim import runner, web
from sim import scenario as sc
from sim.browser import sms_password_pattern
from sim.targets import CombinedTarget, HttpTarget, InProcessTarget, SmppTarget, SmsView
from tests.scenarios.conftest import SHIPPED
from ussd.menus import Texts

HEAD = """\
name: Web
subscribers: [{msisdn: "79161234567"}, {msisdn: "79161112233"}]
steps:
"""
WHERE = 'bad.yaml: scenario "Web": step 1'


def load(text: str, base: dict[str, Any]) -> tuple[sc.Scenario, ...]:
    return sc.loads(HEAD + textwrap.indent(textwrap.dedent(text), "  "), "bad.yaml", base)


BAD = [
    ("- web: sign_in\n", "web: expected one operation, {OP: ARGS}, of: sms_password, sign_in"),
    ("- web: {sign_in: {}, account: true}\n", "web: expected one operation"),
    ("- web: {log_in: {}}\n", "web: unknown operation 'log_in' (one of: sms_password"),
    ("- app: {sign_in: {password: x}}\n", "app: unknown operation 'sign_in' (one of: set_pass"),
    ("- web: {sign_in: {}}\n", "web: sign_in: give exactly one of password or from_sms"),
    (
        '- web: {sign_in: {password: "a", from_sms: true}}\n',
        "web: sign_in: give exactly one of password or from_sms",
    ),
    ("- web: {sign_in: {from_sms: false}}\n", "web: sign_in: from_sms: only true makes sense"),
    ("- web: {sign_in: {password: 1234}}\n", "web: sign_in: password: expected a string, got 1234"),
    (
        '- web: {sign_in: {pasword: "x"}}\n',
        "web: sign_in: unknown key 'pasword' (allowed: msisdn, password, from_sms)",
    ),
    (
        '- web: {sign_in: {msisdn: "79990000000", password: "x"}}\n',
        "web: sign_in: msisdn: 79990000000 is not one of the scenario's subscribers",
    ),
    ("- web: {account: 5}\n", "web: account: expected a mapping of arguments or true, got 5"),
    ("- web: {account: {x: 1}}\n", "web: account: unknown key 'x' (allowed: none)"),
    ("- web: {social: {provider: vk}}\n", "web: social: login: required"),
    (
        '- web: {social: {provider: vk, login: a, consent: "no"}}\n',
        "web: social: consent: expected true or false, got 'no'",
    ),
    ("- app: {services: {name: roaming}}\n", "app: services: on: required"),
    ("- app: {spending: {from: 20260501}}\n", "app: spending: from: expected a string"),
    (
        "- app: {account: true}\n  expect: {text: x}\n",
        "expect: 'text' makes no sense for a app step (allowed: balance, error, json, linked",
    ),
    ("- app: {account: true}\n  expect: {json: []}\n", "expect: json: expected a mapping"),
    (
        '- app: {account: true}\n  expect: {json: {"a..b": 1}}\n',
        "expect: json: bad path 'a..b' (keys and indexes with dots)",
    ),
    (
        '- app: {account: true}\n  expect: {json: {a: "/(/"}}\n',
        "expect: json: a: bad regex: missing ), unterminated subpattern",
    ),
    (
        '- app: {account: true}\n  expect: {json: {a: "/x/q"}}\n',
        "expect: json: a: flags are among i, m, s",
    ),
]


@pytest.mark.parametrize(("text", "message"), BAD, ids=[m[:40] for _, m in BAD])
def test_bad_steps_name_the_problem(text: str, message: str, base: dict[str, Any]) -> None:
    with pytest.raises(sc.ScenarioError) as exc:
        load(text, base)
    assert str(exc.value).startswith(f"{WHERE}: {message}"), str(exc.value)


def test_good_steps_load(base: dict[str, Any]) -> None:
    (scenario,) = load(
        """\
        - web: {sign_in: {password: "abcd"}}
        - web: {account: true}
          expect: {json: {"numbers.0.seconds_left": 0, msisdn: "/^7916/"}, linked: []}
        - app: {spending: {from: 2026-05-01, to: "2026-05-31"}}
        - app: {switch: {msisdn: "79161112233"}}
          as: "79161112233"
        - web: {sign_out: null}
        """,
        base,
    )
    actions = [s.action for s in scenario.steps]
    assert actions[0] == web.WebAction("web", "sign_in", {"password": "abcd"})
    assert actions[2] == web.WebAction(
        "app", "spending", {"from": "2026-05-01", "to": "2026-05-31"}
    )
    assert [s.kind for s in scenario.steps] == ["web", "web", "app", "app", "web"]
    expect = scenario.steps[1].expect
    assert expect is not None and expect.json is not None and expect.linked == ()


# -- expect: {json} -----------------------------------------------------------------------------

DATA = {
    "msisdn": "79161234567",
    "balance": 2000,
    "ok": True,
    "none": None,
    "numbers": [{"state": "pending", "seconds_left": 86400}, {"state": "active"}],
    "social": [],
    "paid": {"seq": 2, "amount": 2000.0},
}


@pytest.mark.parametrize(
    ("path", "expected", "fails"),
    [
        ("msisdn", "79161234567", False),
        ("msisdn", "7916", True),  # a plain string is compared whole
        ("msisdn", "/^7916/", False),
        ("msisdn", "/^7917/", True),
        ("balance", 2000.0, False),
        ("balance", 2000.01, True),
        ("ok", True, False),
        ("ok", 1, True),  # true is not 1
        ("balance", True, True),
        ("none", None, False),
        ("numbers.0.state", "pending", False),
        ("numbers.1.state", "pending", True),
        ("numbers.-1.state", "active", False),
        ("numbers.2.state", "active", True),  # out of range: missing
        ("numbers.#", 2, False),
        ("social.#", 0, False),
        ("social", [], False),
        ("paid", {"seq": 2, "amount": 2000}, False),
        ("paid.#", 2, False),
        ("paid.seq.x", 2, True),
        ("nothing", None, True),  # missing is not null
    ],
)
def test_json_paths(path: str, expected: Any, fails: bool) -> None:
    pairs = web.json_expect({path: expected})
    found = web.check_json(DATA, pairs)
    assert bool(found) is fails, found
    if fails:
        assert found[0][0] == f"json {path}"


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(), st.lists, max_leaves=8))
def test_a_value_always_matches_itself(value: Any) -> None:
    pairs = web.json_expect({"v": value}) if not _regex(value) else ()
    assert web.check_json({"v": value}, pairs) == []


def _regex(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("/") and value.rfind("/") > 0


# -- the SMS password as the subscriber reads it --------------------------------------------------


@pytest.mark.parametrize("language", ["ru", "en"])
def test_the_generated_password_is_read_from_the_sms(language: str) -> None:
    texts = Texts.load()
    text = texts.get("account.sms_password", language, password="Ab3dEf9h")
    found = sms_password_pattern(texts).search(SmsView("MTS", text).text)
    assert found is not None and "Ab3dEf9h" in found.groups()
    other = texts.get("account.password_changed", language)
    assert sms_password_pattern(texts).search(other) is None


def test_from_sms_without_an_sms_is_a_clear_failure(base: dict[str, Any]) -> None:
    (scenario,) = load("- web: {sign_in: {from_sms: true}}\n", base)
    result = runner.run_scenario(scenario)
    assert not result.passed and result.failure is not None
    assert result.failure.mismatches[0].actual.startswith("false (404 no_sms_password")


def test_social_bind_without_a_social_sign_in(base: dict[str, Any]) -> None:
    (scenario,) = load(
        '- web: {social_bind: {password: "abcd"}}\n  expect: {status: 409, error: no_ticket}\n',
        base,
    )
    assert runner.run_scenario(scenario).passed


# -- targets ------------------------------------------------------------------------------------


async def test_smpp_target_says_web_steps_need_http(base: dict[str, Any]) -> None:
    (scenario,) = load("- web: {account: true}\n", base)
    target = SmppTarget("127.0.0.1", 9, "harness", "secret")
    result = await target.web_url()
    assert not isinstance(result, str) and result.error == "needs_http"
    assert scenario.steps[0].kind == "web"


def test_the_lost_sms_scenario_needs_its_fault(base: dict[str, Any]) -> None:
    """Without the sms_lost rule the first SMS arrives, and the shipped scenario says so."""
    items = yaml.safe_load((SHIPPED / "lk_website.yaml").read_text(encoding="utf-8"))
    (lost,) = [i for i in items if "faults" in i]
    assert lost["faults"][0]["kind"] == "sms_lost"
    del lost["faults"]
    (scenario,) = sc.loads(yaml.safe_dump(lost, allow_unicode=True), "lost.yaml", base)
    result = runner.run_scenario(scenario)
    assert not result.passed and result.failure is not None
    assert result.failure.step == 2 and result.failure.mismatches[0].field == "sms"


async def test_in_process_serves_one_http_api_per_world(base: dict[str, Any]) -> None:
    (scenario,) = load("- web: {account: true}\n", base)
    target = InProcessTarget()
    await target.setup(scenario)
    url = await target.web_url()
    assert isinstance(url, str) and url.startswith("http://127.0.0.1:")
    assert await target.web_url() == url  # started once, for the scenario's first page step
    async with aiohttp.ClientSession() as http, http.get(url + "/healthz") as r:
        assert r.status == 200
    await target.close()
    with pytest.raises(aiohttp.ClientConnectionError):
        async with aiohttp.ClientSession() as http, http.get(url + "/healthz"):
            pass


async def test_combined_target_sends_page_steps_over_http() -> None:
    http = HttpTarget("http://127.0.0.1:8080/", "token")
    combined = CombinedTarget(SmppTarget("127.0.0.1", 2775, "harness", "secret"), http)
    assert await combined.web_url() == "http://127.0.0.1:8080"


_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
    | st.sampled_from(["79161234567", "79990000000", "2026-05-01", "/(/", "/x/i"]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from([*web.WEB_OPS, *web.APP_OPS, "msisdn", "password", "from_sms", "x"])
            | st.integers(),
            inner,
            max_size=3,
        )
    ),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(surface=st.sampled_from(["web", "app"]), value=_VALUES, expect=_VALUES)
def test_any_page_step_loads_or_says_why(
    surface: str, value: Any, expect: Any, base: dict[str, Any]
) -> None:
    step: dict[str, Any] = {surface: value}
    if expect is not None:
        step["expect"] = {"json": expect}
    text = yaml.safe_dump({"name": "Web", "subscribers": [{"msisdn": "79161234567"}]})
    data = yaml.safe_load(text)
    data["steps"] = [step]
    problem = ""
    try:
        sc.loads(yaml.safe_dump(data, allow_unicode=True), "any.yaml", base)
    except sc.ScenarioError as exc:
        problem = str(exc)
    assert not problem or problem.startswith('any.yaml: scenario "Web": step 1: '), problem
