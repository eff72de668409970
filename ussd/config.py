"""Configuration: one loader for config.yaml into frozen dataclasses (SPEC §10)."""

from __future__ import annotations

import ipaddress
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from ussd import resources

DEFAULT_ADMIN_TOKEN = "change-me"
ENV_VAR = "USSD_SIM_CONFIG"
_N = TypeVar("_N", int, float)

_PORT = re.compile(r"[0-9]{1,5}")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


class ConfigError(Exception):
    """A bad configuration value; `key` is its dotted path."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}" if key else message)
        self.key = key
        self.message = message


def parse_duration(value: object, key: str = "") -> float:
    """Seconds from `30s`, `5m`, `2d`, `1.5h` or a bare number of seconds."""
    if isinstance(value, bool):
        raise ConfigError(key, f"expected a duration such as 30s, 5m or 2d, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    else:
        raise ConfigError(key, f"expected a duration such as 30s, 5m or 2d, got {value!r}")
    if not math.isfinite(seconds):
        # YAML's .nan and .inf are floats; a timer cannot be armed with either.
        raise ConfigError(key, f"expected a finite duration, got {value!r}")
    if seconds < 0:
        raise ConfigError(key, "a duration cannot be negative")
    return seconds


def parse_listen(value: object, key: str) -> tuple[str, int]:
    """`host:port` (IPv6 in brackets) as a (host, port) pair."""
    if not isinstance(value, str) or ":" not in value:
        raise ConfigError(key, f"expected host:port, got {value!r}")
    host, _, port_text = value.rpartition(":")
    host = host.strip("[]")
    # ASCII digits only: str.isdigit() also accepts "²", which int() then rejects.
    if not host or not _PORT.fullmatch(port_text) or not 0 <= int(port_text) <= 65535:
        raise ConfigError(key, f"expected host:port with a port 0-65535, got {value!r}")
    return host, int(port_text)


def is_loopback(host: str) -> bool:
    """True for localhost and addresses in 127.0.0.0/8 or ::1."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class OperatorConfig:
    name: str = "MTS"
    country_code: str = "7"
    trunk_prefix: str = "8"
    language: str = "ru"


@dataclass(frozen=True, slots=True)
class SeedSubscriber:
    msisdn: str
    language: str | None = None
    balance: float = 0.0
    package: Mapping[str, int] = field(default_factory=dict)
    bonus_points: int = 0
    services: Mapping[str, bool] = field(default_factory=dict)
    payments: tuple[Mapping[str, Any], ...] = ()
    password: str | None = None
    number_management: bool = False


@dataclass(frozen=True, slots=True)
class SubscribersConfig:
    auto_provision: bool = True
    seed: tuple[SeedSubscriber, ...] = ()


@dataclass(frozen=True, slots=True)
class UssdConfig:
    routes: Mapping[str, str] = field(default_factory=dict)
    reply_timeout: float = 30.0
    dialog_timeout: float = 180.0


@dataclass(frozen=True, slots=True)
class SmsConfig:
    sender_id: str = "MTS"
    validity: float = 86400.0


@dataclass(frozen=True, slots=True)
class LinksConfig:
    office_delay: float = 2 * 86400.0


@dataclass(frozen=True, slots=True)
class AuthConfig:
    token_ttl: float = 3600.0
    max_failures: int = 5
    lockout: float = 900.0
    sms_password_interval: float = 60.0


@dataclass(frozen=True, slots=True)
class SmppAccount:
    system_id: str
    password: str
    role: str = "harness"
    sms_ranges: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SmppConfig:
    listen: tuple[str, int] = ("127.0.0.1", 2775)
    accounts: tuple[SmppAccount, ...] = ()
    enquire_link_interval: float = 30.0
    response_timeout: float = 10.0
    window: int = 100
    max_connections: int = 500
    bind_timeout: float = 30.0
    pdu_timeout: float = 10.0


@dataclass(frozen=True, slots=True)
class HttpConfig:
    listen: tuple[str, int] = ("127.0.0.1", 8080)
    admin_token: str = DEFAULT_ADMIN_TOKEN
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    max_connections: int = 1000
    request_timeout: float = 30.0
    keepalive_timeout: float = 75.0


@dataclass(frozen=True, slots=True)
class Config:
    operator: OperatorConfig = OperatorConfig()
    storage_database: str = "var/ussd.sqlite3"
    clock_mode: str = "real"
    subscribers: SubscribersConfig = SubscribersConfig()
    ussd: UssdConfig = UssdConfig()
    sms: SmsConfig = SmsConfig()
    links: LinksConfig = LinksConfig()
    auth: AuthConfig = AuthConfig()
    smpp: SmppConfig = SmppConfig()
    http: HttpConfig = HttpConfig()
    source: str = "<defaults>"


