"""Dial-string parsing rate.

Run: .venv/bin/python -m bench.parse   (prints figures; asserts nothing)
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Sequence

from ussd import dialstring

DISTINCT = 100_000
REPEATED = 1_000_000

# What handsets and harnesses send most: the operator's self-care codes, balance, menus,
# call forwarding and CLIR, calls, and one typo.
COMMON = [
    "*111*17#", "*111*828*1#", "*111*828*2#", "*111*828#", "*100#", "*111#", "*102#", "*105#",
    "*106#", "*110#", "*115#", "*116#", "*111*1#", "*111*2#", "*111*3#", "*111*4#", "*111*5#",
    "*111*6#", "*111*7#", "*111*8#", "*111*9#", "*111*10#", "*111*11#", "*111*12#", "*111*130#",
    "*111*23#", "*111*59#", "*111*2137#", "*252#", "*419#", "#100#", "*#100#", "*#06#",
    "*#21#", "#21#", "##002#", "*21*+79161234567#", "**61*+79161234567**20#", "*43#", "#43#",
    "*#31#", "*31#+79161234567", "#31#+79161234567", "+79161234567", "89161234567", "112",
    "0890", "**04*1234*5678*5678#", "*111*0887#", "*123#345",
]  # fmt: skip


def distinct_strings(count: int, seed: int = 20261122) -> list[str]:
    """`count` different, realistic dial strings (USSD with fields, SS with numbers, calls)."""
    rng = random.Random(seed)

    def pick(*options: str) -> str:
        return rng.choice(options)

    def msisdn() -> str:
        return pick("+79", "89", "79") + "".join(rng.choices("0123456789", k=9))

    def digits(low: int, high: int) -> str:
        return str(rng.randint(low, high))

    makers: list[tuple[float, Callable[[], str]]] = [
        (0.30, lambda: f"*111*{digits(1, 9999)}#"),
        (0.15, lambda: f"*111*{digits(1, 999)}*{digits(0, 9)}#"),
        (0.10, lambda: f"*{digits(100, 999)}*{digits(1, 99999)}#"),
        (0.05, lambda: f"{pick('*', '#', '*#')}{digits(100, 9999)}#"),
        (0.05, lambda: f"*{digits(100, 999)}*{pick('пароль', 'Secret', 'abc')}{digits(0, 999)}#"),
        (0.08, lambda: f"{pick('*', '**')}{pick('21', '61', '62', '67')}*{msisdn()}#"),
        (0.04, lambda: f"**61*{msisdn()}**{pick('5', '10', '20', '30')}#"),
        (0.03, lambda: f"**03*330*{digits(1000, 9999)}*{digits(1000, 9999)}*{digits(1000, 9999)}#"),
        (0.05, lambda: f"{pick('*31#', '#31#')}{msisdn()}"),
        (0.14, msisdn),
        (0.01, lambda: f"*{digits(100, 999)}#{digits(1, 99999)}"),  # an error: USSD then number
    ]  # fmt: skip
    weights = [w for w, _ in makers]
    out: set[str] = set()
    while len(out) < count:
        _, make = rng.choices(makers, weights)[0]
        out.add(make())
    result = sorted(out)
    rng.shuffle(result)
    return result


def rate(texts: Sequence[str], parse: Callable[[str], object]) -> float:
    """Strings per second for parse over texts (errors count: they are parsed too)."""
    error = dialstring.DialStringError
    start = time.perf_counter()
    for text in texts:
        try:
            parse(text)
        except error:
            pass
    return len(texts) / (time.perf_counter() - start)


def main() -> None:
    """Print the figures, one line each."""
    cores = os.cpu_count()
    texts = distinct_strings(DISTINCT)
    dialstring.cache_clear()
    distinct = rate(texts, dialstring.parse)
    print(
        f"parse distinct: {distinct:,.0f} strings/s ({len(texts):,} strings, uncached, "
        f"1 core of {cores}; target >= 25,000)"
    )

    grammar_only = texts[: DISTINCT // 5]
    slow = rate(grammar_only, lambda t: dialstring._parse_text(t, fast=False))
    print(
        f"parse distinct, grammar only (no pre-check): {slow:,.0f} strings/s "
        f"({len(grammar_only):,} strings, 1 core of {cores}; for information)"
    )

    rng = random.Random(7)
    mix = rng.choices(COMMON, k=REPEATED)
    dialstring.cache_clear()
    repeated = rate(mix, dialstring.parse)
    print(
        f"parse repeated: {repeated:,.0f} strings/s ({len(mix):,} parses of {len(COMMON)} "
        f"common strings, 1 core of {cores}; target >= 1,000,000)"
    )


if __name__ == "__main__":
    main()
