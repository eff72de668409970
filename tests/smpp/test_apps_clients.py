"""Independent SMPP clients as the application (docs/smpp.md "SMPP applications").

python-smpplib and aiosmpplib bind as the `shop` app; the shared ESME client plays the
subscriber's harness; one gateway runs `*555#` from one to the other on real sockets.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.smpp.helpers import ALICE, BOB, bound, start_server, text_of
from tests.smpp.test_apps import apps_config
from tests.smpp.test_server_clients import (
    _Hook,
    _is_deliver,
    _params,
    _SmpplibHarness,
    aio_bound,
    smpplib_ussd,
)
from ussd.config import Config
from ussd.runtime import Gateway
from ussd.smpp.constants import Tag, UssdServiceOp
from ussd.smpp.pdu import ItsSessionInfo
from ussd.smpp.server import SmppServer

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

__all__ = ["smpplib_ussd"]  # the fixture, used by name below


@pytest.fixture
def config() -> Config:
    return apps_config()


@pytest.fixture
async def server(gateway: Gateway) -> AsyncIterator[SmppServer]:
    srv = await start_server(gateway)
    yield srv
    await srv.stop()


# -- python-smpplib ------------------------------------------------------------------------------


class _SmpplibApp(_SmpplibHarness):
    def bind(self) -> None:
        self.client.connect()
        self.client.bind_transceiver(system_id="shop", password="shoppw")

    def submit(self, msisdn: str, text: str, op: int, info: int) -> Any:
        return self.client.send_message(
            service_type="USSD",
            source_addr="555",
            dest_addr_ton=1,
            dest_addr_npi=1,
            destination_addr=msisdn,
            short_message=text.encode("ascii"),
            ussd_service_op=op,
            its_session_info=info,
        )


@pytest.fixture
async def smpplib_app(server: SmppServer, smpplib_ussd: None) -> AsyncIterator[_SmpplibApp]:
    app = _SmpplibApp(server.address, asyncio.get_running_loop())  # type: ignore[attr-defined]
    await asyncio.to_thread(app.bind)
    app.start()
    yield app
    await asyncio.to_thread(app.client.disconnect)


async def test_smpplib_app_serves_a_harness_dialog(
    server: SmppServer, smpplib_app: _SmpplibApp
) -> None:
    harness = await bound(server)
    await harness.submit(ALICE, "*555*7#")
    begin = await smpplib_app.next("deliver_sm")
    assert (begin.ussd_service_op, begin.short_message) == (1, b"*555*7#")
    assert (begin.source_addr, begin.destination_addr) == (ALICE.encode(), b"555")
    info = begin.its_session_info
    await asyncio.to_thread(smpplib_app.submit, ALICE, "Size? 1. S 2. L", 2, info)
    assert text_of(await harness.deliver_sm()) == "Size? 1. S 2. L"
    await harness.submit(ALICE, "2", op=UssdServiceOp.USSR_CONFIRM)
    answer = await smpplib_app.next("deliver_sm")
    assert (answer.ussd_service_op, answer.short_message) == (18, b"2")
    await asyncio.to_thread(smpplib_app.submit, ALICE, "Large it is", 17, answer.its_session_info)
    last = await harness.deliver_sm()
    assert (last.ussd_service_op, text_of(last)) == (17, "Large it is")
    await harness.close()


async def test_smpplib_app_pushes_with_any_session_octets(
    server: SmppServer, smpplib_app: _SmpplibApp
) -> None:
    harness = await bound(server)
    info = ItsSessionInfo(0xC8, 0x7F)  # octets 0xC8, 0xFE
    await asyncio.to_thread(
        smpplib_app.submit, BOB, "Low balance. 1. Top up", 2, int.from_bytes(info.to_bytes())
    )
    assert text_of(await harness.deliver_sm()) == "Low balance. 1. Top up"
    await harness.submit(BOB, "1", op=UssdServiceOp.USSR_CONFIRM)
    answer = await smpplib_app.next("deliver_sm")
    echoed = ItsSessionInfo.from_bytes(answer.its_session_info.to_bytes(2, "big"))
    assert (answer.ussd_service_op, answer.short_message) == (18, b"1")
    assert echoed.session_number == 0xC8 and not echoed.end_of_session
    await harness.submit(BOB, "", op=UssdServiceOp.RELEASE)
    end = await smpplib_app.next("deliver_sm")
    assert ItsSessionInfo.from_bytes(end.its_session_info.to_bytes(2, "big")).end_of_session
    await harness.close()


# -- aiosmpplib -----------------------------------------------------------------------------------


@pytest.fixture
async def aio_app(server: SmppServer) -> AsyncIterator[tuple[Any, _Hook]]:
    async with aio_bound(server, "shop", "shoppw") as bound:
        yield bound


def _aio_answer(msisdn: str, text: str, op: int, info: str) -> Any:
    from aiosmpplib import NPI, TON, OptionalParam, PhoneNumber, SubmitSm

    # aiosmpplib types these TLVs as strings: each octet travels as chr(octet), ASCII only,
    # and a trailing 0x00 is read as a C string's end, so an app puts it back (docs/smpp.md).
    info = info.ljust(2, "\0")
    return SubmitSm(
        short_message=text,
        source=PhoneNumber("555"),
        destination=PhoneNumber(msisdn, TON.INTERNATIONAL, NPI.ISDN),
        service_type="USSD",
        registered_delivery=0,
        optional_params=[
            OptionalParam(Tag.USSD_SERVICE_OP, chr(op)),
            OptionalParam(Tag.ITS_SESSION_INFO, info),
        ],
    )


async def test_aiosmpplib_app_serves_a_harness_dialog(
    server: SmppServer, aio_app: tuple[Any, _Hook]
) -> None:
    esme, hook = aio_app
    harness = await bound(server)
    await harness.submit(BOB, "*555#")
    begin = await hook.next(_is_deliver)
    params = _params(begin)
    assert params[Tag.USSD_SERVICE_OP] == chr(UssdServiceOp.PSSR_INDICATION)
    assert begin.short_message == "*555#" and begin.source.number == BOB
    await esme.broker.enqueue(_aio_answer(BOB, "Menu: 1. News", 2, params[Tag.ITS_SESSION_INFO]))
    assert text_of(await harness.deliver_sm()) == "Menu: 1. News"
    await harness.submit(BOB, "1", op=UssdServiceOp.USSR_CONFIRM)
    answer = await hook.next(_is_deliver)
    assert _params(answer)[Tag.USSD_SERVICE_OP] == chr(UssdServiceOp.USSR_CONFIRM)
    assert answer.short_message == "1"
    # The subscriber hangs up. The end-bit deliver_sm has no text, which aiosmpplib 0.7 cannot
    # parse (docs/smpp.md "Interoperability"): it answers generic_nack, and the gateway goes on.
    await harness.submit(BOB, "", op=UssdServiceOp.RELEASE)
    await harness.submit(BOB, "*555#")
    again = await hook.next(_is_deliver)
    assert again.short_message == "*555#"
    assert _params(again)[Tag.USSD_SERVICE_OP] == chr(UssdServiceOp.PSSR_INDICATION)
    await harness.close()
