"""Configuration: one loader for config.yaml into frozen dataclasses (docs/config.md)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ussd import durations, faults, profiles, resources, subscribers, yamlload
from ussd.msisdn import InvalidMsisdn, normalise
from ussd.yamlload import brief, brief_text

DEFAULT_ADMIN_TOKEN = "change-me"
ENV_VAR = "USSD_SIM_CONFIG"

_PORT = re.compile(r"[0-9]{1,5}")
# Upper bounds of sizes (docs/config.md, "Limits"): a value past them is a typo or an attack,
# and each one sizes a buffer, a queue or a loop.
MAX_INT = 1_000_000
MAX_WINDOW = 10_000  # outstanding requests per SMPP bind
MAX_FAILURES = 1000
MAX_SEEDS = 10_000
MAX_ROUTES = 1000
MIN_CAPTURE, MAX_CAPTURE = 128 * 1024, 16 * 1024**3  # octets per PDU capture file


class ConfigError(Exception):
    """A bad configuration value; `key` is its dotted path."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}" if key else message)
        self.key = key
        self.message = message


def parse_duration(value: object, key: str = "", maximum: float = durations.MAX_SECONDS) -> float:
    """Seconds from a duration of ussd.durations (`30s`, `1d12h`, 45); ConfigError naming key."""
    try:
        return durations.parse(value, maximum=maximum)
    except durations.DurationError as exc:
        raise ConfigError(key, exc.message) from None


def parse_listen(value: object, key: str) -> tuple[str, int]:
    """`host:port` (IPv6 in brackets) as a (host, port) pair."""
    if not isinstance(value, str) or ":" not in value:
        raise ConfigError(key, f"expected host:port, got {brief(value)}")
    host, _, port_text = value.rpartition(":")
    host = host.strip("[]")
    # ASCII digits only: str.isdigit() also accepts "²", which int() then rejects.
    if not host or not _PORT.fullmatch(port_text) or not 0 <= int(port_text) <= 65535:
        raise ConfigError(key, f"expected host:port with a port 0-65535, got {brief(value)}")
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
    # The operator profile (ussd/profiles.py, docs/network.md) and the figures it sets that are
    # not the engine's own: applications read these as their defaults (docs/apps.md).
    profile: str = "mts"
    network_code: str = "25001"  # MCC+MNC (ITU-T E.212) told to applications
    app_timeout: float = 15.0  # seconds an application has to answer
    dialect: str = "africastalking"  # default dialect of HTTP applications


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
    # "Мой МТС" (docs/account.md): validated by ussd.subscribers.charges / .instalments.
    charges: tuple[Mapping[str, Any], ...] = ()
    instalments: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class SubscribersConfig:
    auto_provision: bool = True
    seed: tuple[SeedSubscriber, ...] = ()


@dataclass(frozen=True, slots=True)
class UssdConfig:
    routes: Mapping[str, str] = field(default_factory=dict)
    reply_timeout: float = 30.0
    dialog_timeout: float = 180.0
    # Text longer than a screen: paginate ("98" for more) or truncate (ussd/profiles.py).
    screen_policy: str = "paginate"
    screen_length: int = 182  # GSM 7-bit characters a screen holds (UCS-2: at most 80)


@dataclass(frozen=True, slots=True)
class SmsConfig:
    sender_id: str = "MTS"
    validity: float = 86400.0
    # What an MO SMS costs its sender once the package's SMS are used up (docs/account.md
    # "Мой МТС": the charge joins the spending-control ledger).
    mo_price: float = 2.0


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
class WebsiteConfig:
    """The personal-account website (docs/account.md "Website")."""

    captcha: str = "on"  # on | off | test (every answer is ussd.captcha.TEST_ANSWER)
    captcha_ttl: float = 300.0
    provider_password: str = "social"  # any login at a simulated social provider
    # Per client address, a minute (0: no limit); more get 429 (docs/account.md "Website").
    captchas_per_minute: int = 30
    provider_logins_per_minute: int = 10


