"""SQLite store: subscribers, SMS inboxes, number links. WAL, versioned schema."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from ussd import log
from ussd.events import Sms, SmsState

# Each entry moves the schema one version up; PRAGMA user_version records where a file is.
# Never edit a released entry: add a new one (later issues add tables this way).
MIGRATIONS: list[str] = [
    # 1: subscribers, SMS inboxes, number links (docs/services.md, docs/smpp.md, docs/account.md)
    """
    CREATE TABLE subscribers (
        msisdn            TEXT PRIMARY KEY,
        language          TEXT NOT NULL,
        balance           REAL NOT NULL DEFAULT 0,
        package_minutes   INTEGER NOT NULL DEFAULT 0,
        package_sms       INTEGER NOT NULL DEFAULT 0,
        package_mb        INTEGER NOT NULL DEFAULT 0,
        bonus_points      INTEGER NOT NULL DEFAULT 0,
        services          TEXT NOT NULL DEFAULT '{}',
        payments          TEXT NOT NULL DEFAULT '[]',
        password_hash     TEXT,
        password_set_at   REAL,
        number_management INTEGER NOT NULL DEFAULT 0,
        created           REAL NOT NULL
    );
    CREATE TABLE sms (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        recipient       TEXT NOT NULL,
        sender          TEXT NOT NULL,
        text            TEXT NOT NULL,
        state           TEXT NOT NULL,
        created         REAL NOT NULL,
        expires         REAL NOT NULL,
        delivered       REAL,
        kind            TEXT NOT NULL DEFAULT 'network',
        sender_is_alpha INTEGER NOT NULL DEFAULT 1
    );
    CREATE INDEX sms_by_state ON sms (state, recipient);
    CREATE INDEX sms_by_recipient ON sms (recipient, id);
    CREATE TABLE links (
        number    TEXT PRIMARY KEY,  -- a number is linked to at most one account (docs/account.md)
        account   TEXT NOT NULL,
        flow      TEXT NOT NULL,     -- app | office
        created   REAL NOT NULL,
        active_at REAL NOT NULL
    );
    CREATE INDEX links_by_account ON links (account);
    CREATE INDEX links_by_active_at ON links (active_at);
    """,
    # 2: personal account (docs/account.md): lockout and SMS-password state, hashed tokens, social
    # identities, and when a link's activation SMS went out (ussd/accounts.py, ussd/links.py)
    """
    CREATE TABLE auth_state (
        msisdn               TEXT PRIMARY KEY,
        failures             INTEGER NOT NULL DEFAULT 0,
        locked_until         REAL,
        last_sms_password_at REAL
    );
    CREATE TABLE auth_tokens (
        token_hash TEXT PRIMARY KEY,  -- sha256 of the bearer token, never the token itself
        msisdn     TEXT NOT NULL,
        method     TEXT NOT NULL,     -- password | network | social
        created    REAL NOT NULL,
        expires    REAL NOT NULL
    );
    CREATE INDEX auth_tokens_by_expires ON auth_tokens (expires);
    CREATE TABLE social_identities (
        provider    TEXT NOT NULL,
        external_id TEXT NOT NULL,
        msisdn      TEXT NOT NULL,
        created     REAL NOT NULL,
        PRIMARY KEY (provider, external_id)
    );
    ALTER TABLE links ADD COLUMN notified REAL;  -- NULL until the activation SMS went out
    UPDATE links SET notified = created WHERE flow = 'app';
    CREATE INDEX links_unnotified ON links (active_at) WHERE notified IS NULL;
    """,
    # 3: delivery receipts owed to SMPP harnesses (SMPP 3.4 §5.2.17 registered_delivery), written
    # with the MO SMS they are about: an acknowledged submit_sm never loses its receipt.
    # state: waiting (SMS queued) -> due (delivered/expired) -> sent (deliver_sm_resp OK) |
    # skipped (failure-only receipt, SMS delivered) | refused (the harness kept refusing it).
    """
    CREATE TABLE receipts (
        sms_id              INTEGER PRIMARY KEY REFERENCES sms (id),
        system_id           TEXT NOT NULL,
        message_id          TEXT NOT NULL,  -- as given in the submit_sm_resp
        source_addr         TEXT NOT NULL,  -- the MO SMS's sender (the receipt's destination)
        dest_addr           TEXT NOT NULL,  -- the MO SMS's recipient (the receipt's source)
        submitted           REAL NOT NULL,
        registered_delivery INTEGER NOT NULL,
        state               TEXT NOT NULL,
        final_state         TEXT,           -- the SMS state it reports: delivered | expired
        done                REAL,
        attempts            INTEGER NOT NULL DEFAULT 0  -- refusals by the harness
    );
    CREATE INDEX receipts_due ON receipts (state, system_id);
    """,
    # 4: parts of concatenated MO SMS held until the set is complete (TS 23.040 §9.2.3.24.1,
    # §9.2.3.24.8); every part was acknowledged, so they are kept on disk until then.
    """
    CREATE TABLE sms_parts (
        id                  INTEGER PRIMARY KEY AUTOINCREMENT,  -- the part's message_id
        source_addr         TEXT NOT NULL,
        dest_addr           TEXT NOT NULL,
        reference           INTEGER NOT NULL,
        total               INTEGER NOT NULL,
        seq                 INTEGER NOT NULL,
        text                TEXT NOT NULL,
        system_id           TEXT NOT NULL,
        registered_delivery INTEGER NOT NULL,
        received            REAL NOT NULL,
        expires             REAL NOT NULL,
        UNIQUE (source_addr, dest_addr, reference, total, seq)
    );
    CREATE INDEX sms_parts_by_expires ON sms_parts (expires);
    """,
    # 5: where a simulated clock stood, so a restarted gateway continues from there and the
    # locks, tokens and office links written against it keep their remaining time.
    """
    CREATE TABLE clock (
        id  INTEGER PRIMARY KEY CHECK (id = 1),  -- one row
        now REAL NOT NULL
    );
    """,
    # 6: the store-and-forward drain reads the queue in id order from a cursor
    # (Store.queued_sms_after): a partial index holds the queued SMS only. Receipts become one
    # per acknowledged submit_sm (SMPP 3.4 §5.2.17): each part of a concatenated MO SMS that
    # asked for one is owed its own, so a receipt has an id of its own and sms_id repeats.
    """
    CREATE INDEX sms_queued ON sms (id) WHERE state = 'queued';
    CREATE TABLE receipts_by_part (
        id                  INTEGER PRIMARY KEY AUTOINCREMENT,
        sms_id              INTEGER NOT NULL REFERENCES sms (id),
        system_id           TEXT NOT NULL,
        message_id          TEXT NOT NULL,
        source_addr         TEXT NOT NULL,
        dest_addr           TEXT NOT NULL,
        submitted           REAL NOT NULL,
        registered_delivery INTEGER NOT NULL,
        state               TEXT NOT NULL,
        final_state         TEXT,
        done                REAL,
        attempts            INTEGER NOT NULL DEFAULT 0
    );
    INSERT INTO receipts_by_part (sms_id, system_id, message_id, source_addr, dest_addr,
        submitted, registered_delivery, state, final_state, done, attempts)
        SELECT sms_id, system_id, message_id, source_addr, dest_addr, submitted,
        registered_delivery, state, final_state, done, attempts FROM receipts ORDER BY sms_id;
    DROP TABLE receipts;
    ALTER TABLE receipts_by_part RENAME TO receipts;
    CREATE INDEX receipts_due ON receipts (state, system_id);
    CREATE INDEX receipts_by_sms ON receipts (sms_id);
    """,
    # 7: the expiry check runs after every event (Store.expire_sms, next_sms_expiry): a partial
    # index on the validity of the queued SMS makes it cost the rows that expire, not the
    # queue. (IF NOT EXISTS: for a while migration 6 created it.)
    """
    CREATE INDEX IF NOT EXISTS sms_queued_by_expires ON sms (expires) WHERE state = 'queued';
    """,
    # 8: "Мой МТС" (docs/account.md): a ledger of charges per subscriber (spending control),
    # instalment plans with their schedule, and bonus-point exchanges (history).
    """
    CREATE TABLE charges (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        msisdn      TEXT NOT NULL,
        at          REAL NOT NULL,  -- epoch seconds, UTC
        category    TEXT NOT NULL,  -- calls | sms | internet | subscriptions
        amount      REAL NOT NULL,  -- roubles, > 0
        description TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX charges_by_msisdn ON charges (msisdn, at);
    CREATE TABLE instalment_plans (
        id      INTEGER PRIMARY KEY AUTOINCREMENT,
        msisdn  TEXT NOT NULL,
        item    TEXT NOT NULL,  -- what is paid for
        total   REAL NOT NULL,
        created REAL NOT NULL
    );
    CREATE INDEX instalment_plans_by_msisdn ON instalment_plans (msisdn, id);
    CREATE TABLE instalment_schedule (
        plan_id INTEGER NOT NULL REFERENCES instalment_plans (id) ON DELETE CASCADE,
        seq     INTEGER NOT NULL,  -- 1, 2, ... in due order
        due     TEXT NOT NULL,     -- ISO date
        amount  REAL NOT NULL,
        paid_at REAL,              -- NULL until paid
        PRIMARY KEY (plan_id, seq)
    );
    CREATE TABLE bonus_exchanges (
        id     INTEGER PRIMARY KEY AUTOINCREMENT,
        msisdn TEXT NOT NULL,
        gift   TEXT NOT NULL,     -- the catalogue id (menus/bonus.yaml)
        points INTEGER NOT NULL,  -- as deducted, whatever the catalogue says later
        at     REAL NOT NULL
    );
    CREATE INDEX bonus_exchanges_by_msisdn ON bonus_exchanges (msisdn, id);
    """,
    # 9: supplementary services as the network keeps them (ussd/ss.py, docs/network.md): one
    # row per subscriber that ever changed one, read and written whole by each SS request.
    """
    CREATE TABLE ss_state (
        msisdn                TEXT PRIMARY KEY,
        services              TEXT NOT NULL DEFAULT '{}',  -- JSON: forwarding, waiting, barring
        barring_password_hash TEXT,  -- salted HMAC of the PIN (ussd.ss.hash_pin), NULL: 0000
        barring_failures      INTEGER NOT NULL DEFAULT 0,  -- consecutive wrong passwords
        updated               REAL NOT NULL
    );
    """,
    # 10: whether a number's current password was generated and sent by SMS: the website
    # recommends replacing it until the subscriber sets one of their own (docs/account.md).
    """
    CREATE TABLE generated_passwords (
        msisdn TEXT PRIMARY KEY,
        set_at REAL NOT NULL
    );
    """,
    # 11: a record of every ended dialog (ussd/records.py, docs/operations.md "Dialog records").
    # Plain INTEGER PRIMARY KEY: ids grow by one and only the oldest rows are pruned, so the
    # newest N are `id > MAX(id) - N`. No other index: each would add a third or more to the
    # cost of an insert, which is paid at every dialog end, while a filter that scans reads
    # at most `records.max` rows, newest first, and stops at its limit. Ids follow time
    # closely enough to prune by age from the oldest id.
    """
    CREATE TABLE dialog_records (
        id      INTEGER PRIMARY KEY,
        session TEXT NOT NULL,
        msisdn  TEXT NOT NULL,
        code    TEXT NOT NULL,     -- the dialled service code
        route   TEXT NOT NULL,     -- the route's target, '' when none matched
        via     TEXT NOT NULL,     -- web | terminal | smpp | scenario | load | api | push
        started REAL NOT NULL,
        ended   REAL NOT NULL,
        steps   INTEGER NOT NULL,  -- the dial and every reply
        cause   TEXT NOT NULL,     -- ussd.records.Cause
        detail  TEXT NOT NULL DEFAULT ''
    );
    """,
]

_log = log.get("store")

# Seconds during which a cached subscriber is trusted without asking SQLite whether another
# process has committed (Store._fresh): well below anything a person or a CLI can interleave.
OTHER_WRITERS_CHECK = 0.005
SUBSCRIBER_CACHE = 200_000  # decoded subscribers kept in memory (about 1 KB each)

# scrypt cost (RFC 7914 §2): N=2^14, r=8, p=1 is the interactive-login setting; 16 MiB.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1


def hash_password(password: str) -> str:
    """A salted scrypt hash as `scrypt$N$r$p$salt$hash`."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32
    )
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, encoded: str | None) -> bool:
    """Constant-time check of `password` against a hash made by hash_password (docs/account.md)."""
    if not encoded:
        # Spend the same work as a real check, so timing does not tell "no password set".
        hashlib.scrypt(b"x", salt=b"0" * 16, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
        return False
    try:
        scheme, n, r, p, salt, expected = encoded.split("$")
        if scheme != "scrypt":
            return False
        digest = hashlib.scrypt(
            password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p), dklen=32
        )
    except ValueError:
        return False
    return hmac.compare_digest(digest, bytes.fromhex(expected))


