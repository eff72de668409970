"""What "Мой МТС" does beyond login (docs/account.md): spending, instalments, "МТС Бонус".

Sans-IO rules over the store, shared by the app's HTTP API (ussd/accounts.py) and the `*111#`
services (ussd/services/selfcare.py), so both give the same answers. Time is passed in;
every change is one store transaction. Refusals are `Refused` with a machine code; the
callers turn them into an HTTP status or a USSD text.

The gift catalogue is menus/bonus.yaml, validated at load: an error names the file and the
key path (`gifts[2].name.en`), as the menu loader does.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ussd import resources, subscribers, yamlload
from ussd.menus import CATALOGUE_FILE, LANGUAGES, MenuError
from ussd.store import InstalmentPlan, Store
from ussd.yamlload import brief

MAX_GIFTS = 100
_GIFT_ID = re.compile(r"[a-z0-9_]{1,32}")
# A gift's `grant` key → the subscriber column it adds to (Store.GRANTABLE).
GRANT_KEYS = {
    "minutes": "package_minutes",
    "sms": "package_sms",
    "mb": "package_mb",
    "balance": "balance",
}
MAX_PERIOD_DAYS = 366  # spending over at most a year: one query, bounded work
MAX_LISTED_CHARGES = 500  # charges listed with a period's totals, newest first
DAY = 86400.0


class Refused(Exception):
    """A request the rules refuse; `kind` is not_found | conflict | invalid."""

    def __init__(self, kind: str, code: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.code = code
        self.message = message


# -- the gift catalogue -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Gift:
    """A gift of the "МТС Бонус" catalogue."""

    id: str
    name: Mapping[str, str]  # by language
    points: int
    grant: Mapping[str, float]  # GRANT_KEYS key → amount

    def json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": dict(self.name),
            "points": self.points,
            "grant": dict(self.grant),
        }


@dataclass(frozen=True, slots=True)
class Catalogue:
    """The gifts in catalogue order."""

    gifts: tuple[Gift, ...]

    def gift(self, gift_id: object) -> Gift | None:
        return next((g for g in self.gifts if g.id == gift_id), None)

    @classmethod
    def load(cls, directory: Path | None = None) -> Catalogue:
        """menus/bonus.yaml (of `directory` when it has one); MenuError names file and key."""
        path = (directory or resources.path("menus")) / CATALOGUE_FILE
        if directory is not None and not path.exists():
            path = resources.path("menus") / CATALOGUE_FILE
        try:
            data = yamlload.load_file(path)
        except yamlload.YamlError as exc:
            raise MenuError(path.name, "<file>", exc.message) from None
        return cls.parse(data, path.name)

    @classmethod
    def parse(cls, data: object, file: str = CATALOGUE_FILE) -> Catalogue:
        if not isinstance(data, dict) or set(data) != {"gifts"}:
            raise MenuError(file, "<root>", "expected a mapping with one key, `gifts`")
        raw = data["gifts"]
        if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_GIFTS:
            raise MenuError(file, "gifts", f"expected a list of 1-{MAX_GIFTS} gifts")
        gifts: list[Gift] = []
        for i, item in enumerate(raw):
            gift = _gift(item, f"gifts[{i}]", file)
            if any(g.id == gift.id for g in gifts):
                raise MenuError(file, f"gifts[{i}].id", f"duplicate id {brief(gift.id)}")
            gifts.append(gift)
        return cls(tuple(gifts))


def _gift(item: object, where: str, file: str) -> Gift:
    if not isinstance(item, dict):
        raise MenuError(file, where, "expected a mapping with id, name, points and grant")
    extra = set(item) - {"id", "name", "points", "grant"}
    if extra:
        raise MenuError(file, f"{where}.{sorted(map(str, extra))[0]}", "unknown key")
    gift_id = item.get("id")
    if not isinstance(gift_id, str) or not _GIFT_ID.fullmatch(gift_id):
        raise MenuError(file, f"{where}.id", f"expected 1-32 of a-z 0-9 _, got {brief(gift_id)}")
    name = item.get("name")
    if not isinstance(name, dict):
        raise MenuError(file, f"{where}.name", "expected a mapping of ru and en")
    for language in LANGUAGES:
        text = name.get(language)
        if not isinstance(text, str) or not text.strip() or len(text) > 64:
            raise MenuError(file, f"{where}.name.{language}", "expected a text of 1-64 characters")
    unknown = sorted(set(map(str, name)) - set(LANGUAGES))
    if unknown:
        raise MenuError(file, f"{where}.name.{unknown[0]}", "unknown language")
    points = item.get("points")
    if (
        isinstance(points, bool)
        or not isinstance(points, int)
        or not 1 <= points <= subscribers.MAX_COUNT
    ):
        raise MenuError(
            file, f"{where}.points", f"expected a positive integer, got {brief(points)}"
        )
    grant = item.get("grant", {})
    if not isinstance(grant, dict):
        raise MenuError(file, f"{where}.grant", "expected a mapping of minutes, sms, mb, balance")
    amounts: dict[str, float] = {}
    for key, value in grant.items():
        if key not in GRANT_KEYS:
            raise MenuError(file, f"{where}.grant.{key}", "unknown key (minutes, sms, mb, balance)")
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if key != "balance":
            ok = ok and isinstance(value, int)
        if not ok or not 0 < value <= subscribers.MAX_COUNT:
            raise MenuError(
                file, f"{where}.grant.{key}", f"expected a positive amount, got {brief(value)}"
            )
        amounts[key] = value
    return Gift(gift_id, {lang: name[lang] for lang in LANGUAGES}, points, amounts)


# -- seeding the ledger and plans ----------------------------------------------------------


def seed(
    store: Store,
    msisdn: str,
    charges: Sequence[Mapping[str, Any]] | None,
    instalments: Sequence[Mapping[str, Any]] | None,
    now: float,
    *,
    replace: bool = False,
) -> None:
    """Store validated `charges` / `instalments` (ussd.subscribers) for a subscriber.

    With `replace` (an admin PATCH), a given list replaces what the subscriber had; None
    leaves it alone. Joins the caller's transaction.
    """
    with store.transaction():
        if charges is not None:
            if replace:
                store.clear_charges(msisdn)
            for c in charges:
                store.add_charge(msisdn, c["at"], c["category"], c["amount"], c["description"])
        if instalments is not None:
            if replace:
                store.clear_instalment_plans(msisdn)
            for plan in instalments:
                store.add_instalment_plan(msisdn, plan["item"], plan["schedule"], now)


# -- spending control --------------------------------------------------------------------


def _day(text: object, key: str) -> dt.date:
    if not isinstance(text, str):
        raise Refused("invalid", "bad_date", f"{key}: expected a date YYYY-MM-DD")
    try:
        return dt.date.fromisoformat(text) if len(text) == 10 else _bad(key)
    except ValueError:
        return _bad(key)


def _bad(key: str) -> dt.date:
    raise Refused("invalid", "bad_date", f"{key}: expected a date YYYY-MM-DD")


def today(now: float) -> dt.date:
    return dt.datetime.fromtimestamp(now, dt.UTC).date()


def _epoch(day: dt.date) -> float:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()


def period(start: str | None, end: str | None, now: float) -> tuple[dt.date, dt.date]:
    """The days `start`..`end` inclusive (UTC); by default this month up to today."""
    last = _day(end, "to") if end is not None else today(now)
    first = _day(start, "from") if start is not None else last.replace(day=1)
    if first > last:
        raise Refused("invalid", "bad_period", "from: the period starts after it ends")
    if (last - first).days + 1 > MAX_PERIOD_DAYS:
        raise Refused("invalid", "bad_period", f"a period is at most {MAX_PERIOD_DAYS} days")
    return first, last


def spending(store: Store, msisdn: str, first: dt.date, last: dt.date) -> dict[str, Any]:
    """What was spent from `first` to `last` inclusive, by category, and the charges."""
    start, end = _epoch(first), _epoch(last) + DAY
    sums = store.spending(msisdn, start, end)
    categories = {c: round(sums.get(c, (0.0, 0))[0], 2) for c in subscribers.CATEGORIES}
    charges = store.charges(msisdn, start, end, MAX_LISTED_CHARGES)
    return {
        "msisdn": msisdn,
        "from": first.isoformat(),
        "to": last.isoformat(),
        "total": round(sum(categories.values()), 2),
        "categories": categories,
        "count": sum(n for _, n in sums.values()),
        "charges": [
            {
                "id": c.id,
                "at": _iso(c.at),
                "category": c.category,
                "amount": c.amount,
                "description": c.description,
            }
            for c in charges
        ],
    }


def record_charge(
    store: Store, msisdn: str, fields: Mapping[str, Any], now: float
) -> dict[str, Any]:
    """Add one charge {category, amount, description?, date?} (date: now) and take it from
    the balance, as simulated usage does; Refused("invalid") names the bad field."""
    data = dict(fields)
    data.setdefault("date", _iso(now))
    try:
        charge = subscribers.charge("charge", data)
    except subscribers.FieldError as exc:
        raise Refused("invalid", exc.code, str(exc)) from None
    with store.transaction():
        sub = store.subscriber(msisdn)
        if sub is None:
            raise Refused("not_found", "unknown_msisdn", f"unknown subscriber {msisdn}")
        store.update_subscriber(msisdn, balance=round(sub.balance - charge["amount"], 2))
        row = store.add_charge(
            msisdn, charge["at"], charge["category"], charge["amount"], charge["description"]
        )
    return {
        "id": row.id,
        "msisdn": msisdn,
        "at": _iso(row.at),
        "category": row.category,
        "amount": row.amount,
        "description": row.description,
    }


def _iso(epoch: float) -> str:
    moment = dt.datetime.fromtimestamp(epoch, dt.UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


# -- instalments -------------------------------------------------------------------------


def plan_json(plan: InstalmentPlan) -> dict[str, Any]:
    """A plan as the app shows it: schedule, paid and due amounts, the next instalment."""
    paid = round(sum(i.amount for i in plan.schedule if i.paid_at is not None), 2)
    nxt = plan.next
    return {
        "id": plan.id,
        "item": plan.item,
        "total": plan.total,
        "count": len(plan.schedule),
        "paid_count": sum(1 for i in plan.schedule if i.paid_at is not None),
        "paid": paid,
        "due": round(plan.total - paid, 2),
        "next": {"seq": nxt.seq, "due": nxt.due, "amount": nxt.amount} if nxt else None,
        "schedule": [
            {
                "seq": i.seq,
                "due": i.due,
                "amount": i.amount,
                "paid_at": _iso(i.paid_at) if i.paid_at is not None else None,
            }
            for i in plan.schedule
        ],
    }


def pay_next(store: Store, msisdn: str, plan_id: int, now: float) -> InstalmentPlan:
    """Pay the plan's next instalment from the balance; the plan as it is afterwards.

    Refused: not_found (no such plan of this subscriber), conflict paid_off, conflict
    insufficient_funds (the balance is short: nothing is taken).
    """
    plan = store.instalment_plan(plan_id)
    if plan is None or plan.msisdn != msisdn:
        raise Refused("not_found", "unknown_plan", f"no instalment plan {plan_id} on this number")
    nxt = plan.next
    if nxt is None:
        raise Refused("conflict", "paid_off", "the instalment plan is paid off")
    result = store.pay_instalment(plan_id, nxt.seq, nxt.amount, now)
    if result == "insufficient_funds":
        sub = store.subscriber(msisdn)
        balance = sub.balance if sub else 0.0
        raise Refused(
            "conflict",
            "insufficient_funds",
            f"the balance ({balance:.2f}) is short of the instalment ({nxt.amount:.2f})",
        )
    if result != "paid":  # paid meanwhile by another request
        raise Refused("conflict", "already_paid", "the instalment was paid meanwhile")
    after = store.instalment_plan(plan_id)
    assert after is not None
    return after


# -- "МТС Бонус" ---------------------------------------------------------------------------


def exchange(store: Store, catalogue: Catalogue, msisdn: str, gift_id: object, now: float) -> Gift:
    """Deduct the gift's points, add its grant, record the exchange (one transaction).

    Refused: not_found unknown_gift, conflict insufficient_points (nothing changes).
    """
    gift = catalogue.gift(gift_id)
    if gift is None:
        raise Refused("not_found", "unknown_gift", f"no gift {brief(gift_id)} in the catalogue")
    grant = {GRANT_KEYS[k]: v for k, v in gift.grant.items()}
    if store.exchange_points(msisdn, gift.id, gift.points, now, grant) is None:
        sub = store.subscriber(msisdn)
        have = sub.bonus_points if sub else 0
        raise Refused(
            "conflict",
            "insufficient_points",
            f"the gift costs {gift.points} points, the number has {have}",
        )
    return gift


def bonus_json(store: Store, catalogue: Catalogue, msisdn: str) -> dict[str, Any]:
    """Points, the catalogue (what is affordable) and the exchange history, newest first."""
    sub = store.subscriber(msisdn)
    points = sub.bonus_points if sub else 0
    names = {g.id: dict(g.name) for g in catalogue.gifts}
    return {
        "msisdn": msisdn,
        "points": points,
        "gifts": [{**g.json(), "affordable": g.points <= points} for g in catalogue.gifts],
        "history": [
            {
                "id": e.id,
                "gift": e.gift,
                "name": names.get(e.gift, {"ru": e.gift, "en": e.gift}),
                "points": e.points,
                "at": _iso(e.at),
            }
            for e in store.bonus_exchanges(msisdn)
        ],
    }


# -- simulated usage: MO SMS -------------------------------------------------------------------


def charge_mo_sms(store: Store, sender: str, recipient: str, price: float, now: float) -> str:
    """What an MO SMS costs its sender, a subscriber: one of the package's SMS while there
    are any, else `price` roubles from the balance, entered in the ledger as an `sms` charge.

    Returns "package", "charged" or "free" (not a subscriber, or a price of 0). Joins the
    caller's transaction (the SMS centre's, which stores the SMS).
    """
    with store.transaction() as db:
        sub = store.subscriber(sender)
        if sub is None:
            return "free"
        if sub.package_sms > 0:
            store.forget(sender)
            db.execute(
                "UPDATE subscribers SET package_sms = package_sms - 1 "
                "WHERE msisdn = ? AND package_sms > 0",
                (sender,),
            )
            return "package"
        if price <= 0:
            return "free"
        store.forget(sender)
        db.execute(
            "UPDATE subscribers SET balance = ROUND(balance - ?, 2) WHERE msisdn = ?",
            (price, sender),
        )
        store.add_charge(sender, now, "sms", price, f"SMS {recipient}")
        return "charged"
