"""Dialog records (ussd/records.py, docs/operations.md "Dialog records").

Every end cause of the documented list is produced here by a dialog that ends that way; the
transports say how a dialog came (`via`); the store keeps at most `records.max` records of at
most `records.retention` age, written in batches.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import make_config
from ussd import records
from ussd.clock import SimulatedClock
from ussd.effects import Answer, Effect, Failure, Result
from ussd.events import DialogRecord, Outcome
from ussd.faults import parse_rule
from ussd.records import Cause, Query, Records, Stored, parse_query, parse_time
from ussd.runtime import Gateway
from ussd.services.base import Await, Context, End, Step
from ussd.store import Store

RU = "79161234567"
EN = "79161112233"
KIND = "test"


class Asking:
    """Asks a `test` effect for its one screen: an answer ends the dialog as the app says."""

    name = "test.asking"
    texts_used = ("common.error",)

    def start(self, ctx: Context, args: Mapping[str, str]) -> Step:
        return Await(KIND, {}, 10.0, "asked")

    def reply(self, ctx: Context, screen: str, values: Mapping[str, Any], text: str) -> Step:
        return End("bye")

    def resume(self, ctx: Context, screen: str, values: Mapping[str, Any], result: Result) -> Step:
        if isinstance(result, Failure):
            return End(ctx.t("common.error"), outcome=result.cause)
        return End(str(result.value["text"]), outcome=Outcome.APP_RELEASE)


class Broken:
    """A service bug: the engine shows the error screen (cause `error`)."""

    name = "test.broken"
    texts_used = ()

    def start(self, ctx: Context, args: Mapping[str, str]) -> Step:
        raise RuntimeError("a bug")

    def reply(self, ctx: Context, screen: str, values: Mapping[str, Any], text: str) -> Step:
        raise AssertionError("never asked")


class Faulty:
    """Ends as an injected network fault would (ussd/faults.py ends dialogs this way)."""

    name = "test.faulty"
    texts_used = ("common.error",)

    def start(self, ctx: Context, args: Mapping[str, str]) -> Step:
        return End(ctx.t("common.error"), outcome=Outcome.NETWORK_FAULT)

    def reply(self, ctx: Context, screen: str, values: Mapping[str, Any], text: str) -> Step:
        raise AssertionError("never asked")


ROUTES = {
    "*100#": "balance",
    "*111#": "menu:main",
    "*555#": Asking.name,
    "*556#": Broken.name,
    "*557#": Faulty.name,
}


def world(database: str = ":memory:", **sections: Any) -> Gateway:
    sections.setdefault("ussd", {})
    sections["ussd"] = {"routes": ROUTES, "reply_timeout": "30s", **sections["ussd"]}
    services = {s.name: s for s in (Asking(), Broken(), Faulty())}
    return Gateway.create(
        make_config(**sections), clock=SimulatedClock(), database=database, services=services
    )


@pytest.fixture
async def gw() -> Any:
    gateway = world()
    await gateway.start()
    yield gateway
    await gateway.stop()


def newest(gw: Gateway, **filters: Any) -> DialogRecord:
    return gw.records.query(Query(limit=1, **filters))[0].record


ASKED: list[asyncio.Event] = []


async def _forever(effect: Effect) -> Result:
    ASKED[-1].set()
    await asyncio.Event().wait()  # an app that never answers
    raise AssertionError("unreachable")


async def _raises(effect: Effect) -> Result:
    raise RuntimeError("the performer failed")


async def _unavailable(effect: Effect) -> Result:
    return Failure(Outcome.APP_UNAVAILABLE, "not bound")


async def _releases(effect: Effect) -> Result:
    return Answer({"text": "Thank you"})


async def completed(gw: Gateway) -> None:
    await gw.dial(RU, "*100#")


async def user_release(gw: Gateway) -> None:
    await gw.dial(RU, "*111#")
    assert gw.engine.release(RU)


async def idle_timeout(gw: Gateway) -> None:
    await gw.dial(RU, "*111#")
    gw.advance(30)


async def max_duration(gw: Gateway) -> None:
    await gw.dial(RU, "*111#")
    # A reply every 20 s keeps the reply timer from ending it; the maximum is 180 s.
    while (dialog := gw.engine.dialog(RU)) is not None:
        await gw.reply(RU, "98" if dialog.page == 1 else "0")
        gw.advance(20)


async def app_timeout(gw: Gateway) -> None:
    gw.register(KIND, _forever)
    ASKED.append(asyncio.Event())
    dial = asyncio.ensure_future(gw.dial(RU, "*555#"))
    await ASKED[-1].wait()
    gw.advance(10)
    assert (await dial).end


async def app_error(gw: Gateway) -> None:
    gw.register(KIND, _raises)
    await gw.dial(RU, "*555#")


async def app_release(gw: Gateway) -> None:
    gw.register(KIND, _releases)
    assert (await gw.dial(RU, "*555#")).text == "Thank you"


async def app_unavailable(gw: Gateway) -> None:
    gw.register(KIND, _unavailable)
    await gw.dial(RU, "*555#")


def _fault(gw: Gateway, rule: dict[str, Any]) -> None:
    faults = gw.engine.faults
    faults.add(parse_rule(rule, faults.new_id()))


async def network_fault(gw: Gateway) -> None:
    _fault(gw, {"kind": "ussd_network_error", "at": "dial", "match": {"code": "*100#"}})
    await gw.dial(RU, "*100#")
    assert newest(gw).detail.endswith("ussd_network_error at dial")  # the rule, by its id


async def network_fault_dropped(gw: Gateway) -> None:
    _fault(gw, {"kind": "dialog_dropped", "at": "reply", "match": {"msisdn": RU}})
    await gw.dial(RU, "*111#")
    await gw.reply(RU, "98")  # lost on the way: the handset keeps its screen and times out
    gw.advance(30)
    assert newest(gw).detail.endswith("dialog_dropped at reply")


async def network_fault_from_a_service(gw: Gateway) -> None:
    await gw.dial(RU, "*557#")


async def replaced(gw: Gateway) -> None:
    await gw.dial(RU, "*111#")
    await gw.dial(RU, "*100#")  # the new request wins (TS 24.090)


async def unknown_code(gw: Gateway) -> None:
    await gw.dial(RU, "*999#")


async def not_supported(gw: Gateway) -> None:
    await gw.dial(RU, "*76#")  # COLP activation: an SS the network does not support


async def not_supported_without_ss(gw: Gateway) -> None:
    del gw.engine.services["ss"]  # a network with no SS handler at all
    await gw.dial(RU, "*#21#")


async def error(gw: Gateway) -> None:
    await gw.dial(RU, "*556#")


async def shutdown(gw: Gateway) -> None:
    await gw.dial(RU, "*111#")
    gw.engine.shutdown()


# (how, the cause, which record: the dialog replaced is the one before the newest)
CAUSES: list[tuple[Callable[[Gateway], Awaitable[None]], Cause, int]] = [
    (completed, Cause.COMPLETED, 0),
    (user_release, Cause.USER_RELEASE, 0),
    (idle_timeout, Cause.IDLE_TIMEOUT, 0),
    (max_duration, Cause.MAX_DURATION, 0),
    (app_timeout, Cause.APP_TIMEOUT, 0),
    (app_error, Cause.APP_ERROR, 0),
    (app_release, Cause.APP_RELEASE, 0),
    (app_unavailable, Cause.APP_UNAVAILABLE, 0),
    (network_fault, Cause.NETWORK_FAULT, 0),
    (network_fault_dropped, Cause.NETWORK_FAULT, 0),
    (network_fault_from_a_service, Cause.NETWORK_FAULT, 0),
    (replaced, Cause.REPLACED, 1),
    (unknown_code, Cause.UNKNOWN_CODE, 0),
    (not_supported, Cause.NOT_SUPPORTED, 0),
    (not_supported_without_ss, Cause.NOT_SUPPORTED, 0),
    (error, Cause.ERROR, 0),
    (shutdown, Cause.SHUTDOWN, 0),
]


def test_every_documented_cause_has_a_dialog_that_ends_that_way() -> None:
    assert {cause for _, cause, _ in CAUSES} == set(Cause)


def test_the_operations_guide_lists_every_cause() -> None:
    guide = (Path(__file__).resolve().parents[1] / "docs" / "operations.md").read_text()
    section = guide.split("## Dialog records", 1)[1].split("\n## ", 1)[0]
    assert all(f"| `{cause.value}` |" in section for cause in Cause)


@pytest.mark.parametrize(("how", "cause", "back"), CAUSES, ids=[c[0].__name__ for c in CAUSES])
async def test_cause(
    gw: Gateway, how: Callable[[Gateway], Awaitable[None]], cause: Cause, back: int
) -> None:
    start = gw.clock.now()
    await how(gw)
    rows = gw.records.query(Query())
    record = rows[back].record
    assert record.cause == cause.value
    assert record.msisdn == RU and record.via == "api"
    assert (
        start
        <= record.started
        <= record.ended
        == (rows[back - 1].record.started if back else gw.clock.now())
    )
    # The metric counts the same causes (docs/operations.md).
    assert f'ussd_dialog_records_total{{cause="{cause.value}"}} 1.0' in gw.metrics.render().decode()


async def test_a_record_says_what_the_dialog_was(gw: Gateway) -> None:
    await gw.dial(RU, "*111#")
    gw.advance(5)
    await gw.reply(RU, "98")  # a page is a step too
    gw.advance(5)
    await gw.reply(RU, "1")
    gw.engine.release(RU)
    record = newest(gw)
    assert (record.code, record.route, record.via, record.steps) == ("111", "menu:main", "api", 3)
    assert record.ended - record.started == 10
    assert record.session and record.detail == ""
    assert newest(gw, msisdn=RU) == record and gw.records.query(Query(msisdn=EN)) == []


# -- how the dialog came ------------------------------------------------------------------------


async def test_smpp_dialogs_are_via_smpp() -> None:
    from tests.smpp.helpers import ALICE, bound, server_config, start_server

    gateway = Gateway.create(server_config(), clock=SimulatedClock(), database=":memory:")
    await gateway.start()
    server = await start_server(gateway)
    client = await bound(server)
    try:
        assert (await client.submit(ALICE, "*100#")).command_status == 0
        await client.deliver_sm()  # the end screen
        assert (await client.submit(ALICE, "not a code")).command_status == 0
        await client.deliver_sm()
    finally:
        await client.close()
        await server.stop()
    rows = [r.record for r in gateway.records.query(Query())]
    await gateway.stop()
    assert [(r.msisdn, r.code, r.via, r.cause) for r in rows] == [
        (ALICE, "111", "smpp", "unknown_code"),  # no dial string: the service address's code
        (ALICE, "100", "smpp", "completed"),
    ]


async def test_scenario_dialogs_are_via_scenario() -> None:
    from sim import scenario
    from sim.targets import InProcessTarget
    from ussd.config import read

    text = 'name: T\nsubscribers: [{msisdn: "79161234567"}]\nsteps: [{dial: "*100#"}]\n'
    (plan,) = scenario.loads(text, "t.yaml", read()[0])
    target = InProcessTarget()
    await target.setup(plan)
    try:
        assert (await target.dial(RU, "*100#")).ok
        assert newest(target.gateway).via == "scenario"
    finally:
        await target.close()


async def test_the_terminal_phone_over_http_is_via_terminal(gw: Gateway) -> None:
    from sim.client import PhonesClient
    from ussd.http import start_http

    server = await start_http(gw, "127.0.0.1", 0)
    try:
        async with PhonesClient(server.url, via="terminal") as client:
            await client.dial(RU, "*100#")
        async with PhonesClient(server.url) as client:  # says nothing: the API itself
            await client.dial(EN, "*100#")
    finally:
        await server.stop()
    assert newest(gw, msisdn=RU).via == "terminal" and newest(gw, msisdn=EN).via == "api"


def test_an_unknown_via_is_refused(gateway: Gateway) -> None:
    with pytest.raises(ValueError, match="via must be one of"):
        gateway.engine.dial(RU, "*100#", via="pigeon")


# -- kept, bounded, batched ---------------------------------------------------------------------


def test_records_survive_a_restart_shutdown_included(tmp_path: Path) -> None:
    database = str(tmp_path / "ussd.sqlite3")
    gw = world(database)
    gw.engine.dial(RU, "*100#", via="terminal")
    gw.engine.dial(EN, "*111#")
    gw.close()  # EN's dialog ends with the gateway: its record is written on the way out
    again = Store(database)
    rows = records.read(again, Query())
    again.close()
    assert [(r.record.msisdn, r.record.cause, r.record.via) for r in rows] == [
        (EN, "shutdown", "api"),
        (RU, "completed", "terminal"),
    ]


def test_records_wait_for_a_batch_and_a_query_writes_them(gateway: Gateway) -> None:
    written = gateway.records.written
    gateway.engine.dial(RU, "*100#")
    assert gateway.records.written == written  # no loop here: nothing written per dialog
    assert records.read(gateway.store, Query()) == []
    assert len(gateway.records.query(Query())) == 1 and gateway.records.written == written + 1
    for _ in range(records.BATCH):
        gateway.engine.dial(RU, "*100#")
    assert gateway.records.written == written + 1 + records.BATCH  # a full batch goes at once


async def test_on_the_loop_records_are_written_soon_after(
    gw: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    flushed = asyncio.Event()
    flush = gw.records.flush

    def flush_and_tell() -> None:
        flush()
        flushed.set()

    monkeypatch.setattr(gw.records, "flush", flush_and_tell)
    await gw.dial(RU, "*100#")
    await gw.dial(EN, "*100#")
    assert gw.records.written == 0
    await flushed.wait()  # FLUSH_DELAY later, on the loop's own timer
    assert gw.records.written == 2  # one write for both
    assert len(records.read(gw.store, Query())) == 2


def _record(i: int, ended: float) -> DialogRecord:
    return DialogRecord(f"s{i}", RU, "100", "balance", "api", ended - 1, ended, 1, "completed")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    keep=st.integers(0, 12),
    batches=st.lists(st.integers(1, 9), max_size=6),
)
def test_the_store_keeps_the_newest_records_and_no_more(keep: int, batches: list[int]) -> None:
    store = Store(":memory:")
    clock = SimulatedClock()
    kept = Records(store, clock, keep, retention=86400.0)
    n = 0
    for size in batches:
        for _ in range(size):
            kept.add(_record(n, clock.now()))
            n += 1
        kept.flush()
    rows = records.read(store, Query(limit=records.MAX_LIMIT))
    assert [r.record.session for r in rows] == [f"s{i}" for i in reversed(range(n))][:keep]
    store.close()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sizes=st.lists(st.integers(1, records.BATCH), min_size=1, max_size=3),
    detail=st.text(max_size=30),
)
def test_a_batch_of_any_size_is_written_whole_and_in_order(sizes: list[int], detail: str) -> None:
    # SQLite batches go as multi-row INSERTs of power-of-two sizes (records._insert).
    store = Store(":memory:")
    clock = SimulatedClock()
    kept = Records(store, clock, 10_000, retention=86400.0)
    written: list[DialogRecord] = []
    for size in sizes:
        for _ in range(size):
            written.append(_record(len(written), clock.now())._replace(detail=detail))
            kept.add(written[-1])
        kept.flush()
    rows = records.read(store, Query(limit=records.MAX_LIMIT))
    assert [r.record for r in reversed(rows)] == written
    assert [r.id for r in reversed(rows)] == list(range(1, len(written) + 1))
    store.close()


def test_records_older_than_the_retention_are_pruned() -> None:
    store = Store(":memory:")
    clock = SimulatedClock()
    kept = Records(store, clock, 100, retention=3600.0)
    kept.add(_record(1, clock.now()))
    kept.flush()
    clock.advance(1800)
    kept.add(_record(2, clock.now()))
    clock.advance(1801)  # record 1 is now older than an hour, record 2 is not
    kept.add(_record(3, clock.now()))
    assert [r.record.session for r in kept.query(Query())] == ["s3", "s2"]
    store.close()


def test_expired_records_go_a_bounded_stretch_per_batch() -> None:
    store = Store(":memory:")
    clock = SimulatedClock()
    kept = Records(store, clock, 100_000, retention=60.0)
    old = 3 * records.PRUNE_SPAN
    for i in range(old):
        kept.add(_record(i, clock.now()))
    kept.flush()
    clock.advance(61)
    left = []
    for i in range(4):
        kept.add(_record(old + i, clock.now()))
        kept.flush()
        left.append(len(records.read(store, Query(limit=records.MAX_LIMIT))))
    # Each write deletes at most PRUNE_SPAN expired ids: the work per batch stays bounded.
    assert left == [2 * records.PRUNE_SPAN + 1, records.PRUNE_SPAN + 2, 3, 4]
    store.close()


def test_max_zero_keeps_none(gateway: Gateway) -> None:
    gw = world(records={"max": 0})
    gw.engine.dial(RU, "*100#")
    assert gw.records.query(Query()) == []
    assert 'ussd_dialog_records_total{cause="completed"} 1.0' in gw.metrics.render().decode()
    gw.close()


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ({"max": -1}, "records.max"),
        ({"max": 10_000_001}, "records.max"),
        ({"max": "lots"}, "records.max"),
        ({"retention": "0s"}, "records.retention"),
        ({"retention": "forever"}, "records.retention"),
        ({"keep": 5}, "records.keep"),
    ],
)
def test_bad_records_config_names_its_key(section: dict[str, Any], key: str) -> None:
    from ussd.config import ConfigError

    with pytest.raises(ConfigError) as info:
        make_config(records=section)
    assert info.value.key == key


# -- the query language and the CSV ----------------------------------------------------------------


NOW = 1_780_000_000.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1780000000", 1_780_000_000.0),
        ("1780000000.5", 1_780_000_000.5),
        ("10m", NOW - 600),
        ("1d12h", NOW - 129_600),
        ("2026-05-28T20:26:40Z", 1_780_000_000.0),
        ("2026-05-28T23:26:40+03:00", 1_780_000_000.0),
        ("2026-05-28T20:26:40", 1_780_000_000.0),  # no offset: UTC
        ("2026-05-28", 1_779_926_400.0),
    ],
)
def test_times(text: str, expected: float) -> None:
    assert parse_time(text, NOW) == expected


@pytest.mark.parametrize("text", ["", "yesterday", "10x", "-5m", "2026-02-30", "1e9", "9" * 13])
def test_bad_times(text: str) -> None:
    with pytest.raises(ValueError, match="not a time"):
        parse_time(text, NOW)


def test_parse_query_reads_every_filter() -> None:
    params = {
        "msisdn": "89161234567",
        "code": "*111#",
        "cause": "idle_timeout, app_timeout",
        "via": "smpp",
        "since": "1h",
        "until": "1780000000",
        "after": "5",
        "before": "50",
        "limit": "20",
    }
    assert parse_query(params, NOW, lambda n: "7" + n[1:]) == Query(
        msisdn=RU,
        code="111",
        cause=("idle_timeout", "app_timeout"),
        via=("smpp",),
        since=NOW - 3600,
        until=NOW,
        after=5,
        before=50,
        limit=20,
    )


def test_csv_cells_never_start_a_formula() -> None:
    record = DialogRecord("s", RU, "100", "app:x", "api", NOW, NOW + 1, 1, "app_error", "=X()")
    text = records.to_csv([Stored(7, record).to_json()])
    header, line, _ = text.split("\r\n")
    assert header.split(",") == list(records.CSV_COLUMNS)
    assert line.endswith(",app_error,'=X()")


def test_pushes_are_via_push(gateway: Gateway) -> None:
    gateway.engine.push(RU, "Your code is 1234", False, "smpp:bank", "900")
    gateway.engine.release(RU)
    record = newest(gateway)
    assert (record.via, record.route, record.code, record.steps, record.cause) == (
        "push",
        "smpp:bank",
        "900",
        0,  # the subscriber asked for nothing
        "user_release",
    )


# -- outside applications over real sockets -------------------------------------------------------


async def test_an_http_app_over_a_real_socket() -> None:
    from tests.apps.appserver import con, end, gateway_for, running

    answers = iter([con("Menu\n1. Buy"), end("Thank you")])
    async with (
        running(lambda seen: next(answers)) as app,
        gateway_for(app.url, "africastalking") as gw,
    ):
        assert not (await gw.dial(RU, "*384*7#", via="web")).end  # a direct-dial string
        assert (await gw.reply(RU, "1")).text == "Thank you"
        record = newest(gw)
    assert (record.code, record.route, record.via, record.steps, record.cause) == (
        "384",
        "app:shop",
        "web",
        2,
        "app_release",
    )


async def test_an_http_app_nobody_listens_for() -> None:
    import socket

    from tests.apps.appserver import gateway_for

    with socket.socket() as sock:  # a port that was free a moment ago: nobody listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with gateway_for(f"http://127.0.0.1:{port}/ussd") as gw:
        await gw.dial(RU, "*384#")
        record = newest(gw)
    assert (record.route, record.cause) == ("app:shop", "app_unavailable")
    assert "connect" in record.detail  # why, as the app client says it


ACTIONS = st.lists(
    st.one_of(
        st.tuples(st.just("dial"), st.sampled_from([RU, EN]), st.sampled_from(list(ROUTES))),
        st.tuples(st.just("dial"), st.sampled_from([RU, EN]), st.sampled_from(["*999#", "*76#"])),
        st.tuples(st.just("reply"), st.sampled_from([RU, EN]), st.sampled_from(["1", "98", "0"])),
        st.tuples(st.just("release"), st.sampled_from([RU, EN]), st.just("")),
        st.tuples(st.just("wait"), st.just(""), st.sampled_from(["10", "31", "200"])),
    ),
    max_size=25,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(actions=ACTIONS)
def test_every_dialog_that_ends_leaves_exactly_one_record(
    actions: list[tuple[str, str, str]],
) -> None:
    from ussd.engine import EngineError

    gw = world()
    ended: list[str] = []
    gw.engine.subscribe(
        lambda event: ended.append(event.session) if type(event).__name__ == "DialogEnded" else None
    )
    for action, msisdn, text in actions:
        try:
            if action == "dial":
                gw.engine.dial(msisdn, text)
            elif action == "reply":
                gw.engine.reply(msisdn, text)
            elif action == "release":
                gw.engine.release(msisdn)
            else:
                gw.advance(float(text))
        except EngineError:
            pass  # no dialog to reply to: refused, and no record either
    open_now = {d.session for d in gw.engine.dialogs.values()}
    rows = gw.records.query(Query(limit=records.MAX_LIMIT))
    assert sorted(r.record.session for r in rows) == sorted(ended)  # one each, none extra
    assert not open_now & {r.record.session for r in rows}  # an open dialog has none yet
    assert all(r.record.cause in set(Cause) and r.record.started <= r.record.ended for r in rows)
    assert all(r.record.steps >= 1 for r in rows)
    gw.close()


@settings(max_examples=300, deadline=None)
@given(
    params=st.dictionaries(
        st.sampled_from([*records.PARAMETERS, "x", ""]),
        st.one_of(
            st.text(max_size=40),
            st.sampled_from(["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "1e400"]),
            st.from_regex(r"[0-9]{1,30}(\.[0-9]{0,12})?[smhd]?", fullmatch=True),
        ),
        max_size=5,
    )
)
def test_any_parameters_give_a_query_or_a_clear_refusal(params: dict[str, str]) -> None:
    def normalise(number: str) -> str:
        if not number.isdigit():
            raise ValueError("not a number")  # as ussd.msisdn.InvalidMsisdn is
        return number

    try:
        query = parse_query(params, NOW, normalise)
    except records.BadQuery as exc:
        refusal = str(exc)
    else:
        assert 1 <= query.limit <= records.MAX_LIMIT
        assert set(params) <= set(records.PARAMETERS)
        return
    assert refusal  # nothing else is raised, and it says what is wrong


def test_a_batch_for_a_closed_store_is_dropped_quietly(gateway: Gateway) -> None:
    from structlog.testing import capture_logs

    gateway.engine.dial(RU, "*100#")
    gateway.store.close()  # torn down before the batch was written
    with capture_logs() as logs:
        gateway.records.flush()
    assert [(e["event"], e["log_level"], e["records"]) for e in logs] == [
        ("records_dropped", "info", 1)
    ]
