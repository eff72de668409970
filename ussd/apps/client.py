"""The `http` performer: asks external USSD applications over HTTP (docs/apps.md).

One aiohttp ClientSession per gateway, opened by `Gateway.start()` and closed by `stop()`, with
a bounded connection pool, the app's connect timeout and a bounded answer size. The wire
format is the app's dialect (ussd/apps/dialects.py); this module does the I/O around it:
- each effect becomes one request; its answer an `Answer(text, end, client_state)`, or a
  `Failure` whose cause is the dialog's end cause (app_timeout, app_error, app_unavailable);
- each exchange is an `AppExchange` event (the web phone's app console, the metrics);
- when a dialog ends, the app is told the way its dialect tells it (`Dialect.end`), in a task
  of its own that nobody waits for, bounded in number and time.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from ussd import log
from ussd.apps.dialects import (
    DIALECTS,
    AppAnswerError,
    AppTarget,
    AppTurn,
    DialogEnd,
    HttpRequest,
)
from ussd.bus import Bus
from ussd.clock import Clock
from ussd.config import AppConfig, Config
from ussd.effects import Answer, Effect, Failure, Result
from ussd.events import AppExchange, DialogEnded, Event, Outcome
from ussd.faults import APP_ERROR, Faults

MAX_CONNECTIONS = 100  # to all apps together; more requests wait for a free connection
MAX_ANSWER_BYTES = 64 * 1024  # an answer is a screen or two: a bigger one is an app bug
MAX_NOTICES = 1000  # end-of-dialog notifications in flight; past this they are dropped
SHOWN = 4096  # characters of a request or an answer an AppExchange keeps

# AppExchange.outcome: how one request went (metrics labels come from this fixed set).
EXCHANGE_OUTCOMES = (
    "continue",  # a screen; the dialog goes on
    "end",  # a final screen; the app ended the dialog
    "timeout",  # no answer within the app's timeout
    "error",  # a non-2xx status, or an answer that is unusable
    "unavailable",  # no connection: refused, no such host, connect timeout
    "cancelled",  # the dialog ended (a release, say) before the answer came
    "notified",  # an end-of-dialog notification was accepted (2xx)
    "notify_failed",  # one was not
)

# What the app is told of a dialog's end (DialogEnd.cause), by the dialog's end cause.
END_CAUSES: Mapping[Outcome, str] = {
    Outcome.COMPLETED: "completed",
    Outcome.APP_RELEASE: "completed",
    Outcome.RELEASED: "release",
    Outcome.REPLACED: "release",
    Outcome.SHUTDOWN: "release",
    Outcome.TIMEOUT: "timeout",
    Outcome.MAX_DURATION: "timeout",
}

# The console's outcome of a failed request, by the dialog's end cause.
FAILURE_OUTCOMES: Mapping[Outcome, str] = {
    Outcome.APP_ERROR: "error",
    Outcome.APP_UNAVAILABLE: "unavailable",
    Outcome.APP_TIMEOUT: "timeout",
}

_log = log.get("apps")


class AppUnusable(Exception):
    """The app answered, but not with a screen: the dialog ends with app_error."""


@dataclass(slots=True)
class _Dialog:
    """What an open app dialog's end notification needs: the last turn and its history."""

    app: AppConfig
    turn: AppTurn
    started: float  # clock time of the first request
    hops: int = 0
    last_answer: str = ""
    ended: Outcome | None = None  # set when the dialog ended under a request in flight
    client_state: str | None = None  # the app's last (Hubtel's ClientState), for the end notice
    error: str = ""  # why its last request failed (Africa's Talking's errorMessage)


def target(app: AppConfig) -> AppTarget:
    return AppTarget(
        url=app.url, headers=app.headers, end_url=app.end_url, network_code=app.network_code
    )


