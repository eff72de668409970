"""Independent ESMEs against the server (docs/smpp.md): aiosmpplib's ESME and python-smpplib."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from ussd.events import SmsState
from ussd.runtime import Gateway
from ussd.smpp.constants import Tag, UssdServiceOp
from ussd.smpp.pdu import ItsSessionInfo
from ussd.smpp.server import SmppServer

from .test_server import ALICE, BOB, TIMEOUT, Waiter, delivered, server_config

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def config() -> Any:
    return server_config()


@pytest.fixture
async def server(gateway: Gateway) -> AsyncIterator[SmppServer]:
    srv = SmppServer(gateway)
    srv.address = await srv.start("127.0.0.1", 0)  # type: ignore[attr-defined]
    yield srv
    await srv.stop()


# -- aiosmpplib -------------------------------------------------------------------------------


class _Hook:
    """aiosmpplib hook: every parsed PDU from the server lands on a queue."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.errors: list[Exception] = []

    async def sending(self, smpp_message: Any, pdu: bytes, client_id: str) -> None:
        return None

    async def received(self, smpp_message: Any, pdu: bytes, client_id: str) -> None:
        if smpp_message is not None:
            self.queue.put_nowait(smpp_message)

    async def send_error(self, smpp_message: Any, error: Exception, client_id: str) -> None:
        self.errors.append(error)

    async def next(self, pred: Callable[[Any], bool]) -> Any:
        while True:
            msg = await asyncio.wait_for(self.queue.get(), TIMEOUT)
            if pred(msg):
                return msg


@contextlib.asynccontextmanager
async def aio_bound(
    server: SmppServer, system_id: str = "harness", password: str = "secret"
) -> AsyncIterator[tuple[Any, _Hook]]:
    """An aiosmpplib ESME bound as a transceiver, with the hook that sees its PDUs."""
    from aiosmpplib import ESME, AbstractHook

    hook_cls = type("Hook", (_Hook, AbstractHook), {})
    hook = hook_cls()
    host, port = server.address  # type: ignore[attr-defined]
    esme = ESME(
        smsc_host=host,
        smsc_port=port,
        system_id=system_id,
        password=password,
        hook=hook,
        log_level=logging.ERROR,
    )
    task = asyncio.create_task(esme.start())
    await hook.next(lambda m: type(m).__name__ == "BindTransceiverResp")
    yield esme, hook
    await asyncio.wait_for(esme.stop(), TIMEOUT)
    await asyncio.wait_for(task, TIMEOUT)  # start() returns once the ESME has shut down


@pytest.fixture
async def aio_esme(server: SmppServer) -> AsyncIterator[tuple[Any, _Hook]]:
    async with aio_bound(server) as bound:
        yield bound


def _aio_ussd(msisdn: str, text: str, op: int, session: int, seq: int) -> Any:
    from aiosmpplib import NPI, TON, OptionalParam, PhoneNumber, SubmitSm

    # aiosmpplib types these TLVs as strings: each octet travels as chr(octet), ASCII only.
    info = ItsSessionInfo(session, seq).to_bytes().decode("ascii")
    return SubmitSm(
        short_message=text,
        source=PhoneNumber(msisdn, TON.INTERNATIONAL, NPI.ISDN),
        destination=PhoneNumber("111"),
        service_type="USSD",
        registered_delivery=0,
        optional_params=[
            OptionalParam(Tag.USSD_SERVICE_OP, chr(op)),
            OptionalParam(Tag.ITS_SESSION_INFO, info),
        ],
    )


def _params(msg: Any) -> dict[int, Any]:
    return {p.tag: p.value for p in msg.optional_params or ()}


def _is_deliver(msg: Any) -> bool:
    return type(msg).__name__ == "DeliverSm"


