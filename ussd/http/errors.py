"""JSON errors for the HTTP interface (SPEC §6): `{"error": {"code", "message"}}`, no traceback."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ussd import log


def json_response(data: Any, *, status: int = 200, **kwargs: Any) -> web.Response:
    """A JSON response with text left readable (Cyrillic as UTF-8, not \\u escapes)."""
    return web.json_response(
        data, status=status, dumps=lambda obj: json.dumps(obj, ensure_ascii=False), **kwargs
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
    """The SPEC §6 error body with `status`."""
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
        # client only that it happened (SPEC §6: never a traceback).
        _log.exception("http_unhandled", method=request.method, path=request.path)
        return error_response(500, "internal", "internal server error")


MAX_BODY = 64 * 1024
"""Largest request body accepted (bytes); the phones API never needs more than a dial string."""


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or an ApiError (400, 413, 415)."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise ApiError(413, "body_too_large", f"request body is larger than {MAX_BODY} bytes")
    if request.content_type != "application/json":
        # An empty body is allowed without a content type (e.g. `.../release`).
        if not request.body_exists:
            return {}
        raise ApiError(415, "unsupported_media_type", "expected Content-Type: application/json")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise ApiError(
            413, "body_too_large", f"request body is larger than {MAX_BODY} bytes"
        ) from exc
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
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
