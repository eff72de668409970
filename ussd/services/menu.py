"""menu:NAME — YAML menus from menus/*.yaml: menu, input, message, end, action."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ussd.menus import MenuBook
from ussd.services.base import Context, Continue, End, Handoff, Step, subscriber_fields

BACK = "0"
HOME = "00"


class MenuService:
    """Runs a menu book. Values: `stack` of screens behind, `home`, and `fields` typed so far."""

    name = "menu"
    texts_used = ("common.back", "common.home", "common.invalid_choice")

    def __init__(self, book: MenuBook) -> None:
        self.book = book
        # Per screen: does any of its texts take {fields}? Per (screen, language): the option
        # lines of a screen that takes none. Menus are read-only once loaded, and *111# shows
        # the same lines on every dial; rendering them was a fifth of a menu step.
        self._templated: dict[str, bool] = {}
        self._lines: dict[tuple[str, str], tuple[str, ...]] = {}

    def start(self, ctx: Context, args: Mapping[str, str]) -> Step:
        home = args["screen"]
        return self._show(ctx, home, [], home, {})

    def reply(self, ctx: Context, screen: str, values: Mapping[str, Any], text: str) -> Step:
        stack = list(values.get("stack", []))
        home = str(values.get("home", screen))
        fields = dict(values.get("fields", {}))
        text = text.strip()
        # docs/services.md navigation: 0 back, 00 home (98, next page, is handled by the engine).
        if text == HOME:
            return self._show(ctx, home, [], home, fields)
        if text == BACK and stack:
            return self._show(ctx, stack.pop(), stack, home, fields)
        current = self.book[screen]
        if current.type == "menu":
            if text.isdigit() and 1 <= int(text) <= len(current.options):
                target = current.options[int(text) - 1].goto
                return self._show(ctx, target, [*stack, screen], home, fields)
            return self._show(ctx, screen, stack, home, fields, ctx.t("common.invalid_choice"))
        if current.type == "input":
            assert current.field is not None and current.goto is not None
            if current.validate.check(text):
                fields[current.field] = text
                return self._show(ctx, current.goto, [*stack, screen], home, fields)
            assert current.error is not None
            error = current.error.render(ctx.language)
            return self._show(ctx, screen, stack, home, fields, error)
        return self._show(ctx, screen, stack, home, fields)

    def _show(
        self,
        ctx: Context,
        sid: str,
        stack: list[str],
        home: str,
        fields: dict[str, str],
        notice: str | None = None,
    ) -> Step:
        screen = self.book[sid]
        if screen.type == "action":
            assert screen.service is not None
            return Handoff(screen.service, dict(screen.args or {}))
        assert screen.text is not None
        # Subscriber fields are built only for screens that show them (the hot path of *111#).
        templated = self._templated.get(sid)
        if templated is None:
            templated = screen.text.templated or any(o.text.templated for o in screen.options)
            self._templated[sid] = templated
        data = {**subscriber_fields(ctx.subscriber, ctx.texts), **fields} if templated else fields
        body = screen.text.render(ctx.language, data)
        if notice:
            body = f"{notice}\n{body}"
        if screen.type == "end":
            return End(body)
        values = {"stack": stack, "home": home, "fields": fields}
        footer = f"{BACK} {ctx.t('common.back')} {HOME} {ctx.t('common.home')}" if stack else None
        if screen.type == "menu":
            options = None if templated else self._lines.get((sid, ctx.language))
            if options is None:
                options = tuple(
                    f"{i}. {option.text.render(ctx.language, data)}"
                    for i, option in enumerate(screen.options, start=1)
                )
                if not templated:
                    self._lines[sid, ctx.language] = options
            return Continue(sid, menu=(body, options, footer), values=values)
        if screen.type == "message" and footer:
            body = f"{body}\n{footer}"
        return Continue(sid, body, values=values, secret=screen.secret)
