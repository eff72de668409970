"""Routing: the most specific pattern wins whatever the order; bad patterns at load."""

from __future__ import annotations

import pytest

from ussd.config import ConfigError
from ussd.dialstring import parse
from ussd.routing import Router

SERVICES = {"a", "b", "c", "d"}


def route(router: Router, text: str) -> tuple[str, dict[str, str]] | None:
    found = router.match(parse(text))
    return (found.route.service, dict(found.args)) if found else None


@pytest.mark.parametrize(
    "routes",
    [
        {"*102*{n}#": "a", "*102*5#": "b", "*102#": "c"},
        {"*102#": "c", "*102*5#": "b", "*102*{n}#": "a"},
    ],
)
def test_most_specific_wins_whatever_the_order(routes: dict[str, str]) -> None:
    router = Router(routes, SERVICES)
    assert route(router, "*102*5#") == ("b", {})
    assert route(router, "*102*77#") == ("a", {"n": "77"})
    assert route(router, "*102#") == ("c", {})
    assert route(router, "*102*1*2#") is None  # a placeholder takes one field only
    assert route(router, "*103#") is None


def test_longer_literal_prefix_wins() -> None:
    router = Router({"*1*{x}#": "a", "*1*2*{y}#": "b"}, SERVICES)
    assert route(router, "*1*2*3#") == ("b", {"y": "3"})
    assert route(router, "*1*9#") == ("a", {"x": "9"})


def test_placeholder_takes_text_and_plus() -> None:
    router = Router({"*111*{number}#": "a"}, SERVICES)
    assert route(router, "*111*+79161234567#") == ("a", {"number": "+79161234567"})


@pytest.mark.parametrize(
    ("routes", "key", "message"),
    [
        ({"*102*{a}#": "a", "*102*{b}#": "b"}, 'ussd.routes."*102*{b}#"', "unreachable"),
        ({"*21#": "a"}, 'ussd.routes."*21#"', "ss string"),
        ({"*#06#": "a"}, 'ussd.routes."*#06#"', "local string"),
        ({"89161234567": "a"}, 'ussd.routes."89161234567"', "call string"),
        ({"*111*17#extra": "a"}, 'ussd.routes."*111*17#extra"', "not a dial string"),
        ({"*111#": "nope"}, 'ussd.routes."*111#"', "unknown service"),
        ({"*1*{a}*2#": "a"}, 'ussd.routes."*1*{a}*2#"', "last field"),
        ({"*1*{a}*{b}#": "a"}, 'ussd.routes."*1*{a}*{b}#"', "one {name}"),
    ],
)
def test_bad_routes_fail_at_load(routes: dict[str, str], key: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        Router(routes, SERVICES)
    assert info.value.key == key
    assert message in info.value.message
