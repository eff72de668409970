"""balance — `*100#` (docs/services.md)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ussd.services.base import Context, End, Step, money


class Balance:
    """The subscriber's balance, as a final screen."""

    name = "balance"
    texts_used = ("balance.text",)

    def start(self, ctx: Context, args: Mapping[str, str]) -> Step:
        return End(ctx.t("balance.text", balance=money(ctx.subscriber.balance)))

    def reply(self, ctx: Context, screen: str, values: Mapping[str, Any], text: str) -> Step:
        return self.start(ctx, {})
