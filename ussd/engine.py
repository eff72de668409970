"""The session engine: one dialog per MSISDN, continue/end screens, timers, paging.

The engine never sleeps and reads time only from the injected clock; `tick()` runs what is due
and `next_deadline()` says when to call it next (STYLE.md: time is a parameter). It never does
I/O either: a step that needs an outside answer queues an Effect for the runtime and is resumed
with the answer (docs/design.md "Waiting for an answer").
"""

from __future__ import annotations

import heapq
import itertools
import os
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any, TypeGuard

from ussd import log, screens
from ussd.bus import Bus
from ussd.clock import Clock
from ussd.config import Config
from ussd.dialstring import DialString, parse
from ussd.effects import Cancel, Effect, Failure, Notice, Result, no_performer
from ussd.events import (
    DialogEnded,
    DialogRecord,
    DialogStarted,
    Event,
    Outcome,
    Screen,
    ScreenShown,
)
from ussd.faults import DIALOG_DROPPED, USSD_NETWORK_ERROR, Faults, Injection
from ussd.menus import Texts
from ussd.msisdn import normalise
from ussd.profiles import TRUNCATE
from ussd.records import VIAS, Cause, cause_of
from ussd.routing import SS_SERVICE, Router
from ussd.services.base import Await, Context, Continue, End, Handoff, Resumable, Service, Step
from ussd.sms import SmsCentre
from ussd.store import Store, Subscriber

NEXT_PAGE = "98"  # docs/services.md navigation
PREVIOUS_PAGE = "0"
MAX_HANDOFFS = 8

_log = log.get("engine")


@lru_cache(maxsize=4096)
def _menu_pages(
    header: str,
    options: tuple[str, ...],
    more: str,
    footer: str | None,
    limit: int = screens.GSM7_LIMIT,
    truncate: bool = False,
) -> tuple[str, ...]:
    # The same menu for the same subscriber data pages the same way: page it once.
    if truncate:  # a truncating network (ussd/profiles.py) shows the first screen only
        lines = [line for line in (header, *options, footer) if line]
        return (screens.truncate("\n".join(lines), limit),)
    return tuple(screens.paginate_menu(header, options, more, footer, limit))


# isinstance() against a runtime-checkable protocol walks the protocol's members every time
# (about 90 µs, twice per step of an app dialog): the answer depends on the class, so keep it.
_RESUMABLE: dict[type, bool] = {}


def _resumable(service: Service) -> TypeGuard[Resumable]:
    known = _RESUMABLE.get(type(service))
    if known is None:
        known = _RESUMABLE[type(service)] = isinstance(service, Resumable)
    return known


@lru_cache(maxsize=4096)
def _text_pages(
    text: str, more: str, limit: int = screens.GSM7_LIMIT, truncate: bool = False
) -> tuple[str, ...]:
    if truncate:
        return (screens.truncate(text, limit),)
    return tuple(screens.paginate_text(text, more, limit))


def _detail(fault: Injection) -> str:
    """What a dialog's record says about the fault that ended it (docs/network.md)."""
    return f"fault {fault.rule}: {fault.kind} at {fault.at}"


class EngineError(Exception):
    """Base of what the engine refuses; transports turn these into statuses."""


class NotUssd(EngineError):
    """A call or a handset-local code: it never reaches the network (docs/services.md)."""

    def __init__(self, kind: str, dial: DialString) -> None:
        super().__init__(f"not a USSD request: this is a {kind} string")
        self.kind = kind
        self.dial = dial


class NoDialog(EngineError, LookupError):
    """A reply or release for an MSISDN with no open dialog."""


class UnknownSubscriber(EngineError, LookupError):
    """The MSISDN is not in the store and auto-provisioning is off."""


class DialogBusy(EngineError):
    """A reply while the dialog waits for an outside answer: the user was not asked yet."""


class SubscriberBusy(EngineError):
    """A push to an MSISDN that is in a dialog: the network does not interrupt it (TS 24.090)."""


