"""ussd.dialstring: docs/grammar.md and TS 22.030 §6.5 / 22.090 examples, errors, invariants."""

from __future__ import annotations

import dataclasses
import itertools
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from lark import UnexpectedInput

from ussd import dialstring
from ussd.dialstring import (
    AFTER_HASH,
    BAD_CHARACTER,
    EMPTY,
    NO_HASH,
    NOT_CLIR,
    SYNTAX_EXAMPLES,
    USSD_THEN_NUMBER,
    DialString,
    DialStringError,
    parse,
)

PLUS = "+79161234567"


def ussd(sc: str | None = None, *si: str) -> dict[str, Any]:
    fields = dict(zip(("sia", "sib", "sic", "extra"), si, strict=False))
    return {"kind": "ussd", "service_code": sc, **fields}


def ss(procedure: str, sc: str, *si: str, kind: str = "ss") -> dict[str, Any]:
    fields = dict(zip(("sia", "sib", "sic", "extra"), si, strict=False))
    return {"kind": kind, "procedure": procedure, "service_code": sc, **fields}


def call(number: str, clir: str | None = None) -> dict[str, Any]:
    return {
        "kind": "call",
        "dial_number": number,
        "clir": clir,
        "service_code": "31" if clir else None,
    }


CASES: list[tuple[str, dict[str, Any]]] = [
    # The operator's self-care codes (README.md, docs/services.md).
    ("*111*17#", ussd("111", "17")),
    ("*111*828*1#", ussd("111", "828", "1")),
    ("*111*828*2#", ussd("111", "828", "2")),
    ("*111*828#", ussd("111", "828")),
    ("*100#", ussd("100")),
    ("*111#", ussd("111")),
    ("*102#", ussd("102")),
    # docs/grammar.md: anything else ending in '#' is USSD.
    ("*#100#", ussd("100")),
    ("#646#", ussd("646")),
    ("*1234#", ussd("1234")),
    ("123#", ussd("123")),
    ("*400#1234567890123456#", ussd("400")),  # the whole string is the USSD string
    ("*31#123#", ussd("31")),  # ends in '#': USSD, not a CLIR call
    ("*21##", ussd("21")),
    ("**111*1#", ussd("111", "1")),  # a procedure prefix on an unknown code
    ("##100#", ussd("100")),
    ("*06#", ussd("06")),  # only "*#06#" is the IMEI
    ("#06#", ussd("06")),
    ("*#06*1#", ussd("06", "1")),
    ("*1#", ussd("1")),  # SC of one digit: not an MMI procedure
    ("21#", ussd("21")),  # no procedure prefix
    ("100*1#", ussd("100", "1")),
    ("**#", ussd()),
    ("#*#", ussd()),
    ("abc#", ussd()),
    ("*abc*5#", ussd()),
    ("+7916#", ussd()),
    # Present-but-empty fields are "", absent ones None (docs/grammar.md).
    ("*111**5#", ussd("111", "", "5")),
    ("*111*#", ussd("111", "")),
    ("*111*1*2*3*4#", ussd("111", "1", "2", "3", "4")),
    ("*111*1*2*3*4*5#", ussd("111")),  # more than four SI: only the service code
    ("*21*1*2*3*4*5#", ussd("21")),
    # SI fields take any characters but '*' and '#'.
    ("*111*абв#", ussd("111", "абв")),
    ("*111*Secret12#", ussd("111", "Secret12")),
    ("*111*a+b.c!#", ussd("111", "a+b.c!")),
    # TS 22.030 §6.5.3.2: one or two characters are short-code USSD...
    ("1", ussd("1")),
    ("5", ussd("5")),
    ("0", ussd("0")),
    ("55", ussd("55")),
    ("00", ussd("00")),
    ("*5", ussd("5")),
    ("5#", ussd("5")),
    ("1*", ussd("1")),
    ("#", ussd()),
    ("*#", ussd()),
    ("**", ussd()),
    ("+5", ussd()),
    ("ab", ussd()),
    # ... except two digits starting with '1' outside a call, which are a call.
    ("12", call("12")),
    ("10", call("10")),
    ("19", call("19")),
    # TS 22.030 §6.5.2 procedures on call forwarding; "*SC*DN#" is registration.
    ("*21*+79161234567#", ss("register", "21", PLUS)),
    ("**21*+79161234567#", ss("register", "21", PLUS)),
    ("*21*89161234567#", ss("register", "21", "89161234567")),
    ("*21#", ss("activate", "21")),
    ("#21#", ss("deactivate", "21")),
    ("*#21#", ss("interrogate", "21")),
    ("##21#", ss("erase", "21")),
    ("*21*abc#", ss("activate", "21", "abc")),  # no number in SIA: not registration
    ("*21**11#", ss("activate", "21", "", "11")),
    ("#21**11#", ss("deactivate", "21", "", "11")),
    ("**21*+79161234567*11#", ss("register", "21", PLUS, "11")),
    ("**61*+79161234567**20#", ss("register", "61", PLUS, "", "20")),
    ("*61*+79161234567**30#", ss("register", "61", PLUS, "", "30")),
    ("*67*89161234567#", ss("register", "67", "89161234567")),
    ("*62*+79161234567#", ss("register", "62", PLUS)),
    ("*002*+79161234567#", ss("register", "002", PLUS)),
    ("*004*+79161234567#", ss("register", "004", PLUS)),
    ("##002#", ss("erase", "002")),
    ("##004#", ss("erase", "004")),
    ("*#67#", ss("interrogate", "67")),
    # Line identification and call waiting (TS 22.030 Annex B).
    ("*#30#", ss("interrogate", "30")),
    ("*#31#", ss("interrogate", "31")),
    ("*31#", ss("activate", "31")),
    ("#31#", ss("deactivate", "31")),
    ("*#76#", ss("interrogate", "76")),
    ("*#77#", ss("interrogate", "77")),
    ("*43#", ss("activate", "43")),
    ("#43#", ss("deactivate", "43")),
    ("*#43#", ss("interrogate", "43")),
    ("*43*11#", ss("activate", "43", "11")),  # not forwarding: no registration
    # Call barring with the barring password in SIA (TS 22.030 §6.5.4).
    ("*33*0000#", ss("activate", "33", "0000")),
    ("#33*0000#", ss("deactivate", "33", "0000")),
    ("*#33#", ss("interrogate", "33")),
    ("*331*0000#", ss("activate", "331", "0000")),
    ("*332*0000#", ss("activate", "332", "0000")),
    ("*35*0000#", ss("activate", "35", "0000")),
    ("*351*0000#", ss("activate", "351", "0000")),
    ("#330*0000#", ss("deactivate", "330", "0000")),
    ("#333*0000#", ss("deactivate", "333", "0000")),
    ("#353*0000#", ss("deactivate", "353", "0000")),
    ("**03*330*0000*1234*1234#", ss("register", "03", "330", "0000", "1234", "1234")),
    ("*03**0000*1234*1234#", ss("activate", "03", "", "0000", "1234", "1234")),
    # SIM PIN/PUK and IMEI never leave the handset (TS 22.030 §6.6, §6.5.1).
    ("**04*1234*5678*5678#", ss("register", "04", "1234", "5678", "5678", kind="local")),
    ("**042*1234*5678*5678#", ss("register", "042", "1234", "5678", "5678", kind="local")),
    ("**05*12345678*1234*1234#", ss("register", "05", "12345678", "1234", "1234", kind="local")),
    ("**052*12345678*1234*1234#", ss("register", "052", "12345678", "1234", "1234", kind="local")),
    ("*#06#", ss("interrogate", "06", kind="local")),
    # Calls: plain digits, '+' kept; CLIR per call (TS 22.030 Annex B).
    ("+79161234567", call(PLUS)),
    ("89161234567", call("89161234567")),
    ("112", call("112")),
    ("0611", call("0611")),
    ("*31#+79161234567", call(PLUS, "suppress")),
    ("#31#+79161234567", call(PLUS, "invoke")),
    ("#31#89161234567", call("89161234567", "invoke")),
    ("*31#12", call("12", "suppress")),
    # TS 22.030 Annex B: the CLIR prefix goes in front of any dialling string, '*' and '#'
    # included: AOSP's GsmCdmaPhoneTest dials the priority call "*31#*27216505551212" as
    # "*27216505551212" with CLIR suppressed, and "#31#*27216505551212" with CLIR invoked.
    ("*31#*27216505551212", call("*27216505551212", "suppress")),
    ("#31#*27216505551212", call("*27216505551212", "invoke")),
    ("#31##5", call("#5", "invoke")),
    ("*31#12*3", call("12*3", "suppress")),
    ("*31#*21*+79161234567", call("*21*+79161234567", "suppress")),
    ("*31#*#06#1", call("*#06#1", "suppress")),
    ("*31#1+2", call("1+2", "suppress")),  # '+' is a keypad character anywhere
    # ... but a string ending in '#' is one USSD string, after "*31#" too (rule 4).
    ("#31#*100#", ussd("31")),
    ("*31#*27216505551212#", ussd("31")),
    ("*31##", ussd("31")),
]