@dataclass(frozen=True, slots=True)
class SmppAccount:
    system_id: str
    password: str
    role: str = "harness"  # harness (plays subscribers) | app (an application, docs/smpp.md)
    sms_ranges: tuple[str, ...] = ()
    # An app's vendor conventions (docs/smpp.md "SMPP applications"): standard | 6d | mica.
    ussd_profile: str = "standard"


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
    app_timeout: float = 15.0  # an app bind's answer to a deliver_sm of a dialog (docs/smpp.md)
    # PDU captures (docs/operations.md): every connection to one file; per-bind files from
    # the admin API only inside capture_dir; each file rotates past capture_max_bytes.
    capture: str | None = None
    capture_dir: str = "var/captures"
    capture_max_bytes: int = 100 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class HttpConfig:
    listen: tuple[str, int] = ("127.0.0.1", 8080)
    admin_token: str = DEFAULT_ADMIN_TOKEN
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    max_connections: int = 500
    request_timeout: float = 30.0
    keepalive_timeout: float = 75.0


MAX_RECORDS = 10_000_000  # records.max: about 1.5 GB of SQLite at most


@dataclass(frozen=True, slots=True)
class RecordsConfig:
    """Dialog records (docs/operations.md "Dialog records"): how many, and how old, are kept."""

    max: int = 100_000  # 0: keep none
    retention: float = 7 * 86400.0


# The aggregator dialects an app may speak (docs/apps.md "Dialects").
APP_DIALECTS = ("africastalking", "hubtel", "hubtel-ps", "arkesel", "nalo", "truroute", "json")
MAX_APPS = 100
MAX_APP_HEADERS = 50
_APP_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}")  # an RFC 9110 token
_NETWORK_CODE = re.compile(r"[0-9]{5,6}")  # MCC + MNC (ITU-T E.212)


@dataclass(frozen=True, slots=True)
class AppConfig:
    """One external USSD application over HTTP (docs/apps.md).

    dialect, timeout and network_code default to the operator's (operator.dialect,
    operator.app_timeout, operator.network_code: the operator profile's figures).
    """

    name: str
    url: str
    dialect: str = "africastalking"
    timeout: float = 10.0  # the app's answer
    connect_timeout: float = 10.0
    headers: Mapping[str, str] = field(default_factory=dict)
    end_url: str | None = None  # Africa's Talking end-of-session notification
    network_code: str = "25001"  # MCC+MNC sent to the app


@dataclass(frozen=True, slots=True)
class FaultsConfig:
    """Injected network faults (ussd/faults.py, docs/network.md "Faults")."""

    seed: int = 0
    rules: tuple[faults.Rule, ...] = ()


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """Cluster mode (docs/cluster.md): unset, the gateway is one process on SQLite."""

    redis: str | None = None  # redis://host:port/db: dialogs and messages between workers
    postgres: str | None = None  # postgresql://user@host:port/db: durable data
    worker: str | None = None  # this worker's id (default host:pid)

    @property
    def enabled(self) -> bool:
        return self.redis is not None


_WORKER_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


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
    website: WebsiteConfig = WebsiteConfig()
    smpp: SmppConfig = SmppConfig()
    http: HttpConfig = HttpConfig()
    records: RecordsConfig = RecordsConfig()
    apps: Mapping[str, AppConfig] = field(default_factory=dict)
    faults: FaultsConfig = FaultsConfig()
    cluster: ClusterConfig = ClusterConfig()
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
        name = brief_text(name)  # a key path names a key, it does not quote a huge one
        return f"{self.path}.{name}" if self.path else name

    def get(self, name: str, default: Any = None) -> Any:
        self.used.add(name)
        return self.data.get(name, default)

    def str_(
        self, name: str, default: str, choices: tuple[str, ...] = (), max_length: int = 1024
    ) -> str:
        value = self.get(name, default)
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not value:
            raise ConfigError(self.key(name), f"expected a non-empty string, got {brief(value)}")
        if choices and value not in choices:
            raise ConfigError(
                self.key(name), f"expected one of {', '.join(choices)}, got {brief(value)}"
            )
        if len(value) > max_length:
            raise ConfigError(self.key(name), f"at most {max_length} characters")
        return value

    def bool_(self, name: str, default: bool) -> bool:
        value = self.get(name, default)
        if not isinstance(value, bool):
            raise ConfigError(self.key(name), f"expected true or false, got {brief(value)}")
        return value

    def int_(self, name: str, default: int, minimum: int = 0, maximum: int = MAX_INT) -> int:
        value = self.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
            raise ConfigError(
                self.key(name), f"expected an integer {minimum}-{maximum:_}, got {brief(value)}"
            )
        return value

    def duration(
        self,
        name: str,
        default: float,
        positive: bool = True,
        maximum: float = durations.MAX_SECONDS,
    ) -> float:
        value = parse_duration(self.get(name, default), self.key(name), maximum)
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
MAX_MO_PRICE = 10_000  # roubles an MO SMS may cost (sms.mo_price)
_LANGUAGES = ("ru", "en")


