"""Headless Debian Chromium for the browser tests (README.md: never silently skipped under CI)."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "test-output"  # screenshots (gitignored)
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# Without the background-networking flags Chromium tries to reach its vendor's hosts at start.
FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 10_000


def chromium_path() -> str:
    """The browser binary; under CI a missing browser fails the test instead of skipping it."""
    path = CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")
    if path:
        return path
    message = f"Chromium not found at {CHROMIUM} (install Debian's `chromium`, or `make browser`)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """A launched Playwright Chromium (the system binary; no browser download)."""
    executable = chromium_path()
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=executable, args=FLAGS)
        try:
            yield chromium
        finally:
            await chromium.close()


@contextlib.asynccontextmanager
async def gateway_page(
    browser: Any, base: str, path: str, ready: str, viewport: tuple[int, int]
) -> AsyncIterator[Any]:
    """A page of the gateway at `base` in a fresh context, once `ready` matches; on the way
    out it fails on JavaScript errors and on any request outside the gateway (no CDN, fonts
    or trackers: nothing loaded from elsewhere at run time)."""
    width, height = viewport
    context = await browser.new_context(viewport={"width": width, "height": height})
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    await page.goto(base + path)
    await page.wait_for_selector(ready)
    try:
        yield page
    finally:
        await context.close()
    assert not errors, f"JavaScript errors: {errors}"
    local = (base, base.replace("http://", "ws://", 1))
    foreign = [u for u in requested if not u.startswith(local)]
    assert not foreign, f"requests outside the gateway: {foreign}"