async def test_aiosmpplib_password_dialog(
    server: SmppServer, gateway: Gateway, aio_esme: tuple[Any, _Hook]
) -> None:
    esme, hook = aio_esme
    steps = [
        ("*111*17#", UssdServiceOp.PSSR_INDICATION, UssdServiceOp.USSR_REQUEST),
        ("pass12", UssdServiceOp.USSR_CONFIRM, UssdServiceOp.USSR_REQUEST),
        ("pass12", UssdServiceOp.USSR_CONFIRM, UssdServiceOp.PSSR_RESPONSE),
    ]
    for i, (text, op, expected_op) in enumerate(steps):
        await esme.broker.enqueue(_aio_ussd(ALICE, text, op, session=7, seq=2 * i))
        resp = await hook.next(lambda m: type(m).__name__ == "SubmitSmResp")
        assert resp.command_status.value == 0
        screen = await hook.next(_is_deliver)
        params = _params(screen)
        assert params[Tag.USSD_SERVICE_OP] == chr(expected_op)
        end = expected_op == UssdServiceOp.PSSR_RESPONSE
        assert params[Tag.ITS_SESSION_INFO] == ItsSessionInfo(7, 2 * i + 1, end).to_bytes().decode()
        assert screen.source.number == "111" and screen.destination.number == ALICE
        assert screen.short_message  # decoded by aiosmpplib (UCS-2 Russian)
    # The SMS notice follows; aiosmpplib acknowledges it, which delivers it.
    sms = await hook.next(lambda m: _is_deliver(m) and not m.is_receipt())
    assert sms.source.number == "MTS" and sms.destination.number == ALICE
    assert "pass12" not in sms.short_message


async def test_aiosmpplib_mo_sms_gets_receipt(
    server: SmppServer, gateway: Gateway, aio_esme: tuple[Any, _Hook]
) -> None:
    from aiosmpplib import NPI, TON, PhoneNumber, SubmitSm

    esme, hook = aio_esme
    await esme.broker.enqueue(
        SubmitSm(
            short_message="Привет, Боб",
            source=PhoneNumber(ALICE, TON.INTERNATIONAL, NPI.ISDN),
            destination=PhoneNumber(BOB, TON.INTERNATIONAL, NPI.ISDN),
            registered_delivery=1,
        )
    )
    resp = await hook.next(lambda m: type(m).__name__ == "SubmitSmResp")
    mo = await hook.next(lambda m: _is_deliver(m) and not m.is_receipt())
    assert mo.short_message == "Привет, Боб" and mo.source.number == ALICE
    receipt = await hook.next(lambda m: _is_deliver(m) and m.is_receipt())
    data = receipt.parse_receipt()
    assert (data["id"], data["stat"], data["dlvrd"]) == (resp.message_id, "DELIVRD", 1)
    assert gateway.sms.inbox(BOB)[-1].state is SmsState.DELIVERED


# -- python-smpplib (blocking: runs in a thread) ----------------------------------------------


@pytest.fixture
def smpplib_ussd() -> Iterator[None]:
    # python-smpplib 2.2 lists ussd_service_op for submit_sm only (issue 104); its DeliverSM
    # parser needs it too to read USSD screens (docs/smpp.md).
    from smpplib import command
    from smpplib.command import Param

    saved = dict(command.DeliverSM.params)
    command.DeliverSM.params["ussd_service_op"] = Param(type=int, size=1)
    yield
    command.DeliverSM.params = saved


class _SmpplibHarness:
    """A blocking python-smpplib client, its listen loop on a thread, PDUs to asyncio."""

    def __init__(self, address: tuple[str, int], loop: asyncio.AbstractEventLoop) -> None:
        import smpplib.client

        self.loop = loop
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.client = smpplib.client.Client(*address, timeout=5, allow_unknown_opt_params=True)
        self.client.set_message_received_handler(self._received)
        self.client.set_message_sent_handler(self._received)
        # By default an error status raises inside read_once() and ends the listen loop.
        self.client.set_error_pdu_handler(lambda pdu: None)
        self.thread: threading.Thread | None = None

    def _received(self, pdu: Any, **kwargs: Any) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, pdu)

    def bind(self) -> None:
        self.client.connect()
        self.client.bind_transceiver(system_id="harness", password="secret")

    def start(self) -> None:
        self.thread = threading.Thread(target=self._listen, daemon=True)
        self.thread.start()

    def _listen(self) -> None:
        import smpplib.exceptions

        try:
            while self.client.state != "CLOSED":
                self.client.read_once(auto_send_enquire_link=False)
        except (smpplib.exceptions.ConnectionError, OSError, TimeoutError):
            pass

    async def next(self, command: str) -> Any:
        while True:
            pdu = await asyncio.wait_for(self.queue.get(), TIMEOUT)
            if pdu.command == command:
                return pdu


