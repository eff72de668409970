"""Dialog records: one row per ended dialog, with an end cause from one documented list.

Real USSD gateways write a call detail record (CDR) for every dialog; ussd-sim keeps one too
(docs/operations.md "Dialog records"). The engine builds each `ussd.events.DialogRecord` as
the dialog ends and puts it on its `DialogEnded` event; `Records` listens, buffers them and
writes them in batches (one transaction per batch, never one per dialog: it is on the path of
every USSD step), and prunes to `records.max` rows and `records.retention` of age as it writes.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import functools
import io
import re
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from itertools import chain
from typing import Any, Final

from ussd import durations, log
from ussd.clock import Clock
from ussd.events import DialogEnded, DialogRecord, Event, Outcome
from ussd.store import Store

_log = log.get("records")


class Cause(StrEnum):
    """Why a dialog ended, as its record says (docs/operations.md has the table)."""

    COMPLETED = "completed"  # the service sent its final screen
    USER_RELEASE = "user_release"  # the subscriber (handset, harness, web phone) released it
    IDLE_TIMEOUT = "idle_timeout"  # no reply within ussd.reply_timeout
    MAX_DURATION = "max_duration"  # open longer than ussd.dialog_timeout
    APP_TIMEOUT = "app_timeout"  # an outside application did not answer in time
    APP_ERROR = "app_error"  # an outside application's answer was unusable, or it failed
    APP_RELEASE = "app_release"  # an outside application ended the dialog
    APP_UNAVAILABLE = "app_unavailable"  # the route's application is not bound or reachable
    NETWORK_FAULT = "network_fault"  # an injected network fault ended it (docs/network.md)
    REPLACED = "replaced"  # a new dial on the same number released it (TS 24.090)
    UNKNOWN_CODE = "unknown_code"  # no route matched the dialled code
    NOT_SUPPORTED = "not_supported"  # a code the network does not support (TS 22.030 Annex B)
    ERROR = "error"  # the gateway's own service failed; the user saw an error screen
    SHUTDOWN = "shutdown"  # the gateway stopped with the dialog open


# Each engine outcome's cause; the engine names unknown_code and not_supported itself, since
# those dialogs complete normally as far as the outcome goes (one final screen).
BY_OUTCOME: Final[dict[Outcome, Cause]] = {
    Outcome.COMPLETED: Cause.COMPLETED,
    Outcome.RELEASED: Cause.USER_RELEASE,
    Outcome.TIMEOUT: Cause.IDLE_TIMEOUT,
    Outcome.MAX_DURATION: Cause.MAX_DURATION,
    Outcome.REPLACED: Cause.REPLACED,
    Outcome.ERROR: Cause.ERROR,
    Outcome.SHUTDOWN: Cause.SHUTDOWN,
    Outcome.APP_TIMEOUT: Cause.APP_TIMEOUT,
    Outcome.APP_ERROR: Cause.APP_ERROR,
    Outcome.APP_RELEASE: Cause.APP_RELEASE,
    Outcome.APP_UNAVAILABLE: Cause.APP_UNAVAILABLE,
    Outcome.NETWORK_FAULT: Cause.NETWORK_FAULT,
}


def cause_of(outcome: Outcome, hint: str = "") -> Cause:
    """The record's cause: `hint` (a Cause value the engine knew better) or the outcome's."""
    if hint:
        return Cause(hint)
    return BY_OUTCOME.get(outcome, Cause.ERROR)


# How a dialog reached the gateway (`via` of Engine.handle_dial, Gateway.dial): a fixed set,
# since it is a metric label and a filter.
VIAS: Final = ("web", "terminal", "smpp", "scenario", "load", "api", "push")

BATCH: Final = 256  # records written in one transaction at most; a full batch is written at once
PRUNE_SPAN: Final = 4 * BATCH  # ids past the oldest looked at per batch for expired records
FLUSH_DELAY: Final = 0.2  # seconds a record waits on the loop for others to share its write
MAX_LIMIT: Final = 10_000  # records one query returns at most
DEFAULT_LIMIT: Final = 100
CSV_COLUMNS: Final = (
    "id",
    "session",
    "msisdn",
    "code",
    "route",
    "via",
    "started",
    "ended",
    "duration",
    "steps",
    "cause",
    "detail",
)


@dataclass(frozen=True, slots=True)
class Query:
    """Filters of `GET /api/v1/dialogs` and `ussd-sim dialogs`; every one is optional."""

    msisdn: str | None = None
    code: str | None = None
    cause: tuple[str, ...] = ()  # any of these
    via: tuple[str, ...] = ()
    since: float | None = None  # ended at or after (clock time)
    until: float | None = None  # ended before
    after: int | None = None  # id greater than (new records since the last look)
    before: int | None = None  # id less than (the next page back)
    limit: int = DEFAULT_LIMIT


@dataclass(frozen=True, slots=True)
class Stored:
    """A record as read back: its row id and the record."""

    id: int
    record: DialogRecord

    def to_json(self) -> dict[str, Any]:
        r = self.record
        return {
            "id": self.id,
            "session": r.session,
            "msisdn": r.msisdn,
            "code": r.code,
            "route": r.route,
            "via": r.via,
            "started": iso_ms(r.started),
            "ended": iso_ms(r.ended),
            "duration": round(max(0.0, r.ended - r.started), 3),
            "steps": r.steps,
            "cause": r.cause,
            "detail": r.detail,
        }


def iso_ms(epoch: float) -> str:
    """ISO-8601 UTC with a `Z`, to the millisecond."""
    moment = dt.datetime.fromtimestamp(epoch, dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


_EPOCH = re.compile(r"\d{1,12}(\.\d{1,9})?")


def parse_time(text: str, now: float) -> float:
    """`since`/`until`: an ISO-8601 time (UTC unless it says), epoch seconds, or a duration
    meaning that long before now (`10m`, `2h`, `1d`); ValueError says what is accepted."""
    text = text.strip()
    if _EPOCH.fullmatch(text):
        return float(text)
    if text and text[-1] in "smhd" and text[0].isdigit():
        try:
            return now - durations.parse(text)
        except ValueError:
            pass
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"not a time: {text[:40]!r} (ISO-8601 like 2026-12-02T10:00:00Z, epoch seconds, "
            "or a duration back from now like 10m)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


PARAMETERS: Final = (
    "msisdn",
    "code",
    "cause",
    "via",
    "since",
    "until",
    "after",
    "before",
    "limit",
)


class BadQuery(ValueError):
    """A filter that cannot be used; the message names the parameter and what it accepts."""


def parse_query(
    params: Mapping[str, str], now: float, normalise: Callable[[str], str] = str
) -> Query:
    """A Query from text parameters (`GET /api/v1/dialogs`, `ussd-sim dialogs`): every value
    is checked and bounded, and a parameter that is not a filter is refused (a typo would
    otherwise quietly return everything)."""
    for name in params:
        if name not in PARAMETERS:
            raise BadQuery(f"unknown parameter {name[:40]!r} (filters: {', '.join(PARAMETERS)})")
    for name, value in params.items():
        if len(value) > 256:
            raise BadQuery(f"{name}: at most 256 characters")
    fields: dict[str, Any] = {}
    if "msisdn" in params:
        try:
            fields["msisdn"] = normalise(params["msisdn"])
        except ValueError as exc:
            raise BadQuery(f"msisdn: {exc}") from None
    if "code" in params:
        # `*111#` or `111`: records keep the code as the engine does, without `*` and `#`.
        code = params["code"].strip().strip("*#")
        if not code or not all(c.isdigit() or c == "*" for c in code):
            raise BadQuery(f"code: a service code such as *111# or 111, not {params['code']!r}")
        fields["code"] = code
    for name, allowed in (("cause", tuple(c.value for c in Cause)), ("via", VIAS)):
        if name in params:
            values = tuple(v.strip() for v in params[name].split(",") if v.strip())
            wrong = [v for v in values if v not in allowed]
            if wrong or not values:
                raise BadQuery(
                    f"{name}: {(wrong or [''])[0][:40]!r} is not one of {', '.join(allowed)}"
                )
            fields[name] = values
    for name in ("since", "until"):
        if name in params:
            try:
                fields[name] = parse_time(params[name], now)
            except ValueError as exc:
                raise BadQuery(f"{name}: {exc}") from None
    for name, low, high in (("after", 0, 2**62), ("before", 0, 2**62), ("limit", 1, MAX_LIMIT)):
        if name in params:
            text = params[name].strip()
            if not text.isascii() or not text.isdigit() or not low <= int(text) <= high:
                raise BadQuery(f"{name}: expected a whole number {low}-{high:_}, got {text[:40]!r}")
            fields[name] = int(text)
    return Query(**fields)


def to_csv(rows: Iterable[Mapping[str, Any]]) -> str:
    """Records in their JSON form (Stored.to_json) as CSV: RFC 4180, the header first."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for data in rows:
        writer.writerow([_csv_safe(data.get(c, "")) for c in CSV_COLUMNS])
    return out.getvalue()


