"""`ussd-sim office link`, `clock`, `subscribers` (README.md): in-process and against a running
gateway's admin API over a real socket."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.accounts.conftest import EN, OTHER, RU
from tests.conftest import ROOT, make_config
from ussd import cli
from ussd.clock import SimulatedClock
from ussd.http import HttpServer, start_http
from ussd.runtime import Gateway
from ussd.store import Store

START = 1_780_000_000.0


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    """The shipped config with its store in tmp_path."""
    data = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    data["storage"] = {"database": str(tmp_path / "ussd.sqlite3")}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def store_of(config_file: Path) -> Store:
    data = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    return Store(data["storage"]["database"])


# -- in-process ---------------------------------------------------------------------------------


def test_subscribers_in_process(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = str(config_file)
    code, out, _ = run(capsys, "subscribers", "list", "--config", cfg)
    assert code == 0
    assert out.splitlines()[0].startswith(f"{EN}  en  balance 42.00")
    code, out, _ = run(
        capsys,
        "subscribers",
        "add",
        OTHER,
        "--balance",
        "7",
        "--mb",
        "512",
        "--password",
        "0123",
        "--config",
        cfg,
    )
    assert code == 0, out
    assert out.strip() == f"{OTHER}  ru  balance 7.00  0 min / 0 sms / 512 MB  [password]"
    code, _, err = run(capsys, "subscribers", "add", OTHER, "--config", cfg)
    assert code == 1 and "exists" in err
    code, out, _ = run(
        capsys,
        "subscribers",
        "set",
        OTHER,
        "number_management=true",
        "services={roaming: false}",
        "password=0042",
        "--json",
        "--config",
        cfg,
    )
    assert code == 0
    sub = json.loads(out)
    assert sub["number_management"] and sub["services"] == {"roaming": False}
    code, _, err = run(capsys, "subscribers", "set", OTHER, "balance=lots", "--config", cfg)
    assert code == 1 and "balance" in err
    code, _, err = run(capsys, "subscribers", "set", OTHER, "balance", "--config", cfg)
    assert code == 1 and "KEY=VALUE" in err
    code, _, err = run(capsys, "subscribers", "set", "79160000009", "balance=1", "--config", cfg)
    assert code == 1 and "unknown subscriber" in err
    store = store_of(config_file)
    from ussd.store import verify_password

    assert verify_password("0042", store.subscriber(OTHER).password_hash)  # type: ignore[union-attr]
    store.close()


def test_office_link_in_process(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = str(config_file)
    code, _, err = run(capsys, "office", "link", RU, EN, "--config", cfg)
    assert code == 1 and "number management" in err and "number_management_off" in err
    run(capsys, "subscribers", "set", EN, "number_management=true", "--config", cfg)
    code, out, _ = run(capsys, "office", "link", RU, "89161112233", "--json", "--config", cfg)
    assert code == 0
    link = json.loads(out)
    assert (link["number"], link["account"], link["state"]) == (EN, RU, "pending")
    store = store_of(config_file)
    stored = store.link(EN)
    assert stored is not None and stored.active_at - stored.created == 2 * 86400
    store.close()
    code, _, err = run(capsys, "office", "link", OTHER, EN, "--config", cfg)
    assert code == 1 and "already_linked" in err


def test_bad_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("clock: {mode: sideways}\n", encoding="utf-8")
    code, _, err = run(capsys, "office", "link", RU, EN, "--config", str(bad))
    assert code == 2 and "clock.mode" in err


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["office", "link"], ["clock", "advance"], ["subscribers", "set"]):
        with pytest.raises(SystemExit) as info:
            cli.main([*argv, "--help"])
        assert info.value.code == 0
        assert "--url" in capsys.readouterr().out


# -- against a running gateway ------------------------------------------------------------------


@pytest.fixture
async def running() -> Any:
    gw = Gateway.create(make_config(), clock=SimulatedClock(START), database=":memory:")
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
    args = [*argv, "--url", srv.url, "--config", str(config_file)]
    code = await asyncio.to_thread(cli.main, args)
    out, err = capsys.readouterr()
    return code, out, err


async def test_clock_remote(
    running: tuple[Gateway, HttpServer],
    config_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    gw, srv = running
    code, out, _ = await run_remote(capsys, config_file, srv, "clock", "show")
    assert code == 0
    assert out.strip() == "2026-05-28T20:26:40Z (simulated clock, epoch 1780000000.0)"
    code, out, _ = await run_remote(capsys, config_file, srv, "clock", "advance", "2d", "--json")
    assert code == 0 and json.loads(out)["now"] == "2026-05-30T20:26:40Z"
    assert gw.clock.now() == START + 2 * 86400
    with pytest.raises(SystemExit) as info:  # a usage error: argparse exits 2 before any call
        cli.main(["clock", "advance", "soon", "--url", srv.url, "--config", str(config_file)])
    assert info.value.code == 2 and "expected a duration" in capsys.readouterr().err
    code, _, err = await run_remote(capsys, config_file, srv, "clock", "show", "--token", "wrong")
    assert code == 1 and "401" in err


async def test_clock_real_gateway_refuses_advance(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ussd.clock import RealClock

    gw = Gateway.create(make_config(clock={"mode": "real"}), clock=RealClock(), database=":memory:")
    await gw.start()
    srv = await start_http(gw, "127.0.0.1", 0)
    try:
        code, _, err = await run_remote(capsys, config_file, srv, "clock", "advance", "1d")
        assert code == 1 and "409 real_clock" in err
    finally:
        await srv.stop()
        await gw.stop()


async def test_clock_unreachable(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A port that was just free: nothing listens there.
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    args = ["clock", "show", "--url", f"http://127.0.0.1:{port}", "--config", str(config_file)]
    code = await asyncio.to_thread(cli.main, args)
    assert code == 1 and "cannot reach" in capsys.readouterr().err


async def test_office_link_remote_and_activation(
    running: tuple[Gateway, HttpServer],
    config_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    gw, srv = running
    code, _, err = await run_remote(capsys, config_file, srv, "office", "link", RU, EN)
    assert code == 1 and "409 number_management_off" in err
    code, _, _ = await run_remote(
        capsys, config_file, srv, "subscribers", "set", EN, "number_management=true"
    )
    assert code == 0
    code, out, _ = await run_remote(capsys, config_file, srv, "office", "link", RU, EN)
    assert code == 0
    assert out.strip() == (f"{EN} → account {RU} (office): pending, active at 2026-05-30T20:26:40Z")
    code, _, _ = await run_remote(capsys, config_file, srv, "clock", "advance", "2d")
    assert code == 0
    assert any("linked" in s.text for s in gw.sms.inbox(EN))


async def test_subscribers_remote(
    running: tuple[Gateway, HttpServer],
    config_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    gw, srv = running
    code, out, _ = await run_remote(capsys, config_file, srv, "subscribers", "list", "--json")
    assert code == 0 and [s["msisdn"] for s in json.loads(out)] == [EN, RU]
    code, out, _ = await run_remote(
        capsys, config_file, srv, "subscribers", "add", OTHER, "--language", "en"
    )
    assert code == 0 and out.startswith(f"{OTHER}  en")
    code, _, err = await run_remote(capsys, config_file, srv, "subscribers", "add", OTHER)
    assert code == 1 and "409 exists" in err
    code, _, _ = await run_remote(
        capsys, config_file, srv, "subscribers", "set", OTHER, "balance=12.5"
    )
    assert code == 0
    assert gw.store.subscriber(OTHER).balance == 12.5  # type: ignore[union-attr]


def test_mutual_office_link_refused_in_process(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = str(config_file)
    for number in (RU, EN):
        run(capsys, "subscribers", "set", number, "number_management=true", "--config", cfg)
    assert run(capsys, "office", "link", RU, EN, "--config", cfg)[0] == 0
    code, _, err = run(capsys, "office", "link", EN, RU, "--config", cfg)
    assert code == 1 and "mutual_link" in err and "both ways" in err


async def test_mutual_office_link_refused_remote(
    running: tuple[Gateway, HttpServer],
    config_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    gw, srv = running
    for number in (RU, EN):
        await run_remote(
            capsys, config_file, srv, "subscribers", "set", number, "number_management=true"
        )
    assert (await run_remote(capsys, config_file, srv, "office", "link", RU, EN))[0] == 0
    code, _, err = await run_remote(capsys, config_file, srv, "office", "link", EN, RU)
    assert code == 1 and "409 mutual_link" in err
    assert gw.store.link(RU) is None
