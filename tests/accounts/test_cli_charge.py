"""`ussd-sim subscribers charge` (docs/account.md "Мой МТС"): simulated usage from the CLI,
in-process and against a running gateway's admin API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.accounts.conftest import OTHER, RU
from tests.accounts.test_cli import config_file, run, run_remote, running, store_of  # noqa: F401
from ussd.http import HttpServer
from ussd.runtime import Gateway

MAY_END = 1_780_272_000.0  # 2026-06-01T00:00:00Z: the shipped config's demo ledger is later


def test_charge_in_process(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    cfg = str(config_file)
    argv = ["subscribers", "charge", RU, "--category", "calls", "--amount", "20.5"]
    code, out, err = run(
        capsys, *argv, "--description", "Call", "--date", "2026-05-02", "--config", cfg
    )
    assert code == 0, err
    assert out.strip() == f"{RU}  2026-05-02T12:00:00Z  calls  -20.50"
    store = store_of(config_file)
    try:
        assert store.subscriber(RU).balance == 100.0  # type: ignore[union-attr]
        (charge,) = store.charges(RU, 0, MAY_END)
        assert (charge.category, charge.amount, charge.description) == ("calls", 20.5, "Call")
    finally:
        store.close()
    code, _, err = run(capsys, *argv[:3], "--category", "sms", "--amount", "-1", "--config", cfg)
    assert code == 1 and "bad_field" in err
    code, _, err = run(
        capsys,
        "subscribers",
        "charge",
        OTHER,
        "--category",
        "sms",
        "--amount",
        "1",
        "--config",
        cfg,
    )
    assert code == 1 and "unknown_msisdn" in err


async def test_charge_remote(
    running: tuple[Gateway, HttpServer],  # noqa: F811
    config_file: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    gw, srv = running
    seeded = gw.store.charges(RU, 0, 2e9)  # the shipped config's demo ledger
    argv = ["subscribers", "charge", RU, "--category", "internet", "--amount", "30", "--json"]
    code, out, err = await run_remote(capsys, config_file, srv, *argv)
    assert code == 0, err
    assert json.loads(out)["category"] == "internet"
    (charge,) = set(gw.store.charges(RU, 0, 2e9)) - set(seeded)
    assert (charge.category, charge.amount) == ("internet", 30.0)
    assert gw.store.subscriber(RU).balance == 90.5  # type: ignore[union-attr]
