"""Recording (SPEC §8): a live in-process session becomes a scenario file that replays green."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sim import runner
from sim import scenario as sc
from sim.recorder import Recorder, exact
from tests.conftest import make_config
from ussd.clock import SimulatedClock
from ussd.runtime import Gateway

RU = "79161234567"
EN = "79161112233"


def test_a_recorded_session_replays_green(tmp_path: Path, base: dict[str, Any]) -> None:
    gw = Gateway.create(make_config(), clock=SimulatedClock(), database=":memory:")
    rec = Recorder("Recorded: password and menu")
    detach = rec.attach(gw)
    e = gw.engine

    def dial(msisdn: str, text: str) -> None:
        rec.dial(msisdn, text, e.dial(msisdn, text).to_json())

    def reply(msisdn: str, text: str) -> None:
        rec.reply(msisdn, text, e.reply(msisdn, text))

    dial(RU, "*111#")  # paged Russian menu: page numbers are recorded
    reply(RU, "98")
    reply(RU, "0")
    reply(RU, "1")  # balance from the seeded subscriber data
    dial(RU, "*111*17#")
    reply(RU, "ab")
    reply(RU, "secret12")
    reply(RU, "secret12")  # an SMS notice follows this step
    dial(EN, "*111*828*1#")  # a second number: `as:` and its own data
    dial(EN, "*111*17#")
    gw.advance(30)  # the reply timeout: recorded as wait_timeout
    dial(RU, "*99#")
    rec.release(RU)
    detach()
    gw.engine.shutdown()
    gw.store.close()

    path = rec.save(tmp_path / "recorded.yaml")
    data = rec.to_data()
    assert [s["msisdn"] for s in data["subscribers"]] == [RU, EN]
    assert data["subscribers"][0]["balance"] == 120.5
    kinds = [next(k for k in step if k not in ("as", "expect")) for step in data["steps"]]
    assert kinds == [
        "dial", "reply", "reply", "reply", "dial", "reply", "reply", "reply", "sms",
        "dial", "sms", "dial", "wait_timeout", "dial", "release",
    ]  # fmt: skip
    assert data["steps"][0]["expect"] == {
        "continue": True,
        "page": 1,
        "pages": 3,
        "text": "Мой МТС\n1. Баланс\n2. Пароль Личного кабинета\n3. Управление номерами\n98. Далее",
    }
    assert data["steps"][9]["as"] == EN

    (scenario,) = sc.load(path, base)
    result = runner.run_scenario(scenario)
    assert result.passed, runner.format_failure(result)
    assert result.ran == len(kinds)


def test_recording_from_a_handset_without_a_gateway(tmp_path: Path, base: dict[str, Any]) -> None:
    # What a phone on the HTTP API does: hand over the §6 screen JSON and the SMS it saw.
    rec = Recorder(
        "From a phone", subscribers=[{"msisdn": RU, "balance": 5, "has_password": False}]
    )
    rec.dial(RU, "*#06#", {"session": None, "text": "IMEI", "end": True, "local": True})
    rec.dial(RU, "*111*828*1#", {"text": "Услуга «Управление номерами» подключена.", "end": True})
    rec.sms(RU, "Услуга «Управление номерами» подключена.", sender="MTS")
    rec.dial(RU, "*100#", {"text": "Ваш баланс: 5.00 руб.", "end": True, "page": 1, "pages": 1})
    path = rec.save(tmp_path / "phone.yaml")
    (scenario,) = sc.load(path, base)
    assert [s.kind for s in scenario.steps] == ["dial", "sms", "dial"]
    result = runner.run_scenario(scenario)
    assert result.passed, runner.format_failure(result)


def test_exact_keeps_slashes_literal() -> None:
    text = "/not a regex/ really"
    assert sc.matcher(exact(text)).matches(text)
    assert not sc.matcher(exact(text)).matches("x" + text)
    assert exact("plain") == "plain"
