"""The admin API's fault rules are the cluster's (ussd/cluster_faults.py, docs/network.md).

Two `ussd-sim serve` workers as processes on real sockets (tests/cluster/test_workers.py), one
Redis, one PostgreSQL: a rule put in force through one worker is listed by the other, fires
there (once in all, for `times: 1`) and is removed through either.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.cluster.test_workers import (  # noqa: F401 (fixtures)
    Process,
    http,
    workers,
)

RU = "79161234567"
TOKEN = {"Authorization": "Bearer change-me"}  # config.yaml's http.admin_token
ERROR = "Ошибка сети. Запрос не выполнен, попробуйте позже."
ATTEMPTS = 500  # dials on b at most before it has heard of the rule (one takes a few ms)


async def _call(
    session: aiohttp.ClientSession,
    method: str,
    worker: Process,
    path: str,
    body: Any = None,
    status: int = 200,
) -> Any:
    url = f"{worker.url}/api/v1/{path}"
    async with session.request(method, url, json=body, headers=TOKEN) as r:
        data = await r.json() if r.status != 204 else None
        assert r.status == status, data
        return data


async def _dial(session: aiohttp.ClientSession, worker: Process) -> str:
    screen = await _call(session, "POST", worker, f"phones/{RU}/dial", {"text": "*111#"})
    return str(screen["text"])


async def test_a_rule_posted_on_one_worker_is_listed_fired_and_deleted_on_the_other(
    workers: list[Process],  # noqa: F811
    http: aiohttp.ClientSession,  # noqa: F811
) -> None:
    a, b = workers
    body = {"kind": "ussd_network_error", "times": 1, "match": {"msisdn": RU}}
    added = await _call(http, "POST", a, "faults", body, status=201)
    assert added["id"] == "f1"
    listed = await _call(http, "GET", b, "faults")
    assert [(r["id"], r["seen"], r["fired"]) for r in listed["rules"]] == [("f1", 0, 0)]
    # b puts it in force the moment it hears of it; a dial before that is no event of it.
    for _ in range(ATTEMPTS):
        if await _dial(http, b) == ERROR:
            break
    else:
        raise AssertionError(f"{b.name} never put the rule in force")
    assert await _dial(http, a) != ERROR  # times: 1, in all
    one, two = await _call(http, "GET", a, "faults"), await _call(http, "GET", b, "faults")
    assert one == two
    assert [(r["seen"], r["fired"]) for r in one["rules"]] == [(1, 1)]
    assert [i["msisdn"] for i in one["injected"]] == [RU]
    conflict = await _call(http, "POST", b, "faults", {**body, "id": "f1"}, status=409)
    assert conflict["error"]["code"] == "rule_exists"
    await _call(http, "DELETE", b, "faults/f1", status=204)
    assert (await _call(http, "GET", a, "faults"))["rules"] == []
    await _call(http, "DELETE", a, "faults/f1", status=404)
    replaced = await _call(http, "PUT", b, "faults", {"seed": 3, "rules": [body]})
    assert replaced["seed"] == 3 and [r["id"] for r in replaced["rules"]] == ["f1"]
    assert (await _call(http, "GET", a, "faults"))["rules"] == replaced["rules"]
    assert await _call(http, "DELETE", a, "faults") == {"removed": 1}
