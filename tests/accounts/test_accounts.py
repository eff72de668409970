"""The personal-account core (docs/account.md) on the simulated clock: login, lockout, tokens, SMS
passwords, password change, linking, social sign-in, and what survives a restart."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from tests.accounts.conftest import (
    DAY,
    EN,
    MINUTE,
    OTHER,
    RU,
    enable_management,
    open_gateway,
    set_password,
    texts,
)
from tests.conftest import make_config
from ussd.accounts import (
    AccountError,
    Accounts,
    BadCredentials,
    Conflict,
    Invalid,
    Locked,
    NotFound,
    RateLimited,
    Unauthorized,
    subscriber_fields,
)
from ussd.clock import SimulatedClock
from ussd.runtime import Gateway


@pytest.fixture
def accounts(gateway: Gateway) -> Accounts:
    return gateway.accounts


def sms_password(gateway: Gateway, msisdn: str) -> str:
    """Ask for an SMS password and read it from the last SMS."""
    gateway.accounts.send_sms_password(msisdn)
    match = re.search(r": ([A-Za-z0-9]{8})\.", gateway.sms.inbox(msisdn)[-1].text)
    assert match, gateway.sms.inbox(msisdn)[-1].text
    return match.group(1)


# -- errors carry status and code ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (Invalid("x"), 400, "invalid"),
        (BadCredentials("x"), 401, "bad_credentials"),
        (Unauthorized("x"), 401, "unauthorized"),
        (NotFound("x"), 404, "not_found"),
        (Conflict("x"), 409, "conflict"),
        (Locked("x", 5.0), 423, "locked"),
        (RateLimited("x", 5.0), 429, "rate_limited"),
    ],
)
def test_error_status_and_code(error: AccountError, status: int, code: str) -> None:
    assert isinstance(error, AccountError)
    assert (error.status, error.code) == (status, code)


# -- login and lockout --------------------------------------------------------------------------


def test_login_with_password_from_ussd(gateway: Gateway, accounts: Accounts) -> None:
    set_password(gateway, RU, "secret12")
    token = accounts.login("+7 916 123-45-67", "secret12")
    assert accounts.authenticate(token) == RU


def test_login_national_form_is_the_same_number(gateway: Gateway, accounts: Accounts) -> None:
    set_password(gateway, RU, "secret12")
    assert accounts.authenticate(accounts.login("89161234567", "secret12")) == RU


@pytest.mark.parametrize("password", ["wrong", "", "SECRET12", "secret12 "])
def test_wrong_password(gateway: Gateway, accounts: Accounts, password: str) -> None:
    set_password(gateway, RU, "secret12")
    with pytest.raises(BadCredentials) as info:
        accounts.login(RU, password)
    assert info.value.status == 401


def test_no_password_set_is_bad_credentials(accounts: Accounts) -> None:
    with pytest.raises(BadCredentials):
        accounts.login(EN, "anything")


def test_unknown_number_is_bad_credentials(accounts: Accounts) -> None:
    # Login never tells whether a number exists.
    with pytest.raises(BadCredentials):
        accounts.login(OTHER, "anything")


def test_invalid_msisdn(accounts: Accounts) -> None:
    with pytest.raises(Invalid) as info:
        accounts.login("not a number", "x")
    assert info.value.code == "bad_msisdn"


def test_five_wrong_passwords_lock_for_fifteen_minutes(
    gateway: Gateway, clock: SimulatedClock, accounts: Accounts
) -> None:
    set_password(gateway, RU, "secret12")
    for _ in range(4):
        with pytest.raises(BadCredentials):
            accounts.login(RU, "wrong")
    with pytest.raises(Locked) as info:  # the fifth wrong password locks (docs/account.md)
        accounts.login(RU, "wrong")
    assert info.value.retry_after == 15 * MINUTE
    clock.advance(14 * MINUTE + 59)
    with pytest.raises(Locked) as info:  # even the right password, until the lock lifts
        accounts.login(RU, "secret12")
    assert info.value.retry_after == pytest.approx(1.0)
    clock.advance(1)
    assert accounts.authenticate(accounts.login(RU, "secret12")) == RU


def test_lock_lifts_with_a_fresh_count(
    gateway: Gateway, clock: SimulatedClock, accounts: Accounts
) -> None:
    set_password(gateway, RU, "secret12")
    for _ in range(4):
        with pytest.raises(BadCredentials):
            accounts.login(RU, "wrong")
    with pytest.raises(Locked):
        accounts.login(RU, "wrong")
    clock.advance(15 * MINUTE)
    with pytest.raises(BadCredentials):  # one wrong password after the lock is 1 of 5 again
        accounts.login(RU, "wrong")
    assert accounts.auth_state(RU).failures == 1


def test_success_resets_the_count(gateway: Gateway, accounts: Accounts) -> None:
    set_password(gateway, RU, "secret12")
    for _ in range(2):
        for _ in range(4):
            with pytest.raises(BadCredentials):
                accounts.login(RU, "wrong")
        accounts.login(RU, "secret12")
    assert accounts.auth_state(RU).failures == 0


def test_max_failures_and_lockout_come_from_config(clock: SimulatedClock) -> None:
    config = make_config(auth={"max_failures": 2, "lockout": "1m"})
    gw = Gateway.create(config, clock=clock, database=":memory:")
    set_password(gw, RU, "secret12")
    with pytest.raises(BadCredentials):
        gw.accounts.login(RU, "wrong")
    with pytest.raises(Locked) as info:
        gw.accounts.login(RU, "wrong")
    assert info.value.retry_after == MINUTE
    gw.store.close()


def test_lock_survives_a_restart(file_gateways: list[Gateway], db_path: str) -> None:
    gw = open_gateway(file_gateways, db_path)
    set_password(gw, RU, "secret12")
    for _ in range(4):
        with pytest.raises(BadCredentials):
            gw.accounts.login(RU, "wrong")
    with pytest.raises(Locked):
        gw.accounts.login(RU, "wrong")
    gw.store.close()
    later = open_gateway(file_gateways, db_path, start=1_780_000_000.0 + 10 * MINUTE)
    with pytest.raises(Locked) as info:
        later.accounts.login(RU, "secret12")
    assert info.value.retry_after == pytest.approx(5 * MINUTE)


def test_failure_count_survives_a_restart(file_gateways: list[Gateway], db_path: str) -> None:
    gw = open_gateway(file_gateways, db_path)
    set_password(gw, RU, "secret12")
    for _ in range(4):
        with pytest.raises(BadCredentials):
            gw.accounts.login(RU, "wrong")
    gw.store.close()
    later = open_gateway(file_gateways, db_path)
    with pytest.raises(Locked):
        later.accounts.login(RU, "wrong")


# -- tokens -------------------------------------------------------------------------------------


def test_token_expires_after_ttl(
    gateway: Gateway, clock: SimulatedClock, accounts: Accounts
) -> None:
    token = accounts.login_network(RU)
    clock.advance(gateway.config.auth.token_ttl - 1)
    assert accounts.authenticate(token) == RU
    clock.advance(1)
    with pytest.raises(Unauthorized) as info:
        accounts.authenticate(token)
    assert info.value.code == "invalid_token"


@pytest.mark.parametrize("token", ["", "nonsense", "x" * 43])
def test_unknown_token(accounts: Accounts, token: str) -> None:
    with pytest.raises(Unauthorized):
        accounts.authenticate(token)


def test_tokens_are_random_and_stored_hashed(gateway: Gateway, accounts: Accounts) -> None:
    first, second = accounts.login_network(RU), accounts.login_network(RU)
    assert first != second and len(first) >= 43  # token_urlsafe(32)
    stored = {row[0] for row in gateway.store.db.execute("SELECT token_hash FROM auth_tokens")}
    assert stored == {hashlib.sha256(t.encode()).hexdigest() for t in (first, second)}
    assert first not in stored


def test_token_survives_a_restart(file_gateways: list[Gateway], db_path: str) -> None:
    gw = open_gateway(file_gateways, db_path)
    token = gw.accounts.login_network(RU)
    gw.store.close()
    assert open_gateway(file_gateways, db_path).accounts.authenticate(token) == RU


def test_logout(accounts: Accounts) -> None:
    token = accounts.login_network(RU)
    assert accounts.logout(token)
    with pytest.raises(Unauthorized):
        accounts.authenticate(token)
    assert not accounts.logout(token)


def test_network_login_follows_auto_provision(clock: SimulatedClock) -> None:
    on = Gateway.create(make_config(), clock=clock, database=":memory:")
    assert on.accounts.authenticate(on.accounts.login_network(OTHER)) == OTHER
    assert on.store.subscriber(OTHER) is not None
    off = Gateway.create(
        make_config(subscribers={"auto_provision": False}), clock=clock, database=":memory:"
    )
    with pytest.raises(NotFound) as info:
        off.accounts.login_network(OTHER)
    assert info.value.code == "unknown_msisdn"
    assert off.accounts.login_network(RU)  # seeded numbers still work
    on.store.close()
    off.store.close()


# -- SMS password -------------------------------------------------------------------------------


def test_sms_password_logs_in(gateway: Gateway, accounts: Accounts) -> None:
    password = sms_password(gateway, RU)
    assert re.fullmatch(r"[A-Za-z0-9]{8}", password)
    assert accounts.authenticate(accounts.login(RU, password)) == RU
    sub = gateway.store.subscriber(RU)
    assert sub is not None and password not in (sub.password_hash or "")


def test_sms_password_replaces_the_old_one(gateway: Gateway, accounts: Accounts) -> None:
    set_password(gateway, RU, "secret12")
    sms_password(gateway, RU)
    with pytest.raises(BadCredentials):
        accounts.login(RU, "secret12")


def test_sms_password_in_the_subscribers_language(gateway: Gateway) -> None:
    sms_password(gateway, EN)
    assert texts(gateway, EN)[-1].startswith("Your personal account password: ")
    sms_password(gateway, RU)
    assert "Личный кабинет" in texts(gateway, RU)[-1]


def test_sms_password_rate_limit(
    gateway: Gateway, clock: SimulatedClock, accounts: Accounts
) -> None:
    first = sms_password(gateway, RU)
    clock.advance(59.5)
    with pytest.raises(RateLimited) as info:
        accounts.send_sms_password(RU)
    assert info.value.retry_after == pytest.approx(0.5)
    assert info.value.status == 429
    assert len(gateway.sms.inbox(RU)) == 1  # refused: no SMS, password unchanged
    assert accounts.login(RU, first)
    clock.advance(0.5)
    second = sms_password(gateway, RU)
    assert len(gateway.sms.inbox(RU)) == 2
    assert accounts.authenticate(accounts.login(RU, second)) == RU


def test_sms_password_rate_limit_is_per_number(gateway: Gateway) -> None:
    sms_password(gateway, RU)
    sms_password(gateway, EN)


def test_sms_password_rate_limit_survives_a_restart(
    file_gateways: list[Gateway], db_path: str
) -> None:
    gw = open_gateway(file_gateways, db_path)
    gw.accounts.send_sms_password(RU)
    gw.store.close()
    later = open_gateway(file_gateways, db_path, start=1_780_000_000.0 + 30)
    with pytest.raises(RateLimited) as info:
        later.accounts.send_sms_password(RU)
    assert info.value.retry_after == pytest.approx(30)


def test_sms_password_for_unknown_number_follows_auto_provision(clock: SimulatedClock) -> None:
    gw = Gateway.create(
        make_config(subscribers={"auto_provision": False}), clock=clock, database=":memory:"
    )
    with pytest.raises(NotFound):
        gw.accounts.send_sms_password(OTHER)
    assert gw.sms.inbox(OTHER) == []
    gw.store.close()


def test_passwords_never_logged(gateway: Gateway, accounts: Accounts) -> None:
    with capture_logs() as logs:
        password = sms_password(gateway, RU)
        accounts.login(RU, password)
        with pytest.raises(BadCredentials):
            accounts.login(RU, "wrongpass1")
        accounts.change_password(RU, password, "newpass99")
        token = accounts.login(RU, "newpass99")
    assert logs, "the account events are logged"
    flat = repr(logs)
    for secret in (password, "wrongpass1", "newpass99", token):
        assert secret not in flat


# -- password change ----------------------------------------------------------------------------


def test_change_password(gateway: Gateway, accounts: Accounts) -> None:
    set_password(gateway, RU, "secret12")
    before = len(gateway.sms.inbox(RU))
    accounts.change_password(RU, "secret12", "Other123")
    assert accounts.login(RU, "Other123")
    with pytest.raises(BadCredentials):
        accounts.login(RU, "secret12")
    notices = texts(gateway, RU)[before:]
    assert len(notices) == 1 and "Other123" not in notices[0]


@pytest.mark.parametrize("new", ["abc", "abcdefghijk", "пароль12", "with space", "a-b-c-d", ""])
def test_change_password_rejects_bad_format(gateway: Gateway, accounts: Accounts, new: str) -> None:
    set_password(gateway, RU, "secret12")
    with pytest.raises(Invalid) as info:
        accounts.change_password(RU, "secret12", new)
    assert info.value.code == "invalid_password"
    assert accounts.login(RU, "secret12")


def test_change_password_needs_the_current_one(gateway: Gateway, accounts: Accounts) -> None:
    set_password(gateway, RU, "secret12")
    with pytest.raises(BadCredentials):
        accounts.change_password(RU, "nope", "Other123")
    assert accounts.auth_state(RU).failures == 1  # a guess, counted like any other
    assert accounts.login(RU, "secret12")


# -- linking: app flow --------------------------------------------------------------------------


def test_app_link_is_active_at_once_and_tells_both(gateway: Gateway, accounts: Accounts) -> None:
    set_password(gateway, EN, "bpass123")
    link = accounts.app_link(RU, EN, "bpass123")
    assert (link.number, link.account, link.flow) == (EN, RU, "app")
    assert link.active(gateway.clock.now())
    assert texts(gateway, RU)[-1] == f"Номер {EN} привязан к вашему Личному кабинету."
    assert texts(gateway, EN)[-1].startswith("Your number is now linked")
    view = accounts.account_view(RU)
    assert [(n["number"], n["state"]) for n in view["numbers"]] == [(EN, "active")]
    assert view["numbers"][0]["balance"] == 42.0


def test_app_link_is_notified_once(gateway: Gateway, accounts: Accounts) -> None:
    set_password(gateway, EN, "bpass123")
    accounts.app_link(RU, EN, "bpass123")
    counts = len(gateway.sms.inbox(RU)), len(gateway.sms.inbox(EN))
    gateway.advance(3 * DAY)  # the scheduler must not send it again
    assert (len(gateway.sms.inbox(RU)), len(gateway.sms.inbox(EN))) == counts


def test_app_link_wrong_password_counts_towards_b(gateway: Gateway, accounts: Accounts) -> None:
    set_password(gateway, EN, "bpass123")
    for _ in range(4):
        with pytest.raises(BadCredentials):
            accounts.app_link(RU, EN, "wrong")
    with pytest.raises(Locked):
        accounts.login(EN, "wrong")  # the fifth wrong password of B, through login
    with pytest.raises(Locked):
        accounts.app_link(RU, EN, "bpass123")
    assert gateway.store.link(EN) is None
    assert accounts.auth_state(RU).failures == 0  # the account holder's count is untouched


@pytest.mark.parametrize("number", [RU, "89161234567", "+79161234567"])
def test_app_link_to_itself(gateway: Gateway, accounts: Accounts, number: str) -> None:
    set_password(gateway, RU, "secret12")
    with pytest.raises(Conflict) as info:
        accounts.app_link(RU, number, "secret12")
    assert info.value.code == "self_link"


def test_app_link_number_already_linked(gateway: Gateway, accounts: Accounts) -> None:
    set_password(gateway, EN, "bpass123")
    accounts.app_link(RU, EN, "bpass123")
    with pytest.raises(Conflict) as info:
        accounts.app_link(OTHER, EN, "bpass123")
    assert info.value.code == "already_linked"
    with pytest.raises(Conflict):
        accounts.app_link(RU, EN, "bpass123")
    assert gateway.store.link(EN).account == RU  # type: ignore[union-attr]


def test_account_holds_many_numbers(gateway: Gateway, accounts: Accounts) -> None:
    set_password(gateway, EN, "bpass123")
    set_password(gateway, OTHER, "cpass123")
    accounts.app_link(RU, EN, "bpass123")
    accounts.app_link(RU, OTHER, "cpass123")
    assert {n["number"] for n in accounts.account_view(RU)["numbers"]} == {EN, OTHER}


# -- linking: office flow (the clock side is in test_links.py) ----------------------------------


def test_office_link_needs_number_management(gateway: Gateway, accounts: Accounts) -> None:
    with pytest.raises(Conflict) as info:
        accounts.office_link(RU, EN)
    assert info.value.code == "number_management_off"
    assert gateway.store.link(EN) is None


def test_office_link_pending(gateway: Gateway, accounts: Accounts) -> None:
    enable_management(gateway, EN)
    before = len(gateway.sms.inbox(EN))
    link = accounts.office_link(RU, EN)
    now = gateway.clock.now()
    assert link.active_at == now + 2 * DAY
    assert not link.active(now)
    assert len(gateway.sms.inbox(EN)) == before  # the SMS goes out when it becomes active
    (item,) = accounts.account_view(RU)["numbers"]
    assert item["state"] == "pending"
    assert item["active_at"] == "2026-05-30T20:26:40Z"  # 1_780_000_000 + 2 days, UTC
    assert item["balance"] is None
    assert accounts.account_view(EN)["linked_to"]["account"] == RU


def test_office_link_conflicts(gateway: Gateway, accounts: Accounts) -> None:
    enable_management(gateway, EN)
    with pytest.raises(Conflict) as info:
        accounts.office_link(EN, EN)
    assert info.value.code == "self_link"
    accounts.office_link(RU, EN)
    with pytest.raises(Conflict) as info:
        accounts.office_link(OTHER, EN)
    assert info.value.code == "already_linked"


def test_office_link_unknown_numbers_follow_auto_provision(clock: SimulatedClock) -> None:
    gw = Gateway.create(
        make_config(subscribers={"auto_provision": False}), clock=clock, database=":memory:"
    )
    with pytest.raises(NotFound):
        gw.accounts.office_link(RU, OTHER)
    with pytest.raises(NotFound):
        gw.accounts.office_link(OTHER, RU)
    gw.store.close()


def test_unlink(gateway: Gateway, accounts: Accounts) -> None:
    set_password(gateway, EN, "bpass123")
    accounts.app_link(RU, EN, "bpass123")
    with pytest.raises(NotFound) as info:
        accounts.unlink(OTHER, EN)  # not this account's number
    assert info.value.code == "not_linked"
    accounts.unlink(RU, "8 916 111-22-33")
    assert gateway.store.link(EN) is None
    with pytest.raises(NotFound):
        accounts.unlink(RU, EN)


# -- social sign-in -------------------------------------------------------------------


def test_social_bind_and_login(accounts: Accounts) -> None:
    accounts.social_bind(RU, "vk", "id12345")
    accounts.social_bind(RU, "vk", "id12345")  # idempotent
    assert accounts.authenticate(accounts.social_login("vk", "id12345")) == RU


def test_social_unknown_identity(accounts: Accounts) -> None:
    accounts.social_bind(RU, "vk", "id12345")
    with pytest.raises(Unauthorized) as info:
        accounts.social_login("vk", "id99999")
    assert info.value.code == "unknown_identity"
    with pytest.raises(Unauthorized):
        accounts.social_login("google", "id12345")


def test_social_identity_belongs_to_one_account(accounts: Accounts) -> None:
    accounts.social_bind(RU, "vk", "id12345")
    with pytest.raises(Conflict) as info:
        accounts.social_bind(EN, "vk", "id12345")
    assert info.value.code == "identity_taken"


@pytest.mark.parametrize(
    ("provider", "external_id", "code"),
    [
        ("", "x", "invalid_provider"),
        ("VK", "x", "invalid_provider"),
        ("v k", "x", "invalid_provider"),
        ("vk", "", "invalid_external_id"),
        ("vk", "a\nb", "invalid_external_id"),
        ("vk", "x" * 129, "invalid_external_id"),
    ],
)
def test_social_rejects_bad_identities(
    accounts: Accounts, provider: str, external_id: str, code: str
) -> None:
    with pytest.raises(Invalid) as info:
        accounts.social_bind(RU, provider, external_id)
    assert info.value.code == code


# -- subscribers (admin API and CLI) ------------------------------------------------------------


def test_create_and_update_subscriber(accounts: Accounts) -> None:
    sub = accounts.create_subscriber(OTHER, {"balance": 10, "package": {"mb": 5}})
    assert (sub.balance, sub.package_mb, sub.language) == (10.0, 5, "ru")
    with pytest.raises(Conflict) as info:
        accounts.create_subscriber("+" + OTHER, {})
    assert info.value.code == "exists"
    sub = accounts.update_subscriber(OTHER, {"number_management": True, "password": "abcd"})
    assert sub.number_management
    assert accounts.login(OTHER, "abcd")
    with pytest.raises(NotFound):
        accounts.update_subscriber("79160000009", {"balance": 1})


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"nope": 1}, "unknown_field"),
        ({"balance": "10"}, "bad_field"),
        ({"balance": True}, "bad_field"),
        ({"language": "de"}, "bad_field"),
        ({"package": {"minutes": -1}}, "bad_field"),
        ({"package": {"gb": 1}}, "bad_field"),
        ({"package_sms": 1.5}, "bad_field"),
        ({"services": {"roaming": "yes"}}, "bad_field"),
        ({"payments": [{"date": "2026-01-01"}]}, "bad_field"),
        ({"number_management": 1}, "bad_field"),
        ({"password": "ab"}, "invalid_password"),
        ({"msisdn": RU}, "unknown_field"),
    ],
)
def test_subscriber_fields_rejected(fields: dict[str, Any], code: str) -> None:
    with pytest.raises(Invalid) as info:
        subscriber_fields(fields)
    assert info.value.code == code


def test_subscriber_fields_accepted() -> None:
    assert subscriber_fields(
        {
            "balance": 1,
            "package": {"minutes": 1, "sms": 2, "mb": 3},
            "services": {"roaming": False},
            "payments": [{"date": "2026-01-01", "amount": 5}],
            "bonus_points": 7,
        }
    ) == {
        "balance": 1.0,
        "package_minutes": 1,
        "package_sms": 2,
        "package_mb": 3,
        "services": {"roaming": False},
        "payments": [{"date": "2026-01-01", "amount": 5.0}],
        "bonus_points": 7,
    }


# -- any input is an answer or an AccountError, never another exception -------------------------


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(msisdn=st.text(max_size=20), secret=st.text(max_size=12), provider=st.text(max_size=8))
def test_any_input_is_handled(gateway: Gateway, msisdn: str, secret: str, provider: str) -> None:
    accounts = gateway.accounts
    calls = [
        lambda: accounts.login(msisdn, secret),
        lambda: accounts.login_network(msisdn),
        lambda: accounts.authenticate(secret),
        lambda: accounts.change_password(RU, secret, msisdn),
        lambda: accounts.app_link(RU, msisdn, secret),
        lambda: accounts.office_link(msisdn, RU),
        lambda: accounts.unlink(RU, msisdn),
        lambda: accounts.social_bind(RU, provider, secret),
        lambda: accounts.social_login(provider, secret),
        lambda: accounts.update_subscriber(RU, {msisdn: secret}),
    ]
    refused: list[AccountError] = []
    for call in calls:
        try:
            call()
        except AccountError as exc:
            refused.append(exc)
    for exc in refused:
        assert exc.status in (400, 401, 404, 409, 423, 429)
        assert exc.code and exc.message


# -- hardening: token revocation, mutual links, readable SMS passwords ---------------------------


def test_password_change_revokes_every_token(gateway: Gateway, accounts: Accounts) -> None:
    set_password(gateway, RU, "secret12")
    first = accounts.login(RU, "secret12")
    network = accounts.login_network(RU)
    other = accounts.login_network(EN)
    accounts.change_password(RU, "secret12", "Other123")
    for token in (first, network):
        with pytest.raises(Unauthorized):
            accounts.authenticate(token)
    assert accounts.authenticate(other) == EN  # another number's tokens stay
    assert accounts.authenticate(accounts.login(RU, "Other123")) == RU


@pytest.mark.parametrize("how", ["sms_password", "ussd", "admin"])
def test_every_way_of_setting_a_password_revokes_tokens(
    gateway: Gateway, accounts: Accounts, how: str
) -> None:
    token = accounts.login_network(RU)
    if how == "sms_password":
        sms_password(gateway, RU)
    elif how == "ussd":
        set_password(gateway, RU, "secret12")
    else:
        accounts.update_subscriber(RU, {"password": "secret12"})
    with pytest.raises(Unauthorized):
        accounts.authenticate(token)


def test_mutual_app_link_is_refused(gateway: Gateway, accounts: Accounts) -> None:
    set_password(gateway, EN, "bpass123")
    set_password(gateway, RU, "apass123")
    accounts.app_link(RU, EN, "bpass123")  # EN in RU's account
    with pytest.raises(Conflict) as info:
        accounts.app_link(EN, RU, "apass123")  # RU in EN's account: the other way round
    assert info.value.status == 409 and info.value.code == "mutual_link"
    assert gateway.store.link(RU) is None


def test_mutual_office_link_is_refused_even_while_pending(
    gateway: Gateway, accounts: Accounts
) -> None:
    enable_management(gateway, EN)
    enable_management(gateway, RU)
    accounts.office_link(RU, EN)  # pending for two days
    with pytest.raises(Conflict) as info:
        accounts.office_link(EN, RU)
    assert info.value.code == "mutual_link"
    set_password(gateway, RU, "apass123")
    with pytest.raises(Conflict) as info:
        accounts.app_link(EN, RU, "apass123")
    assert info.value.code == "mutual_link"
    accounts.unlink(RU, EN)
    assert accounts.office_link(EN, RU).account == EN  # allowed once the first link is gone


def test_sms_passwords_have_no_look_alikes(gateway: Gateway, clock: SimulatedClock) -> None:
    seen = set()
    for _ in range(40):
        seen |= set(sms_password(gateway, RU))
        clock.advance(gateway.config.auth.sms_password_interval)
    assert not seen & set("0Oo1lIi")
    assert len(seen) > 20  # still a wide alphabet
