"""PostgreSQL under the store's SQL: one place that translates the SQLite dialect (docs/cluster.md).

The store (ussd/store.py) and the modules beside it speak SQLite: `?` placeholders, `INSERT OR
IGNORE`, `INDEXED BY`, two-argument `MAX`, `PRAGMA user_version`, `lastrowid`. In cluster mode
the same statements, and the same migrations, run on PostgreSQL through `PgConnection`, which
looks like the `sqlite3.Connection` the store uses (`execute`, `executemany`, cursors with
`fetchone`, `fetchall`, `rowcount`, `lastrowid`) and rewrites each statement once.

What a transaction means is kept too: SQLite's `BEGIN IMMEDIATE` takes the database's one write
lock, and the store relies on it (a payment checks, then takes the money), so here `BEGIN`
takes one transaction-scoped advisory lock that every worker's writers share.

A dialog step runs a few statements, so each costs one round trip and little else: the values
are merged into the statement on this side (as psycopg's ClientCursor does) and sent with
libpq's PQexec; a `BEGIN` goes out with the transaction's first statement (its lock and the
write counter in the same round trip), the counter comes back with the `COMMIT`, and
`executemany` of a one-row INSERT is one INSERT of all its rows. Whether another connection has
committed (`PRAGMA data_version`) costs no round trip: its commit notifies this one (LISTEN),
and looking is reading what the socket already holds.
"""

from __future__ import annotations

import re
import select
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any, NoReturn

import psycopg
from psycopg import pq
from psycopg.abc import Transformer as TransformerType
from psycopg.adapt import Loader, Transformer
from psycopg.errors import error_from_result

# pg_advisory_xact_lock key of the store's write lock ("ussd" in ASCII).
WRITE_LOCK = 0x75737364
# pg_advisory_lock key held while migrating, so workers starting together migrate once.
MIGRATE_LOCK = WRITE_LOCK + 1
CONNECT_TIMEOUT = 5  # seconds: a server that is gone is reported, not waited on
MANY_ROWS = 500  # rows per INSERT that executemany sends

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS ussd_schema ("
    "id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)",
    "INSERT INTO ussd_schema (id, version) VALUES (1, 0) ON CONFLICT (id) DO NOTHING",
)
# SQLite's PRAGMA data_version moves when another connection commits (never for our own); the
# store drops its cached subscribers then, and the SMS centre and the link scheduler re-read
# their next deadline (store.change_marker). Here every transaction that writes those tables
# moves a committed counter once, noting its transaction id, and notifies the counter's new
# value on CHANNEL: a connection reads the counter with its BEGIN and its COMMIT and so tells
# its own change from another's, and between its transactions it hears the others' commits
# without asking (as the notification arrives, a moment after the writer's COMMIT has returned;
# the store looks at most every 5 ms anyway). Both say so only once the writer has committed (a
# NOTIFY is delivered at COMMIT; a counter moved before the commit would let a reader cache the
# row the writer is still changing), and the value notified tells a commit already counted at
# a BEGIN from a new one. NOTIFY serializes committing notifiers, as the write lock does.
_WATCHED = ("subscribers", "sms", "links")
CHANNEL = "ussd_writes"
_WRITES = (
    "CREATE TABLE IF NOT EXISTS ussd_writes ("
    "id INTEGER PRIMARY KEY CHECK (id = 1), n BIGINT NOT NULL, xid BIGINT)",
    "INSERT INTO ussd_writes (id, n) VALUES (1, 0) ON CONFLICT (id) DO NOTHING",
    # Replaced on every start: a database made by an earlier version gets the NOTIFY too.
    "CREATE OR REPLACE FUNCTION ussd_subscriber_written() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ DECLARE moved BIGINT; BEGIN UPDATE ussd_writes SET n = n + 1, xid = txid_current() "
    "WHERE id = 1 AND xid IS DISTINCT FROM txid_current() RETURNING n INTO moved; "
    f"IF moved IS NOT NULL THEN PERFORM pg_notify('{CHANNEL}', moved::text); END IF; "
    "RETURN NULL; END $$",
    *(
        f"CREATE OR REPLACE TRIGGER ussd_written AFTER INSERT OR UPDATE OR DELETE "
        f"ON {table} FOR EACH STATEMENT EXECUTE FUNCTION ussd_subscriber_written()"
        for table in _WATCHED
    ),
)
_BEGIN = f"BEGIN; SELECT pg_advisory_xact_lock({WRITE_LOCK})".encode()
# The counter as this transaction starts, and its id (the counter notes the id of its writer).
_BEGIN_COUNTED = _BEGIN + b"; SELECT n, txid_current() FROM ussd_writes WHERE id = 1"
_COMMIT_COUNTED = b"COMMIT; SELECT n, xid FROM ussd_writes WHERE id = 1"
_COUNTER = b"SELECT n FROM ussd_writes WHERE id = 1"
_LISTEN = f"LISTEN {CHANNEL}".encode()

