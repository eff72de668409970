"""`ussd-sim dial --url`: the same dialog against a running gateway (README.md)."""

from __future__ import annotations

import argparse

import pytest

from ussd.commands.dial import run_remote
from ussd.http import HttpServer


def args(url: str, *argv: str) -> argparse.Namespace:
    msisdn, string, *replies = argv
    return argparse.Namespace(url=url, msisdn=msisdn, string=string, replies=replies)


async def test_dial_url_password_flow(
    server: HttpServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code = await run_remote(args(server.url, "79161234567", "*111*17#", "abcd1234", "abcd1234"))
    out = capsys.readouterr().out
    assert code == 0
    assert "Пароль от Личного кабинета установлен." in out
    assert "[sms to 79161234567 from MTS]" in out


async def test_dial_url_reports_api_errors(
    server: HttpServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await run_remote(args(server.url, "79161234567", "*111*17#extra")) == 1
    assert "only a dialling number may follow" in capsys.readouterr().err


async def test_dial_url_unreachable(capsys: pytest.CaptureFixture[str]) -> None:
    assert await run_remote(args("http://127.0.0.1:9", "79161234567", "*100#")) == 1
    assert "ussd-sim:" in capsys.readouterr().err
