"""Store-and-forward drain (docs/smpp.md): linear in the queue, interleaved with other traffic.

Nothing here is timed: the work is counted (SMS rows the server decodes from the store) and
the interleaving is observed (how many deliver_sm had gone out when a dial was served).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

import ussd.smpp.smsc as smsc_mod
import ussd.store as store_mod
from tests.smpp.helpers import ALICE, bound, server_config, text_of
from tests.smpp.helpers import RecordingEsme as Esme
from ussd.clock import SimulatedClock
from ussd.config import Config
from ussd.runtime import Gateway
from ussd.smpp.pdu import DeliverSm, EnquireLink
from ussd.smpp.server import SmppServer

TIMEOUT = 30.0


@pytest.fixture
def config() -> Config:
    return server_config(window=10)


def queue(gateway: Gateway, n: int, prefix: str = "7916") -> None:
    """n SMS queued while no receiver is bound (numbers the "ranges" account does not cover)."""
    with gateway.store.transaction():
        for i in range(n):
            gateway.sms.queue(f"{prefix}{i:07d}", f"queued {i}")


async def drained(client: Esme, n: int) -> list[DeliverSm]:
    got: list[DeliverSm] = []
    while len(got) < n:
        pdu = await asyncio.wait_for(client.requests.get(), TIMEOUT)
        if isinstance(pdu, DeliverSm):
            got.append(pdu)
    return got


def count_decoded_sms(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """An injected counter: every SMS row the store decodes (whatever query read it)."""
    counter = [0]
    decode = store_mod._sms

    def counting(row: tuple[Any, ...]) -> Any:
        counter[0] += 1
        return decode(row)

    monkeypatch.setattr(store_mod, "_sms", counting)
    return counter


@pytest.mark.parametrize("n", [300, 1200])
async def test_drain_reads_each_queued_sms_a_bounded_number_of_times(
    server: SmppServer, gateway: Gateway, monkeypatch: pytest.MonkeyPatch, n: int
) -> None:
    queue(gateway, n)
    decoded = count_decoded_sms(monkeypatch)
    client = await bound(server)
    got = await drained(client, n)
    assert sorted(text_of(p) for p in got) == sorted(f"queued {i}" for i in range(n))
    # Recorded as delivered: every part acknowledged (the record follows within the loop turn).
    for _ in range(100):
        if not gateway.sms.pending():
            break
        await asyncio.sleep(0)
    decoded_now = decoded[0]
    assert gateway.sms.pending() == []
    # Each SMS is read once by the drain and once when recorded delivered, whatever n and a
    # window of 10 (it was the whole queue per freed window: ~n²/20 rows, 4,500 for n=300).
    assert decoded_now <= 2 * n + 50, decoded_now
    await client.close()


async def test_a_dial_is_served_while_a_large_drain_is_in_progress(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A window as big as the queue: before, one scan wrote the whole queue in one go and a
    # dial waited for all of it. A scan now does a bounded step per loop iteration.
    n = 2000
    monkeypatch.setattr(smsc_mod, "SCAN_STEP", 50)
    gateway = Gateway.create(server_config(window=n), clock=SimulatedClock(), database=":memory:")
    srv = SmppServer(gateway, transport_clock=gateway.clock)
    address = await srv.start("127.0.0.1", 0)
    srv.address = address  # type: ignore[attr-defined]
    try:
        queue(gateway, n)
        sent_at_dial: list[int] = []
        dial = gateway.engine.handle_dial

        def counting_dial(msisdn: str, text: str, **kwargs: Any) -> Any:
            sent_at_dial.append(srv.metrics.pdus[("out", "deliver_sm", "ESME_ROK")])
            return dial(msisdn, text, **kwargs)

        monkeypatch.setattr(gateway.engine, "handle_dial", counting_dial)
        # The prober's account covers none of the queued numbers: only its screens reach it.
        prober = await bound(srv, system_id="ranges", password="pw")
        drainer = await bound(srv)
        await drainer.deliver_sm()  # the drain has begun
        resp = await prober.submit(ALICE, "*100#")
        assert resp.command_status == 0
        screen = await prober.deliver_sm()
        assert screen.service_type == "USSD"
        assert sent_at_dial and sent_at_dial[0] < n, sent_at_dial
        await drained(drainer, n - 1)
        await prober.close()
        await drainer.close()
    finally:
        await srv.stop()
        gateway.engine.shutdown()
        gateway.store.close()


def vm_steps(gateway: Gateway, work: Callable[[], object]) -> int:
    """SQLite virtual-machine steps (in hundreds) that work() costs: rows visited, not time."""
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0

    gateway.store.db.set_progress_handler(count, 100)
    try:
        work()
    finally:
        gateway.store.db.set_progress_handler(None, 100)
    return steps[0]


def test_per_event_sms_work_does_not_walk_the_queue(gateway: Gateway) -> None:
    # The gateway's timer runs sms.tick() and next_deadline() after every event, a drain step
    # reads from its cursor: none may visit every queued SMS (that made a drain O(N²) too).
    def per_event() -> None:
        gateway.sms.tick()
        gateway.sms.next_deadline()
        gateway.sms.queued_after(50, 10)

    queue(gateway, 100)
    small = vm_steps(gateway, per_event)
    queue(gateway, 5000, prefix="7917")
    large = vm_steps(gateway, per_event)
    assert large <= small + 5, (small, large)


async def test_a_harness_refusing_the_queue_costs_o1_per_refusal(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Real transport timers (the default): each refusal arms the retry timer. It looked at
    # every retry pending so far (sum over n refusals: n²/2); now it only moves it earlier.
    n = 300
    srv = SmppServer(gateway)
    srv.address = await srv.start("127.0.0.1", 0)  # type: ignore[attr-defined]
    looked_at = [0]
    smsc = srv.smsc
    retries_due = smsc._retries_due

    def counting(now: float) -> None:
        looked_at[0] += len(smsc._retry_at) + len(smsc._receipt_retry_at)
        retries_due(now)

    monkeypatch.setattr(smsc, "_retries_due", counting)
    try:
        queue(gateway, n)
        client = await bound(srv, auto_ack=False)
        for _ in range(n):
            pdu = await asyncio.wait_for(client.deliver_sm(), TIMEOUT)
            client.ack(pdu, 0x08)  # ESME_RSYSERR: refused
        await client.request(EnquireLink())  # every refusal has been handled by now
        assert len(smsc._retry_at) == n
        assert looked_at[0] <= 2 * n, looked_at[0]
        assert srv.scan_reads <= 3 * n, srv.scan_reads
        await client.close()
    finally:
        await srv.stop()
