"""ussd.config (docs/config.md): the shipped file loads; every bad value names its key."""

from __future__ import annotations

import copy
import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from ussd import config, resources
from ussd.config import ConfigError
from ussd.yamlload import brief

SHIPPED = resources.path("config.yaml")


def shipped() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))
    return data


def test_shipped_config_loads() -> None:
    cfg = config.load(SHIPPED)
    assert cfg.source == str(SHIPPED)
    assert cfg.operator.country_code == "7"
    assert cfg.operator.trunk_prefix == "8"
    assert cfg.ussd.reply_timeout == 30.0
    assert cfg.ussd.dialog_timeout == 180.0
    assert cfg.ussd.routes["*111*17#"] == "password.set"
    assert cfg.ussd.routes["*111#"] == "menu:main"
    assert cfg.sms.validity == 86400.0
    assert cfg.links.office_delay == 2 * 86400.0
    assert cfg.auth.lockout == 900.0
    assert cfg.smpp.listen == ("127.0.0.1", 2775)
    assert cfg.smpp.accounts[0].system_id == "harness"
    assert cfg.http.listen == ("127.0.0.1", 8080)
    assert cfg.subscribers.seed[0].msisdn == "79161234567"
    assert cfg.subscribers.seed[0].payments[0] == {"date": "2026-11-01", "amount": 500.0}


def test_empty_document_gives_the_defaults() -> None:
    assert config.from_mapping(None) == config.Config(source="<mapping>")


def test_config_is_frozen() -> None:
    cfg = config.from_mapping({})
    with pytest.raises(AttributeError):
        cfg.clock_mode = "simulated"  # type: ignore[misc]


