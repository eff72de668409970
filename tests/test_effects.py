"""An engine that waits without I/O (docs/design.md "Waiting for an answer").

A test-only service asks an outside party for each screen. The engine is driven by hand with a
simulated clock (tables), then through the Gateway's performers, then end to end over HTTP.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import make_config
from ussd.clock import RealClock, SimulatedClock
from ussd.effects import Answer, Cancel, Effect, Failure, Result
from ussd.engine import Dialog, DialogBusy, NoDialog
from ussd.events import (
    DialogEnded,
    DialogStarted,
    Event,
    Outcome,
    Screen,
    ScreenShown,
    SmsQueued,
)
from ussd.http import start_http
from ussd.runtime import Gateway
from ussd.services.base import Await, Context, Continue, End, Step

RU = "79161234567"
ERROR_RU = "Сервис временно недоступен. Попробуйте позже."  # common.error
KIND = "test"


class Lookup:
    """Asks `test` effects for its screens; `again` asks once more, anything else ends."""

    name = "test.lookup"
    texts_used = ("common.error",)

    def __init__(self) -> None:
        self.timeout = 10.0
        self.results: list[Result] = []

    def start(self, ctx: Context, args: Mapping[str, str]) -> Step:
        return Await(KIND, {"ask": "first"}, self.timeout, "asked", {"asks": 1})

    def reply(self, ctx: Context, screen: str, values: Mapping[str, Any], text: str) -> Step:
        if text == "again":
            return Await(KIND, {"ask": text}, self.timeout, "asked", {"asks": values["asks"] + 1})
        return End(f"bye {text}")

    def resume(self, ctx: Context, screen: str, values: Mapping[str, Any], result: Result) -> Step:
        self.results.append(result)
        if isinstance(result, Failure):
            return End(ctx.t("common.error"), outcome=result.cause)
        if result.value.get("end"):
            return End(str(result.value["text"]))
        return Continue("shown", text=f"{result.value['text']} #{values['asks']}", values=values)


class NoResume:
    """Awaits but cannot be resumed: a service bug."""

    name = "test.noresume"
    texts_used = ()

    def start(self, ctx: Context, args: Mapping[str, str]) -> Step:
        return Await(KIND, {}, 5, "asked")

    def reply(self, ctx: Context, screen: str, values: Mapping[str, Any], text: str) -> Step:
        raise AssertionError("never asked")


ROUTES = {
    "*555#": "test.lookup",
    "*556#": "test.noresume",
    "*100#": "balance",
    "*111#": "menu:main",
    "*111*17#": "password.set",
}


def lookup_gateway(clock: SimulatedClock | None = None, **sections: Any) -> tuple[Gateway, Lookup]:
    service = Lookup()
    config = make_config(ussd={"routes": ROUTES, "reply_timeout": "30s"}, **sections)
    gw = Gateway.create(
        config,
        clock=clock or SimulatedClock(),
        database=":memory:",
        services={service.name: service, NoResume.name: NoResume()},
    )
    return gw, service


@pytest.fixture
def world() -> Iterator[tuple[Gateway, Lookup, list[Event]]]:
    gw, service = lookup_gateway()
    seen: list[Event] = []
    gw.engine.subscribe(seen.append)
    yield gw, service, seen
    gw.engine.shutdown()
    gw.store.close()


def at(gw: Gateway, seconds: float) -> None:
    """Move the clock and tick the engine alone (Gateway.advance would perform the notices)."""
    assert isinstance(gw.clock, SimulatedClock)
    target = gw.clock.now() + seconds
    while (deadline := gw.engine.next_deadline()) is not None and deadline <= target:
        gw.clock.advance(max(0.0, deadline - gw.clock.now()))
        gw.engine.tick()
    gw.clock.advance(target - gw.clock.now())
    gw.engine.tick()


def drained(gw: Gateway) -> list[Effect | Cancel]:
    out: list[Effect | Cancel] = []
    while (notice := gw.engine.next_effect()) is not None:
        out.append(notice)
    return out


def ended(events: list[Event]) -> list[DialogEnded]:
    return [e for e in events if isinstance(e, DialogEnded)]


# -- the engine alone, on a simulated clock ----------------------------------------------------


def test_a_waiting_step_is_an_effect_with_a_deadline(world: Any) -> None:
    gw, _, events = world
    now = gw.clock.now()
    effect = gw.engine.handle_dial(RU, "*555#")
    assert isinstance(effect, Effect)
    assert (effect.kind, effect.msisdn, effect.service_code) == (KIND, RU, "555")
    assert effect.request == {"ask": "first"} and effect.deadline == now + 10
    assert drained(gw) == [effect]  # queued once for the runtime
    assert gw.engine.next_deadline() == now + 10  # before the dialog's 180 s maximum
    assert [type(e) for e in events] == [DialogStarted]  # no screen yet
    assert gw.engine.dialog(RU) is not None  # open: release and replace can find it


def test_answer_resumes_the_dialog(world: Any) -> None:
    gw, service, events = world
    effect = gw.engine.handle_dial(RU, "*555#")
    at(gw, 4)
    screen = gw.engine.resume(effect.id, Answer({"text": "Hello"}), gw.clock.now())
    assert isinstance(screen, Screen)
    assert (screen.text, screen.end, screen.session) == ("Hello #1", False, effect.session)
    assert [type(e) for e in events] == [DialogStarted, ScreenShown]
    assert service.results == [Answer({"text": "Hello"})]
    assert drained(gw) == [effect]  # nothing to cancel: it was answered
    # The reply timer starts when the screen is shown (t=4), not when the user dialled.
    assert gw.engine.next_deadline() == gw.clock.now() + 30
    assert gw.engine.reply(RU, "ok").text == "bye ok"
    assert ended(events)[-1].outcome is Outcome.COMPLETED


def test_a_reply_may_wait_again_and_the_answer_may_end(world: Any) -> None:
    gw, _, events = world
    first = gw.engine.handle_dial(RU, "*555#")
    gw.engine.resume(first.id, Answer({"text": "Menu"}), gw.clock.now())
    second = gw.engine.handle_reply(RU, "again")
    assert isinstance(second, Effect) and second.id != first.id
    assert second.request == {"ask": "again"} and second.session == first.session
    last = gw.engine.resume(second.id, Answer({"text": "Done", "end": True}), gw.clock.now())
    assert isinstance(last, Screen) and last.end and last.text == "Done"
    assert ended(events)[-1].outcome is Outcome.COMPLETED
    assert gw.engine.dialog(RU) is None


def test_a_waiting_dialog_is_plain_state(world: Any) -> None:
    gw, _, _ = world
    effect = gw.engine.handle_dial(RU, "*555#")
    dialog = gw.engine.dialog(RU)
    state = json.loads(json.dumps(dialog.to_state()))
    assert state["waiting"] == effect.id and state["waiting_deadline"] == effect.deadline
    restored = Dialog.from_state(state)
    assert restored == dialog and restored.outcome is Outcome.COMPLETED  # the enum, not a str


def test_reply_while_waiting_is_refused(world: Any) -> None:
    gw, _, _ = world
    gw.engine.handle_dial(RU, "*555#")
    with pytest.raises(DialogBusy):
        gw.engine.reply(RU, "1")
    assert gw.engine.dialog(RU) is not None  # still waiting, nothing lost


# What stops the wait: each cancels the effect with its cause, and the answer that still comes
# afterwards is dropped and counted.
INTERRUPTIONS: list[tuple[str, Callable[[Gateway], object], Outcome, str | None]] = [
    ("effect timeout", lambda gw: at(gw, 0.001), Outcome.APP_TIMEOUT, ERROR_RU),
    ("release", lambda gw: gw.engine.release(RU), Outcome.RELEASED, None),
    ("replaced by a new dial", lambda gw: gw.engine.dial(RU, "*100#"), Outcome.REPLACED, None),
    ("shutdown", lambda gw: gw.engine.shutdown(), Outcome.SHUTDOWN, None),
]


@pytest.mark.parametrize(
    ("case", "interrupt", "outcome", "text"), INTERRUPTIONS, ids=[c[0] for c in INTERRUPTIONS]
)
def test_what_ends_the_wait(
    world: Any,
    case: str,
    interrupt: Callable[[Gateway], object],
    outcome: Outcome,
    text: str | None,
) -> None:
    gw, service, events = world
    effect = gw.engine.handle_dial(RU, "*555#")
    assert drained(gw) == [effect]
    at(gw, 9.999)
    assert gw.engine.dialog(RU) is not None  # still waiting just before the deadline
    interrupt(gw)
    [cancel] = [n for n in drained(gw) if isinstance(n, Cancel)]
    assert cancel == Cancel(effect.id, RU, effect.session, outcome)
    [end] = [e for e in ended(events) if e.session == effect.session]
    assert end.outcome is outcome
    assert (end.screen.text if end.screen else None) == text
    late = gw.engine.resume(effect.id, Answer({"text": "too late"}), gw.clock.now())
    assert late is None and gw.engine.late_answers == 1
    assert all(r != Answer({"text": "too late"}) for r in service.results)
    assert gw.engine.dialog(RU) is None or gw.engine.dialog(RU).session != effect.session


def test_the_reply_timer_rests_while_waiting(world: Any) -> None:
    gw, service, events = world
    service.timeout = 100.0  # longer than the 30 s reply timeout
    effect = gw.engine.handle_dial(RU, "*555#")
    at(gw, 60)
    assert gw.engine.dialog(RU) is not None and ended(events) == []
    gw.engine.resume(effect.id, Answer({"text": "Slow"}), gw.clock.now())
    at(gw, 29.9)
    assert gw.engine.dialog(RU) is not None
    at(gw, 0.1)
    assert ended(events)[-1].outcome is Outcome.TIMEOUT


def test_the_dialog_maximum_still_applies_while_waiting(world: Any) -> None:
    gw, service, events = world
    service.timeout = 1000.0
    effect = gw.engine.handle_dial(RU, "*555#")
    at(gw, 180)
    assert ended(events)[-1].outcome is Outcome.MAX_DURATION
    assert Cancel(effect.id, RU, effect.session, Outcome.MAX_DURATION) in drained(gw)


def test_synchronous_callers_get_the_no_performer_error_screen(world: Any) -> None:
    gw, service, events = world
    screen = gw.engine.dial(RU, "*555#")  # engine.dial performs nothing: no waiting
    assert screen.end and screen.text == ERROR_RU
    [failure] = service.results
    assert isinstance(failure, Failure) and failure.cause is Outcome.APP_ERROR
    assert "no performer" in failure.reason and repr(KIND) in failure.reason
    assert ended(events)[-1].outcome is Outcome.APP_ERROR
    assert drained(gw) == []  # the effect never reached the outbox's reader


def test_a_service_that_awaits_without_resume_costs_only_its_dialog(world: Any) -> None:
    gw, _, events = world
    screen = gw.engine.handle_dial(RU, "*556#")
    assert isinstance(screen, Screen) and screen.end and screen.text == ERROR_RU
    assert ended(events)[-1].outcome is Outcome.ERROR
    assert drained(gw) == []


# Any sequence of dials, replies, releases, answers (also stale ones) and clock steps: every
# effect is answered or cancelled, never both; at most the open dialog's one is outstanding,
# its deadline is armed, and every answer nobody waits for is counted.
OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("dial"), st.sampled_from(["*555#", "*100#", "*111#"])),
        st.tuples(st.just("reply"), st.sampled_from(["again", "x", "98"])),
        st.tuples(st.just("release"), st.just(0)),
        st.tuples(st.just("answer"), st.integers(0, 4), st.booleans()),
        st.tuples(st.just("fail"), st.integers(0, 4)),
        st.tuples(st.just("advance"), st.sampled_from([0.5, 5.0, 9.999, 10.0, 31.0, 200.0])),
    ),
    max_size=25,
)


_SHARED: list[Gateway] = []  # one world for every example: building one costs ~90 ms


@settings(max_examples=100, deadline=None)
@given(OPERATIONS)
def test_every_effect_is_answered_or_cancelled_once(operations: list[tuple[Any, ...]]) -> None:
    if not _SHARED:
        _SHARED.append(lookup_gateway()[0])
    gw = _SHARED[0]
    engine = gw.engine
    engine.shutdown()  # what the previous example left open
    drained(gw)
    effects: dict[str, Effect] = {}
    cancelled: dict[str, Cancel] = {}
    answered: set[str] = set()
    dropped = engine.late_answers
    for op in operations:
        try:
            if op[0] == "dial":
                engine.handle_dial(RU, op[1])
            elif op[0] == "reply":
                engine.handle_reply(RU, op[1])
            elif op[0] == "release":
                engine.release(RU)
            elif op[0] == "advance":
                at(gw, op[1])
            elif effects:
                ids = list(effects)
                effect_id = ids[max(0, len(ids) - 1 - op[1])]
                result: Result = (
                    Answer({"text": "t", "end": op[2]})
                    if op[0] == "answer"
                    else Failure(Outcome.APP_ERROR, "HTTP 500")
                )
                if engine.resume(effect_id, result, gw.clock.now()) is None:
                    dropped += 1
                else:
                    answered.add(effect_id)
        except (NoDialog, DialogBusy):
            pass  # the user's side asked something its state forbids: refused, no change
        for notice in drained(gw):
            if isinstance(notice, Effect):
                assert notice.id not in effects
                effects[notice.id] = notice
            else:
                assert notice.id in effects and notice.id not in cancelled
                cancelled[notice.id] = notice
        assert not answered & set(cancelled)
        outstanding = set(effects) - answered - set(cancelled)
        waiting = {d.waiting for d in engine.dialogs.values() if d.waiting}
        assert outstanding == waiting and len(waiting) <= 1
        for effect_id in waiting:
            deadline = effects[effect_id].deadline
            assert gw.clock.now() < deadline
            next_deadline = engine.next_deadline()
            assert next_deadline is not None and next_deadline <= deadline
        assert engine.late_answers == dropped


# -- events are delivered after the engine's call, not from inside it ------------------------


def test_a_listener_may_call_back_and_every_listener_hears_events_in_order(world: Any) -> None:
    gw, _, _ = world
    heard: list[tuple[str, Outcome | None]] = []

    def releasing(event: Event) -> None:
        if isinstance(event, ScreenShown) and not event.screen.end:
            assert gw.engine.release(event.msisdn)  # a call back into the engine: no guard

    def recording(event: Event) -> None:
        heard.append((type(event).__name__, getattr(event, "outcome", None)))

    gw.engine.subscribe(releasing)
    gw.engine.subscribe(recording)
    screen = gw.engine.dial(RU, "*111#")  # a menu: the first listener releases it
    assert not screen.end and gw.engine.dialog(RU) is None
    # Delivered from inside the step, the second listener heard the end before the screen.
    assert heard == [
        ("DialogStarted", None),
        ("ScreenShown", None),
        ("DialogEnded", Outcome.RELEASED),
    ]


def test_events_wait_for_the_step_to_finish(world: Any) -> None:
    gw, _, _ = world
    open_then: list[bool] = []
    # The password notice is sent from inside the last step; heard after it, the dialog the
    # step ended is gone (heard from inside, it was still open).
    gw.engine.subscribe(
        lambda e: (
            open_then.append(gw.engine.dialog(RU) is not None) if isinstance(e, SmsQueued) else None
        )
    )
    gw.engine.dial(RU, "*111*17#")
    gw.engine.reply(RU, "secret12")
    assert gw.engine.reply(RU, "secret12").end
    assert open_then == [False]


# -- the Gateway performs effects -------------------------------------------------------------


class Gate:
    """A performer that answers when told to: no sleeps, the test sets the event."""

    def __init__(self, answer: Result | Exception | None = None) -> None:
        self.asked: list[Effect] = []
        self.called = asyncio.Event()
        self.release = asyncio.Event()
        self.cancelled = asyncio.Event()
        self.answer = answer if answer is not None else Answer({"text": "From app"})

    async def __call__(self, effect: Effect) -> Result:
        self.asked.append(effect)
        self.called.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


async def test_gateway_dial_returns_the_screen_once_answered() -> None:
    gw, _ = lookup_gateway()
    gate = Gate()
    gw.register(KIND, gate)
    await gw.start()
    try:
        dialing = asyncio.create_task(gw.dial(RU, "*555#"))
        await asyncio.wait_for(gate.called.wait(), 5)
        assert not dialing.done()
        gate.release.set()
        screen = await asyncio.wait_for(dialing, 5)
        assert (screen.text, screen.end) == ("From app #1", False)
        assert gate.asked[0].request == {"ask": "first"}
        # Built-in services answer at once, as before.
        assert (await gw.dial(RU, "*100#")).end
    finally:
        await gw.stop()


@pytest.mark.parametrize(
    ("performer", "reason"),
    [
        (None, "no performer for effects of kind 'test'"),
        (Gate(RuntimeError("boom")), "the performer failed"),
        (Gate(Failure(Outcome.APP_ERROR, "HTTP 500")), "HTTP 500"),
    ],
    ids=["no performer", "performer raises", "performer fails"],
)
async def test_gateway_failures_end_with_the_error_screen(
    performer: Gate | None, reason: str
) -> None:
    gw, service = lookup_gateway()
    if performer is not None:
        performer.release.set()
        gw.register(KIND, performer)
    await gw.start()
    try:
        screen = await asyncio.wait_for(gw.dial(RU, "*555#"), 5)
        assert screen.end and screen.text == ERROR_RU
        assert service.results == [Failure(Outcome.APP_ERROR, reason)]
    finally:
        await gw.stop()


async def test_gateway_timeout_cancels_the_performer() -> None:
    clock = SimulatedClock()
    gw, service = lookup_gateway(clock)
    ends: list[DialogEnded] = []
    gw.engine.subscribe(lambda e: ends.append(e) if isinstance(e, DialogEnded) else None)
    gate = Gate()
    gw.register(KIND, gate)
    await gw.start()
    try:
        dialing = asyncio.create_task(gw.dial(RU, "*555#"))
        await asyncio.wait_for(gate.called.wait(), 5)
        clock.advance(10)  # the timer task wakes on the jump and expires the effect
        screen = await asyncio.wait_for(dialing, 5)
        assert screen.end and screen.text == ERROR_RU
        assert [e.outcome for e in ends] == [Outcome.APP_TIMEOUT]
        await asyncio.wait_for(gate.cancelled.wait(), 5)
        [failure] = service.results
        assert isinstance(failure, Failure) and failure.cause is Outcome.APP_TIMEOUT
    finally:
        await gw.stop()


async def test_a_real_clock_timer_wakes_for_an_effect_asked_on_a_reply() -> None:
    # A reply that waits emits no event, yet the timer task must re-arm for the effect's
    # deadline (50 ms here) rather than sleep until the 30 s reply timeout it knew.
    config = make_config(ussd={"routes": ROUTES}, clock={"mode": "real"})
    service = Lookup()
    gw = Gateway.create(
        config,
        clock=RealClock(),
        database=":memory:",
        services={service.name: service, NoResume.name: NoResume()},
    )
    asked: list[Effect] = []
    hang = asyncio.Event()

    async def first_only(effect: Effect) -> Result:
        asked.append(effect)
        if len(asked) > 1:
            await hang.wait()  # never set: only the deadline ends this one
        return Answer({"text": "Menu"})

    gw.register(KIND, first_only)
    await gw.start()
    try:
        assert not (await asyncio.wait_for(gw.dial(RU, "*555#"), 5)).end
        service.timeout = 0.05
        screen = await asyncio.wait_for(gw.reply(RU, "again"), 5)
        assert screen.end and screen.text == ERROR_RU
        [*_, failure] = service.results
        assert isinstance(failure, Failure) and failure.cause is Outcome.APP_TIMEOUT
    finally:
        await gw.stop()


@pytest.mark.parametrize("how", ["release", "new dial"])
async def test_gateway_release_or_new_dial_cancels_the_performer(how: str) -> None:
    gw, service = lookup_gateway()
    gate = Gate()
    gw.register(KIND, gate)
    await gw.start()
    try:
        dialing = asyncio.create_task(gw.dial(RU, "*555#"))
        await asyncio.wait_for(gate.called.wait(), 5)
        if how == "release":
            assert gw.engine.release(RU)  # as any transport releases: the engine's own call
        else:
            assert (await gw.dial(RU, "*100#")).end
        with pytest.raises(NoDialog, match=r"released|replaced"):
            await asyncio.wait_for(dialing, 5)
        await asyncio.wait_for(gate.cancelled.wait(), 5)
        assert service.results == []  # the service never heard an answer
    finally:
        await gw.stop()


async def test_an_answer_that_ignores_the_cancel_is_dropped_and_counted() -> None:
    gw, service = lookup_gateway()
    arrived = asyncio.Event()
    go_on = asyncio.Event()
    tasks: list[asyncio.Task[Any]] = []

    async def stubborn(effect: Effect) -> Result:
        task = asyncio.current_task()
        assert task is not None
        tasks.append(task)  # the gateway's task performing it: it resumes the engine
        arrived.set()
        while not go_on.is_set():  # swallows cancels, as a careless client library might
            try:
                await go_on.wait()
            except asyncio.CancelledError:
                continue
        return Answer({"text": "late"})

    gw.register(KIND, stubborn)
    await gw.start()
    try:
        dialing = asyncio.create_task(gw.dial(RU, "*555#"))
        await asyncio.wait_for(arrived.wait(), 5)
        gw.engine.release(RU)
        with pytest.raises(NoDialog):
            await asyncio.wait_for(dialing, 5)
        assert gw.engine.late_answers == 0
        go_on.set()
        await asyncio.wait_for(tasks[0], 5)  # it answers anyway, after the cancel
        assert gw.engine.late_answers == 1 and service.results == []
    finally:
        await gw.stop()


# -- end to end over the phones API -----------------------------------------------------------


async def test_http_dial_waits_for_the_performer() -> None:
    gw, _ = lookup_gateway()
    gate = Gate()
    gw.register(KIND, gate)
    await gw.start()
    server = await start_http(gw, "127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession(base_url=server.url) as http:

            async def post(path: str, text: str) -> tuple[int, Any]:
                async with http.post(f"/api/v1/phones/{RU}/{path}", json={"text": text}) as r:
                    return r.status, await r.json()

            dialing = asyncio.create_task(post("dial", "*555#"))
            await asyncio.wait_for(gate.called.wait(), 5)
            # Asked, not answered: a reply now is refused, the request is still open.
            status, body = await post("reply", "1")
            assert (status, body["error"]["code"]) == (409, "dialog_busy")
            assert not dialing.done()
            gate.release.set()
            status, screen = await asyncio.wait_for(dialing, 5)
            assert status == 200
            assert (screen["text"], screen["end"], screen["pages"]) == ("From app #1", False, 1)
            assert gate.asked[0].session == screen["session"]
            status, screen = await post("reply", "thanks")
            assert (status, screen["text"], screen["end"]) == (200, "bye thanks", True)
    finally:
        await server.stop()
        await gw.stop()


# -- over SMPP: the harness path waits too ---------------------------------------------------


async def smpp_world(clock: SimulatedClock) -> tuple[Gateway, Lookup, Any, Any]:
    from tests.smpp.helpers import ACCOUNTS, bound, start_server

    gw, service = lookup_gateway(clock, smpp={"accounts": ACCOUNTS})
    await gw.start()
    server = await start_server(gw, transport_clock=RealClock())
    return gw, service, server, await bound(server)


async def test_smpp_dial_is_accepted_at_once_and_the_screen_follows_the_answer() -> None:
    from tests.smpp.helpers import no_request, text_of
    from ussd.smpp.constants import CommandStatus, UssdServiceOp

    gw, _, server, harness = await smpp_world(SimulatedClock())
    gate = Gate()
    gw.register(KIND, gate)
    try:
        resp = await harness.submit(RU, "*555#")
        # The submit is acknowledged while the app is asked; no screen yet.
        assert resp.command_status == 0 and resp.message_id
        await asyncio.wait_for(gate.called.wait(), 5)
        assert await no_request(harness)
        # A reply before the screen it answers is refused; the dialog goes on.
        busy = await harness.submit(RU, "1", op=UssdServiceOp.USSR_CONFIRM)
        assert busy.command_status == CommandStatus.ESME_RMSGQFUL
        gate.release.set()
        screen = await harness.deliver_sm()
        assert text_of(screen) == "From app #1"
        assert screen.ussd_service_op == UssdServiceOp.USSR_REQUEST
        assert gate.asked[0].session == resp.message_id
        ok = await harness.submit(RU, "thanks", op=UssdServiceOp.USSR_CONFIRM)
        assert ok.command_status == 0
        last = await harness.deliver_sm()
        assert (text_of(last), last.ussd_service_op) == ("bye thanks", UssdServiceOp.PSSR_RESPONSE)
    finally:
        await harness.close()
        await server.stop()
        await gw.stop()


async def test_smpp_app_timeout_ends_the_dialog_with_the_error_screen() -> None:
    from tests.smpp.helpers import text_of
    from ussd.smpp.constants import UssdServiceOp

    clock = SimulatedClock()
    gw, service, server, harness = await smpp_world(clock)
    gate = Gate()
    gw.register(KIND, gate)
    try:
        assert (await harness.submit(RU, "*555#")).command_status == 0
        await asyncio.wait_for(gate.called.wait(), 5)
        clock.advance(10)  # past the effect's deadline: the timer task expires it
        screen = await harness.deliver_sm()
        assert (text_of(screen), screen.ussd_service_op) == (ERROR_RU, UssdServiceOp.PSSR_RESPONSE)
        await asyncio.wait_for(gate.cancelled.wait(), 5)
        [failure] = service.results
        assert isinstance(failure, Failure) and failure.cause is Outcome.APP_TIMEOUT
    finally:
        await harness.close()
        await server.stop()
        await gw.stop()


async def test_smpp_release_while_waiting_cancels_the_performer() -> None:
    from tests.smpp.helpers import no_request
    from ussd.smpp.constants import UssdServiceOp

    gw, _, server, harness = await smpp_world(SimulatedClock())
    gate = Gate()
    gw.register(KIND, gate)
    try:
        assert (await harness.submit(RU, "*555#")).command_status == 0
        await asyncio.wait_for(gate.called.wait(), 5)
        released = await harness.submit(RU, "", op=UssdServiceOp.RELEASE)
        assert released.command_status == 0
        await asyncio.wait_for(gate.cancelled.wait(), 5)
        assert gw.engine.dialog(RU) is None
        assert await no_request(harness)  # the harness released it: no end screen to send
    finally:
        await harness.close()
        await server.stop()
        await gw.stop()
