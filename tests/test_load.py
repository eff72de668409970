"""`ussd-sim load` (SPEC §9, §11): counts, errors by kind, JSON, the null SMSC, CLI errors.

Runs are short (1–1.5 s) against an in-process gateway and its SMPP server on 127.0.0.1:0;
no test asserts a rate or a latency (SPEC §11: figures come from `make bench`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bench.peer import bare_smsc, null_smsc
from sim import load
from sim.scenario import load as load_scenarios
from tests.conftest import make_config
from ussd import cli
from ussd.clock import SimulatedClock
from ussd.runtime import Gateway
from ussd.smpp.server import SmppServer

BALANCE = """
name: Balance
subscribers: [{msisdn: "79161234567"}]
steps:
  - dial: "*100#"
    expect: {end: true, text: "/баланс/i"}
"""
MENU = """
name: Number management status through the menu
subscribers: [{msisdn: "79161234567"}]
steps:
  - dial: "*111#"
    expect: {continue: true}
  - reply: "3"
    expect: {continue: true}
  - reply: "3"
    expect: {end: true}
"""
WRONG = """
name: Balance is not a menu
subscribers: [{msisdn: "79161234567"}]
steps:
  - dial: "*100#"
    expect: {continue: true}
"""
LOCAL = """
name: IMEI never reaches the network
subscribers: [{msisdn: "79161234567"}]
steps:
  - dial: "*#06#"
