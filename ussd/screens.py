"""USSD screen sizing and pagination (docs/design.md): pure functions, no session state.

A screen is one USSD-String. Its size limit depends on the alphabet the whole screen needs:
GSM 7-bit when every character is in the default alphabet (extension characters cost two
septets), UCS-2 otherwise. Pages are sized one by one, so a page of Latin text can be a
182-septet GSM page while a page carrying a Cyrillic navigation line is an 80-character one.

Navigation line: every page but the last ends with ``"98. " + more_label`` on its own line
(e.g. ``"98. Далее"``), the same ``N. label`` shape as menu options and footers such as
``"0. Назад"``, so a handset user reads it as one more option to pick (``98`` is next page,
docs/services.md). Word boundaries are runs of ASCII whitespace; a no-break space (U+00A0) keeps its
meaning and never splits a page. A `more_label` or footer that leaves no room for text on a
page is a configuration error and raises ValueError rather than dropping text.

A line of a message that starts with a key (``0 Назад 00 Главное меню``, ``1. Баланс``) is kept
whole on one page, as menu options are: navigation is never split across pages.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ussd.gsm7 import gsm7_length, is_gsm7

# The USSD-String is at most 160 octets (TS 24.080 Annex A / TS 29.002:
# maxUSSD-StringLength ::= 160). Packed as in TS 23.038 §6.1.2.3.1, 160 octets hold
# floor(160 * 8 / 7) = 182 septets of the default alphabet.
GSM7_LIMIT = 182
# TS 23.038 §6.2.3: UCS-2 takes two octets per character, so 160 octets hold 80 characters.
UCS2_LIMIT = 80

# docs/services.md: "98" shows the next page.
NAV_KEY = "98"

# Word separators: ASCII whitespace only, so U+00A0 and friends stay inside their words.
_WORD_RE = re.compile(r"([ \t\n\r\f\v]*)([^ \t\n\r\f\v]+)")

# The key that starts an option or navigation line: "1.", "0", "00", "98." (docs/services.md).
_KEY_RE = re.compile(r"[0-9]{1,3}\.?")

# A token is (separator before it, text, is_block). Blocks (menu header and options) are
# never split unless one cannot fit a page on its own; words are split only when longer
# than a page.
_Token = tuple[str, str, bool]


def _utf16_length(text: str) -> int:
    # Handsets send astral characters (emoji) as UTF-16 surrogate pairs, two code units each.
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def screen_length(text: str) -> int:
    """Size of `text` in its own alphabet: septets for GSM 7-bit, UTF-16 units for UCS-2."""
    return gsm7_length(text) if is_gsm7(text) else _utf16_length(text)


def limit_for(text: str, limit: int = GSM7_LIMIT) -> int:
    """The screen limit for `text`: 182 septets if all of it is GSM 7-bit, else 80 UCS-2.

    `limit` is a shorter screen (an operator profile's `ussd.screen_length`): it caps the
    GSM 7-bit size, and the UCS-2 one too when it is below 80.
    """
    return limit if is_gsm7(text) else min(UCS2_LIMIT, limit)


def fits(text: str, limit: int = GSM7_LIMIT) -> bool:
    """True when `text` fits one USSD screen of `limit` septets (docs/design.md)."""
    # Every character costs at least one septet or UTF-16 unit, so longer strings never fit;
    # this keeps the check cheap on long texts being paginated.
    if len(text) > limit:
        return False
    if is_gsm7(text):
        return gsm7_length(text) <= limit
    ucs2 = min(UCS2_LIMIT, limit)
    return len(text) <= ucs2 and _utf16_length(text) <= ucs2


def nav_line(more_label: str) -> str:
    """The line that ends every page but the last, e.g. ``"98. Далее"``."""
    return f"{NAV_KEY}. {more_label}"


def paginate_text(text: str, more_label: str, limit: int = GSM7_LIMIT) -> list[str]:
    """Split a message into screens at word boundaries, each but the last ending in a nav line."""
    if fits(text, limit):
        return [text]
    return _paginate(_words(text), "\n" + nav_line(more_label), "", limit)


def truncate(text: str, limit: int = GSM7_LIMIT) -> str:
    """The part of `text` that fits one screen: what a truncating network shows (the rest is
    never seen; ussd/profiles.py). Cut where the screen ends, as those networks do, not at a
    word."""
    if fits(text, limit):
        return text
    return text[: _longest_fitting_prefix("", text, "", limit)].rstrip()


def paginate_menu(
    header: str,
    options: Sequence[str],
    more_label: str,
    footer: str | None = None,
    limit: int = GSM7_LIMIT,
) -> list[str]:
    """Split a menu into screens without splitting an option; footer on every screen."""
    # The header is shown once, on the first page: repeating it would cost a large share of
    # an 80-character UCS-2 screen on every page, and the user has already read it.
    tokens: list[_Token] = [("\n", line, True) for line in (header, *options) if line]
    foot = "\n" + footer if footer else ""
    return _paginate(tokens, "\n" + nav_line(more_label) + foot, foot, limit)


def _words(text: str, keep_options: bool = True) -> list[_Token]:
    # Line breaks between words are kept (as many as there were, so paragraphs stay apart);
    # any other whitespace run becomes one space.
    tokens: list[_Token] = []
    for match in _WORD_RE.finditer(text):
        gap, word = match.groups()
        newlines = gap.count("\n")
        tokens.append(("\n" * newlines if newlines else " ", word, False))
    return _option_lines(tokens) if keep_options else tokens


def _option_lines(tokens: list[_Token]) -> list[_Token]:
    """Each line of a message that reads as an option (``0 Назад 00 Главное``) as one block."""
    # A service's own navigation line inside a message (menu.py appends "0 Назад 00 Главное
    # меню" to message screens) must not be cut between pages: half of "0 Назад" on one page
    # and the rest on the next reads as a broken key (docs/services.md navigation).
    out: list[_Token] = []
    i = 0
    while i < len(tokens):
        j = i + 1
        while j < len(tokens) and "\n" not in tokens[j][0]:
            j += 1
        line = tokens[i:j]
        if len(line) > 1 and _KEY_RE.fullmatch(line[0][1]):
            out.append((line[0][0], " ".join(word for _, word, _ in line), True))
        else:
            out.extend(line)
        i = j
    return out


def _join_short(stack: list[_Token], limit: int = GSM7_LIMIT) -> str | None:
    """The text left on `stack` (next token last), or None when it is too long for any page."""
    # Stopping early keeps paging linear in the text length: no page holds more characters
    # than GSM7_LIMIT, whatever the alphabet.
    parts: list[str] = []
    size = 0
    for sep, unit, _ in reversed(stack):
        if parts:
            parts.append(sep)
            size += len(sep)
        parts.append(unit)
        size += len(unit)
        if size > limit:
            return None
    return "".join(parts)


def _compose(content: str, tail: str) -> str:
    # Tails start with a line break; a page with no content starts with the tail's first line.
    return content + tail if content else tail[1:]


def _paginate(
    tokens: list[_Token], more_tail: str, last_tail: str, limit: int = GSM7_LIMIT
) -> list[str]:
    """Fill pages greedily; `more_tail` ends every page but the last, `last_tail` the last."""
    pending = tokens[::-1]  # a stack: the next token is at the end
    pages: list[str] = []
    while True:
        rest = _join_short(pending, limit)
        last = None if rest is None else _compose(rest, last_tail)
        if last is not None and fits(last, limit):
            pages.append(last)
            return pages
        if not pending:
            raise ValueError(f"the footer alone does not fit a screen: {last_tail[1:]!r}")
        page = ""
        while pending:
            sep, unit, is_block = pending[-1]
            candidate = page + sep + unit if page else unit
            if fits(candidate + more_tail, limit):
                page = candidate
                pending.pop()
                continue
            if fits(unit + more_tail, limit):
                break  # it fits a page of its own: start the next one with it
            pending.pop()
            if is_block:
                # An option that cannot fit even a page of its own: page it like a message,
                # from its own line, rather than ever dropping text.
                words = _words(unit, keep_options=False)
                if words:
                    words[0] = (sep, *words[0][1:])
                pending.extend(reversed(words))
                continue
            # A word longer than a page is cut anyway, so it may as well fill this one.
            start = page + sep if page else ""
            cut = _longest_fitting_prefix(start, unit, more_tail, limit)
            if cut == 0:
                if not page:
                    raise ValueError(f"navigation and footer leave no room: {more_tail[1:]!r}")
                pending.append((sep, unit, False))
                break
            page = start + unit[:cut]
            pending.append(("", unit[cut:], False))
            break
        if page:
            pages.append(page + more_tail)


def _longest_fitting_prefix(start: str, word: str, tail: str, limit: int = GSM7_LIMIT) -> int:
    """How many leading characters of `word` fit on a page holding `start` and `tail`."""
    # fits() is monotone in the prefix length (more characters never lower the size, and can
    # only switch GSM 7-bit to the smaller UCS-2 limit), so a binary search is exact.
    lo, hi = 0, len(word) - 1  # the whole word is known not to fit
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(start + word[:mid] + tail, limit):
            lo = mid
        else:
            hi = mid - 1
    return lo