FIELD_DEFAULTS = dict.fromkeys(
    ("procedure", "service_code", "sia", "sib", "sic", "extra", "dial_number", "clir")
)


def test_table_is_large_and_unique() -> None:
    texts = [text for text, _ in CASES]
    assert len(texts) >= 60
    assert len(set(texts)) == len(texts)


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[t for t, _ in CASES])
def test_table(text: str, expected: dict[str, Any]) -> None:
    result = parse(text)
    assert result.to_json() == {**FIELD_DEFAULTS, **expected, "text": text}


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[t for t, _ in CASES])
def test_grammar_path_agrees_with_table(text: str, expected: dict[str, Any]) -> None:
    # The regular-expression pre-check is only a shortcut: the grammar alone gives the same.
    result = dialstring._parse_text(text, fast=False)
    assert isinstance(result, DialString)
    assert result.to_json() == {**FIELD_DEFAULTS, **expected, "text": text}


# (text, message, column): semantic errors, whitespace, and every SYNTAX_EXAMPLES entry.
ERRORS: list[tuple[str, str, int]] = [
    ("", EMPTY, 1),
    ("*123#345", USSD_THEN_NUMBER, 6),
    ("*111*17#12", USSD_THEN_NUMBER, 9),
    ("123#4", USSD_THEN_NUMBER, 5),
    ("*111#+79161234567", USSD_THEN_NUMBER, 6),
    ("*21#+79161234567", NOT_CLIR, 5),
    ("**31#123", NOT_CLIR, 6),
    ("*#31#123", NOT_CLIR, 6),
    ("*31*1#123", NOT_CLIR, 7),
    ("*#06#1", NOT_CLIR, 6),
    ("*21#*5", NOT_CLIR, 5),  # a dialling string with '*' after a code that is not CLIR
    ("##31#*5", NOT_CLIR, 6),
    ("*100#1*2", USSD_THEN_NUMBER, 6),  # "1*2" is a dialling string: not after USSD
    ("*123#4#5", USSD_THEN_NUMBER, 6),
    ("*31#+", AFTER_HASH, 5),  # a dialling string ends in a digit
    ("*31#*", AFTER_HASH, 5),
    ("*31#12*a", AFTER_HASH, 5),
    ("*04#5", NOT_CLIR, 5),
    ("**04*1*2*2#5", NOT_CLIR, 12),
    (" *100#", BAD_CHARACTER, 1),
    ("*100# ", BAD_CHARACTER, 6),
    ("*1 00#", BAD_CHARACTER, 3),
    ("*100#\n", BAD_CHARACTER, 6),
    ("*111*a b#", BAD_CHARACTER, 7),
    ("\t", BAD_CHARACTER, 1),
    ("1\x00", BAD_CHARACTER, 2),
    ("*111*17#\u00a0", BAD_CHARACTER, 9),
    # SYNTAX_EXAMPLES[NO_HASH]: the '#' is missing, so the column is just past the end.
    ("abc", NO_HASH, 4),
    ("*111*17", NO_HASH, 8),
    ("*111*", NO_HASH, 6),
    ("12ab", NO_HASH, 5),
    ("7+916", NO_HASH, 6),
    ("#12", NO_HASH, 4),
    ("**21*+7916", NO_HASH, 11),
    ("*#06", NO_HASH, 5),
    # SYNTAX_EXAMPLES[AFTER_HASH]: the column is the first character after the closing '#'.
    ("*111*17#extra", AFTER_HASH, 9),
    ("*100#1*a", AFTER_HASH, 6),
    ("#31#abc", AFTER_HASH, 5),
    ("*123#4#x", AFTER_HASH, 6),
    ("*100#*", AFTER_HASH, 6),
    ("123#ab", AFTER_HASH, 5),
]


