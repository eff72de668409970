"""services.menu — turn the subscriber's optional services on and off."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ussd.services.base import Context, Continue, End, Step


class ServicesMenu:
    """A menu built from the subscriber's services; choosing one flips it."""

    name = "services.menu"
    texts_used = (
        "services.header",
        "services.none",
        "services.item",
        "services.switched",
        "common.on",
        "common.off",
        "common.invalid_choice",
    )

    def start(self, ctx: Context, args: Mapping[str, str]) -> Step:
        return self._menu(ctx, None)

    def reply(self, ctx: Context, screen: str, values: Mapping[str, Any], text: str) -> Step:
        names = sorted(ctx.subscriber.services)
        text = text.strip()
        if not (text.isdigit() and 1 <= int(text) <= len(names)):
            return self._menu(ctx, ctx.t("common.invalid_choice"))
        name = names[int(text) - 1]
        services = dict(ctx.subscriber.services)
        services[name] = not services[name]
        ctx.store.update_subscriber(ctx.msisdn, services=services)
        state = ctx.t("common.on" if services[name] else "common.off")
        return End(ctx.t("services.switched", name=self._label(ctx, name), state=state))

    def _menu(self, ctx: Context, notice: str | None) -> Step:
        names = sorted(ctx.subscriber.services)
        if not names:
            return End(ctx.t("services.none"))
        options = [
            f"{i}. "
            + ctx.t(
                "services.item",
                name=self._label(ctx, name),
                state=ctx.t("common.on" if ctx.subscriber.services[name] else "common.off"),
            )
            for i, name in enumerate(names, start=1)
        ]
        header = ctx.t("services.header")
        if notice:
            header = f"{notice}\n{header}"
        return Continue("list", menu=(header, options, None))

    @staticmethod
    def _label(ctx: Context, name: str) -> str:
        key = f"services.names.{name}"
        return ctx.t(key) if key in ctx.texts else name
