"""`ussd-sim run FILE --app URL`: scenarios against an app with no config file (docs/apps.md).

The example apps serve on 127.0.0.1:0 in this process; the runner runs in a thread (its own
event loop), and with -j in worker processes, all reaching the app over TCP.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from examples import at_app, hubtel_app
from ussd import cli

ROOT = Path(__file__).resolve().parents[2]
SHOP = str(ROOT / "examples" / "shop.yaml")


@asynccontextmanager
async def serving(make_app: Callable[[], web.Application]) -> AsyncIterator[str]:
    server = TestServer(make_app(), host="127.0.0.1", port=0)
    await server.start_server()
    try:
        yield str(server.make_url("/ussd"))
    finally:
        await server.close()


async def run(*argv: str) -> int:
    return await asyncio.to_thread(cli.main, ["run", *argv])


@pytest.mark.parametrize(
    ("make_app", "dialect"),
    [(at_app.make_app, "africastalking"), (hubtel_app.make_app, "hubtel")],
    ids=["africastalking", "hubtel"],
)
async def test_the_shop_scenarios_pass_against_an_example_app(
    make_app: Callable[[], web.Application],
    dialect: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)  # no config.yaml here: --app needs none
    junit = tmp_path / "shop.xml"
    async with serving(make_app) as url:
        code = await run(SHOP, "--app", url, "--dialect", dialect, "--junit", str(junit))
    out = capsys.readouterr().out
    assert code == 0, out
    assert "4 scenarios, 4 passed, 0 failed" in out
    suites = ET.parse(junit).getroot()
    assert (suites.get("tests"), suites.get("failures")) == ("4", "0")


async def test_parallel_runs_reach_the_app_from_every_worker(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with serving(at_app.make_app) as url:
        code = await run(SHOP, "--app", url, "-j", "2")
    out = capsys.readouterr().out
    assert code == 0, out
    assert "4 scenarios, 4 passed, 0 failed" in out


async def test_a_failing_step_is_reported_against_the_app(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(
        "name: Wrong balance\n"
        "subscribers: [{msisdn: '79161234567'}]\n"
        "steps:\n"
        "  - dial: '*384*1#'\n"
        "    expect: {end: true, text: 'Your balance is 5.00'}\n",
        encoding="utf-8",
    )
    async with serving(at_app.make_app) as url:
        code = await run(str(wrong), "--app", url)
    out = capsys.readouterr().out
    assert code == 1
    assert "Your balance is 100.00" in out  # the app's actual answer, beside the expected one


async def test_another_code_routes_to_the_app(capsys: pytest.CaptureFixture[str]) -> None:
    async with serving(at_app.make_app) as url:
        code = await run(SHOP, "--app", url, "--code", "*500#")
    out = capsys.readouterr().out
    assert code == 1  # the scenarios dial *384#, which now goes nowhere
    assert "0 passed" in out


async def test_with_config_the_file_gains_the_app_route(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--config with --app: that file's world (here its *100# balance route) plus the app."""
    (tmp_path / "world.yaml").write_text("ussd:\n  routes: {'*100#': balance}\n", encoding="utf-8")
    both = tmp_path / "both.yaml"
    both.write_text(
        "name: Balance and shop\n"
        "subscribers: [{msisdn: '79161234567', balance: 42}]\n"
        "steps:\n"
        "  - dial: '*100#'\n"
        "    expect: {end: true, text: '42'}\n"
        "  - dial: '*384*3#'\n"
        "    expect: {end: true, text: Goodbye}\n",
        encoding="utf-8",
    )
    async with serving(at_app.make_app) as url:
        code = await run(str(both), "--app", url, "--config", str(tmp_path / "world.yaml"))
    out = capsys.readouterr().out
    assert code == 0, out


async def test_a_dead_app_is_one_line_and_nothing_runs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with serving(at_app.make_app) as url:
        pass  # closed: nothing listens there any more
    assert await run(SHOP, "--app", url) == 2
    assert "cannot reach" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--target", "http://127.0.0.1:1"], "cannot be used with --target"),
        (["--code", "384"], "expected a service code"),
        (["--code", "*384*{x}#"], "expected a service code"),
        (["--dialect", "nope"], "invalid choice"),
    ],
)
def test_bad_app_options_are_usage_errors(
    extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        code = cli.main(["run", SHOP, "--app", "http://127.0.0.1:1/ussd", *extra])
    except SystemExit as exc:  # argparse's own refusals
        code = int(exc.code or 0)
    assert code == 2
    assert message in capsys.readouterr().err


def test_a_bad_app_url_is_a_configuration_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", SHOP, "--app", "ftp://127.0.0.1/ussd"]) == 2
    assert "configuration error" in capsys.readouterr().err


def test_the_readme_tour_as_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`python examples/at_app.py --port N`, then `ussd-sim run examples/shop.yaml --app …`."""
    with socket.socket() as probe:  # a free port for the app's own command line
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = subprocess.Popen(
        [sys.executable, "-u", str(ROOT / "examples" / "at_app.py"), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
    )
    try:
        assert app.stdout is not None
        for line in app.stdout:  # aiohttp says so once it listens
            if "Running on" in line:
                break
        else:
            pytest.fail(f"the example app exited with {app.wait()}")
        junit = tmp_path / "shop.xml"
        url = f"http://127.0.0.1:{port}/ussd"
        assert cli.main(["run", SHOP, "--app", url, "--junit", str(junit)]) == 0
    finally:
        app.terminate()
        app.wait(timeout=10)
    assert "4 scenarios, 4 passed, 0 failed" in capsys.readouterr().out
    assert junit.exists()
