"""The SMS centre core: persist first, tell second, deliver from the inbox."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace

from ussd import log, selfcare
from ussd.bus import Bus
from ussd.clock import Clock
from ussd.config import SmsConfig
from ussd.events import Sms, SmsQueued, SmsState, SmsStateChanged
from ussd.faults import SMS_LOST, Faults
from ussd.store import Connection, HeldPart, Receipt, ReceiptState, Store

_log = log.get("sms")

# SMS held back by an sms_delayed fault at most (docs/network.md "Faults"); past it one goes
# at once, so a runaway rule cannot grow memory.
MAX_DELAYED = 10_000


def covered(msisdn: str, prefixes: Sequence[str]) -> bool:
    """True when msisdn falls in one of the `sms_ranges` prefixes (empty: all numbers)."""
    return not prefixes or any(msisdn.startswith(p) for p in prefixes)


class SmsCentre:
    """Network SMS: queued → delivered | expired, every state change committed first."""

    def __init__(
        self, store: Store, clock: Clock, config: SmsConfig, bus: Bus, faults: Faults | None = None
    ) -> None:
        self.store = store
        self.clock = clock
        self.config = config
        self.bus = bus
        self.faults = faults if faults is not None else Faults()
        # SMS an sms_delayed fault holds back: (due, order, to, text, sender, kind, alpha). In
        # memory only: a restart loses them, as a network losing its queue would.
        self._delayed: list[tuple[float, int, str, str, str | None, str, bool]] = []
        self._order = itertools.count()
        # The store's next expiry, kept while the store has not changed (store.change_marker):
        # the timer task asks after every dialog step, and most steps write nothing.
        self._expiry: tuple[tuple[int, int] | None, float | None] = (None, None)

    def send(
        self,
        to: str,
        text: str,
        *,
        sender: str | None = None,
        kind: str = "network",
        sender_is_alpha: bool = True,
    ) -> Sms:
        """Queue an SMS for `to`; it is on disk before anyone hears of it.

        An injected fault (ussd/faults.py) may lose it — nothing is stored, and the SMS comes
        back with id 0 and state expired — or hold it back for the rule's delay (id 0, queued).
        """
        fault = self.faults.sms(to) if self.faults else None
        if fault is not None:
            now = self.clock.now()
            phantom = Sms(0, to, sender or self.config.sender_id, text, SmsState.QUEUED, now, now)
            if fault.kind == SMS_LOST:
                _log.info("sms_lost", msisdn=to, rule=fault.rule)
                return replace(phantom, state=SmsState.EXPIRED)
            if len(self._delayed) < MAX_DELAYED:
                entry = (now + fault.delay, next(self._order), to, text, sender, kind)
                heapq.heappush(self._delayed, (*entry, sender_is_alpha))
                _log.info("sms_delayed", msisdn=to, rule=fault.rule, delay=fault.delay)
                return replace(phantom, expires=now + fault.delay)
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

    # -- MO SMS: receipts and concatenated parts (SMPP 3.4 §5.2.17, TS 23.040 §9.2.3.24.1) --

    def transaction(self, *, grouped: bool = False) -> AbstractContextManager[Connection]:
        """One commit for an MO SMS, the receipts it owes and the parts it completes: nothing
        acknowledged to the sender is lost (docs/smpp.md). Nested calls join the outer one.
        `grouped`: a savepoint of the store's group, if one is open (Store.transaction)."""
        return self.store.transaction(grouped=grouped)

    def group(self) -> AbstractContextManager[None]:
        """One COMMIT for the grouped writes of a batch, before anyone is answered (Store.group:
        the PDUs of one SMPP read, docs/smpp.md "MO SMS")."""
        return self.store.group()

    def after_commit(self, done: Callable[[bool], None]) -> bool:
        """Call done(committed) once the open group commits or rolls back and return True; or
        return False when nothing waits for a COMMIT (Store.after_commit, docs/smpp.md)."""
        return self.store.after_commit(done)

    def owe_receipt(
        self, sms: Sms, system_id: str, message_id: str, sender: str, registered_delivery: int
    ) -> int:
        """Record a receipt owed to system_id for `sms`; call inside transaction()."""
        return self.store.add_receipt(sms, system_id, message_id, sender, registered_delivery)

    def hold_part(
        self,
        sender: str,
        recipient: str,
        reference: int,
        total: int,
        seq: int,
        text: str,
        *,
        system_id: str,
        registered_delivery: int,
    ) -> tuple[str, list[HeldPart] | None]:
        """Keep one part of a concatenated MO SMS until its set completes or its validity ends.

        Returns (its message_id, every part in order once the set is complete); the complete
        set is removed, so call inside the transaction() that queues the reassembled SMS.
        """
        now = self.clock.now()
        return self.store.hold_part(
            sender,
            recipient,
            reference,
            total,
            seq,
            text,
            system_id=system_id,
            registered_delivery=registered_delivery,
            now=now,
            expires=now + self.config.validity,
        )

    def receipts_of(self, sms_id: int) -> list[Receipt]:
        """Every receipt owed for an SMS, in the order its submissions were acknowledged."""
        return self.store.receipts_of(sms_id)

    def receipt_systems_due(self, sms_ids: Sequence[int]) -> set[str]:
        """The system_ids owed a due receipt for any of these SMS (after their state changed)."""
        return self.store.receipt_systems_due(sms_ids)

    def due_receipts(self, system_id: str) -> list[Receipt]:
        """Receipts owed to system_id whose SMS was delivered or expired, oldest first."""
        return self.store.due_receipts(system_id)

    def close_receipt(self, receipt_id: int, state: ReceiptState) -> bool:
        """Close a due receipt (sent, skipped, refused); False when it was not due."""
        return self.store.set_receipt_state(receipt_id, state)

    def receipt_refused(self, receipt_id: int) -> int:
        """One more refusal of a receipt by its ESME; the count so far."""
        return self.store.count_receipt_refusal(receipt_id)

    def next_deadline(self) -> float | None:
        """When the next queued SMS (or incomplete concatenated set) runs out of validity."""
        store = self.store
        marker = store.change_marker()
        if marker is None or marker != self._expiry[0]:
            found = [
                d for d in (store.next_sms_expiry(), store.next_part_expiry()) if d is not None
            ]
            self._expiry = (marker, min(found) if found else None)
        deadlines = [] if self._expiry[1] is None else [self._expiry[1]]
        if self._delayed:
            deadlines.append(self._delayed[0][0])
        return min(deadlines) if deadlines else None

    def tick(self) -> None:
        """Expire SMS whose validity has passed (docs/smpp.md: store-and-forward until validity)."""
        now = self.clock.now()
        while self._delayed and self._delayed[0][0] <= now:
            # A delayed SMS reaches the SMS centre now; its validity runs from here.
            _, _, to, text, sender, kind, alpha = heapq.heappop(self._delayed)
            sms = self.queue(to, text, sender=sender, kind=kind, sender_is_alpha=alpha)
            self.announce(sms)
        for sms in self.store.expire_sms(now):
            _log.info("sms_expired", msisdn=sms.recipient, sms_id=sms.id)
            self.bus.emit(SmsStateChanged(sms.recipient, sms))
        dropped = self.store.expire_parts(now)
        if dropped:
            # Concatenated MO SMS whose set never completed (TS 23.040 §9.2.3.24.1).
            _log.warning("sms_parts_expired", parts=dropped)
