""" "Мой МТС" data (docs/account.md): the migration-8 tables, seed validation, the catalogue.

Charges, instalment plans and bonus exchanges live in SQLite and survive a restart; the
seed keys are checked by the one subscriber validator (ussd.subscribers) with key paths;
menus/bonus.yaml is checked at load with key paths in both languages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.accounts.conftest import RU, open_gateway
from tests.conftest import make_config
from ussd import selfcare, subscribers
from ussd.config import ConfigError
from ussd.menus import MenuError
from ussd.selfcare import Catalogue, Refused
from ussd.store import MIGRATIONS, Store

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def store() -> Store:
    s = Store(":memory:")
    s.create_subscriber(RU, "ru", 0.0, balance=250.0, bonus_points=300)
    return s


# -- the tables -------------------------------------------------------------------------------


def test_migration_8_creates_the_tables(store: Store) -> None:
    assert store.schema_version == len(MIGRATIONS)
    names = {r[0] for r in store.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"charges", "instalment_plans", "instalment_schedule", "bonus_exchanges"} <= names


def test_charges_by_period_and_category(store: Store) -> None:
    store.add_charge(RU, 100.0, "calls", 1.5)
    store.add_charge(RU, 200.0, "calls", 2.0, "x")
    store.add_charge(RU, 300.0, "sms", 1.0)
    store.add_charge("79160000001", 150.0, "calls", 99.0)
    assert store.spending(RU, 100.0, 300.0) == {"calls": (3.5, 2)}  # end is exclusive
    assert [c.amount for c in store.charges(RU, 0, 1000)] == [1.0, 2.0, 1.5]  # newest first
    assert len(store.charges(RU, 0, 1000, limit=2)) == 2
    assert store.clear_charges(RU) == 3
    assert store.spending(RU, 0, 1000) == {}


def test_pay_instalment_takes_the_balance_once(store: Store) -> None:
    plan_id = store.add_instalment_plan(RU, "Phone", [("2026-01-01", 100.0, None)] * 3, 0.0)
    assert store.pay_instalment(plan_id, 1, 100.0, 10.0) == "paid"
    assert store.pay_instalment(plan_id, 1, 100.0, 11.0) == "already_paid"
    assert store.pay_instalment(plan_id, 2, 100.0, 12.0) == "paid"
    assert store.pay_instalment(plan_id, 3, 100.0, 13.0) == "insufficient_funds"  # 50 left
    assert store.pay_instalment(plan_id + 1, 1, 1.0, 13.0) == "not_found"
    assert store.subscriber(RU).balance == 50.0  # type: ignore[union-attr]
    plan = store.instalment_plan(plan_id)
    assert plan is not None and plan.total == 300.0
    assert [i.paid_at for i in plan.schedule] == [10.0, 12.0, None]
    assert plan.next is not None and plan.next.seq == 3


def test_exchange_points_is_all_or_nothing(store: Store) -> None:
    grant = {"package_mb": 1024.0}
    assert store.exchange_points(RU, "gb", 200, 5.0, grant) is not None
    assert store.exchange_points(RU, "gb", 200, 6.0, grant) is None  # 100 left
    sub = store.subscriber(RU)
    assert sub is not None and sub.bonus_points == 100 and sub.package_mb == 1024
    assert [(e.gift, e.points, e.at) for e in store.bonus_exchanges(RU)] == [("gb", 200, 5.0)]
    with pytest.raises(KeyError):
        store.exchange_points(RU, "gb", 1, 7.0, {"password_hash": 1.0})
    assert store.subscriber(RU).bonus_points == 100  # type: ignore[union-attr]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=120), max_size=12))
def test_points_never_go_negative(costs: list[int]) -> None:
    s = Store(":memory:")
    s.create_subscriber(RU, "ru", 0.0, bonus_points=300)
    spent = 0
    for cost in costs:
        if s.exchange_points(RU, "g", cost, 0.0) is not None:
            spent += cost
    sub = s.subscriber(RU)
    assert sub is not None and sub.bonus_points == 300 - spent >= 0
    assert sum(e.points for e in s.bonus_exchanges(RU)) == spent


def test_everything_survives_a_restart(file_gateways: list[Any], db_path: str) -> None:
    seed = {
        "msisdn": RU,
        "balance": 1000,
        "bonus_points": 500,
        "charges": [{"date": "2026-05-02", "category": "internet", "amount": 40}],
        "instalments": [{"item": "Phone", "total": 900, "months": 3, "first_due": "2026-05-01"}],
    }
    first = open_gateway(file_gateways, db_path, subscribers={"seed": [seed]})
    (plan,) = first.store.instalment_plans(RU)
    first.accounts.pay_instalment(RU, plan.id)
    first.accounts.exchange_bonus(RU, "minutes_50")
    first.store.close()
    again = open_gateway(file_gateways, db_path, subscribers={"seed": [seed]})
    (plan,) = again.store.instalment_plans(RU)  # the seed is not applied twice
    assert plan.next is not None and plan.next.seq == 2
    assert again.store.subscriber(RU).balance == 700.0  # type: ignore[union-attr]
    assert [e.gift for e in again.store.bonus_exchanges(RU)] == ["minutes_50"]
    assert again.accounts.spending(RU, "2026-05-01", "2026-05-31")["total"] == 40.0


# -- seed validation (ussd.subscribers, shared by config, admin API and CLI) --------------------


def test_instalment_schedule_splits_to_the_kopeck() -> None:
    (plan,) = subscribers.instalments(
        [{"item": "X", "total": 100, "months": 3, "first_due": "2026-01-31", "paid": 1}]
    )
    assert [(d, a) for d, a, _ in plan["schedule"]] == [
        ("2026-01-31", 33.33),
        ("2026-02-28", 33.33),  # no 31st: the month's last day
        ("2026-03-31", 33.34),  # the last takes the remainder
    ]
    assert plan["schedule"][0][2] is not None and plan["schedule"][1][2] is None


@pytest.mark.parametrize(
    ("fields", "key"),
    [
        ({"charges": {}}, "charges"),
        (
            {"charges": [{"date": "2026-01-01", "category": "x", "amount": 1}]},
            "charges[0].category",
        ),
        (
            {"charges": [{"date": "2026-01-01", "category": "sms", "amount": 0}]},
            "charges[0].amount",
        ),
        ({"charges": [{"date": "01/02/2026", "category": "sms", "amount": 1}]}, "charges[0].date"),
        (
            {"charges": [{"date": "2026-01-01", "category": "sms", "amount": 1, "x": 1}]},
            "charges[0].x",
        ),
        (
            {"instalments": [{"item": "", "total": 1, "months": 1, "first_due": "2026-01-01"}]},
            "instalments[0].item",
        ),
        (
            {"instalments": [{"item": "X", "total": 1, "months": 0, "first_due": "2026-01-01"}]},
            "instalments[0].months",
        ),
        (
            {
                "instalments": [
                    {"item": "X", "total": 1, "months": 2, "first_due": "2026-01-01", "paid": 3}
                ]
            },
            "instalments[0].paid",
        ),
        (
            {"instalments": [{"item": "X", "total": 1, "months": 2, "first_due": "tomorrow"}]},
            "instalments[0].first_due",
        ),
        (
            {"instalments": [{"item": "X", "total": -5, "months": 2, "first_due": "2026-01-01"}]},
            "instalments[0].total",
        ),
    ],
)
def test_bad_seed_keys_name_their_path(fields: dict[str, Any], key: str) -> None:
    with pytest.raises(subscribers.FieldError) as caught:
        subscribers.validate(fields)
    assert caught.value.key == key
    seed = {"msisdn": RU, **fields}
    with pytest.raises(
        ConfigError, match=rf"subscribers\.seed\[0\]\.{key.replace('[', '.').split('.')[0]}"
    ):
        make_config(subscribers={"seed": [seed]})


def test_yaml_dates_load_as_dates(tmp_path: Path) -> None:
    import datetime as dt

    (charge,) = subscribers.charges([{"date": dt.date(2026, 5, 3), "category": "sms", "amount": 1}])
    assert charge["at"] == dt.datetime(2026, 5, 3, 12, tzinfo=dt.UTC).timestamp()


# -- the catalogue (menus/bonus.yaml) ------------------------------------------------------------


def test_shipped_catalogue_loads() -> None:
    catalogue = Catalogue.load(ROOT / "menus")
    assert catalogue.gifts and all(g.name["ru"] and g.name["en"] for g in catalogue.gifts)
    assert catalogue.gift("internet_1gb") is not None


GIFT = {"id": "g", "name": {"ru": "П", "en": "G"}, "points": 10, "grant": {"mb": 1}}


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ([], "<root>"),
        ({"gifts": []}, "gifts"),
        ({"gifts": [{**GIFT, "id": "Bad id"}]}, "gifts[0].id"),
        ({"gifts": [GIFT, GIFT]}, "gifts[1].id"),
        ({"gifts": [{**GIFT, "name": {"ru": "П"}}]}, "gifts[0].name.en"),
        ({"gifts": [{**GIFT, "name": {"ru": "П", "en": "G", "de": "X"}}]}, "gifts[0].name.de"),
        ({"gifts": [{**GIFT, "points": 0}]}, "gifts[0].points"),
        ({"gifts": [{**GIFT, "grant": {"mb": 1.5}}]}, "gifts[0].grant.mb"),
        ({"gifts": [{**GIFT, "grant": {"gold": 1}}]}, "gifts[0].grant.gold"),
        ({"gifts": [{**GIFT, "price": 1}]}, "gifts[0].price"),
    ],
)
def test_bad_catalogue_names_the_key(data: Any, path: str) -> None:
    with pytest.raises(MenuError) as caught:
        Catalogue.parse(data, "bonus.yaml")
    assert caught.value.path == path and caught.value.file == "bonus.yaml"


def test_a_bad_catalogue_fails_at_start(tmp_path: Path) -> None:
    import shutil

    menus = tmp_path / "menus"
    shutil.copytree(ROOT / "menus", menus)
    (menus / "bonus.yaml").write_text("gifts:\n  - {id: x, points: 1}\n", encoding="utf-8")
    from ussd.runtime import Gateway

    with pytest.raises(ConfigError, match=r"bonus\.yaml: gifts\[0\]\.name"):
        Gateway.create(make_config(), menus_dir=menus, database=":memory:")


def test_refusals_change_nothing(store: Store) -> None:
    catalogue = Catalogue.parse({"gifts": [{**GIFT, "points": 400}]})
    with pytest.raises(Refused) as caught:
        selfcare.exchange(store, catalogue, RU, "g", 0.0)
    assert caught.value.code == "insufficient_points"
    with pytest.raises(Refused) as caught:
        selfcare.exchange(store, catalogue, RU, "nope", 0.0)
    assert caught.value.code == "unknown_gift"
    assert store.subscriber(RU).bonus_points == 300  # type: ignore[union-attr]


# -- simulated usage: MO SMS ---------------------------------------------------------------------


def test_mo_sms_uses_the_package_then_the_balance(store: Store) -> None:
    store.update_subscriber(RU, package_sms=1)
    assert selfcare.charge_mo_sms(store, RU, "79161112233", 2.0, 50.0) == "package"
    assert store.subscriber(RU).package_sms == 0  # type: ignore[union-attr]
    assert store.charges(RU, 0, 100) == []
    assert selfcare.charge_mo_sms(store, RU, "79161112233", 2.0, 60.0) == "charged"
    sub = store.subscriber(RU)
    assert sub is not None and sub.balance == 248.0 and sub.package_sms == 0
    (charge,) = store.charges(RU, 0, 100)
    assert (charge.at, charge.category, charge.amount) == (60.0, "sms", 2.0)
    assert charge.description == "SMS 79161112233"
    assert selfcare.charge_mo_sms(store, RU, "79161112233", 0.0, 70.0) == "free"
    assert selfcare.charge_mo_sms(store, "79160000009", RU, 2.0, 70.0) == "free"
    assert store.subscriber("79160000009") is None and len(store.charges(RU, 0, 100)) == 1


@pytest.mark.parametrize("price", [-1, "2", True, 10_001, float("nan")])
def test_bad_mo_price(price: object) -> None:
    with pytest.raises(ConfigError, match=r"sms\.mo_price"):
        make_config(sms={"mo_price": price})


def test_mo_price_in_config() -> None:
    assert make_config().sms.mo_price == 2.0
    assert make_config(sms={"mo_price": 0}).sms.mo_price == 0.0
