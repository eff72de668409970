"""`ussd-sim load`: counts, errors by kind, JSON, the null SMSC, CLI errors.

Runs are short (1–1.5 s) against an in-process gateway and its SMPP server on 127.0.0.1:0;
no test asserts a rate or a latency (docs/performance.md: figures come from `make bench`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.peer import bare_smsc, null_smsc
from sim import load
from sim.scenario import load as load_scenarios
from tests.conftest import make_config
from tests.helpers import ScaledClock
from tests.smpp.helpers import FakeSmsc
from ussd import cli
from ussd.clock import SimulatedClock
from ussd.runtime import Gateway
from ussd.smpp.constants import Tag, UssdServiceOp
from ussd.smpp.pdu import (
    DecodeError,
    DeliverSm,
    ItsSessionInfo,
    SubmitSm,
    decode_pdu,
    encode_pdu,
)
from ussd.smpp.server import SmppServer
from ussd.smpp.ussd import MAX_ASSIGNED_SESSION, Action, HarnessDialog, UssdRequest, screen_pdu

BALANCE = """
name: Balance
subscribers: [{msisdn: "79161234567"}]
steps:
  - dial: "*100#"
    expect: {end: true, text: "/баланс/i"}
"""
MENU = """
name: Number management status through the menu
subscribers: [{msisdn: "79161234567"}]
steps:
  - dial: "*111#"
    expect: {continue: true}
  - reply: "3"
    expect: {continue: true}
  - reply: "3"
    expect: {end: true}
"""
WRONG = """
name: Balance is not a menu
subscribers: [{msisdn: "79161234567"}]
steps:
  - dial: "*100#"
    expect: {continue: true}
"""
LOCAL = """
name: IMEI never reaches the network
subscribers: [{msisdn: "79161234567"}]
steps:
  - dial: "*#06#"