def _csv_safe(value: object) -> object:
    # A cell starting with = + - @ is a formula to spreadsheets (OWASP "CSV injection"); the
    # only free text is `detail`, but the rule is cheap everywhere strings go.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


_INSERT_INTO = (
    "INSERT INTO dialog_records (session, msisdn, code, route, via, started, ended, steps, "
    "cause, detail) VALUES "
)
_ROW = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_INSERT = _INSERT_INTO + _ROW
assert BATCH & (BATCH - 1) == 0, "BATCH must be a power of two (see _insert_sql)"


@functools.cache
def _insert_sql(rows: int) -> str:
    """One INSERT of `rows` rows; only powers of two up to BATCH are asked for (see _insert)."""
    return _INSERT_INTO + ", ".join([_ROW] * rows)


def _insert(db: Any, rows: list[DialogRecord]) -> None:
    """Insert rows in order, as few statements as their count's binary digits.

    SQLite: one multi-row INSERT per chunk of a power-of-two size takes about half the time of
    executemany() over the same NamedTuples (docs/performance.md "Where the time goes"), and
    the nine statements (1 … BATCH rows) stay in sqlite3's statement cache. PostgreSQL
    (ussd/pgsql.py) already sends an executemany of a one-row INSERT as one multi-row INSERT.
    """
    if not isinstance(db, sqlite3.Connection):
        db.executemany(_INSERT, rows)
        return
    start, left = 0, len(rows)
    while left:
        size = 1 << (min(left, BATCH).bit_length() - 1)  # the largest power of two <= left
        db.execute(_insert_sql(size), list(chain.from_iterable(rows[start : start + size])))
        start += size
        left -= size