def _seed(item: object, path: str, operator: OperatorConfig) -> tuple[SeedSubscriber, str]:
    """One `subscribers.seed` entry, and its number normalised (for the duplicate check).

    A seed is a number and the fields of the admin API, checked by the same validator
    (ussd.subscribers), so what loads here is what `POST /api/v1/subscribers` accepts.
    """
    if not isinstance(item, dict):
        raise ConfigError(path, f"expected a mapping, got {type(item).__name__}")
    msisdn = item.get("msisdn")
    if isinstance(msisdn, int) and not isinstance(msisdn, bool):
        msisdn = str(msisdn)
    try:
        if not isinstance(msisdn, str) or len(msisdn) > 32:
            raise InvalidMsisdn(msisdn)
        number = normalise(msisdn, operator.country_code, operator.trunk_prefix)
    except InvalidMsisdn:
        raise ConfigError(
            f"{path}.msisdn", f"expected a phone number, got {brief(msisdn)}"
        ) from None
    fields = {k: v for k, v in item.items() if k != "msisdn"}
    if isinstance(fields.get("payments"), list):
        # An unquoted `date: 2026-11-01` is a YAML date: keep it as the text it was written as.
        fields["payments"] = [
            {**p, "date": str(p["date"])}
            if isinstance(p, dict)
            and isinstance(p.get("date"), dt.date | int)
            and not isinstance(p.get("date"), bool)
            else p
            for p in fields["payments"]
        ]
    try:
        values = subscribers.validate(fields)
    except subscribers.FieldError as exc:
        message = "unknown key" if exc.code == "unknown_field" else exc.message
        raise ConfigError(f"{path}.{exc.key}", message) from None
    package = {name: values.get(column, 0) for name, column in subscribers.PACKAGE_KEYS.items()}
    seed = SeedSubscriber(
        msisdn=msisdn,
        language=values.get("language"),
        balance=values.get("balance", 0.0),
        package=package,
        bonus_points=values.get("bonus_points", 0),
        services=values.get("services", {}),
        payments=tuple(values.get("payments", ())),
        password=values.get("password"),
        number_management=values.get("number_management", False),
        charges=tuple(values.get("charges", ())),
        instalments=tuple(values.get("instalments", ())),
    )
    return seed, number


def _routes(raw: object, path: str) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(path, "expected a mapping of dial-string pattern to service")
    if len(raw) > MAX_ROUTES:
        raise ConfigError(path, f"at most {MAX_ROUTES:_} routes")
    routes: dict[str, str] = {}
    for pattern, service in raw.items():
        key = f"{path}.{brief_text(str(pattern))}"
        if not isinstance(pattern, str):
            # An unquoted 100 is an int in YAML; a dial-string pattern is always text.
            raise ConfigError(key, "expected a quoted dial-string pattern")
        if len(pattern) > 182:
            # Longer than any USSD string (TS 23.038 §6.1.2.3: 182 characters).
            raise ConfigError(key, "a dial-string pattern is at most 182 characters")
        if not isinstance(service, str) or not service or len(service) > 255:
            raise ConfigError(key, f"expected a service name, got {brief(service)}")
        routes[pattern] = service
    return routes


def _url(section: _Section, name: str, default: str | None) -> str:
    """An http(s) URL with a host: where an app is asked, or told a dialog ended."""
    from urllib.parse import urlsplit

    value = section.get(name, default)
    key = section.key(name)
    if not isinstance(value, str) or len(value) > 2048:
        raise ConfigError(key, f"expected an http:// or https:// URL, got {brief(value)}")
    try:
        parts = urlsplit(value)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        parts, port_ok = None, False
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        raise ConfigError(key, f"expected an http:// or https:// URL, got {brief(value)}")
    if any(c.isspace() or not c.isprintable() for c in value):
        raise ConfigError(key, "a URL holds no whitespace or control characters")
    return value


def _app_headers(section: _Section) -> dict[str, str]:
    raw = section.get("headers", {}) or {}
    key = section.key("headers")
    if not isinstance(raw, dict) or len(raw) > MAX_APP_HEADERS:
        raise ConfigError(key, f"expected a mapping of at most {MAX_APP_HEADERS} headers")
    headers: dict[str, str] = {}
    for name, value in raw.items():
        item = f"{key}.{brief_text(str(name))}"
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise ConfigError(item, "not a header name")
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)
        # CR or LF would let a header value start a header of its own (RFC 9110 §5.5).
        if not isinstance(value, str) or len(value) > 4096 or any(c in value for c in "\r\n\0"):
            raise ConfigError(item, "expected a one-line text of at most 4096 characters")
        headers[name] = value
    return headers