@dataclass(frozen=True, slots=True)
class Subscriber:
    """A subscriber as services see it."""

    msisdn: str
    language: str
    balance: float = 0.0
    package_minutes: int = 0
    package_sms: int = 0
    package_mb: int = 0
    bonus_points: int = 0
    services: Mapping[str, bool] = field(default_factory=dict)
    payments: Sequence[Mapping[str, Any]] = ()
    password_hash: str | None = None
    password_set_at: float | None = None
    number_management: bool = False
    created: float = 0.0

    def public(self) -> dict[str, Any]:
        """JSON view without the password hash."""
        return {
            "msisdn": self.msisdn,
            "language": self.language,
            "balance": self.balance,
            "package": {
                "minutes": self.package_minutes,
                "sms": self.package_sms,
                "mb": self.package_mb,
            },
            "bonus_points": self.bonus_points,
            "services": dict(self.services),
            "payments": [dict(p) for p in self.payments],
            "has_password": self.password_hash is not None,
            "number_management": self.number_management,
        }


class ReceiptState(StrEnum):
    """Life of a delivery receipt owed to an SMPP harness (migration 3)."""

    WAITING = "waiting"  # its SMS is still queued
    DUE = "due"  # its SMS was delivered or expired: the receipt must go out
    SENT = "sent"  # a deliver_sm_resp OK acknowledged it
    SKIPPED = "skipped"  # a failure-only receipt for an SMS that was delivered
    REFUSED = "refused"  # the harness refused it with an error status too often


