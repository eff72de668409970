"""Screen sizing and pagination (docs/design.md)."""

from __future__ import annotations

import re

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from ussd import screens as screens_mod
from ussd.screens import (
    GSM7_LIMIT,
    UCS2_LIMIT,
    fits,
    limit_for,
    nav_line,
    paginate_menu,
    paginate_text,
    screen_length,
)

MORE = "Далее"
NAV = "\n98. Далее"  # 10 UCS-2 characters
BACK = "0. Назад"


def words(text: str) -> list[str]:
    """Words as the paginator sees them: split on ASCII whitespace only."""
    return re.findall(r"[^ \t\n\r\f\v]+", text)


def squeeze(text: str) -> str:
    return "".join(words(text))


def contents(pages: list[str], tail: str) -> list[str]:
    """Page texts without the navigation line (and whatever `tail` follows it)."""
    for page in pages[:-1]:
        assert page.endswith(tail), page
    return [page[: -len(tail)] for page in pages[:-1]] + [pages[-1]]


# --- sizing -------------------------------------------------------------------------------


def test_limits() -> None:
    assert GSM7_LIMIT == 182
    assert UCS2_LIMIT == 80


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", True),
        ("a" * 182, True),
        ("a" * 183, False),
        ("€" * 91, True),
        ("€" * 92, False),
        ("a" * 180 + "€", True),
        ("a" * 181 + "€", False),
        ("Я" * 80, True),
        ("Я" * 81, False),
        ("a" * 79 + "Я", True),
        ("a" * 80 + "Я", False),  # one Cyrillic letter makes the whole screen UCS-2
        ("€" * 79 + "Я", True),  # and in UCS-2 the euro sign is one character
        ("😀" * 40, True),  # astral characters are two UTF-16 units
        ("😀" * 40 + "a", False),
        ("`" * 80, True),  # backtick is outside GSM 7-bit: UCS-2
        ("`" * 81, False),
    ],
)
def test_fits(text: str, expected: bool) -> None:
    assert fits(text) is expected
    assert fits(text) == (screen_length(text) <= limit_for(text))


@pytest.mark.parametrize(
    ("text", "limit", "length"),
    [
        ("", 182, 0),
        ("Balance", 182, 7),
        ("{€}", 182, 6),
        ("Баланс", 80, 6),
        ("Balance €5 и всё", 80, 16),
        ("a😀", 80, 3),
    ],
)
def test_limit_and_length(text: str, limit: int, length: int) -> None:
    assert limit_for(text) == limit
    assert screen_length(text) == length


def test_nav_line_format() -> None:
    assert nav_line("Далее") == "98. Далее"
    assert nav_line("more") == "98. more"


# --- message pagination -------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["", "Ваш баланс 120 руб.", "  odd   spacing\n\n kept  ", "a" * 182, "€" * 91, "Я" * 80],
)
def test_short_text_is_one_page_unchanged(text: str) -> None:
    assert paginate_text(text, MORE) == [text]


def test_word_boundary_exactly_at_the_limit() -> None:
    # 70 characters of content + the 10-character nav line = 80: a full UCS-2 page.
    first, second, third = "Я" * 34, "Ж" * 35, "Ш" * 20
    assert paginate_text(f"{first} {second} {third}", MORE) == [
        f"{first} {second}{NAV}",
        third,
    ]
    # One character more and the second word moves to the next page, whole.
    second += "Ж"
    assert paginate_text(f"{first} {second} {third}", MORE) == [
        first + NAV,
        f"{second} {third}",
    ]


def test_cyrillic_81_paginates() -> None:
    text = " ".join(["Баланс"] * 11) + "!!!!!"  # 81 characters
    pages = paginate_text(text, MORE)
    assert len(pages) == 2
    assert pages[0] == " ".join(["Баланс"] * 10) + NAV
    assert pages[1] == "Баланс!!!!!"


def test_gsm_text_with_gsm_label_uses_182_septets() -> None:
    text = " ".join(f"w{i:03d}" for i in range(60))  # 60 words of 4, 299 characters
    pages = paginate_text(text, "more")
    assert all(fits(p) and limit_for(p) == GSM7_LIMIT for p in pages)
    # 36 words take 36 * 5 - 1 = 179 septets; with "\n98. more" (9) only 34 fit (169 + 9).
    assert pages[0] == " ".join(f"w{i:03d}" for i in range(34)) + "\n98. more"
    assert pages[1] == " ".join(f"w{i:03d}" for i in range(34, 60))


def test_gsm_text_with_cyrillic_label_pages_in_ucs2_but_last_in_gsm() -> None:
    text = " ".join(f"w{i:03d}" for i in range(60))
    pages = paginate_text(text, MORE)
    assert all(limit_for(p) == UCS2_LIMIT for p in pages[:-1])
    assert limit_for(pages[-1]) == GSM7_LIMIT
    assert pages[0] == " ".join(f"w{i:03d}" for i in range(14)) + NAV  # 69 + 10
    assert words(" ".join(contents(pages, NAV))) == words(text)