def _apps(section: _Section, operator: OperatorConfig) -> dict[str, AppConfig]:
    """The `apps:` section: external USSD applications by name (docs/apps.md)."""
    if len(section.data) > MAX_APPS:
        raise ConfigError(section.path, f"at most {MAX_APPS} apps")
    apps: dict[str, AppConfig] = {}
    for name in list(section.data):
        if not isinstance(name, str) or not _APP_NAME.fullmatch(name):
            raise ConfigError(
                section.key(str(name)), "an app name is letters, digits, '_', '.' or '-'"
            )
        a = section.section(name)
        end_url = a.get("end_url")
        apps[name] = AppConfig(
            name=name,
            url=_url(a, "url", None),
            dialect=a.str_("dialect", operator.dialect, APP_DIALECTS),
            timeout=a.duration("timeout", operator.app_timeout, maximum=300.0),
            connect_timeout=a.duration("connect_timeout", 10.0, maximum=300.0),
            headers=_app_headers(a),
            end_url=None if end_url is None else _url(a, "end_url", None),
            network_code=a.str_("network_code", operator.network_code),
        )
        if not _NETWORK_CODE.fullmatch(apps[name].network_code):
            raise ConfigError(a.key("network_code"), "expected MCC+MNC: 5 or 6 digits")
        a.done()
    return apps


def _check_app_routes(routes: Mapping[str, str], apps: Mapping[str, AppConfig]) -> None:
    """Every `app:NAME` route names an app of `apps:`; an app route is a plain code."""
    for pattern, service in routes.items():
        if not service.startswith("app:"):
            continue
        key = f'ussd.routes."{brief_text(pattern)}"'
        name = service.removeprefix("app:")
        if name not in apps:
            known = ", ".join(sorted(apps)) or "none configured"
            raise ConfigError(key, f"unknown app {brief(name)} (apps: {known})")
        if "{" in pattern:
            # The route already covers every direct-dial string under the code (docs/apps.md).
            raise ConfigError(key, "an app route is a code such as *384#, without a {placeholder}")