class _Section:
    """A mapping being read: remembers which keys were used so leftovers are errors."""

    def __init__(self, data: object, path: str) -> None:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(path, f"expected a mapping, got {type(data).__name__}")
        self.data: dict[str, Any] = data
        self.path = path
        self.used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def get(self, name: str, default: Any = None) -> Any:
        self.used.add(name)
        return self.data.get(name, default)

    def str_(self, name: str, default: str, choices: tuple[str, ...] = ()) -> str:
        value = self.get(name, default)
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not value:
            raise ConfigError(self.key(name), f"expected a non-empty string, got {value!r}")
        if choices and value not in choices:
            raise ConfigError(
                self.key(name), f"expected one of {', '.join(choices)}, got {value!r}"
            )
        return value

    def bool_(self, name: str, default: bool) -> bool:
        value = self.get(name, default)
        if not isinstance(value, bool):
            raise ConfigError(self.key(name), f"expected true or false, got {value!r}")
        return value

    def int_(self, name: str, default: int, minimum: int = 0) -> int:
        value = self.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigError(self.key(name), f"expected an integer ≥ {minimum}, got {value!r}")
        return value

    def duration(self, name: str, default: float, positive: bool = True) -> float:
        value = parse_duration(self.get(name, default), self.key(name))
        if positive and value <= 0:
            raise ConfigError(self.key(name), "expected a duration greater than zero")
        return value

    def section(self, name: str) -> _Section:
        return _Section(self.get(name), self.key(name))

    def done(self) -> None:
        # Keys may be ints or other YAML scalars; sort them as text.
        unknown = sorted(set(self.data) - self.used, key=str)
        if unknown:
            raise ConfigError(self.key(str(unknown[0])), "unknown key")


_DIGITS = re.compile(r"^\d{1,4}$")
_LANGUAGES = ("ru", "en")


def _seed(item: object, path: str) -> SeedSubscriber:
    s = _Section(item, path)
    msisdn = s.get("msisdn")
    if isinstance(msisdn, int) and not isinstance(msisdn, bool):
        msisdn = str(msisdn)
    if not isinstance(msisdn, str) or not re.fullmatch(r"\+?\d{5,15}", msisdn):
        raise ConfigError(s.key("msisdn"), f"expected a phone number, got {msisdn!r}")
    language = s.get("language")
    if language is not None and language not in _LANGUAGES:
        raise ConfigError(s.key("language"), f"expected one of ru, en, got {language!r}")
    balance = s.get("balance", 0)
    if isinstance(balance, bool) or not isinstance(balance, int | float):
        raise ConfigError(s.key("balance"), f"expected a number, got {balance!r}")
    package_s = s.section("package")
    package = {k: package_s.int_(k, 0) for k in ("minutes", "sms", "mb")}
    package_s.done()
    services_raw = s.get("services", {}) or {}
    if not isinstance(services_raw, dict):
        raise ConfigError(s.key("services"), "expected a mapping of service name to true/false")
    for name, on in services_raw.items():
        if not isinstance(on, bool):
            raise ConfigError(s.key(f"services.{name}"), f"expected true or false, got {on!r}")
    payments_raw = s.get("payments", []) or []
    if not isinstance(payments_raw, list):
        raise ConfigError(s.key("payments"), "expected a list")
    payments = []
    for i, p in enumerate(payments_raw):
        ps = _Section(p, f"{s.key('payments')}[{i}]")
        date = ps.get("date")
        amount = ps.get("amount")
        if not isinstance(date, str | int) or isinstance(date, bool):
            date = str(date) if date is not None else None
        if date is None:
            raise ConfigError(ps.key("date"), "expected a date")
        if isinstance(amount, bool) or not isinstance(amount, int | float):
            raise ConfigError(ps.key("amount"), f"expected a number, got {amount!r}")
        ps.done()
        payments.append({"date": str(date), "amount": float(amount)})
    password = s.get("password")
    if password is not None and not isinstance(password, str):
        raise ConfigError(s.key("password"), "expected a string")
    seed = SeedSubscriber(
        msisdn=msisdn,
        language=language,
        balance=float(balance),
        package=package,
        bonus_points=s.int_("bonus_points", 0),
        services=dict(services_raw),
        payments=tuple(payments),
        password=password,
        number_management=s.bool_("number_management", False),
    )
    s.done()
    return seed


