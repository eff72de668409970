"""`ussd-sim dial` (README.md): a dialog in-process against the configured store."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from ussd.cli import main


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    data = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    data["storage"] = {"database": str(tmp_path / "ussd.sqlite3")}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def test_dial_password_flow(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["dial", "--config", str(config_file), "79161234567", "*111*17#", "abcd1234", "abcd1234"]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "[continue] session" in out
    assert "Пароль от Личного кабинета установлен." in out
    assert "[sms to 79161234567 from MTS]" in out


def test_dial_keeps_state_across_runs(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["dial", "--config", str(config_file), "79161234567", "*111*828*1#"]) == 0
    assert main(["dial", "--config", str(config_file), "79161234567", "*111*828#"]) == 0
    out = capsys.readouterr().out
    assert "Управление номерами: вкл." in out


def test_dial_paginates(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dial", "--config", str(config_file), "79161234567", "*111#", "98"]) == 0
    out = capsys.readouterr().out
    assert "[continue page 1/" in out and "[continue page 2/" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["79161234567", "*111*17#extra"], "only a dialling number may follow"),
        (["79161234567", "*#06#"], "not a USSD request"),
        (["79161234567", "*100#", "1"], "the dialog has ended"),
    ],
)
def test_dial_errors(
    config_file: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(["dial", "--config", str(config_file), *argv]) == 1
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("msisdn", ["not-a-number", "٧٩١٦١٢٣٤٥٦٧"])
def test_invalid_msisdn_is_a_usage_error(
    msisdn: str, config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Like `ussd-sim phone hello`: exit 2 before any store or gateway is touched.
    with pytest.raises(SystemExit) as exc:
        main(["dial", "--config", str(config_file), msisdn, "*100#"])
    assert exc.value.code == 2
    assert "argument MSISDN: not a phone number" in capsys.readouterr().err


def test_bad_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("ussd: {reply_timeout: soon}\n", encoding="utf-8")
    assert main(["dial", "--config", str(bad), "79161234567", "*100#"]) == 2
    assert "ussd.reply_timeout" in capsys.readouterr().err
