"""The gateway's world and its one timer task (SPEC §4): the only place that waits on time."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from ussd import log, selfcare
from ussd.accounts import Accounts
from ussd.bus import Bus
from ussd.clock import Clock, RealClock, SimulatedClock, make
from ussd.config import Config, ConfigError
from ussd.engine import Engine
from ussd.links import LinkScheduler
from ussd.menus import MenuBook, MenuError, Texts
from ussd.metrics import Metrics
from ussd.passwords import HashPool
from ussd.routing import Router
from ussd.services import builtin
from ussd.services.base import Context
from ussd.services.password import PasswordSet, store_now
from ussd.sms import SmsCentre
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
        # The personal account and its link activations (SPEC §7). Built here rather than in
        # create() so that a Gateway assembled by hand is wired the same way.
        self.accounts = Accounts(store, clock, sms, config, texts)
        self.accounts.wake = self.wake  # a new pending link re-arms the timer task
        self.links = LinkScheduler(store, clock, self.accounts)
        self.scheduled: list[Scheduled] = [engine, sms, self.links]
        # The gateway's counters; transports add what only they see (docs/design.md).
        self.metrics = Metrics()
        engine.subscribe(self.metrics.on_event)
        # scrypt runs here, on a few threads, when the gateway serves (ussd/passwords.py).
        self.passwords = HashPool()
        self._wake: asyncio.Event | None = None
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe_clock: Callable[[], None] | None = None

    @classmethod
    def create(
        cls,
        config: Config,
        *,
        clock: Clock | None = None,
        database: str | None = None,
        menus_dir: Path | None = None,
    ) -> Gateway:
        """Build the world; menus and routes are checked here (errors name file/key)."""
        clock = clock or make(config.clock_mode)
        try:
            texts = Texts.load(menus_dir)
            book = MenuBook.load(menus_dir)
            catalogue = selfcare.Catalogue.load(menus_dir)  # "МТС Бонус" gifts (menus/bonus.yaml)
        except MenuError as exc:
            raise ConfigError("menus", str(exc)) from exc
        services = builtin(book, catalogue)
        names = set(services) | {f"menu:{sid}" for sid in book.screens}
        try:
            book.check_services(services)
        except MenuError as exc:
            raise ConfigError("menus", str(exc)) from exc
        router = Router(config.ussd.routes, names)
        try:
            store = Store(database or config.storage_database)
        except StoreError as exc:
            # One line naming the key, exit 2 (docs/config.md), never a traceback.
            raise ConfigError("storage.database", str(exc)) from None
        saved = store.saved_clock()
        if isinstance(clock, SimulatedClock) and saved is not None and saved > clock.now():
            # A simulated clock continues where it stopped: the locks, tokens and office links
            # in the store were written against that time.
            clock.advance(saved - clock.now())
        bus = Bus()
        sms = SmsCentre(store, clock, config.sms, bus)
        engine = Engine(config, store, clock, bus, sms, router, services, texts)
        gateway = cls(config, clock, store, engine, sms, bus, book, texts)
        gateway.accounts.catalogue = catalogue
        gateway.seed()
        return gateway

    def seed(self) -> None:
        """Create the `subscribers.seed` numbers that are not in the store yet."""
        now = self.clock.now()
        for seed in self.config.subscribers.seed:
            msisdn = self.engine.normalise(seed.msisdn)
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
                password_hash=hash_password(seed.password) if seed.password else None,
                number_management=seed.number_management,
            )
            selfcare.seed(self.store, msisdn, seed.charges, seed.instalments, now)

    def hash_off_loop(self) -> None:
        """`*111*17#` stores its password from a hashing thread (call with the loop running).

        The dialog ends at once; the hash lands some 40 ms later, and a login of the number
        waits for it (passwords.Settle). `serve` turns this on; in-process commands and
        unit tests keep the one-step store.
        """
        service = self.engine.services.get("password.set")
        if not isinstance(service, PasswordSet):
            return

        def store_later(ctx: Context, password: str) -> None:
            try:
                asyncio.get_running_loop()
            except RuntimeError:  # an engine step run outside the loop: nothing to stall
                store_now(ctx, password)
                return
            msisdn, now, notice = ctx.msisdn, ctx.now, ctx.t("password.sms")

            def landed(encoded: str) -> None:
                self.store.set_password_hash(msisdn, encoded, now)
                self.sms.send(msisdn, notice)

            self.passwords.hash_later(msisdn, password, landed)

        service.store_password = store_later

    # -- for transports: read-only views, so none reaches into the store --------------------

    def subscribers(self) -> list[Subscriber]:
        """Every subscriber (the admin API's list, the web phone's number selector)."""
        return self.store.subscribers()

    def find_subscriber(self, msisdn: str) -> Subscriber | None:
        """The subscriber of a normalised MSISDN, or None; never provisions (engine.subscriber
        provisions on first contact)."""
        return self.store.subscriber(msisdn)

    def close(self) -> None:
        """End open dialogs and close the store: the end of an in-process command's world."""
        self.engine.shutdown()
        self.passwords.close()
        self.store.close()

    # -- the timer task -----------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        deadlines = [d for d in (s.next_deadline() for s in self.scheduled) if d is not None]
        return min(deadlines) if deadlines else None

    def tick(self) -> None:
        """Run everything due now."""
        for item in self.scheduled:
            item.tick()

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
        # Any event may have armed a new deadline: re-read them after it.
        self._unsubscribe_bus = self.bus.subscribe(lambda _event: self.wake())
        self._task = asyncio.create_task(self._timers(), name="ussd-timers")

    async def _timers(self) -> None:
        assert self._wake is not None
        while not self._stopping:
            try:
                self.tick()
            except Exception:
                _log.exception("tick_failed")
            deadline = self.next_deadline()
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
        self.close()

    @property
    def real_time(self) -> bool:
        return isinstance(self.clock, RealClock)
