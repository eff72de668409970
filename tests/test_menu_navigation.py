"""`*111#` as a handset user walks it: back to the page left, payments newest first,
secret inputs."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, make_config
from ussd.clock import SimulatedClock
from ussd.menus import MenuBook, MenuError
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


def test_a_secret_menu_input_marks_its_screen(tmp_path: Path) -> None:
    menus = tmp_path / "menus"
    shutil.copytree(ROOT / "menus", menus)
    main = menus / "main.yaml"
    text = main.read_text(encoding="utf-8")
    main.write_text(text.replace("  field: email\n", "  field: email\n  secret: true\n"), "utf-8")
    gw = Gateway.create(make_config(), clock=SimulatedClock(), database=":memory:", menus_dir=menus)
    try:
        e = gw.engine
        assert not e.dial(RU, "*111#").secret
        e.reply(RU, "98")
        e.reply(RU, "98")
        prompt = e.reply(RU, "8")
        assert prompt.text.startswith("Введите e-mail") and prompt.secret
        assert e.reply(RU, "bad").secret  # asked again after a refusal: still secret
        assert not e.reply(RU, "me@example.com").secret
    finally:
        gw.engine.shutdown()
        gw.store.close()


@pytest.mark.parametrize("value", ['"yes"', 1, "null"])
def test_secret_must_be_true_or_false(tmp_path: Path, value: object) -> None:
    menus = tmp_path / "menus"
    shutil.copytree(ROOT / "menus", menus)
    main = menus / "main.yaml"
    text = main.read_text(encoding="utf-8")
    main.write_text(
        text.replace("  field: email\n", f"  field: email\n  secret: {value}\n"), "utf-8"
    )
    with pytest.raises(MenuError, match=r"statement\.secret: expected true or false"):
        MenuBook.load(menus)
