"""Subscriber fields: the one validator of config seeds, the admin API and the CLI.

`subscribers.seed` in config.yaml, `POST/PATCH /api/v1/subscribers` and `ussd-sim subscribers
add|set` accept the same fields with the same rules (docs/account.md), so a value that loads
from config is one the API would take and the other way round. Counts and amounts are bounded
so every value fits the store's 64-bit integer and stays a finite number.
"""

from __future__ import annotations

import calendar
import datetime as dt
import math
import re
from collections.abc import Mapping
from typing import Any

from ussd.yamlload import brief, brief_text

LANGUAGES = ("ru", "en")
PASSWORD_RE = re.compile(r"[A-Za-z0-9]{4,10}")  # docs/account.md: 4–10 Latin letters and digits
MAX_COUNT = 1_000_000_000  # package units and bonus points
MAX_AMOUNT = 1_000_000_000.0  # balance and payment amounts, either sign
MAX_PAYMENTS = 1000
MAX_CHARGES = 10_000  # ledger entries one seed or request may carry
MAX_PLANS = 20  # instalment plans of one subscriber
MAX_MONTHS = 60  # instalments of one plan
MAX_TEXT = 64  # an instalment's item, a charge's description
# Spending control's categories (docs/account.md "Мой МТС").
CATEGORIES = ("calls", "sms", "internet", "subscriptions")
PACKAGE_KEYS = {"minutes": "package_minutes", "sms": "package_sms", "mb": "package_mb"}
FIELDS = (
    "language",
    "balance",
    "package",
    "package_minutes",
    "package_sms",
    "package_mb",
    "bonus_points",
    "services",
    "payments",
    "number_management",
    "password",
    "charges",
    "instalments",
)


class FieldError(ValueError):
    """A bad field: `key` is its path inside the subscriber (`package.sms`, `payments[0].date`)."""

    def __init__(self, key: str, message: str, code: str = "bad_field") -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message
        self.code = code


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def count(key: str, value: object) -> int:
    """An integer 0…MAX_COUNT."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
        raise FieldError(key, f"expected an integer 0-{MAX_COUNT:_}, got {brief(value)}")
    return value


def amount(key: str, value: object) -> float:
    """A finite number of at most MAX_AMOUNT either way."""
    if not _is_number(value):
        raise FieldError(key, f"expected a number, got {brief(value)}")
    assert isinstance(value, int | float)
    if isinstance(value, int) and abs(value) > MAX_AMOUNT:
        raise FieldError(key, f"expected a number within ±{MAX_AMOUNT:_.0f}, got {brief(value)}")
    if not math.isfinite(value) or abs(value) > MAX_AMOUNT:
        raise FieldError(key, f"expected a number within ±{MAX_AMOUNT:_.0f}, got {brief(value)}")
    return float(value)


def validate(data: Mapping[Any, Any], allowed: tuple[str, ...] = FIELDS) -> dict[str, Any]:
    """Checked fields, `package` spread into `package_*`; the password stays plain text."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key not in allowed:
            shown = brief_text(str(key))
            raise FieldError(
                shown, f"unknown field (allowed: {', '.join(allowed)})", code="unknown_field"
            )
        if key == "language":
            if value not in LANGUAGES:
                raise FieldError(key, f"expected ru or en, got {brief(value)}")
            out[key] = value
        elif key == "balance":
            out[key] = amount(key, value)
        elif key == "package":
            if not isinstance(value, Mapping):
                raise FieldError(key, "expected a mapping of minutes, sms and mb")
            for name, units in value.items():
                if name not in PACKAGE_KEYS:
                    raise FieldError(
                        f"package.{brief_text(str(name))}", "unknown key (minutes, sms or mb)"
                    )
                out[PACKAGE_KEYS[name]] = count(f"package.{name}", units)
        elif key in ("package_minutes", "package_sms", "package_mb", "bonus_points"):
            out[key] = count(key, value)
        elif key == "services":
            if not isinstance(value, Mapping):
                raise FieldError(key, "expected a mapping of service name to true/false")
            for name, on in value.items():
                if not isinstance(name, str) or not name:
                    raise FieldError(key, f"expected service names, got {brief(name)}")
                if not isinstance(on, bool):
                    where = f"services.{brief_text(name)}"
                    raise FieldError(where, f"expected true or false, got {brief(on)}")
            out[key] = dict(value)
        elif key == "payments":
            out[key] = _payments(value)
        elif key == "charges":
            out[key] = charges(value)
        elif key == "instalments":
            out[key] = instalments(value)
        elif key == "number_management":
            if not isinstance(value, bool):
                raise FieldError(key, f"expected true or false, got {brief(value)}")
            out[key] = value
        else:  # password
            if not isinstance(value, str) or not PASSWORD_RE.fullmatch(value):
                # Never quote the value: it is a password.
                raise FieldError(
                    key, "expected 4-10 Latin letters and digits", code="invalid_password"
                )
            out[key] = value
    return out


def _payments(value: object) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise FieldError("payments", "expected a list of {date, amount}")
    if len(value) > MAX_PAYMENTS:
        raise FieldError("payments", f"at most {MAX_PAYMENTS} payments")
    payments = []
    for i, p in enumerate(value):
        where = f"payments[{i}]"
        if not isinstance(p, Mapping):
            raise FieldError(where, "expected a mapping with date and amount")
        for k in p:
            if k not in ("date", "amount"):
                raise FieldError(f"{where}.{brief_text(str(k))}", "unknown key (date or amount)")
        date = p.get("date")
        if not isinstance(date, str) or not date or len(date) > 32:
            raise FieldError(f"{where}.date", f"expected a date, got {brief(date)}")
        payments.append({"date": date, "amount": amount(f"{where}.amount", p.get("amount"))})
    return payments


