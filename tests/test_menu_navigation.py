"""`*111#` as a handset user walks it (SPEC §3): back to the page left, payments newest first."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import make_config
from ussd.clock import SimulatedClock
from ussd.runtime import Gateway

RU = "79161234567"


@pytest.fixture
def gw() -> Iterator[Gateway]:
    gateway = Gateway.create(make_config(), clock=SimulatedClock(), database=":memory:")
    yield gateway
    gateway.engine.shutdown()
    gateway.store.close()


def test_back_after_a_message_returns_to_the_menu_page_it_was_chosen_on(gw: Gateway) -> None:
    e = gw.engine
    e.dial(RU, "*111#")
    assert e.reply(RU, "98").page == 2
    message = e.reply(RU, "6")  # "Последние платежи" is on page 2
    assert message.text.startswith("Последние платежи")
    back = e.reply(RU, "0")
    assert (back.page, back.pages) == (2, 3)
    assert "6. Последние платежи" in back.text
    # Home is the main menu from its start, wherever it was left.
    e.reply(RU, "6")
    e.reply(RU, "98")
    home = e.reply(RU, "00")
    assert home.page == 1 and home.text.startswith("Мой МТС")


def test_payments_newest_first_in_any_stored_order(gw: Gateway) -> None:
    payments = [
        {"date": "2026-09-01", "amount": 100.0},
        {"date": "2026-11-01", "amount": 500.0},
        {"date": "2026-08-01", "amount": 50.0},
        {"date": "2026-10-01", "amount": 300.0},
    ]
    gw.store.update_subscriber(RU, payments=payments)
    e = gw.engine
    e.dial(RU, "*111#")
    e.reply(RU, "98")
    text = e.reply(RU, "6").text
    assert text.startswith("Последние платежи:\n2026-11-01: +500.00\n2026-10-01: +300.00\n")
    assert "2026-08-01" not in text  # the last three only
