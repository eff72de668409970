"""The command line is the top layer, and layers only call downwards (docs/design.md): nothing
under ussd/, its subcommands included, imports ussd.cli."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from ussd import cli

ROOT = Path(__file__).resolve().parents[1]


def _imported(path: Path) -> set[str]:
    """Every module an import statement in `path` names, at any depth (functions included):
    an import inside a function still makes a cycle, it only hides it until run time."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_no_module_below_the_cli_imports_it() -> None:
    offenders = sorted(
        str(path.relative_to(ROOT))
        for path in (ROOT / "ussd").rglob("*.py")
        if path != ROOT / "ussd" / "cli.py" and "ussd.cli" in _imported(path)
    )
    assert offenders == []


def test_serve_reports_start_to_ready_from_process_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The start time reaches `serve` through the parsed arguments, not an import of ussd.cli.
    from ussd.commands import serve

    seen: list[float | None] = []

    async def fake_serve(config: object, started: float | None = None) -> int:
        seen.append(started)
        return 0

    monkeypatch.setattr(serve, "serve", fake_serve)
    config = tmp_path / "config.yaml"
    config.write_text("{}\n", encoding="utf-8")
    assert cli.main(["serve", "--config", str(config)]) == 0
    assert seen == [cli.STARTED]