@pytest.mark.parametrize(("text", "message", "column"), ERRORS, ids=[repr(e[0]) for e in ERRORS])
def test_errors(text: str, message: str, column: int) -> None:
    with pytest.raises(DialStringError) as info:
        parse(text)
    assert (info.value.message, info.value.column, info.value.text) == (message, column, text)
    assert str(info.value) == f"{message} (column {column})"
    assert info.value.context().splitlines()[-1] == " " * (column - 1) + "^"


def test_known_bad_examples_are_test_data() -> None:
    tested = {(text, message) for text, message, _ in ERRORS}
    for message, examples in SYNTAX_EXAMPLES.items():
        for text in examples:
            assert (text, message) in tested


@pytest.mark.parametrize(
    ("message", "text"),
    [(message, text) for message, texts in SYNTAX_EXAMPLES.items() for text in texts],
)
def test_known_bad_examples_are_grammar_errors_matched_by_lark(message: str, text: str) -> None:
    with pytest.raises(UnexpectedInput) as info:
        dialstring._PARSER.parse(text)
    label = info.value.match_examples(dialstring._PARSER.parse, SYNTAX_EXAMPLES, use_accepts=True)
    assert label == message


def test_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="empty dial string"):
        parse("")


def test_dial_string_is_frozen_plain_data() -> None:
    result = parse("*111*17#")
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.kind = "call"  # type: ignore[misc]
    assert list(result.to_json()) == list(dialstring.FIELDS)
    assert [f.name for f in dataclasses.fields(DialString)] == list(dialstring.FIELDS)
    # No lark Token (a str subclass) or Tree leaks out.
    assert all(type(v) in (str, type(None)) for v in result.to_json().values())


