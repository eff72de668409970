"""Group commit (Store.group): one transaction for a batch of grouped transactions, each a
savepoint in it; those waiting hear whether the COMMIT happened. On both backends: SQLite, and
PostgreSQL as cluster mode uses it (docs/cluster.md)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import pytest

from tests.services import Server, create_database
from ussd.store import Store

NOW = 1_780_000_000.0
KATE = "79161112233"

_fresh = iter(range(1, 1_000_000))


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    if request.param == "postgres":
        server: Server = request.getfixturevalue("postgres_server")
        database = create_database(server, f"group{next(_fresh)}")
    else:
        database = ":memory:"
    opened = Store(database)
    # A real COMMIT-time failure: a deferred foreign key is checked by COMMIT, not before.
    with opened.transaction() as db:
        db.execute("CREATE TABLE gate (id INTEGER PRIMARY KEY)")
        db.execute(
            "CREATE TABLE doomed (ref INTEGER REFERENCES gate (id) DEFERRABLE INITIALLY DEFERRED)"
        )
    yield opened
    opened.close()


def add(store: Store, text: str, heard: list[tuple[str, bool]]) -> None:
    """One grouped write (an MO SMS), told of its fate like the SMS centre."""
    with store.transaction(grouped=True):
        store.add_sms(KATE, "79160000001", text, NOW, NOW + 60, kind="mo")
    assert store.after_commit(lambda committed: heard.append((text, committed)))


def add_twice(store: Store) -> None:
    """A grouped write that fails after writing: an SMS, then one key twice."""
    with store.transaction(grouped=True) as db:
        store.add_sms(KATE, "79160000001", "two", NOW, NOW + 60, kind="mo")
        db.execute("INSERT INTO gate (id) VALUES (1)")
        db.execute("INSERT INTO gate (id) VALUES (1)")


def texts(store: Store) -> list[str]:
    return [s.text for s in store.inbox(KATE)]


def test_a_batch_is_one_commit_and_is_heard_after_it(store: Store) -> None:
    heard: list[tuple[str, bool]] = []
    with store.group():
        add(store, "one", heard)
        add(store, "two", heard)
        assert heard == []  # nothing is answered before the COMMIT
    assert heard == [("one", True), ("two", True)]
    assert texts(store) == ["one", "two"]


def test_a_failing_transaction_rolls_back_alone(store: Store) -> None:
    heard: list[tuple[str, bool]] = []
    with store.group():
        add(store, "one", heard)
        with pytest.raises(Exception, match=r"(?i)unique") as failed:
            add_twice(store)
        assert type(failed.value).__name__ in ("IntegrityError", "UniqueViolation")
        add(store, "three", heard)  # PostgreSQL's transaction is usable again after it
    assert heard == [("one", True), ("three", True)]
    assert texts(store) == ["one", "three"]


def test_a_failed_commit_tells_every_waiter_and_keeps_nothing(store: Store) -> None:
    heard: list[tuple[str, bool]] = []
    with store.group():
        add(store, "one", heard)
        with store.transaction(grouped=True) as db:
            db.execute("INSERT INTO doomed (ref) VALUES (42)")  # no gate 42: COMMIT refuses
        add(store, "two", heard)
    assert heard == [("one", False), ("two", False)]
    assert texts(store) == []
    # The store goes on: the next batch commits.
    with store.group():
        add(store, "again", heard)
    assert heard[-1] == ("again", True)
    assert texts(store) == ["again"]


def test_an_ungrouped_transaction_commits_the_batch_first(store: Store) -> None:
    heard: list[tuple[str, bool]] = []
    with store.group():
        add(store, "one", heard)
        with store.transaction() as db:  # e.g. a USSD step's write: its own commit, as always
            assert heard == [("one", True)]
            db.execute("INSERT INTO gate (id) VALUES (7)")
        add(store, "two", heard)
        assert heard == [("one", True)]
    assert heard == [("one", True), ("two", True)]
    assert texts(store) == ["one", "two"]


def test_outside_a_group_nothing_waits(store: Store) -> None:
    with store.transaction(grouped=True):
        store.add_sms(KATE, "79160000001", "alone", NOW, NOW + 60, kind="mo")
    assert not store.after_commit(lambda committed: None)  # committed already
    with store.group():
        assert not store.after_commit(lambda committed: None)  # nothing written yet
    assert texts(store) == ["alone"]


def test_a_batch_that_writes_nothing_costs_no_statement() -> None:
    store = Store(":memory:")
    seen: list[str] = []
    assert isinstance(store.db, sqlite3.Connection)
    store.db.set_trace_callback(seen.append)
    with store.group():
        store.inbox(KATE)
    assert [s for s in seen if not s.startswith("SELECT")] == []
    store.close()


def test_a_failed_commit_of_its_own_leaves_the_store_usable(store: Store) -> None:
    with pytest.raises(Exception, match=r"(?i)foreign key"), store.transaction() as db:
        db.execute("INSERT INTO doomed (ref) VALUES (42)")
    with store.transaction() as db:  # no "transaction within a transaction"
        store.add_sms(KATE, "79160000001", "after", NOW, NOW + 60, kind="mo")
    assert texts(store) == ["after"]
