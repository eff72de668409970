"""`ussd-sim load` names the MSISDNs it uses, and refuses a prefix the gateway would rewrite."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sim import load
from tests.conftest import make_config
from ussd import cli
from ussd.clock import SimulatedClock
from ussd.runtime import Gateway
from ussd.smpp.server import SmppServer


@pytest.fixture
async def served() -> AsyncIterator[tuple[Gateway, int]]:
    """A gateway that auto-provisions, behind a real SMPP server on a free port."""
    gw = Gateway.create(make_config(), clock=SimulatedClock(), database=":memory:")
    server = SmppServer(gw)
    _, port = await server.start("127.0.0.1", 0)
    yield gw, port
    await server.stop()
    gw.engine.shutdown()
    gw.store.close()


BALANCE = """
name: Balance
subscribers: [{msisdn: "79161234567"}]
steps:
  - dial: "*100#"
    expect: {end: true}
"""


def args_for(port: int, *mode: str) -> list[str]:
    target = f"smpp://harness:secret@127.0.0.1:{port}"
    run = ["--concurrency", "2", "--duration", "0.3s", "--subscribers", "20"]
    return ["load", "--target", target, *mode, *run]


def balance_args(port: int, tmp_path: Path) -> list[str]:
    """The USSD journey `*100#`: each dial provisions its MSISDN on the gateway."""
    scenario = tmp_path / "balance.yaml"
    scenario.write_text(BALANCE, encoding="utf-8")
    return args_for(port, "--scenario", str(scenario))


def submit_args(port: int, *extra: str) -> list[str]:
    return [*args_for(port, "--mode", "submit"), *extra]


async def test_the_run_names_the_msisdns_the_gateway_creates(
    served: tuple[Gateway, int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gateway, port = served
    before = {s.msisdn for s in gateway.store.subscribers()}
    args = [*balance_args(port, tmp_path), "--prefix", "7991", "--json"]
    code = await asyncio.to_thread(cli.main, args)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    # Named before the run starts, on stderr, so stdout stays one JSON document.
    assert "MSISDNs 79910000000–79910000019 (20, --prefix 7991)" in captured.err
    assert "auto_provision" in captured.err
    data = json.loads(captured.out)
    assert data["msisdns"] == {
        "prefix": "7991",
        "first": "79910000000",
        "last": "79910000019",
        "count": 20,
    }
    created = {s.msisdn for s in gateway.store.subscribers()} - before
    assert created, "the run created no subscriber: nothing was tested"
    assert created <= set(load.LoadOptions.msisdns(_options(port, "7991")))


async def test_the_text_report_names_them_too(
    served: tuple[Gateway, int], capsys: pytest.CaptureFixture[str]
) -> None:
    _, port = served
    code = await asyncio.to_thread(cli.main, submit_args(port, "--prefix", "79925"))
    out = capsys.readouterr().out
    assert code == 0
    assert "MSISDNs: 79925000000–79925000019 (--prefix 79925)" in out


@pytest.mark.parametrize(
    ("prefix", "message"),
    [
        # 8 is the trunk prefix: 80000000000 would be subscriber 70000000000, and the screens
        # would come back to a number the generator never sent from.
        ("8", "the gateway would read 80000000000 as 70000000000"),
        ("00", "the gateway would read 00000000000 as 000000000"),  # 00: international
        ("٧٩٩", "prefix must be digits"),  # Arabic-Indic digits (str.isdigit() takes them)
    ],
)
def test_a_prefix_the_gateway_would_rewrite_is_a_usage_error(
    prefix: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Refused before any connection: port 9 on loopback has nothing listening.
    assert cli.main(submit_args(9, "--prefix", prefix)) == 2
    assert message in capsys.readouterr().err


def test_msisdns_are_the_numbers_the_runner_uses() -> None:
    options = _options(1, "7990", subscribers=10_000)
    numbers = options.msisdns()
    assert (numbers[0], numbers[-1], len(set(numbers))) == ("79900000000", "79900009999", 10_000)
    long = _options(1, "123456789012", subscribers=1000).msisdns()
    assert (long[0], long[-1]) == ("123456789012000", "123456789012999")


def _options(port: int, prefix: str, subscribers: int = 20) -> load.LoadOptions:
    return load.LoadOptions(
        target=load.SmppAddress("127.0.0.1", port, "harness", "secret"),
        journey=load.submit_journey("submit"),
        mode="submit",
        concurrency=2,
        subscribers=subscribers,
        prefix=prefix,
    )
