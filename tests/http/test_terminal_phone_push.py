"""Pushes on the terminal phone (`ussd-sim phone`) over a real socket (docs/smpp.md "Pushes")."""

from __future__ import annotations

import asyncio
import contextlib

from prompt_toolkit.input import create_pipe_input

from sim.client import PhonesClient
from tests.http.conftest import RU, eventually
from tests.http.test_terminal_phone import TIMEOUT, CapturingPhone
from ussd.http import HttpServer
from ussd.runtime import Gateway


async def test_pushes_are_printed_answered_and_acknowledged(
    server: HttpServer, gateway: Gateway
) -> None:
    async with PhonesClient(server.url) as client:
        with create_pipe_input() as pipe:
            phone = CapturingPhone(client, RU, pipe)
            watcher = asyncio.create_task(phone.watch())
            try:
                await asyncio.wait_for(phone._ready.wait(), TIMEOUT)
                gateway.engine.push(RU, "Rate us 1-5", True, "tester", "900")
                await phone.shows("pushed", "Rate us 1-5", "reply expected")
                await phone.handle("5")  # the answer ends a tester's push
                await eventually(lambda: gateway.engine.dialog(RU) is None)

                gateway.engine.push(RU, "Maintenance tonight", False, "tester", "Operator")
                await phone.shows("Maintenance tonight", "Enter to acknowledge")
                assert phone.notice
                await phone.handle("")  # Enter
                await eventually(lambda: gateway.engine.dialog(RU) is None)
                assert not phone.notice
            finally:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