@lru_cache(maxsize=1024)  # a few URLs per app, asked on every exchange
def public_url(url: str) -> str:
    """The URL without `user:password@`: the app console and the logs show it."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def shown(body: bytes) -> str:
    """Wire text for the app console: decoded as far as it decodes, and shortened."""
    return body[: SHOWN * 4].decode("utf-8", "replace")[:SHOWN]


class AppClient:
    """Performs `http` effects for one gateway and tells apps when their dialogs end."""

    def __init__(
        self, config: Config, bus: Bus, clock: Clock, faults: Faults | None = None
    ) -> None:
        self.config = config
        self.bus = bus
        self.clock = clock
        self.faults = faults if faults is not None else Faults()  # docs/network.md "Faults"
        self._session: aiohttp.ClientSession | None = None
        self._dialogs: dict[str, _Dialog] = {}  # session -> its app dialog
        self._targets = {name: target(app) for name, app in config.apps.items()}
        # The whole exchange, queueing for a connection included, within the app's timeout;
        # the engine's own deadline (the effect's) ends the dialog at the same time.
        self._limits = {
            name: aiohttp.ClientTimeout(total=app.timeout, sock_connect=app.connect_timeout)
            for name, app in config.apps.items()
        }
        self._notices: set[asyncio.Task[None]] = set()
        self.notices_dropped = 0
        self._unsubscribe = bus.subscribe(self.on_event)

    def open(self) -> None:
        """The HTTP client (call on the loop: Gateway.start)."""
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=MAX_CONNECTIONS, limit_per_host=0)
            # No cookies: one app's cookie must not reach another subscriber's request.
            self._session = aiohttp.ClientSession(
                connector=connector, cookie_jar=aiohttp.DummyCookieJar()
            )

    async def close(self) -> None:
        """Stop the notifications in flight and close the client."""
        self._unsubscribe()
        for task in list(self._notices):
            task.cancel()
        if self._notices:
            await asyncio.gather(*self._notices, return_exceptions=True)
        self._dialogs.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- the performer ------------------------------------------------------------------------

    async def perform(self, effect: Effect) -> Result:
        """One request to the app the effect names; its answer, or why there is none."""
        request = effect.request
        app = self.config.apps[str(request["app"])]
        dialect = DIALECTS.get(app.dialect)
        if dialect is None:
            return Failure(Outcome.APP_ERROR, f"the {app.dialect} dialect is not available")
        injected = self.faults.app(effect.msisdn, str(request["code"]), app.name)
        if injected is not None:  # an injected fault: the app is never asked
            why = f"injected fault {injected.rule}"
            if injected.kind == APP_ERROR:
                return Failure(Outcome.APP_ERROR, why)
            # app_timeout: no answer comes; the effect's deadline cancels this wait, or, on a
            # clock that stands still, the app's timeout ends it as a real request's would.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.Event().wait(), app.timeout)
            return Failure(Outcome.APP_TIMEOUT, f"no answer within {app.timeout:g} s ({why})")
        sequence = int(request["sequence"])
        turn = AppTurn(
            session=effect.session,
            msisdn=effect.msisdn,
            service_code=str(request["code"]),
            dial=str(request["dial"]),
            inputs=tuple(str(i) for i in request["inputs"]),
            new=sequence == 1,
            sequence=sequence,
            client_state=request["client_state"],
            network_code=app.network_code,
            operator=self.config.operator.name,
        )
        dialog = self._dialogs.get(effect.session)
        if dialog is None:
            dialog = self._dialogs[effect.session] = _Dialog(app, turn, self.clock.now())
        dialog.turn = turn
        dialog.hops += 1
        http = dialect.request(turn, self._targets[app.name])
        began = time.perf_counter()
        status: int | None = None
        body = b""
        failure: Failure | None = None
        try:
            status, content_type, body = await self._send(http, app)
            if not 200 <= status < 300:
                raise AppUnusable(f"HTTP status {status}")
            try:
                answer = dialect.answer(status, content_type, body)
            except AppAnswerError as exc:
                raise AppUnusable(str(exc)) from None
            except Exception:  # a dialect bug: this exchange fails, with its console line
                _log.exception("app_answer_unread", app=app.name, dialect=app.dialect)
                raise AppUnusable(f"the {app.dialect} dialect could not read the answer") from None
        except asyncio.CancelledError:
            timed_out = dialog.ended is Outcome.APP_TIMEOUT
            self._exchange(effect, dialog, http, status, body, began, timed_out, "cancelled")
            raise
        except AppUnusable as exc:
            failure = Failure(Outcome.APP_ERROR, str(exc))
        except aiohttp.ConnectionTimeoutError:
            reason = f"no connection within {app.connect_timeout:g} s"
            failure = Failure(Outcome.APP_UNAVAILABLE, reason)
        except aiohttp.ClientConnectorError as exc:
            failure = Failure(Outcome.APP_UNAVAILABLE, f"cannot connect: {exc.os_error}")
        except TimeoutError:
            failure = Failure(Outcome.APP_TIMEOUT, f"no answer within {app.timeout:g} s")
        except aiohttp.ClientError as exc:
            failure = Failure(Outcome.APP_ERROR, f"the exchange failed: {type(exc).__name__}")
        if failure is not None:
            dialog.error = failure.reason
            outcome = FAILURE_OUTCOMES[failure.cause]
            self._exchange(effect, dialog, http, status, body, began, False, outcome)
            _log.info(
                "app_failed",
                app=app.name,
                session=effect.session,
                outcome=failure.cause.value,
                reason=failure.reason,
            )
            return failure
        dialog.last_answer = answer.text
        dialog.client_state = answer.client_state
        outcome = "end" if answer.end else "continue"
        self._exchange(effect, dialog, http, status, body, began, False, outcome)
        value = {"text": answer.text, "end": answer.end, "client_state": answer.client_state}
        return Answer(value)

    async def _send(self, http: HttpRequest, app: AppConfig) -> tuple[int, str, bytes]:
        """Status, content type and body of one request, within the app's timeouts."""
        if self._session is None:
            raise RuntimeError("the app client is not open (Gateway.start)")
        async with self._session.request(
            http.method,
            http.url,
            headers=http.headers,
            data=http.body,
            timeout=self._limits[app.name],
            allow_redirects=False,  # a redirect is an app's misconfiguration: non-2xx
        ) as response:
            length = response.content_length
            if length is not None and length > MAX_ANSWER_BYTES:
                raise AppUnusable(f"the answer is {length} bytes, more than {MAX_ANSWER_BYTES}")
            data = bytearray()
            while len(data) <= MAX_ANSWER_BYTES:
                chunk = await response.content.read(MAX_ANSWER_BYTES + 1 - len(data))
                if not chunk:
                    break
                data += chunk
            if len(data) > MAX_ANSWER_BYTES:
                raise AppUnusable(f"the answer is more than {MAX_ANSWER_BYTES} bytes")
            return response.status, response.headers.get("Content-Type", ""), bytes(data)

    def _exchange(
        self,
        effect: Effect,
        dialog: _Dialog,
        http: HttpRequest,
        status: int | None,
        body: bytes,
        began: float,
        timed_out: bool,
        outcome: str,
    ) -> None:
        if timed_out:
            outcome = "timeout"
        url = public_url(http.url)
        self.bus.emit(
            AppExchange(
                msisdn=effect.msisdn,
                session=effect.session,
                app=dialog.app.name,
                dialect=dialog.app.dialect,
                url=url,
                request=f"{http.method} {url}\n{shown(http.body)}",
                status=status,
                answer=shown(body),
                latency_ms=(time.perf_counter() - began) * 1000.0,
                outcome=outcome,
            )
        )

    # -- the end of a dialog ------------------------------------------------------------------

    def on_event(self, event: Event) -> None:
        """Bus listener: a dialog that asked an app ended; tell the app, as its dialect does."""
        if not isinstance(event, DialogEnded):
            return
        dialog = self._dialogs.pop(event.session, None)
        if dialog is None:
            return
        dialog.ended = event.outcome
        dialect = DIALECTS.get(dialog.app.dialect)
        if dialect is None or self._session is None:
            return
        cause = END_CAUSES.get(event.outcome, "error")
        error = "" if cause != "error" else dialog.error or event.outcome.value
        end = DialogEnd(
            cause=cause,
            duration_ms=max(0, round((self.clock.now() - dialog.started) * 1000)),
            last_answer=dialog.last_answer,
            hops=dialog.hops,
            error=error,
            ended_at=self.clock.now(),
        )
        # The notice carries the state the app returned last, not the one of its last request.
        turn = replace(dialog.turn, client_state=dialog.client_state)
        try:
            http = dialect.end(turn, self._targets[dialog.app.name], end)
        except Exception:  # a dialect bug must not cost the other listeners the event
            _log.exception("app_end_failed", app=dialog.app.name, session=event.session)
            return
        if http is None:
            return
        if len(self._notices) >= MAX_NOTICES:
            # An app that stopped answering must not make us hold unbounded tasks.
            self.notices_dropped += 1
            _log.warning("app_end_dropped", app=dialog.app.name, session=event.session)
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # an in-process command ending its world: nobody can send it
            return
        task = loop.create_task(self._notify(event, dialog, http), name=f"app-end-{event.session}")
        self._notices.add(task)
        task.add_done_callback(self._notices.discard)

    async def _notify(self, event: DialogEnded, dialog: _Dialog, http: HttpRequest) -> None:
        began = time.perf_counter()
        status: int | None = None
        body = b""
        outcome = "notify_failed"
        try:
            status, _, body = await self._send(http, dialog.app)
            if 200 <= status < 300:
                outcome = "notified"
        except (aiohttp.ClientError, AppUnusable, TimeoutError) as exc:
            _log.info("app_end_not_told", app=dialog.app.name, reason=type(exc).__name__)
        # The console shows the notification as one more exchange of the dialog.
        effect = Effect("", "http", event.msisdn, event.session, "", {}, 0.0)
        self._exchange(effect, dialog, http, status, body, began, False, outcome)
