"""Browser-facing guards (docs/phones.md "Who may call"): Host, Origin and cross-site posts.

The gateway has no cookies, but the phones API needs no token and a WebSocket is not bound by
the same-origin policy, so a page on another site could dial, or read a phone's SMS (generated
passwords included). Three checks close that:
- `Host` must be an IP literal, `localhost` (or `*.localhost`), the `http.listen` host or a name
  in `http.allowed_hosts`: a DNS-rebinding page reaches us under its own name and is refused.
- A WebSocket handshake and every state-changing request (POST, PUT, PATCH, DELETE) that
  carries `Origin` must come from our own origin or one in `http.allowed_origins`; browsers
  send `Origin` on both (RFC 6455 §4.1 item 8, WHATWG Fetch §3.1). `Sec-Fetch-Site:
  cross-site`/`same-site` without an allowed `Origin` is refused too.
- State-changing requests never take the body types an HTML form can post without a preflight
  (`application/x-www-form-urlencoded`, `multipart/form-data`, `text/plain`): 415.
Clients that are not browsers (curl, the CLI, ESME tools) send neither header and pass.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from aiohttp import hdrs, web

from ussd.http.errors import FORM_TYPES, ApiError, Handler

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def host_name(authority: str) -> str:
    """The host part of a `Host` header or an origin's authority, lower case, no port."""
    authority = authority.strip().lower()
    if authority.startswith("["):  # an IPv6 literal, RFC 3986 §3.2.2
        return authority[1 : authority.find("]")] if "]" in authority else authority
    name, colon, port = authority.rpartition(":")
    name = name if colon and port.isdigit() else authority
    return name.rstrip(".")


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def normalise_origin(origin: str) -> str:
    """`scheme://host[:port]` in lower case without a trailing slash, as browsers send it."""
    return origin.strip().rstrip("/").lower()


@dataclass(frozen=True, slots=True)
class Policy:
    """Which hosts and origins the HTTP interface answers (built once from config)."""

    hosts: frozenset[str]
    origins: frozenset[str]

    @classmethod
    def build(cls, listen_host: str, hosts: Iterable[str], origins: Iterable[str]) -> Policy:
        names = {host_name(h) for h in hosts}
        if listen_host and not _is_ip(listen_host):
            names.add(host_name(listen_host))
        return cls(frozenset(names), frozenset(normalise_origin(o) for o in origins))

    def host_allowed(self, host: str | None) -> bool:
        """A missing Host (HTTP/1.0, no browser) passes; a name must be one we answer to."""
        if host is None or "*" in self.hosts:
            return True
        name = host_name(host)
        # An IP literal cannot be rebound; *.localhost is loopback (RFC 6761 §6.3).
        return (
            _is_ip(name) or name == "localhost" or name.endswith(".localhost") or name in self.hosts
        )

    def origin_allowed(self, origin: str, host: str | None) -> bool:
        """Our own origin (same scheme-less authority as Host) or one on the allow-list."""
        origin = normalise_origin(origin)
        if "*" in self.origins or origin in self.origins:
            return True
        scheme, sep, authority = origin.partition("://")
        if not sep or scheme not in ("http", "https") or host is None:
            return False  # includes "null": sandboxed frames, file: pages
        return authority == host.strip().lower()


POLICY: web.AppKey[Policy] = web.AppKey("http_policy")


def _is_websocket(request: web.Request) -> bool:
    return request.headers.get(hdrs.UPGRADE, "").lower() == "websocket"


@web.middleware
async def security_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse foreign Host names, foreign origins and cross-site form posts (module docstring)."""
    policy = request.app[POLICY]
    host = request.headers.get(hdrs.HOST)
    if not policy.host_allowed(host):
        raise ApiError(
            403,
            "forbidden_host",
            f"Host {host_name(host or '')[:64]!r} is not served here; add it to http.allowed_hosts",
        )
    if request.method in UNSAFE_METHODS or _is_websocket(request):
        origin = request.headers.get(hdrs.ORIGIN)
        if origin is not None:
            if not policy.origin_allowed(origin, host):
                raise ApiError(
                    403,
                    "forbidden_origin",
                    f"Origin {origin[:80]!r} may not use this gateway; "
                    "add it to http.allowed_origins",
                )
        elif request.headers.get("Sec-Fetch-Site", "").lower() in ("cross-site", "same-site"):
            raise ApiError(403, "forbidden_origin", "cross-site requests are refused")
        if request.method in UNSAFE_METHODS and request.content_type in FORM_TYPES:
            raise ApiError(415, "unsupported_media_type", "expected Content-Type: application/json")
    return await handler(request)
