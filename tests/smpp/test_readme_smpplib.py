"""The README's python-smpplib example, run as written against a real gateway and SMPP server."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ussd import config as config_mod
from ussd.clock import SimulatedClock
from ussd.runtime import Gateway
from ussd.smpp.server import SmppServer

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 20.0

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def readme_example() -> str:
    """The ```python block of the README's "An ESME bind" paragraph, verbatim."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"\*\*An ESME bind\*\*.*?```python\n(.*?)```", readme, re.S)
    assert match is not None, "README.md has no python-smpplib example"
    return match.group(1)


@pytest.fixture
async def shipped() -> AsyncIterator[tuple[str, int]]:
    """The shipped config.yaml (what `make run` serves), on a free port instead of 2775."""
    gateway = Gateway.create(
        config_mod.load(str(ROOT / "config.yaml")), clock=SimulatedClock(), database=":memory:"
    )
    await gateway.start()
    server = SmppServer(gateway)
    address = await server.start("127.0.0.1", 0)
    try:
        yield address
    finally:
        await server.stop()
        await gateway.stop()


async def test_readme_smpplib_example_runs_as_written(shipped: tuple[str, int]) -> None:
    code = readme_example()
    host, port = shipped
    assert '"127.0.0.1", 2775' in code  # the address `make run` listens on
    code = code.replace('"127.0.0.1", 2775', f'"{host}", {port}')
    printed: list[str] = []

    def capture(*args: Any) -> None:
        printed.append(" ".join(str(a) for a in args))

    def run() -> None:
        exec(compile(code, "README.md", "exec"), {"print": capture, "__name__": "readme"})

    await asyncio.wait_for(asyncio.to_thread(run), TIMEOUT)
    assert len(printed) == 1
    op, text = printed[0].split(" ", 1)
    assert op == "2"  # USSR request: the gateway asks for the new password
    assert text.startswith("Введите новый пароль Личного кабинета")
