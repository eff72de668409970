"""The grammar ships inside the wheel (README.md): build it, install it apart, parse from there."""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(argv: list[str | os.PathLike[str]], cwd: Path, timeout: float = 120) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "USSD_SIM_CONFIG")}
    proc = subprocess.run(
        [str(a) for a in argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, f"{argv}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.mark.slow
def test_installed_wheel_parses_with_its_own_grammar(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "build", "--wheel", "--outdir", dist, ROOT], cwd=tmp_path)
    (wheel,) = dist.glob("ussd_sim-*.whl")

    # A bare venv gets only the wheel; its dependencies (lark, PyYAML, ...) come from this
    # environment's site-packages through a .pth line, so nothing is downloaded but the build
    # backend. A .pth line adds a plain path: the editable install's own .pth hook there is
    # not run, so `ussd` can only come from the wheel (checked below).
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp_path)
    python = venv / "bin" / "python"
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            python,
            "install",
            "--no-deps",
            "--no-index",
            "--quiet",
            wheel,
        ],
        cwd=tmp_path,
    )
    target = Path(
        _run(
            [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], cwd=tmp_path
        ).strip()
    )
    (target / "_ussd_sim_test_deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = _run(
        [
            python,
            "-c",
            "import ussd, ussd.resources as r; print(ussd.__file__); "
            "print(r.path('grammar/mmi.lark'))",
        ],
        cwd=elsewhere,
    ).splitlines()
    assert all(Path(p).is_relative_to(venv) for p in where), where
    assert where[1].endswith("ussd/_data/grammar/mmi.lark")

    out = _run([venv / "bin" / "ussd-sim", "parse", "--json", "*111*17#"], cwd=elsewhere)
    assert json.loads(out) == {
        "kind": "ussd",
        "procedure": None,
        "service_code": "111",
        "sia": "17",
        "sib": None,
        "sic": None,
        "extra": None,
        "dial_number": None,
        "clir": None,
        "text": "*111*17#",
    }