_OK = (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK, pq.ExecStatus.EMPTY_QUERY)
_ROWS = pq.ExecStatus.TUPLES_OK


def is_postgres(database: str) -> bool:
    """Whether a `storage.database` / `cluster.postgres` value names PostgreSQL."""
    return database.startswith(("postgresql://", "postgres://"))


# -- the dialect ---------------------------------------------------------------------------

_ID_COLUMN = re.compile(r"\bid\s+INTEGER\s+PRIMARY\s+KEY(\s+AUTOINCREMENT)?", re.I)
_INTEGER = re.compile(r"\bINTEGER\b", re.I)
_REAL = re.compile(r"\bREAL\b", re.I)
_OR_IGNORE = re.compile(r"^\s*INSERT\s+OR\s+IGNORE\s+INTO\b", re.I)
_INDEXED_BY = re.compile(r"\s+INDEXED\s+BY\s+\w+", re.I)
_SCALAR_MINMAX = re.compile(r"\b(MAX|MIN)\(([^(),]+),([^()]+)\)", re.I)
_ROUND = re.compile(r"\bROUND\(([^()]+),\s*(\d+)\)", re.I)
_NULL_ID = re.compile(
    r"^(\s*INSERT\s+INTO\s+\w+\s*\()\s*id\s*,(.*?\bVALUES\s*\()\s*NULL\s*,", re.I | re.S
)
_INSERT_INTO = re.compile(r"^\s*INSERT\s+INTO\s+(\w+)", re.I)
_PRAGMA = re.compile(r"^\s*PRAGMA\s+(\w+)\s*(?:=\s*(\w+))?\s*$", re.I)
# The one row of a one-row INSERT: VALUES (%s, …) with nothing nested.
_ROW = re.compile(r"\bVALUES\s*(\([^()]*\))", re.I)
_DO_UPDATE = re.compile(r"\bDO\s+UPDATE\b", re.I)


def _placeholders(sql: str) -> str:
    # `?` becomes `%s` outside quoted strings and names; every `%` becomes `%%`, quoted or not
    # (the values are merged in with Python's `%`).
    out: list[str] = []
    quote = ""
    for ch in sql:
        if ch == "%":
            out.append("%%")
            continue
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "?":
            out.append("%s")
            continue
        out.append(ch)
    return "".join(out)


@lru_cache(maxsize=2048)
def translate(sql: str) -> tuple[str, str | None]:
    """(the statement for PostgreSQL, the table it inserts one row into, if any)."""
    head = sql.lstrip()[:12].upper()
    if head.startswith(("CREATE", "ALTER")):
        sql = _ID_COLUMN.sub("id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", sql)
        sql = _INTEGER.sub("BIGINT", sql)
        sql = _REAL.sub("DOUBLE PRECISION", sql)
        return _placeholders(sql), None
    ignore = bool(_OR_IGNORE.match(sql))
    if ignore:
        sql = _OR_IGNORE.sub("INSERT INTO", sql, count=1)
    sql = _INDEXED_BY.sub("", sql)
    sql = _SCALAR_MINMAX.sub(
        lambda m: f"{'GREATEST' if m[1].upper() == 'MAX' else 'LEAST'}({m[2]},{m[3]})", sql
    )
    sql = _ROUND.sub(r"CAST(ROUND(CAST(\1 AS NUMERIC), \2) AS DOUBLE PRECISION)", sql)
    # An explicit NULL id asks SQLite for the next rowid; an identity column wants no value.
    sql = _NULL_ID.sub(r"\1\2", sql, count=1)
    if ignore:
        sql = sql.rstrip() + " ON CONFLICT DO NOTHING"
    insert = _INSERT_INTO.match(sql)
    single_row = insert is not None and not re.search(r"\bSELECT\b", sql, re.I)
    return _placeholders(sql), insert[1].lower() if insert and single_row else None


