"""Dialogs with an application bound over SMPP, and network-initiated USSD (docs/smpp.md).

`SmppApp` is the service behind an `smpp:SYSTEM_ID` route: every step Awaits an effect of
kind `smpp`, which the SMPP server performs (ussd/smpp/apps.py) by sending the application a
deliver_sm and waiting for its submit_sm. `Push` runs a dialog the network starts
(`Engine.push`): a USSR request waits for the subscriber's answer, a USSN notice for their
acknowledgement. An answer to a push from an application goes back to it and the dialog goes
on like any application dialog; a push from a tester ends with the answer.

Both are plain services: they know the effect kind, never the transport.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ussd.effects import Answer, Result
from ussd.events import Outcome
from ussd.services.base import Await, Context, Continue, End, Step

KIND = "smpp"  # the effect kind the SMPP server performs
ORIGIN_PREFIX = "smpp:"  # a push whose origin is `smpp:SYSTEM_ID` came from that application

# Screens of an application dialog: the app's own screen (waits for an answer) and a USSN
# notice (waits only for the subscriber's acknowledgement, SMPP 3.4 §5.3.2.44 op 3).
APP, NOTICE = "app", "notice"

UNAVAILABLE = "smpp_apps.unavailable"  # menus/texts.yaml: no app bind to take the dialog

# What the app's answer says (the `op` of an Answer's value; ussd/smpp/apps.py sets it).
CONTINUE, END, NOTIFY, RELEASE = "continue", "end", "notify", "release"


def ask(system_id: str, op: str, text: str, timeout: float) -> Await:
    """The effect that sends the app a PDU of the dialog and waits for its next one."""
    return Await(
        KIND,
        {"system_id": system_id, "op": op, "text": text},
        timeout,
        APP,
        {"system_id": system_id},
    )


def step_from(ctx: Context, values: Mapping[str, Any], result: Result) -> Step:
    """The screen an application's answer (or its failure) gives the subscriber."""
    if not isinstance(result, Answer):
        if result.cause is Outcome.APP_UNAVAILABLE:
            return End(ctx.t(UNAVAILABLE), outcome=Outcome.APP_UNAVAILABLE)
        # Too slow, or an answer we could not use: "service temporarily unavailable".
        return End(ctx.t("common.error"), outcome=result.cause)
    op = str(result.value.get("op", CONTINUE))
    text = str(result.value.get("text", ""))
    if op in (END, RELEASE):
        return End(text, outcome=Outcome.APP_RELEASE)
    return Continue(NOTICE if op == NOTIFY else APP, text, values=dict(values), notice=op == NOTIFY)


class SmppApp:
    """The service of an `smpp:SYSTEM_ID` route: the application bound as SYSTEM_ID answers."""

    texts_used: Sequence[str] = ("common.error", UNAVAILABLE)

    def __init__(self, system_id: str, timeout: float) -> None:
        self.system_id = system_id
        self.timeout = timeout
        self.name = f"{ORIGIN_PREFIX}{system_id}"

    def start(self, ctx: Context, args: Mapping[str, str]) -> Step:
        # The whole dial string: a direct-dial `*555*1*2#` reaches the app as it was dialled.
        dial = args.get("dial") or args.get("code", "")
        return ask(self.system_id, "begin", dial, self.timeout)

    def reply(self, ctx: Context, screen: str, values: Mapping[str, Any], text: str) -> Step:
        return answer(ctx, screen, values, text, self.timeout)

    def resume(self, ctx: Context, screen: str, values: Mapping[str, Any], result: Result) -> Step:
        return step_from(ctx, values, result)


def answer(ctx: Context, screen: str, values: Mapping[str, Any], text: str, timeout: float) -> Step:
    """The subscriber answered an app's screen: a USSN is acknowledged and ends, a USSR asks."""
    if screen == NOTICE:
        # The acknowledgement of a notice ends the dialog; the app hears it as a USSN confirm
        # with the end bit (ussd/smpp/apps.py), so a completed end here is that confirm.
        return End("")
    system_id = str(values.get("system_id", ""))
    if not system_id:
        return End("")  # a tester's push: the answer is the dialog's last word
    return ask(system_id, "reply", text, timeout)


class Push:
    """A network-initiated dialog (Engine.push): the handset shows it and waits."""

    name = "push"
    texts_used: Sequence[str] = ("common.error", UNAVAILABLE)

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout

    def start(self, ctx: Context, args: Mapping[str, str]) -> Step:
        origin = args.get("origin", "")
        system_id = origin.removeprefix(ORIGIN_PREFIX) if origin.startswith(ORIGIN_PREFIX) else ""
        values = {"system_id": system_id, "origin": origin}
        reply = bool(args.get("reply"))
        return Continue(
            APP if reply else NOTICE, args.get("text", ""), values=values, notice=not reply
        )

    def reply(self, ctx: Context, screen: str, values: Mapping[str, Any], text: str) -> Step:
        return answer(ctx, screen, values, text, self.timeout)

    def resume(self, ctx: Context, screen: str, values: Mapping[str, Any], result: Result) -> Step:
        return step_from(ctx, values, result)
