"""The layer rules of docs/design.md, checked on the source: no import cycles among ussd/ and
sim/ modules (an import inside a function counts: it only hides a cycle until run time), the
product never imports the simulator, and the HTTP transport uses only the gateway's public API.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ussd", "sim")

# The command line composes the product and the simulator: `ussd-sim run`, `load`, `phone` and
# `dial --url` hand over to sim/. It is the one part of ussd/ that may import sim
# (docs/design.md "Layer rules").
SHELL = ("ussd.cli", "ussd.commands")

# Gateway attributes a transport must not touch: the store and the texts are the core's own
# (docs/design.md "The engine's public API" lists what a transport uses instead). The
# simulator, whose in-process target holds a Gateway, keeps the same rule.
PRIVATE_TO_THE_CORE = ("store", "texts", "menus", "bus")
TRANSPORTS = ("ussd.http", "ussd.smpp", "sim")


@dataclass(frozen=True, slots=True)
class Edge:
    """`source` imports `target` at `line`; `where` is "module" or "function"."""

    source: str
    target: str
    line: int
    where: str


def modules(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, Path]:
    """Dotted module name → file, for every .py file under the packages."""
    found: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _dynamic_import(call: ast.Call) -> bool:
    func = call.func
    return (isinstance(func, ast.Attribute) and func.attr == "import_module") or (
        isinstance(func, ast.Name) and func.id == "import_module"
    )


def imports(name: str, path: Path, known: Mapping[str, Path]) -> Iterator[Edge]:
    """The imports of one module that name another known module, at any depth.

    Imports under `if TYPE_CHECKING:` never run, so they make no cycle and are skipped.
    `from pkg import name` is an edge to `pkg.name` when that is a module, else to `pkg`.
    `importlib.import_module(f"pkg.{name}")` (how ussd/cli.py finds the subcommands) is an
    edge to every module under `pkg.`; with a plain string, to that module.
    """
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]

    def walk(node: ast.AST, where: str) -> Iterator[Edge]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking(child):
                for other in child.orelse:
                    yield from walk_one(other, where)
                continue
            yield from walk_one(child, where)

    def walk_one(node: ast.AST, where: str) -> Iterator[Edge]:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            where = "function"
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Edge(name, alias.name, node.lineno, where)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*parts, base] if base else parts)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                yield Edge(name, sub if sub in known else base, node.lineno, where)
        elif isinstance(node, ast.Call) and _dynamic_import(node) and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                yield Edge(name, arg.value, node.lineno, where)
            elif isinstance(arg, ast.JoinedStr) and arg.values:
                head = arg.values[0]
                prefix = head.value if isinstance(head, ast.Constant) else ""
                if isinstance(prefix, str) and prefix:
                    for target in known:
                        if target.startswith(prefix):
                            yield Edge(name, target, node.lineno, where)
        yield from walk(node, where)

    for edge in walk(ast.parse(path.read_text(encoding="utf-8")), "module"):
        if edge.target in known and edge.target != name:
            yield edge


def graph(root: Path = ROOT, packages: tuple[str, ...] = PACKAGES) -> dict[str, list[Edge]]:
    """The import graph of the packages, function-level imports included."""
    known = modules(root, packages)
    return {name: list(imports(name, path, known)) for name, path in known.items()}


def cycles(edges: Mapping[str, list[Edge]]) -> list[list[Edge]]:
    """One cycle (as its edges) per strongly connected group of modules; [] when acyclic."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    # Tarjan's algorithm, iterative: the graph has ~100 modules, recursion would do, but the
    # same code then works for any size.
    for start in edges:
        if start in index:
            continue
        work = [(start, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            targets = [e.target for e in edges[node]]
            if i < len(targets):
                work.append((node, i + 1))
                target = targets[i]
                if target not in index:
                    work.append((target, 0))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
            if low[node] == index[node]:
                group = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.add(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(group)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return [_one_cycle(edges, group) for group in groups]


def _one_cycle(edges: Mapping[str, list[Edge]], group: set[str]) -> list[Edge]:
    """A shortest path back to the start within a strongly connected group."""
    start = min(group)
    paths: dict[str, list[Edge]] = {start: []}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for edge in edges[node]:
                if edge.target == start:
                    return [*paths[node], edge]
                if edge.target in group and edge.target not in paths:
                    paths[edge.target] = [*paths[node], edge]
                    following.append(edge.target)
        frontier = following
    raise AssertionError(f"{sorted(group)} is not strongly connected")


def _describe(cycle: list[Edge]) -> str:
    return " → ".join(f"{e.source}:{e.line} ({e.where})" for e in cycle) + f" → {cycle[0].source}"


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


# -- the rules ----------------------------------------------------------------------------------


@functools.cache
def _ours() -> dict[str, list[Edge]]:
    return graph()


def test_no_import_cycles_among_ussd_and_sim_modules() -> None:
    found = [_describe(c) for c in cycles(_ours())]
    assert found == []


def test_the_product_never_imports_the_simulator() -> None:
    offenders = [
        f"{e.source}:{e.line} imports {e.target}"
        for edges in _ours().values()
        for e in edges
        if e.source.startswith("ussd")
        and not _within(e.source, SHELL)
        and _within(e.target, ("sim",))
    ]
    assert offenders == []


def test_only_the_shell_imports_the_shell() -> None:
    """sim/ sits below the command line: it uses ussd's product modules, never ussd.commands."""
    offenders = [
        f"{e.source}:{e.line} imports {e.target}"
        for edges in _ours().values()
        for e in edges
        if _within(e.target, SHELL) and not _within(e.source, SHELL)
    ]
    assert offenders == []


def _reach_ins(path: Path, root: Path = ROOT) -> list[str]:
    """`<gateway>.store`-style reads in a transport module (any name ending in gateway or gw)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Attribute) or node.attr not in PRIVATE_TO_THE_CORE:
            continue
        owner = node.value
        owner_name = (
            owner.id
            if isinstance(owner, ast.Name)
            else owner.attr
            if isinstance(owner, ast.Attribute)
            else ""
        )
        if owner_name.lstrip("_").endswith(("gateway", "gw")):
            found.append(f"{path.relative_to(root)}:{node.lineno} {owner_name}.{node.attr}")
    return sorted(found)


def test_transports_use_only_the_gateways_public_api() -> None:
    files = [p for name, p in modules(ROOT).items() if _within(name, TRANSPORTS)]
    assert files, "no transport modules found: the check would pass vacuously"
    assert [hit for path in files for hit in _reach_ins(path)] == []


# The SMPP transport reaches the SMS centre's records through SmsCentre's public methods
# (receipts, held concatenated parts, its transaction), never through any object's store.
NO_STORE_AT_ALL = ("ussd.smpp",)


def _store_reads(path: Path, root: Path = ROOT) -> list[str]:
    """Every `<anything>.store` attribute read in a module."""
    return sorted(
        f"{path.relative_to(root)}:{node.lineno} .store"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Attribute) and node.attr == "store"
    )


def test_the_smpp_transport_never_touches_a_store() -> None:
    files = [p for name, p in modules(ROOT).items() if _within(name, NO_STORE_AT_ALL)]
    assert files, "no SMPP modules found: the check would pass vacuously"
    assert [hit for path in files for hit in _store_reads(path)] == []


# -- the checks can fail ------------------------------------------------------------------------


def _package(root: Path, files: Mapping[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


@pytest.mark.parametrize(
    ("a", "b", "cyclic"),
    [
        ("from pkg import b\n", "from pkg import a\n", True),
        # A function-level import still closes the cycle; it only runs later.
        ("from pkg import b\n", "def f():\n    from pkg.a import x\n", True),
        ("import pkg.b\n", "class C:\n    def m(self):\n        import pkg.a\n", True),
        ("from . import b\n", "from .a import x\n", True),
        # Type-only imports never run.
        ("from pkg import b\n", "if TYPE_CHECKING:\n    from pkg.a import X\n", False),
        ("from pkg import b\n", "import os\n", False),
        # A module found by name at run time is imported all the same.
        ("import importlib\nimportlib.import_module(f'pkg.{n}')\n", "from pkg import a\n", True),
        ("from importlib import import_module\nimport_module('pkg.b')\n", "import pkg.a\n", True),
    ],
)
def test_cycle_finder(tmp_path: Path, a: str, b: str, cyclic: bool) -> None:
    _package(tmp_path, {"pkg/__init__.py": "", "pkg/a.py": a, "pkg/b.py": b})
    found = cycles(graph(tmp_path, ("pkg",)))
    assert bool(found) is cyclic
    if cyclic:
        assert {e.source for e in found[0]} == {"pkg.a", "pkg.b"}


def test_reach_in_finder(tmp_path: Path) -> None:
    path = tmp_path / "t.py"
    path.write_text(
        "x = gateway.store.subscriber('1')\ny = self.gateway.texts\nz = request.app[K].store\n"
        "ok = gw.accounts.subscriber('1')\n",
        encoding="utf-8",
    )
    assert _reach_ins(path, tmp_path) == ["t.py:1 gateway.store", "t.py:2 gateway.texts"]


def test_store_read_finder(tmp_path: Path) -> None:
    path = tmp_path / "t.py"
    path.write_text(
        "x = sms.store\ny = self.sms.store.receipts_of(1)\nok = self.sms.receipts_of(1)\n"
        "store = 1\n",
        encoding="utf-8",
    )
    assert _store_reads(path, tmp_path) == ["t.py:1 .store", "t.py:2 .store"]