def from_mapping(data: object, source: str = "<mapping>") -> Config:
    """Validate a parsed YAML document into a Config; raises ConfigError naming the key."""
    root = _Section(data, "")
    op = root.section("operator")
    # The profile's figures are defaults: any key written out overrides its own figure.
    profile = profiles.profile(op.str_("profile", profiles.DEFAULT, tuple(profiles.PROFILES)))
    operator = OperatorConfig(
        name=op.str_("name", "MTS"),
        country_code=op.str_("country_code", "7"),
        trunk_prefix=op.str_("trunk_prefix", "8"),
        language=op.str_("language", profile.language, _LANGUAGES),
        profile=profile.name,
        network_code=op.str_("network_code", profile.network_code),
        app_timeout=op.duration("app_timeout", profile.app_timeout, maximum=300.0),
        dialect=op.str_("dialect", profile.dialect, APP_DIALECTS),
    )
    if not _NETWORK_CODE.fullmatch(operator.network_code):
        raise ConfigError("operator.network_code", "expected MCC+MNC: 5 or 6 digits")
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
    if len(seed_raw) > MAX_SEEDS:
        raise ConfigError("subscribers.seed", f"at most {MAX_SEEDS:_} subscribers")
    seeds: list[SeedSubscriber] = []
    seen_msisdns: set[str] = set()
    for i, item in enumerate(seed_raw):
        seed, number = _seed(item, f"subscribers.seed[{i}]", operator)
        if number in seen_msisdns:
            raise ConfigError(
                f"subscribers.seed[{i}].msisdn", f"duplicate msisdn {brief(seed.msisdn)}"
            )
        seen_msisdns.add(number)
        seeds.append(seed)
    subscribers_ = SubscribersConfig(
        auto_provision=sb.bool_("auto_provision", True), seed=tuple(seeds)
    )
    sb.done()

    us = root.section("ussd")
    ussd = UssdConfig(
        routes=_routes(us.get("routes"), "ussd.routes"),
        reply_timeout=us.duration("reply_timeout", profile.idle_timeout),
        dialog_timeout=us.duration("dialog_timeout", profile.session_max),
        screen_policy=us.str_("screen_policy", profile.screen_policy, profiles.SCREEN_POLICIES),
        # 20 septets leave room for a word and the "98" line; 182 is TS 23.038's most.
        screen_length=us.int_("screen_length", profile.screen_length, minimum=20, maximum=182),
    )
    us.done()
    apps = _apps(root.section("apps"), operator)
    _check_app_routes(ussd.routes, apps)

    sm = root.section("sms")
    sender = sm.str_("sender_id", "MTS")
    if len(sender) > 11:
        # An alphanumeric originator is at most 11 characters (TS 23.040 §9.1.2.5).
        raise ConfigError("sms.sender_id", "an alphanumeric sender id is at most 11 characters")
    mo_price = sm.get("mo_price", 2.0)
    if (
        isinstance(mo_price, bool)
        or not isinstance(mo_price, int | float)
        or not 0 <= mo_price <= MAX_MO_PRICE
    ):
        raise ConfigError(
            "sms.mo_price", f"expected roubles 0-{MAX_MO_PRICE}, got {brief(mo_price)}"
        )
    sms = SmsConfig(
        sender_id=sender,
        validity=sm.duration("validity", 86400.0),
        mo_price=round(float(mo_price), 2),
    )
    sm.done()

    lk = root.section("links")
    links = LinksConfig(office_delay=lk.duration("office_delay", 172800.0, positive=False))
    lk.done()

    au = root.section("auth")
    auth = AuthConfig(
        token_ttl=au.duration("token_ttl", 3600.0),
        max_failures=au.int_("max_failures", 5, minimum=1, maximum=MAX_FAILURES),
        lockout=au.duration("lockout", 900.0),
        sms_password_interval=au.duration("sms_password_interval", 60.0, positive=False),
    )
    au.done()

    ws = root.section("website")
    captcha_mode = ws.get("captcha", "on")
    if isinstance(captcha_mode, bool):  # YAML 1.1 reads a bare on/off as a boolean
        captcha_mode = "on" if captcha_mode else "off"
    if captcha_mode not in ("on", "off", "test"):
        raise ConfigError("website.captcha", f"expected on, off or test, got {brief(captcha_mode)}")
    website = WebsiteConfig(
        captcha=captcha_mode,
        captcha_ttl=ws.duration("captcha_ttl", 300.0, maximum=86400.0),
        provider_password=ws.str_("provider_password", "social", max_length=64),
        captchas_per_minute=ws.int_("captchas_per_minute", 30, maximum=100_000),
        provider_logins_per_minute=ws.int_("provider_logins_per_minute", 10, maximum=100_000),
    )
    ws.done()

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
            raise ConfigError(a.key("system_id"), f"duplicate system_id {brief(system_id)}")
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
                role=a.str_("role", "harness", ("harness", "app")),
                sms_ranges=tuple(str(r).lstrip("+") for r in ranges_raw),
                ussd_profile=a.str_("ussd_profile", "standard", ("standard", "6d", "mica")),
            )
        )
        a.done()
    smpp = SmppConfig(
        listen=parse_listen(sp.get("listen", "127.0.0.1:2775"), "smpp.listen"),
        accounts=tuple(accounts),
        enquire_link_interval=sp.duration("enquire_link_interval", 30.0),
        response_timeout=sp.duration("response_timeout", 10.0),
        window=sp.int_("window", 100, minimum=1, maximum=MAX_WINDOW),
        max_connections=sp.int_("max_connections", 500, minimum=1, maximum=100_000),
        bind_timeout=sp.duration("bind_timeout", 30.0, maximum=3600.0),
        pdu_timeout=sp.duration("pdu_timeout", 10.0, maximum=3600.0),
        app_timeout=sp.duration("app_timeout", 15.0, maximum=3600.0),
        capture=None if sp.get("capture") is None else sp.str_("capture", ""),
        capture_dir=sp.str_("capture_dir", "var/captures"),
        # At least a file header and a full-size PDU; at most 16 GiB a file, two files kept.
        capture_max_bytes=sp.int_(
            "capture_max_bytes", 100 * 1024 * 1024, minimum=MIN_CAPTURE, maximum=MAX_CAPTURE
        ),
    )
    sp.done()

    fs = root.section("faults")
    try:
        fault_rules = faults.parse_rules(fs.get("rules"))
    except faults.FaultError as exc:
        key = f"faults.rules{exc.key}" if exc.key else "faults.rules"
        raise ConfigError(key, exc.message) from None
    faults_ = FaultsConfig(seed=fs.int_("seed", 0, maximum=2**31 - 1), rules=fault_rules)
    fs.done()

    hp = root.section("http")
    http = HttpConfig(
        listen=parse_listen(hp.get("listen", "127.0.0.1:8080"), "http.listen"),
        admin_token=hp.str_("admin_token", DEFAULT_ADMIN_TOKEN),
        allowed_hosts=_names(hp, "allowed_hosts", _HOST_NAME),
        allowed_origins=_names(hp, "allowed_origins", _ORIGIN),
        # 500 beside smpp.max_connections' 500 stays under a `ulimit -n` of 1024.
        max_connections=hp.int_("max_connections", 500, minimum=1, maximum=100_000),
        request_timeout=hp.duration("request_timeout", 30.0, maximum=3600.0),
        keepalive_timeout=hp.duration("keepalive_timeout", 75.0, maximum=3600.0),
    )
    hp.done()
    if not is_loopback(http.listen[0]) and http.admin_token == DEFAULT_ADMIN_TOKEN:
        # docs/config.md: never expose the admin API beyond loopback with the shipped token.
        raise ConfigError(
            "http.admin_token",
            "the shipped default token is refused when http.listen is not a loopback address",
        )
    rc = root.section("records")
    records = RecordsConfig(
        max=rc.int_("max", 100_000, maximum=MAX_RECORDS),
        retention=rc.duration("retention", 7 * 86400.0),
    )
    rc.done()
    cluster = _cluster(root.section("cluster")) if root.get("cluster") is not None else None
    root.done()
    return Config(
        operator=operator,
        storage_database=database,
        clock_mode=clock_mode,
        subscribers=subscribers_,
        ussd=ussd,
        sms=sms,
        links=links,
        auth=auth,
        website=website,
        smpp=smpp,
        http=http,
        records=records,
        apps=apps,
        faults=faults_,
        cluster=cluster or ClusterConfig(),
        source=source,
    )


