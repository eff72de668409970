"""JSON errors for the HTTP interface: `{"error": {"code", "message"}}`, never a traceback
(docs/phones.md "Errors")."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Awaitable, Callable, Mapping
from importlib import resources
from typing import Any, NoReturn

from aiohttp import web

from ussd import log


def json_response(data: Any, *, status: int = 200, **kwargs: Any) -> web.Response:
    """A JSON response with text left readable (Cyrillic as UTF-8, not \\u escapes)."""
    return web.json_response(
        data, status=status, dumps=lambda obj: json.dumps(obj, ensure_ascii=False), **kwargs
    )


def static_bytes(name: str) -> bytes:
    """The bytes of a file shipped in ussd/http/static/ (also inside a wheel)."""
    return resources.files("ussd.http").joinpath("static", name).read_bytes()


def static_file(name: str, types: Mapping[str, str]) -> web.Response:
    """A file of ussd/http/static/ named in `types` (a fixed list, so no path from a URL ever
    reaches the filesystem), or a 404 ApiError."""
    content_type = types.get(name)
    if content_type is None:
        raise ApiError(404, "not_found", f"no static file {name!r}")
    return web.Response(
        body=static_bytes(name),
        content_type=content_type,
        charset="utf-8",
        headers={"Cache-Control": "no-cache"},
    )


_log = log.get("http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Status → code for errors aiohttp raises itself (routing, body limits).
_AIOHTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
}


class ApiError(Exception):
    """A client error with its HTTP status, a stable machine code and a readable message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    """The API's error body with `status`."""
    return json_response(
        {"error": {"code": code, "message": message}}, status=status, headers=headers
    )


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn ApiError, aiohttp's HTTP errors and any unexpected exception into JSON errors."""
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise  # redirects and other non-errors pass through untouched
        headers = {}
        if exc.status == 405 and isinstance(exc, web.HTTPMethodNotAllowed):
            # RFC 9110 §15.5.6: a 405 names the methods the resource does support.
            headers["Allow"] = ", ".join(sorted(exc.allowed_methods))
        code = _AIOHTTP_CODES.get(exc.status, "http_error")
        return error_response(exc.status, code, exc.reason, headers)
    except Exception:
        # Anything else escaping a handler is a bug: log it with the traceback, tell the
        # client only that it happened (docs/phones.md "Errors": never a traceback).
        _log.exception("http_unhandled", method=request.method, path=request.path)
        return error_response(500, "internal", "internal server error")


MAX_BODY = 64 * 1024
"""Largest request body accepted (bytes); the phones API never needs more than a dial string."""


MAX_DEPTH = 32
"""Deepest nesting of arrays and objects a request body may have; the API needs 3."""

MAX_INT = 2**63 - 1
"""Largest integer magnitude accepted: SQLite stores a signed 64-bit integer."""

FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data", "text/plain"})
"""What an HTML form can post without a CORS preflight (WHATWG Fetch §2.2.2 "CORS-safelisted")."""


def _no_constant(name: str) -> NoReturn:
    # json.loads accepts NaN, Infinity and -Infinity, which RFC 8259 §6 does not.
    raise ValueError(f"{name} is not a JSON number")


def _int(text: str) -> int:
    # Checked on the digits, before int() does quadratic work on a 4,300-digit number.
    if len(text.lstrip("-")) > 19 or abs(value := int(text)) > MAX_INT:
        raise ValueError(f"integer {text[:24]}{'…' if len(text) > 24 else ''} is out of range")
    return value


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400 parses to inf
        raise ValueError(f"number {text[:24]} is out of range")
    return value


def _check(data: Any) -> None:
    """Depth and text checks json.loads does not make (iterative: no recursion to exhaust)."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                # RFC 8259 §8.2: a lone surrogate escape (\ud800) is no character.
                raise ValueError("a string holds a lone surrogate escape") from exc
        elif isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
            items = value.items() if isinstance(value, dict) else ((None, v) for v in value)
            for key, item in items:
                if key is not None:
                    stack.append((key, depth))
                stack.append((item, depth + 1))


def decode_json(raw: bytes) -> Any:
    """The one JSON decoder of the HTTP API: UTF-8 (RFC 8259 §8.1), finite numbers, integers
    that fit 64 bits, no lone surrogates, at most MAX_DEPTH deep; ValueError otherwise."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 at byte {exc.start}") from exc
    try:
        data = json.loads(text, parse_constant=_no_constant, parse_int=_int, parse_float=_float)
    except RecursionError as exc:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels") from exc
    _check(data)
    return data


REQUEST_TIMEOUT: web.AppKey[float] = web.AppKey("request_timeout")
"""`http.request_timeout`: how long a request body may take to arrive."""


async def read_body(request: web.Request) -> bytes:
    """The request body, bounded in size (413) and in time (408, `http.request_timeout`)."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise ApiError(413, "body_too_large", f"request body is larger than {MAX_BODY} bytes")
    timeout = request.config_dict.get(REQUEST_TIMEOUT)
    try:
        async with asyncio.timeout(timeout):
            return await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise ApiError(
            413, "body_too_large", f"request body is larger than {MAX_BODY} bytes"
        ) from exc
    except TimeoutError as exc:
        # RFC 9110 §15.5.9. The rest of the body is never read: aiohttp drains it for at most
        # its lingering time after this answer, then closes the connection.
        raise ApiError(
            408, "request_timeout", f"the request body did not arrive within {timeout:g} s"
        ) from exc


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or an ApiError (400, 408, 413, 415)."""
    if request.content_type != "application/json":
        # An empty body is allowed without a content type (e.g. `.../release`).
        if not request.body_exists:
            return {}
        raise ApiError(415, "unsupported_media_type", "expected Content-Type: application/json")
    raw = await read_body(request)
    if not raw.strip():
        return {}
    try:
        data = decode_json(raw)
    except ValueError as exc:
        raise ApiError(400, "bad_json", f"request body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ApiError(400, "bad_json", "request body must be a JSON object")
    return data


def text_field(data: dict[str, Any], name: str, *, max_length: int = 1000) -> str:
    """A required string field of a JSON body, or a 400 ApiError naming it."""
    if name not in data:
        raise ApiError(400, "missing_field", f"field {name!r} is required")
    value = data[name]
    if not isinstance(value, str):
        raise ApiError(400, "bad_field", f"field {name!r} must be a string")
    if len(value) > max_length:
        raise ApiError(400, "bad_field", f"field {name!r} is longer than {max_length} characters")
    return value
