"""The website's API over real HTTP (docs/account.md "Website"): every route, every error status."""

from __future__ import annotations

import base64
import re
import struct
import zlib
from typing import Any

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from tests.accounts.conftest import (
    ADMIN,
    DAY,
    EN,
    OTHER,
    RU,
    call,
    enable_management,
    serving,
    set_password,
    texts,
)
from tests.conftest import make_config
from ussd import captcha as captcha_mod
from ussd.captcha import TEST_ANSWER, CaptchaError, Captchas
from ussd.clock import SimulatedClock
from ussd.config import Config, ConfigError
from ussd.http.lk import load_texts
from ussd.menus import LANGUAGES
from ussd.runtime import Gateway
from ussd.social import PROVIDERS

PROVIDER_PASSWORD = "social"  # website.provider_password's default


@pytest.fixture
def config() -> Config:
    return make_config(website={"captcha": "test"})


def assert_error(status: int, body: Any, expected_status: int, code: str) -> None:
    assert status == expected_status, body
    assert set(body) == {"error"} and body["error"]["code"] == code, body


async def captcha(http: aiohttp.ClientSession) -> dict[str, Any]:
    status, body, _ = await call(http, "POST", "/api/v1/lk/captcha", {})
    assert status == 201, body
    return dict(body)


async def sms_password(
    http: aiohttp.ClientSession, msisdn: str, answer: str = TEST_ANSWER
) -> tuple[int, Any, Any]:
    challenge = await captcha(http)
    body = {"msisdn": msisdn, "captcha_id": challenge["captcha_id"], "captcha": answer}
    return await call(http, "POST", "/api/v1/lk/sms-password", body)


def sms_secret(gateway: Gateway, msisdn: str) -> str:
    found = re.findall(r"[A-Za-z0-9]{8}(?=\.)", texts(gateway, msisdn)[-1])
    assert found, texts(gateway, msisdn)
    return str(found[-1])


async def login(http: aiohttp.ClientSession, msisdn: str, password: str) -> str:
    body = {"msisdn": msisdn, "password": password}
    status, data, _ = await call(http, "POST", "/api/v1/auth/login", body)
    assert status == 200, data
    return str(data["token"])


