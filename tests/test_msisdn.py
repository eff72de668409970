"""MSISDN normalisation and masking (docs/services.md store, §5 source_addr): one table per rule."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ussd.msisdn import InvalidMsisdn, mask, normalise


@pytest.mark.parametrize(
    ("written", "stored"),
    [
        ("79161234567", "79161234567"),
        ("+79161234567", "79161234567"),
        ("+7 916 123-45-67", "79161234567"),
        ("+7 (916) 123-45-67", "79161234567"),
        ("8 916 123 45 67", "79161234567"),
        ("89161234567", "79161234567"),
        ("9161234567", "79161234567"),  # a Russian mobile number with no prefix
        ("0079161234567", "79161234567"),
        ("+44 20 7946 0958", "442079460958"),
        ("12345", "12345"),  # shortest accepted
        ("123456789012345", "123456789012345"),  # E.164 maximum, 15 digits
        ("88005553535", "78005553535"),
        ("\t+7.916.123.45.67 ", "79161234567"),
    ],
)
def test_normalise(written: str, stored: str) -> None:
    assert normalise(written) == stored


@pytest.mark.parametrize(
    "written",
    [
        "",
        "+",
        "1234",  # too short
        "1234567890123456",  # 16 digits: longer than E.164 allows
        "+7916abc4567",
        "*100#",
        "7916123456７",  # fullwidth 7 (U+FF17)
        "٧٩١٦١٢٣٤٥٦٧",  # Arabic-Indic digits: str.isdigit() says yes, the network says no
        "۷۹۱۶۱۲۳۴۵۶۷",  # Extended Arabic-Indic
        "७९१६१२३४५६७",  # Devanagari
        "+7\u00a0916\u00a01234567",  # no-break spaces are not separators we strip
        "7916１２３4567",
    ],
)
def test_refused(written: str) -> None:
    with pytest.raises(InvalidMsisdn):
        normalise(written)


def test_other_country_trunk_prefix() -> None:
    assert normalise("0 20 7946 0958", country_code="44", trunk_prefix="0") == "442079460958"
    assert normalise("+442079460958", country_code="44", trunk_prefix="0") == "442079460958"


@given(st.text(max_size=20))
def test_accepted_numbers_are_ascii_digits(text: str) -> None:
    try:
        stored = normalise(text)
    except InvalidMsisdn:
        return
    assert stored.isascii() and stored.isdecimal() and 5 <= len(stored) <= 15


@pytest.mark.parametrize(
    ("msisdn", "masked"),
    [
        ("79161234567", "+7 916 ***-**-67"),
        ("442079460958", "+44 207 ***-**-58"),
        ("9161234567", "+916 ***-**-67"),
        ("12345", "***45"),
    ],
)
def test_mask(msisdn: str, masked: str) -> None:
    assert mask(msisdn) == masked