_COLUMNS = "id, session, msisdn, code, route, via, started, ended, steps, cause, detail"


class Records:
    """Writes the engine's dialog records to the store in batches and reads them back.

    `max_records` 0 keeps none (the metric still counts causes). Rows are pruned to the newest
    `max_records` and to `retention` seconds of age whenever a batch is written: ids grow by
    one per row and only the oldest are deleted, so the cut is one indexed DELETE.
    """

    def __init__(self, store: Store, clock: Clock, max_records: int, retention: float) -> None:
        self.store = store
        self.clock = clock
        self.max_records = max_records
        self.retention = retention
        self._pending: list[DialogRecord] = []
        self._timer: asyncio.TimerHandle | None = None
        self._timer_loop: asyncio.AbstractEventLoop | None = None
        self.written = 0  # records this process wrote (tests, the console)

    def on_event(self, event: Event) -> None:
        """Engine subscriber: keep the record of every ended dialog."""
        if type(event) is DialogEnded and event.record is not None:
            self.add(event.record)

    def add(self, record: DialogRecord) -> None:
        """Queue one record; it is written with the others of this moment (see FLUSH_DELAY)."""
        if self.max_records == 0:
            return
        self._pending.append(record)  # a NamedTuple: the row itself, in column order
        if len(self._pending) >= BATCH:
            self.flush()
        elif self._timer is None or self._timer_loop is not asyncio._get_running_loop():
            # Not get_running_loop(): its RuntimeError would cost more than the record. A timer
            # armed on a loop that has since gone (a test's, asyncio.run's) is armed again.
            loop = asyncio._get_running_loop()
            if loop is not None:  # else (in-process commands): the next query, batch or close
                self._timer = loop.call_later(FLUSH_DELAY, self.flush)
                self._timer_loop = loop

    def flush(self) -> None:
        """Write what is queued, then prune; a store error is logged and the batch dropped."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._pending:
            return
        rows, self._pending = self._pending, []
        try:
            with self.store.transaction() as db:
                _insert(db, rows)
                self._prune(db)
        except sqlite3.ProgrammingError:
            # The store was closed first (a world torn down while a batch waited on the loop).
            _log.info("records_dropped", records=len(rows), reason="the store is closed")
            return
        except Exception:
            # Records describe dialogs; they must never stop one (a full disk, say).
            _log.exception("records_write_failed", records=len(rows))
            return
        self.written += len(rows)

    def _prune(self, db: Any) -> None:
        db.execute(
            "DELETE FROM dialog_records WHERE id <= (SELECT MAX(id) FROM dialog_records) - ?",
            (self.max_records,),
        )
        # By age from the oldest id, a bounded stretch at a time (more than a batch adds, so
        # it keeps up): records are written as dialogs end, so ids follow time.
        db.execute(
            "DELETE FROM dialog_records WHERE id < (SELECT MIN(id) FROM dialog_records) + ? "
            "AND ended < ?",
            (PRUNE_SPAN, self.clock.now() - self.retention),
        )

    def query(self, query: Query) -> list[Stored]:
        """Records matching every filter, newest first (what is queued is written first)."""
        self.flush()
        return read(self.store, query)

    def close(self) -> None:
        """Write what is queued (the gateway stops; the store closes next)."""
        self.flush()


def read(store: Store, query: Query) -> list[Stored]:
    """Records in `store` matching `query`, newest first."""
    where: list[str] = []
    args: list[object] = []
    if query.msisdn is not None:
        where.append("msisdn = ?")
        args.append(query.msisdn)
    if query.code is not None:
        where.append("code = ?")
        args.append(query.code)
    for column, values in (("cause", query.cause), ("via", query.via)):
        if values:
            where.append(f"{column} IN ({', '.join('?' * len(values))})")
            args.extend(values)
    if query.since is not None:
        where.append("ended >= ?")
        args.append(query.since)
    if query.until is not None:
        where.append("ended < ?")
        args.append(query.until)
    if query.after is not None:
        where.append("id > ?")
        args.append(query.after)
    if query.before is not None:
        where.append("id < ?")
        args.append(query.before)
    sql = f"SELECT {_COLUMNS} FROM dialog_records"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY id DESC LIMIT ?"
    args.append(max(0, min(query.limit, MAX_LIMIT)))
    return [_stored(row) for row in store.db.execute(sql, args)]


def _stored(row: Sequence[Any]) -> Stored:
    record = DialogRecord(
        session=row[1],
        msisdn=row[2],
        code=row[3],
        route=row[4],
        via=row[5],
        started=row[6],
        ended=row[7],
        steps=row[8],
        cause=row[9],
        detail=row[10],
    )
    return Stored(int(row[0]), record)
