"""The session engine (SPEC §4): one dialog per MSISDN, continue/end screens, timers, paging.

The engine never sleeps and reads time only from the injected clock; `tick()` runs what is due
and `next_deadline()` says when to call it next (STYLE.md: time is a parameter).
"""

from __future__ import annotations

import heapq
import itertools
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

from ussd import log, screens
from ussd.bus import Bus
from ussd.clock import Clock
from ussd.config import Config
from ussd.dialstring import DialString, parse
from ussd.events import DialogEnded, DialogStarted, Event, Outcome, Screen, ScreenShown
from ussd.menus import Texts
from ussd.msisdn import normalise
from ussd.routing import Router
from ussd.services.base import Context, Continue, End, Handoff, Service, Step
from ussd.sms import SmsCentre
from ussd.store import Store, Subscriber

NEXT_PAGE = "98"  # SPEC §3 navigation
PREVIOUS_PAGE = "0"
MAX_HANDOFFS = 8

_log = log.get("engine")


@lru_cache(maxsize=4096)
def _menu_pages(
    header: str, options: tuple[str, ...], more: str, footer: str | None
) -> tuple[str, ...]:
    # The same menu for the same subscriber data pages the same way: page it once.
    return tuple(screens.paginate_menu(header, options, more, footer))


@lru_cache(maxsize=4096)
def _text_pages(text: str, more: str) -> tuple[str, ...]:
    return tuple(screens.paginate_text(text, more))


class EngineError(Exception):
    """Base of what the engine refuses; transports turn these into statuses."""


class NotUssd(EngineError):
    """A call or a handset-local code: it never reaches the network (SPEC §3)."""

    def __init__(self, kind: str, dial: DialString) -> None:
        super().__init__(f"not a USSD request: this is a {kind} string")
        self.kind = kind
        self.dial = dial


class NoDialog(EngineError, LookupError):
    """A reply or release for an MSISDN with no open dialog."""


class UnknownSubscriber(EngineError, LookupError):
    """The MSISDN is not in the store and auto-provisioning is off."""


