"""The SMS centre core (SPEC §3, §5): persist first, tell second, deliver from the inbox."""

from __future__ import annotations

from collections.abc import Sequence

from ussd import log, selfcare
from ussd.bus import Bus
from ussd.clock import Clock
from ussd.config import SmsConfig
from ussd.events import Sms, SmsQueued, SmsState, SmsStateChanged
from ussd.store import Store

_log = log.get("sms")


def covered(msisdn: str, prefixes: Sequence[str]) -> bool:
    """True when msisdn falls in one of the `sms_ranges` prefixes (empty: all numbers)."""
    return not prefixes or any(msisdn.startswith(p) for p in prefixes)


class SmsCentre:
    """Network SMS: queued → delivered | expired, every state change committed first."""

    def __init__(self, store: Store, clock: Clock, config: SmsConfig, bus: Bus) -> None:
        self.store = store
        self.clock = clock
        self.config = config
        self.bus = bus

    def send(
        self,
        to: str,
        text: str,
        *,
        sender: str | None = None,
        kind: str = "network",
        sender_is_alpha: bool = True,
    ) -> Sms:
        """Queue an SMS for `to`; it is on disk before anyone hears of it."""
        sms = self.queue(to, text, sender=sender, kind=kind, sender_is_alpha=sender_is_alpha)
        self.announce(sms)
        return sms

    def queue(
        self,
        to: str,
        text: str,
        *,
        sender: str | None = None,
        kind: str = "network",
        sender_is_alpha: bool = True,
    ) -> Sms:
        """Persist an SMS without telling anyone: for a caller that writes more in the same
        `store.transaction()` (a delivery receipt); it calls announce() after the commit."""
        now = self.clock.now()
        with self.store.transaction():
            sms = self.store.add_sms(
                to,
                sender or self.config.sender_id,
                text,
                now,
                now + self.config.validity,
                kind=kind,
                sender_is_alpha=sender_is_alpha if sender is not None else True,
            )
            if kind == "mo" and sender is not None:
                # The sender pays as it sends: from the package, else sms.mo_price into the
                # spending-control ledger (docs/account.md "Мой МТС"), in the same transaction.
                selfcare.charge_mo_sms(self.store, sender, to, self.config.mo_price, now)
        return sms

    def announce(self, sms: Sms) -> None:
        """Tell the transports about an SMS queue() persisted (it goes out from here)."""
        _log.info("sms_queued", msisdn=sms.recipient, sms_id=sms.id, kind=sms.kind)
        self.bus.emit(SmsQueued(sms.recipient, sms))

    def inbox(self, msisdn: str) -> list[Sms]:
        return self.store.inbox(msisdn)

    def pending(self, prefixes: Sequence[str] = ()) -> list[Sms]:
        """Queued, unexpired SMS for numbers within prefixes (empty: every number)."""
        now = self.clock.now()
        return [s for s in self.store.queued_sms(lambda m: covered(m, prefixes)) if s.expires > now]

    def queued_after(self, after: int, limit: int) -> list[Sms]:
        """One step of a drain: up to `limit` queued SMS with id > after, in id order.

        Expired ones may be among them until tick() runs; the caller skips those.
        """
        return self.store.queued_sms_after(after, limit)

    def mark_delivered(self, sms_id: int) -> Sms | None:
        """Record delivery (SMPP deliver_sm_resp OK, or shown on a handset)."""
        sms = self.store.set_sms_state(sms_id, SmsState.DELIVERED, self.clock.now())
        if sms is not None:
            _log.info("sms_delivered", msisdn=sms.recipient, sms_id=sms.id)
            self.bus.emit(SmsStateChanged(sms.recipient, sms))
        return sms

    def mark_delivered_many(self, sms_ids: Sequence[int]) -> list[Sms]:
        """mark_delivered for several SMS in one transaction (a window acknowledged at once)."""
        delivered = self.store.mark_sms_delivered(sms_ids, self.clock.now())
        for sms in delivered:
            _log.info("sms_delivered", msisdn=sms.recipient, sms_id=sms.id)
            self.bus.emit(SmsStateChanged(sms.recipient, sms))
        return delivered

    def next_deadline(self) -> float | None:
        """When the next queued SMS (or incomplete concatenated set) runs out of validity."""
        store = self.store
        deadlines = [
            d for d in (store.next_sms_expiry(), store.next_part_expiry()) if d is not None
        ]
        return min(deadlines) if deadlines else None

    def tick(self) -> None:
        """Expire SMS whose validity has passed (SPEC §5: store-and-forward until validity)."""
        now = self.clock.now()
        for sms in self.store.expire_sms(now):
            _log.info("sms_expired", msisdn=sms.recipient, sms_id=sms.id)
            self.bus.emit(SmsStateChanged(sms.recipient, sms))
        dropped = self.store.expire_parts(now)
        if dropped:
            # Concatenated MO SMS whose set never completed (TS 23.040 §9.2.3.24.1).
            _log.warning("sms_parts_expired", parts=dropped)
