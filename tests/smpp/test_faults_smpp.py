"""Injected faults over real SMPP binds (docs/network.md "Faults"): throttling, withheld
responses, SMS lost before a harness receiver and USSD network errors on the harness path."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from pathlib import Path

import pytest

from tests.conftest import make_config
from tests.smpp.helpers import (
    ACCOUNTS,
    ALICE,
    BOB,
    TIMEOUT,
    bound,
    no_request,
    start_server,
    text_of,
)
from tests.smpp.helpers import server_config as make_server_config
from ussd.clock import SimulatedClock
from ussd.config import Config
from ussd.events import DialogEnded, Outcome
from ussd.runtime import Gateway
from ussd.smpp.constants import CommandStatus, UssdServiceOp
from ussd.smpp.pcap import redact
from ussd.smpp.pdu import EnquireLink, SubmitSm, encode_pdu, encode_text, ussd_tlvs
from ussd.smpp.server import SmppServer


@pytest.fixture
def config() -> Config:
    return make_server_config()


def _submit(msisdn: str, text: str) -> SubmitSm:
    data, coding = encode_text(text)
    return SubmitSm(
        service_type="USSD",
        source_addr_ton=1,
        source_addr_npi=1,
        source_addr=msisdn,
        destination_addr="111",
        short_message=data,
        data_coding=coding,
        tlvs=ussd_tlvs(UssdServiceOp.PSSR_INDICATION, None, None),
    )


async def test_throttled_above_the_rate_per_bind(gateway: Gateway, server: SmppServer) -> None:
    gateway.faults.add_raw({"kind": "smpp_throttle", "rate": 2, "match": {"system_id": "harness"}})
    one = await bound(server)
    other = await bound(server)
    statuses = [(await one.submit(ALICE, "*100#")).command_status for _ in range(4)]
    throttled = CommandStatus.ESME_RTHROTTLED
    assert statuses == [0, 0, throttled, throttled]
    # Another bind has a budget of its own; the next second gives this one its budget back.
    assert (await other.submit(BOB, "*100#")).command_status == 0
    gateway.advance(1.0)
    assert (await one.submit(ALICE, "*100#")).command_status == 0
    assert gateway.faults.counts["smpp_throttle"] == 2
    metrics = gateway.metrics.render().decode()
    assert 'ussd_faults_injected_total{kind="smpp_throttle"} 2.0' in metrics
    assert 'status="ESME_RTHROTTLED"' in metrics
    await one.close()
    await other.close()


async def test_a_withheld_response_never_comes(gateway: Gateway, server: SmppServer) -> None:
    rule = {"kind": "smpp_withhold_response", "times": 1, "match": {"msisdn": ALICE}}
    gateway.faults.add_raw(rule)
    client = await bound(server)
    assert (await client.submit(BOB, "*100#")).command_status == 0  # another number
    # A national number matches the rule's international digits.
    pending = asyncio.ensure_future(client.call(_submit("8" + ALICE[1:], "*100#")))
    # The server handles a bind's PDUs in order: once the enquire_link is answered, the
    # submit_sm before it has been handled too, and its response was never sent.
    assert (await client.request(EnquireLink())).command_status == 0
    assert not pending.done()
    assert gateway.faults.counts["smpp_withhold_response"] == 1
    assert (await client.submit(ALICE, "*100#")).command_status == 0  # times: 1
    await client.close()
    with contextlib.suppress(ConnectionError, asyncio.CancelledError):
        await asyncio.wait_for(pending, TIMEOUT)


async def test_a_lost_sms_never_reaches_the_receiver(gateway: Gateway, server: SmppServer) -> None:
    gateway.faults.add_raw({"kind": "sms_lost", "times": 1, "match": {"msisdn": ALICE}})
    receiver = await bound(server)
    gateway.sms.send(ALICE, "your password: lost")
    gateway.sms.send(ALICE, "your password: second")
    pdu = await receiver.deliver_sm()
    assert text_of(pdu) == "your password: second"
    assert await no_request(receiver)
    await receiver.close()


async def test_a_delayed_sms_reaches_the_receiver_after_its_delay(
    gateway: Gateway, server: SmppServer
) -> None:
    gateway.faults.add_raw({"kind": "sms_delayed", "delay": "30s"})
    receiver = await bound(server)
    gateway.sms.send(BOB, "late")
    assert await no_request(receiver)
    gateway.advance(30)
    assert text_of(await receiver.deliver_sm()) == "late"
    await receiver.close()


async def test_a_network_error_on_the_harness_path(gateway: Gateway, server: SmppServer) -> None:
    gateway.faults.add_raw({"kind": "ussd_network_error", "match": {"msisdn": BOB}})
    client = await bound(server)
    response = await client.submit(BOB, "*100#")
    assert response.command_status == 0
    screen = await client.deliver_sm()
    assert text_of(screen).startswith("Network error.")
    assert screen.ussd_service_op == UssdServiceOp.PSSR_RESPONSE  # a final screen
    await client.close()


# -- barring PINs never reach a capture (docs/network.md "The barring password") -----------------


def _submit_bytes(text: str, coding: int | None = None) -> bytes:
    data, dc = encode_text(text, coding)
    pdu = SubmitSm(sequence_number=3, service_type="USSD", source_addr=ALICE, data_coding=dc)
    return encode_pdu(replace(pdu, short_message=data))


@pytest.mark.parametrize(
    ("typed", "captured"),
    [
        ("*33*1234#", "*33*****#"),
        ("#331*1234*16#", "#331*" + "****" + "*16#"),
        ("**03*330*0000*1357*1357#", "**03*330*" + "*" * 14 + "#"),  # OLD, NEW, NEW
        ("**03**0000*1357*1357#", "**03**" + "*" * 14 + "#"),
        ("*#33#", "*#33#"),  # interrogation carries no PIN
        ("**21*+79161234567#", "**21*+79161234567#"),  # not barring
        ("*100#", "*100#"),
        ("1234", "1234"),  # a reply: starred only when its screen asks for a password
    ],
)
def test_barring_pins_are_starred_in_captures(typed: str, captured: str) -> None:
    assert redact(_submit_bytes(typed)) == _submit_bytes(captured)
    ucs2 = _submit_bytes(typed, 0x08)
    assert redact(ucs2) == _submit_bytes(captured, 0x08)


async def test_a_capture_file_holds_no_barring_pin(tmp_path: Path) -> None:
    path = tmp_path / "smpp.pcap"
    config = make_server_config(capture=str(path))
    gw = Gateway.create(config, clock=SimulatedClock(), database=":memory:")
    server = await start_server(gw)
    client = await bound(server)
    for text in ("*33*2468#", "**03*330*0000*1357*1357#"):
        assert (await client.submit(ALICE, text)).command_status == 0
        await client.deliver_sm()
    await client.close()
    await server.stop()
    gw.close()
    data = path.read_bytes()
    assert b"2468" not in data and b"1357" not in data
    assert b"*33*****#" in data and b"**03*330*" + b"*" * 14 + b"#" in data


async def test_a_dropped_dialog_is_silent_until_the_timeout(
    gateway: Gateway, server: SmppServer
) -> None:
    gateway.faults.add_raw({"kind": "dialog_dropped", "at": "reply", "match": {"msisdn": BOB}})
    client = await bound(server)
    assert (await client.submit(BOB, "*111#")).command_status == 0
    first = await client.deliver_sm()
    assert first.ussd_service_op == UssdServiceOp.USSR_REQUEST
    answer = await client.submit(BOB, "1", UssdServiceOp.USSR_CONFIRM)
    assert answer.command_status == 0  # taken, then lost in the network
    assert await no_request(client)
    gateway.advance(gateway.config.ussd.reply_timeout)
    end = await client.deliver_sm()
    assert end.ussd_service_op == UssdServiceOp.PSSR_RESPONSE
    assert text_of(end) == "The session timed out."
    await client.close()


async def test_app_faults_on_an_smpp_application() -> None:
    accounts = [*ACCOUNTS, {"system_id": "shop", "password": "shoppw", "role": "app"}]
    config = make_config(
        smpp={"accounts": accounts, "app_timeout": "15s"},
        ussd={"routes": {**make_config().ussd.routes, "*555#": "smpp:shop"}},
    )
    gw = Gateway.create(config, clock=SimulatedClock(), database=":memory:")
    server = await start_server(gw)
    harness = await bound(server)
    app = await bound(server, system_id="shop", password="shoppw")
    ended: list[Outcome] = []
    gw.engine.subscribe(lambda e: ended.append(e.outcome) if isinstance(e, DialogEnded) else None)
    gw.faults.add_raw({"kind": "app_error", "times": 1, "match": {"app": "shop"}})
    assert (await harness.submit(ALICE, "*555#", destination_addr="555")).command_status == 0
    assert text_of(await harness.deliver_sm()) == "Сервис временно недоступен. Попробуйте позже."

    gw.faults.add_raw({"kind": "app_timeout", "times": 1, "match": {"code": "*555#"}})
    assert (await harness.submit(BOB, "*555#", destination_addr="555")).command_status == 0
    assert await no_request(harness)  # the subscriber waits: nothing was asked
    gw.advance(15)
    timed_out = await harness.deliver_sm()
    assert text_of(timed_out) == "Service temporarily unavailable. Please try again later."
    assert await no_request(app)  # the application never heard of either dialog
    assert [i.kind for i in gw.faults.recent] == ["app_error", "app_timeout"]
    assert ended == [Outcome.APP_ERROR, Outcome.APP_TIMEOUT]
    await harness.close()
    await app.close()
    await server.stop()
    gw.close()
