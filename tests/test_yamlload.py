"""ussd.yamlload: the one YAML loader is safe and bounded, whatever the file holds."""

from __future__ import annotations

import tracemalloc
from pathlib import Path
from typing import Any

import pytest
import yaml

from ussd import yamlload
from ussd.yamlload import YamlError, brief, brief_text


def laughs(levels: int = 9, width: int = 9) -> str:
    """The billion-laughs document: `width ** levels` strings through nested aliases."""
    lines = ["a0: &a0 [" + ", ".join(['"lol"'] * width) + "]"]
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def merges(levels: int) -> str:
    """Merge keys that double the merged node list at each level."""
    lines = ["m0: &m0 {a: 1}"]
    for i in range(1, levels + 1):
        lines.append(f"m{i}: &m{i} {{<<: [*m{i - 1}, *m{i - 1}], k{i}: 1}}")
    return "\n".join(lines) + "\n"


def peak_bytes(text: str) -> tuple[int, str]:
    """Peak Python allocation while loading `text`, and the error message."""
    tracemalloc.start()
    try:
        with pytest.raises(YamlError) as info:
            yamlload.loads(text)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, info.value.message


def test_billion_laughs_is_refused_without_expanding() -> None:
    # 9**10 ≈ 3.5e9 strings if expanded; refusing it must cost about what the text costs.
    peak, message = peak_bytes(laughs(levels=10))
    assert message.startswith("more than 250,000 values once aliases are expanded")
    assert peak < 5_000_000, f"{peak:,} bytes allocated"


def test_merge_key_bomb_is_refused_without_expanding() -> None:
    peak, message = peak_bytes(merges(30))
    assert "aliases are expanded" in message or "levels deep" in message
    assert peak < 5_000_000, f"{peak:,} bytes allocated"


def test_a_small_alias_graph_loads_shared() -> None:
    data = yamlload.loads(laughs(levels=3, width=3))
    assert data["a3"][0][0][0] == ["lol"] * 3
    assert data["a1"] is data["a2"][0]  # aliases stay shared: nothing was copied


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "&a [*a]\n",
            "nested more than 64 levels deep (or an alias inside itself) at line 1, column 1",
        ),
        (
            "&a {k: *a}\n",
            "nested more than 64 levels deep (or an alias inside itself) at line 1, column 1",
        ),
        ("[" * 100 + "]" * 100, "nested more than 64 levels deep"),
        ("x: " + "9" * 5000 + "\n", "not valid YAML: Exceeds the limit (4300 digits)"),
        ("a: [1,\n", "not valid YAML at line 2, column 1"),
        ("a: !!python/object:os.system x\n", "not valid YAML at line 1, column 4"),
        ("{<<: [1]}\n", "not valid YAML at line 1, column 7"),
        ("a: *nowhere\n", "not valid YAML at line 1, column 4"),
    ],
)
def test_refused_documents(text: str, message: str) -> None:
    with pytest.raises(YamlError) as info:
        yamlload.loads(text)
    assert info.value.message.startswith(message)
    assert len(info.value.message) < 200


def test_size_limit(tmp_path: Path) -> None:
    big = "a: '" + "x" * yamlload.MAX_BYTES + "'\n"
    with pytest.raises(YamlError, match="larger than 1 MiB"):
        yamlload.loads(big)
    path = tmp_path / "big.yaml"
    path.write_text(big, encoding="utf-8")
    with pytest.raises(YamlError, match="larger than 1 MiB"):
        yamlload.load_file(path)
    # Characters are not bytes: 300,000 Cyrillic letters are 600,000 bytes.
    assert yamlload.loads("a: " + "я" * 300_000, max_bytes=700_000)["a"] == "я" * 300_000
    with pytest.raises(YamlError, match="larger than 500,000 bytes"):
        yamlload.loads("a: " + "я" * 300_000, max_bytes=500_000)


def test_node_limit_counts_expanded_values() -> None:
    text = "a: &a [1, 2, 3, 4]\nb: [*a, *a, *a]\n"
    assert yamlload.loads(text, max_nodes=100)["b"][2] == [1, 2, 3, 4]
    # root + 2 keys + a (5) + b (1 + 3 × 5) = 24 nodes
    assert yamlload.loads(text, max_nodes=24)
    with pytest.raises(YamlError, match="more than 23 values"):
        yamlload.loads(text, max_nodes=23)


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(YamlError, match=r"^cannot read: No such file"):
        yamlload.load_file(tmp_path / "missing.yaml")
    (tmp_path / "latin1.yaml").write_bytes(b"a: \xff\n")
    with pytest.raises(YamlError, match=r"^not valid UTF-8 at byte 3$"):
        yamlload.load_file(tmp_path / "latin1.yaml")


def test_uses_libyaml_when_built_with_it() -> None:
    if yaml.__with_libyaml__:
        assert yamlload.Loader is yaml.CSafeLoader
    else:  # pragma: no cover - a PyYAML wheel without libyaml
        assert yamlload.Loader is yaml.SafeLoader


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("short", "'short'"),
        (42, "42"),
        (None, "None"),
        ({"a": [1, 2]}, "{'a': [1, 2]}"),
        ("x" * 1000, "'" + "x" * 17 + "..." + "x" * 18 + "'"),
        (10**1000, "<an integer of 3322 bits>"),
        (list(range(1000)), "[0, 1, 2, 3, ...]"),
        ({"k": {"k": {"k": {"k": 1}}}}, "{'k': {'k': {...}}}"),
    ],
)
def test_brief(value: Any, shown: str) -> None:
    assert brief(value) == shown


def test_brief_of_the_expanded_bomb_is_short() -> None:
    # What the loaders quote in errors: a deep shared structure costs a few levels, not 9**9.
    level: Any = ["lol"] * 9
    for _ in range(9):
        level = [level] * 9
    assert len(brief(level)) < 200


def test_brief_text() -> None:
    assert brief_text("abc") == "abc"
    assert brief_text("k" * 100) == "k" * 40 + "…"
