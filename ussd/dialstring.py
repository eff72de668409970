"""Dial strings typed on a handset, parsed into DialString.

`grammar/mmi.lark` decides the shape of a string (procedure prefix, service code, supplementary
information fields, the closing '#', a trailing dialling number); this module decides what the
shape means, from the tables of known service codes below. No `lark.Tree` leaves this module:
the LALR parser runs the transformer inline, so no tree is ever built.

Decisions where the specification is silent (also in docs/grammar.md):
- USSD strings have no procedure (`procedure is None`): TS 22.090 gives USSD no
  activate/deactivate semantics, and routing matches on the service code and fields.
- Whitespace and control characters are errors at their column: a keypad cannot produce them,
  and a harness that sends them has a bug worth seeing rather than trimming away.
- Parsing assumes the handset is not in a call (TS 22.030 §6.5.3.2), so a two-digit entry
  starting with '1' is a call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final, Literal, cast

from lark import Lark, Token, Transformer, UnexpectedCharacters, UnexpectedInput

from ussd import resources

Kind = Literal["ussd", "ss", "local", "call"]
Procedure = Literal["activate", "deactivate", "interrogate", "register", "erase"]
Clir = Literal["suppress", "invoke"]

FIELDS: Final = (
    "kind",
    "procedure",
    "service_code",
    "sia",
    "sib",
    "sic",
    "extra",
    "dial_number",
    "clir",
    "text",
)

# TS 22.030 §6.5.2: the procedure is given by the characters before the service code.
PROCEDURES: Final[dict[str, Procedure]] = {
    "*": "activate",
    "#": "deactivate",
    "*#": "interrogate",
    "**": "register",
    "##": "erase",
}

# TS 22.030 Annex B: call forwarding (unconditional, busy, no reply, not reachable, all,
# all conditional). `*SC*DN#` on one of these registers DN (TS 22.030 §6.5.2).
CALL_FORWARDING: Final = frozenset({"21", "67", "61", "62", "002", "004"})

# TS 22.030 Annex B: codes the network handles as supplementary services.
SS_CODES: Final = CALL_FORWARDING | {
    "30",  # CLIP
    "31",  # CLIR
    "76",  # COLP
    "77",  # COLR
    "43",  # call waiting
    "33",  # BAOC
    "331",  # BOIC
    "332",  # BOIC-exHC
    "35",  # BAIC
    "351",  # BAIC roaming
    "330",  # all barring
    "333",  # outgoing barring
    "353",  # incoming barring
    "03",  # barring password (TS 22.030 §6.5.4)
}

# TS 22.030 §6.6: SIM PIN/PUK changes never leave the handset.
LOCAL_CODES: Final = frozenset({"04", "042", "05", "052"})

# TS 22.030 §6.5.1: the IMEI display is exactly "*#06#".
IMEI: Final = "*#06#"

# TS 22.030 Annex B: "*31#DN" suppresses CLIR for this call, "#31#DN" invokes it. DN is any
# dialling string, '*' and '#' included ("*31#*27216505551212"), as long as the whole string
# does not end in '#' (then it is one USSD string, rule 4 of docs/grammar.md).
CLIR_FOR_CALL: Final[dict[str, Clir]] = {"*": "suppress", "#": "invoke"}

_FORWARDED_TO = re.compile(r"\+?[0-9]+")
_SC = re.compile(r"[0-9]{2,3}")
_PREFIX = re.compile(r"\*\*|##|\*#|\*|#")
# TS 22.030 §6.5.3.2: one or two keypad characters are a short code; anything else of that
# length (whitespace, control characters) goes to the grammar, which reports the column.
_SHORT = re.compile(r"[^\s\x00-\x1f\x7f-\x9f]{1,2}")
_TWO_DIGITS_FROM_1 = re.compile(r"1[0-9]")
_DIGITS = re.compile(r"[0-9]+")

CACHE_SIZE: Final = 65536


@dataclass(frozen=True, slots=True)
class DialString:
    """One parsed dial string; absent fields are None, present-but-empty fields are ""."""

    kind: Kind
    procedure: Procedure | None
    service_code: str | None
    sia: str | None
    sib: str | None
    sic: str | None
    extra: str | None
    dial_number: str | None
    clir: Clir | None
    text: str

    def to_json(self) -> dict[str, str | None]:
        """The fields as a JSON-ready dict (exactly the dataclass fields, in order)."""
        return {
            "kind": self.kind,
            "procedure": self.procedure,
            "service_code": self.service_code,
            "sia": self.sia,
            "sib": self.sib,
            "sic": self.sic,
            "extra": self.extra,
            "dial_number": self.dial_number,
            "clir": self.clir,
            "text": self.text,
        }


class DialStringError(ValueError):
    """A string that is not a dial string; `column` is 1-based (len(text) + 1 = at the end)."""

    def __init__(self, message: str, column: int, text: str) -> None:
        super().__init__(message, column, text)
        self.message = message
        self.column = column
        self.text = text

    def context(self) -> str:
        """The text and a caret under the column, laid out like lark's get_context()."""
        return f"{self.text}\n{' ' * (self.column - 1)}^"

    def __str__(self) -> str:
        # One line and without the text: it ends up in logs and JSON errors, and SI fields
        # can hold PINs and passwords (TS 22.030 §6.6). context() shows the text on request.
        return f"{self.message} (column {self.column})"