def png_size(png: bytes) -> tuple[int, int]:
    """Width and height of a PNG after checking its signature, IHDR and every chunk's CRC."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, kinds, idat = 8, [], b""
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind, data = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", png[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + data)
        kinds.append(kind)
        idat += data if kind == b"IDAT" else b""
        pos += 12 + length
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND"
    width, height = struct.unpack(">II", png[16:24])
    assert len(zlib.decompress(idat)) == height * (width + 1)
    return width, height


# -- texts, pages, assets ---------------------------------------------------------------------


def test_texts_have_every_key_in_both_languages() -> None:
    data = load_texts()
    assert set(data) == set(LANGUAGES)
    assert set(data["ru"]) == set(data["en"]) and len(data["ru"]) > 50


async def test_site_settings(http: aiohttp.ClientSession) -> None:
    status, body, _ = await call(http, "GET", "/api/v1/lk/site")
    assert status == 200
    assert body["captcha"] == "test" and body["providers"] == list(PROVIDERS)
    assert body["texts"]["ru"]["service_mobile"] == "Мобильная связь"
    assert body["texts"]["en"]["get_sms_password"] == "Get a password by SMS"


@pytest.mark.parametrize("path", ["/lk", "/lk/provider/vk"])
async def test_pages_are_not_frameable_and_run_only_own_scripts(
    http: aiohttp.ClientSession, path: str
) -> None:
    async with http.get(path) as r:
        assert r.status == 200 and r.content_type == "text/html"
        assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
        assert r.headers["X-Frame-Options"] == "DENY"
        assert r.headers["Referrer-Policy"] == "no-referrer"
        assert "<script>" not in await r.text()  # no inline script: CSP script-src 'self'


@pytest.mark.parametrize(
    ("path", "code"),
    [("/lk/provider/facebook", "unknown_provider"), ("/lk/config.yaml", "not_found")],
)
async def test_unknown_pages_and_assets(http: aiohttp.ClientSession, path: str, code: str) -> None:
    status, body, _ = await call(http, "GET", path)
    assert_error(status, body, 404, code)


@pytest.mark.parametrize("name", ["lk.css", "lk.js", "provider.js"])
async def test_assets(http: aiohttp.ClientSession, name: str) -> None:
    async with http.get(f"/lk/{name}") as r:
        assert r.status == 200 and len(await r.read()) > 1000


# -- captcha ----------------------------------------------------------------------------------


async def test_captcha_is_a_png_whose_answer_is_not_in_the_response(
    http: aiohttp.ClientSession,
) -> None:
    body = await captcha(http)
    assert set(body) == {"captcha_id", "image", "expires_in"}
    assert body["expires_in"] == 300
    prefix = "data:image/png;base64,"
    assert body["image"].startswith(prefix)
    png = base64.b64decode(body["image"][len(prefix) :])
    assert png_size(png) == (captcha_mod.WIDTH, captcha_mod.HEIGHT)
    assert TEST_ANSWER not in str(body)


async def test_captcha_off_is_409(clock: SimulatedClock) -> None:
    gw = Gateway.create(make_config(website={"captcha": False}), clock=clock, database=":memory:")
    async with serving(gw) as http:
        status, body, _ = await call(http, "POST", "/api/v1/lk/captcha", {})
        assert_error(status, body, 409, "captcha_off")
        # Off: the SMS password needs no captcha at all.
        status, body, _ = await call(http, "POST", "/api/v1/lk/sms-password", {"msisdn": RU})
        assert status == 200, body
    gw.store.close()


def test_captcha_rules() -> None:
    """Single use, expiring, case of a wrong answer, LRU cap; random answers in `on` mode."""
    c = Captchas("on", ttl=60, cap=3)
    first = c.issue(0)
    answer = c._answers[first.id][0]
    assert len(answer) == captcha_mod.LENGTH and set(answer) <= set("23456789")
    with pytest.raises(CaptchaError) as wrong:
        c.check(first.id, "x" + answer, 1)
    assert wrong.value.code == "bad_captcha"
    with pytest.raises(CaptchaError) as spent:
        c.check(first.id, answer, 1)  # the wrong try spent it
    assert spent.value.code == "captcha_expired"
    late = c.issue(0)
    with pytest.raises(CaptchaError) as expired:
        c.check(late.id, c._answers[late.id][0], 60)
    assert expired.value.code == "captcha_expired"
    ids = [c.issue(0).id for _ in range(10)]
    assert len(c) == 3 and all(i in c._answers for i in ids[-3:])
    ok = c.issue(0)
    c.check(ok.id, " " + c._answers[ok.id][0] + " ", 1)  # surrounding blanks are forgiven
    with pytest.raises(CaptchaError) as required:
        c.check(None, "12345", 1)
    assert required.value.code == "captcha_required"


@pytest.mark.parametrize(("value", "mode"), [(True, "on"), (False, "off"), ("test", "test")])
def test_captcha_config(value: object, mode: str) -> None:
    assert make_config(website={"captcha": value}).website.captcha == mode


def test_captcha_config_refuses_other_values() -> None:
    with pytest.raises(ConfigError) as exc:
        make_config(website={"captcha": "maybe"})
    assert exc.value.key == "website.captcha"


# -- SMS password behind the captcha ----------------------------------------------------------


async def test_sms_password_with_captcha(gateway: Gateway, http: aiohttp.ClientSession) -> None:
    status, body, _ = await sms_password(http, RU)
    assert status == 200 and body == {"sent": True, "msisdn": RU, "retry_after": 60}
    token = await login(http, RU, sms_secret(gateway, RU))
    status, view, _ = await call(http, "GET", "/api/v1/lk/account", token=token)
    assert view["password_generated"] is True


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"captcha": "54321"}, "bad_captcha"),
        ({"captcha_id": "nope"}, "captcha_expired"),
        ({"captcha": None}, "captcha_required"),
    ],
)
async def test_sms_password_captcha_errors(
    gateway: Gateway, http: aiohttp.ClientSession, change: dict[str, Any], code: str
) -> None:
    challenge = await captcha(http)
    body = {"msisdn": RU, "captcha_id": challenge["captcha_id"], "captcha": TEST_ANSWER, **change}
    body = {k: v for k, v in body.items() if v is not None}
    status, data, _ = await call(http, "POST", "/api/v1/lk/sms-password", body)
    assert_error(status, data, 400, code)
    assert texts(gateway, RU) == []


async def test_sms_password_wrong_captcha_spends_it(http: aiohttp.ClientSession) -> None:
    challenge = await captcha(http)
    body = {"msisdn": RU, "captcha_id": challenge["captcha_id"], "captcha": "00000"}
    status, data, _ = await call(http, "POST", "/api/v1/lk/sms-password", body)
    assert_error(status, data, 400, "bad_captcha")
    body["captcha"] = TEST_ANSWER
    status, data, _ = await call(http, "POST", "/api/v1/lk/sms-password", body)
    assert_error(status, data, 400, "captcha_expired")


async def test_sms_password_captcha_expires(
    gateway: Gateway, clock: SimulatedClock, http: aiohttp.ClientSession
) -> None:
    challenge = await captcha(http)
    clock.advance(301)
    body = {"msisdn": RU, "captcha_id": challenge["captcha_id"], "captcha": TEST_ANSWER}
    status, data, _ = await call(http, "POST", "/api/v1/lk/sms-password", body)
    assert_error(status, data, 400, "captcha_expired")


async def test_sms_password_rate_limited_with_retry_after(
    clock: SimulatedClock, http: aiohttp.ClientSession
) -> None:
    assert (await sms_password(http, RU))[0] == 200
    clock.advance(20)
    status, body, headers = await sms_password(http, RU)
    assert_error(status, body, 429, "rate_limited")
    assert headers["Retry-After"] == "40"


async def test_sms_password_bad_number_keeps_the_captcha(http: aiohttp.ClientSession) -> None:
    challenge = await captcha(http)
    body = {"msisdn": "12", "captcha_id": challenge["captcha_id"], "captcha": TEST_ANSWER}
    status, data, _ = await call(http, "POST", "/api/v1/lk/sms-password", body)
    assert_error(status, data, 400, "bad_msisdn")
    body["msisdn"] = RU
    status, data, _ = await call(http, "POST", "/api/v1/lk/sms-password", body)
    assert status == 200, data


async def test_sms_password_missing_number(http: aiohttp.ClientSession) -> None:
    status, data, _ = await call(http, "POST", "/api/v1/lk/sms-password", {})
    assert_error(status, data, 400, "missing_field")


async def test_sms_password_unknown_number_without_auto_provision(clock: SimulatedClock) -> None:
    cfg = make_config(website={"captcha": "test"}, subscribers={"auto_provision": False})
    gw = Gateway.create(cfg, clock=clock, database=":memory:")
    async with serving(gw) as http:
        status, body, _ = await sms_password(http, "79169999999")
        assert_error(status, body, 404, "unknown_msisdn")
    gw.store.close()


async def test_sms_password_refuses_cross_site_and_form_posts(http: aiohttp.ClientSession) -> None:
    challenge = await captcha(http)
    body = {"msisdn": RU, "captcha_id": challenge["captcha_id"], "captcha": TEST_ANSWER}
    evil = {"Origin": "http://evil.example"}
    status, data, _ = await call(http, "POST", "/api/v1/lk/sms-password", body, headers=evil)
    assert_error(status, data, 403, "forbidden_origin")
    async with http.post(
        "/api/v1/lk/sms-password", data="msisdn=79161234567", headers={"Content-Type": "text/plain"}
    ) as r:
        assert r.status == 415


async def test_passwords_and_captcha_answers_are_never_logged(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    with capture_logs() as logs:
        await sms_password(http, RU)
        secret = sms_secret(gateway, RU)
        await login(http, RU, secret)
    assert logs and secret not in str(logs)
    # The captcha answer appears nowhere but in a number (79161234567 holds "12345").
    assert all(TEST_ANSWER not in str(v) for e in logs for k, v in e.items() if k != "msisdn")


# -- the generated-password recommendation ----------------------------------------------------


async def test_replacing_a_generated_password_ends_the_recommendation(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    await sms_password(http, RU)
    secret = sms_secret(gateway, RU)
    token = await login(http, RU, secret)
    body = {"current": secret, "new": "mine1234"}
    status, data, _ = await call(http, "POST", "/api/v1/account/password", body, token=token)
    assert status == 200, data
    token = await login(http, RU, "mine1234")
    status, view, _ = await call(http, "GET", "/api/v1/lk/account", token=token)
    assert view["password_generated"] is False


async def test_password_set_by_ussd_is_not_generated(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    await sms_password(http, RU)
    assert gateway.accounts.password_generated(RU)
    set_password(gateway, RU, "ussd1234")
    assert not gateway.accounts.password_generated(RU)


def test_generated_flag_survives_a_restart(file_gateways: list[Gateway], db_path: str) -> None:
    from tests.accounts.conftest import open_gateway

    gw = open_gateway(file_gateways, db_path, website={"captcha": "test"})
    gw.accounts.send_sms_password(RU)
    gw.store.close()
    again = open_gateway(file_gateways, db_path, website={"captcha": "test"})
    assert again.accounts.password_generated(RU)
    assert not again.accounts.password_generated(EN)


# -- the account view -------------------------------------------------------------------------


async def test_account_needs_a_token(http: aiohttp.ClientSession) -> None:
    status, body, headers = await call(http, "GET", "/api/v1/lk/account")
    assert_error(status, body, 401, "unauthorized")
    assert headers["WWW-Authenticate"].startswith("Bearer")
    status, body, _ = await call(http, "GET", "/api/v1/lk/account", token="nope")
    assert_error(status, body, 401, "invalid_token")


async def test_account_counts_down_office_links(
    gateway: Gateway, clock: SimulatedClock, http: aiohttp.ClientSession
) -> None:
    set_password(gateway, RU, "secret12")
    enable_management(gateway, OTHER)
    link = {"account": RU, "number": OTHER}
    status, _, _ = await call(http, "POST", "/api/v1/office/links", link, headers=ADMIN)
    assert status == 201
    token = await login(http, RU, "secret12")
    status, view, _ = await call(http, "GET", "/api/v1/lk/account", token=token)
    assert status == 200 and view["password_generated"] is False and view["social"] == []
    (item,) = view["numbers"]
    assert item["state"] == "pending" and item["seconds_left"] == 2 * DAY
    status, _, _ = await call(http, "POST", "/api/v1/clock/advance", {"by": "1d"}, headers=ADMIN)
    assert status == 200
    token = await login(http, RU, "secret12")  # a day outlives the token
    status, view, _ = await call(http, "GET", "/api/v1/lk/account", token=token)
    assert view["numbers"][0]["seconds_left"] == DAY
    clock.advance(DAY)
    token = await login(http, RU, "secret12")
    status, view, _ = await call(http, "GET", "/api/v1/lk/account", token=token)
    assert view["numbers"][0] | {"seconds_left": 0} == view["numbers"][0]
    assert view["numbers"][0]["state"] == "active"


# -- simulated providers and social sign-in ---------------------------------------------------


async def provider_code(http: aiohttp.ClientSession, provider: str, login_name: str) -> str:
    body = {"login": login_name, "password": PROVIDER_PASSWORD}
    status, data, _ = await call(http, "POST", f"/api/v1/lk/providers/{provider}/login", body)
    assert status == 200, data
    assert data["login"] == login_name.lower()
    consent = {"session": data["session"]}
    status, data, _ = await call(http, "POST", f"/api/v1/lk/providers/{provider}/consent", consent)
    assert status == 200, data
    return str(data["code"])


@pytest.mark.parametrize(
    ("provider", "body", "status", "code"),
    [
        ("facebook", {"login": "ann", "password": PROVIDER_PASSWORD}, 404, "unknown_provider"),
        ("vk", {"login": "a b", "password": PROVIDER_PASSWORD}, 400, "invalid_login"),
        ("vk", {"login": "ann", "password": "wrong"}, 401, "bad_provider_credentials"),
        ("vk", {"login": "ann"}, 400, "missing_field"),
    ],
)
async def test_provider_login_errors(
    http: aiohttp.ClientSession, provider: str, body: dict[str, str], status: int, code: str
) -> None:
    got, data, _ = await call(http, "POST", f"/api/v1/lk/providers/{provider}/login", body)
    assert_error(got, data, status, code)


async def test_provider_consent_errors(http: aiohttp.ClientSession) -> None:
    body = {"login": "ann", "password": PROVIDER_PASSWORD}
    _, data, _ = await call(http, "POST", "/api/v1/lk/providers/vk/login", body)
    session = {"session": data["session"]}
    # A session of one provider is no good at another, and a session is spent once used.
    status, err, _ = await call(http, "POST", "/api/v1/lk/providers/yandex/consent", session)
    assert_error(status, err, 401, "provider_session_expired")
    status, err, _ = await call(http, "POST", "/api/v1/lk/providers/vk/consent", {})
    assert_error(status, err, 400, "missing_field")
    status, err, _ = await call(http, "POST", "/api/v1/lk/providers/vk/consent", {"session": "x"})
    assert_error(status, err, 401, "provider_session_expired")


async def test_social_first_time_binds_then_signs_in_without_a_number(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    set_password(gateway, RU, "secret12")
    code = await provider_code(http, "vk", "Ann.Petrova")
    status, first, _ = await call(
        http, "POST", "/api/v1/lk/social/login", {"provider": "vk", "code": code}
    )
    assert status == 200 and first["bound"] is False and first["login"] == "ann.petrova"
    # The code is spent.
    status, err, _ = await call(
        http, "POST", "/api/v1/lk/social/login", {"provider": "vk", "code": code}
    )
    assert_error(status, err, 401, "invalid_code")
    # A wrong password keeps the ticket (and counts towards the number's lockout).
    bind = {"ticket": first["ticket"], "msisdn": RU, "password": "wrong1"}
    status, err, _ = await call(http, "POST", "/api/v1/lk/social/bind", bind)
    assert_error(status, err, 401, "bad_credentials")
    assert gateway.accounts.auth_state(RU).failures == 1
    bind["password"] = "secret12"
    status, bound, _ = await call(http, "POST", "/api/v1/lk/social/bind", bind)
    assert status == 200 and bound["bound"] is True and bound["msisdn"] == RU and bound["token"]
    status, err, _ = await call(http, "POST", "/api/v1/lk/social/bind", bind)
    assert_error(status, err, 401, "invalid_ticket")  # spent
    # Later: no number asked.
    code = await provider_code(http, "vk", "ann.petrova")
    status, again, _ = await call(
        http, "POST", "/api/v1/lk/social/login", {"provider": "vk", "code": code}
    )
    assert status == 200 and again["bound"] is True and again["msisdn"] == RU
    status, view, _ = await call(http, "GET", "/api/v1/lk/account", token=again["token"])
    assert [(s["provider"], s["external_id"]) for s in view["social"]] == [("vk", "ann.petrova")]
    # Removed in settings: the next visit asks for the number again.
    status, gone, _ = await call(
        http, "DELETE", "/api/v1/lk/social/vk/ann.petrova", token=again["token"]
    )
    assert status == 200 and gone["unbound"] is True
    status, err, _ = await call(
        http, "DELETE", "/api/v1/lk/social/vk/ann.petrova", token=again["token"]
    )
    assert_error(status, err, 404, "not_bound")
    code = await provider_code(http, "vk", "ann.petrova")
    status, later, _ = await call(
        http, "POST", "/api/v1/lk/social/login", {"provider": "vk", "code": code}
    )
    assert later["bound"] is False


async def test_social_bind_while_signed_in(gateway: Gateway, http: aiohttp.ClientSession) -> None:
    set_password(gateway, RU, "secret12")
    token = await login(http, RU, "secret12")
    code = await provider_code(http, "google", "ann@example.org")
    _, first, _ = await call(
        http, "POST", "/api/v1/lk/social/login", {"provider": "google", "code": code}
    )
    status, bound, _ = await call(
        http, "POST", "/api/v1/lk/social/bind", {"ticket": first["ticket"]}, token=token
    )
    assert status == 200 and bound == {
        "bound": True,
        "provider": "google",
        "login": "ann@example.org",
        "msisdn": RU,
    }
    status, err, _ = await call(
        http, "POST", "/api/v1/lk/social/bind", {"ticket": first["ticket"]}, token="nope"
    )
    assert_error(status, err, 401, "invalid_token")


async def test_social_identity_taken_is_409(gateway: Gateway, http: aiohttp.ClientSession) -> None:
    set_password(gateway, RU, "secret12")
    set_password(gateway, EN, "secret34")
    gateway.accounts.social_bind(EN, "yandex", "ann")
    # Bound already, so login signs in as EN; a ticket for it can only come from before.
    code = await provider_code(http, "yandex", "bob")
    _, first, _ = await call(
        http, "POST", "/api/v1/lk/social/login", {"provider": "yandex", "code": code}
    )
    gateway.accounts.social_bind(EN, "yandex", "bob")
    bind = {"ticket": first["ticket"], "msisdn": RU, "password": "secret12"}
    status, err, _ = await call(http, "POST", "/api/v1/lk/social/bind", bind)
    assert_error(status, err, 409, "identity_taken")


async def test_social_bind_locks_after_five_wrong_passwords(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    set_password(gateway, RU, "secret12")
    code = await provider_code(http, "vk", "mallory")
    _, first, _ = await call(
        http, "POST", "/api/v1/lk/social/login", {"provider": "vk", "code": code}
    )
    bind = {"ticket": first["ticket"], "msisdn": RU, "password": "wrong1"}
    for _ in range(4):
        status, _, _ = await call(http, "POST", "/api/v1/lk/social/bind", bind)
        assert status == 401
    status, err, headers = await call(http, "POST", "/api/v1/lk/social/bind", bind)
    assert_error(status, err, 423, "locked")
    assert headers["Retry-After"] == "900"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"provider": "vk", "code": "nope"}, 401, "invalid_code"),
        ({"provider": "myspace", "code": "nope"}, 404, "unknown_provider"),
        ({"provider": "vk"}, 400, "missing_field"),
    ],
)
async def test_social_login_errors(
    http: aiohttp.ClientSession, body: dict[str, str], status: int, code: str
) -> None:
    got, data, _ = await call(http, "POST", "/api/v1/lk/social/login", body)
    assert_error(got, data, status, code)


async def test_social_code_of_another_provider_is_refused(http: aiohttp.ClientSession) -> None:
    code = await provider_code(http, "vk", "ann")
    status, err, _ = await call(
        http, "POST", "/api/v1/lk/social/login", {"provider": "yandex", "code": code}
    )
    assert_error(status, err, 401, "invalid_code")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"ticket": "nope", "msisdn": RU, "password": "x"}, 401, "invalid_ticket"),
        ({}, 400, "missing_field"),
    ],
)
async def test_social_bind_errors(
    http: aiohttp.ClientSession, body: dict[str, str], status: int, code: str
) -> None:
    got, data, _ = await call(http, "POST", "/api/v1/lk/social/bind", body)
    assert_error(got, data, status, code)


async def test_unbind_errors(gateway: Gateway, http: aiohttp.ClientSession) -> None:
    status, err, _ = await call(http, "DELETE", "/api/v1/lk/social/vk/ann")
    assert_error(status, err, 401, "unauthorized")
    set_password(gateway, RU, "secret12")
    token = await login(http, RU, "secret12")
    status, err, _ = await call(http, "DELETE", "/api/v1/lk/social/VK/ann", token=token)
    assert_error(status, err, 400, "invalid_provider")
    gateway.accounts.social_bind(EN, "vk", "ann")  # someone else's binding is not ours to drop
    status, err, _ = await call(http, "DELETE", "/api/v1/lk/social/vk/ann", token=token)
    assert_error(status, err, 404, "not_bound")
    assert gateway.accounts.social_bindings(EN) != []


# -- invariants and bounds of the captcha and provider stores ---------------------------------


@given(st.text(alphabet="0123456789", min_size=1, max_size=8))
@settings(max_examples=30, deadline=None)
def test_any_digits_render_to_a_valid_png(text: str) -> None:
    assert png_size(captcha_mod.render(text)) == (captcha_mod.WIDTH, captcha_mod.HEIGHT)


@given(st.text(max_size=20))
@settings(max_examples=200, deadline=None)
def test_only_the_right_answer_passes(answer: str) -> None:
    c = Captchas("test", ttl=60)
    challenge = c.issue(0)
    if answer.strip() == TEST_ANSWER:
        c.check(challenge.id, answer, 1)
    else:
        with pytest.raises(CaptchaError):
            c.check(challenge.id, answer, 1)
    assert len(c) == 0  # spent either way


def test_provider_stores_are_bounded_and_expire() -> None:
    from ussd.social import Identity, SocialError, SocialSim

    sim = SocialSim("pw", ttl=10, cap=5)
    sessions = [sim.sign_in("vk", f"user{i}", "pw", 0) for i in range(50)]
    assert len(sim.sessions) == 5
    with pytest.raises(SocialError) as dropped:
        sim.consent("vk", sessions[0], 1)  # pushed out by newer ones
    assert dropped.value.code == "provider_session_expired"
    code = sim.consent("vk", sessions[-1], 1)
    with pytest.raises(SocialError) as late:
        sim.exchange("vk", code, 11)  # a code lives `ttl`
    assert late.value.code == "invalid_code"
    ticket = sim.ticket(Identity("vk", "ann"), 0)
    assert sim.ticket_identity(ticket, 9) == Identity("vk", "ann")
    with pytest.raises(SocialError):
        sim.ticket_identity(ticket, 10)
    for i in range(20):
        sim.ticket(Identity("vk", f"u{i}"), 0)
    assert len(sim.tickets) == 5
