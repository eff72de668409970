"""Office links over time: the 2-day delay on the gateway clock, the activation SMS to
both numbers exactly once, cancellation by `*111*828*2#`, and restarts."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.accounts.conftest import (
    DAY,
    EN,
    MINUTE,
    OTHER,
    RU,
    call,
    enable_management,
    open_gateway,
    set_password,
    texts,
)
from tests.conftest import make_config
from ussd.accounts import Conflict
from ussd.clock import RealClock, SimulatedClock
from ussd.events import Event, SmsQueued
from ussd.runtime import Gateway

START = 1_780_000_000.0


def activation_sms(gateway: Gateway) -> tuple[list[str], list[str]]:
    """The link-activation SMS in the account's and the number's inboxes."""
    return (
        [t for t in texts(gateway, RU) if "привязан к вашему" in t],
        [t for t in texts(gateway, EN) if "linked to the personal account" in t],
    )


def test_active_exactly_two_days_later(gateway: Gateway) -> None:
    enable_management(gateway, EN)
    gateway.accounts.office_link(RU, EN)
    gateway.advance(DAY + 23 * 3600 + 59 * MINUTE)  # 1 day 23 h 59 min
    (item,) = gateway.accounts.account_view(RU)["numbers"]
    assert item["state"] == "pending"
    assert activation_sms(gateway) == ([], [])
    gateway.advance(MINUTE)  # 2 days
    (item,) = gateway.accounts.account_view(RU)["numbers"]
    assert item["state"] == "active"
    assert activation_sms(gateway) == (
        [f"Номер {EN} привязан к вашему Личному кабинету."],
        ["Your number is now linked to the personal account of +7 916 ***-**-67."],
    )


def test_activation_sms_goes_out_exactly_once(gateway: Gateway) -> None:
    enable_management(gateway, EN)
    gateway.accounts.office_link(RU, EN)
    gateway.advance(2 * DAY)
    gateway.tick()
    gateway.advance(5 * DAY)
    mine, theirs = activation_sms(gateway)
    assert (len(mine), len(theirs)) == (1, 1)


def test_sms_sent_at_the_due_time_not_at_the_end_of_an_advance(gateway: Gateway) -> None:
    enable_management(gateway, EN)
    gateway.accounts.office_link(RU, EN)
    gateway.advance(3 * DAY)  # one long jump: the link's deadline runs at its own time
    (sms,) = [s for s in gateway.sms.inbox(EN) if "linked" in s.text]
    assert sms.created == START + 2 * DAY


def test_delay_is_configurable() -> None:
    gw = Gateway.create(
        make_config(links={"office_delay": "1h"}), clock=SimulatedClock(START), database=":memory:"
    )
    enable_management(gw, EN)
    assert gw.accounts.office_link(RU, EN).active_at == START + 3600
    gw.advance(3600)
    assert activation_sms(gw) != ([], [])
    gw.store.close()


def test_scheduler_deadline_is_the_next_activation(gateway: Gateway) -> None:
    assert gateway.links.next_deadline() is None
    enable_management(gateway, EN)
    enable_management(gateway, OTHER)
    gateway.accounts.office_link(RU, EN)
    gateway.advance(DAY)
    gateway.accounts.office_link(RU, OTHER)
    assert gateway.links.next_deadline() == START + 2 * DAY
    gateway.advance(DAY)
    assert gateway.links.next_deadline() == START + 3 * DAY
    gateway.advance(DAY)
    assert gateway.links.next_deadline() is None


def test_disable_cancels_a_pending_office_link(gateway: Gateway) -> None:
    enable_management(gateway, EN)
    gateway.accounts.office_link(RU, EN)
    gateway.advance(DAY)
    gateway.engine.dial(EN, "*111*828*2#")  # docs/services.md: disabling cancels pending links
    assert gateway.store.link(EN) is None
    assert gateway.accounts.account_view(RU)["numbers"] == []
    assert gateway.links.next_deadline() is None
    gateway.advance(2 * DAY)
    assert activation_sms(gateway) == ([], [])


def test_unlinking_a_pending_link_cancels_its_sms(gateway: Gateway) -> None:
    enable_management(gateway, EN)
    gateway.accounts.office_link(RU, EN)
    gateway.accounts.unlink(RU, EN)
    gateway.advance(3 * DAY)
    assert activation_sms(gateway) == ([], [])


def test_relinking_after_cancel_notifies_the_new_link(gateway: Gateway) -> None:
    enable_management(gateway, EN)
    gateway.accounts.office_link(RU, EN)
    gateway.engine.dial(EN, "*111*828*2#")
    enable_management(gateway, EN)
    gateway.advance(DAY)
    gateway.accounts.office_link(RU, EN)
    gateway.advance(DAY)
    assert activation_sms(gateway) == ([], [])
    gateway.advance(DAY)
    assert len(activation_sms(gateway)[1]) == 1


def test_status_shows_pending_then_linked(gateway: Gateway) -> None:
    enable_management(gateway, EN)
    gateway.accounts.office_link(RU, EN)
    assert "Link to account +7 916 ***-**-67 from 30.05.2026" in (
        gateway.engine.dial(EN, "*111*828#").text
    )
    gateway.advance(2 * DAY)
    assert "Linked to account +7 916 ***-**-67" in gateway.engine.dial(EN, "*111*828#").text


# -- restarts -----------------------------------------------------------------------------------


def test_pending_link_survives_a_restart(file_gateways: list[Gateway], db_path: str) -> None:
    gw = open_gateway(file_gateways, db_path)
    enable_management(gw, EN)
    gw.accounts.office_link(RU, EN)
    gw.store.close()
    later = open_gateway(file_gateways, db_path, start=START + DAY)
    assert later.links.next_deadline() == START + 2 * DAY
    later.advance(DAY - 1)
    assert activation_sms(later) == ([], [])
    later.advance(1)
    mine, theirs = activation_sms(later)
    assert (len(mine), len(theirs)) == (1, 1)


def test_no_resend_after_a_restart(file_gateways: list[Gateway], db_path: str) -> None:
    gw = open_gateway(file_gateways, db_path)
    enable_management(gw, EN)
    gw.accounts.office_link(RU, EN)
    gw.advance(2 * DAY)
    gw.store.close()
    later = open_gateway(file_gateways, db_path, start=START + 3 * DAY)
    later.tick()
    later.advance(DAY)
    mine, theirs = activation_sms(later)
    assert (len(mine), len(theirs)) == (1, 1)


async def test_started_after_the_due_time_activates_at_start(
    file_gateways: list[Gateway], db_path: str
) -> None:
    gw = open_gateway(file_gateways, db_path)
    enable_management(gw, EN)
    gw.accounts.office_link(RU, EN)
    gw.store.close()
    # The gateway was down when the link fell due; its first tick sends the SMS.
    later = open_gateway(file_gateways, db_path, start=START + 5 * DAY)
    assert activation_sms(later) == ([], [])
    arrived = asyncio.Event()

    def on_event(event: Event) -> None:
        if isinstance(event, SmsQueued) and event.msisdn == EN:
            arrived.set()

    later.engine.subscribe(on_event)
    await later.start()
    try:
        await asyncio.wait_for(arrived.wait(), 5)
    finally:
        await later.stop()
    reopened = open_gateway(file_gateways, db_path, start=START + 5 * DAY)
    mine, theirs = activation_sms(reopened)
    assert (len(mine), len(theirs)) == (1, 1)
    (sms,) = [s for s in reopened.sms.inbox(EN) if "linked" in s.text]
    assert sms.created == START + 5 * DAY  # sent when the gateway came back


async def test_real_clock_timer_task_wakes_for_a_new_link() -> None:
    # On the real clock the timer task sleeps until the next deadline; a link created while it
    # sleeps must re-arm it (Accounts.wake), or the SMS would wait for an unrelated event.
    gw = Gateway.create(
        make_config(links={"office_delay": "50ms"}), clock=RealClock(), database=":memory:"
    )
    enable_management(gw, EN)
    arrived = asyncio.Event()

    def on_event(event: Event) -> None:
        if isinstance(event, SmsQueued) and "linked to the personal" in event.sms.text:
            arrived.set()

    gw.engine.subscribe(on_event)
    await gw.start()
    try:
        await asyncio.sleep(0)  # let the timer task reach its wait with no deadline
        gw.accounts.office_link(RU, EN)
        await asyncio.wait_for(arrived.wait(), 5)
    finally:
        await gw.stop()


@pytest.mark.parametrize("flow", ["app", "office"])
def test_migration_marks_old_app_links_notified(flow: str, db_path: str) -> None:
    # A file from before migration 2: its app links were notified when made; office links
    # still pending get their SMS from the scheduler.
    import sqlite3

    from ussd.store import MIGRATIONS, Store

    db = sqlite3.connect(db_path, isolation_level=None)
    db.executescript(MIGRATIONS[0])
    db.execute("PRAGMA user_version = 1")
    db.execute(
        "INSERT INTO links (number, account, flow, created, active_at) VALUES (?, ?, ?, ?, ?)",
        (EN, RU, flow, START, START if flow == "app" else START + 2 * DAY),
    )
    db.close()
    store = Store(db_path)
    (notified,) = store.db.execute("SELECT notified FROM links").fetchone()
    assert (notified is None) == (flow == "office")
    store.close()


def test_office_link_race_across_connections(file_gateways: list[Gateway], db_path: str) -> None:
    # Two processes on one database file (a running gateway and `ussd-sim office link`): each
    # has its own SQLite connection; the links.number PRIMARY KEY lets exactly one win.
    import threading

    gateways = [open_gateway(file_gateways, db_path) for _ in range(8)]
    enable_management(gateways[0], OTHER)
    barrier = threading.Barrier(len(gateways))
    outcomes: list[str] = []

    def attempt(i: int, gw: Gateway) -> None:
        barrier.wait()
        try:
            gw.accounts.office_link(f"7916555{i:04d}", OTHER)
            outcomes.append("linked")
        except Conflict as exc:
            outcomes.append(exc.code)

    threads = [threading.Thread(target=attempt, args=(i, gw)) for i, gw in enumerate(gateways)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["already_linked"] * 7 + ["linked"]


async def test_mutual_link_over_http_is_409(gateway: Gateway, http: aiohttp.ClientSession) -> None:
    set_password(gateway, EN, "bpass123")
    set_password(gateway, RU, "apass123")
    status, body, _ = await call(
        http, "POST", "/api/v1/auth/login", {"msisdn": RU, "password": "apass123"}
    )
    ru_token = body["token"]
    status, body, _ = await call(
        http, "POST", "/api/v1/auth/login", {"msisdn": EN, "password": "bpass123"}
    )
    en_token = body["token"]
    add = {"msisdn": EN, "password": "bpass123"}
    status, _, _ = await call(http, "POST", "/api/v1/account/numbers", add, token=ru_token)
    assert status == 201
    back = {"msisdn": RU, "password": "apass123"}
    status, body, _ = await call(http, "POST", "/api/v1/account/numbers", back, token=en_token)
    assert status == 409 and body["error"]["code"] == "mutual_link", body
    assert "both ways" in body["error"]["message"]
