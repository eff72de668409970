"""`GET /api/v1/dialogs`: dialog records over a real socket, JSON and CSV, filters and refusals."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from tests.http.conftest import EN, RU, Client
from ussd.records import CSV_COLUMNS
from ussd.runtime import Gateway

ADMIN = {"Authorization": "Bearer change-me"}
DIALOGS = "/api/v1/dialogs"


async def _get(http: Client, query: str = "", **headers: str) -> tuple[int, str, Any]:
    async with http.session.get(DIALOGS + query, headers={**ADMIN, **headers}) as r:
        body: Any = await r.json() if r.content_type == "application/json" else await r.text()
        return r.status, r.content_type, body


async def _some_dialogs(http: Client, gw: Gateway) -> None:
    await http.dial(RU, "*100#")  # completed
    await http.dial(RU, "*999#")  # no route: unknown_code
    await http.dial(EN, "*111#")  # a menu, then released
    await http.post(f"/api/v1/phones/{EN}/release")
    await http.dial(RU, "*111#")  # a menu, then the reply timeout
    gw.advance(gw.config.ussd.reply_timeout + 1)


async def test_every_dialog_over_the_phones_api_leaves_a_record(
    http: Client, started: Gateway
) -> None:
    await _some_dialogs(http, started)
    status, content_type, body = await _get(http)
    assert status == 200 and content_type == "application/json"
    rows = body["dialogs"]
    assert [(r["msisdn"], r["code"], r["cause"]) for r in rows] == [
        (RU, "111", "idle_timeout"),
        (EN, "111", "user_release"),
        (RU, "999", "unknown_code"),
        (RU, "100", "completed"),
    ]  # newest first
    timeout, released, unknown, balance = rows
    assert all(r["via"] == "api" for r in rows)  # no `via` in the dial body: the API itself
    assert balance["route"] == "balance" and unknown["route"] == ""
    assert timeout["route"] == "menu:main" and timeout["steps"] == 1
    assert timeout["duration"] == started.config.ussd.reply_timeout  # ended at its deadline
    assert timeout["started"].endswith("Z") and timeout["ended"] > timeout["started"]
    assert [r["id"] for r in rows] == sorted((r["id"] for r in rows), reverse=True)
    assert set(released) == set(CSV_COLUMNS)


async def test_the_web_phone_says_it_dialled(http: Client, started: Gateway) -> None:
    assert (await http.post(f"/api/v1/phones/{RU}/dial", {"text": "*100#", "via": "web"}))[0] == 200
    status, _, body = await _get(http)
    assert status == 200 and body["dialogs"][0]["via"] == "web"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (f"?msisdn={EN}", [(EN, "111", "user_release")]),
        ("?msisdn=%2B79161112233", [(EN, "111", "user_release")]),  # any usual spelling
        ("?code=*100%23", [(RU, "100", "completed")]),
        ("?code=999", [(RU, "999", "unknown_code")]),
        (
            "?cause=idle_timeout,unknown_code",
            [(RU, "111", "idle_timeout"), (RU, "999", "unknown_code")],
        ),
        ("?cause=app_timeout", []),
        ("?via=api&limit=1", [(RU, "111", "idle_timeout")]),
        ("?via=smpp", []),
        ("?since=10s", [(RU, "111", "idle_timeout")]),  # only the timeout ended after the jump
        (
            "?until=10s",
            [(EN, "111", "user_release"), (RU, "999", "unknown_code"), (RU, "100", "completed")],
        ),
    ],
)
async def test_filters(
    http: Client, started: Gateway, query: str, expected: list[tuple[str, str, str]]
) -> None:
    await _some_dialogs(http, started)
    status, _, body = await _get(http, query)
    assert status == 200, body
    assert [(r["msisdn"], r["code"], r["cause"]) for r in body["dialogs"]] == expected


async def test_after_and_before_page_through_by_id(http: Client, started: Gateway) -> None:
    await _some_dialogs(http, started)
    ids = [r["id"] for r in (await _get(http))[2]["dialogs"]]
    assert [r["id"] for r in (await _get(http, f"?after={ids[2]}"))[2]["dialogs"]] == ids[:2]
    assert [r["id"] for r in (await _get(http, f"?before={ids[1]}&limit=2"))[2]["dialogs"]] == (
        ids[2:4]
    )
    assert (await _get(http, f"?after={ids[0]}"))[2]["dialogs"] == []


@pytest.mark.parametrize("how", ["?format=csv", "accept"])
async def test_csv(http: Client, started: Gateway, how: str) -> None:
    await _some_dialogs(http, started)
    if how == "accept":
        status, content_type, text = await _get(http, "", Accept="text/csv")
    else:
        status, content_type, text = await _get(http, how)
    assert status == 200 and content_type == "text/csv"
    rows = list(csv.reader(io.StringIO(text)))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [(r[2], r[3], r[10]) for r in rows[1:]] == [
        (RU, "111", "idle_timeout"),
        (EN, "111", "user_release"),
        (RU, "999", "unknown_code"),
        (RU, "100", "completed"),
    ]
    json_rows = (await _get(http, "?format=json", Accept="text/csv"))[2]["dialogs"]
    assert [str(r["id"]) for r in json_rows] == [r[0] for r in rows[1:]]  # format= wins
    # A client that takes JSON as well gets JSON, as one that says nothing does.
    status, content_type, _ = await _get(http, "", Accept="application/json, text/csv;q=0.5")
    assert (status, content_type) == (200, "application/json")


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ("?cause=bogus", "cause"),
        ("?cause=", "cause"),
        ("?via=carrier-pigeon", "via"),
        ("?msisdn=12", "msisdn"),
        ("?code=abc", "code"),
        ("?since=yesterday", "since"),
        ("?until=2026-13-45", "until"),
        ("?limit=0", "limit"),
        ("?limit=10001", "limit"),
        ("?limit=-1", "limit"),
        ("?limit=1e3", "limit"),
        ("?after=x", "after"),
        ("?before=99999999999999999999999", "before"),
        ("?format=xml", "format"),
        ("?casue=completed", "casue"),  # a typo must not quietly return everything
        ("?limit=1&limit=2", "limit"),
        ("?msisdn=" + "7" * 300, "msisdn"),
    ],
)
async def test_bad_parameters_are_400(
    http: Client, started: Gateway, query: str, names: str
) -> None:
    status, _, body = await _get(http, query)
    assert status == 400, body
    assert body["error"]["code"] == "bad_parameter"
    assert names in body["error"]["message"]
    # The gateway goes on answering.
    assert (await _get(http))[0] == 200


async def test_the_admin_token_is_required(http: Client, started: Gateway) -> None:
    async with http.session.get(DIALOGS) as r:
        assert r.status == 401
    async with http.session.get(DIALOGS, headers={"Authorization": "Bearer nope"}) as r:
        assert r.status == 401
        assert (await r.json())["error"]["code"] == "invalid_token"
