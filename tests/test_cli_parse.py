"""`ussd-sim parse`: readable lines, --json, batch mode on stdin, exit codes."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from ussd import cli, dialstring

FIELDS = list(dialstring.FIELDS)


class FakeStdin(io.TextIOWrapper):
    """A text stdin with a binary buffer underneath, like the real one."""

    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data), encoding="utf-8")


def run(
    capsys: pytest.CaptureFixture[str], *argv: str, stdin: bytes | None = None
) -> tuple[int, list[str], str]:
    if stdin is not None:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(sys, "stdin", FakeStdin(stdin))
            code = cli.main(["parse", *argv])
    else:
        code = cli.main(["parse", *argv])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


def test_readable_lines(capsys: pytest.CaptureFixture[str]) -> None:
    code, lines, _ = run(capsys, "*111*17#", "*111**5#", "#31#+79161234567", "*21*+7916#")
    assert code == 0
    assert lines == [
        "*111*17#\tussd service_code=111 sia=17",
        '*111**5#\tussd service_code=111 sia="" sib=5',
        "#31#+79161234567\tcall service_code=31 dial_number=+79161234567 clir=invoke",
        "*21*+7916#\tss register service_code=21 sia=+7916",
    ]


def test_readable_error_and_exit_code_1(capsys: pytest.CaptureFixture[str]) -> None:
    code, lines, _ = run(capsys, "*100#", "*123#345")
    assert code == 1
    assert lines[0].startswith("*100#\tussd")
    assert lines[1] == (
        "*123#345\terror at column 6: a USSD string ends at its '#'; "
        "a dialling number cannot follow it"
    )


def test_json_objects_have_exactly_the_fields(capsys: pytest.CaptureFixture[str]) -> None:
    code, lines, _ = run(capsys, "--json", "*111*828*1#", "*#06#")
    assert code == 0
    objects = [json.loads(line) for line in lines]
    assert [list(o) for o in objects] == [FIELDS, FIELDS]
    assert objects[0] == dialstring.parse("*111*828*1#").to_json()
    assert objects[1]["kind"] == "local"


def test_json_error_is_an_object_with_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, lines, _ = run(capsys, "--json", "*111*17#extra")
    assert code == 1
    (obj,) = [json.loads(line) for line in lines]
    assert list(obj) == [*FIELDS, "error"]
    assert obj["text"] == "*111*17#extra"
    assert obj["kind"] is None
    assert obj["error"] == {"message": dialstring.AFTER_HASH, "column": 9}


def test_json_keeps_cyrillic_readable(capsys: pytest.CaptureFixture[str]) -> None:
    _, lines, _ = run(capsys, "--json", "*111*абв#")
    assert "абв" in lines[0]
    assert json.loads(lines[0])["sia"] == "абв"


def test_batch_mode_reads_stdin_line_by_line(capsys: pytest.CaptureFixture[str]) -> None:
    data = b"*100#\n\n*21*+7916#\r\n *100#\n*111*17#"
    code, lines, err = run(capsys, "--json", stdin=data)
    assert code == 1
    assert err == ""
    objects = [json.loads(line) for line in lines]
    assert [o["text"] for o in objects] == ["*100#", "", "*21*+7916#", " *100#", "*111*17#"]
    assert [o.get("error", {}).get("column") for o in objects] == [None, 1, None, 1, None]
    assert objects[2]["procedure"] == "register"


def test_batch_mode_readable(capsys: pytest.CaptureFixture[str]) -> None:
    code, lines, _ = run(capsys, stdin=b"*100#\n112\n")
    assert code == 0
    assert lines == ["*100#\tussd service_code=100", "112\tcall dial_number=112"]


def test_batch_mode_empty_input_is_success(capsys: pytest.CaptureFixture[str]) -> None:
    code, lines, _ = run(capsys, "--json", stdin=b"")
    assert (code, lines) == (0, [])


def test_batch_mode_bad_utf8_is_an_error_line_not_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, lines, err = run(capsys, "--json", stdin=b"*100#\nab\xffc#\n*111#\n")
    assert code == 1
    assert "Traceback" not in err
    objects = [json.loads(line) for line in lines]
    assert len(objects) == 3
    assert objects[1]["error"]["column"] == 3
    assert "UTF-8" in objects[1]["error"]["message"]
    assert objects[2]["service_code"] == "111"


def test_help_mentions_batch_mode(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["parse", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "--json" in out
    assert "--config" in out
    assert "stdin" in out


def test_real_process_batch_json(tmp_path: Path) -> None:
    # One process, many lines: what a harness does (docs/grammar.md, no per-line start-up cost).
    lines = ["*111*17#", "*123#345", "*31#+79161234567", "*111*828*1#"] * 50
    proc = subprocess.run(
        [sys.executable, "-m", "ussd.cli", "parse", "--json"],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        encoding="utf-8",
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr == ""
    objects = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(objects) == len(lines)
    assert objects[0]["sia"] == "17"
    assert objects[1]["error"] == {"message": dialstring.USSD_THEN_NUMBER, "column": 6}
    assert objects[2]["clir"] == "suppress"
    assert objects[3]["sib"] == "1"


def test_real_process_arguments_exit_0(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ussd.cli", "parse", "--json", "*100#"],
        capture_output=True,
        text=True,
        encoding="utf-8",
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["service_code"] == "100"