def _cluster(cl: _Section) -> ClusterConfig:
    """`cluster:` (docs/cluster.md): both servers, or the section is an error."""
    redis_url = cl.str_("redis", "", max_length=1024) if cl.get("redis") else None
    postgres = cl.str_("postgres", "", max_length=1024) if cl.get("postgres") else None
    worker = cl.str_("worker", "x", max_length=64) if cl.get("worker") is not None else None
    cl.done()
    if redis_url is None or not redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError("cluster.redis", "expected a redis:// URL (dialogs live in Redis)")
    if postgres is None or not postgres.startswith(("postgresql://", "postgres://")):
        raise ConfigError(
            "cluster.postgres", "expected a postgresql:// DSN (durable data lives in PostgreSQL)"
        )
    if worker is not None and not _WORKER_ID.fullmatch(worker):
        raise ConfigError("cluster.worker", "expected 1-64 letters, digits, '_', '.', ':', '-'")
    return ClusterConfig(redis=redis_url, postgres=postgres, worker=worker)


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
            shown = brief(item)
            raise ConfigError(f"{section.key(name)}[{i}]", f"not a valid entry: {shown}")
    return tuple(value)


def find(path: str | os.PathLike[str] | None = None) -> Path:
    """The config file: PATH, else $USSD_SIM_CONFIG, else ./config.yaml, else the shipped one."""
    if path is None:
        path = os.environ.get(ENV_VAR) or None
    if path is not None:
        return Path(path)
    local = Path("config.yaml")
    return local if local.exists() else resources.path("config.yaml")


def read(path: str | os.PathLike[str] | None = None) -> tuple[Any, Path]:
    """The parsed YAML of the config file `find(path)` names, and that file's path."""
    candidate = find(path)
    try:
        return yamlload.load_file(candidate), candidate
    except yamlload.YamlError as exc:
        raise ConfigError("", f"{candidate}: {exc.message}") from None


def load(path: str | os.PathLike[str] | None = None) -> Config:
    """Load and validate a config file: PATH, else $USSD_SIM_CONFIG, else ./config.yaml."""
    data, candidate = read(path)
    return from_mapping(data, source=str(candidate))


def with_overrides(config: Config, **changes: Any) -> Config:
    """A copy of config with top-level fields replaced (tests and the scenario runner)."""
    from dataclasses import replace

    return replace(config, **changes)