@dataclass(frozen=True, slots=True)
class Receipt:
    """A delivery receipt owed for MO SMS `sms_id` to SMPP system `system_id`.

    One per submit_sm that asked for it: the parts of a concatenated SMS share `sms_id`.
    """

    id: int
    sms_id: int
    system_id: str
    message_id: str
    source_addr: str
    dest_addr: str
    submitted: float
    registered_delivery: int
    state: ReceiptState
    final_state: SmsState | None
    done: float | None
    attempts: int
    text: str  # the SMS text (the receipt quotes its start)


_RECEIPT_COLUMNS = (
    "r.id, r.sms_id, r.system_id, r.message_id, r.source_addr, r.dest_addr, r.submitted, "
    "r.registered_delivery, r.state, r.final_state, r.done, r.attempts, COALESCE(s.text, '')"
)


def _receipt(row: tuple[Any, ...]) -> Receipt:
    return Receipt(
        id=row[0],
        sms_id=row[1],
        system_id=row[2],
        message_id=row[3],
        source_addr=row[4],
        dest_addr=row[5],
        submitted=row[6],
        registered_delivery=row[7],
        state=ReceiptState(row[8]),
        final_state=SmsState(row[9]) if row[9] is not None else None,
        done=row[10],
        attempts=row[11],
        text=row[12],
    )


@dataclass(frozen=True, slots=True)
class HeldPart:
    """One part of a concatenated MO SMS waiting for the rest of its set."""

    message_id: str
    seq: int
    text: str
    system_id: str
    registered_delivery: int


@dataclass(frozen=True, slots=True)
class Link:
    """Number `number` linked to account `account` (docs/account.md)."""

    number: str
    account: str
    flow: str
    created: float
    active_at: float

    def active(self, now: float) -> bool:
        return now >= self.active_at


@dataclass(frozen=True, slots=True)
class Charge:
    """One entry of a subscriber's ledger of charges (migration 8, docs/account.md)."""

    id: int
    msisdn: str
    at: float
    category: str
    amount: float
    description: str


@dataclass(frozen=True, slots=True)
class Instalment:
    """One scheduled payment of an instalment plan; `paid_at` is None until it is paid."""

    seq: int
    due: str
    amount: float
    paid_at: float | None


@dataclass(frozen=True, slots=True)
class InstalmentPlan:
    """An instalment plan (migration 8) with its schedule in due order."""

    id: int
    msisdn: str
    item: str
    total: float
    created: float
    schedule: tuple[Instalment, ...]

    @property
    def next(self) -> Instalment | None:
        """The first unpaid instalment, or None when the plan is paid off."""
        return next((i for i in self.schedule if i.paid_at is None), None)


@dataclass(frozen=True, slots=True)
class BonusExchange:
    """Points exchanged for a gift of the catalogue (migration 8)."""

    id: int
    msisdn: str
    gift: str
    points: int
    at: float


_SUB_COLUMNS = (
    "msisdn, language, balance, package_minutes, package_sms, package_mb, bonus_points, "
    "services, payments, password_hash, password_set_at, number_management, created"
)
UPDATABLE = frozenset(
    {
        "language",
        "balance",
        "package_minutes",
        "package_sms",
        "package_mb",
        "bonus_points",
        "services",
        "payments",
        "number_management",
    }
)

# What a bonus gift may add to (Store.exchange_points).
GRANTABLE = frozenset({"package_minutes", "package_sms", "package_mb", "balance"})


def _subscriber(row: sqlite3.Row | tuple[Any, ...]) -> Subscriber:
    return Subscriber(
        msisdn=row[0],
        language=row[1],
        balance=row[2],
        package_minutes=row[3],
        package_sms=row[4],
        package_mb=row[5],
        bonus_points=row[6],
        services=json.loads(row[7]),
        payments=tuple(json.loads(row[8])),
        password_hash=row[9],
        password_set_at=row[10],
        number_management=bool(row[11]),
        created=row[12],
    )


def _sms(row: tuple[Any, ...]) -> Sms:
    return Sms(
        id=row[0],
        recipient=row[1],
        sender=row[2],
        text=row[3],
        state=SmsState(row[4]),
        created=row[5],
        expires=row[6],
        delivered=row[7],
        kind=row[8],
        sender_is_alpha=bool(row[9]),
    )


_SMS_COLUMNS = (
    "id, recipient, sender, text, state, created, expires, delivered, kind, sender_is_alpha"
)


class StoreError(Exception):
    """The database file cannot be used (not SQLite, damaged, newer schema, not a file)."""


