"""Injected network faults (ussd/faults.py): rules, matching, seeds, and where each one bites."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from sim import scenario as sc
from sim.phone import TerminalPhone
from sim.targets import InProcessTarget
from tests.apps.appserver import gateway_for as apps_gateway
from tests.apps.appserver import running
from tests.apps.appserver import screen as app_screen
from tests.conftest import make_config
from ussd import faults
from ussd.clock import SimulatedClock
from ussd.config import ConfigError
from ussd.events import DialogEnded, Event, FaultInjected, Outcome, SmsQueued, SmsState
from ussd.faults import FaultError, Faults, parse_rule
from ussd.runtime import Gateway

RU = "79161234567"
EN = "79161112233"


def gateway_with(*rules: dict[str, Any], seed: int = 0) -> Gateway:
    config = make_config(faults={"seed": seed, "rules": list(rules)})
    return Gateway.create(config, clock=SimulatedClock(), database=":memory:")


def ends(events: list[Event]) -> list[DialogEnded]:
    return [e for e in events if isinstance(e, DialogEnded)]


# -- parsing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "key", "message"),
    [
        ({}, "kind", "expected one of"),
        ({"kind": "meteor"}, "kind", "expected one of"),
        ({"kind": "sms_lost", "colour": 1}, "colour", "unknown key"),
        ({"kind": "sms_lost", "match": []}, "match", "expected a mapping"),
        ({"kind": "sms_lost", "match": {"code": "*100#"}}, "match.code", "not a match key"),
        ({"kind": "smpp_throttle", "rate": 1, "match": {"app": "x"}}, "match.app", "not a match"),
        ({"kind": "sms_lost", "match": {"probability": 0}}, "match.probability", "(0, 1]"),
        ({"kind": "sms_lost", "match": {"probability": 1.5}}, "match.probability", "(0, 1]"),
        ({"kind": "sms_lost", "match": {"probability": True}}, "match.probability", "(0, 1]"),
        ({"kind": "sms_lost", "match": {"every": 0}}, "match.every", "1-1_000_000"),
        ({"kind": "sms_lost", "match": {"every": "2"}}, "match.every", "integer"),
        ({"kind": "sms_lost", "match": {"msisdn": ""}}, "match.msisdn", "pattern"),
        ({"kind": "sms_lost", "match": {"msisdn": "7" * 65}}, "match.msisdn", "pattern"),
        ({"kind": "ussd_network_error", "match": {"code": "*#"}}, "match.code", "service code"),
        ({"kind": "sms_lost", "times": 0}, "times", "integer"),
        ({"kind": "sms_lost", "id": "a b"}, "id", "letters"),
        ({"kind": "sms_lost", "id": ""}, "id", "letters"),
        ({"kind": "sms_lost", "at": "dial"}, "at", "only USSD faults"),
        ({"kind": "dialog_dropped", "at": "hangup"}, "at", "dial or reply"),
        ({"kind": "sms_delayed"}, "delay", "required"),
        ({"kind": "sms_delayed", "delay": "0s"}, "delay", "greater than zero"),
        ({"kind": "sms_delayed", "delay": "2d"}, "delay", ""),
        ({"kind": "sms_delayed", "delay": "soon"}, "delay", ""),
        ({"kind": "sms_lost", "delay": "5s"}, "delay", "only sms_delayed"),
        ({"kind": "smpp_throttle"}, "rate", "required"),
        ({"kind": "smpp_throttle", "rate": -1}, "rate", "required"),
        ({"kind": "smpp_withhold_response", "rate": 5}, "rate", "only smpp_throttle"),
    ],
)
def test_bad_rules_name_their_field(raw: dict[str, Any], key: str, message: str) -> None:
    with pytest.raises(FaultError) as info:
        parse_rule(raw, "f1")
    assert info.value.key == key
    assert message in info.value.message


def test_a_rule_reads_back_as_it_was_written() -> None:
    raw = {
        "id": "lost-pw",
        "kind": "sms_delayed",
        "delay": "1m",
        "times": 2,
        "match": {"msisdn": "+7916*", "probability": 0.5, "every": 3},
    }
    rule = parse_rule(raw, "f9")
    assert rule.to_json() == {
        "id": "lost-pw",
        "kind": "sms_delayed",
        "delay": 60.0,
        "times": 2,
        "match": {"msisdn": "7916*", "probability": 0.5, "every": 3},
    }
    assert parse_rule(rule.to_json(), "x") == rule
    assert parse_rule({"kind": "ussd_network_error", "match": {"code": "*111#"}}, "f1").match.code
    assert parse_rule({"kind": "sms_lost"}, "f7").id == "f7"


def test_config_errors_name_the_rule_and_key() -> None:
    with pytest.raises(ConfigError) as info:
        make_config(faults={"rules": [{"kind": "sms_lost"}, {"kind": "sms_lost", "times": -1}]})
    assert info.value.key == "faults.rules[1].times"
    twice = [{"kind": "sms_lost", "id": "a"}, {"kind": "sms_lost", "id": "a"}]
    with pytest.raises(ConfigError) as info:
        make_config(faults={"rules": twice})
    assert info.value.key == "faults.rules[1].id"
    with pytest.raises(ConfigError) as info:
        make_config(faults={"seed": "x"})
    assert info.value.key == "faults.seed"
    with pytest.raises(ConfigError) as info:
        make_config(faults={"rule": []})
    assert info.value.key == "faults.rule"


# -- matching ---------------------------------------------------------------------------------


def test_every_nth_and_times() -> None:
    f = Faults([parse_rule({"kind": "sms_lost", "match": {"every": 3}, "times": 2}, "f1")])
    fired = [f.sms(RU) is not None for _ in range(12)]
    assert fired == [False, False, True, False, False, True] + [False] * 6


def test_msisdn_globs_and_codes() -> None:
    f = Faults(
        [
            parse_rule({"kind": "sms_lost", "match": {"msisdn": "+7916111*"}}, "a"),
            parse_rule({"kind": "ussd_network_error", "match": {"code": "*111#"}}, "b"),
            parse_rule({"kind": "dialog_dropped", "at": "reply", "match": {"code": "10?"}}, "c"),
        ]
    )
    assert f.sms(EN) is not None and f.sms(RU) is None
    assert f.ussd("dial", RU, "111") is not None
    assert f.ussd("dial", RU, "*111#") is not None
    assert f.ussd("dial", RU, "100") is None
    assert f.ussd("reply", RU, "111") is None  # rule b bites at dial only
    hit = f.ussd("reply", RU, "100")
    assert hit is not None and hit.kind == "dialog_dropped" and hit.rule == "c"
    assert f.app(RU, "*384#", "shop") is None


def test_app_faults_for_the_app_engineers_hook() -> None:
    f = Faults([parse_rule({"kind": "app_timeout", "match": {"app": "shop*"}}, "f1")])
    hit = f.app(RU, "*384#", "shop-ke")
    assert hit is not None and hit.kind == faults.APP_TIMEOUT and hit.at == "app"
    assert f.app(RU, "*384#", "bank") is None


def test_throttle_counts_per_bind_per_second() -> None:
    f = Faults([parse_rule({"kind": "smpp_throttle", "rate": 2}, "f1")])
    first = [f.smpp("harness", 1, 10.2) for _ in range(4)]
    assert [x is None for x in first] == [True, True, False, False]
    assert f.smpp("harness", 2, 10.5) is None  # another bind has its own budget
    assert f.smpp("harness", 1, 11.0) is None  # a new second
    f.forget_bind(1)
    f.forget_bind(2)


def test_add_remove_and_the_admin_view() -> None:
    f = Faults(seed=5)
    rule = f.add_raw({"kind": "sms_lost"})
    assert rule.id == "f1" and f.add_raw({"kind": "sms_lost"}).id == "f2"
    with pytest.raises(FaultError):
        f.add(rule)
    f.sms(RU)
    view = f.to_json()
    assert view["seed"] == 5
    assert [r["fired"] for r in view["rules"]] == [1, 0]
    assert view["injected"] == [{"rule": "f1", "kind": "sms_lost", "at": "sms", "msisdn": RU}]
    assert f.remove("f1") and not f.remove("f1")
    assert f.clear() == 1 and not f


rules_strategy = st.lists(
    st.fixed_dictionaries(
        {
            "kind": st.sampled_from(["sms_lost", "sms_delayed"]),
            "match": st.fixed_dictionaries(
                {
                    "probability": st.floats(0.05, 1.0),
                    "every": st.integers(1, 4),
                }
            ),
        }
    ).map(lambda r: {**r, "delay": "5s"} if r["kind"] == "sms_delayed" else r),
    min_size=1,
    max_size=4,
)


@settings(max_examples=50, deadline=None)
@given(
    raw=rules_strategy,
    seed=st.integers(0, 2**31 - 1),
    numbers=st.lists(st.sampled_from([RU, EN]), max_size=40),
)
def test_the_same_seed_injects_the_same_faults(
    raw: list[dict[str, Any]], seed: int, numbers: list[str]
) -> None:
    def run() -> list[tuple[str, str] | None]:
        f = Faults(faults.parse_rules(raw), seed=seed)
        out = []
        for n in numbers:
            hit = f.sms(n)
            out.append(None if hit is None else (hit.rule, hit.kind))
        return out

    assert run() == run()


def test_another_seed_draws_otherwise() -> None:
    rule = [parse_rule({"kind": "sms_lost", "match": {"probability": 0.5}}, "f1")]

    def draws(seed: int) -> tuple[bool, ...]:
        f = Faults(rule, seed=seed)
        return tuple(f.sms(RU) is not None for _ in range(64))

    assert len({draws(s) for s in range(4)}) == 4
    assert draws(3) == draws(3)


def test_a_rule_without_probability_leaves_the_others_draws_alone() -> None:
    coin = parse_rule({"kind": "sms_lost", "match": {"probability": 0.5, "msisdn": RU}}, "coin")
    other = parse_rule({"kind": "sms_delayed", "delay": "1s", "match": {"msisdn": EN}}, "other")
    alone = Faults([coin], seed=1)
    both = Faults([other, coin], seed=1)
    for _ in range(32):
        both.sms(EN)
        assert (alone.sms(RU) is None) == (both.sms(RU) is None)


# -- where they bite: the engine --------------------------------------------------------------


def test_network_error_at_dial() -> None:
    gw = gateway_with({"kind": "ussd_network_error", "match": {"code": "*100#"}})
    seen: list[Event] = []
    gw.engine.subscribe(seen.append)
    screen = gw.engine.dial(RU, "*100#")
    assert screen.end and screen.text == "Ошибка сети. Запрос не выполнен, попробуйте позже."
    [end] = ends(seen)
    assert end.outcome is Outcome.NETWORK_FAULT
    assert end.record is not None and end.record.cause == "network_fault"
    assert end.record.detail == "fault f1: ussd_network_error at dial"
    assert [e for e in seen if isinstance(e, FaultInjected)] == [
        FaultInjected(RU, "ussd_network_error", "f1", "dial")
    ]
    assert gw.engine.dial(RU, "*111#").end is False  # another code is untouched
    metrics = gw.metrics.render().decode()
    assert 'ussd_faults_injected_total{kind="ussd_network_error"} 1.0' in metrics
    assert 'ussd_dialogs_ended_total{outcome="network_fault"} 1.0' in metrics
    gw.close()


def test_network_error_at_a_reply_ends_the_open_dialog() -> None:
    gw = gateway_with({"kind": "ussd_network_error", "at": "reply", "match": {"msisdn": EN}})
    seen: list[Event] = []
    gw.engine.subscribe(seen.append)
    assert not gw.engine.dial(EN, "*111#").end
    screen = gw.engine.reply(EN, "1")
    assert screen.end and screen.text.startswith("Network error.")
    assert gw.engine.dialog(EN) is None
    assert [e.outcome for e in ends(seen)] == [Outcome.NETWORK_FAULT]
    gw.close()


@pytest.mark.parametrize("at", ["dial", "reply"])
def test_a_dropped_dialog_times_out_silently(at: str) -> None:
    gw = gateway_with({"kind": "dialog_dropped", "at": at})
    seen: list[Event] = []
    gw.engine.subscribe(seen.append)
    first = gw.engine.dial(RU, "*111#")
    assert not first.end
    gw.advance(10)
    again = gw.engine.reply(RU, "1")  # the answer vanishes: the same screen stays
    assert again == first
    assert not ends(seen)
    gw.advance(29.999)
    assert gw.engine.dialog(RU) is not None
    gw.advance(0.001)  # the handset's timer runs from its last answer
    [end] = ends(seen)
    assert end.outcome is Outcome.NETWORK_FAULT
    assert end.screen is not None and end.screen.text == "Время ожидания ответа истекло."
    assert end.record is not None and end.record.cause == "network_fault"
    assert end.record.detail == f"fault f1: dialog_dropped at {at}"
    gw.close()


# -- where they bite: the SMS centre ----------------------------------------------------------


def test_a_lost_sms_never_reaches_the_inbox() -> None:
    gw = gateway_with({"kind": "sms_lost", "times": 1})
    seen: list[Event] = []
    gw.engine.subscribe(seen.append)
    lost = gw.sms.send(RU, "first")
    assert lost.id == 0 and lost.state is SmsState.EXPIRED
    kept = gw.sms.send(RU, "second")
    assert [s.text for s in gw.sms.inbox(RU)] == ["second"] and kept.id > 0
    assert [e.sms.text for e in seen if isinstance(e, SmsQueued)] == ["second"]
    assert FaultInjected(RU, "sms_lost", "f1", "sms") in seen
    gw.close()


def test_a_delayed_sms_arrives_after_its_delay() -> None:
    gw = gateway_with({"kind": "sms_delayed", "delay": "45s", "match": {"msisdn": RU}})
    start = gw.clock.now()
    gw.sms.send(RU, "late")
    gw.sms.send(EN, "on time")
    assert gw.sms.inbox(RU) == [] and len(gw.sms.inbox(EN)) == 1
    assert gw.next_deadline() == start + 45
    gw.advance(44)
    assert gw.sms.inbox(RU) == []
    gw.advance(1)
    [sms] = gw.sms.inbox(RU)
    assert sms.text == "late" and sms.created == start + 45
    gw.close()


def test_the_password_service_sms_can_be_lost() -> None:
    gw = gateway_with({"kind": "sms_lost"})
    gw.engine.dial(RU, "*111*17#")
    gw.engine.reply(RU, "secret12")
    gw.engine.reply(RU, "secret12")
    assert gw.sms.inbox(RU) == []
    assert gw.faults.counts["sms_lost"] == 1
    gw.close()


# -- scenario files ---------------------------------------------------------------------------


def _scenario(extra: str) -> str:
    return f"name: s\nsubscribers: [{{msisdn: '79161234567'}}]\n{extra}steps:\n  - dial: '*100#'\n"


def test_scenario_faults_become_the_worlds_rules() -> None:
    (listed,) = sc.loads(_scenario("faults: [{kind: sms_lost, times: 1}]\n"))
    assert [r.to_json() for r in listed.config.faults.rules] == [
        {"id": "f1", "kind": "sms_lost", "match": {}, "times": 1}
    ]
    (seeded,) = sc.loads(_scenario("faults: {seed: 7, rules: [{kind: sms_lost}]}\n"))
    assert seeded.config.faults.seed == 7 and len(seeded.config.faults.rules) == 1


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("faults: [{kind: quake}]\n", "faults.rules[0].kind: expected one of"),
        ("faults: {seed: x}\n", "faults.seed"),
        ("faults: [{kind: sms_lost}]\nconfig: {faults: {seed: 1}}\n", "not both"),
        ("config: {faults: {rules: [{kind: sms_lost, at: dial}]}}\n", "config.faults.rules[0].at"),
    ],
)
def test_bad_scenario_faults_name_their_key(extra: str, message: str) -> None:
    with pytest.raises(sc.ScenarioError) as info:
        sc.loads(_scenario(extra))
    assert message in str(info.value)


def test_fault_steps_are_checked_when_loaded() -> None:
    text = _scenario("").replace(
        "  - dial: '*100#'\n",
        "  - fault: {kind: dialog_dropped, at: reply}\n"
        "  - fault: {clear: true}\n"
        "  - dial: '*100#'\n",
    )
    (scenario,) = sc.loads(text)
    assert [s.action for s in scenario.steps[:2]] == [
        sc.Fault({"kind": "dialog_dropped", "at": "reply"}),
        sc.Fault(None),
    ]
    for bad, message in [
        ("{kind: sms_delayed}", "step 1: fault: delay: required"),
        ("{clear: false}", "step 1: fault: clear: unknown key"),
        ("[]", "step 1: fault: expected a mapping"),
    ]:
        with pytest.raises(sc.ScenarioError) as info:
            sc.loads(_scenario("").replace("  - dial: '*100#'\n", f"  - fault: {bad}\n"))
        assert message in str(info.value)


async def test_a_fault_step_in_process() -> None:
    target = InProcessTarget()
    (scenario,) = sc.loads(_scenario(""))
    await target.setup(scenario)
    added = await target.fault({"kind": "sms_lost"})
    assert added.status == 201 and added.data["id"] == "f1"
    refused = await target.fault({"kind": "sms_lost", "id": "f1"})
    assert (refused.status, refused.error) == (400, "bad_field")
    cleared = await target.fault(None)
    assert cleared.data == {"removed": 1}
    await target.close()


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_a_gateway_run_repeats_with_its_seed(seed: int) -> None:
    rules = (
        {"kind": "ussd_network_error", "match": {"probability": 0.3}},
        {"kind": "dialog_dropped", "at": "reply", "match": {"probability": 0.3}},
        {"kind": "sms_lost", "match": {"probability": 0.5}},
    )

    def run() -> list[object]:
        gw = gateway_with(*rules, seed=seed)
        seen: list[Event] = []
        gw.engine.subscribe(seen.append)
        for msisdn in (RU, EN) * 4:
            if not gw.engine.dial(msisdn, "*111#").end:
                gw.engine.reply(msisdn, "1")
            gw.sms.send(msisdn, "x")
        gw.advance(60)
        gw.close()
        return [
            (e.kind, e.rule, e.at) if isinstance(e, FaultInjected) else e.outcome
            for e in seen
            if isinstance(e, FaultInjected | DialogEnded)
        ]

    first = run()
    assert run() == first


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=20,
)
rule_like = st.fixed_dictionaries(
    {"kind": st.sampled_from(faults.KINDS)},
    optional={
        "match": st.dictionaries(
            st.sampled_from(["msisdn", "code", "app", "system_id", "every", "probability", "x"]),
            json_values,
            max_size=4,
        ),
        "times": json_values,
        "at": json_values,
        "delay": json_values,
        "rate": json_values,
        "id": json_values,
    },
)


@settings(max_examples=150, deadline=None)
@given(raw=json_values | rule_like)
def test_any_json_is_a_rule_or_a_clear_error(raw: object) -> None:
    try:
        rule = parse_rule(raw, "f1")
    except FaultError as exc:
        error: FaultError | None = exc
    else:
        error = None
        assert parse_rule(rule.to_json(), "other") == rule  # what the API shows reads back
    if error is not None:
        assert error.message and len(str(error)) < 600  # bounded, whatever came in


# -- where they bite: applications over HTTP (docs/apps.md) ----------------------------------


async def test_app_faults_keep_the_app_unasked() -> None:
    async with (
        running(lambda seen: app_screen("Shop")) as srv,
        apps_gateway(srv.url, timeout="5s") as gw,
    ):
        seen: list[Event] = []
        gw.engine.subscribe(seen.append)
        waiting = asyncio.Event()  # the performer took the app_timeout fault
        gw.engine.subscribe(
            lambda e: (
                waiting.set() if isinstance(e, FaultInjected) and e.kind == "app_timeout" else None
            )
        )
        gw.faults.add_raw({"kind": "app_error", "times": 1, "match": {"app": "shop"}})
        failed = await gw.dial(RU, "*384#")
        assert failed.end and failed.text == "Ошибка сервиса. Попробуйте позже."

        gw.faults.add_raw({"kind": "app_timeout", "times": 1, "match": {"code": "*384#"}})
        dial = asyncio.create_task(gw.dial(RU, "*384#"))
        await waiting.wait()
        gw.advance(5)  # the app's timeout: the effect's deadline ends the wait
        timed_out = await dial
        assert timed_out.end and timed_out.text == "Сервис временно недоступен. Попробуйте позже."

        assert (await gw.dial(RU, "*384#")).text == "Shop"  # both rules are spent
        assert [e.outcome for e in ends(seen)] == [Outcome.APP_ERROR, Outcome.APP_TIMEOUT]
        assert [(e.kind, e.at) for e in seen if isinstance(e, FaultInjected)] == [
            ("app_error", "app"),
            ("app_timeout", "app"),
        ]
        assert len(srv.seen) == 1  # only the last dial asked the app


def test_the_terminal_phone_prints_faults() -> None:
    with create_pipe_input() as pipe:
        phone = TerminalPhone(cast(Any, None), RU, input=pipe, output=DummyOutput())
        said: list[str] = []
        phone.say = lambda fragments: said.append("".join(t for _, t in fragments))  # type: ignore[method-assign]
        phone.on_event({"type": "fault", "kind": "sms_lost", "rule": "f1", "at": "sms"})
        phone.on_event({"type": "end", "session": "s", "outcome": "network_fault", "screen": None})
    assert said == [
        "[network fault: sms_lost, rule f1]\n",
        "[dialog ended by an injected network fault]\n",
    ]