def test_cache_returns_equal_results_and_errors_stay_errors() -> None:
    dialstring.cache_clear()
    first = parse("*111*828*1#")
    again = parse("*111*828*1#")
    assert first == again
    assert first is again  # served from the cache
    errors = []
    for _ in range(2):
        with pytest.raises(DialStringError) as info:
            parse("*123#345")
        errors.append(info.value)
    assert errors[0] is not errors[1]  # a fresh exception each time
    assert (errors[0].message, errors[0].column) == (errors[1].message, errors[1].column)
    info_after = dialstring._parse_cached.cache_info()
    assert info_after.hits >= 2
    assert info_after.maxsize == dialstring.CACHE_SIZE >= 65536


# Property tests: any string gives a DialString or a DialStringError, nothing else.

KEYPAD = st.text(alphabet="*#+0123456789", max_size=24)
MIXED = st.text(alphabet="*#+0123456789abcXабв \t", max_size=24)
CODES = sorted(dialstring.SS_CODES | dialstring.LOCAL_CODES | {"06", "100", "111", "1", "1234"})


@st.composite
def mmi_like(draw: st.DrawFn) -> str:
    prefix = draw(st.sampled_from(["", "*", "#", "*#", "**", "##"]))
    code = draw(st.sampled_from(CODES) | st.text(alphabet="0123456789", max_size=4))
    fields = draw(
        st.lists(st.sampled_from(["", "1", PLUS, "11", "abc", "абв", "0000"]), max_size=6)
    )
    tail = draw(
        st.sampled_from(
            ["", PLUS, "12", "x", "*", "#", "1#", "1*2#", "*2721", "#5", "1*2", "*100#", "+"]
        )
    )
    return prefix + code + "".join("*" + f for f in fields) + "#" + tail