def _routes(raw: object, path: str) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(path, "expected a mapping of dial-string pattern to service")
    routes: dict[str, str] = {}
    for pattern, service in raw.items():
        if not isinstance(pattern, str):
            # An unquoted 100 is an int in YAML; a dial-string pattern is always text.
            raise ConfigError(f"{path}.{pattern}", "expected a quoted dial-string pattern")
        if not isinstance(service, str) or not service:
            raise ConfigError(f"{path}.{pattern}", f"expected a service name, got {service!r}")
        routes[pattern] = service
    return routes


def from_mapping(data: object, source: str = "<mapping>") -> Config:
    """Validate a parsed YAML document into a Config; raises ConfigError naming the key."""
    root = _Section(data, "")
    op = root.section("operator")
    operator = OperatorConfig(
        name=op.str_("name", "MTS"),
        country_code=op.str_("country_code", "7"),
        trunk_prefix=op.str_("trunk_prefix", "8"),
        language=op.str_("language", "ru", _LANGUAGES),
    )
    if not _DIGITS.match(operator.country_code):
        raise ConfigError("operator.country_code", "expected 1-4 digits")
    if not _DIGITS.match(operator.trunk_prefix):
        raise ConfigError("operator.trunk_prefix", "expected 1-4 digits")
    op.done()

    st = root.section("storage")
    database = st.str_("database", "var/ussd.sqlite3")
    st.done()

    ck = root.section("clock")
    clock_mode = ck.str_("mode", "real", ("real", "simulated"))
    ck.done()

    sb = root.section("subscribers")
    seed_raw = sb.get("seed", []) or []
    if not isinstance(seed_raw, list):
        raise ConfigError("subscribers.seed", "expected a list")
    seeds = tuple(_seed(item, f"subscribers.seed[{i}]") for i, item in enumerate(seed_raw))
    seen_msisdns: set[str] = set()
    for i, seed in enumerate(seeds):
        if seed.msisdn.lstrip("+") in seen_msisdns:
            raise ConfigError(f"subscribers.seed[{i}].msisdn", f"duplicate msisdn {seed.msisdn!r}")
        seen_msisdns.add(seed.msisdn.lstrip("+"))
    subscribers = SubscribersConfig(auto_provision=sb.bool_("auto_provision", True), seed=seeds)
    sb.done()

    us = root.section("ussd")
    ussd = UssdConfig(
        routes=_routes(us.get("routes"), "ussd.routes"),
        reply_timeout=us.duration("reply_timeout", 30.0),
        dialog_timeout=us.duration("dialog_timeout", 180.0),
    )
    us.done()

    sm = root.section("sms")
    sender = sm.str_("sender_id", "MTS")
    if len(sender) > 11:
        # An alphanumeric originator is at most 11 characters (TS 23.040 §9.1.2.5).
        raise ConfigError("sms.sender_id", "an alphanumeric sender id is at most 11 characters")
    sms = SmsConfig(sender_id=sender, validity=sm.duration("validity", 86400.0))
    sm.done()

    lk = root.section("links")
    links = LinksConfig(office_delay=lk.duration("office_delay", 172800.0, positive=False))
    lk.done()

    au = root.section("auth")
    auth = AuthConfig(
        token_ttl=au.duration("token_ttl", 3600.0),
        max_failures=au.int_("max_failures", 5, minimum=1),
        lockout=au.duration("lockout", 900.0),
        sms_password_interval=au.duration("sms_password_interval", 60.0, positive=False),
    )
    au.done()

    sp = root.section("smpp")
    accounts_raw = sp.get("accounts", []) or []
    if not isinstance(accounts_raw, list):
        raise ConfigError("smpp.accounts", "expected a list")
    accounts = []
    seen_ids: set[str] = set()
    for i, item in enumerate(accounts_raw):
        a = _Section(item, f"smpp.accounts[{i}]")
        system_id = a.str_("system_id", "")
        if len(system_id) > 15:
            raise ConfigError(a.key("system_id"), "at most 15 characters (SMPP 3.4 §5.2.1)")
        if system_id in seen_ids:
            raise ConfigError(a.key("system_id"), f"duplicate system_id {system_id!r}")
        seen_ids.add(system_id)
        password = a.get("password")
        if not isinstance(password, str) or len(password) > 8:
            raise ConfigError(
                a.key("password"), "expected a string of at most 8 characters (SMPP 3.4 §5.2.2)"
            )
        ranges_raw = a.get("sms_ranges", []) or []
        if not isinstance(ranges_raw, list) or not all(
            isinstance(r, str | int) and not isinstance(r, bool) and str(r).lstrip("+").isdigit()
            for r in ranges_raw
        ):
            raise ConfigError(a.key("sms_ranges"), "expected a list of MSISDN prefixes (digits)")
        accounts.append(
            SmppAccount(
                system_id=system_id,
                password=password,
                role=a.str_("role", "harness", ("harness",)),
                sms_ranges=tuple(str(r).lstrip("+") for r in ranges_raw),
            )
        )
        a.done()
    smpp = SmppConfig(
        listen=parse_listen(sp.get("listen", "127.0.0.1:2775"), "smpp.listen"),
        accounts=tuple(accounts),
        enquire_link_interval=sp.duration("enquire_link_interval", 30.0),
        response_timeout=sp.duration("response_timeout", 10.0),
        window=sp.int_("window", 100, minimum=1),
        max_connections=sp.int_("max_connections", 500, minimum=1),
        bind_timeout=sp.duration("bind_timeout", 30.0),
        pdu_timeout=sp.duration("pdu_timeout", 10.0),
    )
    sp.done()

    hp = root.section("http")
    http = HttpConfig(
        listen=parse_listen(hp.get("listen", "127.0.0.1:8080"), "http.listen"),
        admin_token=hp.str_("admin_token", DEFAULT_ADMIN_TOKEN),
        allowed_hosts=_names(hp, "allowed_hosts", _HOST_NAME),
        allowed_origins=_names(hp, "allowed_origins", _ORIGIN),
        max_connections=_bounded(
            hp.int_("max_connections", 1000, minimum=1), hp, "max_connections", 100_000
        ),
        request_timeout=_bounded(
            hp.duration("request_timeout", 30.0), hp, "request_timeout", 3600.0
        ),
        keepalive_timeout=_bounded(
            hp.duration("keepalive_timeout", 75.0), hp, "keepalive_timeout", 3600.0
        ),
    )
    hp.done()
    if not is_loopback(http.listen[0]) and http.admin_token == DEFAULT_ADMIN_TOKEN:
        # SPEC §10: never expose the admin API beyond loopback with the shipped token.
        raise ConfigError(
            "http.admin_token",
            "the shipped default token is refused when http.listen is not a loopback address",
        )
    root.done()
    return Config(
        operator=operator,
        storage_database=database,
        clock_mode=clock_mode,
        subscribers=subscribers,
        ussd=ussd,
        sms=sms,
        links=links,
        auth=auth,
        smpp=smpp,
        http=http,
        source=source,
    )


