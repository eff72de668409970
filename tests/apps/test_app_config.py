"""The `apps:` section, `app:NAME` routes and direct-dial coverage (docs/apps.md)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import make_config
from ussd.apps.service import direct_dial_inputs
from ussd.config import ConfigError
from ussd.dialstring import parse
from ussd.routing import Router

URL = "http://127.0.0.1:5000/ussd"


def test_an_app_with_every_key() -> None:
    config = make_config(
        apps={
            "shop": {
                "url": URL,
                "dialect": "hubtel",
                "timeout": "5s",
                "connect_timeout": "250ms",
                "headers": {"X-Api-Key": "k", "X-Retries": 3},
                "end_url": "https://example.org/end",
                "network_code": 62002,
            }
        },
        ussd={"routes": {"*384#": "app:shop"}},
    )
    app = config.apps["shop"]
    assert (app.url, app.dialect, app.timeout, app.connect_timeout) == (URL, "hubtel", 5.0, 0.25)
    assert app.headers == {"X-Api-Key": "k", "X-Retries": "3"}
    assert (app.end_url, app.network_code) == ("https://example.org/end", "62002")


def test_defaults_are_the_operator_profiles() -> None:
    app = make_config(apps={"shop": {"url": URL}}).apps["shop"]
    assert (app.dialect, app.timeout, app.connect_timeout) == ("africastalking", 15.0, 10.0)
    assert (app.headers, app.end_url, app.network_code) == ({}, None, "25001")
    operator = {"profile": "africastalking", "dialect": "json"}
    app = make_config(operator=operator, apps={"shop": {"url": URL}}).apps["shop"]
    assert (app.dialect, app.timeout, app.network_code) == ("json", 15.0, "63902")


# Each bad value is refused at load with its key path.
BAD: list[tuple[Any, str]] = [
    ([URL], "apps: expected a mapping"),
    ({"shop": None}, "apps.shop.url: expected an http:// or https:// URL, got None"),
    ({"shop": {"url": "ftp://x/"}}, "apps.shop.url: expected an http:// or https:// URL"),
    ({"shop": {"url": "http:///ussd"}}, "apps.shop.url: expected an http:// or https:// URL"),
    ({"shop": {"url": "http://x:99999/"}}, "apps.shop.url: expected an http:// or https:// URL"),
    ({"shop": {"url": "http://x/a b"}}, "apps.shop.url: a URL holds no whitespace"),
    ({"shop": {"url": "http://x/" + "a" * 3000}}, "apps.shop.url: expected an http://"),
    ({"shop": {"url": URL, "dialect": "ussd"}}, "apps.shop.dialect: expected one of"),
    ({"shop": {"url": URL, "timeout": "0s"}}, "apps.shop.timeout: expected a duration greater"),
    ({"shop": {"url": URL, "timeout": "1h"}}, "apps.shop.timeout:"),
    ({"shop": {"url": URL, "connect_timeout": "soon"}}, "apps.shop.connect_timeout:"),
    ({"shop": {"url": URL, "headers": ["X"]}}, "apps.shop.headers: expected a mapping"),
    ({"shop": {"url": URL, "headers": {"Bad Name": "v"}}}, "apps.shop.headers.Bad Name: not a"),
    ({"shop": {"url": URL, "headers": {"X": "a\r\nB: c"}}}, "apps.shop.headers.X: expected a one"),
    ({"shop": {"url": URL, "headers": {"X": None}}}, "apps.shop.headers.X: expected a one-line"),
    ({"shop": {"url": URL, "end_url": "mailto:a@b"}}, "apps.shop.end_url: expected an http://"),
    ({"shop": {"url": URL, "network_code": "250"}}, "apps.shop.network_code: expected MCC+MNC"),
    ({"shop": {"url": URL, "retries": 3}}, "apps.shop.retries: unknown key"),
    ({"my shop": {"url": URL}}, "apps.my shop: an app name is letters"),
    ({f"a{i}": {"url": URL} for i in range(101)}, "apps: at most 100 apps"),
]


@pytest.mark.parametrize(("apps", "message"), BAD)
def test_bad_apps_name_their_key(apps: Any, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        make_config(apps=apps)
    assert str(caught.value).startswith(message)


def test_a_route_to_an_unknown_app_fails_at_load() -> None:
    with pytest.raises(ConfigError) as caught:
        make_config(apps={"shop": {"url": URL}}, ussd={"routes": {"*384#": "app:shoq"}})
    assert str(caught.value) == "ussd.routes.\"*384#\": unknown app 'shoq' (apps: shop)"


def test_an_app_route_is_a_code_not_a_pattern() -> None:
    with pytest.raises(ConfigError) as caught:
        make_config(apps={"shop": {"url": URL}}, ussd={"routes": {"*384*{n}#": "app:shop"}})
    assert "without a {placeholder}" in str(caught.value)


ROUTES = {
    "*384#": "app:shop",
    "*384*9#": "balance",  # a literal route wins over the app's direct-dial strings
    "*385#": "app:a",
    "*385*5#": "app:b",  # the longer code wins
    "*100*{n}#": "balance",
}

# (dialled, service, args)
MATCHES: list[tuple[str, str | None, dict[str, str]]] = [
    ("*384#", "app:shop", {"code": "*384#", "dial": "*384#"}),
    ("*384*1#", "app:shop", {"code": "*384#", "dial": "*384*1#"}),
    ("*384*1*2#", "app:shop", {"code": "*384#", "dial": "*384*1*2#"}),
    ("*384*9#", "balance", {}),
    ("*384*9*1#", "app:shop", {"code": "*384#", "dial": "*384*9*1#"}),
    ("*3841#", None, {}),
    ("*385*6#", "app:a", {"code": "*385#", "dial": "*385*6#"}),
    ("*385*5#", "app:b", {"code": "*385*5#", "dial": "*385*5#"}),
    ("*385*5*1#", "app:b", {"code": "*385*5#", "dial": "*385*5*1#"}),
    ("*100*3#", "balance", {"n": "3"}),
]


@pytest.mark.parametrize(("dialled", "service", "args"), MATCHES)
def test_app_routes_cover_direct_dial_strings(
    dialled: str, service: str | None, args: dict[str, str]
) -> None:
    match = Router(ROUTES).match(parse(dialled))
    if service is None:
        assert match is None
    else:
        assert match is not None
        assert (match.route.service, dict(match.args)) == (service, args)


@pytest.mark.parametrize(
    ("dial", "code", "inputs"),
    [
        ("*384#", "*384#", ()),
        ("*384*1#", "*384#", ("1",)),
        ("*384*1*2#", "*384#", ("1", "2")),
        ("*384**2#", "*384#", ("", "2")),
        ("*384*5*1#", "*384*5#", ("1",)),
        ("*385#", "*384#", ()),
    ],
)
def test_direct_dial_inputs(dial: str, code: str, inputs: tuple[str, ...]) -> None:
    assert direct_dial_inputs(dial, code) == inputs


@given(
    st.from_regex(r"\*1[0-9]{2}", fullmatch=True),  # USSD codes (TS 22.030 Annex B)
    st.lists(st.from_regex(r"[0-9]{1,5}", fullmatch=True), min_size=1, max_size=6),
)
def test_direct_dial_inputs_round_trip(code: str, inputs: list[str]) -> None:
    dial = code + "*" + "*".join(inputs) + "#"
    assert direct_dial_inputs(dial, code + "#") == tuple(inputs)
    match = Router({code + "#": "app:shop"}).match(parse(dial))
    assert match is not None and match.args["dial"] == dial