class Cursor(Protocol):
    """What the store reads from a statement: sqlite3.Cursor, or ussd.pgsql.PgCursor."""

    @property
    def rowcount(self) -> int: ...
    @property
    def lastrowid(self) -> int | None: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """The SQLite connection, or PostgreSQL under the same SQL in cluster mode (ussd/pgsql.py)."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Cursor: ...
    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Cursor: ...
    def close(self) -> None: ...


class _Group:
    """A group of transactions with one commit (Store.group): begun at its first write."""

    __slots__ = ("begun", "waiting")

    def __init__(self) -> None:
        self.begun = False
        self.waiting: list[Callable[[bool], None]] = []


# How a _Transaction entered: joined an outer one, a savepoint of a group, or its own.
_JOINED, _SAVEPOINT, _OWN = 0, 1, 2


class _Transaction:
    """Store.transaction(): a plain context manager, not @contextmanager, as it wraps every
    write and nests (an MO SMS enters four: the SMS centre's, the queue's, the INSERT's and
    the sender's charge)."""

    __slots__ = ("grouped", "how", "store")

    def __init__(self, store: Store, grouped: bool) -> None:
        self.store = store
        self.grouped = grouped
        self.how = _JOINED

    def __enter__(self) -> Connection:
        store = self.store
        db = store.db
        if store._depth:
            store._depth += 1
            self.how = _JOINED
            return db
        group = store._group
        if group is not None:
            if self.grouped:
                if not group.begun:
                    db.execute("BEGIN IMMEDIATE")
                    group.begun = True
                db.execute("SAVEPOINT grouped")
                store._depth = 1
                self.how = _SAVEPOINT
                return db
            if group.begun:
                store._end_group(group)  # keep this one's own commit, as outside a group
        db.execute("BEGIN IMMEDIATE")
        store._depth = 1
        self.how = _OWN
        return db

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        store = self.store
        if self.how == _JOINED:
            store._depth -= 1
            return
        db = store.db
        try:
            if kind is None and self.how == _SAVEPOINT:
                db.execute("RELEASE grouped")
                return
            if kind is None:
                try:
                    db.execute("COMMIT")
                except BaseException:
                    # A COMMIT that fails (a deferred constraint, SQLITE_BUSY) leaves the
                    # transaction open: end it, or the next BEGIN fails too.
                    store._subscribers.clear()
                    store._links.clear()
                    with suppress(Exception):
                        db.execute("ROLLBACK")
                    raise
                return
            store._subscribers.clear()  # rows read inside the transaction may be gone
            store._links.clear()
            if self.how == _OWN:
                db.execute("ROLLBACK")
                return
            group = store._group
            try:
                db.execute("ROLLBACK TO grouped")
                db.execute("RELEASE grouped")
            except Exception:
                # The transaction itself is gone: SQLite rolls it back on a full disk or an
                # I/O error, PostgreSQL when the connection is lost. The batch is lost with it.
                if group is not None:
                    store._fail_group(group)
        finally:
            store._depth = 0


class Store:
    """All persistent state; every change runs in one transaction (docs/design.md store)."""

    def __init__(self, database: str) -> None:
        self.database = database
        self._depth = 0
        self._group: _Group | None = None  # see group()
        # Subscribers are read on every dialog step and written rarely: keep decoded rows.
        # Every write below drops the entry first, so a rolled-back write is simply re-read;
        # a write by another process is seen through PRAGMA data_version (see _fresh).
        self._subscribers: dict[str, Subscriber | None] = {}
        # Links by number, the same way: read on `*111*828#` and by the account pages, written
        # by add_link() and remove_link() (which drop the entry first) and dropped with them.
        self._links: dict[str, Link | None] = {}
        self.db: Connection
        if database.startswith(("postgresql://", "postgres://")):
            # Cluster mode (docs/cluster.md): the same statements and migrations on PostgreSQL.
            from ussd.pgsql import PgConnection  # psycopg is needed in cluster mode only

            pg = self.db = PgConnection(database, StoreError)
            self._data_version = 0
            with pg.exclusive():  # workers starting together migrate once
                self.migrate()
            self._data_version = self._read_data_version()
            self._checked = time.monotonic()
            return
        try:
            if database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE … COMMIT) below.
            self.db = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"{database}: cannot open: {exc}") from None
        try:
            if database != ":memory:":
                self.db.execute("PRAGMA journal_mode=WAL")
                # WAL + NORMAL: durable across process crashes; an acknowledged write survives.
                self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self.migrate()
            self.db.execute("SELECT COUNT(*) FROM subscribers").fetchone()
            self._data_version = self._read_data_version()
            self._checked = time.monotonic()
        except sqlite3.Error as exc:
            # Garbage, a truncated file, a directory: SQLite says so at the first statement.
            self.db.close()
            raise StoreError(f"{database}: not a usable ussd-sim database: {exc}") from None
        except StoreError:
            self.db.close()
            raise

    # -- transactions and schema ------------------------------------------------------------

    def transaction(self, *, grouped: bool = False) -> _Transaction:
        """BEGIN IMMEDIATE … COMMIT, nested calls join the outer transaction.

        `grouped` inside group(): a SAVEPOINT in the group's one transaction instead, rolled
        back alone when it fails; its writes are committed when the group ends (after_commit()
        says when). Any other transaction commits the group first and then runs as above.
        """
        return _Transaction(self, grouped)

    @contextmanager
    def group(self) -> Iterator[None]:
        """One commit for the grouped transactions of a batch (the PDUs of one SMPP read).

        The transaction begins at the first grouped write (a batch that writes nothing costs
        nothing) and commits when the group ends, before anyone is answered: a failed COMMIT
        rolls the whole batch back and tells every after_commit() caller so, each of which
        answers with an error instead of an OK for data that is not on disk. Nested: joins.
        """
        if self._group is not None or self._depth:
            yield
            return
        group = self._group = _Group()
        try:
            yield
        finally:
            self._group = None
            if group.begun:
                self._end_group(group)

    def after_commit(self, done: Callable[[bool], None]) -> bool:
        """Inside a group with writes not yet committed: done(committed) is called once the
        group commits (True) or is rolled back (False), and True is returned. Otherwise False:
        what was written is committed already, the caller goes on at once."""
        group = self._group
        if group is None or not group.begun or self._depth:
            return False
        group.waiting.append(done)
        return True

    def _end_group(self, group: _Group) -> None:
        """COMMIT the group's writes and tell those waiting; a new group transaction may follow."""
        try:
            self.db.execute("COMMIT")
        except Exception:
            _log.exception("store_group_commit_failed", waiting=len(group.waiting))
            self._fail_group(group)
            return
        self._settle(group, True)

    def _fail_group(self, group: _Group) -> None:
        self._subscribers.clear()
        self._links.clear()
        with suppress(Exception):  # nothing to roll back when SQLite already did
            self.db.execute("ROLLBACK")
        self._settle(group, False)

    @staticmethod
    def _settle(group: _Group, committed: bool) -> None:
        waiting, group.waiting = group.waiting, []
        group.begun = False
        for done in waiting:
            try:
                done(committed)
            except Exception:  # one answer's bug must not cost the others theirs
                _log.exception("store_after_commit_failed")

    @property
    def schema_version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self) -> None:
        """Apply the migrations this file has not seen yet, each in its own transaction."""
        version = self.schema_version
        if version > len(MIGRATIONS):
            raise StoreError(
                f"{self.database}: schema version {version} is newer than this ussd-sim "
                f"({len(MIGRATIONS)})"
            )
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            with self.transaction() as db:
                if self.schema_version >= number:
                    continue  # another process migrated it meanwhile
                for statement in script.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {number}")

    def close(self) -> None:
        self.db.close()

    # -- the simulated clock (migration 5) -----------------------------------------------------

    def saved_clock(self) -> float | None:
        """Where a simulated clock on this database last stood (None: never saved)."""
        row = self.db.execute("SELECT now FROM clock WHERE id = 1").fetchone()
        return float(row[0]) if row else None

    def save_clock(self, now: float) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO clock (id, now) VALUES (1, ?) "
                "ON CONFLICT (id) DO UPDATE SET now = MAX(clock.now, excluded.now)",
                (now,),
            )

    # -- subscribers ----------------------------------------------------------------------

    def _read_data_version(self) -> int:
        return int(self.db.execute("PRAGMA data_version").fetchone()[0])

    def change_marker(self) -> tuple[int, int] | None:
        """Changes so far, as a value that differs after any write: ours or another process's.

        (rows this connection changed, the data_version of others' commits), the latter looked
        at most once per OTHER_WRITERS_CHECK; None when the database cannot say (a caller
        then re-reads). Lets the SMS centre and the link scheduler keep their next deadline
        instead of querying it after every dialog step.
        """
        total = getattr(self.db, "total_changes", None)
        if not isinstance(total, int):
            return None
        self._fresh()
        return total, self._data_version

    def _fresh(self) -> None:
        """Drop cached rows when another connection has committed since we last looked.

        `ussd-sim subscribers set`, `ussd-sim dial` and friends write the same file from
        another process; PRAGMA data_version changes exactly then (never for our own commits),
        so the running gateway sees their balance or password at its next read.
        """
        if self._depth:
            return  # inside our own write transaction nobody else can have committed
        # The PRAGMA costs as much as the cached read it guards; a dialog step reads the
        # subscriber several times in a row, so look at most once per OTHER_WRITERS_CHECK.
        now = time.monotonic()
        if now - self._checked < OTHER_WRITERS_CHECK:
            return
        self._checked = now
        version = self._read_data_version()
        if version != self._data_version:
            self._data_version = version
            self._subscribers.clear()
            self._links.clear()

    def subscriber(self, msisdn: str) -> Subscriber | None:
        self._fresh()
        cache = self._subscribers
        if msisdn in cache:
            return cache[msisdn]
        row = self.db.execute(
            f"SELECT {_SUB_COLUMNS} FROM subscribers WHERE msisdn = ?", (msisdn,)
        ).fetchone()
        if len(cache) >= SUBSCRIBER_CACHE:
            cache.clear()
        # A number that is no subscriber is kept too (None): every MO SMS asks about its
        # sender (selfcare.charge_mo_sms). create_subscriber() forgets it first, like any write.
        sub = cache[msisdn] = _subscriber(row) if row else None
        return sub

    def forget(self, msisdn: str) -> None:
        """Drop a cached subscriber (call before any write to its row)."""
        self._subscribers.pop(msisdn, None)

    def subscribers(self) -> list[Subscriber]:
        rows = self.db.execute(f"SELECT {_SUB_COLUMNS} FROM subscribers ORDER BY msisdn")
        return [_subscriber(r) for r in rows]

    def create_subscriber(
        self,
        msisdn: str,
        language: str,
        now: float,
        *,
        balance: float = 0.0,
        package: Mapping[str, int] | None = None,
        bonus_points: int = 0,
        services: Mapping[str, bool] | None = None,
        payments: Sequence[Mapping[str, Any]] = (),
        password_hash: str | None = None,
        number_management: bool = False,
    ) -> Subscriber:
        """Insert a subscriber; an existing MSISDN is left as it is and returned."""
        package = package or {}
        self.forget(msisdn)
        with self.transaction() as db:
            db.execute(
                f"INSERT OR IGNORE INTO subscribers ({_SUB_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    msisdn,
                    language,
                    balance,
                    package.get("minutes", 0),
                    package.get("sms", 0),
                    package.get("mb", 0),
                    bonus_points,
                    json.dumps(dict(services or {})),
                    json.dumps([dict(p) for p in payments]),
                    password_hash,
                    now if password_hash else None,
                    int(number_management),
                    now,
                ),
            )
        sub = self.subscriber(msisdn)
        assert sub is not None
        return sub

    def update_subscriber(self, msisdn: str, **fields: Any) -> Subscriber | None:
        """Change the given fields (see UPDATABLE); None when the MSISDN is unknown."""
        unknown = set(fields) - UPDATABLE
        if unknown:
            raise KeyError(f"not updatable: {', '.join(sorted(unknown))}")
        if fields:
            values = []
            for key, value in fields.items():
                if key in ("services", "payments"):
                    value = json.dumps(value if key == "services" else list(value))
                elif key == "number_management":
                    value = int(bool(value))
                values.append(value)
            assignments = ", ".join(f"{key} = ?" for key in fields)
            self.forget(msisdn)
            with self.transaction() as db:
                db.execute(
                    f"UPDATE subscribers SET {assignments} WHERE msisdn = ?", (*values, msisdn)
                )
        return self.subscriber(msisdn)

    def set_password_hash(
        self, msisdn: str, password_hash: str, now: float, *, generated: bool = False
    ) -> None:
        """Store a new password hash and revoke every bearer token of the number (docs/account.md).

        A changed password is how a subscriber shuts out whoever learnt the old one, so the
        tokens issued under it go in the same transaction, whichever way it was changed.
        """
        self.forget(msisdn)
        with self.transaction() as db:
            db.execute(
                "UPDATE subscribers SET password_hash = ?, password_set_at = ? WHERE msisdn = ?",
                (password_hash, now, msisdn),
            )
            db.execute("DELETE FROM auth_tokens WHERE msisdn = ?", (msisdn,))
            # Any password but an SMS-generated one is the subscriber's own (migration 10).
            db.execute("DELETE FROM generated_passwords WHERE msisdn = ?", (msisdn,))
            if generated:
                db.execute(
                    "INSERT INTO generated_passwords (msisdn, set_at) VALUES (?, ?)", (msisdn, now)
                )

    def password_generated(self, msisdn: str) -> bool:
        """Whether the number's current password was generated and sent by SMS (migration 10)."""
        row = self.db.execute(
            "SELECT 1 FROM generated_passwords WHERE msisdn = ?", (msisdn,)
        ).fetchone()
        return row is not None

    def set_number_management(self, msisdn: str, enabled: bool) -> bool:
        """Turn the service on or off; True when the state changed."""
        self.forget(msisdn)
        with self.transaction() as db:
            cur = db.execute(
                "UPDATE subscribers SET number_management = ? "
                "WHERE msisdn = ? AND number_management != ?",
                (int(enabled), msisdn, int(enabled)),
            )
            return cur.rowcount > 0

    # -- links --------------------------------------------------------------------

    def link(self, number: str) -> Link | None:
        """The link of `number`, or None. Kept like the subscribers (see _fresh); inside a
        write transaction read from the database, so a rule that checks, then writes, is exact."""
        self._fresh()
        cache = self._links
        if not self._depth and number in cache:
            return cache[number]
        row = self.db.execute(
            "SELECT number, account, flow, created, active_at FROM links WHERE number = ?",
            (number,),
        ).fetchone()
        if len(cache) >= SUBSCRIBER_CACHE:
            cache.clear()
        link = cache[number] = Link(*row) if row else None
        return link

    def links_of(self, account: str) -> list[Link]:
        rows = self.db.execute(
            "SELECT number, account, flow, created, active_at FROM links "
            "WHERE account = ? ORDER BY created, number",
            (account,),
        )
        return [Link(*r) for r in rows]

    def add_link(self, number: str, account: str, flow: str, now: float, active_at: float) -> bool:
        """Link number to account; False when the number is linked already (one account each)."""
        self._links.pop(number, None)
        with self.transaction() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO links (number, account, flow, created, active_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (number, account, flow, now, active_at),
            )
            return cur.rowcount > 0

    def remove_link(
        self, number: str, *, account: str | None = None, flow: str | None = None
    ) -> int:
        """Remove the link of number (optionally only from account / of one flow)."""
        sql = "DELETE FROM links WHERE number = ?"
        params: list[Any] = [number]
        if account is not None:
            sql += " AND account = ?"
            params.append(account)
        if flow is not None:
            sql += " AND flow = ?"
            params.append(flow)
        self._links.pop(number, None)
        with self.transaction() as db:
            return db.execute(sql, params).rowcount

    # -- SMS inboxes ------------------------------------------------------------------------

    def add_sms(
        self,
        recipient: str,
        sender: str,
        text: str,
        now: float,
        expires: float,
        *,
        kind: str = "network",
        sender_is_alpha: bool = True,
    ) -> Sms:
        """Persist a queued SMS; it is committed before this returns."""
        with self.transaction() as db:
            cur = db.execute(
                f"INSERT INTO sms ({_SMS_COLUMNS}) VALUES (NULL, ?, ?, ?, ?, ?, ?, NULL, ?, ?)",
                (
                    recipient,
                    sender,
                    text,
                    SmsState.QUEUED.value,
                    now,
                    expires,
                    kind,
                    int(sender_is_alpha),
                ),
            )
            sms_id = cur.lastrowid
        assert sms_id is not None
        return Sms(
            id=sms_id,
            recipient=recipient,
            sender=sender,
            text=text,
            state=SmsState.QUEUED,
            created=now,
            expires=expires,
            kind=kind,
            sender_is_alpha=sender_is_alpha,
        )

    def sms(self, sms_id: int) -> Sms | None:
        row = self.db.execute(f"SELECT {_SMS_COLUMNS} FROM sms WHERE id = ?", (sms_id,)).fetchone()
        return _sms(row) if row else None

    def inbox(self, recipient: str, limit: int = 200) -> list[Sms]:
        rows = self.db.execute(
            f"SELECT {_SMS_COLUMNS} FROM sms WHERE recipient = ? ORDER BY id DESC LIMIT ?",
            (recipient, limit),
        )
        return [_sms(r) for r in rows][::-1]

    def queued_sms(self, accept: Callable[[str], bool] | None = None) -> list[Sms]:
        rows = self.db.execute(
            f"SELECT {_SMS_COLUMNS} FROM sms WHERE state = ? ORDER BY id", (SmsState.QUEUED.value,)
        )
        found = [_sms(r) for r in rows]
        return [s for s in found if accept is None or accept(s.recipient)]

    def queued_sms_after(self, after: int, limit: int) -> list[Sms]:
        """Up to `limit` queued SMS with id > after, in id order (one step of a drain).

        The partial index `sms_queued` (migration 6; its WHERE needs the literal 'queued') makes
        a step cost its rows, not the size of the queue or of the delivered history; left to
        itself the planner picks `sms_by_state` and sorts the whole queue on every step.
        """
        rows = self.db.execute(
            f"SELECT {_SMS_COLUMNS} FROM sms INDEXED BY sms_queued "
            "WHERE state = 'queued' AND id > ? ORDER BY id LIMIT ?",
            (after, limit),
        )
        return [_sms(r) for r in rows]

    def set_sms_state(self, sms_id: int, state: SmsState, now: float) -> Sms | None:
        """Move a queued SMS to delivered/expired; None when it was not queued."""
        with self.transaction() as db:
            cur = db.execute(
                "UPDATE sms SET state = ?, delivered = ? WHERE id = ? AND state = ?",
                (
                    state.value,
                    now if state is SmsState.DELIVERED else None,
                    sms_id,
                    SmsState.QUEUED.value,
                ),
            )
            if cur.rowcount == 0:
                return None
            self._receipts_due(db, "sms_id = ?", (sms_id,), state, now)
        return self.sms(sms_id)

    def mark_sms_delivered(self, sms_ids: Sequence[int], now: float) -> list[Sms]:
        """Move queued SMS to delivered in ONE transaction; returns those that were queued.

        A drain acknowledges a window of SMS per read from the socket: one commit for them
        all instead of one each (the commit was most of the cost of a delivery).
        """
        if not sms_ids:
            return []
        queued = SmsState.QUEUED.value
        delivered = SmsState.DELIVERED.value
        rows: list[Any] = []
        with self.transaction() as db:
            # Statements per 500 SMS (SQLite's bound-parameter limit), not per SMS: the
            # queued ones are read, then moved, in the same write transaction.
            for start in range(0, len(sms_ids), 500):
                chunk = sms_ids[start : start + 500]
                marks = ", ".join("?" * len(chunk))
                rows += db.execute(
                    f"SELECT {_SMS_COLUMNS} FROM sms WHERE id IN ({marks}) AND state = ?",
                    (*chunk, queued),
                ).fetchall()
            rows.sort(key=lambda r: int(r[0]))
            done = [r[0] for r in rows]
            for start in range(0, len(done), 500):
                chunk = done[start : start + 500]
                marks = ", ".join("?" * len(chunk))
                db.execute(
                    f"UPDATE sms SET state = ?, delivered = ? WHERE id IN ({marks})",
                    (delivered, now, *chunk),
                )
                self._receipts_due(db, f"sms_id IN ({marks})", chunk, SmsState.DELIVERED, now)
        # As read, with the new state: (id, recipient, sender, text, state, created, expires,
        # delivered, kind, sender_is_alpha).
        return [_sms((*r[:4], delivered, r[5], r[6], now, *r[8:])) for r in rows]

    def expire_sms(self, now: float) -> list[Sms]:
        """Expire queued SMS whose validity has passed; returns them."""
        with self.transaction() as db:
            # The partial index sms_queued_by_expires (migration 7; its WHERE needs the literal
            # 'queued'): this runs after every event, so it must not cost the whole queue, and
            # left to itself the planner walks sms_by_state, i.e. every queued SMS.
            rows = db.execute(
                f"SELECT {_SMS_COLUMNS} FROM sms INDEXED BY sms_queued_by_expires "
                "WHERE state = 'queued' AND expires <= ?",
                (now,),
            ).fetchall()
            if rows:
                db.execute(
                    "UPDATE sms INDEXED BY sms_queued_by_expires SET state = ? "
                    "WHERE state = 'queued' AND expires <= ?",
                    (SmsState.EXPIRED.value, now),
                )
                ids = [r[0] for r in rows]
                marks = ", ".join("?" * len(ids))
                self._receipts_due(db, f"sms_id IN ({marks})", ids, SmsState.EXPIRED, now)
        return [replace(_sms(r), state=SmsState.EXPIRED) for r in rows]

    def next_sms_expiry(self) -> float | None:
        row = self.db.execute(
            "SELECT MIN(expires) FROM sms INDEXED BY sms_queued_by_expires WHERE state = 'queued'"
        ).fetchone()
        return float(row[0]) if row and row[0] is not None else None

    # -- delivery receipts (migration 3) ------------------------------------------------------

    def add_receipt(
        self,
        sms: Sms,
        system_id: str,
        message_id: str,
        source_addr: str,
        registered_delivery: int,
    ) -> int:
        """Record a receipt owed for `sms`; call in the transaction that queues the SMS."""
        with self.transaction() as db:
            cur = db.execute(
                "INSERT INTO receipts (sms_id, system_id, message_id, source_addr, dest_addr, "
                "submitted, registered_delivery, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    sms.id,
                    system_id,
                    message_id,
                    source_addr,
                    sms.recipient,
                    sms.created,
                    registered_delivery,
                    ReceiptState.WAITING.value,
                ),
            )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def _receipts_due(
        self, db: Connection, where: str, params: Sequence[Any], state: SmsState, now: float
    ) -> None:
        # Same transaction as the SMS state change: a receipt never misses its SMS's fate.
        db.execute(
            f"UPDATE receipts SET state = ?, final_state = ?, done = ? WHERE state = ? AND {where}",
            (ReceiptState.DUE.value, state.value, now, ReceiptState.WAITING.value, *params),
        )

    def receipt(self, sms_id: int) -> Receipt | None:
        """The first receipt owed for an SMS (a concatenated one may owe more: receipts_of)."""
        receipts = self.receipts_of(sms_id)
        return receipts[0] if receipts else None

    def receipts_of(self, sms_id: int) -> list[Receipt]:
        """Every receipt owed for an SMS, in the order their submit_sm were acknowledged."""
        rows = self.db.execute(
            f"SELECT {_RECEIPT_COLUMNS} FROM receipts r LEFT JOIN sms s ON s.id = r.sms_id "
            "WHERE r.sms_id = ? ORDER BY r.id",
            (sms_id,),
        )
        return [_receipt(r) for r in rows]

    def receipt_systems_due(self, sms_ids: Sequence[int]) -> set[str]:
        """The system_ids owed a due receipt for any of these SMS (one query per 500)."""
        found: set[str] = set()
        for start in range(0, len(sms_ids), 500):  # SQLite's bound-parameter limit
            chunk = sms_ids[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            rows = self.db.execute(
                f"SELECT DISTINCT system_id FROM receipts WHERE sms_id IN ({marks}) AND state = ?",
                (*chunk, ReceiptState.DUE.value),
            )
            found.update(str(r[0]) for r in rows)
        return found

    def due_receipts(self, system_id: str) -> list[Receipt]:
        """Receipts for system_id whose SMS was delivered or expired, oldest first."""
        rows = self.db.execute(
            f"SELECT {_RECEIPT_COLUMNS} FROM receipts r LEFT JOIN sms s ON s.id = r.sms_id "
            "WHERE r.state = ? AND r.system_id = ? ORDER BY r.id",
            (ReceiptState.DUE.value, system_id),
        )
        return [_receipt(r) for r in rows]

    def set_receipt_state(self, receipt_id: int, state: ReceiptState) -> bool:
        """Close a due receipt (sent, skipped, refused); False when it was not due."""
        with self.transaction() as db:
            cur = db.execute(
                "UPDATE receipts SET state = ? WHERE id = ? AND state = ?",
                (state.value, receipt_id, ReceiptState.DUE.value),
            )
            return cur.rowcount > 0

    def count_receipt_refusal(self, receipt_id: int) -> int:
        """One more refusal of a receipt by the harness; returns the count so far."""
        with self.transaction() as db:
            db.execute("UPDATE receipts SET attempts = attempts + 1 WHERE id = ?", (receipt_id,))
            row = db.execute("SELECT attempts FROM receipts WHERE id = ?", (receipt_id,)).fetchone()
        return int(row[0]) if row else 0

    # -- concatenated MO SMS (migration 4) ----------------------------------------------------

    def hold_part(
        self,
        source_addr: str,
        dest_addr: str,
        reference: int,
        total: int,
        seq: int,
        text: str,
        *,
        system_id: str,
        registered_delivery: int,
        now: float,
        expires: float,
    ) -> tuple[str, list[HeldPart] | None]:
        """Keep one part; (its message_id, every part in order once the set is complete).

        A duplicate part keeps the first copy and gets its message_id. A complete set is
        removed here: call inside the transaction that stores the reassembled SMS.
        """
        key = (source_addr, dest_addr, reference, total)
        where = "source_addr = ? AND dest_addr = ? AND reference = ? AND total = ?"
        with self.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO sms_parts (source_addr, dest_addr, reference, total, seq, "
                "text, system_id, registered_delivery, received, expires) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (*key, seq, text, system_id, registered_delivery, now, expires),
            )
            rows = db.execute(
                f"SELECT id, seq, text, system_id, registered_delivery FROM sms_parts "
                f"WHERE {where} ORDER BY seq",
                key,
            ).fetchall()
            parts = [HeldPart(f"c{r[0]}", r[1], r[2], r[3], r[4]) for r in rows]
            message_id = next(p.message_id for p in parts if p.seq == seq)
            if len(parts) < total:
                return message_id, None
            db.execute(f"DELETE FROM sms_parts WHERE {where}", key)
        return message_id, parts

    def held_parts(self) -> int:
        """Parts waiting for the rest of their set."""
        return int(self.db.execute("SELECT COUNT(*) FROM sms_parts").fetchone()[0])

    def expire_parts(self, now: float) -> int:
        """Drop sets still incomplete when their first part's validity ends; returns parts."""
        with self.transaction() as db:
            return db.execute(
                "DELETE FROM sms_parts WHERE (source_addr, dest_addr, reference, total) IN "
                "(SELECT source_addr, dest_addr, reference, total FROM sms_parts "
                "WHERE expires <= ?)",
                (now,),
            ).rowcount

    def next_part_expiry(self) -> float | None:
        row = self.db.execute("SELECT MIN(expires) FROM sms_parts").fetchone()
        return float(row[0]) if row and row[0] is not None else None

    # -- the ledger of charges (migration 8) ---------------------------------------------------

    def add_charge(
        self, msisdn: str, at: float, category: str, amount: float, description: str = ""
    ) -> Charge:
        """Record one charge (joins the caller's transaction)."""
        with self.transaction() as db:
            cur = db.execute(
                "INSERT INTO charges (msisdn, at, category, amount, description) "
                "VALUES (?, ?, ?, ?, ?)",
                (msisdn, at, category, amount, description),
            )
        assert cur.lastrowid is not None
        return Charge(cur.lastrowid, msisdn, at, category, amount, description)

    def clear_charges(self, msisdn: str) -> int:
        with self.transaction() as db:
            return db.execute("DELETE FROM charges WHERE msisdn = ?", (msisdn,)).rowcount

    def charges(self, msisdn: str, start: float, end: float, limit: int = 1000) -> list[Charge]:
        """Charges with start <= at < end, newest first, at most `limit`."""
        rows = self.db.execute(
            "SELECT id, msisdn, at, category, amount, description FROM charges "
            "WHERE msisdn = ? AND at >= ? AND at < ? ORDER BY at DESC, id DESC LIMIT ?",
            (msisdn, start, end, limit),
        )
        return [Charge(*r) for r in rows]

    def spending(self, msisdn: str, start: float, end: float) -> dict[str, tuple[float, int]]:
        """(sum, count) of the charges with start <= at < end, by category."""
        rows = self.db.execute(
            "SELECT category, SUM(amount), COUNT(*) FROM charges "
            "WHERE msisdn = ? AND at >= ? AND at < ? GROUP BY category",
            (msisdn, start, end),
        )
        return {str(r[0]): (float(r[1]), int(r[2])) for r in rows}

    # -- instalment plans (migration 8) -------------------------------------------------------

    def add_instalment_plan(
        self,
        msisdn: str,
        item: str,
        schedule: Sequence[tuple[str, float, float | None]],
        now: float,
    ) -> int:
        """A plan with its schedule of (due date, amount, paid_at); returns the plan id."""
        total = round(sum(amount for _, amount, _ in schedule), 2)
        with self.transaction() as db:
            cur = db.execute(
                "INSERT INTO instalment_plans (msisdn, item, total, created) VALUES (?, ?, ?, ?)",
                (msisdn, item, total, now),
            )
            plan_id = cur.lastrowid
            assert plan_id is not None
            db.executemany(
                "INSERT INTO instalment_schedule (plan_id, seq, due, amount, paid_at) "
                "VALUES (?, ?, ?, ?, ?)",
                [
                    (plan_id, i, due, amount, paid)
                    for i, (due, amount, paid) in enumerate(schedule, 1)
                ],
            )
        return plan_id

    def clear_instalment_plans(self, msisdn: str) -> int:
        with self.transaction() as db:
            db.execute(
                "DELETE FROM instalment_schedule WHERE plan_id IN "
                "(SELECT id FROM instalment_plans WHERE msisdn = ?)",
                (msisdn,),
            )
            return db.execute("DELETE FROM instalment_plans WHERE msisdn = ?", (msisdn,)).rowcount

    def instalment_plans(self, msisdn: str) -> list[InstalmentPlan]:
        rows = self.db.execute(
            "SELECT id, msisdn, item, total, created FROM instalment_plans "
            "WHERE msisdn = ? ORDER BY id",
            (msisdn,),
        ).fetchall()
        return [self._plan(row) for row in rows]

    def instalment_plan(self, plan_id: int) -> InstalmentPlan | None:
        row = self.db.execute(
            "SELECT id, msisdn, item, total, created FROM instalment_plans WHERE id = ?",
            (plan_id,),
        ).fetchone()
        return self._plan(row) if row else None

    def _plan(self, row: tuple[Any, ...]) -> InstalmentPlan:
        schedule = self.db.execute(
            "SELECT seq, due, amount, paid_at FROM instalment_schedule "
            "WHERE plan_id = ? ORDER BY seq",
            (row[0],),
        )
        plan_id, msisdn, item, total, created = row
        steps = tuple(Instalment(*r) for r in schedule)
        return InstalmentPlan(plan_id, msisdn, item, total, created, steps)

    def pay_instalment(self, plan_id: int, seq: int, amount: float, now: float) -> str:
        """Mark instalment `seq` paid and take `amount` from the balance, in one transaction.

        Returns "paid", or why nothing changed: "not_found", "already_paid",
        "insufficient_funds". BEGIN IMMEDIATE holds the write lock from the checks to the
        updates, so two racing payments cannot both take the money.
        """
        with self.transaction() as db:
            row = db.execute(
                "SELECT p.msisdn, s.paid_at FROM instalment_plans p JOIN instalment_schedule s "
                "ON s.plan_id = p.id WHERE p.id = ? AND s.seq = ?",
                (plan_id, seq),
            ).fetchone()
            if row is None:
                return "not_found"
            if row[1] is not None:
                return "already_paid"
            msisdn = row[0]
            self.forget(msisdn)
            taken = db.execute(
                "UPDATE subscribers SET balance = ROUND(balance - ?, 2) "
                "WHERE msisdn = ? AND balance >= ?",
                (amount, msisdn, amount),
            ).rowcount
            if not taken:
                return "insufficient_funds"
            db.execute(
                "UPDATE instalment_schedule SET paid_at = ? WHERE plan_id = ? AND seq = ?",
                (now, plan_id, seq),
            )
            return "paid"

    # -- bonus points (migration 8) ----------------------------------------------------------

    def exchange_points(
        self,
        msisdn: str,
        gift: str,
        points: int,
        now: float,
        grant: Mapping[str, float] | None = None,
    ) -> int | None:
        """Deduct `points`, add the gift's `grant` and record the exchange, in one transaction.

        `grant` adds to the columns of GRANTABLE (package units, balance). None (and nothing
        changed) when the subscriber has fewer points: the check is in the UPDATE, so racing
        exchanges never take more than there is. Returns the exchange id.
        """
        grant = dict(grant or {})
        unknown = set(grant) - GRANTABLE
        if unknown:
            raise KeyError(f"not grantable: {', '.join(sorted(unknown))}")
        self.forget(msisdn)
        with self.transaction() as db:
            taken = db.execute(
                "UPDATE subscribers SET bonus_points = bonus_points - ? "
                "WHERE msisdn = ? AND bonus_points >= ?",
                (points, msisdn, points),
            ).rowcount
            if not taken:
                return None
            for column, value in grant.items():
                db.execute(
                    f"UPDATE subscribers SET {column} = {column} + ? WHERE msisdn = ?",
                    (value, msisdn),
                )
            cur = db.execute(
                "INSERT INTO bonus_exchanges (msisdn, gift, points, at) VALUES (?, ?, ?, ?)",
                (msisdn, gift, points, now),
            )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def bonus_exchanges(self, msisdn: str, limit: int = 100) -> list[BonusExchange]:
        """The subscriber's exchanges, newest first."""
        rows = self.db.execute(
            "SELECT id, msisdn, gift, points, at FROM bonus_exchanges WHERE msisdn = ? "
            "ORDER BY id DESC LIMIT ?",
            (msisdn, limit),
        )
        return [BonusExchange(*r) for r in rows]
