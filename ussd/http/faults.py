"""The fault rules over HTTP (docs/network.md "Faults"), behind the admin token.

- `GET /api/v1/faults`: the seed, the rules in force with how often each matched and fired,
  and the last injections.
- `POST /api/v1/faults {rule}`: put one more rule in force → 201 with the rule (its id filled in).
- `PUT /api/v1/faults {"seed", "rules"}`: replace the whole set, counts and draws from the
  start: what a test harness does before a run it wants to repeat exactly.
- `DELETE /api/v1/faults`: remove every rule → `{"removed": n}`; `DELETE /api/v1/faults/{id}`:
  one rule → 204, 404 `unknown_rule`.

Errors: 400 `bad_field` naming the field (`match.probability: …`), 409 `rule_exists` for an id
in force, 409 `too_many_rules` past ussd.faults.MAX_RULES.

In cluster mode the set is the cluster's (ussd/cluster_faults.py): every route reads or changes
it in Redis, so each worker answers the same, and a change is in force on this worker when its
answer goes out; 503 `cluster_unavailable` when Redis does not answer.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, cast

from aiohttp import web

from ussd import faults
from ussd.http.admin import AdminApi
from ussd.http.errors import ApiError, json_body, json_response

if TYPE_CHECKING:
    from ussd.cluster_faults import ClusterFaults
    from ussd.runtime import Gateway

MAX_SEED = 2**31 - 1


class FaultsApi:
    """The fault routes of one gateway."""

    def __init__(self, gateway: Gateway) -> None:
        self.faults = gateway.faults

    def _cluster(self) -> ClusterFaults | None:
        # Cluster mode: set as the worker joins (ussd/commands/serve.py), after these routes.
        return cast("ClusterFaults | None", self.faults.shared)

    async def list(self, request: web.Request) -> web.Response:
        cluster = self._cluster()
        if cluster is not None:
            async with _redis():
                return json_response(await cluster.snapshot())
        return json_response(self.faults.to_json())

    async def add(self, request: web.Request) -> web.Response:
        data = await json_body(request)
        cluster = self._cluster()
        if cluster is not None:
            rule = _rule(data, "f0")  # the cluster's next free id, when none is given
            async with _redis():
                try:
                    rule = await cluster.add(rule, automatic="id" not in data)
                except faults.RuleExists:
                    raise _exists(rule.id) from None
                except faults.TooManyRules:
                    raise _full() from None
            return json_response(rule.to_json(), status=201)
        rule = _rule(data, self.faults.new_id())
        if any(r.id == rule.id for r in self.faults.rules()):
            raise _exists(rule.id)
        if len(self.faults.rules()) >= faults.MAX_RULES:
            raise _full()
        self.faults.add(rule)
        return json_response(rule.to_json(), status=201)

    async def replace(self, request: web.Request) -> web.Response:
        data = await json_body(request)
        unknown = sorted(set(data) - {"seed", "rules"})
        if unknown:
            raise ApiError(400, "bad_field", f"{unknown[0][:40]}: unknown key")
        seed = data.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
            raise ApiError(400, "bad_field", f"seed: expected an integer 0-{MAX_SEED}")
        try:
            rules = faults.parse_rules(data.get("rules", []))
        except faults.FaultError as exc:
            raise ApiError(400, "bad_field", f"rules{exc.key}: {exc.message}") from None
        cluster = self._cluster()
        if cluster is not None:
            async with _redis():
                await cluster.reset(rules, seed)
                return json_response(await cluster.snapshot())
        self.faults.reset(rules, seed)
        return json_response(self.faults.to_json())

    async def clear(self, request: web.Request) -> web.Response:
        cluster = self._cluster()
        if cluster is not None:
            async with _redis():
                return json_response({"removed": await cluster.clear()})
        return json_response({"removed": self.faults.clear()})

    async def remove(self, request: web.Request) -> web.Response:
        rule_id = request.match_info["id"]
        cluster = self._cluster()
        if cluster is not None:
            async with _redis():
                removed = await cluster.remove(rule_id)
        else:
            removed = self.faults.remove(rule_id)
        if not removed:
            raise ApiError(404, "unknown_rule", f"no rule {rule_id[:40]!r} is in force")
        return web.Response(status=204)


def _exists(rule_id: str) -> ApiError:
    return ApiError(409, "rule_exists", f"a rule with id {rule_id!r} is in force")


def _full() -> ApiError:
    return ApiError(409, "too_many_rules", f"at most {faults.MAX_RULES} rules")


@contextlib.asynccontextmanager
async def _redis() -> AsyncIterator[None]:
    # ClusterFaults says ConnectionError when Redis does not answer (never its URL).
    try:
        yield
    except ConnectionError:
        raise ApiError(
            503,
            "cluster_unavailable",
            "Redis does not answer: the cluster's fault rules are out of reach",
        ) from None


def _rule(data: dict[str, Any], default_id: str) -> faults.Rule:
    try:
        return faults.parse_rule(data, default_id)
    except faults.FaultError as exc:
        raise ApiError(400, "bad_field", str(exc)) from None


def setup_fault_routes(app: web.Application, gateway: Gateway) -> None:
    """Add the /api/v1/faults routes to `app`, behind the admin token."""
    api = FaultsApi(gateway)
    guard = AdminApi(gateway).guard
    add = app.router.add_route
    add("GET", "/api/v1/faults", guard(api.list))
    add("POST", "/api/v1/faults", guard(api.add))
    add("PUT", "/api/v1/faults", guard(api.replace))
    add("DELETE", "/api/v1/faults", guard(api.clear))
    add("DELETE", "/api/v1/faults/{id}", guard(api.remove))