async def test_smpplib_password_dialog_and_sms(
    server: SmppServer, gateway: Gateway, smpplib_ussd: None
) -> None:
    import smpplib.consts

    harness = _SmpplibHarness(server.address, asyncio.get_running_loop())  # type: ignore[attr-defined]
    await asyncio.to_thread(harness.bind)
    assert server.binds == 1
    harness.start()
    waiter = Waiter(gateway)

    def send(text: str, op: int, seq: int) -> None:
        harness.client.send_message(
            service_type="USSD",
            source_addr_ton=smpplib.consts.SMPP_TON_INTL,
            source_addr_npi=smpplib.consts.SMPP_NPI_ISDN,
            source_addr="8" + BOB[1:],  # national format with trunk prefix 8
            destination_addr="111",
            short_message=text.encode("ascii"),
            data_coding=0x0F,
            ussd_service_op=op,
            its_session_info=(0x21 << 8) | (seq << 1),
            user_message_reference=0x0102,
        )

    steps = [
        ("*111*17#", UssdServiceOp.PSSR_INDICATION, UssdServiceOp.USSR_REQUEST),
        ("word99", UssdServiceOp.USSR_CONFIRM, UssdServiceOp.USSR_REQUEST),
        ("word99", UssdServiceOp.USSR_CONFIRM, UssdServiceOp.PSSR_RESPONSE),
    ]
    for i, (text, op, expected_op) in enumerate(steps):
        await asyncio.to_thread(send, text, op, 2 * i)
        resp = await harness.next("submit_sm_resp")
        assert resp.status == 0
        screen = await harness.next("deliver_sm")
        assert screen.ussd_service_op == expected_op
        end = expected_op == UssdServiceOp.PSSR_RESPONSE
        assert screen.its_session_info == (0x21 << 8) | ((2 * i + 1) << 1) | end
        assert screen.user_message_reference == 0x0102
        assert screen.destination_addr == BOB.encode()
    (sms,) = gateway.sms.inbox(BOB)
    # The notice may have gone out, and smpplib's thread acknowledged it, before the last
    # screen was read here: wait for the delivery only if it has not happened yet (events
    # reach the waiter on this loop, so nothing lands between the look and the wait).
    done = waiter.expect(delivered(sms.id))
    notice = await harness.next("deliver_sm")
    assert notice.source_addr == b"MTS" and notice.source_addr_ton == 5
    if gateway.sms.inbox(BOB)[0].state is not SmsState.DELIVERED:
        await asyncio.wait_for(done, TIMEOUT)  # smpplib answered deliver_sm_resp OK

    await asyncio.to_thread(harness.client.send_pdu, _smpplib_unbind(harness.client))
    assert harness.thread is not None
    await asyncio.to_thread(harness.thread.join, TIMEOUT)
    harness.client.disconnect()
    assert server.binds == 0


def _smpplib_unbind(client: Any) -> Any:
    from smpplib import smpp

    return smpp.make_pdu("unbind", client=client)


async def test_smpplib_reply_without_dialog_and_bad_bind(server: SmppServer) -> None:
    import smpplib.client
    import smpplib.exceptions

    def bad_bind() -> int:
        client = smpplib.client.Client(*server.address, timeout=5, allow_unknown_opt_params=True)  # type: ignore[attr-defined]
        client.connect()
        try:
            client.bind_transceiver(system_id="harness", password="nope")
        except smpplib.exceptions.PDUError as exc:
            return int(exc.args[1])
        finally:
            client.disconnect()
        return 0

    assert await asyncio.to_thread(bad_bind) == 0x0E

    harness = _SmpplibHarness(server.address, asyncio.get_running_loop())  # type: ignore[attr-defined]
    await asyncio.to_thread(harness.bind)
    harness.start()
    await asyncio.to_thread(
        harness.client.send_message,
        service_type="USSD",
        source_addr=ALICE,
        destination_addr="111",
        short_message=b"1",
        ussd_service_op=UssdServiceOp.USSR_CONFIRM,
    )
    resp = await harness.next("submit_sm_resp")
    assert resp.status == 0xC4
    await asyncio.to_thread(harness.client.send_pdu, _smpplib_unbind(harness.client))
    assert harness.thread is not None
    await asyncio.to_thread(harness.thread.join, TIMEOUT)
    harness.client.disconnect()