def test_extension_characters_count_two_when_paging() -> None:
    text = "€" * 100  # 200 septets, one word
    pages = paginate_text(text, "more")
    assert pages == ["€" * 86 + "\n98. more", "€" * 14]  # 172 + 9 = 181: a 2-septet € won't fit


def test_long_word_is_hard_split() -> None:
    text = "Код: " + "x" * 200
    pages = paginate_text(text, MORE)
    assert all(fits(p) for p in pages)
    assert squeeze("".join(contents(pages, NAV))) == squeeze(text)
    assert pages[0].startswith("Код: xxx")  # the long word fills the rest of the page


def test_line_breaks_are_kept() -> None:
    lines = [f"Строка номер {i}." for i in range(12)]
    text = "\n".join(lines)
    pages = paginate_text(text, MORE)
    assert len(pages) > 1
    # Each page is a verbatim run of the text, line breaks included; pages meet at one
    # whitespace character, which the page break replaces.
    at = 0
    for body in contents(pages, NAV):
        assert text.startswith(body, at)
        at += len(body)
        assert text[at : at + 1] in {"", " ", "\n"}
        at += 1
    assert at == len(text) + 1
    assert pages[0] == "\n".join(lines[:4]) + "\nСтрока" + NAV  # 4 * 16 + 6 = 70


def test_paragraph_breaks_are_kept_inside_a_page() -> None:
    text = "Первый абзац.\n\nВторой абзац.  " + "слово " * 20
    pages = paginate_text(text, MORE)
    assert pages[0].startswith("Первый абзац.\n\nВторой абзац. слово")


def test_label_too_long_for_a_page() -> None:
    with pytest.raises(ValueError):
        paginate_text("Я" * 100, "Я" * 80)


# --- menu pagination ----------------------------------------------------------------------


def option(n: int, size: int) -> str:
    """A formatted option line of exactly `size` characters, Cyrillic."""
    head = f"{n}. "
    return head + "Я" * (size - len(head))


def test_short_menu_is_one_page() -> None:
    options = ["1. Баланс", "2. Пароль", "3. Управление номерами"]
    assert paginate_menu("Меню:", options, MORE, BACK) == [
        "Меню:\n1. Баланс\n2. Пароль\n3. Управление номерами\n0. Назад"
    ]
    assert paginate_menu("Menu:", ["1. Balance"], "more") == ["Menu:\n1. Balance"]


def test_menu_splits_exactly_at_the_boundary() -> None:
    # Tail on a non-last page: "\n98. Далее\n0. Назад" = 10 + 9, leaving 61 for content.
    header = "Я" * 4
    options = [option(n, 18) for n in range(1, 7)]  # 4 + 3 * (1 + 18) = 61
    pages = paginate_menu(header, options, MORE, BACK)
    assert pages[0] == "\n".join([header, *options[:3], "98. Далее", BACK])
    assert screen_length(pages[0]) == UCS2_LIMIT
    assert pages[1] == "\n".join([*options[3:], BACK])

    # One more header character and the third option moves on, whole.
    pages = paginate_menu(header + "Я", options, MORE, BACK)
    assert pages[0] == "\n".join([header + "Я", *options[:2], "98. Далее", BACK])
    assert pages[1] == "\n".join([*options[2:5], "98. Далее", BACK])
    assert pages[2] == "\n".join([options[5], BACK])


def test_header_only_on_the_first_page_footer_on_every_page() -> None:
    options = [f"{n}. Пункт меню {n}" for n in range(1, 16)]
    pages = paginate_menu("Главное меню", options, MORE, "00. Главное меню")
    assert len(pages) > 2
    assert pages[0].startswith("Главное меню\n1. ")
    assert all(not p.startswith("Главное меню") for p in pages[1:])
    assert all(p.endswith("\n00. Главное меню") for p in pages)
    assert all(p.endswith("\n98. Далее\n00. Главное меню") for p in pages[:-1])
    assert "98. " not in pages[-1]


def test_menu_without_footer() -> None:
    options = [option(n, 30) for n in range(1, 6)]
    pages = paginate_menu("", options, MORE)
    assert pages == [
        "\n".join([options[0], options[1], "98. Далее"]),
        "\n".join([options[2], options[3], "98. Далее"]),
        options[4],
    ]


def test_oversized_option_falls_back_to_text_paging() -> None:
    long_option = "2. " + " ".join(["подключить"] * 20)
    options = ["1. Баланс", long_option, "3. Пароль"]
    pages = paginate_menu("Меню", options, MORE, BACK)
    assert all(fits(p) for p in pages)
    body = "\n".join(contents(pages, "\n98. Далее\n0. Назад"))
    assert squeeze(body) == squeeze("Меню\n" + "\n".join(options) + "\n" + BACK)
    assert "\n1. Баланс\n2. подключить" in pages[0]


def test_empty_menu() -> None:
    assert paginate_menu("", [], MORE) == [""]
    assert paginate_menu("Пусто", [], MORE, BACK) == ["Пусто\n0. Назад"]