"""


@pytest.fixture
async def gateway_port() -> AsyncIterator[int]:
    gw = Gateway.create(make_config(), clock=SimulatedClock(), database=":memory:")
    server = SmppServer(gw)
    _, port = await server.start("127.0.0.1", 0)
    yield port
    await server.stop()
    gw.engine.shutdown()
    gw.store.close()


def scenario_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "journey.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def options(port: int, journey: tuple[load.JourneyStep, ...], **kw: object) -> load.LoadOptions:
    values: dict[str, object] = {
        "target": load.SmppAddress("127.0.0.1", port, "harness", "secret"),
        "journey": journey,
        "duration": 1.0,
        "binds": 2,
        "subscribers": 50,
        "timeout": 5.0,
    }
    values.update(kw)
    return load.LoadOptions(**values)  # type: ignore[arg-type]


def journey(tmp_path: Path, text: str) -> tuple[load.JourneyStep, ...]:
    return load.journey_from_scenario(load_scenarios(scenario_file(tmp_path, text))[0])


def cli_args(port: int, *extra: str, password: str = "secret") -> list[str]:
    return ["load", "--target", f"smpp://harness:{password}@127.0.0.1:{port}", *extra]


# -- journeys from scenario files -------------------------------------------------------------


def test_journey_takes_dial_reply_release_and_expectations(tmp_path: Path) -> None:
    steps = journey(tmp_path, MENU)
    assert [(s.kind, s.text, s.label, s.expect_end) for s in steps] == [
        ("dial", "*111#", "dial", False),
        ("reply", "3", "reply #1", False),
        ("reply", "3", "reply #2", True),
    ]
    assert all(s.waits_for_screen for s in steps)


# -- against the gateway ------------------------------------------------------------------------


async def test_balance_closed_model_counts_every_step(gateway_port: int, tmp_path: Path) -> None:
    report = await load.run_load(options(gateway_port, journey(tmp_path, BALANCE), concurrency=4))
    assert report.errors == {}
    assert report.steps > 0
    assert report.journeys == report.steps
    assert report.latency["dial"]["count"] == report.steps
    assert report.latency["dial"]["p50"] <= report.latency["dial"]["max"]


async def test_menu_open_model_counts_match_the_schedule(gateway_port: int, tmp_path: Path) -> None:
    # 50 steps/s of a 3-step journey for 1.5 s: arrivals at 0, 60, …, 1440 ms: 25 journeys.
    # The clock runs 10 times faster than real time: the same schedule in 0.15 s.
    report = await load.run_load(
        options(gateway_port, journey(tmp_path, MENU), rate=50.0, duration=1.5),
        clock=ScaledClock(10.0),
    )
    # The run's length is read from the injected clock (real time would say about 0.15 s).
    assert report.elapsed > 1.0
    assert report.errors == {}
    assert report.journeys == 25
    assert report.offered == 75
    assert report.steps == 75
    assert [int(report.latency[k]["count"]) for k in ("dial", "reply #1", "reply #2")] == [
        25,
        25,
        25,
    ]
    assert report.latency["all steps"]["count"] == 75
    assert report.send_lag["count"] == 25


async def test_failed_expectation_is_an_unexpected_screen(
    gateway_port: int, tmp_path: Path
) -> None:
    report = await load.run_load(options(gateway_port, journey(tmp_path, WRONG), concurrency=2))
    assert report.steps == 0
    assert report.journeys == 0
    assert set(report.errors) == {"unexpected_screen"}
    assert report.errors["unexpected_screen"] > 0


async def test_error_status_is_counted_by_name(gateway_port: int, tmp_path: Path) -> None:
    # docs/services.md: a handset-local code never reaches the network; the server refuses the
    # submit.
    report = await load.run_load(options(gateway_port, journey(tmp_path, LOCAL), concurrency=2))
    assert report.steps == 0
    assert set(report.errors) == {"status:ESME_RINVDSTADR"}


async def test_submit_modes_against_the_gateway(gateway_port: int) -> None:
    for mode in ("submit", "submit-ussd"):
        report = await load.run_load(
            options(gateway_port, load.submit_journey(mode), mode=mode, concurrency=4)
        )
        assert report.errors == {}, mode
        assert report.steps == report.journeys > 0


async def test_wrong_password_is_a_clear_error() -> None:
    gw = Gateway.create(make_config(), clock=SimulatedClock(), database=":memory:")
    server = SmppServer(gw)
    _, port = await server.start("127.0.0.1", 0)
    try:
        bad = load.SmppAddress("127.0.0.1", port, "harness", "wrong")
        with pytest.raises(load.LoadError, match="ESME_RINVPASWD"):
            await load.run_load(
                load.LoadOptions(
                    target=bad, journey=load.submit_journey("submit"), mode="submit", rate=10.0
                )
            )
    finally:
        await server.stop()
        gw.store.close()


# -- the CLI ------------------------------------------------------------------------------------


async def test_cli_json_report_parses(
    gateway_port: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = scenario_file(tmp_path, MENU)
    args = cli_args(
        gateway_port,
        "--scenario",
        str(path),
        "--concurrency",
        "4",
        "--duration",
        "1s",
        "--binds",
        "2",
        "--subscribers",
        "20",
        "--json",
    )
    code = await asyncio.to_thread(cli.main, args)
    out = capsys.readouterr().out
    assert code == 0
    data = json.loads(out)
    assert data["error_count"] == 0
    assert data["model"] == "closed"
    assert data["steps"]["count"] == 3 * data["journeys"]["count"] > 0
    assert set(data["latency_ms"]) == {"dial", "reply #1", "reply #2", "all steps"}
    assert set(data["latency_ms"]["dial"]) == {"count", "p50", "p90", "p99", "max"}


async def test_cli_text_report(
    gateway_port: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = scenario_file(tmp_path, BALANCE)
    args = cli_args(gateway_port, "--scenario", str(path), "--rate", "20", "--duration", "1s")
    code = await asyncio.to_thread(cli.main, args)
    out = capsys.readouterr().out
    assert code == 0
    assert "steps/s" in out and "journeys/s" in out and "errors: none" in out
    assert "p99" in out


async def test_cli_wrong_password_exits_1(
    gateway_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    args = cli_args(gateway_port, "--mode", "submit", "--rate", "10", password="nope")
    code = await asyncio.to_thread(cli.main, args)
    assert code == 1
    assert "bind_transceiver refused: ESME_RINVPASWD" in capsys.readouterr().err


async def test_cli_unexpected_screens_exit_1(
    gateway_port: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = scenario_file(tmp_path, WRONG)
    args = cli_args(
        gateway_port, "--scenario", str(path), "--concurrency", "2", "--duration", "1s", "--json"
    )
    code = await asyncio.to_thread(cli.main, args)
    assert code == 1
    data = json.loads(capsys.readouterr().out)
    assert set(data["errors"]) == {"unexpected_screen"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "http://127.0.0.1:1", "--rate", "1"], "smpp://system_id:password@host:port"),
        (["--target", "smpp://127.0.0.1:1", "--rate", "1"], "smpp://system_id:password@host:port"),
        (["--target", "smpp://a:b@127.0.0.1:99999", "--rate", "1"], "bad --target"),
        (["--target", "smpp://a:b@h:1", "--mode", "ussd", "--rate", "1"], "needs --scenario"),
        (["--target", "smpp://a:b@h:1", "--mode", "submit", "--rate", "0"], "rate must be"),
        (
            ["--target", "smpp://a:b@h:1", "--mode", "submit", "--concurrency", "9",
             "--subscribers", "3"],
            "at least as many subscribers",
        ),
        (["--target", "smpp://a:b@h:1", "--mode", "submit", "--rate", "1", "--duration", "x"],
         "bad duration"),
    ],
)  # fmt: skip
def test_cli_argument_errors_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["load", *args]) == 2
    assert message in capsys.readouterr().err


def test_cli_rate_and_concurrency_together_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["load", "--target", "smpp://a:b@h:1", "--rate", "1", "--concurrency", "1"])
    assert exc.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_cli_missing_scenario_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["load", "--target", "smpp://a:b@h:1", "--rate", "1", "--scenario", "nope.yaml"]
    assert cli.main(args) == 2
    assert "cannot read" in capsys.readouterr().err


# -- the bench peers (bench/peer/) ------------------------------------------------------------


async def test_null_smsc_answers_ussd_and_submit(tmp_path: Path) -> None:
    server = await null_smsc.start()
    port = server.sockets[0].getsockname()[1]
    try:
        ussd = await load.run_load(options(port, journey(tmp_path, BALANCE), concurrency=8))
        assert ussd.errors == {}
        assert ussd.steps == ussd.journeys > 0
        submit = await load.run_load(
            options(port, load.submit_journey("submit"), mode="submit", rate=100.0)
        )
        assert submit.errors == {}
        assert submit.steps == submit.offered == 100
    finally:
        server.close()
        await server.wait_closed()


async def test_bare_smsc_on_our_smpp_layer_answers_submit() -> None:
    server = await bare_smsc.start()
    port = server.sockets[0].getsockname()[1]
    try:
        report = await load.run_load(
            options(port, load.submit_journey("submit"), mode="submit", concurrency=4)
        )
        assert report.errors == {}
        assert report.steps == report.journeys > 0
    finally:
        server.close()
        await server.wait_closed()


# -- the fast lane's codec functions agree with the full codec -------------------------------

_TAGS = st.sampled_from([Tag.USSD_SERVICE_OP, Tag.ITS_SESSION_INFO, Tag.USER_MESSAGE_REFERENCE])
_ADDR = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20)


@st.composite
def _tlv(draw: st.DrawFn) -> tuple[int, bytes]:
    tag = draw(st.one_of(_TAGS, st.integers(0x1400, 0x14FF)))
    size = {Tag.USSD_SERVICE_OP: 1, Tag.ITS_SESSION_INFO: 2, Tag.USER_MESSAGE_REFERENCE: 2}
    return tag, draw(st.binary(min_size=size.get(tag, 0), max_size=size.get(tag, 6)))


@settings(max_examples=300, deadline=None)
@given(
    seq=st.integers(1, 0x7FFFFFFF),
    service_type=st.sampled_from(["", "USSD", "CMT"]),
    source=_ADDR,
    dest=_ADDR,
    esm_class=st.sampled_from([0, 0x04, 0x40]),
    coding=st.sampled_from([0, 8, 15, 72]),
    message=st.binary(max_size=254),
    tlvs=st.lists(_tlv(), max_size=5),
)
def test_peek_deliver_sm_agrees_with_decode_pdu(
    seq: int,
    service_type: str,
    source: str,
    dest: str,
    esm_class: int,
    coding: int,
    message: bytes,
    tlvs: list[tuple[int, bytes]],
) -> None:
    data = encode_pdu(
        DeliverSm(
            sequence_number=seq,
            service_type=service_type,
            source_addr=source,
            destination_addr=dest,
            esm_class=esm_class,
            data_coding=coding,
            short_message=message,
            tlvs=tuple(tlvs),
        )
    )
    _agree(data)


@settings(max_examples=200, deadline=None)
@given(
    text=st.text(max_size=200),
    end=st.booleans(),
    session=st.integers(0, 255),
    number=st.integers(0, 127),
    umr=st.none() | st.integers(0, 0xFFFF),
    code=st.sampled_from(["100", "111", "*123456789012345678901#", "да"]),
)
def test_peek_deliver_sm_reads_every_gateway_screen(
    text: str, end: bool, session: int, number: int, umr: int | None, code: str
) -> None:
    """The screens the gateway writes (ussd/smpp/ussd.py screen_pdu), long UCS-2 ones too."""
    info = ItsSessionInfo(session, number, end)
    _agree(encode_pdu(screen_pdu(7, "79161234567", code, text, end, info, umr)))


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_peek_deliver_sm_never_disagrees_on_damaged_pdus(data: st.DataObject) -> None:
    """Bytes flipped inside a screen: whatever decode_pdu still accepts, peek reads the same
    (or hands it to the full decoder by raising)."""
    info = ItsSessionInfo(5, 1, False)
    raw = bytearray(encode_pdu(screen_pdu(3, "79161234567", "100", "Balance", False, info, None)))
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(16, len(raw) - 1))
        raw[at] = data.draw(st.integers(0, 255))
    try:
        pdu = decode_pdu(bytes(raw))
    except DecodeError:
        return
    try:
        got = load.peek_deliver_sm(raw, 0, len(raw))
    except (ValueError, IndexError):
        return
    assert isinstance(pdu, DeliverSm)
    assert got == _expected(pdu)


def _expected(pdu: DeliverSm) -> tuple[bytes, int, int]:
    op = pdu.ussd_service_op
    info = pdu.its_session_info
    return (
        pdu.destination_addr.encode("latin-1"),
        -1 if op is None else op,
        -1 if info is None else info.session_number,
    )


def _agree(data: bytes) -> None:
    pdu = decode_pdu(data)
    assert isinstance(pdu, DeliverSm)
    padded = b"junk" + data + b"more"  # peek reads a slice of a larger buffer
    assert load.peek_deliver_sm(bytearray(padded), 4, 4 + len(data)) == _expected(pdu)


@settings(max_examples=200, deadline=None)
@given(
    mode=st.sampled_from(["ussd", "submit"]),
    step=st.integers(0, 2),
    seq=st.integers(1, 0x7FFFFFFF),
    session=st.integers(1, MAX_ASSIGNED_SESSION),
)
def test_patch_submit_sm_equals_encode_pdu(
    mode: load.Mode, step: int, seq: int, session: int
) -> None:
    steps = (
        load.submit_journey("submit")
        if mode == "submit"
        else (
            load.JourneyStep("dial", "*111#", "dial", True),
            load.JourneyStep("reply", "3", "reply #1", True),
            load.JourneyStep("release", "", "release", False),
        )
    )
    step = min(step, len(steps) - 1)
    sub = load._Sub("79900000001", "79900000002")
    template = load._templates(sub, steps, mode)[step]
    release = steps[step].kind == "release"
    octet2 = -1 if mode == "submit" else load.ussd_octet2(step, release)
    patched = load.patch_submit_sm(template, seq, session, octet2)
    pdu = decode_pdu(patched)
    assert isinstance(pdu, SubmitSm) and pdu.sequence_number == seq
    if mode != "submit":
        assert pdu.its_session_info == ItsSessionInfo(session, (2 * step) % 64, release)
        tlvs = tuple(
            (t, ItsSessionInfo(session, (2 * step) % 64, release).to_bytes())
            if t == Tag.ITS_SESSION_INFO
            else (t, v)
            for t, v in pdu.tlvs
        )
        pdu = replace(pdu, tlvs=tlvs)
    assert encode_pdu(pdu) == patched


@pytest.mark.parametrize("steps", [1, 3, 40])
def test_ussd_octet2_numbers_like_the_gateway(steps: int) -> None:
    """One numbering of its_session_info: the generator's matches HarnessDialog's."""
    dialog = HarnessDialog("79900000001", "s", None, 9, pdus=0)
    screen = UssdRequest(Action.REPLY, UssdServiceOp.USSR_CONFIRM, None, None)
    for step in range(steps):
        end = step == steps - 1
        assert load.ussd_octet2(step, end) == dialog.next_info(end).to_bytes()[1]
        dialog.harness_pdu(screen)  # the screen that answers it


async def test_unanswered_steps_time_out_and_leave_nothing_behind() -> None:
    """An SMSC that never answers: every step is a timeout, and none stays in flight."""
    smsc = await FakeSmsc().start()
    smsc.answering = False
    seen: list[load._Bind] = []
    real = load._connect

    async def spy(runner: load._Runner, index: int) -> load._Bind:
        bind = await real(runner, index)
        seen.append(bind)
        return bind

    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(load, "_connect", spy)
            report = await load.run_load(
                options(
                    smsc.address[1],
                    load.submit_journey("submit-ussd"),
                    mode="submit-ussd",
                    concurrency=4,
                    duration=0.3,
                    timeout=0.05,
                )
            )
    finally:
        await smsc.stop()
    assert report.errors.get("timeout", 0) > 4  # users kept sending after timeouts
    assert set(report.errors) == {"timeout"}
    assert seen and all(not bind.in_flight for bind in seen)


async def test_open_model_offers_every_slot_even_when_the_loop_wakes_late() -> None:
    """A generator that wakes after the end still sends what was due before it (no slots
    silently dropped: the open model's offered load is the schedule's)."""
    ticks = iter([0.0])

    class Late(load.RealTime):
        def now(self) -> float:
            return next(ticks, 5.0)  # first 0.0, then far past the 1 s window

    runner = load._Runner(
        options(2775, load.submit_journey("submit"), mode="submit", rate=10.0), None, Late()
    )
    started: list[float] = []

    def start_journey(sched: float) -> bool:
        started.append(sched)
        return True

    runner.start_journey = start_journey  # type: ignore[method-assign]
    runner.live = [object()]  # type: ignore[list-item]
    runner.measure_from, runner.measure_to = 0.0, 1.0
    await runner.open_model(0.0, 1.0)
    assert started == pytest.approx([i / 10 for i in range(10)])
    assert runner.offered == 10
