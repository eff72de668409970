"""numbers.enable / disable / status — `*111*828*1#`, `*111*828*2#`, `*111*828#`."""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

from ussd.msisdn import mask
from ussd.services.base import Context, End, Step


class _Final(ABC):
    """A one-screen service: start gives the final screen; replies never come."""

    def reply(self, ctx: Context, screen: str, values: Mapping[str, Any], text: str) -> Step:
        return self.start(ctx, {})

    @abstractmethod
    def start(self, ctx: Context, args: Mapping[str, str]) -> Step:
        """The final screen."""


class NumbersEnable(_Final):
    """Turn number management on; idempotent; an SMS notice when it changes."""

    name = "numbers.enable"
    texts_used = ("numbers.enabled", "numbers.already_enabled", "numbers.sms_enabled")

    def start(self, ctx: Context, args: Mapping[str, str]) -> Step:
        if not ctx.store.set_number_management(ctx.msisdn, True):
            return End(ctx.t("numbers.already_enabled"))
        ctx.send_sms(ctx.msisdn, ctx.t("numbers.sms_enabled"))
        return End(ctx.t("numbers.enabled"))


class NumbersDisable(_Final):
    """Turn number management off; office links (and pending ones) go with it (docs/account.md)."""

    name = "numbers.disable"
    texts_used = ("numbers.disabled", "numbers.already_disabled", "numbers.sms_disabled")

    def start(self, ctx: Context, args: Mapping[str, str]) -> Step:
        with ctx.store.transaction():
            changed = ctx.store.set_number_management(ctx.msisdn, False)
            ctx.store.remove_link(ctx.msisdn, flow="office")
        if not changed:
            return End(ctx.t("numbers.already_disabled"))
        ctx.send_sms(ctx.msisdn, ctx.t("numbers.sms_disabled"))
        return End(ctx.t("numbers.disabled"))


class NumbersStatus(_Final):
    """Whether number management is on and to which account the number is linked (masked)."""

    name = "numbers.status"
    texts_used = (
        "numbers.status_on",
        "numbers.status_off",
        "numbers.status_linked",
        "numbers.status_pending",
        "numbers.status_unlinked",
    )

    def start(self, ctx: Context, args: Mapping[str, str]) -> Step:
        parts = [
            ctx.t("numbers.status_on" if ctx.subscriber.number_management else "numbers.status_off")
        ]
        link = ctx.store.link(ctx.msisdn)
        if link is None:
            parts.append(ctx.t("numbers.status_unlinked"))
        elif link.active(ctx.now):
            parts.append(ctx.t("numbers.status_linked", account=mask(link.account)))
        else:
            when = dt.datetime.fromtimestamp(link.active_at, dt.UTC).strftime(
                "%d.%m.%Y %H:%M"
            )  # UTC
            parts.append(
                ctx.t("numbers.status_pending", account=mask(link.account), active_at=when)
            )
        return End(" ".join(parts))