@dataclass(slots=True)
class Dialog:
    """An open dialog: plain data only, so another session store can hold it (docs/design.md)."""

    session: str
    msisdn: str
    service: str
    service_code: str
    screen: str
    values: dict[str, Any]
    started: float
    reply_deadline: float
    max_deadline: float
    pages: Sequence[str] = field(default_factory=tuple)
    page: int = 1
    final: bool = False  # the pages are an end screen paged over several continues
    secret: bool = False  # the screen asks for a password (Continue.secret)
    notice: bool = False  # the screen is a USSN notice (Continue.notice)
    # The page each screen was left on: `0` (back) returns to it, not to its first page.
    left_on: dict[str, int] = field(default_factory=dict)
    outcome: Outcome = Outcome.COMPLETED  # why a final screen ends the dialog (End.outcome)
    waiting: str = ""  # the id of the Effect the dialog waits for, if any
    waiting_since: float = 0.0  # when it started waiting
    waiting_deadline: float = 0.0  # when it stops waiting (Await.timeout)
    # For the dialog's record (ussd/records.py): what it was routed to, how it came, how many
    # requests the subscriber's side made, and the cause when the outcome does not say it.
    route: str = ""
    via: str = "api"
    steps: int = 1
    cause: str = ""
    detail: str = ""  # e.g. the fault rule that ended it (the record's detail)
    # An injected fault dropped it (ussd/faults.py): answers vanish until the reply timer ends
    # it with the timeout screen the handset would show.
    dropped: bool = False

    def to_state(self) -> dict[str, Any]:
        """Serialisable state (JSON-safe)."""
        state = asdict(self)
        state["pages"] = list(self.pages)
        return state

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Dialog:
        pages = tuple(state.get("pages", ()))
        return cls(
            **{**state, "pages": pages, "outcome": Outcome(state.get("outcome", "completed"))}
        )

    def current(self) -> Screen:
        page, pages = self.page, len(self.pages)
        # Positional: built on every step, and keywords cost a third more (Screen's order).
        return Screen(
            self.session,
            self.pages[page - 1],
            self.final and page == pages,
            page,
            pages,
            self.service_code,
            self.secret,
            self.notice,
        )


