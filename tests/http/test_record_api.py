"""`POST/DELETE /api/v1/phones/{msisdn}/record`."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from sim import runner
from sim import scenario as sc
from sim.targets import InProcessTarget
from tests.http.conftest import EN, RU, Client
from ussd.runtime import Gateway

RECORD = f"/api/v1/phones/{RU}/record"


async def _stop(http: Client, path: str = RECORD) -> tuple[int, str, Any]:
    async with http.session.delete(path) as r:
        return r.status, r.headers.get("Content-Type", ""), await r.text()


async def test_a_recorded_session_replays_green(
    http: Client, started: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert await http.post(RECORD, {"name": "Balance and password"}) == (
        201,
        {"msisdn": RU, "recording": True, "name": "Balance and password", "steps": 0},
    )
    await http.dial(RU, "*111#")  # paged: page numbers are recorded
    await http.reply(RU, "98")
    await http.post(f"/api/v1/phones/{RU}/release")
    await http.post(f"/api/v1/phones/{RU}/release")  # nothing open: not a step
    await http.dial(RU, "*#06#")  # handset-local: not a step
    status, _ = await http.reply(RU, "1")  # 409 no_dialog: errors are not recorded
    assert status == 409
    await http.dial(EN, "*100#")  # another number: not this recording
    started.sms.send(EN, "not for this phone")
    await http.dial(RU, "*111*17#")
    await http.reply(RU, "secret12")
    await http.reply(RU, "secret12")  # the SMS notice follows this step
    await http.dial(RU, "*111*17#")
    started.advance(started.config.ussd.reply_timeout + 1)  # wait_timeout
    assert (await http.post(RECORD))[0] == 200  # joins the running recording

    status, content_type, text = await _stop(http)
    assert status == 200 and content_type.startswith("text/yaml")
    data = yaml.safe_load(text)
    assert data["name"] == "Balance and password"
    assert [s["msisdn"] for s in data["subscribers"]] == [RU]
    assert data["subscribers"][0]["balance"] == 120.5  # the data when recording started
    kinds = [next(k for k in step if k not in ("as", "expect")) for step in data["steps"]]
    assert kinds == [
        "dial", "reply", "release", "dial", "reply", "reply", "sms", "dial", "wait_timeout",
    ]  # fmt: skip
    assert data["steps"][0]["expect"]["pages"] == 3
    # Passwords are never in a recording: a placeholder read from the environment at run time.
    assert "secret12" not in text
    assert [s["reply"] for s in data["steps"][4:6]] == ["${password}", "${password}"]
    assert data["vars"] == {"password": {"env": "USSD_SIM_PASSWORD"}}
    assert "USSD_SIM_PASSWORD" in text.splitlines()[1]  # the header says how to run it
    monkeypatch.setenv("USSD_SIM_PASSWORD", "secret12")

    (scenario,) = sc.loads(text, "recorded.yaml")
    result = await runner.run_async(scenario, InProcessTarget())
    assert result.passed, runner.format_failure(result)


async def test_stop_without_a_recording_is_404(http: Client) -> None:
    status, _, text = await _stop(http)
    assert status == 404 and '"not_recording"' in text
    status, _, text = await _stop(http, "/api/v1/phones/12/record")
    assert status == 400 and '"bad_msisdn"' in text


async def test_start_checks_its_input(http: Client) -> None:
    assert (await http.post(RECORD, {"name": 5}))[1]["error"]["code"] == "bad_field"
    assert (await http.post(RECORD, {"name": "x" * 201}))[1]["error"]["code"] == "bad_field"
    assert (await http.post("/api/v1/phones/12/record"))[1]["error"]["code"] == "bad_msisdn"
    # Nothing was started by the refused requests.
    assert (await _stop(http))[0] == 404


async def test_a_stopped_recording_hears_nothing_more(http: Client, started: Gateway) -> None:
    await http.post(RECORD)
    await http.dial(RU, "*100#")
    first = (await _stop(http))[2]
    await http.post(RECORD)
    started.sms.send(RU, "after the restart")
    second = yaml.safe_load((await _stop(http))[2])
    assert "*100#" in first
    assert [step["sms"]["text"] for step in second["steps"]] == ["after the restart"]


async def test_a_recording_started_at_a_password_prompt_keeps_no_password(
    http: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The prompt was shown before recording began: the dialog's own state says it is secret.
    await http.dial(RU, "*111*17#")
    await http.post(RECORD)
    await http.reply(RU, "Abc12345")
    await http.reply(RU, "Abc12345")
    status, _, text = await _stop(http)
    assert status == 200 and "Abc12345" not in text
    data = yaml.safe_load(text)
    assert [s.get("reply") for s in data["steps"]] == ["${password}", "${password}", None]