def put(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A change to the shipped document: set the value at a dotted path (`a.b[0].c`)."""

    def change(data: dict[str, Any]) -> None:
        node: Any = data
        parts = path.replace("[", ".[").split(".")
        for part in parts[:-1]:
            node = node[int(part[1:-1])] if part.startswith("[") else node.setdefault(part, {})
        last = parts[-1]
        if last.startswith("["):
            node[int(last[1:-1])] = value
        else:
            node[last] = value

    return change


A0 = "smpp.accounts[0]"
S0 = "subscribers.seed[0]"

# (dotted path to change, bad value, key the error must name: the path unless given)
BAD: list[tuple[str, Any, str | None]] = [
    ("ussd.reply_timeout", "-5s", None),
    ("ussd.reply_timeout", "0s", None),
    ("ussd.reply_timeout", "soon", None),
    ("ussd.dialog_timeout", True, None),
    ("ussd.dialog_timeout", math.nan, None),
    ("sms.validity", math.inf, None),
    ("links.office_delay", "2w", None),
    ("links.office_delay", -1, None),
    ("ussd.routes", ["*100#"], None),
    ("ussd.routes", {100: "balance"}, "ussd.routes.100"),  # unquoted pattern
    ("ussd.routes", {"*100#": ""}, "ussd.routes.*100#"),
    (f"{A0}.password", "123456789", None),  # SMPP 3.4 §5.2.2: at most 8
    (f"{A0}.password", None, None),
    (f"{A0}.system_id", "x" * 16, None),
    (f"{A0}.system_id", "", None),
    (f"{A0}.role", "admin", None),
    (f"{A0}.sms_ranges", ["79x"], None),
    (f"{A0}.colour", "red", None),  # unknown key
    ("smpp.accounts", {"a": 1}, None),
    ("smpp.listen", "127.0.0.1", None),
    ("smpp.listen", "127.0.0.1:70000", None),
    ("smpp.listen", "127.0.0.1:²", None),
    ("http.listen", 8080, None),
    ("http.listen", ":8080", None),
    ("smpp.window", 0, None),
    ("colour", "red", None),
    ("operator.1", "x", None),  # an int key among text keys
    ("ussd.reply_timout", "30s", None),
    ("sms", "MTS", None),
    ("operator.language", "de", None),
    ("operator.country_code", "seven", None),
    ("operator.trunk_prefix", "", None),
    ("clock.mode", "fast", None),
    ("storage.database", "", None),
    ("subscribers.auto_provision", "yes", None),
    ("subscribers.seed", {"msisdn": "7916"}, None),
    (f"{S0}.msisdn", "12ab", None),
    ("subscribers.seed[1].msisdn", "79161234567", None),  # duplicate of seed[0]
    ("subscribers.seed[1].language", "fr", None),
    (f"{S0}.balance", "lots", None),
    (f"{S0}.package.gb", 1, None),
    (f"{S0}.package.sms", -1, None),
    (f"{S0}.services.roaming", "on", None),
    (f"{S0}.payments[0].amount", "x", None),
    (f"{S0}.payments[1].date", None, None),
    ("sms.sender_id", "X" * 12, None),  # TS 23.040 §9.1.2.5: at most 11
    ("auth.max_failures", 0, None),
    ("http.listen", "0.0.0.0:8080", "http.admin_token"),  # docs/config.md: the shipped token
    # upper bounds (docs/config.md, "Limits")
    ("links.office_delay", 1e308, None),
    ("links.office_delay", "2950000d", None),
    ("links.office_delay", 10**400, None),
    ("auth.lockout", "3651d", None),
    ("ussd.dialog_timeout", "1d12", None),
    ("smpp.window", 10**12, None),
    ("smpp.window", 10_001, None),
    ("auth.max_failures", 1001, None),
    ("operator.name", "x" * 100_000, None),
    ("ussd.routes", {"*1" * 200 + "#": "balance"}, "ussd.routes." + "*1" * 20 + "…"),
    (f"{S0}.package.sms", 10**30, None),
    (f"{S0}.bonus_points", 2**63, None),
    (f"{S0}.balance", math.nan, None),
    (f"{S0}.balance", 1e300, None),
    (f"{S0}.payments[0].amount", math.inf, None),
    # the seed takes what the admin API takes (ussd.subscribers), no more
    (f"{S0}.password", "x", None),
    (f"{S0}.password", "пароль12", None),
    (f"{S0}.password", 1234, None),
    (f"{S0}.msisdn", "7916123456789012345", None),
    ("subscribers.seed[1].msisdn", "89161234567", None),  # seed[0] written nationally
    (f"{S0}.services.roaming", 1, None),
]


@pytest.mark.parametrize(
    ("path", "value", "key"), BAD, ids=[f"{p}={brief(v)}"[:80] for p, v, _ in BAD]
)
def test_bad_values_name_their_key(path: str, value: Any, key: str | None) -> None:
    data = copy.deepcopy(shipped())
    put(path, value)(data)
    with pytest.raises(ConfigError) as info:
        config.from_mapping(data)
    assert info.value.key == (key or path)
    assert str(info.value).startswith(f"{key or path}: ")
    # A huge value is quoted by a short prefix, never whole.
    assert len(info.value.message) < 200
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("links.office_delay", "1d12h", 129600.0),
        ("links.office_delay", "3650d", 3650 * 86400.0),
        ("smpp.window", 10_000, 10_000),
        ("auth.max_failures", 1000, 1000),
        (f"{S0}.password", "abcd1234", "abcd1234"),
        (f"{S0}.package.sms", 1_000_000_000, 1_000_000_000),
    ],
)
def test_values_at_their_bounds_load(path: str, value: Any, expected: Any) -> None:
    data = copy.deepcopy(shipped())
    put(path, value)(data)
    cfg = config.from_mapping(data)
    got = {
        "links.office_delay": lambda: cfg.links.office_delay,
        "smpp.window": lambda: cfg.smpp.window,
        "auth.max_failures": lambda: cfg.auth.max_failures,
        f"{S0}.password": lambda: cfg.subscribers.seed[0].password,
        f"{S0}.package.sms": lambda: cfg.subscribers.seed[0].package["sms"],
    }[path]()
    assert got == expected


def test_an_unknown_huge_key_is_named_by_a_prefix() -> None:
    with pytest.raises(ConfigError) as info:
        config.from_mapping({"operator": {"k" * 100_000: 1}})
    assert info.value.key == "operator." + "k" * 40 + "…"


def test_own_token_may_listen_beyond_loopback() -> None:
    data = shipped()
    data["http"] = {"listen": "0.0.0.0:8080", "admin_token": "s3cret-token"}
    assert config.from_mapping(data).http.listen == ("0.0.0.0", 8080)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("192.168.1.10", False),
        ("::", False),
        ("example.org", False),
    ],
)
def test_loopback(host: str, loopback: bool) -> None:
    assert config.is_loopback(host) is loopback


def test_ipv6_listen_in_brackets() -> None:
    assert config.parse_listen("[::1]:2775", "smpp.listen") == ("::1", 2775)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("30s", 30.0), ("5m", 300.0), ("2d", 172800.0), ("1.5h", 5400.0), ("250ms", 0.25),
     (45, 45.0), ("45", 45.0), (" 10 s ", 10.0), (0, 0.0)],
)  # fmt: skip
def test_durations(value: object, seconds: float) -> None:
    assert config.parse_duration(value, "k") == seconds


def write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "config.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


BOMB = 'a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n' + "".join(
    f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 10)
)


def serve(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    """`ussd-sim serve --config FILE` as a real process (it must stop before serving)."""
    path = write(tmp_path, text)
    return subprocess.run(
        [sys.executable, "-m", "ussd.cli", "serve", "--config", str(path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("text", "error"),
    [
        # Before: repr() of the expanded document ran out of memory.
        (f"{BOMB}operator:\n  name: *a9\n", "more than 250,000 values once aliases are expanded"),
        (
            "links:\n  office_delay: 1.0e+308\n",
            "links.office_delay: expected a duration of at most",
        ),
        ("smpp:\n  window: 1000000000000\n", "smpp.window: expected an integer 1-10_000"),
        (
            "subscribers:\n  seed: [{msisdn: '79161234567', password: x}]\n",
            "subscribers.seed[0].password: expected 4-10 Latin letters and digits",
        ),
        ("a: '" + "x" * (2 << 20) + "'\n", "larger than 1 MiB"),
    ],
    ids=["bomb", "office_delay", "window", "password", "big"],
)
def test_serve_refuses_with_one_line_and_exit_2(tmp_path: Path, text: str, error: str) -> None:
    proc = serve(tmp_path, text)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr[-2000:]
    assert lines[0].startswith("ussd-sim: configuration error: ")
    assert error in lines[0]
    assert len(lines[0]) < 300


def test_bad_yaml_says_where(tmp_path: Path) -> None:
    path = write(tmp_path, "ussd:\n  reply_timeout: [30s\n")
    with pytest.raises(ConfigError, match=r"not valid YAML at line \d+, column \d+"):
        config.load(path)


def test_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = write(tmp_path, b"operator:\n  name: \xff\n")
    with pytest.raises(ConfigError, match="not valid UTF-8"):
        config.load(path)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        config.load(tmp_path / "nope.yaml")


def test_key_error_from_a_file(tmp_path: Path) -> None:
    path = write(tmp_path, "smpp:\n  accounts:\n    - {system_id: h, password: '123456789'}\n")
    with pytest.raises(ConfigError) as info:
        config.load(path)
    assert info.value.key == "smpp.accounts[0].password"


def test_environment_variable_picks_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "clock: {mode: simulated}\n")
    monkeypatch.setenv(config.ENV_VAR, str(path))
    monkeypatch.chdir(tmp_path.parent)
    cfg = config.load()
    assert cfg.clock_mode == "simulated"
    assert cfg.source == str(path)


def test_explicit_path_beats_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(config.ENV_VAR, str(tmp_path / "missing.yaml"))
    path = write(tmp_path, "clock: {mode: simulated}\n")
    assert config.load(path).clock_mode == "simulated"


def test_local_config_yaml_then_shipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(config.ENV_VAR, raising=False)
    monkeypatch.chdir(tmp_path)
    assert config.load().source == str(SHIPPED)  # nothing here: the shipped file
    write(tmp_path, "clock: {mode: simulated}\n")
    assert config.load().source == "config.yaml"


def test_with_overrides_replaces_fields() -> None:
    cfg = config.with_overrides(config.from_mapping({}), clock_mode="simulated")
    assert cfg.clock_mode == "simulated"
