"""`*111#` entries of "Мой МТС" (docs/services.md): МТС Бонус, instalments, monthly spending.

The rules are ussd.selfcare's, the same the app's HTTP API uses; these services only turn
them into screens. Texts are menus/texts.yaml's `bonus.*`, `instalments.*`, `spending.*`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from ussd import selfcare
from ussd.selfcare import Catalogue, Refused
from ussd.services.base import Context, Continue, End, Step, money
from ussd.store import InstalmentPlan


def _choice(text: str, count: int) -> int | None:
    """The 0-based index of option `text` (1…count), or None."""
    text = text.strip()
    if text.isdigit() and 1 <= int(text) <= count:
        return int(text) - 1
    return None


class BonusExchange:
    """`bonus.exchange`: the gift catalogue as a menu; choosing a gift exchanges points."""

    name = "bonus.exchange"
    texts_used = (
        "bonus.header",
        "bonus.item",
        "bonus.done",
        "bonus.short",
        "bonus.sms_exchanged",
        "common.invalid_choice",
    )

    def __init__(self, catalogue: Catalogue | None = None) -> None:
        self.catalogue = catalogue if catalogue is not None else Catalogue.load()

    def start(self, ctx: Context, args: Mapping[str, str]) -> Step:
        return self._menu(ctx, None)

    def _menu(self, ctx: Context, notice: str | None) -> Step:
        header = ctx.t("bonus.header", points=ctx.subscriber.bonus_points)
        if notice:
            header = f"{notice}\n{header}"
        options = [
            f"{i}. " + ctx.t("bonus.item", name=self._name(ctx, g), points=g.points)
            for i, g in enumerate(self.catalogue.gifts, start=1)
        ]
        return Continue("gifts", menu=(header, options, None))

    @staticmethod
    def _name(ctx: Context, gift: selfcare.Gift) -> str:
        return gift.name.get(ctx.language, gift.name["ru"])

    def reply(self, ctx: Context, screen: str, values: Mapping[str, Any], text: str) -> Step:
        index = _choice(text, len(self.catalogue.gifts))
        if index is None:
            return self._menu(ctx, ctx.t("common.invalid_choice"))
        gift = self.catalogue.gifts[index]
        with ctx.store.transaction():
            try:
                selfcare.exchange(ctx.store, self.catalogue, ctx.msisdn, gift.id, ctx.now)
            except Refused:
                return End(
                    ctx.t("bonus.short", points=gift.points, have=ctx.subscriber.bonus_points)
                )
            left = ctx.refresh().bonus_points
            fields = {"gift": self._name(ctx, gift), "points": gift.points, "left": left}
            ctx.send_sms(ctx.msisdn, ctx.t("bonus.sms_exchanged", **fields))
        return End(ctx.t("bonus.done", **fields))


class Instalments:
    """`instalments.menu`: plans, paid and due amounts; "1" pays the next instalment."""

    name = "instalments.menu"
    texts_used = (
        "instalments.none",
        "instalments.header",
        "instalments.item",
        "instalments.detail",
        "instalments.pay",
        "instalments.paid_off",
        "instalments.done",
        "instalments.short",
        "instalments.sms_paid",
        "common.invalid_choice",
    )

    def start(self, ctx: Context, args: Mapping[str, str]) -> Step:
        plans = ctx.store.instalment_plans(ctx.msisdn)
        if not plans:
            return End(ctx.t("instalments.none"))
        if len(plans) == 1:
            return self._detail(ctx, plans[0])
        return self._list(ctx, plans, None)

    def _list(self, ctx: Context, plans: list[InstalmentPlan], notice: str | None) -> Step:
        header = ctx.t("instalments.header")
        if notice:
            header = f"{notice}\n{header}"
        options = [
            f"{i}. " + ctx.t("instalments.item", item=p.item, due=money(_due(p)))
            for i, p in enumerate(plans, start=1)
        ]
        return Continue("plans", menu=(header, options, None))

    def _detail(self, ctx: Context, plan: InstalmentPlan) -> Step:
        view = selfcare.plan_json(plan)
        nxt = view["next"]
        if nxt is None:
            return End(ctx.t("instalments.paid_off", item=plan.item, total=money(plan.total)))
        header = ctx.t(
            "instalments.detail",
            item=plan.item,
            paid=money(view["paid"]),
            total=money(plan.total),
            due=money(view["due"]),
            amount=money(nxt["amount"]),
            date=_date(nxt["due"]),
        )
        options = ["1. " + ctx.t("instalments.pay")]
        return Continue("plan", menu=(header, options, None), values={"plan": plan.id})

    def reply(self, ctx: Context, screen: str, values: Mapping[str, Any], text: str) -> Step:
        plans = ctx.store.instalment_plans(ctx.msisdn)
        if screen == "plans":
            index = _choice(text, len(plans))
            if index is None:
                return self._list(ctx, plans, ctx.t("common.invalid_choice"))
            return self._detail(ctx, plans[index])
        plan = next((p for p in plans if p.id == values.get("plan")), None)
        if plan is None:  # removed by the admin meanwhile
            return End(ctx.t("instalments.none"))
        if _choice(text, 1) is None:
            detail = self._detail(ctx, plan)
            if isinstance(detail, Continue) and detail.menu is not None:
                header, options, footer = detail.menu
                notice = ctx.t("common.invalid_choice")
                return Continue(
                    "plan", menu=(f"{notice}\n{header}", options, footer), values=values
                )
            return detail
        nxt = plan.next
        with ctx.store.transaction():
            try:
                after = selfcare.pay_next(ctx.store, ctx.msisdn, plan.id, ctx.now)
            except Refused as exc:
                if exc.code == "insufficient_funds" and nxt is not None:
                    balance = ctx.refresh().balance
                    return End(
                        ctx.t("instalments.short", amount=money(nxt.amount), balance=money(balance))
                    )
                return self._detail(ctx, plan)
            assert nxt is not None
            view = selfcare.plan_json(after)
            fields = {
                "item": plan.item,
                "seq": nxt.seq,
                "count": view["count"],
                "amount": money(nxt.amount),
                "due": money(view["due"]),
            }
            ctx.send_sms(ctx.msisdn, ctx.t("instalments.sms_paid", **fields))
        ctx.refresh()
        return End(ctx.t("instalments.done", **fields))


class MonthSpending:
    """`spending.month`: this month's spending by category, as one screen."""

    name = "spending.month"
    texts_used = ("spending.month",)

    def start(self, ctx: Context, args: Mapping[str, str]) -> Step:
        first, last = selfcare.period(None, None, ctx.now)
        view = selfcare.spending(ctx.store, ctx.msisdn, first, last)
        sums = {k: money(v) for k, v in view["categories"].items()}
        return End(
            ctx.t("spending.month", since=_date(view["from"]), total=money(view["total"]), **sums)
        )

    def reply(self, ctx: Context, screen: str, values: Mapping[str, Any], text: str) -> Step:
        return self.start(ctx, {})


def _due(plan: InstalmentPlan) -> float:
    return float(selfcare.plan_json(plan)["due"])


def _date(iso: str) -> str:
    """`2026-12-01` → `01.12.2026`, as the operator's screens write dates."""
    return dt.date.fromisoformat(iso).strftime("%d.%m.%Y")
