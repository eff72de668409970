"""What the admin subcommands share (docs/account.md "CLI"): --token, the admin API client,
printing results.

`office`, `clock` and `subscribers` work either against a running gateway's admin API (--url)
or in-process against the configured store. Remote calls use aiohttp's client.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp

from ussd.accounts import AccountError
from ussd.config import Config
from ussd.runtime import Gateway

TIMEOUT = 30.0


class RemoteError(Exception):
    """The admin API refused a request (status ≥ 400) or could not be reached (status 0)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def add_admin(parser: argparse.ArgumentParser) -> None:
    """--token (default: the config's http.admin_token) and --json."""
    parser.add_argument(
        "--token",
        metavar="TOKEN",
        help="admin bearer token for --url (default: http.admin_token from the config)",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def default_url(config: Config) -> str:
    """The configured http.listen address as a URL."""
    host, port = config.http.listen
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def call(args: argparse.Namespace, config: Config, method: str, path: str, body: Any = None) -> Any:
    """One admin API request against args.url; the decoded JSON, or RemoteError."""
    url = (args.url or default_url(config)).rstrip("/")
    token = args.token or config.http.admin_token
    return asyncio.run(_request(url, token, method, path, body))


async def _request(url: str, token: str, method: str, path: str, body: Any) -> Any:
    headers = {"Authorization": f"Bearer {token}"}
    timeout = aiohttp.ClientTimeout(total=TIMEOUT)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.request(method, url + path, json=body, headers=headers) as response,
        ):
            try:
                data = await response.json(content_type=None)
            except ValueError:
                data = None
            if response.status >= 400:
                error = data.get("error", {}) if isinstance(data, dict) else {}
                raise RemoteError(
                    response.status,
                    str(error.get("code", "http_error")),
                    str(error.get("message", response.reason)),
                )
            return data
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise RemoteError(0, "unreachable", f"cannot reach {url}: {exc}") from exc


@contextmanager
def local_gateway(config: Config) -> Iterator[Gateway]:
    """The configured world, in-process (no listeners); the store is closed afterwards."""
    gateway = Gateway.create(config)
    try:
        yield gateway
    finally:
        gateway.close()


def run_guarded(action: Callable[[], int]) -> int:
    """Run action; a refused request prints `ussd-sim: message` and exits 1."""
    try:
        return action()
    except RemoteError as exc:
        where = f" ({exc.status} {exc.code})" if exc.status else ""
        print(f"ussd-sim: {exc.message}{where}", file=sys.stderr)
        return 1
    except AccountError as exc:
        print(f"ussd-sim: {exc.message} ({exc.code})", file=sys.stderr)
        return 1


def emit(args: argparse.Namespace, data: Any, text: str) -> None:
    """Print data as JSON with --json, else the readable text."""
    print(json.dumps(data, ensure_ascii=False) if args.json else text)