# Messages, so callers and tests can compare without copying prose.
EMPTY: Final = "empty dial string"
NO_HASH: Final = "not a number and does not end in '#'"
AFTER_HASH: Final = "only a dialling number may follow the closing '#'"
NOT_CLIR: Final = "only *31# and #31# may be followed by a dialling number"
USSD_THEN_NUMBER: Final = "a USSD string ends at its '#'; a dialling number cannot follow it"
BAD_CHARACTER: Final = "whitespace and control characters are not allowed"

# Known-bad inputs for UnexpectedInput.match_examples(), by message. The grammar can fail in
# two places only: before any closing '#', and in what follows it (the lexer accepts every
# other character, so UnexpectedCharacters means whitespace or a control character). The
# same lists are test data (tests/test_dialstring.py asserts message and column of each).
SYNTAX_EXAMPLES: Final[dict[str, list[str]]] = {
    NO_HASH: ["abc", "*111*17", "*111*", "12ab", "7+916", "#12", "**21*+7916", "*#06"],
    AFTER_HASH: ["*111*17#extra", "*100#1*a", "#31#abc", "*123#4#x", "*100#*", "123#ab"],
}


class _Semantic(Exception):
    """A grammatical string that TS 22.030 rules out; carries message and column."""

    def __init__(self, message: str, column: int) -> None:
        super().__init__(message)
        self.message = message
        self.column = column


_Fields = tuple[
    Kind, "Procedure | None", "str | None", "str | None", "str | None", "str | None",
    "str | None", "str | None", "Clir | None",
]  # fmt: skip

_NONE4: Final = (None, None, None, None)


