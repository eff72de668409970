"""Every subscriber path reaches an app (docs/apps.md): the phones API, scenarios in-process,
over HTTP and over SMPP, and `ussd-sim load` over SMPP. Real sockets on 127.0.0.1:0."""

from __future__ import annotations

import asyncio
import contextlib
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web
from prompt_toolkit.input import create_pipe_input

from sim import load, runner
from sim import scenario as sc
from sim.client import PhonesClient
from sim.targets import HttpTarget, InProcessTarget, make_target
from tests.apps.appserver import LiveApp, Seen, app_config, con, end, running
from tests.conftest import ROOT
from tests.http.test_terminal_phone import CapturingPhone
from ussd.clock import SimulatedClock
from ussd.http import start_http
from ussd.runtime import Gateway
from ussd.smpp.server import SmppServer

TOKEN = "change-me"  # the shipped admin token (loopback only)


def shop(seen: Seen) -> web.Response:
    """An Africa's Talking app: a menu, then an answer naming the choice."""
    text = seen.fields["text"]
    if text == "":
        return con("Магазин\n1. Купить\n2. Продать")
    return end(f"Вы выбрали {text}. Спасибо!")


SCENARIO = """\
name: Shop over the app
subscribers: [{{msisdn: "79161234567"}}]
config:
  apps: {{shop: {{url: "{url}", dialect: africastalking}}}}
  ussd: {{routes: {{"*384#": "app:shop", "*100#": balance}}}}
steps:
  - dial: "*384#"
    expect: {{continue: true, text: "/Магазин/"}}
  - reply: "2"
    expect: {{end: true, text: "Вы выбрали 2. Спасибо!"}}
  - dial: "*384*1#"
    expect: {{end: true, text: "Вы выбрали 1. Спасибо!"}}
"""


def scenario(url: str, base: dict[str, Any]) -> sc.Scenario:
    (one,) = sc.loads(textwrap.dedent(SCENARIO.format(url=url)), "shop.yaml", base)
    return one


@pytest.fixture
def base() -> dict[str, Any]:
    """The raw shipped config.yaml: scenario worlds start from it."""
    return sc.base_config_data(ROOT / "config.yaml")


@pytest.fixture
async def app() -> AsyncIterator[LiveApp]:
    async with running(shop) as srv:
        yield srv


async def test_a_scenario_in_process(app: LiveApp, base: dict[str, Any]) -> None:
    result = await runner.run_async(scenario(app.url, base), InProcessTarget())
    assert result.passed, runner.format_failure(result)
    assert [b["text"] for b in app.bodies()] == ["", "2", "1"]


@pytest.fixture
async def served(app: LiveApp) -> AsyncIterator[tuple[Gateway, str, str]]:
    """A gateway routed to the app behind HTTP and SMPP: (gateway, http url, smpp url)."""
    gw = Gateway.create(app_config(app.url, "africastalking"), clock=SimulatedClock())
    await gw.start()
    http = await start_http(gw, "127.0.0.1", 0)
    smpp = SmppServer(gw)
    _, port = await smpp.start("127.0.0.1", 0)
    yield gw, http.url, f"smpp://harness:secret@127.0.0.1:{port}"
    await smpp.stop()
    await http.stop()
    await gw.stop()


async def test_the_phones_api(served: tuple[Gateway, str, str]) -> None:
    _, url, _ = served
    async with aiohttp.ClientSession(base_url=url) as http:
        async with http.post("/api/v1/phones/79161234567/dial", json={"text": "*384#"}) as r:
            first = await r.json()
        async with http.post("/api/v1/phones/79161234567/reply", json={"text": "1"}) as r:
            last = await r.json()
    assert (first["text"], first["end"]) == ("Магазин\n1. Купить\n2. Продать", False)
    assert (last["text"], last["end"]) == ("Вы выбрали 1. Спасибо!", True)


async def test_the_terminal_phone(served: tuple[Gateway, str, str]) -> None:
    _, url, _ = served
    async with PhonesClient(url) as client:
        with create_pipe_input() as pipe:
            phone = CapturingPhone(client, "79161234567", pipe)
            watcher = asyncio.create_task(phone.watch())
            try:
                await asyncio.wait_for(phone._ready.wait(), 15)
                await phone.handle("*384#")
                await phone.shows("Магазин", "2. Продать")
                await phone.handle("2")
                await phone.shows("Вы выбрали 2. Спасибо!")
            finally:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher


async def test_a_scenario_over_http(
    app: LiveApp, served: tuple[Gateway, str, str], base: dict[str, Any]
) -> None:
    _, url, _ = served
    result = await runner.run_async(scenario(app.url, base), HttpTarget(url, TOKEN))
    assert result.passed, runner.format_failure(result)


async def test_a_scenario_over_the_smpp_harness(
    app: LiveApp, served: tuple[Gateway, str, str], base: dict[str, Any]
) -> None:
    _, http_url, smpp_url = served
    target = make_target((smpp_url, http_url), TOKEN)
    result = await runner.run_async(scenario(app.url, base), target)
    assert result.passed, runner.format_failure(result)
    assert [b["text"] for b in app.bodies()] == ["", "2", "1"]


async def test_load_over_smpp_reaches_the_app(
    app: LiveApp, served: tuple[Gateway, str, str], tmp_path: Path
) -> None:
    _, _, smpp_url = served
    journey_file = tmp_path / "journey.yaml"
    journey_file.write_text(
        'name: Shop\nsubscribers: [{msisdn: "79161234567"}]\nsteps:\n'
        '  - dial: "*384#"\n    expect: {continue: true}\n'
        '  - reply: "1"\n    expect: {end: true}\n',
        encoding="utf-8",
    )
    journey = load.journey_from_scenario(sc.load(journey_file, None)[0])
    options = load.LoadOptions(
        target=load.SmppAddress.parse(smpp_url),
        journey=journey,
        concurrency=8,
        duration=0.5,
        binds=2,
        subscribers=50,
        timeout=5.0,
    )
    report = await load.run_load(options)
    assert report.errors == {}
    assert report.journeys > 0 and report.steps == 2 * report.journeys
    # Every step the load generator counted was an exchange with the app.
    assert len(app.seen) >= report.steps


def test_ussd_sim_dial_in_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`ussd-sim dial` with an app route: the command starts the gateway's HTTP client."""
    import threading

    from ussd.cli import main

    ready, stop = threading.Event(), threading.Event()
    box: dict[str, Any] = {}

    def serve() -> None:
        async def app_thread() -> None:
            async with running(shop) as srv:
                box["url"] = srv.url
                ready.set()
                await asyncio.get_running_loop().run_in_executor(None, stop.wait)

        asyncio.run(app_thread())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        assert ready.wait(10)
        data = sc.base_config_data(ROOT / "config.yaml")
        data["storage"] = {"database": str(tmp_path / "ussd.sqlite3")}
        data["apps"] = {"shop": {"url": box["url"], "dialect": "africastalking"}}
        data["ussd"] = {**data["ussd"], "routes": {"*384#": "app:shop"}}
        config = tmp_path / "config.yaml"
        config.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        code = main(["dial", "--config", str(config), "79161234567", "*384#", "2"])
    finally:
        stop.set()
        thread.join(10)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "Магазин" in out and "Вы выбрали 2. Спасибо!" in out
    assert "[dialog ended: app_release]" in out
