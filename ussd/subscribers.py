"""Subscriber fields: the one validator of config seeds, the admin API and the CLI.

`subscribers.seed` in config.yaml, `POST/PATCH /api/v1/subscribers` and `ussd-sim subscribers
add|set` accept the same fields with the same rules (docs/account.md), so a value that loads
from config is one the API would take and the other way round. Counts and amounts are bounded
so every value fits the store's 64-bit integer and stays a finite number.
"""

from __future__ import annotations

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
