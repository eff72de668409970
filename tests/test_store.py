"""The store (docs/design.md): password hashes, subscribers, links, other writers, bad files and
the saved simulated clock, as tables where the rule is a table. What is not about SQLite files
runs on both backends: SQLite, and PostgreSQL as cluster mode uses it (docs/cluster.md)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import make_config
from tests.services import Server, create_database
from ussd import store as store_mod
from ussd.clock import SimulatedClock
from ussd.config import ConfigError
from ussd.runtime import Gateway
from ussd.store import MIGRATIONS, Store, StoreError, hash_password, verify_password

NOW = 1_780_000_000.0
RU = "79161234567"


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _fresh_postgres(request: pytest.FixtureRequest) -> str:
    server: Server = request.getfixturevalue("postgres_server")
    return create_database(server, f"store{next(_fresh)}")


_fresh = iter(range(1, 1_000_000))


@pytest.fixture
def path(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> str:
    """One database, which a test may open more than once: a file, or a PostgreSQL database."""
    if backend == "postgres":
        return _fresh_postgres(request)
    return str(tmp_path / "ussd.sqlite3")


@pytest.fixture
def stores(backend: str, request: pytest.FixtureRequest) -> Iterator[Callable[[str], Store]]:
    opened: list[Store] = []

    def open_(database: str) -> Store:
        if database == ":memory:" and backend == "postgres":
            database = _fresh_postgres(request)  # SQLite's :memory: is new on every open
        store = Store(database)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        store.close()


# -- password hashes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoded", "password", "ok"),
    [
        (hash_password("secret12"), "secret12", True),
        (hash_password("secret12"), "Secret12", False),
        (hash_password("secret12"), "", False),
        (None, "anything", False),  # no password set: same work, no
        ("", "anything", False),
        ("bcrypt$1$2$3$00$00", "x", False),  # another scheme
        ("scrypt$nonsense", "x", False),  # damaged
        ("scrypt$1024$8$1$zz$00", "x", False),  # bad hex
    ],
)
def test_verify_password(encoded: str | None, password: str, ok: bool) -> None:
    assert verify_password(password, encoded) is ok


def test_hashes_are_salted_and_never_hold_the_password() -> None:
    first, second = hash_password("secret12"), hash_password("secret12")
    assert first != second and "secret12" not in first
    assert first.startswith("scrypt$")


# -- subscribers, links and tokens --------------------------------------------------------------


def test_subscriber_round_trip(stores: Callable[[str], Store]) -> None:
    store = stores(":memory:")
    assert store.subscriber(RU) is None
    sub = store.create_subscriber(
        RU, "ru", NOW, balance=12.5, package={"minutes": 3}, services={"roaming": True}
    )
    assert (sub.balance, sub.package_minutes, dict(sub.services)) == (12.5, 3, {"roaming": True})
    again = store.create_subscriber(RU, "en", NOW, balance=99)  # exists: left as it is
    assert again.language == "ru" and again.balance == 12.5
    updated = store.update_subscriber(RU, balance=1.0, payments=[{"date": "d", "amount": 1}])
    assert updated is not None and updated.balance == 1.0 and len(updated.payments) == 1
    assert store.update_subscriber("70000000000", balance=1.0) is None
    with pytest.raises(KeyError):
        store.update_subscriber(RU, password_hash="x")


@pytest.mark.parametrize(
    ("first", "second", "added"),
    [
        (("79160000001", "79160000002"), ("79160000001", "79160000003"), False),  # one account
        (("79160000001", "79160000002"), ("79160000004", "79160000002"), True),
    ],
)
def test_a_number_is_linked_once(
    stores: Callable[[str], Store], first: tuple[str, str], second: tuple[str, str], added: bool
) -> None:
    store = stores(":memory:")
    assert store.add_link(*first, "app", NOW, NOW)
    assert store.add_link(*second, "office", NOW, NOW + 10) is added


def test_setting_a_password_revokes_the_numbers_tokens(stores: Callable[[str], Store]) -> None:
    store = stores(":memory:")
    store.create_subscriber(RU, "ru", NOW)
    with store.transaction() as db:
        for msisdn, token in ((RU, "a"), (RU, "b"), ("79160000009", "c")):
            db.execute(
                "INSERT INTO auth_tokens VALUES (?, ?, 'network', ?, ?)",
                (token, msisdn, NOW, NOW + 60),
            )
    store.set_password_hash(RU, hash_password("secret12"), NOW)
    left = store.db.execute("SELECT token_hash FROM auth_tokens").fetchall()
    assert left == [("c",)]


# -- another process writes the same file -------------------------------------------------------


def test_a_write_by_another_connection_is_seen_at_once(
    stores: Callable[[str], Store], path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Reads here follow each other within microseconds: look at data_version on every one.
    monkeypatch.setattr(store_mod, "OTHER_WRITERS_CHECK", 0.0)
    gateway, cli = stores(path), stores(path)
    gateway.create_subscriber(RU, "ru", NOW, balance=1.0)
    assert gateway.subscriber(RU).balance == 1.0  # type: ignore[union-attr]  # now cached
    cli.update_subscriber(RU, balance=777.0)
    assert gateway.subscriber(RU).balance == 777.0  # type: ignore[union-attr]
    cli.set_password_hash(RU, hash_password("fromcli1"), NOW)
    assert verify_password("fromcli1", gateway.subscriber(RU).password_hash)  # type: ignore[union-attr]


def test_own_writes_keep_the_cache(stores: Callable[[str], Store], path: str) -> None:
    store = stores(path)
    store.create_subscriber(RU, "ru", NOW)
    store.subscriber(RU)
    store.add_sms(RU, "Operator", "hello", NOW, NOW + 60)  # our own commit
    assert RU in store._subscribers  # data_version moves only for other connections


# -- bad database files -------------------------------------------------------------------------


def _garbage(path: Path) -> None:
    path.write_bytes(b"this is not a database\n" * 200)


def _truncated(path: Path) -> None:
    store = Store(str(path))
    for i in range(3000):
        store.create_subscriber(f"7916{i:07d}", "ru", NOW)
    store.close()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _newer(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    db.close()


def _directory(path: Path) -> None:
    path.mkdir()


def _under_a_file(path: Path) -> None:
    path.write_text("a file")


BAD_FILES: list[tuple[str, Callable[[Path], None], str, str]] = [
    ("garbage", _garbage, "", "not a usable ussd-sim database: file is not a database"),
    ("truncated", _truncated, "", "not a usable ussd-sim database"),
    ("newer schema", _newer, "", "is newer than this ussd-sim"),
    ("directory", _directory, "", "cannot open"),
    ("under a file", _under_a_file, "inner.sqlite3", "cannot open"),
]


@pytest.mark.parametrize(
    ("make", "below", "message"),
    [(make, below, message) for _, make, below, message in BAD_FILES],
    ids=[name for name, *_ in BAD_FILES],
)
def test_bad_database_files(
    tmp_path: Path, make: Callable[[Path], None], below: str, message: str
) -> None:
    bad = tmp_path / "ussd.sqlite3"
    make(bad)
    database = str(bad / below) if below else str(bad)
    with pytest.raises(StoreError, match=message):
        Store(database)
    with pytest.raises(ConfigError) as info:
        Gateway.create(make_config(), clock=SimulatedClock(NOW), database=database)
    assert info.value.key == "storage.database"
    assert "\n" not in str(info.value)


# -- the simulated clock continues across restarts ----------------------------------------------


def test_saved_clock(stores: Callable[[str], Store]) -> None:
    store = stores(":memory:")
    assert store.saved_clock() is None
    store.save_clock(NOW + 10)
    store.save_clock(NOW + 5)  # never backwards
    assert store.saved_clock() == NOW + 10


def test_simulated_clock_continues_after_a_restart(path: str) -> None:
    config = make_config(clock={"mode": "simulated"})
    first = Gateway.create(config, database=path)
    start = first.clock.now()
    first.accounts.login_network(RU)
    first.advance(3 * 86400 + 17)
    first.engine.shutdown()
    first.store.close()

    second = Gateway.create(config, database=path)  # a fresh clock at its fixed start date
    try:
        assert second.clock.now() == start + 3 * 86400 + 17
        second.advance(60)
    finally:
        second.engine.shutdown()
        second.store.close()
    third = Gateway.create(config, database=path)
    try:
        assert third.clock.now() == start + 3 * 86400 + 77
    finally:
        third.engine.shutdown()
        third.store.close()


def test_an_office_link_keeps_its_remaining_time_across_a_restart(path: str) -> None:
    config = make_config(clock={"mode": "simulated"})
    first = Gateway.create(config, database=path)
    first.engine.dial("79161112233", "*111*828*1#")
    link = first.accounts.office_link(RU, "79161112233")
    first.advance(86400)  # one of the two days
    first.engine.shutdown()
    first.store.close()
    second = Gateway.create(config, database=path)
    try:
        assert link.active_at - second.clock.now() == 86400  # one day left, not two
        assert not second.store.link("79161112233").active(second.clock.now())  # type: ignore[union-attr]
    finally:
        second.engine.shutdown()
        second.store.close()
