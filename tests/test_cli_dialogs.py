"""`ussd-sim dialogs` (docs/operations.md "Dialog records"): in-process against the configured
store, and against a running gateway's admin API over a real socket."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from tests.accounts import test_cli as accounts_cli
from tests.conftest import make_config
from ussd import cli
from ussd.clock import SimulatedClock
from ussd.http import HttpServer, start_http
from ussd.records import CSV_COLUMNS
from ussd.runtime import Gateway

RU = "79161234567"
EN = "79161112233"

# The shipped config with its store in tmp_path, and cli.main with what it printed.
config_file = accounts_cli.config_file
run = accounts_cli.run


def test_in_process_table_json_and_csv(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = str(config_file)
    assert run(capsys, "dial", RU, "*100#", "--config", cfg)[0] == 0
    assert run(capsys, "dial", EN, "*999#", "--config", cfg)[0] == 0
    code, out, _ = run(capsys, "dialogs", "--config", cfg)
    assert code == 0
    head, first, second = out.splitlines()
    assert head.split()[:3] == ["ID", "ENDED", "(UTC)"] and head.split()[-1] == "CAUSE"
    # Oldest first: the newest is at the bottom, as in a log.
    assert first.split()[3:] == [RU, "100", "balance", "terminal", "1", "0.0", "completed"]
    assert second.split()[3:] == [EN, "999", "-", "terminal", "1", "0.0", "unknown_code"]

    code, out, _ = run(capsys, "dialogs", "--json", "--cause", "unknown_code", "--config", cfg)
    assert code == 0
    (row,) = json.loads(out)["dialogs"]
    assert (row["msisdn"], row["code"], row["via"]) == (EN, "999", "terminal")

    code, out, _ = run(capsys, "dialogs", "--csv", "--msisdn", "+79161234567", "--config", cfg)
    rows = list(csv.reader(io.StringIO(out)))
    assert (
        code == 0 and tuple(rows[0]) == CSV_COLUMNS and [r[10] for r in rows[1:]] == ["completed"]
    )

    code, out, _ = run(capsys, "dialogs", "--via", "smpp", "--config", cfg)
    assert code == 0 and out.strip() == "no dialog records"


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--cause", "gone"], "cause: 'gone' is not one of"),
        (["--limit", "0"], "limit: expected a whole number 1-10_000"),
        (["--since", "soon"], "since: not a time"),
        (["--msisdn", "12"], "msisdn:"),
    ],
)
def test_bad_filters_exit_2(
    config_file: Path, capsys: pytest.CaptureFixture[str], argv: list[str], words: str
) -> None:
    code, out, err = run(capsys, "dialogs", *argv, "--config", str(config_file))
    assert code == 2 and out == "" and words in err


@pytest.fixture
async def running() -> Any:
    gw = Gateway.create(make_config(), clock=SimulatedClock(), database=":memory:")
    await gw.start()
    srv = await start_http(gw, "127.0.0.1", 0)
    yield gw, srv
    await srv.stop()
    await gw.stop()


async def run_remote(
    capsys: pytest.CaptureFixture[str], config_file: Path, srv: HttpServer, *argv: str
) -> tuple[int, str, str]:
    # The CLI runs its own event loop (asyncio.run), so it runs in a thread while this loop
    # serves the request.
    args = ["dialogs", *argv, "--url", srv.url, "--config", str(config_file)]
    code = await asyncio.to_thread(cli.main, args)
    out, err = capsys.readouterr()
    # The gateway serving the command logs to the same stdout in this process.
    out = "".join(line for line in out.splitlines(True) if "component=" not in line)
    return code, out, err


async def test_against_a_running_gateway(
    running: tuple[Gateway, HttpServer], config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gw, srv = running
    await gw.dial(RU, "*111#", via="web")
    gw.advance(30)
    await gw.dial(EN, "*100#")
    code, out, _ = await run_remote(capsys, config_file, srv, "--json", "--code", "*111#")
    assert code == 0
    (row,) = json.loads(out)["dialogs"]
    assert (row["msisdn"], row["via"], row["cause"]) == (RU, "web", "idle_timeout")
    code, out, _ = await run_remote(capsys, config_file, srv, "--limit", "1")
    assert code == 0 and len(out.splitlines()) == 2 and out.splitlines()[1].endswith("completed")
    code, _, err = await run_remote(capsys, config_file, srv, "--cause", "gone")
    assert code == 1 and "400 bad_parameter" in err
    code, _, err = await run_remote(capsys, config_file, srv, "--token", "wrong")
    assert code == 1 and "401" in err
