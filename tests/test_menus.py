"""Menu and text files: broken references fail at load, naming file and key path."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import ROOT, make_config
from ussd.clock import SimulatedClock
from ussd.config import ConfigError
from ussd.menus import MenuBook, MenuError, Texts
from ussd.runtime import Gateway


@pytest.fixture
def menus(tmp_path: Path) -> Path:
    target = tmp_path / "menus"
    shutil.copytree(ROOT / "menus", target)
    return target


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_shipped_menus_load() -> None:
    book = MenuBook.load(ROOT / "menus")
    assert "main" in book
    assert len(book["main"].options) == 9
    texts = Texts.load(ROOT / "menus")
    assert texts.get("balance.text", "en", balance="1.00") == "Your balance: 1.00 RUB."


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        ("      goto: package\n", "      goto: nowhere\n", "main.yaml: main.options[3].goto"),
        ("  goto: statement_done", "  goto: gone", "main.yaml: statement.goto"),
        ('type: end\n  text: {ru: "Ваш', 'type: final\n  text: {ru: "Ваш', "balance.type"),
        ('{ru: "Баланс", en: "Balance"}', '{ru: "Баланс"}', "main.options[0].text.en"),
        ("Бонусные баллы: {bonus_points}.", "Баллы: {bonus}.", "bonus.text"),
        (
            "    min_length: 6\n",
            "    min_length: 6\n    colour: red\n",
            "statement.validate.colour",
        ),
        ('    regex: "^[^@', '    regex: "([^@', "statement.validate.regex"),
        ("  service: password.set", "  service: password.reset", "password.service"),
        ("  type: message\n", "  type: message\n  goto: main\n", "package.goto"),
    ],
)
def test_broken_menu_fails_at_load(menus: Path, old: str, new: str, where: str) -> None:
    edit(menus / "main.yaml", old, new)
    with pytest.raises(ConfigError) as info:
        Gateway.create(make_config(), clock=SimulatedClock(), menus_dir=menus)
    assert where in str(info.value)


def test_missing_text_fails_at_start(menus: Path) -> None:
    edit(menus / "texts.yaml", "  prompt_confirm:", "  prompt_confirmation:")
    with pytest.raises(MenuError) as info:
        Gateway.create(make_config(), clock=SimulatedClock(), menus_dir=menus)
    assert "texts.yaml: password.prompt_confirm: missing text" in str(info.value)


def test_bad_yaml_names_the_line(menus: Path) -> None:
    (menus / "extra.yaml").write_text("x: [unclosed\n", encoding="utf-8")
    with pytest.raises(MenuError) as info:
        MenuBook.load(menus)
    assert "extra.yaml: line 2" in str(info.value)


def test_a_yaml_bomb_in_a_menu_file_is_refused_unexpanded(menus: Path) -> None:
    bomb = 'a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n' + "".join(
        f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 10)
    )
    (menus / "extra.yaml").write_text(bomb, encoding="utf-8")
    with pytest.raises(MenuError) as info:
        MenuBook.load(menus)
    assert str(info.value) == (
        "extra.yaml: line 6, column 5: more than 250,000 values once aliases are expanded"
    )
    (menus / "extra.yaml").write_text("x: '" + "x" * (1 << 20) + "'\n", encoding="utf-8")
    with pytest.raises(MenuError, match=r"^extra\.yaml: <file>: larger than 1 MiB$"):
        MenuBook.load(menus)


def test_duplicate_screen_ids_across_files(menus: Path) -> None:
    (menus / "extra.yaml").write_text("balance: {type: end, text: {ru: a, en: b}}\n")
    with pytest.raises(MenuError) as info:
        MenuBook.load(menus)
    assert "balance: screen id already defined in" in str(info.value)


def test_route_to_unknown_menu_screen() -> None:
    config = make_config(ussd={"routes": {"*111#": "menu:nothing"}})
    with pytest.raises(ConfigError) as info:
        Gateway.create(config, clock=SimulatedClock())
    assert info.value.key == 'ussd.routes."*111#"'
