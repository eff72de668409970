"""The built-in services (docs/services.md), by the names `ussd.routes` uses."""

from __future__ import annotations

from ussd.menus import MenuBook
from ussd.selfcare import Catalogue
from ussd.services.balance import Balance
from ussd.services.base import Service
from ussd.services.menu import MenuService
from ussd.services.numbers import NumbersDisable, NumbersEnable, NumbersStatus
from ussd.services.password import PasswordSet
from ussd.services.selfcare import BonusExchange, Instalments, MonthSpending
from ussd.services.supplementary import Supplementary
from ussd.services.toggles import ServicesMenu


def builtin(book: MenuBook, catalogue: Catalogue | None = None) -> dict[str, Service]:
    """Every service by name; `menu` runs YAML menus (routes say `menu:SCREEN`).

    `catalogue` is the "МТС Бонус" gift list (menus/bonus.yaml, loaded when not given).
    """
    services: list[Service] = [
        PasswordSet(),
        NumbersEnable(),
        NumbersDisable(),
        NumbersStatus(),
        Balance(),
        ServicesMenu(),
        BonusExchange(catalogue),
        Instalments(),
        MonthSpending(),
        MenuService(book),
        Supplementary(),
    ]
    return {s.name: s for s in services}
