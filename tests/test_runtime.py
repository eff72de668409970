"""The gateway's timer task: it wakes at the next deadline or when the clock jumps."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import make_config
from ussd.clock import RealClock, SimulatedClock
from ussd.events import DialogEnded, Event, Outcome, SmsState, SmsStateChanged
from ussd.runtime import Gateway

RU = "79161234567"


async def test_timer_task_ends_dialog_when_simulated_clock_jumps() -> None:
    clock = SimulatedClock()
    gw = Gateway.create(make_config(), clock=clock)
    ended: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
    gw.engine.subscribe(
        lambda e: ended.set_result(e) if isinstance(e, DialogEnded) and not ended.done() else None
    )
    await gw.start()
    gw.engine.dial(RU, "*111#")
    clock.advance(31)  # no tick() by hand: the timer task must notice the jump
    event = await asyncio.wait_for(ended, 5)
    assert isinstance(event, DialogEnded) and event.outcome is Outcome.TIMEOUT
    await gw.stop()


async def test_timer_task_uses_real_deadlines() -> None:
    config = make_config(ussd={"reply_timeout": "50ms"}, clock={"mode": "real"})
    gw = Gateway.create(config, clock=RealClock())
    ended: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
    gw.engine.subscribe(
        lambda e: ended.set_result(e) if isinstance(e, DialogEnded) and not ended.done() else None
    )
    await gw.start()
    gw.engine.dial(RU, "*111#")
    event = await asyncio.wait_for(ended, 5)
    assert isinstance(event, DialogEnded) and event.outcome is Outcome.TIMEOUT
    await gw.stop()


def test_sms_expires_after_validity(gateway: Gateway, events: list[Event]) -> None:
    sms = gateway.sms.send(RU, "hello")
    gateway.advance(24 * 3600 - 1)
    assert gateway.sms.pending() == [sms]
    gateway.advance(1)
    assert gateway.sms.pending() == []
    [changed] = [e for e in events if isinstance(e, SmsStateChanged)]
    assert changed.sms.state is SmsState.EXPIRED
    stored = gateway.store.sms(sms.id)
    assert stored is not None and stored.state is SmsState.EXPIRED


def test_delivered_sms_does_not_expire(gateway: Gateway) -> None:
    sms = gateway.sms.send(RU, "hello")
    delivered = gateway.sms.mark_delivered(sms.id)
    assert delivered is not None and delivered.state is SmsState.DELIVERED
    assert gateway.sms.mark_delivered(sms.id) is None  # only once
    gateway.advance(2 * 24 * 3600)
    stored = gateway.store.sms(sms.id)
    assert stored is not None and stored.state is SmsState.DELIVERED


def test_pending_by_prefix(gateway: Gateway) -> None:
    a = gateway.sms.send("79161234567", "a")
    b = gateway.sms.send("79261234567", "b")
    assert gateway.sms.pending(("7916",)) == [a]
    assert gateway.sms.pending(()) == [a, b]


def test_advance_needs_a_simulated_clock() -> None:
    gw = Gateway.create(make_config(clock={"mode": "real"}))
    with pytest.raises(TypeError):
        gw.advance(1)


async def test_a_dialog_step_with_nothing_due_costs_the_timer_task_no_query() -> None:
    # The timer task wakes after every event; it used to tick the SMS centre and the link
    # scheduler then, a handful of SQL statements per dialog step, with nothing due.
    gw = Gateway.create(make_config(clock={"mode": "real"}), clock=RealClock())
    await gw.start()
    try:
        await gw.dial(RU, "*100#")  # the subscriber row is cached from here on
        assert gw._wake is not None
        for _ in range(100):  # let the task take its first wakes (a bounded number of turns)
            if not gw._wake.is_set():
                break
            await asyncio.sleep(0)
        statements: list[str] = []
        gw.store.db.set_trace_callback(statements.append)  # type: ignore[attr-defined]
        for _ in range(3):
            await gw.dial(RU, "*100#")
            assert gw._wake.is_set()  # the step woke the task...
            for _ in range(100):
                if not gw._wake.is_set():
                    break
                await asyncio.sleep(0)
            assert not gw._wake.is_set()  # ...which ran
        gw.store.db.set_trace_callback(None)  # type: ignore[attr-defined]
        assert not [s for s in statements if "sms" in s or "links" in s], statements
    finally:
        await gw.stop()


def test_the_next_deadline_follows_store_writes(gateway: Gateway) -> None:
    # Kept between calls, but never stale: a queued SMS moves it, its delivery clears it.
    assert gateway.sms.next_deadline() is None
    sms = gateway.sms.send(RU, "hello")
    assert sms is not None
    validity = gateway.config.sms.validity
    assert gateway.sms.next_deadline() == pytest.approx(gateway.clock.now() + validity)
    gateway.sms.mark_delivered(sms.id)
    assert gateway.sms.next_deadline() is None
