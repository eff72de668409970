"""Links kept in memory beside the subscribers (Store.link; docs/cluster.md "Performance").

On SQLite and on PostgreSQL: another connection's write is seen as a subscriber's is (SQLite's
data_version, the notified write counter of ussd/pgsql.py), this connection's own at once, a
rolled-back one never, and a write transaction reads the database itself.
"""

from __future__ import annotations

import select
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ussd import store as store_mod
from ussd.pgsql import PgConnection
from ussd.store import Link, Store

A, B = "79161234567", "79161234568"
NOW = 1_780_000_000.0
WAIT = 10.0  # seconds another connection's commit may take to be heard


def _link_once(here: Store, number: str, expected: Link | None) -> Link | None:
    """here.link(number), once it is `expected` or WAIT has passed.

    SQLite answers at once; PostgreSQL tells of another's commit with a notification that
    arrives a moment after the commit returns (ussd/pgsql.py), so wait for the socket.
    """
    deadline = time.monotonic() + WAIT
    while (link := here.link(number)) != expected and time.monotonic() < deadline:
        db = here.db
        if not isinstance(db, PgConnection) or db._conn is None:
            break
        select.select([db._conn.pgconn.socket], [], [], deadline - time.monotonic())
    return link


@pytest.fixture(params=["sqlite", "postgresql"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Store]]:
    """Stores on one database, as two workers (or the gateway and a CLI) have them."""
    if request.param == "sqlite":
        database = str(tmp_path / "links.sqlite3")
    else:
        database = request.getfixturevalue("postgres_url")
    opened: list[Store] = []

    def make() -> Store:
        store = Store(database)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


def test_another_connections_link_writes_are_seen(
    stores: Callable[[], Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Reads here follow each other within microseconds: look for other writers on every one.
    monkeypatch.setattr(store_mod, "OTHER_WRITERS_CHECK", 0.0)
    here, other = stores(), stores()
    assert here.link(B) is None
    assert B in here._links  # kept, None too
    assert other.add_link(B, A, "office", NOW, NOW + 60)
    office = Link(B, A, "office", NOW, NOW + 60)
    assert _link_once(here, B, office) == office
    assert other.remove_link(B) == 1
    assert _link_once(here, B, None) is None


def test_own_writes_are_seen_at_once(
    stores: Callable[[], Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_mod, "OTHER_WRITERS_CHECK", 3600.0)  # others: never looked at
    store = stores()
    assert store.link(B) is None
    assert store.add_link(B, A, "app", NOW, NOW)
    assert store.link(B) == Link(B, A, "app", NOW, NOW)
    assert store.remove_link(B, account=A) == 1
    assert store.link(B) is None
    seen: list[Link | None] = []

    def add_then_fail() -> None:
        with store.transaction():
            store.add_link(B, A, "app", NOW, NOW)
            seen.append(store.link(B))  # read inside the transaction
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        add_then_fail()
    assert seen == [Link(B, A, "app", NOW, NOW)]
    assert store.link(B) is None


def test_a_write_transaction_reads_links_from_the_database(
    stores: Callable[[], Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A rule that checks a link, then writes (Accounts: no links both ways) must not go by a
    # cached row another writer has changed since.
    monkeypatch.setattr(store_mod, "OTHER_WRITERS_CHECK", 3600.0)
    here, other = stores(), stores()
    assert here.link(A) is None  # cached
    assert other.add_link(A, B, "app", NOW, NOW)
    assert here.link(A) is None  # outside a transaction the cached row stands for a while
    with here.transaction():
        assert here.link(A) == Link(A, B, "app", NOW, NOW)