# What execute() does with a statement, decided once per text.
_STATEMENT, _BEGIN_KIND, _COMMIT_KIND, _ROLLBACK_KIND, _PRAGMA_KIND = range(5)


@dataclass(frozen=True, slots=True)
class _Plan:
    kind: int
    template: bytes = b""  # the statement, `%s` for each value (`%%` a literal `%`)
    table: str | None = None  # the table a one-row INSERT writes (RETURNING id when identity)
    ddl: bool = False  # CREATE / ALTER: the identity columns may have changed
    # executemany of a one-row INSERT: (before the row, the row, after it), else None
    many: tuple[bytes, bytes, bytes] | None = None
    pragma: tuple[str, str | None] = ("", None)


@lru_cache(maxsize=2048)
def _plan(sql: str) -> _Plan:
    pragma = _PRAGMA.match(sql)
    if pragma is not None:
        return _Plan(_PRAGMA_KIND, pragma=(pragma[1].lower(), pragma[2]))
    word = sql.strip().upper()
    if word in ("BEGIN IMMEDIATE", "BEGIN"):
        return _Plan(_BEGIN_KIND)
    if word == "COMMIT":
        return _Plan(_COMMIT_KIND)
    if word == "ROLLBACK":
        return _Plan(_ROLLBACK_KIND)
    text, table = translate(sql)
    many = None
    row = _ROW.search(text) if table is not None and not _DO_UPDATE.search(text) else None
    if row is not None:
        many = (
            text[: row.start(1)].encode(),
            row[1].encode(),
            text[row.end(1) :].encode(),
        )
    return _Plan(
        _STATEMENT,
        text.encode(),
        table,
        ddl=text.lstrip()[:6].upper() in ("CREATE", "ALTER "),
        many=many,
    )


# -- results -------------------------------------------------------------------------------


class _NumericLoader(Loader):
    # SUM() of integers and ROUND() give NUMERIC; SQLite gives int or float.
    def load(self, data: Any) -> int | float:
        value = Decimal(bytes(data).decode())
        return int(value) if value == value.to_integral_value() else float(value)


class PgCursor:
    """The part of sqlite3.Cursor the store uses."""

    __slots__ = ("_rows", "lastrowid", "rowcount")

    def __init__(self, rows: list[Any], rowcount: int, lastrowid: int | None) -> None:
        self._rows = rows
        self.rowcount = rowcount
        self.lastrowid = lastrowid

    def fetchone(self) -> Any:
        return self._rows.pop(0) if self._rows else None

    def fetchall(self) -> list[Any]:
        rows, self._rows = self._rows, []
        return rows

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())


_EMPTY: list[Any] = []


