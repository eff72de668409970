"""Office links coming into force: the activation SMS to both numbers, exactly once.

A `Scheduled` for the gateway's timer task (ussd/runtime.py): `next_deadline()` is the earliest
un-notified link, so the task sleeps until then instead of polling. Whether a link's SMS went out
is stored with the link (`links.notified`), in the same transaction as the SMS themselves: a
restart neither resends nor loses them, and a gateway started after the due time sends them at
its first tick.
"""

from __future__ import annotations

from ussd import log
from ussd.accounts import Accounts
from ussd.clock import Clock
from ussd.store import Link, Store

_log = log.get("links")


class LinkScheduler:
    """Sends the activation SMS of pending links when their time comes."""

    def __init__(self, store: Store, clock: Clock, accounts: Accounts) -> None:
        self.store = store
        self.clock = clock
        self.accounts = accounts
        # The answer of next_deadline(), kept while the store has not changed.
        self._next: tuple[tuple[int, int] | None, float | None] = (None, None)

    def next_deadline(self) -> float | None:
        """When the next pending link becomes active (None: none pending)."""
        marker = self.store.change_marker()
        if marker is not None and marker == self._next[0]:
            return self._next[1]
        row = self.store.db.execute(
            "SELECT MIN(active_at) FROM links WHERE notified IS NULL"
        ).fetchone()
        deadline = float(row[0]) if row and row[0] is not None else None
        self._next = (marker, deadline)
        return deadline

    def due(self, now: float) -> list[Link]:
        """Links active by `now` whose activation SMS has not gone out."""
        rows = self.store.db.execute(
            "SELECT number, account, flow, created, active_at FROM links "
            "WHERE notified IS NULL AND active_at <= ? ORDER BY active_at, number",
            (now,),
        )
        return [Link(*r) for r in rows]

    def tick(self) -> None:
        """Notify every link that has become active."""
        now = self.clock.now()
        for link in self.due(now):
            with self.store.transaction() as db:
                # The guard makes the mark and the SMS happen once even if tick() re-enters.
                cur = db.execute(
                    "UPDATE links SET notified = ? "
                    "WHERE number = ? AND account = ? AND notified IS NULL",
                    (now, link.number, link.account),
                )
                if cur.rowcount == 0:
                    continue
                self.accounts.notify_linked(link.account, link.number)
            _log.info("link_active", msisdn=link.account, number=link.number, flow=link.flow)
