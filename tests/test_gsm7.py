"""GSM 7-bit default alphabet membership and septet counting (TS 23.038 §6.2.1)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ussd.gsm7 import DEFAULT_ALPHABET, ESCAPE, EXTENSION_TABLE, gsm7_length, is_gsm7

BASIC = set(DEFAULT_ALPHABET) - {"\x1b"}
EXTENSION = set(EXTENSION_TABLE.values())
# Characters that look plausible but are not in the alphabet.
OUTSIDE = "`\t\x00\x1b\x7fçЯжЁ😀ÀâΑ\u00a0"


def test_alphabet_shape() -> None:
    assert len(DEFAULT_ALPHABET) == 128
    assert len(set(DEFAULT_ALPHABET)) == 128
    assert DEFAULT_ALPHABET[ESCAPE] == "\x1b"
    # Spot checks against the TS 23.038 §6.2.1 table.
    assert DEFAULT_ALPHABET[0x00] == "@"
    assert DEFAULT_ALPHABET[0x02] == "$"
    assert DEFAULT_ALPHABET[0x09] == "Ç"
    assert DEFAULT_ALPHABET[0x10] == "Δ"
    assert DEFAULT_ALPHABET[0x11] == "_"
    assert DEFAULT_ALPHABET[0x24] == "¤"
    assert DEFAULT_ALPHABET[0x40] == "¡"
    assert DEFAULT_ALPHABET[0x60] == "¿"
    assert DEFAULT_ALPHABET[0x7F] == "à"
    assert EXTENSION_TABLE[0x65] == "€"
    assert sorted(EXTENSION) == sorted("\f^{}\\[~]|€")
    assert not BASIC & EXTENSION


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", True),
        ("Hello, world!", True),
        ("@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¤¡ÄÖÑÜ§¿äöñüà", True),
        ("line\nbreak\rreturn", True),
        ("^{}\\[~]|€\f", True),
        ("Balance: 10€ [ok]", True),
        ("`", False),
        ("tab\there", False),
        ("\x1b", False),
        ("ç", False),
        ("Привет", False),
        ("Balance 10 руб", False),
        ("smile 😀", False),
        ("no\u00a0break", False),
    ],
)
def test_is_gsm7(text: str, expected: bool) -> None:
    assert is_gsm7(text) is expected


@pytest.mark.parametrize(
    ("text", "septets"),
    [
        ("", 0),
        ("abc", 3),
        ("€", 2),
        ("a€b", 4),
        ("^{}\\[~]|€\f", 20),
        ("é{", 3),
        ("Δ€Ω", 4),
        ("€" * 91, 182),
        ("a" * 182, 182),
    ],
)
def test_gsm7_length(text: str, septets: int) -> None:
    assert gsm7_length(text) == septets


@pytest.mark.parametrize("char", sorted(BASIC))
def test_every_basic_character_is_one_septet(char: str) -> None:
    assert is_gsm7(char)
    assert gsm7_length(char) == 1


@pytest.mark.parametrize("char", sorted(EXTENSION))
def test_every_extension_character_is_two_septets(char: str) -> None:
    assert is_gsm7(char)
    assert gsm7_length(char) == 2


def _reference_length(text: str) -> int:
    return sum(2 if ch in EXTENSION else 1 for ch in text)


mixed = st.text(alphabet=st.sampled_from(sorted(BASIC | EXTENSION | set(OUTSIDE))))


@given(st.one_of(mixed, st.text()))
def test_fast_paths_match_reference(text: str) -> None:
    assert is_gsm7(text) == all(ch in BASIC or ch in EXTENSION for ch in text)
    assert gsm7_length(text) == _reference_length(text)