@dataclass(slots=True)
class Dialog:
    """An open dialog: plain data only, so another session store can hold it (SPEC §4)."""

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
    # The page each screen was left on: `0` (back) returns to it, not to its first page.
    left_on: dict[str, int] = field(default_factory=dict)

    def to_state(self) -> dict[str, Any]:
        """Serialisable state (JSON-safe)."""
        state = asdict(self)
        state["pages"] = list(self.pages)
        return state

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Dialog:
        return cls(**{**state, "pages": tuple(state.get("pages", ()))})

    def current(self) -> Screen:
        last = self.page == len(self.pages)
        return Screen(
            session=self.session,
            text=self.pages[self.page - 1],
            end=self.final and last,
            page=self.page,
            pages=len(self.pages),
            service_code=self.service_code,
            secret=self.secret,
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
        self._timers: list[tuple[float, str, str]] = []  # (deadline, session, "reply"|"max")
        self._prefix = os.urandom(3).hex()
        self._counter = itertools.count(1)
        self._reply_timeout = config.ussd.reply_timeout
        self._dialog_timeout = config.ussd.dialog_timeout
        texts.require(
            [
                "common.unknown_request",
                "common.not_supported",
                "common.timeout",
                "common.max_duration",
                "common.error",
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

    def dial(self, msisdn: str, text: str) -> Screen:
        """Start a dialog from a dial string; a dialog already open on msisdn is released first."""
        msisdn = self.normalise(msisdn)
        dial = parse(text)  # DialStringError propagates: the handset shows "invalid MMI"
        if dial.kind in ("call", "local"):
            raise NotUssd(dial.kind, dial)
        self.tick()
        old = self.dialogs.get(msisdn)
        if old is not None:
            # TS 24.090: one USSD transaction per subscriber; the new request wins.
            self._end(old, Outcome.REPLACED, None)
        sub = self.subscriber(msisdn)
        now = self.clock.now()
        session = f"{self._prefix}{next(self._counter):x}"
        code = dial.service_code or dial.text.strip("*#")
        _log.info("dialog_dial", msisdn=msisdn, session=session, kind=dial.kind)
        if dial.kind == "ss":
            return self._one_shot(msisdn, session, code, sub, "common.not_supported")
        match = self.router.match(dial)
        if match is None:
            return self._one_shot(msisdn, session, code, sub, "common.unknown_request")
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
        )
        self.bus.emit(DialogStarted(msisdn, session, name, code))
        ctx = self._context(sub, now)
        return self._run(dialog, ctx, lambda: self.services[name].start(ctx, args))

    def reply(self, msisdn: str, text: str) -> Screen:
        """The user's answer to the current screen (never logged: it may be a password)."""
        msisdn = self.normalise(msisdn)
        self.tick()
        dialog = self.dialogs.get(msisdn)
        if dialog is None:
            raise NoDialog(f"no open dialog for {msisdn}")
        now = self.clock.now()
        dialog.reply_deadline = now + self._reply_timeout
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
            self._end(dialog, Outcome.COMPLETED, screen, emit_screen=True)
            return screen
        sub = self.subscriber(msisdn)
        ctx = self._context(sub, now)
        service = self.services[dialog.service]
        screen_id, values = dialog.screen, dialog.values
        back = text == PREVIOUS_PAGE
        return self._run(dialog, ctx, lambda: service.reply(ctx, screen_id, values, text), back)

    def release(self, msisdn: str) -> bool:
        """The user ends the dialog; True when one was open."""
        msisdn = self.normalise(msisdn)
        dialog = self.dialogs.get(msisdn)
        if dialog is None:
            return False
        self._end(dialog, Outcome.RELEASED, None)
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
        """End dialogs whose reply timeout or maximum duration has passed."""
        now = self.clock.now()
        while self._timers and self._timers[0][0] <= now:
            deadline, session, kind = heapq.heappop(self._timers)
            if not self._live_timer(session, kind, deadline):
                continue
            dialog = self.dialog_by_session(session)
            assert dialog is not None
            outcome = Outcome.TIMEOUT if kind == "reply" else Outcome.MAX_DURATION
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
        for dialog in list(self.dialogs.values()):
            self._end(dialog, Outcome.SHUTDOWN, None)

    # -- internals ----------------------------------------------------------------------------

    def _live_timer(self, session: str, kind: str, deadline: float) -> bool:
        dialog = self.dialog_by_session(session)
        if dialog is None:
            return False
        current = dialog.reply_deadline if kind == "reply" else dialog.max_deadline
        return current == deadline

    def _language(self, msisdn: str) -> str:
        sub = self.store.subscriber(msisdn)
        return sub.language if sub is not None else self.config.operator.language

    def _context(self, sub: Subscriber, now: float) -> Context:
        return Context(
            msisdn=sub.msisdn,
            subscriber=sub,
            now=now,
            store=self.store,
            texts=self.texts,
            config=self.config,
            send_sms=self._send_sms,
        )

    def _send_sms(self, to: str, text: str) -> object:
        return self.sms.send(to, text)

    def _one_shot(self, msisdn: str, session: str, code: str, sub: Subscriber, key: str) -> Screen:
        screen = Screen(session, self.texts.get(key, sub.language), True, service_code=code)
        self.bus.emit(DialogStarted(msisdn, session, "", code))
        self.bus.emit(ScreenShown(msisdn, screen))
        self.bus.emit(DialogEnded(msisdn, session, Outcome.COMPLETED, screen))
        return screen

    def _run(
        self, dialog: Dialog, ctx: Context, step_fn: Callable[[], Step], back: bool = False
    ) -> Screen:
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
        except Exception:
            # A service bug must cost only this dialog, with a clear screen (STYLE.md §6).
            _log.exception("service_failed", msisdn=dialog.msisdn, session=dialog.session)
            text = self.texts.get("common.error", ctx.language)
            screen = Screen(dialog.session, text, True, service_code=dialog.service_code)
            self._end(dialog, Outcome.ERROR, screen, emit_screen=True)
            return screen
        more = self.texts.get("common.more", ctx.language)
        page = 1
        if isinstance(step, Continue):
            if dialog.screen:
                dialog.left_on[dialog.screen] = dialog.page
            if back:  # SPEC §3: `0` goes back to where the user was, on the page they left
                page = dialog.left_on.get(step.screen, 1)
            dialog.screen = step.screen
            dialog.values = dict(step.values)
            dialog.final = False
            dialog.secret = step.secret
            if step.menu is not None:
                header, options, footer = step.menu
                dialog.pages = _menu_pages(header, tuple(options), more, footer)
            else:
                dialog.pages = _text_pages(step.text, more)
        else:
            assert isinstance(step, End)
            dialog.final = True
            dialog.secret = False
            dialog.pages = _text_pages(step.text, more)
        dialog.page = min(page, len(dialog.pages))
        if dialog.final and len(dialog.pages) == 1:
            screen = dialog.current()
            if self.dialogs.get(dialog.msisdn) is dialog:
                self._end(dialog, Outcome.COMPLETED, screen, emit_screen=True)
            else:
                self.bus.emit(ScreenShown(dialog.msisdn, screen))
                self.bus.emit(DialogEnded(dialog.msisdn, dialog.session, Outcome.COMPLETED, screen))
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
            self._end(dialog, Outcome.COMPLETED, screen)
        return screen

    def _end(
        self, dialog: Dialog, outcome: Outcome, screen: Screen | None, emit_screen: bool = False
    ) -> None:
        if self.dialogs.get(dialog.msisdn) is dialog:
            del self.dialogs[dialog.msisdn]
            self._by_session.pop(dialog.session, None)
        if emit_screen and screen is not None:
            self.bus.emit(ScreenShown(dialog.msisdn, screen))
        _log.info(
            "dialog_ended", msisdn=dialog.msisdn, session=dialog.session, outcome=outcome.value
        )
        self.bus.emit(DialogEnded(dialog.msisdn, dialog.session, outcome, screen))