"""


@pytest.fixture
async def gateway_port() -> AsyncIterator[int]:
    gw = Gateway.create(make_config(), clock=SimulatedClock(), database=":memory:")
    server = SmppServer(gw)
    _, port = await server.start("127.0.0.1", 0)
    yield port
    await server.stop()
    gw.engine.shutdown()
    gw.store.close()


def scenario_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "journey.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def options(port: int, journey: tuple[load.JourneyStep, ...], **kw: object) -> load.LoadOptions:
    values: dict[str, object] = {
        "target": load.SmppAddress("127.0.0.1", port, "harness", "secret"),
        "journey": journey,
        "duration": 1.0,
        "binds": 2,
        "subscribers": 50,
        "timeout": 5.0,
    }
    values.update(kw)
    return load.LoadOptions(**values)  # type: ignore[arg-type]


def journey(tmp_path: Path, text: str) -> tuple[load.JourneyStep, ...]:
    return load.journey_from_scenario(load_scenarios(scenario_file(tmp_path, text))[0])


def cli_args(port: int, *extra: str, password: str = "secret") -> list[str]:
    return ["load", "--target", f"smpp://harness:{password}@127.0.0.1:{port}", *extra]


# -- journeys from scenario files -------------------------------------------------------------


def test_journey_takes_dial_reply_release_and_expectations(tmp_path: Path) -> None:
    steps = journey(tmp_path, MENU)
    assert [(s.kind, s.text, s.label, s.expect_end) for s in steps] == [
        ("dial", "*111#", "dial", False),
        ("reply", "3", "reply #1", False),
        ("reply", "3", "reply #2", True),
    ]
    assert all(s.waits_for_screen for s in steps)


# -- against the gateway ------------------------------------------------------------------------


async def test_balance_closed_model_counts_every_step(gateway_port: int, tmp_path: Path) -> None:
    report = await load.run_load(options(gateway_port, journey(tmp_path, BALANCE), concurrency=4))
    assert report.errors == {}
    assert report.steps > 0
    assert report.journeys == report.steps
    assert report.latency["dial"]["count"] == report.steps
    assert report.latency["dial"]["p50"] <= report.latency["dial"]["max"]


async def test_menu_open_model_counts_match_the_schedule(gateway_port: int, tmp_path: Path) -> None:
    # 50 steps/s of a 3-step journey for 1.5 s: arrivals at 0, 60, …, 1440 ms: 25 journeys.
    report = await load.run_load(
        options(gateway_port, journey(tmp_path, MENU), rate=50.0, duration=1.5)
    )
    assert report.errors == {}
    assert report.journeys == 25
    assert report.offered == 75
    assert report.steps == 75
    assert [int(report.latency[k]["count"]) for k in ("dial", "reply #1", "reply #2")] == [
        25,
        25,
        25,
    ]
    assert report.latency["all steps"]["count"] == 75
    assert report.send_lag["count"] == 25


async def test_failed_expectation_is_an_unexpected_screen(
    gateway_port: int, tmp_path: Path
) -> None:
    report = await load.run_load(options(gateway_port, journey(tmp_path, WRONG), concurrency=2))
    assert report.steps == 0
    assert report.journeys == 0
    assert set(report.errors) == {"unexpected_screen"}
    assert report.errors["unexpected_screen"] > 0


async def test_error_status_is_counted_by_name(gateway_port: int, tmp_path: Path) -> None:
    # SPEC §3: a handset-local code never reaches the network; the server refuses the submit.
    report = await load.run_load(options(gateway_port, journey(tmp_path, LOCAL), concurrency=2))
    assert report.steps == 0
    assert set(report.errors) == {"status:ESME_RINVDSTADR"}


async def test_submit_modes_against_the_gateway(gateway_port: int) -> None:
    for mode in ("submit", "submit-ussd"):
        report = await load.run_load(
            options(gateway_port, load.submit_journey(mode), mode=mode, concurrency=4)
        )
        assert report.errors == {}, mode
        assert report.steps == report.journeys > 0


async def test_wrong_password_is_a_clear_error() -> None:
    gw = Gateway.create(make_config(), clock=SimulatedClock(), database=":memory:")
    server = SmppServer(gw)
    _, port = await server.start("127.0.0.1", 0)
    try:
        bad = load.SmppAddress("127.0.0.1", port, "harness", "wrong")
        with pytest.raises(load.LoadError, match="ESME_RINVPASWD"):
            await load.run_load(
                load.LoadOptions(
                    target=bad, journey=load.submit_journey("submit"), mode="submit", rate=10.0
                )
            )
    finally:
        await server.stop()
        gw.store.close()


# -- the CLI ------------------------------------------------------------------------------------


async def test_cli_json_report_parses(
    gateway_port: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = scenario_file(tmp_path, MENU)
    args = cli_args(
        gateway_port,
        "--scenario",
        str(path),
        "--concurrency",
        "4",
        "--duration",
        "1s",
        "--binds",
        "2",
        "--subscribers",
        "20",
        "--json",
    )
    code = await asyncio.to_thread(cli.main, args)
    out = capsys.readouterr().out
    assert code == 0
    data = json.loads(out)
    assert data["error_count"] == 0
    assert data["model"] == "closed"
    assert data["steps"]["count"] == 3 * data["journeys"]["count"] > 0
    assert set(data["latency_ms"]) == {"dial", "reply #1", "reply #2", "all steps"}
    assert set(data["latency_ms"]["dial"]) == {"count", "p50", "p90", "p99", "max"}


async def test_cli_text_report(
    gateway_port: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = scenario_file(tmp_path, BALANCE)
    args = cli_args(gateway_port, "--scenario", str(path), "--rate", "20", "--duration", "1s")
    code = await asyncio.to_thread(cli.main, args)
    out = capsys.readouterr().out
    assert code == 0
    assert "steps/s" in out and "journeys/s" in out and "errors: none" in out
    assert "p99" in out


async def test_cli_wrong_password_exits_1(
    gateway_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    args = cli_args(gateway_port, "--mode", "submit", "--rate", "10", password="nope")
    code = await asyncio.to_thread(cli.main, args)
    assert code == 1
    assert "bind_transceiver refused: ESME_RINVPASWD" in capsys.readouterr().err


async def test_cli_unexpected_screens_exit_1(
    gateway_port: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = scenario_file(tmp_path, WRONG)
    args = cli_args(
        gateway_port, "--scenario", str(path), "--concurrency", "2", "--duration", "1s", "--json"
    )
    code = await asyncio.to_thread(cli.main, args)
    assert code == 1
    data = json.loads(capsys.readouterr().out)
    assert set(data["errors"]) == {"unexpected_screen"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "http://127.0.0.1:1", "--rate", "1"], "smpp://system_id:password@host:port"),
        (["--target", "smpp://127.0.0.1:1", "--rate", "1"], "smpp://system_id:password@host:port"),
        (["--target", "smpp://a:b@127.0.0.1:99999", "--rate", "1"], "bad --target"),
        (["--target", "smpp://a:b@h:1", "--mode", "ussd", "--rate", "1"], "needs --scenario"),
        (["--target", "smpp://a:b@h:1", "--mode", "submit", "--rate", "0"], "rate must be"),
        (
            ["--target", "smpp://a:b@h:1", "--mode", "submit", "--concurrency", "9",
             "--subscribers", "3"],
            "at least as many subscribers",
        ),
        (["--target", "smpp://a:b@h:1", "--mode", "submit", "--rate", "1", "--duration", "x"],
         "bad duration"),
    ],
)  # fmt: skip
def test_cli_argument_errors_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["load", *args]) == 2
    assert message in capsys.readouterr().err


def test_cli_rate_and_concurrency_together_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["load", "--target", "smpp://a:b@h:1", "--rate", "1", "--concurrency", "1"])
    assert exc.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_cli_missing_scenario_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["load", "--target", "smpp://a:b@h:1", "--rate", "1", "--scenario", "nope.yaml"]
    assert cli.main(args) == 2
    assert "cannot read" in capsys.readouterr().err


# -- the bench peers (bench/peer/) ------------------------------------------------------------


async def test_null_smsc_answers_ussd_and_submit(tmp_path: Path) -> None:
    server = await null_smsc.start()
    port = server.sockets[0].getsockname()[1]
    try:
        ussd = await load.run_load(options(port, journey(tmp_path, BALANCE), concurrency=8))
        assert ussd.errors == {}
        assert ussd.steps == ussd.journeys > 0
        submit = await load.run_load(
            options(port, load.submit_journey("submit"), mode="submit", rate=100.0)
        )
        assert submit.errors == {}
        assert submit.steps == submit.offered == 100
    finally:
        server.close()
        await server.wait_closed()


async def test_bare_smsc_on_our_smpp_layer_answers_submit() -> None:
    server = await bare_smsc.start()
    port = server.sockets[0].getsockname()[1]
    try:
        report = await load.run_load(
            options(port, load.submit_journey("submit"), mode="submit", concurrency=4)
        )
        assert report.errors == {}
        assert report.steps == report.journeys > 0
    finally:
        server.close()
        await server.wait_closed()
