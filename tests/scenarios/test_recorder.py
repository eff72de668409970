"""Recording: a live in-process session becomes a scenario file that replays green."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from sim import runner
from sim import scenario as sc
from sim.recorder import Recorder, exact, is_paging
from tests.conftest import make_config
from ussd.clock import SimulatedClock
from ussd.runtime import Gateway

RU = "79161234567"
EN = "79161112233"


def test_a_recorded_session_replays_green(
    tmp_path: Path, base: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
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
    # The password typed at both prompts is a placeholder the scenario reads from the
    # environment; "ab" (too short, refused) was typed at a password prompt too.
    assert "secret12" not in path.read_text(encoding="utf-8")
    replies = [s.get("reply") for s in data["steps"][5:8]]
    assert replies == ["${password}", "${password2}", "${password2}"]
    assert data["vars"] == {
        "password": {"env": "USSD_SIM_PASSWORD"},
        "password2": {"env": "USSD_SIM_PASSWORD2"},
    }
    monkeypatch.delenv("USSD_SIM_PASSWORD", raising=False)
    with pytest.raises(sc.ScenarioError, match="USSD_SIM_PASSWORD is not set"):
        sc.load(path, base)
    monkeypatch.setenv("USSD_SIM_PASSWORD", "ab")
    monkeypatch.setenv("USSD_SIM_PASSWORD2", "secret12")

    (scenario,) = sc.load(path, base)
    assert "secret12" not in " ".join(step.source for step in scenario.steps)
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


def _world() -> Gateway:
    return Gateway.create(make_config(), clock=SimulatedClock(), database=":memory:")


def test_a_typed_password_in_a_later_sms_or_screen_is_a_placeholder() -> None:
    rec = Recorder("Echo")
    rec.dial(RU, "*111*17#", {"text": "Введите пароль:", "end": False, "secret": True})
    rec.reply(RU, "Qwerty12", {"text": "Ещё раз:", "end": False, "secret": True})
    rec.reply(RU, "Qwerty12", {"text": "Пароль Qwerty12 установлен.", "end": True})
    rec.sms(RU, "Ваш пароль: Qwerty12. ${HOME} не подставляется.")
    text = rec.dumps()
    assert "Qwerty12" not in text
    data = rec.to_data()
    assert [step.get("reply") for step in data["steps"][1:3]] == ["${password}"] * 2
    assert data["steps"][2]["expect"]["text"] == "Пароль ${password} установлен."
    assert data["steps"][3]["sms"]["text"] == "Ваш пароль: ${password}. $${HOME} не подставляется."


def test_paging_at_a_password_prompt_is_not_a_secret() -> None:
    assert is_paging("98", 1, 2) and is_paging("0", 2, 2)
    assert not is_paging("98", 2, 2) and not is_paging("0", 1, 2) and not is_paging("1", 1, 2)
    rec = Recorder("Paged prompt")
    rec.dial(
        RU, "*1#", {"text": "long prompt", "end": False, "secret": True, "page": 1, "pages": 2}
    )
    rec.reply(RU, "98", {"text": "rest", "end": False, "secret": True, "page": 2, "pages": 2})
    rec.reply(RU, "98", {"text": "ok", "end": True})  # on the last page: that is the answer
    assert [step.get("reply") for step in rec.to_data()["steps"][1:]] == ["98", "${password}"]


def test_a_generated_password_by_sms_is_not_recorded(tmp_path: Path, base: dict[str, Any]) -> None:
    gw = _world()
    rec = Recorder("SMS password")
    detach = rec.attach(gw, RU)
    gw.accounts.send_sms_password(RU)
    detach()
    (sms,) = gw.sms.inbox(RU)
    password = re.search(r": (\S+)\.", sms.text)
    assert password is not None
    gw.engine.shutdown()
    gw.store.close()
    text = rec.dumps()
    assert password.group(1) not in text
    (step,) = rec.to_data()["steps"]
    assert sc.matcher(step["sms"]["text"]).matches(sms.text)
    assert not sc.matcher(step["sms"]["text"]).matches(sms.text.replace(": ", ": x "))


def test_a_seed_password_is_a_placeholder_too(
    tmp_path: Path, base: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    rec = Recorder("Seeded", subscribers=[{"msisdn": RU, "password": "Seed1234"}])
    rec.dial(RU, "*100#", {"text": "Ваш баланс: 0.00 руб.", "end": True})
    path = rec.save(tmp_path / "seeded.yaml")
    assert "Seed1234" not in path.read_text(encoding="utf-8")
    assert rec.to_data()["subscribers"][0]["password"] == "${password}"
    monkeypatch.setenv("USSD_SIM_PASSWORD", "Seed1234")
    (scenario,) = sc.load(path, base)
    assert scenario.subscribers[0]["password"] == "Seed1234"  # live targets create it so
    result = runner.run_scenario(scenario)
    assert result.passed, runner.format_failure(result)