def date_text(value: object) -> str:
    """An ISO date as text; a YAML date (`2026-11-01` unquoted) is taken as the date it is."""
    if isinstance(value, dt.date):
        return value.isoformat()
    return value if isinstance(value, str) else ""


def moment(key: str, value: object) -> float:
    """`YYYY-MM-DD` (noon UTC) or an ISO date-time (UTC unless it says otherwise) → epoch."""
    text = date_text(value)
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text)
            when = dt.datetime(day.year, day.month, day.day, 12, tzinfo=dt.UTC)
        elif 10 < len(text) <= 32:
            when = dt.datetime.fromisoformat(text)
            if when.tzinfo is None:
                when = when.replace(tzinfo=dt.UTC)
        else:
            raise ValueError(text)
    except ValueError:
        raise FieldError(key, f"expected an ISO date (YYYY-MM-DD), got {brief(value)}") from None
    return when.timestamp()


def _text(key: str, value: object, *, required: bool) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value.isprintable() or len(value) > MAX_TEXT:
        raise FieldError(key, f"expected text of at most {MAX_TEXT} characters, got {brief(value)}")
    if required and not value.strip():
        raise FieldError(key, "expected a non-empty text")
    return value


def positive(key: str, value: object) -> float:
    number = amount(key, value)
    if number <= 0:
        raise FieldError(key, f"expected a positive amount, got {brief(value)}")
    return round(number, 2)


def charges(value: object) -> list[dict[str, Any]]:
    """The ledger of charges: [{date, category, amount, description?}] → [{at, …}]."""
    if not isinstance(value, list):
        raise FieldError("charges", "expected a list of {date, category, amount}")
    if len(value) > MAX_CHARGES:
        raise FieldError("charges", f"at most {MAX_CHARGES:_} charges")
    return [charge(f"charges[{i}]", c) for i, c in enumerate(value)]


def charge(where: str, c: object) -> dict[str, Any]:
    """One charge: {date, category, amount, description?} → {at, category, amount, description}."""
    if not isinstance(c, Mapping):
        raise FieldError(where, "expected a mapping with date, category and amount")
    for k in c:
        if k not in ("date", "category", "amount", "description"):
            raise FieldError(
                f"{where}.{brief_text(str(k))}",
                "unknown key (date, category, amount or description)",
            )
    category = c.get("category")
    if category not in CATEGORIES:
        raise FieldError(
            f"{where}.category", f"expected one of {', '.join(CATEGORIES)}, got {brief(category)}"
        )
    return {
        "at": moment(f"{where}.date", c.get("date")),
        "category": category,
        "amount": positive(f"{where}.amount", c.get("amount")),
        "description": _text(f"{where}.description", c.get("description"), required=False),
    }


def add_months(day: dt.date, months: int) -> dt.date:
    """The same day `months` later, or the month's last day when it has no such day."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def instalments(value: object) -> list[dict[str, Any]]:
    """Plans [{item, total, months, first_due, paid?}] → [{item, schedule}].

    A schedule is a list of (due date, amount, paid_at or None).

    The total is split into equal monthly amounts to the kopeck, the last taking the
    remainder; the first `paid` instalments count as paid on their due dates.
    """
    if not isinstance(value, list):
        raise FieldError("instalments", "expected a list of {item, total, months, first_due}")
    if len(value) > MAX_PLANS:
        raise FieldError("instalments", f"at most {MAX_PLANS} plans")
    plans = []
    for i, p in enumerate(value):
        where = f"instalments[{i}]"
        if not isinstance(p, Mapping):
            raise FieldError(where, "expected a mapping with item, total, months and first_due")
        for k in p:
            if k not in ("item", "total", "months", "first_due", "paid"):
                raise FieldError(
                    f"{where}.{brief_text(str(k))}",
                    "unknown key (item, total, months, first_due or paid)",
                )
        item = _text(f"{where}.item", p.get("item"), required=True)
        total = positive(f"{where}.total", p.get("total"))
        months = p.get("months")
        if isinstance(months, bool) or not isinstance(months, int) or not 1 <= months <= MAX_MONTHS:
            raise FieldError(f"{where}.months", f"expected 1-{MAX_MONTHS}, got {brief(months)}")
        paid = p.get("paid", 0)
        if isinstance(paid, bool) or not isinstance(paid, int) or not 0 <= paid <= months:
            raise FieldError(f"{where}.paid", f"expected 0-{months}, got {brief(paid)}")
        moment(f"{where}.first_due", p.get("first_due"))
        try:
            first = dt.date.fromisoformat(date_text(p.get("first_due")))
        except ValueError:
            raise FieldError(f"{where}.first_due", "expected a date (YYYY-MM-DD)") from None
        cents = round(total * 100)
        share = cents // months
        schedule = []
        for n in range(months):
            due = add_months(first, n)
            part = share if n < months - 1 else cents - share * (months - 1)
            paid_at = moment(where, due.isoformat()) if n < paid else None
            schedule.append((due.isoformat(), part / 100, paid_at))
        plans.append({"item": item, "schedule": schedule})
    return plans
