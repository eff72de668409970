"""The gateway's world and its one timer task: the only place that waits on time."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

from ussd import log, selfcare
from ussd.accounts import Accounts
from ussd.apps.client import AppClient
from ussd.apps.service import KIND as APP_EFFECTS
from ussd.apps.service import AppService
from ussd.bus import Bus
from ussd.clock import Clock, RealClock, SimulatedClock, make
from ussd.config import Config, ConfigError
from ussd.effects import Answer, Cancel, Effect, Failure, Performer, Result, no_performer
from ussd.engine import Engine, NoDialog
from ussd.events import (
    AppExchange,
    DialogEnded,
    Event,
    FaultInjected,
    Outcome,
    Screen,
    ScreenShown,
)
from ussd.faults import Faults, Injection
from ussd.links import LinkScheduler
from ussd.menus import MenuBook, MenuError, Texts
from ussd.metrics import Metrics
from ussd.passwords import Hash, HashPool
from ussd.records import Records
from ussd.routing import Router
from ussd.services import builtin
from ussd.services.base import Service
from ussd.services.password import PASSWORD_HASH, PasswordSet
from ussd.services.smppapp import Push, SmppApp
from ussd.sms import SmsCentre
from ussd.ss import administer, load_state, save_state
from ussd.store import Store, StoreError, Subscriber, hash_password

_log = log.get("runtime")


class Scheduled(Protocol):
    """Anything with deadlines: the engine, the SMS centre, later the link scheduler."""

    def next_deadline(self) -> float | None: ...

    def tick(self) -> None: ...


class Gateway:
    """Clock, store, SMS centre, router, services and engine built from one Config."""

    def __init__(
        self,
        config: Config,
        clock: Clock,
        store: Store,
        engine: Engine,
        sms: SmsCentre,
        bus: Bus,
        menus: MenuBook,
        texts: Texts,
    ) -> None:
        self.config = config
        self.clock = clock
        self.store = store
        self.engine = engine
        self.sms = sms
        self.bus = bus
        self.menus = menus
        self.texts = texts
        # The personal account and its link activations (docs/account.md). Built here rather than in
        # create() so that a Gateway assembled by hand is wired the same way.
        self.accounts = Accounts(store, clock, sms, config, texts)
        self.accounts.wake = self.wake  # a new pending link re-arms the timer task
        self.links = LinkScheduler(store, clock, self.accounts)
        self.scheduled: list[Scheduled] = [engine, sms, self.links]
        # The gateway's counters; transports add what only they see (docs/design.md).
        self.metrics = Metrics()
        engine.subscribe(self.metrics.on_event)
        # Every injected fault is logged and told as an event: /metrics counts it, the web
        # phone shows it (docs/network.md "Faults"). The transports ask `faults` too (SMPP).
        self.faults = engine.faults
        sms.faults = self.faults  # one set, also in a gateway assembled by hand
        self.faults.listen(self._fault_injected)
        # A record of every ended dialog, written in batches (ussd/records.py).
        self.records = Records(store, clock, config.records.max, config.records.retention)
        engine.subscribe(self.records.on_event)
        # scrypt runs here, on a few threads, when the gateway serves (ussd/passwords.py).
        self.passwords = HashPool()
        self._wake: asyncio.Event | None = None
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe_clock: Callable[[], None] | None = None
        # Effects (docs/design.md "Waiting for an answer"): who performs each kind, what runs.
        self.performers: dict[str, Performer] = {}
        # One outstanding effect per dialog: session -> (effect id, the task performing it).
        self._effect_tasks: dict[str, tuple[str, asyncio.Task[None]]] = {}
        self._waiters: dict[str, asyncio.Future[Screen]] = {}  # session -> its next screen
        self._apps: AppClient | None = None  # the `http` performer, from start() to stop()
        bus.subscribe(self._settled)

    @classmethod
    def create(
        cls,
        config: Config,
        *,
        clock: Clock | None = None,
        database: str | None = None,
        menus_dir: Path | None = None,
        services: Mapping[str, Service] | None = None,
    ) -> Gateway:
        """Build the world; menus and routes are checked here (errors name file/key)."""
        clock = clock or make(config.clock_mode)
        try:
            texts = Texts.load(menus_dir)
            book = MenuBook.load(menus_dir)
            catalogue = selfcare.Catalogue.load(menus_dir)  # "МТС Бонус" gifts (menus/bonus.yaml)
        except MenuError as exc:
            raise ConfigError("menus", str(exc)) from exc
        services = {**builtin(book, catalogue), **(services or {})}  # extra ones: by name
        # `smpp:SYSTEM_ID` routes and network-initiated USSD (docs/smpp.md): the SMPP server
        # performs their effects with its application binds.
        app_timeout = config.smpp.app_timeout
        for account in config.smpp.accounts:
            if account.role == "app":
                smpp_app = SmppApp(account.system_id, app_timeout)
                services.setdefault(smpp_app.name, smpp_app)
        services.setdefault("push", Push(app_timeout))
        for app in config.apps.values():  # `app:NAME` routes (docs/apps.md)
            services.setdefault(f"app:{app.name}", AppService(app))
        names = set(services) | {f"menu:{sid}" for sid in book.screens}
        try:
            book.check_services(services)
        except MenuError as exc:
            raise ConfigError("menus", str(exc)) from exc
        router = Router(config.ussd.routes, names)
        # Cluster mode keeps durable data in PostgreSQL (docs/cluster.md).
        key = "cluster.postgres" if config.cluster.postgres else "storage.database"
        try:
            store = Store(database or config.cluster.postgres or config.storage_database)
        except StoreError as exc:
            # One line naming the key, exit 2 (docs/config.md), never a traceback.
            raise ConfigError(key, str(exc)) from None
        saved = store.saved_clock()
        if isinstance(clock, SimulatedClock) and saved is not None and saved > clock.now():
            # A simulated clock continues where it stopped: the locks, tokens and office links
            # in the store were written against that time.
            clock.advance(saved - clock.now())
        bus = Bus()
        # Injected network faults (docs/network.md "Faults"): one seeded set for SMS and USSD.
        faults = Faults(config.faults.rules, seed=config.faults.seed)
        sms = SmsCentre(store, clock, config.sms, bus, faults)
        engine = Engine(config, store, clock, bus, sms, router, services, texts, faults=faults)
        gateway = cls(config, clock, store, engine, sms, bus, book, texts)
        gateway.accounts.catalogue = catalogue
        gateway.seed()
        return gateway

    def _fault_injected(self, injection: Injection) -> None:
        _log.info(
            "fault_injected",
            kind=injection.kind,
            rule=injection.rule,
            at=injection.at,
            msisdn=injection.msisdn,
            code=injection.code,
            system_id=injection.system_id,
        )
        self.bus.emit(
            FaultInjected(injection.msisdn or "", injection.kind, injection.rule, injection.at)
        )

    def seed(self) -> None:
        """Create the `subscribers.seed` numbers that are not in the store yet."""
        now = self.clock.now()
        for seed in self.config.subscribers.seed:
            msisdn = self.engine.normalise(seed.msisdn)
            if self.store.subscriber(msisdn) is not None:
                continue
            password_hash = hash_password(seed.password) if seed.password else None
            # Checked again under the store's write lock, and created with its charges in the
            # same transaction: cluster workers starting together seed each number once.
            with self.store.transaction():
                self.store.forget(msisdn)  # read the row itself, not what was cached above
                if self.store.subscriber(msisdn) is not None:
                    continue
                self.store.create_subscriber(
                    msisdn,
                    seed.language or self.config.operator.language,
                    now,
                    balance=seed.balance,
                    package=seed.package,
                    bonus_points=seed.bonus_points,
                    services=seed.services,
                    payments=seed.payments,
                    password_hash=password_hash,
                    number_management=seed.number_management,
                )
                selfcare.seed(self.store, msisdn, seed.charges, seed.instalments, now)

    def hash_off_loop(self) -> None:
        """`*111*17#` hashes its password on a hashing thread: an effect the gateway performs.

        The confirming step waits for the hash (some 40 ms) and stores it before "password
        set" is shown, so what the subscriber is told is already durable. `serve` turns this
        on; in-process commands and unit tests keep the one-step store.
        """
        service = self.engine.services.get("password.set")
        if not isinstance(service, PasswordSet):
            return

        async def hash_password_effect(effect: Effect) -> Result:
            encoded = await self.passwords.run(Hash(str(effect.request["password"])))
            return Answer({"hash": encoded})

        def hash_password_inline(effect: Effect) -> Result:
            return Answer({"hash": hash_password(str(effect.request["password"]))})

        self.register(PASSWORD_HASH, hash_password_effect)
        self.engine.inline[PASSWORD_HASH] = hash_password_inline  # engine.dial()/reply()
        service.hash_kind = PASSWORD_HASH

    # -- for transports: read-only views, so none reaches into the store --------------------

    def subscribers(self) -> list[Subscriber]:
        """Every subscriber (the admin API's list, the web phone's number selector)."""
        return self.store.subscribers()

    def find_subscriber(self, msisdn: str) -> Subscriber | None:
        """The subscriber of a normalised MSISDN, or None; never provisions (engine.subscriber
        provisions on first contact)."""
        return self.store.subscriber(msisdn)

    def supplementary(self, msisdn: str) -> dict[str, object]:
        """The supplementary-service state of a normalised MSISDN (ussd/ss.py, docs/network.md)."""
        return load_state(self.store, msisdn).public()

    def administer_supplementary(
        self, msisdn: str, changes: dict[str, object]
    ) -> dict[str, object]:
        """Operator changes to it (CLIR mode, password reset); ValueError names a bad field."""
        state = administer(load_state(self.store, msisdn), changes)
        save_state(self.store, msisdn, state, self.clock.now())
        return state.public()

    def close(self) -> None:
        """End open dialogs and close the store: the end of an in-process command's world."""
        self.engine.shutdown()
        self.passwords.close()
        self.records.close()  # the shutdown records too
        self.store.close()

    # -- dialogs for transports on the loop: effects performed -------------------------------

    async def dial(self, msisdn: str, text: str, *, via: str = "api") -> Screen:
        """engine.dial(), with the outside answers its steps wait for performed first."""
        return await self._screen(self.engine.handle_dial(msisdn, text, via=via))

    async def reply(self, msisdn: str, text: str) -> Screen:
        """engine.reply(), with the outside answers its steps wait for performed first."""
        return await self._screen(self.engine.handle_reply(msisdn, text))

    def register(self, kind: str, performer: Performer) -> Callable[[], None]:
        """Perform effects of `kind` with performer; returns a function that unregisters it."""
        self.performers[kind] = performer

        def unregister() -> None:
            if self.performers.get(kind) is performer:
                del self.performers[kind]

        return unregister

    def app_exchange(self, exchange: AppExchange) -> None:
        """An exchange with an application that a transport performed (an SMPP app bind's
        deliver_sm and its answer): the web phone's app console and the metrics hear it."""
        self.bus.emit(exchange)

    def perform(self) -> None:
        """Start the effects the engine asked for and stop the ones it cancelled."""
        while (notice := self.engine.next_effect()) is not None:
            if isinstance(notice, Cancel):
                self._stop_effect(notice.session, notice.id)
                continue
            performer = self.performers.get(notice.kind)
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # an in-process command: nothing can wait here
                performer = None
            if performer is None:
                _log.warning("effect_without_performer", kind=notice.kind, session=notice.session)
                self.engine.resume(notice.id, no_performer(notice.kind), self.clock.now())
                continue
            task = loop.create_task(self._perform(notice, performer), name=f"effect-{notice.id}")
            self._effect_tasks[notice.session] = (notice.id, task)
            self.wake()  # its deadline is the timer task's next one, perhaps

    async def _perform(self, effect: Effect, performer: Performer) -> None:
        try:
            result: Result = await performer(effect)
        except Exception:
            # A performer bug costs this dialog only: the service shows its error screen.
            _log.exception("effect_failed", kind=effect.kind, session=effect.session)
            result = Failure(Outcome.APP_ERROR, "the performer failed")
        if self._effect_tasks.get(effect.session, ("", None))[0] == effect.id:
            del self._effect_tasks[effect.session]
        self.engine.resume(effect.id, result, self.clock.now())
        self.perform()

    def _stop_effect(self, session: str, effect_id: str | None = None) -> None:
        running = self._effect_tasks.get(session)
        if running is not None and effect_id in (None, running[0]):
            del self._effect_tasks[session]
            running[1].cancel()

    async def _screen(self, out: Screen | Effect) -> Screen:
        if isinstance(out, Screen):
            self.perform()  # a dialog this one replaced may have been waiting
            return out
        waiter: asyncio.Future[Screen] = asyncio.get_running_loop().create_future()
        self._waiters[out.session] = waiter  # before perform(): it may resume at once
        try:
            self.perform()
            return await waiter
        finally:
            if self._waiters.get(out.session) is waiter:
                del self._waiters[out.session]

    def _settled(self, event: Event) -> None:
        # The session's next screen, or its end, is what a waiting dial() or reply() returns.
        if not self._waiters and not self._effect_tasks:
            return  # nobody waits (every SMPP step, most HTTP ones): the common case, first
        if isinstance(event, ScreenShown):
            waiter = self._waiters.pop(event.screen.session, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(event.screen)
        elif isinstance(event, DialogEnded):
            # Whoever ended it (a release from any transport, a new dial, a timer), the effect
            # it waited for is stopped now; the engine's Cancel notice then finds it gone.
            self._stop_effect(event.session)
            waiter = self._waiters.pop(event.session, None)
            if waiter is None or waiter.done():
                return
            if event.screen is not None:  # a timeout's screen, say
                waiter.set_result(event.screen)
            else:  # released, replaced or shut down: there is no screen to show
                reason = f"the dialog ended ({event.outcome.value}) before it was answered"
                waiter.set_exception(NoDialog(reason))

    # -- the timer task -----------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        deadlines = [d for d in (s.next_deadline() for s in self.scheduled) if d is not None]
        return min(deadlines) if deadlines else None

    def tick(self) -> None:
        """Run everything due now."""
        for item in self.scheduled:
            item.tick()
        self.perform()  # an effect that timed out stops; a resumed step may ask anew

    def advance(self, seconds: float) -> float:
        """Move a simulated clock forward, running each deadline at its own time on the way."""
        if not isinstance(self.clock, SimulatedClock):
            raise TypeError("the clock is real: only a simulated clock can be advanced")
        if seconds < 0:
            raise ValueError("time only moves forward")
        target = self.clock.now() + seconds
        while (deadline := self.next_deadline()) is not None and deadline <= target:
            self.clock.advance(max(0.0, deadline - self.clock.now()))
            self.tick()
        self.clock.advance(target - self.clock.now())
        self.tick()
        # Saved, so the next start on this database continues from here (Gateway.create).
        self.store.save_clock(self.clock.now())
        return self.clock.now()

    def wake(self) -> None:
        """Re-read deadlines now (a new deadline was armed, or the clock jumped)."""
        if self._wake is not None:
            self._wake.set()

    async def start(self) -> None:
        """Start the timer task (idempotent)."""
        if self._task is not None:
            return
        self._wake = asyncio.Event()
        self._stopping = False
        self._unsubscribe_clock = self.clock.on_change(self.wake)
        # Any event may have armed a new deadline: re-read them after it (wake(), inlined:
        # three events a step).
        wake = self._wake
        self._unsubscribe_bus = self.bus.subscribe(lambda _event: wake.set())
        self._task = asyncio.create_task(self._timers(), name="ussd-timers")
        if self.config.apps and APP_EFFECTS not in self.performers:
            # External applications over HTTP (docs/apps.md): one client for this gateway.
            self._apps = AppClient(self.config, self.bus, self.clock, self.faults)
            self._apps.open()
            self.register(APP_EFFECTS, self._apps.perform)

    async def _timers(self) -> None:
        assert self._wake is not None
        while not self._stopping:
            try:
                # Woken after every event (any may arm an earlier deadline), but a part runs
                # only when something is due: most wakes are a dialog step with nothing due,
                # and ticking the SMS centre and the links queried the store every time.
                deadline = self.next_deadline()
                if deadline is not None and deadline <= self.clock.now():
                    self.tick()
                    deadline = self.next_deadline()  # what the tick left, or armed
                else:
                    self.perform()  # cancels the engine queued since (a released dialog)
            except Exception:
                _log.exception("tick_failed")
                deadline = None  # tried again at the next wake: any event or clock change
            timeout: float | None = None
            if deadline is not None and not isinstance(self.clock, SimulatedClock):
                timeout = max(0.0, deadline - self.clock.now())
            # A simulated clock only moves by advance(), which wakes us: no timeout then.
            self._wake.clear()
            if self._stopping:
                break
            # asyncio.timeout(), not wait_for(): on 3.11 wait_for can swallow a cancel that
            # lands as the wait completes, and stop() would then wait forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(
                    timeout if timeout is None or math.isfinite(timeout) else None
                ):
                    await self._wake.wait()

    async def stop(self) -> None:
        """Stop the timer task, end open dialogs and close the store."""
        for _, task in self._effect_tasks.values():
            task.cancel()  # their dialogs end below; the answers have nobody to go to
        self._effect_tasks.clear()
        if self._task is not None:
            # The flag ends the loop even if a cancel were lost; the cancel ends a wait at once.
            self._stopping = True
            self.wake()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
            if self._unsubscribe_clock:
                self._unsubscribe_clock()
            self._unsubscribe_bus()
        if self._apps is not None:
            self.performers.pop(APP_EFFECTS, None)
            await self._apps.close()
            self._apps = None
        self.close()

    @property
    def real_time(self) -> bool:
        return isinstance(self.clock, RealClock)
