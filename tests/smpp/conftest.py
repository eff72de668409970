"""Fixtures of the SMPP server tests (the helpers they are made of: tests/smpp/helpers.py).

A module picks its gateway's config with its own `config` fixture (usually server_config()).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.smpp.helpers import Waiter, start_server
from ussd.runtime import Gateway
from ussd.smpp.server import SmppServer


@pytest.fixture
async def server(gateway: Gateway) -> AsyncIterator[SmppServer]:
    srv = await start_server(gateway)
    yield srv
    await srv.stop()


@pytest.fixture
def waiter(gateway: Gateway) -> Waiter:
    return Waiter(gateway)