def outcome(text: str) -> DialString | DialStringError:
    # Anything but these two escaping is a bug, and fails the test by itself.
    try:
        return parse(text)
    except DialStringError as exc:
        return exc


def check(text: str) -> None:
    result = outcome(text)
    if isinstance(result, DialStringError):
        assert result.text == text
        assert 1 <= result.column <= len(text) + 1
        assert result.message
        return
    assert isinstance(result, DialString)
    assert result.text == text
    assert result.kind in ("ussd", "ss", "local", "call")
    if result.kind == "call":
        assert result.dial_number is not None and result.procedure is None
    elif result.kind == "ussd":
        assert result.procedure is None
        assert text.endswith("#") or len(text) <= 2
    else:
        assert result.procedure is not None and result.service_code is not None
        assert text.endswith("#")


def same_both_ways(text: str) -> None:
    assert dialstring._parse_text(text, fast=True) == dialstring._parse_text(text, fast=False)


@settings(max_examples=400)
@given(st.text(max_size=30) | KEYPAD | MIXED | mmi_like())
@example("*111*17#")
@example("*#*#4636#*#*")
@example("\udcff#")
def test_any_string_is_a_dial_string_or_an_error(text: str) -> None:
    check(text)
    same_both_ways(text)


@settings(max_examples=300)
@given(mmi_like())
def test_mmi_like_strings_agree_on_both_paths(text: str) -> None:
    check(text)
    same_both_ways(text)


def test_both_paths_agree_on_every_short_keypad_string() -> None:
    # Exhaustive where hypothesis samples: every string of up to five of these characters.
    alphabet = "*#13+a "
    for length in range(1, 6):
        for chars in itertools.product(alphabet, repeat=length):
            text = "".join(chars)
            assert dialstring._parse_text(text, fast=True) == dialstring._parse_text(
                text, fast=False
            ), text


def test_both_paths_agree_on_every_short_tail_after_clir() -> None:
    # What follows "*31#" / "#31#" is where the two paths split the string differently from
    # every other shape: every tail of up to four keypad characters, plus a letter.
    alphabet = "*#1+a"
    for prefix in ("*31#", "#31#", "*21#", "*100#"):
        for length in range(1, 5):
            for chars in itertools.product(alphabet, repeat=length):
                text = prefix + "".join(chars)
                fast = dialstring._parse_text(text, fast=True)
                assert fast == dialstring._parse_text(text, fast=False), text
                if prefix in ("*31#", "#31#") and text[-1] == "1" and "a" not in text:
                    assert isinstance(fast, DialString) and fast.kind == "call", text
                    assert fast.dial_number == text[4:], text


def test_error_text_keeps_secrets_out_of_str() -> None:
    with pytest.raises(DialStringError) as info:
        parse("**04*1234*5678*5678#9")
    assert "5678" not in str(info.value)
    assert "5678" in info.value.context()


def test_docs_examples_table_matches_the_parser() -> None:
    # docs/grammar.md "Examples": every string in the first column has the kind it states.
    doc = (Path(__file__).resolve().parents[1] / "docs" / "grammar.md").read_text("utf-8")
    table = doc.split("## Examples", 1)[1].split("\n\n", 2)[1]
    rows = [line.split("|")[1:3] for line in table.splitlines()[2:]]
    checked = 0
    for typed, kind in rows:
        for text in re.findall(r"`([^`]+)`", typed):
            assert parse(text).kind == kind.strip(), text
            checked += 1
    assert checked >= 25
