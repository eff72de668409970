"""The one YAML loader of config, menus and scenarios: safe tags only, and bounded.

A YAML file is input a user hands us, so loading it must cost bounded memory and time whatever
it holds (docs/config.md, "Limits"):

- the text is at most `MAX_BYTES`;
- aliases are cheap to parse (the composed graph shares the anchored node) but every reader
  after that (validation, `repr()` in an error, `yaml.safe_dump` of a step) walks the expanded
  tree, so the expanded node count is measured on the node graph, before anything is built,
  and a document above `MAX_NODES` is refused; recursive aliases and deep nesting stop at
  `MAX_DEPTH`;
- error messages quote values through `brief()`, never a whole value.

libyaml's C parser is used where PyYAML was built with it, else the pure-Python one; both
build only plain types (SafeConstructor).
"""

from __future__ import annotations

import os
import reprlib
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_BYTES = 1 << 20  # 1 MiB: the shipped config is ~3 KiB, a long scenario file ~50 KiB
MAX_NODES = 250_000  # after alias expansion
MAX_DEPTH = 64  # nesting levels; config and scenarios use fewer than ten

Loader: type[yaml.SafeLoader] | Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class YamlError(Exception):
    """Text that cannot be loaded: not readable, not UTF-8, not YAML, or over a limit."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line  # 1-based, when known
        self.column = column


def loads(text: str, *, max_bytes: int = MAX_BYTES, max_nodes: int = MAX_NODES) -> Any:
    """The document in `text` as plain Python data; YamlError for anything wrong with it."""
    # len(text) ≤ its UTF-8 size, so the cheap test first; encode only when it may matter.
    if len(text) > max_bytes or (len(text) * 4 > max_bytes and _utf8_size(text) > max_bytes):
        raise YamlError(f"larger than {_size(max_bytes)}")
    loader = Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _measure(node, max_nodes)
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = _first_line(exc.problem or exc.context or "")
        line = mark.line + 1 if mark else None
        column = mark.column + 1 if mark else None
        where = f" at line {line}, column {column}" if mark else ""
        raise YamlError(
            f"not valid YAML{where}" + (f": {problem}" if problem else ""), line, column
        ) from None
    except yaml.YAMLError as exc:
        raise YamlError(f"not valid YAML: {_first_line(str(exc))}") from None
    except RecursionError:
        # The composer recurses per nesting level; MAX_DEPTH normally stops us first.
        raise YamlError(f"nested more than {MAX_DEPTH} levels deep") from None
    except ValueError as exc:
        # int() refuses integers of more than 4,300 digits (CVE-2020-10735 limit).
        raise YamlError(f"not valid YAML: {_first_line(str(exc))}") from None
    finally:
        loader.dispose()


def load_file(
    path: str | os.PathLike[str], *, max_bytes: int = MAX_BYTES, max_nodes: int = MAX_NODES
) -> Any:
    """`loads` of a file's UTF-8 text; reads at most max_bytes + 1 bytes of it."""
    try:
        with Path(path).open("rb") as f:
            raw = f.read(max_bytes + 1)
    except OSError as exc:
        raise YamlError(f"cannot read: {exc.strerror or exc}") from None
    if len(raw) > max_bytes:
        raise YamlError(f"larger than {_size(max_bytes)}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise YamlError(f"not valid UTF-8 at byte {exc.start}") from None
    return loads(text, max_bytes=max_bytes, max_nodes=max_nodes)


def _measure(root: Node, limit: int) -> None:
    """Refuse a node graph whose expanded tree has more than `limit` nodes or MAX_DEPTH levels.

    Sizes are memoised per node, so a billion-laughs graph costs as many steps as it has
    distinct nodes. A recursive alias never gets a size and so hits the depth limit.
    """
    sizes: dict[int, int] = {}
    stack: list[tuple[Node, int, bool]] = [(root, 0, False)]
    while stack:
        node, depth, children_done = stack.pop()
        key = id(node)
        if isinstance(node, ScalarNode):
            sizes[key] = 1
            continue
        children = _children(node)
        if children_done:
            total = 1 + sum(sizes[id(c)] for c in children)
            if total > limit:
                mark = node.start_mark
                raise YamlError(
                    f"more than {limit:,} values once aliases are expanded "
                    f"at line {mark.line + 1}, column {mark.column + 1}",
                    mark.line + 1,
                    mark.column + 1,
                )
            sizes[key] = total
            continue
        if key in sizes:
            continue
        if depth >= MAX_DEPTH:
            mark = node.start_mark
            raise YamlError(
                f"nested more than {MAX_DEPTH} levels deep (or an alias inside itself) "
                f"at line {mark.line + 1}, column {mark.column + 1}",
                mark.line + 1,
                mark.column + 1,
            )
        stack.append((node, depth, True))
        stack.extend((c, depth + 1, False) for c in children if id(c) not in sizes)


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    assert isinstance(node, MappingNode)
    return [n for pair in node.value for n in pair]


def _utf8_size(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _size(n: int) -> str:
    return f"{n // (1 << 20)} MiB" if n % (1 << 20) == 0 else f"{n:,} bytes"


def _first_line(text: str) -> str:
    return brief_text(text.strip().splitlines()[0] if text.strip() else "", 120)


# -- short forms of values for error messages ------------------------------------------------


class _Brief(reprlib.Repr):
    """reprlib with small limits; huge integers are described, not converted to digits."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel = 2
        self.maxdict = 4
        self.maxlist = self.maxtuple = self.maxset = self.maxfrozenset = 4
        self.maxstring = 40
        self.maxlong = 40
        self.maxother = 40

    def repr_int(self, x: int, level: int) -> str:
        if x.bit_length() > 128:
            return f"<an integer of {x.bit_length()} bits>"
        return super().repr_int(x, level)


_BRIEF = _Brief()


def brief(value: object) -> str:
    """A `repr()` of a few hundred characters at most, however large or deep the value."""
    return _BRIEF.repr(value)


def brief_text(text: str, limit: int = 40) -> str:
    """`text` itself, or its first `limit` characters and an ellipsis (keys in key paths)."""
    return text if len(text) <= limit else text[:limit] + "…"