class PgConnection:
    """A PostgreSQL connection that takes the store's SQLite statements (module docstring).

    `error` is the exception class to raise when the server cannot be reached or goes away
    (the store's StoreError); the next statement outside a transaction reconnects.
    """

    def __init__(self, dsn: str, error: type[Exception]) -> None:
        self.dsn = dsn
        self.error = error
        self._conn: psycopg.Connection[Any] | None = None
        self._tx: TransformerType | None = None
        self._encoding = "utf-8"
        self._identity: frozenset[str] = frozenset()
        self._writes_ready = False
        self._in_transaction = False
        # Rows this connection changed, as sqlite3's total_changes: with the other writers'
        # counter (PRAGMA data_version below) it tells the store's users when to re-read.
        self.total_changes = 0
        # The write counter (_WRITES) as last seen, and how often another connection's write
        # was seen: PRAGMA data_version.
        self._seen: int | None = None
        self._others = 0
        self._pid = 0  # our server process: its NOTIFY is our own commit
        self._fatal = ""  # why the server said, between statements, it is closing the connection
        self._xact: tuple[int, bytes] | None = None  # this transaction's (counter at BEGIN, id)
        # A BEGIN not sent yet: it goes out with the transaction's first statement, in the
        # same round trip (a transaction that runs none costs none).
        self._pending = False
        self._connect()

    # -- the connection --------------------------------------------------------------------

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            conn = psycopg.connect(
                self.dsn,
                autocommit=True,
                connect_timeout=CONNECT_TIMEOUT,
                cursor_factory=psycopg.ClientCursor,
                keepalives=1,
                keepalives_idle=5,
                keepalives_interval=2,
                keepalives_count=3,
            )
        except psycopg.Error as exc:
            raise self.error(
                f"PostgreSQL {where(self.dsn)}: cannot connect: {_reason(exc)}"
            ) from None
        conn.adapters.register_loader("numeric", _NumericLoader)
        # psycopg reads notifications on its own paths too (_run): they come here, not lost.
        conn.add_notify_handler(self._notified)
        conn.add_notice_handler(self._notice)
        self._conn = conn
        self._tx = Transformer.from_context(conn)
        self._encoding = conn.info.encoding
        self._pid = conn.pgconn.backend_pid
        self._fatal = ""
        # Under the migration lock: two workers creating the table at once would collide
        # (CREATE TABLE IF NOT EXISTS is not safe against a concurrent one on PostgreSQL).
        self._run(f"SELECT pg_advisory_lock({MIGRATE_LOCK})", ())
        try:
            for statement in _SCHEMA:
                self._run(statement, ())
        finally:
            self._run(f"SELECT pg_advisory_unlock({MIGRATE_LOCK})", ())
        self._refresh_identity()
        if self._writes_ready:
            # Made again: listen again, and count it as another's write, since whatever was
            # committed while we were away was not heard.
            self._listen()
            self._others += 1
        return conn

    def _live(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            if self._in_transaction:
                raise self.error(f"PostgreSQL {where(self.dsn)}: the connection was lost")
            return self._connect()
        return self._conn

    def _refresh_identity(self) -> None:
        rows = self._run(
            "SELECT table_name FROM information_schema.columns WHERE column_name = 'id' "
            "AND is_identity = 'YES' AND table_schema = current_schema()",
            (),
        )
        self._identity = frozenset(str(r[0]) for r in rows)

    def _run(self, sql: str, params: Sequence[Any]) -> list[Any]:
        # psycopg's own execute: the rare statements (connecting, migrating, pragmas).
        conn = self._conn
        assert conn is not None
        cur = conn.execute(sql, params)
        return cur.fetchall() if cur.description is not None else []

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the migration lock (Store.migrate: workers starting together migrate once)."""
        self.execute_raw(f"SELECT pg_advisory_lock({MIGRATE_LOCK})")
        try:
            yield
        finally:
            self.execute_raw(f"SELECT pg_advisory_unlock({MIGRATE_LOCK})")
        # Another worker may have created the tables meanwhile (this one then ran no CREATE):
        # which have an identity id decides whether an INSERT returns it (lastrowid).
        self._refresh_identity()

    def execute_raw(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """A PostgreSQL statement as it is (no translation)."""
        self._live()
        if self._pending:
            self._exec(b"")  # the BEGIN first
        try:
            return self._run(sql, params)
        except psycopg.OperationalError as exc:
            self._lost(exc)

    def _lost(self, exc: psycopg.OperationalError) -> NoReturn:
        conn = self._conn
        if conn is not None and (conn.closed or conn.broken):
            self._conn = None
            self._in_transaction = self._pending = False
            raise self.error(
                f"PostgreSQL {where(self.dsn)}: the connection was lost: {_reason(exc)}"
            ) from None
        raise exc

    def _exec(self, query: bytes) -> pq.abc.PGresult:
        """One round trip (PQexec); the last statement's result. Errors as psycopg raises them."""
        if self._pending:
            return self._exec_begun(query)
        pgconn = self._live().pgconn
        try:
            res = pgconn.exec_(query)
        except psycopg.OperationalError as exc:  # no result at all: the connection is gone
            self._gone(_reason(exc))
        if res.status in _OK:
            return res
        if pgconn.status != pq.ConnStatus.OK:
            self._gone(res.get_error_message(self._encoding))
        raise error_from_result(res, encoding=self._encoding)

    def _exec_begun(self, query: bytes) -> pq.abc.PGresult:
        # The pending BEGIN, its lock and the counter, then the statement: one round trip,
        # each result read (PQexec keeps only the last).
        self._pending = False
        pgconn = self._live().pgconn
        results: list[pq.abc.PGresult] = []
        try:
            pgconn.send_query(_BEGIN_COUNTED + b"; " + query if query else _BEGIN_COUNTED)
            while pgconn.flush():  # the connection is non-blocking: send it all
                select.select([], [pgconn.socket], [])
            while True:
                # Waiting in select(), not in PQgetResult, which would hold the GIL meanwhile.
                pgconn.consume_input()
                if pgconn.is_busy():
                    select.select([pgconn.socket], [], [])
                    continue
                res = pgconn.get_result()
                if res is None:
                    break
                results.append(res)
        except psycopg.OperationalError as exc:
            self._gone(_reason(exc))
        for res in results:
            if res.status not in _OK:
                if pgconn.status != pq.ConnStatus.OK:
                    self._gone(res.get_error_message(self._encoding))
                # The transaction stays open (aborted) for the caller's ROLLBACK.
                raise error_from_result(res, encoding=self._encoding)
        counter = results[2]
        before = int(counter.get_value(0, 0) or b"0")
        self._xact = (before, counter.get_value(0, 1) or b"")
        self._saw(before, self._seen)
        return results[-1]

    def _gone(self, reason: str) -> NoReturn:
        conn, self._conn = self._conn, None
        self._in_transaction = self._pending = False
        if conn is not None:
            conn.close()
        reason = reason.strip().splitlines()[0] if reason.strip() else "closed"
        raise self.error(f"PostgreSQL {where(self.dsn)}: the connection was lost: {reason}")

    def _literal(self, value: Any) -> bytes:
        tx = self._tx
        assert tx is not None
        return b"NULL" if value is None else tx.as_literal(value)

    # -- the sqlite3.Connection face -------------------------------------------------------

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> PgCursor:
        plan = _plan(sql)
        if plan.kind != _STATEMENT:
            return self._special(plan)
        returning = plan.table is not None and plan.table in self._identity
        template = plan.template + b" RETURNING id" if returning else plan.template
        literal = self._literal
        res = self._exec(template % tuple(literal(v) for v in parameters))
        count = res.command_tuples
        rowcount = -1 if count is None else count
        if plan.ddl:
            self._refresh_identity()
        if res.status != _ROWS:
            if rowcount > 0:
                self.total_changes += rowcount
            return PgCursor(_EMPTY, rowcount, None)
        if returning:
            if rowcount > 0:
                self.total_changes += rowcount
            value = res.get_value(0, 0) if res.ntuples else None
            return PgCursor(_EMPTY, rowcount, int(value) if value is not None else None)
        tx = self._tx
        assert tx is not None
        tx.set_pgresult(res)
        return PgCursor(tx.load_rows(0, res.ntuples, tuple), rowcount, None)

    def executemany(self, sql: str, seq: Iterable[Sequence[Any]], /) -> PgCursor:
        plan = _plan(sql)
        if plan.many is None:
            count = 0
            for parameters in seq:
                count += max(self.execute(sql, parameters).rowcount, 0)
            return PgCursor(_EMPTY, count, None)
        # One INSERT of every row (MANY_ROWS at a time): one round trip, as one statement
        # inserts them in order; no id comes back (sqlite3's executemany gives none either).
        head, row, tail = plan.many
        head, tail = head % (), tail % ()
        literal = self._literal
        rows = [row % tuple(literal(v) for v in parameters) for parameters in seq]
        count = 0
        for start in range(0, len(rows), MANY_ROWS):
            res = self._exec(head + b",".join(rows[start : start + MANY_ROWS]) + tail)
            count += res.command_tuples or 0
        self.total_changes += count
        return PgCursor(_EMPTY, count, None)

    def _special(self, plan: _Plan) -> PgCursor:
        if plan.kind == _PRAGMA_KIND:
            return self._pragma(*plan.pragma)
        if plan.kind == _BEGIN_KIND:
            self._begin()
        elif plan.kind == _COMMIT_KIND:
            self._commit()
        else:
            conn = self._conn
            self._in_transaction = False
            self._xact = None
            if self._pending:
                self._pending = False  # nothing was sent
            elif conn is not None and not conn.closed:
                self._exec(b"ROLLBACK")
            # else nothing was kept to roll back
        return PgCursor(_EMPTY, -1, None)

    def _begin(self) -> None:
        counted = self._writes_ready
        if counted:
            self._live()  # a lost connection is made again here, outside the transaction
            self._in_transaction = self._pending = True
            return
        try:
            res = self._exec(_BEGIN_COUNTED if counted else _BEGIN)
        except psycopg.Error:
            # BEGIN went through, the lock did not (a cancel, a timeout): nothing is begun.
            conn = self._conn
            if conn is not None and conn.pgconn.transaction_status != pq.TransactionStatus.IDLE:
                conn.pgconn.exec_(b"ROLLBACK")
            raise
        self._in_transaction = True
        if counted:
            before = int(res.get_value(0, 0) or b"0")
            self._xact = (before, res.get_value(0, 1) or b"")
            self._saw(before, self._seen)

    def _commit(self) -> None:
        xact, self._xact = self._xact, None
        if self._pending:  # no statement ran: nothing was begun on the server
            self._pending = self._in_transaction = False
            return
        if self._conn is None or self._conn.closed:
            self._in_transaction = False
            raise self.error(f"PostgreSQL {where(self.dsn)}: the connection was lost")
        try:
            res = self._exec(_COMMIT_COUNTED if xact is not None else b"COMMIT")
        finally:
            self._in_transaction = False
        if xact is not None:
            before, xid = xact
            after = int(res.get_value(0, 0) or b"0")
            # Ours alone moved it by one, and left our id on it; anything else is another's.
            self._saw(after, before + 1 if res.get_value(0, 1) == xid else before)

    def _saw(self, counter: int, expected: int | None) -> None:
        # The counter is `expected` when nobody else has written since we last looked.
        if expected is not None and counter != expected:
            self._others += 1
        self._seen = counter

    def _pragma(self, name: str, value: str | None) -> PgCursor:
        if name == "user_version":
            if value is None:
                return PgCursor(self.execute_raw("SELECT version FROM ussd_schema"), 1, None)
            self.execute_raw("UPDATE ussd_schema SET version = %s", (int(value),))
            return PgCursor(_EMPTY, 1, None)
        if name == "data_version":
            if self._writes_ready:
                self._hear()
            else:
                self._prepare_writes()
            return PgCursor([(self._others,)], 1, None)
        # journal_mode, synchronous, foreign_keys: PostgreSQL is durable and checks keys.
        return PgCursor([("ok",)], 1, None)

    def _prepare_writes(self) -> None:
        # After the migrations (subscribers exists); under the write lock, since concurrent
        # CREATE OR REPLACE of one function fails on PostgreSQL.
        self.execute("BEGIN IMMEDIATE")
        try:
            for statement in _WRITES:
                self._run(statement, ())
        except BaseException:
            self.execute("ROLLBACK")
            raise
        self.execute("COMMIT")
        self._listen()
        self._writes_ready = True

    def _listen(self) -> None:
        # LISTEN first, then the counter: a commit the counter does not show yet is heard.
        self._exec(_LISTEN)
        self._seen = int(self._exec(_COUNTER).get_value(0, 0) or b"0")

    def _hear(self) -> None:
        """Count the commits of others notified so far: what the socket holds, no round trip."""
        pgconn = self._live().pgconn  # a lost connection is made again (and counted) here
        try:
            pgconn.consume_input()  # reads what has arrived, never waits
        except psycopg.OperationalError as exc:  # the server closed the connection
            self._gone(_reason(exc))
        # PQnotifies parses what was read: the notifications, and any notice (_notice).
        while (notify := pgconn.notifies()) is not None:
            self._heard(notify.be_pid, notify.extra)
        if self._fatal:  # the server said why before closing (a restart, pg_terminate_backend)
            self._gone(self._fatal)

    def _notified(self, notify: psycopg.Notify) -> None:
        self._heard(notify.pid, notify.payload)

    def _heard(self, pid: int, counter: bytes | str) -> None:
        if pid == self._pid:
            return  # our own commit: _commit has seen it
        try:
            value = int(counter)
        except ValueError:  # not from the trigger: a change all the same
            self._others += 1
            return
        # One the counter already showed us (at a BEGIN) is not counted twice.
        if self._seen is None or value > self._seen:
            self._others += 1
            self._seen = value

    def _notice(self, diag: psycopg.errors.Diagnostic) -> None:
        # A FATAL outside a statement is the server closing the connection: the socket's end
        # follows, and _hear reports it at once rather than at the next look.
        if diag.severity_nonlocalized in ("FATAL", "PANIC"):
            self._fatal = diag.message_primary or "closed"


def where(dsn: str) -> str:
    """host:port/database of a DSN, never the password it may carry."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.Error:
        return "(unparsable DSN)"
    return f"{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', '')}"


def _reason(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