def _classify(
    prefix: str | None, first: str, sis: list[str], number: str | None, column: int, more: bool
) -> _Fields:
    """What a grammatical shape means (docs/grammar.md); both parse paths end here.

    `prefix` is the procedure characters or None, `first` the first field ("" when empty),
    `sis` the further '*'-separated fields, `number` a dialling number after the closing '#'
    (at 1-based `column`), `more` true when the string goes on after that '#' and ends in '#'.
    """
    if more:
        # docs/grammar.md: a string ending in '#' that goes on past its first closing '#' is one
        # USSD
        # string ("*400#1234567890123456#"); only its service code is named.
        return _ussd(first, None)
    if number is not None:
        if prefix is not None and prefix in CLIR_FOR_CALL and first == "31" and not sis:
            # TS 22.030 Annex B: CLIR for this call only.
            return ("call", None, "31", None, None, None, None, number, CLIR_FOR_CALL[prefix])
        if prefix is not None and (
            first in SS_CODES or first in LOCAL_CODES or (first == "06" and prefix == "*#")
        ):
            raise _Semantic(NOT_CLIR, column)
        # docs/grammar.md: "*123#345" is an error, while "*400#1234567890123456#" (ends in '#') is
        # USSD.
        raise _Semantic(USSD_THEN_NUMBER, column)
    if prefix is None or len(sis) > 4 or _SC.fullmatch(first) is None:
        # Not an MMI procedure (TS 22.030 §6.5.2: a prefix, an SC of 2-3 digits, at most four
        # SI fields): USSD (TS 22.030 §6.5.3.2, "anything else ending in '#'").
        return _ussd(first, sis)
    if first in SS_CODES:
        kind: Kind = "ss"
    elif first in LOCAL_CODES:
        kind = "local"
    elif first == "06" and prefix == "*#" and not sis:
        return ("local", "interrogate", "06", None, None, None, None, None, None)
    else:
        return _ussd(first, sis)
    procedure = PROCEDURES[prefix]
    si: list[str | None] = [*sis, *_NONE4]
    if (
        procedure == "activate"
        and first in CALL_FORWARDING
        and _FORWARDED_TO.fullmatch(sis[0] if sis else "")
    ):
        # TS 22.030 §6.5.2: "*SC*DN#" on call forwarding registers DN.
        procedure = "register"
    return (kind, procedure, first, si[0], si[1], si[2], si[3], None, None)


def _ussd(first: str, sis: list[str] | None) -> _Fields:
    """USSD fields: the first field as service code when numeric, then up to four SI fields."""
    if _DIGITS.fullmatch(first) is None:
        return ("ussd", None, None, None, None, None, None, None, None)
    if sis is None or len(sis) > 4:
        # Not of the "*SC*A*B#" form: only the service code is named; `text` holds the rest.
        return ("ussd", None, first, None, None, None, None, None, None)
    si: list[str | None] = [*sis, *_NONE4]
    return ("ussd", None, first, si[0], si[1], si[2], si[3], None, None)


def _strs(fields: list[Token | None]) -> list[str]:
    return ["" if f is None else str(f) for f in fields]


class _ToFields(Transformer[Token, Any]):
    """Runs inside the LALR parser (transformer=...): rule callbacks build plain tuples."""

    def sis(self, children: list[Token | None]) -> list[str]:
        return _strs(children)

    def dial_number(self, children: list[Token]) -> Token:
        return children[0]

    def more(self, children: list[Token]) -> bool:
        return True

    def call(self, children: list[Token]) -> _Fields:
        return ("call", None, None, None, None, None, None, str(children[0]), None)

    def unprefixed(self, children: list[Any]) -> _Fields:
        first, sis, tail = children
        return _tail(None, str(first), sis, tail)

    def prefixed(self, children: list[Any]) -> _Fields:
        prefix, first, sis, tail = children
        return _tail(str(prefix), "" if first is None else str(first), sis, tail)


def _tail(prefix: str | None, first: str, sis: list[str], tail: Token | bool | None) -> _Fields:
    if isinstance(tail, Token):
        return _classify(prefix, first, sis, str(tail), tail.column or 0, False)
    return _classify(prefix, first, sis, None, 0, tail is True)


# The common shapes, recognised by one regular expression before the LALR parser runs (a
# cheap pre-check, docs/performance.md: 25,000 distinct strings/s). It accepts a subset of what
# grammar/mmi.lark accepts and splits it the same way: the prefix is committed like the
# lexer's longest match (atomic group), fields are FIELD characters, the tail is absent or a
# DIALLING string (keypad characters to the end, ending in a digit). Everything else, errors
# included, goes to the grammar. tests/test_dialstring.py checks on random strings and on
# every short tail after "*31#" that both paths agree.
_F = r"[^*#\s\x00-\x1f\x7f-\x9f]"
_FAST_MMI = re.compile(rf"(?>(\*\*|##|\*#|\*|#)?)({_F}*)((?:\*{_F}*)*)#([0-9*#+]*[0-9])?")
_FAST_CALL = re.compile(r"\+?[0-9]+")


