"""ss — supplementary-service requests (TS 22.030 §6.5.2, Annex B) answered like a network.

The router sends every dial string of kind "ss" here (ussd/routing.py); the rules and the
state are ussd/ss.py, the screens menus/texts.yaml (`ss.*`), the reference docs/network.md.
Every request ends with one final screen: an SS operation is a single request and result
(TS 24.080 §2.1), never a dialog.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from ussd import ss
from ussd.dialstring import DialStringError, parse
from ussd.services.base import Context, End, Step

NAMES: Final = (
    *ss.FORWARDING,
    ss.CALL_WAITING,
    ss.CLIP,
    ss.CLIR,
    *sorted(ss.NOT_PROVISIONED),
    *ss.BARRING,
    ss.BARRING_PASSWORD,
)


class Supplementary:
    """One SS request → one final screen, the subscriber's SS state updated."""

    name = "ss"
    texts_used = (
        "common.not_supported",
        "ss.for_basic",
        *(f"ss.names.{code}" for code in NAMES),
        *(f"ss.basic.{b}" for b in ss.BASIC_ORDER),
        "ss.registered",
        "ss.activated",
        "ss.deactivated",
        "ss.erased",
        "ss.not_provisioned",
        "ss.password_changed",
        "ss.clip.provisioned",
        *(f"ss.clir.{mode}" for mode in ss.CLIR_MODES),
        "ss.status.header",
        "ss.status.not_active",
        "ss.status.registered",
        "ss.status.active_to",
        "ss.status.active_after",
        "ss.status.active_for",
        "ss.error.format",
        "ss.error.illegal_operation",
        "ss.error.bad_number",
        "ss.error.no_number",
        "ss.error.basic_unknown",
        "ss.error.not_applicable",
        "ss.error.no_reply_time",
        "ss.error.password_needed",
        "ss.error.password_wrong",
        "ss.error.password_blocked",
        "ss.error.password_format",
        "ss.error.password_mismatch",
    )

    def start(self, ctx: Context, args: Mapping[str, str]) -> Step:
        try:
            dial = parse(args.get("text", ""))
        except DialStringError:
            dial = None
        if dial is None or dial.kind != "ss":
            return End(ctx.t("common.not_supported"), cause="not_supported")
        before = ss.load_state(ctx.store, ctx.msisdn)
        answer, after = ss.apply(before, dial)
        if after != before:
            ss.save_state(ctx.store, ctx.msisdn, after, ctx.now)
        cause = "not_supported" if answer is ss.NOT_SUPPORTED else ""
        return End(render(ctx, answer), cause=cause)

    def reply(self, ctx: Context, screen: str, values: Mapping[str, Any], text: str) -> Step:
        # Never reached: start() always ends. A reply that still comes gets the same answer.
        return End(ctx.t("common.not_supported"))


def render(ctx: Context, answer: ss.Answer) -> str:
    """The screen of an Answer in the subscriber's language."""
    if answer is ss.NOT_SUPPORTED:
        return ctx.t("common.not_supported")
    basic = ", ".join(ctx.t(f"ss.basic.{b}") for b in answer.basics)
    service = ""
    if answer.code is not None:
        service = ctx.t(f"ss.names.{answer.code}")
        # Results name the basic services the request named after the service; "active for
        # telephony, fax" and the errors name them in their own words.
        if answer.basics and not answer.key.startswith(("status.active", "error.")):
            service = ctx.t("ss.for_basic", service=service, basic=basic)
    fields = {"service": service, "basic": basic, "code": answer.code or "", **answer.fields}
    lines = [ctx.t(f"ss.{answer.key}", **fields)] if answer.key else []
    lines.extend(render(ctx, line) for line in answer.lines)
    return "\n".join(lines)
