"""One JSON decoder for every endpoint: hostile bodies are 400 `bad_json`, never a 500.

Each body below once answered 500 with a traceback in the log on some endpoint (a 60,000-deep
array overflowed the decoder's recursion; NaN, ±inf, 2^63 and lone surrogates reached SQLite or
the JSON encoder). They are sent to every route that reads a body, over a real socket.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from tests.http.conftest import RU
from ussd.http import HttpServer
from ussd.http.errors import MAX_DEPTH, MAX_INT, decode_json
from ussd.runtime import Gateway

ADMIN = "Bearer change-me"

HOSTILE = {
    # 60,000 deep is over MAX_BODY (a 413); 32,000 fits and still overflows a recursive decoder.
    "deep_array": b'{"text": ' + b"[" * 32_000 + b"]" * 32_000 + b"}",
    "deep_object": b'{"text": ' + b'{"":' * 10_000 + b"1" + b"}" * 10_000 + b"}",
    "just_too_deep": b'{"text": ' + b"[" * MAX_DEPTH + b"]" * MAX_DEPTH + b"}",
    "nan": b'{"text": NaN, "msisdn": NaN, "by": NaN, "balance": NaN}',
    "infinity": b'{"text": Infinity, "balance": Infinity}',
    "minus_infinity": b'{"text": -Infinity, "balance": -Infinity}',
    "float_overflow": b'{"text": 1e400, "balance": 1e400}',
    "int_2_63": b'{"text": 9223372036854775808, "package_minutes": 9223372036854775808}',
    "int_minus_2_63_minus_1": b'{"package_minutes": -9223372036854775809}',
    "huge_int": b'{"package_minutes": ' + b"9" * 5000 + b"}",
    "lone_surrogate": b'{"text": "\\ud800", "msisdn": "\\udfff", "password": "\\ud800"}',
    "lone_surrogate_key": b'{"\\ud800": "x"}',
    "utf16": '{"text": "*100#"}'.encode("utf-16"),
}

# Every route that reads a JSON body, with what it needs to get that far.
ROUTES: list[tuple[str, str, str | None]] = [
    ("POST", "/api/v1/phones", None),
    ("POST", f"/api/v1/phones/{RU}/dial", None),
    ("POST", f"/api/v1/phones/{RU}/reply", None),
    ("POST", f"/api/v1/phones/{RU}/release", None),
    ("POST", f"/api/v1/phones/{RU}/record", None),
    ("POST", "/api/v1/auth/login", None),
    ("POST", "/api/v1/auth/network", None),
    ("POST", "/api/v1/auth/sms-password", None),
    ("POST", "/api/v1/auth/social", None),
    ("POST", "/api/v1/account/password", "user"),
    ("POST", "/api/v1/account/numbers", "user"),
    ("POST", "/api/v1/account/social", "user"),
    ("POST", "/api/v1/subscribers", ADMIN),
    ("PATCH", f"/api/v1/subscribers/{RU}", ADMIN),
    ("POST", "/api/v1/clock/advance", ADMIN),
    ("POST", "/api/v1/office/links", ADMIN),
    ("POST", "/api/v1/sms", ADMIN),
]


@pytest.fixture
async def session(server: HttpServer) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=server.url) as s:
        yield s


async def _user_token(session: aiohttp.ClientSession) -> str:
    async with session.post("/api/v1/auth/network", json={"msisdn": RU}) as r:
        assert r.status == 200
        token: str = (await r.json())["token"]
        return token


@pytest.mark.parametrize(("method", "path", "auth"), ROUTES)
async def test_hostile_bodies_are_400_everywhere(
    session: aiohttp.ClientSession, started: Gateway, method: str, path: str, auth: str | None
) -> None:
    headers = {"Content-Type": "application/json"}
    if auth == "user":
        headers["Authorization"] = f"Bearer {await _user_token(session)}"
    elif auth is not None:
        headers["Authorization"] = auth
    before = started.clock.now()
    for name, body in HOSTILE.items():
        async with session.request(method, path, data=body, headers=headers) as r:
            assert r.status == 400, (name, await r.text())
            answer = await r.json()
            assert set(answer) == {"error"}, name
            assert answer["error"]["code"] == "bad_json", (name, answer)
            assert len(answer["error"]["message"]) < 200, name  # a prefix, never the body
    assert started.clock.now() == before  # nothing moved the clock on the way
    async with session.get("/healthz") as r:
        assert r.status == 200


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1}',
        '{"a": -9223372036854775807, "b": 9223372036854775807}',
        '{"a": 1.5e300, "b": -0.0, "c": "\\ud83d\\ude00 paired surrogates are fine"}',
        '{"a": "' + "[" * 100 + '"}',  # brackets inside a string are not nesting
        '{"a": ' + "[" * (MAX_DEPTH - 1) + "1" + "]" * (MAX_DEPTH - 1) + "}",
    ],
)
def test_decoder_accepts_ordinary_json(text: str) -> None:
    assert decode_json(text.encode()) == json.loads(text)


@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers(-MAX_INT, MAX_INT)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
        max_leaves=20,
    )
)
def test_decoder_round_trips_what_it_accepts(value: Any) -> None:
    # Any finite, in-range, well-formed value no deeper than MAX_DEPTH decodes to itself.
    assume(_depth(value) <= MAX_DEPTH)
    raw = json.dumps(value, ensure_ascii=False).encode()
    assert decode_json(raw) == value


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


@given(st.binary(max_size=200))
def test_decoder_never_raises_anything_but_value_error(raw: bytes) -> None:
    try:
        decode_json(raw)
    except ValueError:
        pass
