"""docs/openapi.yaml describes exactly the routes the app serves (docs/phones.md), both ways."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ussd.http import make_app
from ussd.runtime import Gateway

OPENAPI = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def _documented() -> set[tuple[str, str]]:
    doc = yaml.safe_load(OPENAPI.read_text(encoding="utf-8"))
    return {
        (method.upper(), path)
        for path, item in doc["paths"].items()
        for method in item
        if method in METHODS
    }


def _served(gateway: Gateway) -> set[tuple[str, str]]:
    app = make_app(gateway)
    served = set()
    for route in app.router.routes():
        # aiohttp adds HEAD beside every GET by itself; it is not a route of ours.
        if route.method == "HEAD" or route.resource is None:
            continue
        served.add((route.method, route.resource.canonical))
    return served


def test_every_served_route_is_documented(gateway: Gateway) -> None:
    missing = _served(gateway) - _documented()
    assert not missing, f"served but not in docs/openapi.yaml: {sorted(missing)}"


def test_every_documented_route_is_served(gateway: Gateway) -> None:
    extra = _documented() - _served(gateway)
    assert not extra, f"in docs/openapi.yaml but not served: {sorted(extra)}"


def test_operations_are_complete() -> None:
    doc: dict[str, Any] = yaml.safe_load(OPENAPI.read_text(encoding="utf-8"))
    ids = []
    for path, item in doc["paths"].items():
        params = {p["name"] for p in item.get("parameters", []) if "name" in p}
        for method, op in item.items():
            if method not in METHODS:
                continue
            ids.append(op["operationId"])
            assert op.get("responses"), f"{method.upper()} {path} has no responses"
            names = params | {p["name"] for p in op.get("parameters", []) if "name" in p}
            names |= {
                doc["components"]["parameters"][p["$ref"].rsplit("/", 1)[1]]["name"]
                for p in item.get("parameters", []) + op.get("parameters", [])
                if "$ref" in p
            }
            for segment in path.split("/"):
                if segment.startswith("{"):
                    assert segment.strip("{}") in names, f"{path}: {segment} not described"
    assert len(ids) == len(set(ids)), "operationIds must be unique"
