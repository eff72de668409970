"""A small client for the phones API of a running gateway (docs/phones.md)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any
from urllib.parse import quote

import aiohttp

DEFAULT_URL = "http://127.0.0.1:8080"


class ClientError(Exception):
    """Base of what the phones client reports."""


class Unreachable(ClientError):
    """The gateway could not be reached or answered with something that is not the API."""


class ApiError(ClientError):
    """The gateway refused a request: HTTP status plus the `{"error": {code, message}}` body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{message} ({code}, HTTP {status})")
        self.status = status
        self.code = code
        self.message = message


class PhonesClient:
    """`async with PhonesClient(url) as c: await c.dial("79161234567", "*100#")`."""

    def __init__(
        self, url: str = DEFAULT_URL, *, timeout: float = 10.0, via: str | None = None
    ) -> None:
        self.url = url.rstrip("/")
        # Who dials, for the dialog's record (docs/operations.md): "terminal", "scenario", …
        self.via = via
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> PhonesClient:
        self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("use PhonesClient as `async with PhonesClient(url) as client`")
        return self._session

    def _phone(self, msisdn: str, action: str) -> str:
        return f"{self.url}/api/v1/phones/{quote(msisdn, safe='')}/{action}"

    async def _call(self, method: str, url: str, body: Any = None) -> Any:
        try:
            async with self.session.request(method, url, json=body) as response:
                return await self._json(url, response)
        except aiohttp.ClientError as exc:
            raise Unreachable(f"cannot reach {self.url}: {exc}") from exc
        except TimeoutError as exc:
            raise Unreachable(f"{self.url} did not answer in time") from exc

    @staticmethod
    async def _json(url: str, response: aiohttp.ClientResponse) -> Any:
        """The JSON answer, or ApiError with the docs/phones.md error body's code and message."""
        try:
            data = await response.json(content_type=None)
        except ValueError as exc:
            raise Unreachable(f"{url}: HTTP {response.status}, not JSON") from exc
        if response.status >= 400:
            error = data.get("error", {}) if isinstance(data, dict) else {}
            raise ApiError(
                response.status,
                str(error.get("code", "http_error")),
                str(error.get("message", response.reason)),
            )
        return data

    async def health(self) -> bool:
        """True when the gateway answers `/healthz` (raises Unreachable otherwise)."""
        data = await self._call("GET", f"{self.url}/healthz")
        return isinstance(data, dict) and data.get("status") == "ok"

    async def dial(self, msisdn: str, text: str) -> dict[str, Any]:
        """Dial a code; the first screen (or a handset-local answer with `local: true`)."""
        body = {"text": text} if self.via is None else {"text": text, "via": self.via}
        result: dict[str, Any] = await self._call("POST", self._phone(msisdn, "dial"), body)
        return result

    async def reply(self, msisdn: str, text: str) -> dict[str, Any]:
        """Answer the open dialog; ApiError `no_dialog` (409) when none is open."""
        result: dict[str, Any] = await self._call(
            "POST", self._phone(msisdn, "reply"), {"text": text}
        )
        return result

    async def release(self, msisdn: str) -> bool:
        """End key; True when a dialog was open."""
        data = await self._call("POST", self._phone(msisdn, "release"), {})
        return bool(data["released"])

    async def inbox(self, msisdn: str) -> list[dict[str, Any]]:
        """The SMS inbox, oldest first."""
        data = await self._call("GET", self._phone(msisdn, "sms"))
        return list(data["sms"])

    async def phones(self) -> list[dict[str, Any]]:
        """Known subscriber numbers."""
        data = await self._call("GET", f"{self.url}/api/v1/phones")
        return list(data["phones"])

    async def add_phone(self, msisdn: str) -> dict[str, Any]:
        """Create a number (auto-provisioning rules apply)."""
        result: dict[str, Any] = await self._call(
            "POST", f"{self.url}/api/v1/phones", {"msisdn": msisdn}
        )
        return result

    async def start_recording(self, msisdn: str, name: str | None = None) -> dict[str, Any]:
        """Have the gateway record this number's session; joins a running one."""
        body = {"name": name} if name else {}
        result: dict[str, Any] = await self._call("POST", self._phone(msisdn, "record"), body)
        return result

    async def stop_recording(self, msisdn: str) -> str:
        """Stop recording; the scenario file's YAML text (ApiError `not_recording` if none)."""
        url = self._phone(msisdn, "record")
        try:
            async with self.session.delete(url) as response:
                if response.status == 200:
                    return await response.text()
                await self._json(url, response)  # raises the error it carries
                raise Unreachable(f"{url}: HTTP {response.status}, not a scenario")
        except aiohttp.ClientError as exc:
            raise Unreachable(f"cannot reach {self.url}: {exc}") from exc
        except TimeoutError as exc:
            raise Unreachable(f"{self.url} did not answer in time") from exc

    async def events(self, msisdn: str) -> AsyncIterator[dict[str, Any]]:
        """Messages from `.../events`, starting with `ready`, until the socket closes."""
        url = self._phone(msisdn, "events")
        try:
            async with self.session.ws_connect(
                url, heartbeat=30.0, timeout=aiohttp.ClientWSTimeout(ws_close=2.0)
            ) as ws:
                async for msg in ws:
                    if msg.type is aiohttp.WSMsgType.TEXT:
                        yield msg.json()
                    elif msg.type is aiohttp.WSMsgType.ERROR:
                        break
        except aiohttp.WSServerHandshakeError as exc:
            raise ApiError(exc.status, "handshake_failed", exc.message) from exc
        except aiohttp.ClientError as exc:
            raise Unreachable(f"cannot reach {self.url}: {exc}") from exc