_HOST_NAME = re.compile(r"\*|[A-Za-z0-9]([A-Za-z0-9.-]{0,252})")
_ORIGIN = re.compile(
    r"\*|https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?|https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?"
)


def _names(section: _Section, name: str, pattern: re.Pattern[str]) -> tuple[str, ...]:
    """A list of host names or origins (http.allowed_hosts, http.allowed_origins)."""
    value = section.get(name, []) or []
    if not isinstance(value, list) or len(value) > 100:
        raise ConfigError(section.key(name), "expected a list (at most 100 entries)")
    for i, item in enumerate(value):
        if not isinstance(item, str) or not pattern.fullmatch(item):
            shown = repr(item)[:40]
            raise ConfigError(f"{section.key(name)}[{i}]", f"not a valid entry: {shown}")
    return tuple(value)


def _bounded(value: _N, section: _Section, name: str, maximum: float) -> _N:
    if value > maximum:
        raise ConfigError(section.key(name), f"at most {maximum:g}, got {value!r}")
    return value


def load(path: str | os.PathLike[str] | None = None) -> Config:
    """Load and validate a config file: PATH, else $USSD_SIM_CONFIG, else ./config.yaml."""
    if path is None:
        path = os.environ.get(ENV_VAR) or None
    if path is None:
        local = Path("config.yaml")
        candidate = local if local.exists() else resources.path("config.yaml")
    else:
        candidate = Path(path)
    try:
        text = candidate.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("", f"cannot read {candidate}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError("", f"{candidate}: not valid UTF-8 at byte {exc.start}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError("", f"{candidate}: not valid YAML{where}") from exc
    return from_mapping(data, source=str(candidate))


def with_overrides(config: Config, **changes: Any) -> Config:
    """A copy of config with top-level fields replaced (tests and the scenario runner)."""
    from dataclasses import replace

    return replace(config, **changes)