class Engine:
    """Runs dialogs for every MSISDN; the public API all transports use (docs/design.md)."""

    def __init__(
        self,
        config: Config,
        store: Store,
        clock: Clock,
        bus: Bus,
        sms: SmsCentre,
        router: Router,
        services: Mapping[str, Service],
        texts: Texts,
        *,
        faults: Faults | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.bus = bus
        self.sms = sms
        self.router = router
        self.services = dict(services)
        self.texts = texts
        self.dialogs: dict[str, Dialog] = {}
        self._by_session: dict[str, str] = {}
        # (deadline, session, "reply" | "max" | "effect")
        self._timers: list[tuple[float, str, str]] = []
        self._prefix = os.urandom(3).hex()
        self._counter = itertools.count(1)
        self._effect_ids = itertools.count(1)
        self._waiting: dict[str, str] = {}  # effect id -> session
        self._outbox: deque[Notice] = deque()  # effects to perform and cancel (next_effect)
        # Effects a synchronous dial()/reply() may perform itself, by kind (pure CPU work that
        # an in-process caller would rather do in the step than refuse).
        self.inline: dict[str, Callable[[Effect], Result]] = {}
        self.late_answers = 0  # answers to effects no longer waited for, dropped
        # Cluster mode (ussd/cluster.py): asked before a reply or release which dialog of the
        # MSISDN is current, given this worker's copy: the copy, one taken over from another
        # worker, or None. Unset (the embedded gateway), nothing is asked.
        self.remote: Callable[[str, Dialog | None], Dialog | None] | None = None
        # Cluster mode (ussd/cluster_bus.py): told when a dialog starts waiting for an outside
        # answer, so no other worker takes it over from its last screen meanwhile.
        self.on_wait: Callable[[Dialog], None] | None = None
        # Cluster mode: a release of a dialog that waits on another worker, passed to that
        # worker to end; True when there was one.
        self.release_elsewhere: Callable[[str], bool] | None = None
        self._reply_timeout = config.ussd.reply_timeout
        self._more: dict[str, str] = {}  # "common.more" by language (see _run)
        self._dialog_timeout = config.ussd.dialog_timeout
        # The operator profile's screens (ussd/profiles.py): how long, paged or cut.
        self._screen = (config.ussd.screen_length, config.ussd.screen_policy == TRUNCATE)
        # Injected network faults (ussd/faults.py): asked at each dial and reply.
        self.faults = faults if faults is not None else Faults()
        texts.require(
            [
                "common.unknown_request",
                "common.not_supported",
                "common.timeout",
                "common.max_duration",
                "common.error",
                "common.network_error",
                "common.more",
            ]
        )
        for service in self.services.values():
            texts.require(service.texts_used)

    # -- public API ---------------------------------------------------------------------------

    def subscribe(self, listener: Callable[[Event], None]) -> Callable[[], None]:
        """Hear every event (screens, ends, SMS); returns an unsubscribe function."""
        return self.bus.subscribe(listener)

    def normalise(self, msisdn: str) -> str:
        """The store's form of a number (raises ussd.msisdn.InvalidMsisdn)."""
        op = self.config.operator
        return normalise(msisdn, op.country_code, op.trunk_prefix)

    def subscriber(self, msisdn: str) -> Subscriber:
        """The subscriber, created on first contact when `subscribers.auto_provision` is on."""
        sub = self.store.subscriber(msisdn)
        if sub is not None:
            return sub
        if not self.config.subscribers.auto_provision:
            raise UnknownSubscriber(f"unknown subscriber {msisdn}")
        _log.info("subscriber_provisioned", msisdn=msisdn)
        return self.store.create_subscriber(msisdn, self.config.operator.language, self.clock.now())

    def dial(self, msisdn: str, text: str, *, via: str = "api") -> Screen:
        """Start a dialog from a dial string; a dialog already open on msisdn is released first.

        Nothing performs effects here: a step that waits for an outside answer gets the
        no-performer failure at once (Gateway.dial performs them).
        """
        with self.bus.hold():
            return self._inline(self.handle_dial(msisdn, text, via=via))

    def reply(self, msisdn: str, text: str) -> Screen:
        """The user's answer to the current screen (never logged: it may be a password)."""
        with self.bus.hold():
            return self._inline(self.handle_reply(msisdn, text))

    def handle_dial(self, msisdn: str, text: str, *, via: str = "api") -> Screen | Effect:
        """dial(), or the Effect the first step waits for (also queued for next_effect()).

        `via` says how the dialog reached the gateway, for its record: one of records.VIAS.
        """
        if via not in VIAS:
            raise ValueError(f"via must be one of {', '.join(VIAS)}, not {via[:20]!r}")
        msisdn = self.normalise(msisdn)
        dial = parse(text)  # DialStringError propagates: the handset shows "invalid MMI"
        if dial.kind in ("call", "local"):
            raise NotUssd(dial.kind, dial)
        with self.bus.hold():
            return self._dial(msisdn, dial, via)

    def unknown_request(self, msisdn: str, code: str, *, via: str = "api") -> Screen:
        """Answer text that is no dial string as a network does: one "unknown request" end
        screen, a dialog of its own with a record (cause unknown_code). An open dialog on
        msisdn is left alone: the text never reached it."""
        if via not in VIAS:
            raise ValueError(f"via must be one of {', '.join(VIAS)}, not {via[:20]!r}")
        msisdn = self.normalise(msisdn)
        with self.bus.hold():
            sub = self.subscriber(msisdn)
            session = f"{self._prefix}{next(self._counter):x}"
            return self._one_shot(msisdn, session, code, sub, "common.unknown_request", via)

    def handle_reply(self, msisdn: str, text: str) -> Screen | Effect:
        """reply(), or the Effect the step waits for (also queued for next_effect())."""
        msisdn = self.normalise(msisdn)
        with self.bus.hold():
            return self._reply(msisdn, text)

    def resume(self, effect_id: str, result: Result, now: float) -> Screen | Effect | None:
        """Continue the dialog that waits for effect_id; None (counted) if nothing waits for it."""
        with self.bus.hold():
            session = self._waiting.pop(effect_id, None)
            dialog = self.dialog_by_session(session) if session is not None else None
            if dialog is None or dialog.waiting != effect_id:
                # Released, replaced or timed out meanwhile: the answer has nobody to go to.
                self.late_answers += 1
                _log.info("effect_answer_dropped", effect=effect_id)
                return None
            return self._resume(dialog, result, now)

    def next_effect(self) -> Notice | None:
        """The next effect to perform or cancel (aioquic's next_event() for effects)."""
        return self._outbox.popleft() if self._outbox else None

    def _dial(self, msisdn: str, dial: DialString, via: str = "api") -> Screen | Effect:
        self._tick()
        old = self.dialogs.get(msisdn)
        if old is not None:
            # TS 24.090: one USSD transaction per subscriber; the new request wins.
            self._end(old, Outcome.REPLACED, None)
        sub = self.subscriber(msisdn)
        now = self.clock.now()
        session = f"{self._prefix}{next(self._counter):x}"
        code = dial.service_code or dial.text.strip("*#")
        _log.info("dialog_dial", msisdn=msisdn, session=session, kind=dial.kind)
        fault = self.faults.ussd("dial", msisdn, code, (USSD_NETWORK_ERROR,))
        if fault is not None:
            # The request never reaches a service: the network answers it with an error.
            failed = Dialog(session, msisdn, "", code, "", {}, now, now, now, via=via)
            self.bus.emit(DialogStarted(msisdn, session, "", code))
            return self._network_error(failed, sub, fault)
        if dial.kind == "ss" and SS_SERVICE not in self.services:
            # A gateway built without the SS handler (ussd/services/supplementary.py).
            return self._one_shot(msisdn, session, code, sub, "common.not_supported", via)
        match = self.router.match(dial)
        if match is None:
            return self._one_shot(msisdn, session, code, sub, "common.unknown_request", via)
        name, args = match.route.service, dict(match.args)
        if name.startswith("menu:"):
            name, args = "menu", {"screen": name.removeprefix("menu:"), **args}
        dialog = Dialog(
            session=session,
            msisdn=msisdn,
            service=name,
            service_code=code,
            screen="",
            values={},
            started=now,
            reply_deadline=now + self._reply_timeout,
            max_deadline=now + self._dialog_timeout,
            route=match.route.service,
            via=via,
        )
        dropped = self.faults.ussd("dial", msisdn, code, (DIALOG_DROPPED,))
        if dropped is not None:  # the first screen is shown; nothing the user sends arrives
            dialog.dropped, dialog.detail = True, _detail(dropped)
        self.bus.emit(DialogStarted(msisdn, session, name, code))
        # A step boundary: the old dialog's end and this start reach listeners before the
        # service runs, so they see the subscriber as the user dialled (a recorder's seed).
        self.bus.drain()
        ctx = self._context(sub, now)
        return self._run(dialog, ctx, lambda: self.services[name].start(ctx, args))

    def _reply(self, msisdn: str, text: str) -> Screen | Effect:
        self._tick()
        dialog = self.dialogs.get(msisdn)
        if self.remote is not None:
            dialog = self._current(msisdn, dialog)
        if dialog is None:
            raise NoDialog(f"no open dialog for {msisdn}")
        if dialog.waiting:
            raise DialogBusy(f"the dialog on {msisdn} waits for an outside answer")
        now = self.clock.now()
        dialog.reply_deadline = now + self._reply_timeout
        dialog.steps += 1
        fault = None if dialog.dropped else self.faults.ussd("reply", msisdn, dialog.service_code)
        if fault is not None and fault.kind == USSD_NETWORK_ERROR:
            return self._network_error(dialog, self.subscriber(msisdn), fault)
        if fault is not None:
            dialog.dropped, dialog.detail = True, _detail(fault)
        if dialog.dropped:
            # The network lost the answer: the service never hears it, the handset keeps its
            # screen and waits until its timer runs out (tick ends the dialog then).
            heapq.heappush(self._timers, (dialog.reply_deadline, dialog.session, "reply"))
            return dialog.current()
        if text == NEXT_PAGE and dialog.page < len(dialog.pages):
            dialog.page += 1
            return self._show(dialog)
        if text == PREVIOUS_PAGE and dialog.page > 1:
            dialog.page -= 1
            return self._show(dialog)
        if dialog.final:
            # A paged end screen: any other answer simply ends it (nothing is waiting).
            dialog.page = len(dialog.pages)
            screen = dialog.current()
            self._end(dialog, dialog.outcome, screen, emit_screen=True)
            return screen
        sub = self.subscriber(msisdn)
        ctx = self._context(sub, now)
        service = self.services[dialog.service]
        screen_id, values = dialog.screen, dialog.values
        back = text == PREVIOUS_PAGE
        return self._run(dialog, ctx, lambda: service.reply(ctx, screen_id, values, text), back)

    def push(self, msisdn: str, text: str, reply: bool, origin: str, code: str = "") -> Screen:
        """Network-initiated USSD: show text on an idle handset (docs/smpp.md "Pushes").

        `reply` True is a USSR request (the handset waits for an answer), False a USSN notice
        (it waits for the acknowledgement). `origin` says who pushed: `smpp:SYSTEM_ID` sends the
        answer back to that application (the `push` service); `code` is the screen's sender.
        Raises SubscriberBusy when a dialog is open on msisdn: unlike a dial, a push never
        replaces one. The subscriber's answer goes on with engine.reply as for any screen.
        """
        if not text:
            raise ValueError("a push needs a text to show")
        msisdn = self.normalise(msisdn)
        with self.bus.hold():
            self._tick()
            if msisdn in self.dialogs:
                raise SubscriberBusy(f"{msisdn} is in a USSD dialog")
            service = self.services.get("push")
            if service is None:
                raise EngineError("this gateway has no push service")
            sub = self.subscriber(msisdn)
            now = self.clock.now()
            session = f"{self._prefix}{next(self._counter):x}"
            _log.info("dialog_push", msisdn=msisdn, session=session, reply=reply)
            dialog = Dialog(
                session=session,
                msisdn=msisdn,
                service="push",
                service_code=code,
                screen="",
                values={},
                started=now,
                reply_deadline=now + self._reply_timeout,
                max_deadline=now + self._dialog_timeout,
                route=origin,  # who pushed, e.g. smpp:SYSTEM_ID (the record's route)
                via="push",
                steps=0,  # the subscriber has not asked for anything yet
            )
            self.bus.emit(DialogStarted(msisdn, session, "push", code))
            self.bus.drain()
            ctx = self._context(sub, now)
            args = {"text": text, "reply": "1" if reply else "", "origin": origin}
            out = self._run(dialog, ctx, lambda: service.start(ctx, args))
            assert isinstance(out, Screen)  # a push's first step shows its text
            return out

    def release(self, msisdn: str) -> bool:
        """The user ends the dialog; True when one was open."""
        msisdn = self.normalise(msisdn)
        dialog = self.dialogs.get(msisdn)
        if self.remote is not None:
            try:
                dialog = self._current(msisdn, dialog)
            except DialogBusy:
                # It waits on another worker for an outside answer: that worker ends it.
                return self.release_elsewhere is not None and self.release_elsewhere(msisdn)
        if dialog is None:
            return False
        with self.bus.hold():
            self._end(dialog, Outcome.RELEASED, None)
        return True

    def end(self, msisdn: str, session: str, outcome: Outcome) -> bool:
        """End the dialog `session` of msisdn if it is still open here (cluster mode: another
        worker replaced it); True when it was."""
        dialog = self.dialogs.get(msisdn)
        if dialog is None or dialog.session != session:
            return False
        with self.bus.hold():
            self._end(dialog, outcome, None)
        return True

    def detach(self, msisdn: str, session: str) -> bool:
        """Forget the dialog `session` without ending it: another worker runs it now."""
        dialog = self.dialogs.get(msisdn)
        if dialog is None or dialog.session != session or dialog.waiting:
            return False
        del self.dialogs[msisdn]
        self._by_session.pop(session, None)
        return True

    def _current(self, msisdn: str, here: Dialog | None) -> Dialog | None:
        assert self.remote is not None
        dialog = self.remote(msisdn, here)
        if here is not None and dialog is not here:
            # Taken over or ended on another worker: this copy goes without an end of its own.
            self.dialogs.pop(msisdn, None)
            self._by_session.pop(here.session, None)
        if dialog is not None and dialog is not here:
            # Another worker's dialog, from its plain state: its timers run here from now on.
            self._open(dialog)
            heapq.heappush(self._timers, (dialog.reply_deadline, dialog.session, "reply"))
        return dialog

    def abort(
        self, msisdn: str, session: str, outcome: Outcome, text_key: str | None = None
    ) -> bool:
        """End the dialog `session` of msisdn now, with a final screen from menus/texts.yaml
        `text_key` (None: no screen, as a release): the other side is gone or ended it, e.g.
        an application's bind (docs/smpp.md). True when it was open."""
        dialog = self.dialogs.get(msisdn)
        if dialog is None or dialog.session != session:
            return False
        screen: Screen | None = None
        if text_key is not None:
            text = self.texts.get(text_key, self._language(msisdn))
            screen = Screen(session, text, True, service_code=dialog.service_code)
        with self.bus.hold():
            self._end(dialog, outcome, screen, emit_screen=screen is not None)
        return True

    def dialog(self, msisdn: str) -> Dialog | None:
        """The open dialog of msisdn, if any."""
        return self.dialogs.get(msisdn)

    def dialog_by_session(self, session: str) -> Dialog | None:
        msisdn = self._by_session.get(session)
        return self.dialogs.get(msisdn) if msisdn is not None else None

    def sessions(self) -> list[dict[str, Any]]:
        """Open dialogs for the admin API (no collected values: they may hold secrets)."""
        return [
            {
                "session": d.session,
                "msisdn": d.msisdn,
                "service": d.service,
                "service_code": d.service_code,
                "screen": d.screen,
                "page": d.page,
                "pages": len(d.pages),
                "started": d.started,
                "reply_deadline": d.reply_deadline,
                "max_deadline": d.max_deadline,
            }
            for d in self.dialogs.values()
        ]

    def next_deadline(self) -> float | None:
        """When tick() has work next (None: nothing pending)."""
        while self._timers:
            deadline, session, kind = self._timers[0]
            if self._live_timer(session, kind, deadline):
                return deadline
            heapq.heappop(self._timers)
        return None

    def tick(self) -> None:
        """End dialogs whose reply timeout or maximum duration has passed; expire effects."""
        with self.bus.hold():
            self._tick()

    def _tick(self) -> None:
        now = self.clock.now()
        while self._timers and self._timers[0][0] <= now:
            deadline, session, kind = heapq.heappop(self._timers)
            if not self._live_timer(session, kind, deadline):
                continue
            dialog = self.dialog_by_session(session)
            assert dialog is not None
            if kind == "effect":
                effect_id = dialog.waiting
                self._waiting.pop(effect_id, None)
                self._outbox.append(Cancel(effect_id, dialog.msisdn, session, Outcome.APP_TIMEOUT))
                reason = f"no answer within {deadline - dialog.waiting_since:g} s"
                self._resume(dialog, Failure(Outcome.APP_TIMEOUT, reason), now)
                continue
            outcome = Outcome.TIMEOUT if kind == "reply" else Outcome.MAX_DURATION
            if dialog.dropped:
                # The user sees the timeout; the record knows the network dropped the dialog.
                outcome = Outcome.NETWORK_FAULT
            key = "common.timeout" if kind == "reply" else "common.max_duration"
            language = self._language(dialog.msisdn)
            screen = Screen(
                session=dialog.session,
                text=self.texts.get(key, language),
                end=True,
                service_code=dialog.service_code,
            )
            self._end(dialog, outcome, screen)

    def shutdown(self) -> None:
        """End every open dialog (the gateway is stopping)."""
        with self.bus.hold():
            for dialog in list(self.dialogs.values()):
                self._end(dialog, Outcome.SHUTDOWN, None)

    # -- internals ----------------------------------------------------------------------------

    def _live_timer(self, session: str, kind: str, deadline: float) -> bool:
        dialog = self.dialog_by_session(session)
        if dialog is None:
            return False
        if kind == "effect":
            return bool(dialog.waiting) and dialog.waiting_deadline == deadline
        if kind == "reply":
            # The reply timer rests while the dialog waits for an outside answer.
            return not dialog.waiting and dialog.reply_deadline == deadline
        return dialog.max_deadline == deadline

    def _inline(self, out: Screen | Effect) -> Screen:
        # A synchronous caller cannot wait: an effect with an inline performer (a password
        # hash) is performed right here; any other gets the no-performer failure.
        while isinstance(out, Effect):
            self._outbox.remove(out)  # queued by this call; no listener ran since
            inline = self.inline.get(out.kind)
            result = no_performer(out.kind) if inline is None else inline(out)
            resumed = self.resume(out.id, result, self.clock.now())
            assert resumed is not None  # the dialog was waiting for it a moment ago
            out = resumed
        return out

    def _resume(self, dialog: Dialog, result: Result, now: float) -> Screen | Effect:
        dialog.waiting = ""
        if isinstance(result, Failure):
            # Why the outside answer failed ("HTTP status 500"): the dialog's record says it.
            dialog.detail = result.reason[:200]
        # The user is asked again from now on: the reply timer starts afresh.
        dialog.reply_deadline = now + self._reply_timeout
        ctx = self._context(self.subscriber(dialog.msisdn), now)
        service = self.services[dialog.service]
        screen_id, values = dialog.screen, dialog.values

        def step() -> Step:
            if not _resumable(service):
                raise TypeError(f"service {dialog.service!r} awaited but cannot resume")
            return service.resume(ctx, screen_id, values, result)

        return self._run(dialog, ctx, step)

    def _await(self, dialog: Dialog, step: Await, now: float) -> Effect:
        effect = Effect(
            id=f"{dialog.session}.{next(self._effect_ids):x}",
            kind=step.kind,
            msisdn=dialog.msisdn,
            session=dialog.session,
            service_code=dialog.service_code,
            request=step.request,
            deadline=now + step.timeout,
        )
        dialog.screen = step.screen
        dialog.values = dict(step.values)
        dialog.waiting = effect.id
        dialog.waiting_since = now
        dialog.waiting_deadline = effect.deadline
        if self.dialogs.get(dialog.msisdn) is not dialog:
            self._open(dialog)
        self._waiting[effect.id] = dialog.session
        heapq.heappush(self._timers, (effect.deadline, dialog.session, "effect"))
        self._outbox.append(effect)
        if self.on_wait is not None:
            self.on_wait(dialog)
        _log.info("effect_requested", session=dialog.session, effect=effect.id, kind=effect.kind)
        return effect

    def _language(self, msisdn: str) -> str:
        sub = self.store.subscriber(msisdn)
        return sub.language if sub is not None else self.config.operator.language

    def _context(self, sub: Subscriber, now: float) -> Context:
        # Positionally (Context's field order): one per step.
        return Context(sub.msisdn, sub, now, self.store, self.texts, self.config, self._send_sms)

    def _network_error(self, dialog: Dialog, sub: Subscriber, fault: Injection) -> Screen | Effect:
        """An injected network error: one final screen, end cause network_fault."""
        dialog.detail = _detail(fault)
        text = self.texts.get("common.network_error", sub.language)
        ctx = self._context(sub, self.clock.now())
        return self._run(dialog, ctx, lambda: End(text, outcome=Outcome.NETWORK_FAULT))

    def _send_sms(self, to: str, text: str) -> object:
        return self.sms.send(to, text)

    def _one_shot(
        self, msisdn: str, session: str, code: str, sub: Subscriber, key: str, via: str
    ) -> Screen:
        screen = Screen(session, self.texts.get(key, sub.language), True, service_code=code)
        now = self.clock.now()
        cause = Cause.NOT_SUPPORTED if key == "common.not_supported" else Cause.UNKNOWN_CODE
        record = DialogRecord(session, msisdn, code, "", via, now, now, 1, cause.value)
        self.bus.emit(DialogStarted(msisdn, session, "", code))
        self.bus.emit(ScreenShown(msisdn, screen))
        self.bus.emit(DialogEnded(msisdn, session, Outcome.COMPLETED, screen, record))
        return screen

    def _run(
        self, dialog: Dialog, ctx: Context, step_fn: Callable[[], Step], back: bool = False
    ) -> Screen | Effect:
        try:
            step = step_fn()
            for _ in range(MAX_HANDOFFS):
                if not isinstance(step, Handoff):
                    break
                dialog.service = step.service
                ctx.refresh()
                step = self.services[step.service].start(ctx, step.args)
            else:
                raise RuntimeError("too many service hand-offs")
            if isinstance(step, Await) and not _resumable(self.services[dialog.service]):
                raise TypeError(f"service {dialog.service!r} awaits but has no resume()")
        except Exception:
            # A service bug must cost only this dialog, with a clear screen (STYLE.md §6).
            _log.exception("service_failed", msisdn=dialog.msisdn, session=dialog.session)
            text = self.texts.get("common.error", ctx.language)
            screen = Screen(dialog.session, text, True, service_code=dialog.service_code)
            self._end(dialog, Outcome.ERROR, screen, emit_screen=True)
            return screen
        if isinstance(step, Await):
            return self._await(dialog, step, ctx.now)
        language = ctx.language
        more = self._more.get(language)
        if more is None:  # the texts never change while the engine runs: one render each
            more = self._more[language] = self.texts.get("common.more", language)
        page = 1
        if isinstance(step, Continue):
            if dialog.screen:
                dialog.left_on[dialog.screen] = dialog.page
            if back:  # docs/services.md: `0` goes back to where the user was, on the page they left
                page = dialog.left_on.get(step.screen, 1)
            dialog.screen = step.screen
            dialog.values = dict(step.values)
            dialog.final = False
            dialog.secret = step.secret
            dialog.notice = step.notice
            if step.menu is not None:
                header, options, footer = step.menu
                dialog.pages = _menu_pages(header, tuple(options), more, footer, *self._screen)
            else:
                dialog.pages = _text_pages(step.text, more, *self._screen)
        else:
            assert isinstance(step, End)
            dialog.final = True
            dialog.secret = False
            dialog.notice = False
            dialog.outcome = step.outcome
            dialog.cause = step.cause
            dialog.pages = _text_pages(step.text, more, *self._screen)
        dialog.page = min(page, len(dialog.pages))
        if dialog.final and len(dialog.pages) == 1:
            screen = dialog.current()
            if self.dialogs.get(dialog.msisdn) is dialog:
                self._end(dialog, dialog.outcome, screen, emit_screen=True)
            else:
                self.bus.emit(ScreenShown(dialog.msisdn, screen))
                record = self._record(dialog, dialog.outcome)
                self.bus.emit(
                    DialogEnded(dialog.msisdn, dialog.session, dialog.outcome, screen, record)
                )
            return screen
        if self.dialogs.get(dialog.msisdn) is not dialog:
            self._open(dialog)
        return self._show(dialog)

    def _open(self, dialog: Dialog) -> None:
        self.dialogs[dialog.msisdn] = dialog
        self._by_session[dialog.session] = dialog.msisdn
        heapq.heappush(self._timers, (dialog.max_deadline, dialog.session, "max"))

    def _show(self, dialog: Dialog) -> Screen:
        heapq.heappush(self._timers, (dialog.reply_deadline, dialog.session, "reply"))
        screen = dialog.current()
        self.bus.emit(ScreenShown(dialog.msisdn, screen))
        if screen.end:
            self._end(dialog, dialog.outcome, screen)
        return screen

    def _end(
        self, dialog: Dialog, outcome: Outcome, screen: Screen | None, emit_screen: bool = False
    ) -> None:
        if self.dialogs.get(dialog.msisdn) is dialog:
            del self.dialogs[dialog.msisdn]
            self._by_session.pop(dialog.session, None)
        if dialog.waiting:
            # The runtime stops performing it; an answer that still comes is dropped (resume).
            self._waiting.pop(dialog.waiting, None)
            self._outbox.append(Cancel(dialog.waiting, dialog.msisdn, dialog.session, outcome))
            dialog.waiting = ""
        if emit_screen and screen is not None:
            self.bus.emit(ScreenShown(dialog.msisdn, screen))
        _log.info(
            "dialog_ended", msisdn=dialog.msisdn, session=dialog.session, outcome=outcome.value
        )
        record = self._record(dialog, outcome)
        self.bus.emit(DialogEnded(dialog.msisdn, dialog.session, outcome, screen, record))

    def _record(self, dialog: Dialog, outcome: Outcome) -> DialogRecord:
        # A service's own cause (End.cause: not_supported) only qualifies a normal end.
        cause = cause_of(outcome, dialog.cause if outcome is Outcome.COMPLETED else "")
        return DialogRecord(  # positional, in the row's column order (one per dialog)
            dialog.session,
            dialog.msisdn,
            dialog.service_code,
            dialog.route,
            dialog.via,
            dialog.started,
            self.clock.now(),
            dialog.steps,
            cause.value,
            dialog.detail,
        )
