"""Loader for menus/*.yaml and menus/texts.yaml (docs/services.md); errors name the file and key."""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ussd import resources, yamlload
from ussd.yamlload import brief

LANGUAGES = ("ru", "en")
SCREEN_TYPES = ("menu", "input", "message", "end", "action")
# Fields every text may use ({field}), filled from the subscriber (ussd.services.base.fields).
SUBSCRIBER_FIELDS = frozenset(
    {
        "msisdn",
        "balance",
        "package_minutes",
        "package_sms",
        "package_mb",
        "bonus_points",
        "payments",
        "language",
    }
)
TEXTS_FILE = "texts.yaml"
# The "МТС Бонус" gift catalogue lives beside the menus but holds no screens (ussd/selfcare.py).
CATALOGUE_FILE = "bonus.yaml"
# Files of menus/ that are not menus: the website's texts (lk.yaml) are loaded on their own.
NOT_SCREENS = frozenset({TEXTS_FILE, CATALOGUE_FILE, "lk.yaml"})


class MenuError(Exception):
    """A menu or text file is wrong; the message names the file and the key path."""

    def __init__(self, file: str, path: str, message: str) -> None:
        super().__init__(f"{file}: {path}: {message}")
        self.file = file
        self.path = path


class _Missing(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


@dataclass(frozen=True, slots=True)
class Text:
    """One text in every language."""

    by_language: Mapping[str, str]

    def render(self, language: str, fields: Mapping[str, Any] | None = None) -> str:
        """The text in `language` (falling back to ru), with {field} placeholders filled."""
        template = self.by_language.get(language) or self.by_language["ru"]
        if not fields or "{" not in template:
            return template
        return template.format_map(_Missing({k: str(v) for k, v in fields.items()}))

    def placeholders(self) -> set[str]:
        names: set[str] = set()
        for template in self.by_language.values():
            names.update(f for _, f, _, _ in string.Formatter().parse(template) if f)
        return names

    @property
    def templated(self) -> bool:
        """True when some language's text has a {field} to fill."""
        return any("{" in template for template in self.by_language.values())


def _text(value: object, file: str, path: str) -> Text:
    if not isinstance(value, dict):
        raise MenuError(file, path, "expected a mapping of language to text, e.g. {ru: …, en: …}")
    for language in LANGUAGES:
        if not isinstance(value.get(language), str) or not value[language]:
            raise MenuError(file, f"{path}.{language}", "missing text")
    extra = set(value) - set(LANGUAGES)
    if extra:
        raise MenuError(file, f"{path}.{sorted(extra)[0]}", "unknown language")
    text = Text(dict(value))
    try:
        text.placeholders()
    except ValueError as exc:
        raise MenuError(file, path, f"bad {{field}} template: {exc}") from exc
    return text


class Texts:
    """Service texts by dotted key (`password.prompt_new`)."""

    def __init__(self, texts: Mapping[str, Text], file: str = TEXTS_FILE) -> None:
        self._texts = dict(texts)
        self.file = file

    @classmethod
    def load(cls, directory: Path | None = None) -> Texts:
        path = (directory or resources.path("menus")) / TEXTS_FILE
        data = _read(path)
        texts: dict[str, Text] = {}

        def walk(node: object, prefix: str) -> None:
            if isinstance(node, dict) and set(node) and set(node) <= set(LANGUAGES):
                texts[prefix] = _text(node, path.name, prefix)
            elif isinstance(node, dict) and node:
                for key, child in node.items():
                    walk(child, f"{prefix}.{key}" if prefix else str(key))
            else:
                raise MenuError(path.name, prefix or "<root>", "expected texts or a group of texts")

        walk(data, "")
        return cls(texts, path.name)

    def __contains__(self, key: str) -> bool:
        return key in self._texts

    def keys(self) -> Iterable[str]:
        return self._texts.keys()

    def get(self, key: str, language: str, **fields: Any) -> str:
        """The text for key in language; KeyError names a missing key (a bug, caught by tests)."""
        return self._texts[key].render(language, fields)

    def require(self, keys: Iterable[str]) -> None:
        """Fail at start when code asks for a text the file lacks."""
        for key in keys:
            if key not in self._texts:
                raise MenuError(self.file, key, "missing text")


@dataclass(frozen=True, slots=True)
class Option:
    text: Text
    goto: str


@dataclass(frozen=True, slots=True)
class Validation:
    min_length: int = 0
    max_length: int = 182
    regex: re.Pattern[str] | None = None
    digits: bool = False

    def check(self, value: str) -> bool:
        if not self.min_length <= len(value) <= self.max_length:
            return False
        if self.digits and not value.isdigit():
            return False
        return self.regex is None or self.regex.search(value) is not None


@dataclass(frozen=True, slots=True)
class MenuScreen:
    """One screen of a YAML menu."""

    id: str
    type: str
    file: str
    text: Text | None = None
    options: tuple[Option, ...] = ()
    field: str | None = None
    validate: Validation = Validation()
    error: Text | None = None
    goto: str | None = None
    service: str | None = None
    args: Mapping[str, str] | None = None
    secret: bool = False  # an input that is a password or PIN: masked, never recorded


_KEYS = {
    "menu": {"type", "text", "options"},
    "input": {"type", "text", "field", "validate", "error", "goto", "secret"},
    "message": {"type", "text"},
    "end": {"type", "text"},
    "action": {"type", "service", "args"},
}


def _read(path: Path) -> Any:
    try:
        return yamlload.load_file(path)
    except yamlload.YamlError as exc:
        where = f"line {exc.line}, column {exc.column}" if exc.line is not None else "<file>"
        raise MenuError(
            path.name, where, re.sub(r" at line \d+, column \d+", "", exc.message)
        ) from None


def _screen(sid: str, raw: object, file: str) -> MenuScreen:
    if not isinstance(raw, dict):
        raise MenuError(file, sid, "expected a mapping with a `type`")
    kind = raw.get("type")
    if kind not in SCREEN_TYPES:
        raise MenuError(file, f"{sid}.type", f"expected one of {', '.join(SCREEN_TYPES)}")
    unknown = set(raw) - _KEYS[kind]
    if unknown:
        raise MenuError(file, f"{sid}.{sorted(unknown)[0]}", f"unknown key for a {kind} screen")
    text = _text(raw.get("text"), file, f"{sid}.text") if kind != "action" else None
    options: list[Option] = []
    if kind == "menu":
        raw_options = raw.get("options")
        if not isinstance(raw_options, list) or not raw_options:
            raise MenuError(file, f"{sid}.options", "expected a non-empty list")
        if len(raw_options) > 97:
            # 98 is "next page", 0/00 are back/home (docs/services.md navigation).
            raise MenuError(file, f"{sid}.options", "at most 97 options")
        for i, option in enumerate(raw_options):
            path = f"{sid}.options[{i}]"
            if not isinstance(option, dict) or set(option) != {"text", "goto"}:
                raise MenuError(file, path, "expected {text: …, goto: screen}")
            if not isinstance(option["goto"], str):
                raise MenuError(file, f"{path}.goto", "expected a screen id")
            options.append(Option(_text(option["text"], file, f"{path}.text"), option["goto"]))
    validation = Validation()
    field = error = goto = None
    if kind == "input":
        field = raw.get("field")
        if not isinstance(field, str) or not field.isidentifier():
            raise MenuError(file, f"{sid}.field", "expected a field name")
        goto = raw.get("goto")
        if not isinstance(goto, str):
            raise MenuError(file, f"{sid}.goto", "expected a screen id")
        error = _text(raw.get("error"), file, f"{sid}.error")
        validation = _validation(raw.get("validate") or {}, file, f"{sid}.validate")
        if not isinstance(raw.get("secret", False), bool):
            raise MenuError(file, f"{sid}.secret", "expected true or false")
    service = args = None
    if kind == "action":
        service = raw.get("service")
        if not isinstance(service, str) or not service:
            raise MenuError(file, f"{sid}.service", "expected a service name")
        args = raw.get("args") or {}
        if not isinstance(args, dict) or not all(isinstance(v, str) for v in args.values()):
            raise MenuError(file, f"{sid}.args", "expected a mapping of strings")
    return MenuScreen(
        id=sid,
        type=kind,
        file=file,
        text=text,
        options=tuple(options),
        field=field,
        validate=validation,
        error=error,
        goto=goto,
        service=service,
        args=args,
        secret=bool(raw.get("secret", False)),
    )


def _validation(raw: object, file: str, path: str) -> Validation:
    if not isinstance(raw, dict):
        raise MenuError(file, path, "expected a mapping")
    unknown = set(raw) - {"min_length", "max_length", "regex", "digits"}
    if unknown:
        raise MenuError(file, f"{path}.{sorted(unknown)[0]}", "unknown key")
    lengths = {}
    for key, default in (("min_length", 0), ("max_length", 182)):
        value = raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise MenuError(file, f"{path}.{key}", "expected a whole number ≥ 0")
        lengths[key] = value
    if lengths["min_length"] > lengths["max_length"]:
        raise MenuError(file, f"{path}.min_length", "greater than max_length")
    regex = raw.get("regex")
    compiled = None
    if regex is not None:
        try:
            compiled = re.compile(str(regex))
        except re.error as exc:
            raise MenuError(file, f"{path}.regex", f"bad regular expression: {exc}") from exc
    digits = raw.get("digits", False)
    if not isinstance(digits, bool):
        raise MenuError(file, f"{path}.digits", "expected true or false")
    return Validation(lengths["min_length"], lengths["max_length"], compiled, digits)


class MenuBook:
    """Every screen of every menus/*.yaml file (one namespace of screen ids)."""

    def __init__(self, screens: Mapping[str, MenuScreen]) -> None:
        self.screens = dict(screens)

    @classmethod
    def load(cls, directory: Path | None = None) -> MenuBook:
        directory = directory or resources.path("menus")
        screens: dict[str, MenuScreen] = {}
        for path in sorted(directory.glob("*.yaml")):
            if path.name in NOT_SCREENS:
                continue
            data = _read(path)
            if not isinstance(data, dict):
                raise MenuError(path.name, "<root>", "expected a mapping of screen id to screen")
            for sid, raw in data.items():
                if sid in screens:
                    raise MenuError(
                        path.name, str(sid), f"screen id already defined in {screens[sid].file}"
                    )
                screens[str(sid)] = _screen(str(sid), raw, path.name)
        book = cls(screens)
        book._check_references()
        return book

    def _check_references(self) -> None:
        inputs = {s.field for s in self.screens.values() if s.field}
        allowed = SUBSCRIBER_FIELDS | inputs
        for screen in self.screens.values():
            for i, option in enumerate(screen.options):
                if option.goto not in self.screens:
                    raise MenuError(
                        screen.file,
                        f"{screen.id}.options[{i}].goto",
                        f"no screen {brief(option.goto)}",
                    )
            if screen.goto is not None and screen.goto not in self.screens:
                raise MenuError(screen.file, f"{screen.id}.goto", f"no screen {brief(screen.goto)}")
            for key in ("text", "error"):
                text = getattr(screen, key)
                if text is not None:
                    unknown = text.placeholders() - allowed
                    if unknown:
                        raise MenuError(
                            screen.file,
                            f"{screen.id}.{key}",
                            f"unknown field {{{sorted(unknown)[0]}}}",
                        )

    def check_services(self, known: Iterable[str]) -> None:
        """Every action names a service that exists (checked at start, docs/services.md)."""
        names = set(known)
        for screen in self.screens.values():
            if screen.service is not None and screen.service not in names:
                raise MenuError(
                    screen.file, f"{screen.id}.service", f"unknown service {brief(screen.service)}"
                )

    def __contains__(self, screen_id: str) -> bool:
        return screen_id in self.screens

    def __getitem__(self, screen_id: str) -> MenuScreen:
        return self.screens[screen_id]
