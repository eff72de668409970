"""Where shipped data files live: the source tree, or package data inside a wheel (README.md)."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_BUNDLED = _PACKAGE / "_data"
_SOURCE = _PACKAGE.parent


def path(relative: str) -> Path:
    """Path of a shipped file such as `grammar/mmi.lark` or `menus/main.yaml`."""
    bundled = _BUNDLED / relative
    if bundled.exists():
        return bundled
    return _SOURCE / relative
