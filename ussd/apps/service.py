"""The service behind an `app:NAME` route: every step asks the app over HTTP (docs/apps.md).

It is a plain service (ussd/services/base.py) whose steps Await effects of kind `http`; the
`http` performer (ussd/apps/client.py) sends them in the app's dialect. The dialog's plain
values carry what the next request needs: the code, the dial string, every input so far, the
request count and the state the app asked to have echoed (Hubtel's ClientState).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ussd.config import AppConfig
from ussd.effects import Answer, Result
from ussd.events import Outcome
from ussd.services.base import Await, Context, Continue, End, Step

KIND = "http"  # the effect kind the performer registers for
SCREEN = "app"  # the one screen id of an app dialog: the app knows where it is, we do not
# Requests in one dialog at most. Every request carries every input so far (Africa's Talking's
# `text`), so a dialog's work and memory grow with its length: a script looping on an app for
# the whole dialog timeout must not make that quadratic without end.
MAX_REQUESTS = 100


def direct_dial_inputs(dial: str, code: str) -> tuple[str, ...]:
    """The inputs a direct-dial string gives under its code: `*384*1*2#` under `*384#` → 1, 2."""
    if dial == code or not code.endswith("#") or not dial.startswith(code[:-1] + "*"):
        return ()
    return tuple(dial[len(code) : -1].split("*"))


class AppService:
    """One external application: its turns are Awaits, its answers become screens."""

    texts_used: Sequence[str] = ("common.error", "apps.error")

    def __init__(self, app: AppConfig) -> None:
        self.app = app
        self.name = f"app:{app.name}"

    def start(self, ctx: Context, args: Mapping[str, str]) -> Step:
        code = args.get("code", "")
        dial = args.get("dial", code)
        values = {
            "code": code,
            "dial": dial,
            "inputs": list(direct_dial_inputs(dial, code)),
            "sequence": 1,
            "client_state": None,
        }
        return self._ask(values)

    def reply(self, ctx: Context, screen: str, values: Mapping[str, Any], text: str) -> Step:
        if int(values["sequence"]) >= MAX_REQUESTS:
            return End(ctx.t("apps.error"), outcome=Outcome.APP_ERROR)
        return self._ask(
            {
                **values,
                "inputs": [*values["inputs"], text],
                "sequence": int(values["sequence"]) + 1,
            }
        )

    def resume(self, ctx: Context, screen: str, values: Mapping[str, Any], result: Result) -> Step:
        if not isinstance(result, Answer):
            if result.cause is Outcome.APP_ERROR:
                return End(ctx.t("apps.error"), outcome=Outcome.APP_ERROR)
            # No answer in time, or nobody there: "service temporarily unavailable".
            return End(ctx.t("common.error"), outcome=result.cause)
        # Paginated or truncated like any screen, as the operator does (ussd.screen_policy).
        text = str(result.value.get("text", ""))
        if result.value.get("end"):
            return End(text, outcome=Outcome.APP_RELEASE)
        state = result.value.get("client_state")
        return Continue(SCREEN, text=text, values={**values, "client_state": state})

    def _ask(self, values: Mapping[str, Any]) -> Await:
        request = {
            "app": self.app.name,
            "code": values["code"],
            "dial": values["dial"],
            "inputs": list(values["inputs"]),
            "sequence": values["sequence"],
            "client_state": values["client_state"],
        }
        return Await(KIND, request, self.app.timeout, SCREEN, values)