def _fast(text: str) -> _Fields | None:
    """Fields for a common shape, or None to let the grammar decide."""
    m = _FAST_MMI.fullmatch(text)
    if m is None:
        if _FAST_CALL.fullmatch(text):
            return ("call", None, None, None, None, None, None, text, None)
        return None
    prefix, first, rest, number = m.groups()
    if prefix is None and not first:
        return None
    sis = rest.split("*")[1:] if rest else []
    return _classify(prefix, first, sis, number, m.start(4) + 1, False)


def _short(text: str) -> _Fields:
    """One or two characters (TS 22.030 §6.5.3.2): USSD, but "1X" is a call (not in a call)."""
    if _TWO_DIGITS_FROM_1.fullmatch(text):
        return ("call", None, None, None, None, None, None, text, None)
    digits = text.strip("*#")
    code = digits if _DIGITS.fullmatch(digits) else None
    return ("ussd", None, code, None, None, None, None, None, None)


_PARSER: Final = Lark(
    resources.path("grammar/mmi.lark").read_text(encoding="utf-8"),
    parser="lalr",
    lexer="contextual",
    maybe_placeholders=True,
    transformer=_ToFields(),
    propagate_positions=False,
    cache=False,
)

_LABELS: dict[tuple[str, object, str], str | None] = {}


def _label(exc: UnexpectedInput) -> str | None:
    """The SYNTAX_EXAMPLES message matching exc, memoised by parser state and token."""
    token = getattr(exc, "token", None)
    state = getattr(exc, "state", None)
    # lark 1.x hands a ParserState (unhashable); its position is the LALR state number.
    key = (type(exc).__name__, getattr(state, "position", state), getattr(token, "type", ""))
    if key not in _LABELS:
        label = exc.match_examples(_PARSER.parse, SYNTAX_EXAMPLES, use_accepts=True)
        _LABELS[key] = label
    return _LABELS[key]


def _closing_hash(text: str) -> int:
    """Index of the '#' that closes the fields (after any procedure prefix), or -1."""
    prefix = _PREFIX.match(text)
    return text.find("#", prefix.end() if prefix else 0)


def _syntax_error(text: str, exc: UnexpectedInput) -> tuple[str, int]:
    if isinstance(exc, UnexpectedCharacters):
        return BAD_CHARACTER, exc.column
    closing = _closing_hash(text)
    label = _label(exc) or (NO_HASH if closing < 0 else AFTER_HASH)
    if label == AFTER_HASH and closing >= 0:
        return AFTER_HASH, closing + 2
    # The '#' is missing: point just past the end, where it belongs.
    return NO_HASH, len(text) + 1


def _parse_text(text: str, fast: bool = True) -> DialString | tuple[str, int]:
    """A DialString, or (message, column) for an error; `fast=False` skips the pre-check."""
    if not text:
        return EMPTY, 1
    if len(text) <= 2 and _SHORT.fullmatch(text):
        return DialString(*_short(text), text)
    try:
        fields = _fast(text) if fast else None
        if fields is None:
            # The transformer runs inside the parser, so parse() returns its tuple, not a Tree.
            fields = cast(_Fields, _PARSER.parse(text))
    except _Semantic as exc:
        return exc.message, exc.column
    except UnexpectedInput as exc:
        return _syntax_error(text, exc)
    return DialString(*fields, text)


# Results and errors are immutable, so both are cached (docs/performance.md: 1,000,000 repeated/s).
_parse_cached = lru_cache(maxsize=CACHE_SIZE)(_parse_text)


def parse(text: str) -> DialString:
    """Parse what a user typed on the handset; raises DialStringError (docs/grammar.md)."""
    result = _parse_cached(text)
    if isinstance(result, tuple):
        # A fresh exception each time: a cached one would carry an old traceback.
        raise DialStringError(result[0], result[1], text)
    return result


def cache_clear() -> None:
    """Forget cached results (benchmarks measure the uncached rate)."""
    _parse_cached.cache_clear()
