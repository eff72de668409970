"""The GSM 7-bit default alphabet and its extension table (3GPP TS 23.038 §6.2.1, §6.2.1.1)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

# TS 23.038 §6.2.1: the 128 characters of the default alphabet, indexed by septet value.
# Position 0x1B is ESC (escape to the extension table), not a character of its own, so it is
# kept here for positional fidelity but left out of the set of encodable characters.
ESCAPE = 0x1B
DEFAULT_ALPHABET = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)

# TS 23.038 §6.2.1.1: characters reached as ESC + septet, so each costs two septets.
# 0x0A is the page break, delivered to us as FORM FEED (U+000C).
EXTENSION_TABLE: Mapping[int, str] = MappingProxyType(
    {
        0x0A: "\f",
        0x14: "^",
        0x28: "{",
        0x29: "}",
        0x2F: "\\",
        0x3C: "[",
        0x3D: "~",
        0x3E: "]",
        0x40: "|",
        0x65: "€",
    }
)

_BASIC = frozenset(DEFAULT_ALPHABET) - {chr(ESCAPE)}
_EXTENSION = frozenset(EXTENSION_TABLE.values())
_ALL = _BASIC | _EXTENSION

# Byte tables for the ASCII fast path: bytes.translate(None, delete) runs in C without a
# per-character set lookup, several times faster than iterating a str on screen-sized texts.
# The only ASCII characters outside the alphabet are the C0 controls other than LF, CR and FF,
# DEL, and the backtick (TS 23.038 §6.2.1 has no U+0060).
_ASCII_GSM = bytes(b for b in range(128) if chr(b) in _ALL)
_NOT_ASCII_EXTENSION = bytes(b for b in range(256) if chr(b) not in _EXTENSION or b >= 128)
_EXTENSION_RE = re.compile("[" + re.escape("".join(sorted(_EXTENSION))) + "]")


def is_gsm7(text: str) -> bool:
    """True when every character of `text` is in the default alphabet or its extension table."""
    if text.isascii():
        return not text.encode("ascii").translate(None, _ASCII_GSM)
    # frozenset.issuperset walks the string in C and stops at the first miss (Cyrillic).
    return _ALL.issuperset(text)


def gsm7_length(text: str) -> int:
    """Septets `text` takes in GSM 7-bit: extension characters count 2, others 1."""
    # Characters outside the alphabet count 1: callers check is_gsm7 first.
    if text.isascii():
        raw = text.encode("ascii")
        return len(raw) + len(raw.translate(None, _NOT_ASCII_EXTENSION))
    return len(text) + len(_EXTENSION_RE.findall(text))
