"""Subscriber numbers: `+7…`, `8…` and `7…` are one number."""

from __future__ import annotations

import re
from functools import lru_cache

_STRIP = re.compile(r"[\s\-().]", re.ASCII)
# ASCII digits only: `\d` and str.isdigit also accept Arabic-Indic, Devanagari, fullwidth …
# digits, and `٧٩١٦…` would become a subscriber no SMPP harness can ever address.
_DIGITS = re.compile(r"[0-9]{5,15}")


class InvalidMsisdn(ValueError):
    """Not a phone number."""


@lru_cache(maxsize=65536)
def normalise(number: str, country_code: str = "7", trunk_prefix: str = "8") -> str:
    """International digits without `+`: `+7 916 123-45-67`, `89161234567` → `79161234567`."""
    text = _STRIP.sub("", number)
    if text.startswith("+"):
        digits = text[1:]
    elif text.startswith("00"):
        digits = text[2:]
    else:
        digits = text
        # A national number with the trunk prefix (ITU-T E.164 §6; `8 916…` in Russia):
        # swap the prefix for the country code when the length is a full national number.
        if trunk_prefix and digits.startswith(trunk_prefix) and len(digits) == 11:
            digits = country_code + digits[len(trunk_prefix) :]
        elif len(digits) == 10 and country_code == "7" and digits.startswith("9"):
            # A Russian mobile number typed without any prefix (9XX XXX-XX-XX).
            digits = country_code + digits
    if not _DIGITS.fullmatch(digits):
        raise InvalidMsisdn(f"not a phone number: {number!r}")
    return digits


def mask(msisdn: str) -> str:
    """`79161234567` → `+7 916 ***-**-67` for screens that must not reveal a whole number."""
    if len(msisdn) < 7:
        return "*" * (len(msisdn) - 2) + msisdn[-2:]
    country = f"{msisdn[:-10]} " if len(msisdn) > 10 else ""
    return f"+{country}{msisdn[-10:-7]} ***-**-{msisdn[-2:]}"
