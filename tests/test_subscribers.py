"""ussd.subscribers: config seeds, the admin API and the CLI take the same subscriber fields."""

from __future__ import annotations

import math
from typing import Any

import pytest

from ussd import config, subscribers, yamlload
from ussd.accounts import Invalid, subscriber_fields
from ussd.commands.subscribers import set_fields
from ussd.config import ConfigError
from ussd.subscribers import FieldError

# (fields, key the error names or None when valid)
TABLE: list[tuple[dict[str, Any], str | None]] = [
    ({"password": "abcd"}, None),
    ({"password": "abcdefghij"}, None),
    ({"password": "x"}, "password"),  # loaded from config before, a 400 over the API
    ({"password": "abcdefghijk"}, "password"),
    ({"password": "пароль"}, "password"),
    ({"password": 1234}, "password"),
    ({"language": "en"}, None),
    ({"language": "de"}, "language"),
    ({"balance": -12.5}, None),
    ({"balance": "10"}, "balance"),
    ({"balance": True}, "balance"),
    ({"balance": math.nan}, "balance"),
    ({"balance": math.inf}, "balance"),
    ({"balance": 10**400}, "balance"),
    ({"balance": 1e10}, "balance"),
    ({"package": {"minutes": 1, "sms": 2, "mb": 3}}, None),
    ({"package": {"gb": 1}}, "package.gb"),
    ({"package": {"sms": -1}}, "package.sms"),
    ({"package": {"sms": 2**63}}, "package.sms"),
    ({"package": [1]}, "package"),
    ({"package_mb": 1.5}, "package_mb"),
    ({"bonus_points": 1_000_000_001}, "bonus_points"),
    ({"services": {"roaming": False}}, None),
    ({"services": {"roaming": "on"}}, "services.roaming"),
    ({"services": {1: True}}, "services"),
    ({"payments": [{"date": "2026-01-01", "amount": 5}]}, None),
    ({"payments": [{"date": "2026-01-01"}]}, "payments[0].amount"),
    ({"payments": [{"amount": 5}]}, "payments[0].date"),
    ({"payments": [{"date": "2026-01-01", "amount": 5, "x": 1}]}, "payments[0].x"),
    ({"payments": [{"date": "d", "amount": 1}] * 1001}, "payments"),
    ({"payments": {"date": "d"}}, "payments"),
    ({"number_management": True}, None),
    ({"number_management": 1}, "number_management"),
    ({"colour": "red"}, "colour"),
]


@pytest.mark.parametrize(("fields", "key"), TABLE, ids=[str(f)[:50] for f, _ in TABLE])
def test_one_validator(fields: dict[str, Any], key: str | None) -> None:
    # The validator itself
    if key is None:
        subscribers.validate(fields)
    else:
        with pytest.raises(FieldError) as info:
            subscribers.validate(fields)
        assert info.value.key == key
        assert len(str(info.value)) < 300
    # The admin API and the CLI (in-process or over HTTP) go through accounts.subscriber_fields
    if key is None:
        subscriber_fields(fields)
    else:
        with pytest.raises(Invalid) as api_info:
            subscriber_fields(fields)
        assert str(api_info.value).startswith(f"{key}: ")
    # A config seed
    seed = {"msisdn": "79161234567", **fields}
    if key is None:
        config.from_mapping({"subscribers": {"seed": [seed]}})
    else:
        with pytest.raises(ConfigError) as config_info:
            config.from_mapping({"subscribers": {"seed": [seed]}})
        assert config_info.value.key == f"subscribers.seed[0].{key}"


def test_passwords_are_never_quoted() -> None:
    with pytest.raises(FieldError) as info:
        subscribers.validate({"password": "s3cr€t-pass"})
    assert "s3cr" not in str(info.value)
    with pytest.raises(ConfigError) as config_info:
        config.from_mapping(
            {"subscribers": {"seed": [{"msisdn": "79161234567", "password": "s3cr€t-pass"}]}}
        )
    assert "s3cr" not in str(config_info.value)


def test_cli_set_words_meet_the_same_validator() -> None:
    fields = set_fields(["password=x"])
    with pytest.raises(Invalid) as info:
        subscriber_fields(fields)
    assert info.value.code == "invalid_password"


def test_seed_msisdn_is_checked_like_the_api_checks_numbers() -> None:
    # Written nationally or internationally, the same number is a duplicate.
    seeds = [{"msisdn": "+7 916 123-45-67"}, {"msisdn": "89161234567"}]
    with pytest.raises(ConfigError) as info:
        config.from_mapping({"subscribers": {"seed": seeds}})
    assert info.value.key == "subscribers.seed[1].msisdn"
    cfg = config.from_mapping({"subscribers": {"seed": seeds[:1]}})
    assert cfg.subscribers.seed[0].msisdn == "+7 916 123-45-67"  # kept as written


def test_unquoted_yaml_dates_in_seed_payments_are_text() -> None:
    import datetime as dt

    seed = {"msisdn": "79161234567", "payments": [{"date": dt.date(2026, 11, 1), "amount": 5}]}
    cfg = config.from_mapping({"subscribers": {"seed": [seed]}})
    assert cfg.subscribers.seed[0].payments == ({"date": "2026-11-01", "amount": 5.0},)


def test_cli_set_values_are_read_by_the_bounded_loader() -> None:
    levels = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"] + [
        f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)
    ]
    word = "services={" + ", ".join(levels) + "}"
    with pytest.raises(Invalid) as info:
        set_fields([word])
    assert info.value.code == "bad_field"
    assert isinstance(info.value.__cause__, yamlload.YamlError)
    assert "aliases are expanded" in str(info.value.__cause__)
    assert set_fields(["services={roaming: false}", "balance=1.5"]) == {
        "services": {"roaming": False},
        "balance": 1.5,
    }