def test_footer_too_long_for_a_page() -> None:
    with pytest.raises(ValueError):
        paginate_menu("Меню", ["1. a", "2. b"], MORE, "Я" * 81)


# --- invariants ---------------------------------------------------------------------------

word = st.text(alphabet="abcXYZ019.,€{}éЯжЁ😀\u00a0", min_size=1, max_size=14)
gap = st.sampled_from([" ", " ", " ", "\n", "  ", "\n\n", "\t", "\r\n"])
labels = st.sampled_from(["Далее", "more", "next €", "Ещё 😀"])


@st.composite
def messages(draw: st.DrawFn) -> str:
    parts = draw(st.lists(st.tuples(word, gap), max_size=120))
    return "".join(w + g for w, g in parts)


@given(messages(), labels)
@example(  # a line that reads as an option ("0 …") moves to the next page whole
    "0 000 0000😀 0000000000000😀 0000000000😀😀😀😀 0\n0 0000😀 0000😀 0000000000000😀 ", "Далее"
)
def test_text_pages_fit_and_lose_nothing(text: str, label: str) -> None:
    pages = paginate_text(text, label)
    assert pages
    assert all(fits(p) for p in pages)
    if fits(text):
        assert pages == [text]
        return
    body = contents(pages, "\n" + nav_line(label))
    assert all(words(p) for p in body)  # no empty pages
    # Words up to 14 characters always fit a page: none is split, none lost or repeated.
    assert words(" ".join(body)) == words(text)
    # Greedy: the next page's first token, with the separator it had in the text (line breaks
    # kept, other runs as one space), would not have fit on the page before it. A token is a
    # word, or a whole line that reads as an option ("0 Назад"), which is never cut.
    tokens = screens_mod._words(text)
    seen = 0
    for current in body[:-1]:
        count = len(words(current))
        while count > 0:
            count -= len(words(tokens[seen][1]))
            seen += 1
        sep, first, _ = tokens[seen]
        assert not fits(f"{current}{sep}{first}\n{nav_line(label)}")


@given(st.text(max_size=600), labels)
def test_any_text_pages_fit_and_keep_every_character(text: str, label: str) -> None:
    pages = paginate_text(text, label)
    assert all(fits(p) for p in pages)
    body = contents(pages, "\n" + nav_line(label)) if len(pages) > 1 else pages
    assert squeeze("".join(body)) == squeeze(text)


option_text = st.text(alphabet="abcЯжЁ€ 😀", min_size=1, max_size=40).map(str.strip)


@given(
    st.sampled_from(["", "Меню:", "Main menu", "Выберите услугу из списка ниже:"]),
    st.lists(option_text, max_size=25),
    labels,
    st.sampled_from([None, "0. Назад", "00. Главное меню", "0. Back"]),
)
def test_menu_pages_fit_and_keep_options_whole(
    header: str, texts: list[str], label: str, footer: str | None
) -> None:
    options = [f"{n}. {t}" for n, t in enumerate(texts, 1)]
    pages = paginate_menu(header, options, label, footer)
    assert pages
    assert all(fits(p) for p in pages)
    foot = "\n" + footer if footer else ""
    body = contents(pages, "\n" + nav_line(label) + foot)
    if footer:
        assert body[-1].endswith(foot) or body[-1] == footer
        body[-1] = body[-1].removesuffix(foot) if body[-1] != footer else ""
    lines = [line for page in body if page for line in page.split("\n")]
    assert lines == [line for line in (header, *options) if line]
    if header and len(pages) > 1:
        assert pages[0].startswith(header + "\n")
        assert all(not p.startswith(header) for p in pages[1:])


@given(st.lists(st.text(alphabet="abЯ €\n", max_size=300), min_size=1, max_size=6), labels)
def test_menu_never_loses_text_even_with_huge_options(options: list[str], label: str) -> None:
    assume(any(options))
    pages = paginate_menu("H", options, label, "0. Back")
    assert all(fits(p) for p in pages)
    body = contents(pages, "\n" + nav_line(label) + "\n0. Back")
    assert squeeze("".join(body)) == squeeze("H" + "".join(options) + "0. Back")


# --- navigation lines inside messages ------------------------------------------------------

FOOTER = "0 Назад 00 Главное меню"  # what menu.py appends to message screens


def test_message_footer_is_never_split_across_pages() -> None:
    # 57 characters of text put the old page boundary between "00" and "Главное меню".
    text = "слово " * 9 + "xxx\n" + FOOTER
    pages = paginate_text(text, MORE)
    assert len(pages) == 2
    assert pages[0] == "слово " * 8 + "слово xxx" + NAV
    assert pages[1] == FOOTER


@given(
    st.lists(st.text(alphabet="abЯz€", min_size=1, max_size=9), min_size=1, max_size=60),
    st.sampled_from([FOOTER, "98. Далее", "0. Back 00. Home", "1. Баланс"]),
)
def test_option_lines_stay_whole_on_one_page(words: list[str], line: str) -> None:
    pages = paginate_text(" ".join(words) + "\n" + line, MORE)
    assert all(fits(page) for page in pages)
    assert any(line in page.split("\n") for page in pages), pages
