"""Scenarios against a running gateway (docs/scenarios.md --target): real sockets on 127.0.0.1:0.

HTTP runs against the in-process aiohttp app; SMPP against `ussd.smpp.server.SmppServer`
(skipped, with that reason, only in a tree where that module is missing).
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from sim import runner
from sim import scenario as sc
from sim.targets import HttpTarget, SmppTarget, make_target
from tests.conftest import make_config
from tests.scenarios.conftest import SHIPPED
from ussd.clock import SimulatedClock
from ussd.runtime import Gateway

TOKEN = "change-me"  # the shipped admin token (loopback only, docs/config.md)

# Shipped scenarios that cannot run over HTTP alone, and why (docs/scenarios.md).
HTTP_CANNOT = {
    "MO SMS with a delivery receipt": "receipts travel over SMPP only",
    "MO SMS are charged once the package is used up": "only a submit_sm is an MO SMS",
}

SHIPPED_SCENARIOS = [
    (path.name, s.name) for path in sorted(SHIPPED.glob("*.yaml")) for s in sc.load(path, None)
]


@pytest.fixture
async def world() -> AsyncIterator[Any]:
    """A fresh gateway with no seeded numbers, behind the HTTP API, on a simulated clock."""
    from ussd.http import start_http

    gw = Gateway.create(
        make_config(subscribers={"auto_provision": True, "seed": []}),
        clock=SimulatedClock(),
        database=":memory:",
    )
    await gw.start()
    server = await start_http(gw, "127.0.0.1", 0)
    yield gw, server.url
    await server.stop()
    await gw.stop()


@pytest.mark.parametrize(("file", "name"), SHIPPED_SCENARIOS, ids=[n for _, n in SHIPPED_SCENARIOS])
async def test_shipped_scenarios_over_http(
    file: str, name: str, world: Any, base: dict[str, Any]
) -> None:
    gw, url = world
    (scenario,) = [s for s in sc.load(SHIPPED / file, base) if s.name == name]
    # The live gateway's timers are its own: give it the scenario's (docs/scenarios.md overrides).
    gw.engine._reply_timeout = scenario.config.ussd.reply_timeout
    gw.engine._dialog_timeout = scenario.config.ussd.dialog_timeout
    gw.accounts.captchas.mode = scenario.config.website.captcha  # docs/account.md "Website"
    target = HttpTarget(url, TOKEN, scenario.config.ussd.reply_timeout)
    result = await runner.run_async(scenario, target)
    if name in HTTP_CANNOT:
        assert not result.passed and result.failure is not None
        assert "needs_smpp" in runner.format_failure(result)
    else:
        assert result.passed, runner.format_failure(result)


async def test_http_target_creates_subscribers_and_skips_existing(
    world: Any, base: dict[str, Any]
) -> None:
    gw, url = world
    text = (
        'name: T\nsubscribers: [{msisdn: "79160000001", balance: 12}]\nsteps: [{dial: "*100#"}]\n'
    )
    (scenario,) = sc.loads(text, "t.yaml", base)
    for _ in range(2):  # the second setup meets 409 and carries on
        target = HttpTarget(url, TOKEN)
        await target.setup(scenario)
        await target.close()
    sub = gw.store.subscriber("79160000001")
    assert sub is not None and sub.balance == 12


async def test_unreachable_http_target_fails_the_scenario_not_the_run(base: dict[str, Any]) -> None:
    text = 'name: T\nsubscribers: [{msisdn: "79160000001"}]\nsteps: [{dial: "*100#"}]\n'
    (scenario,) = sc.loads(text, "t.yaml", base)
    result = await runner.run_async(scenario, HttpTarget("http://127.0.0.1:9", TOKEN))
    assert not result.passed and result.failure is not None
    assert "ConnectionError" in result.failure.message or "unreachable" in runner.format_failure(
        result
    )


def test_make_target_parses_urls() -> None:
    t = make_target(("smpp://harness:secret@127.0.0.1:2775",), TOKEN)
    assert isinstance(t, SmppTarget)
    assert (t.host, t.port, t.system_id, t.password) == ("127.0.0.1", 2775, "harness", "secret")
    assert isinstance(make_target(("http://127.0.0.1:8080",), TOKEN), HttpTarget)
    both = make_target(("http://127.0.0.1:8080", "smpp://harness:secret@127.0.0.1:2775"), TOKEN)
    assert both.name == "smpp+http"
    with pytest.raises(ValueError, match="at most one"):
        make_target(("http://a:1", "http://b:2"), TOKEN)


SMPP_READY = importlib.util.find_spec("ussd.smpp.server") is not None
smpp_only = pytest.mark.skipif(not SMPP_READY, reason="needs ussd/smpp/server.py (SmppServer)")

# Every shipped file, SMPP for dial/reply/SMS and HTTP for accounts and the clock.
SMPP_FILES = tuple(p.name for p in sorted(SHIPPED.glob("*.yaml")))


@pytest.fixture
async def smpp_world() -> AsyncIterator[Any]:
    """A fresh gateway behind SMPP and HTTP on 127.0.0.1:0."""
    from ussd.http import start_http
    from ussd.smpp.server import SmppServer

    gw = Gateway.create(
        make_config(subscribers={"auto_provision": True, "seed": []}),
        clock=SimulatedClock(),
        database=":memory:",
    )
    await gw.start()
    http = await start_http(gw, "127.0.0.1", 0)
    smpp = SmppServer(gw)
    _, port = await smpp.start("127.0.0.1", 0)
    yield gw, http.url, f"smpp://harness:secret@127.0.0.1:{port}"
    await smpp.stop()
    await http.stop()
    await gw.stop()


@smpp_only
@pytest.mark.parametrize(
    ("file", "name"),
    [fn for fn in SHIPPED_SCENARIOS if fn[0] in SMPP_FILES],
    ids=[n for f, n in SHIPPED_SCENARIOS if f in SMPP_FILES],
)
async def test_shipped_scenarios_over_smpp_and_http(
    file: str, name: str, smpp_world: Any, base: dict[str, Any]
) -> None:
    gw, http_url, smpp_url = smpp_world
    (scenario,) = [s for s in sc.load(SHIPPED / file, base) if s.name == name]
    gw.engine._reply_timeout = scenario.config.ussd.reply_timeout
    gw.engine._dialog_timeout = scenario.config.ussd.dialog_timeout
    gw.accounts.captchas.mode = scenario.config.website.captcha  # docs/account.md "Website"
    target = make_target((smpp_url, http_url), TOKEN, scenario.config.ussd.reply_timeout)
    result = await runner.run_async(scenario, target)
    # SMPP carries no page numbers: scenarios that check them report it plainly.
    if result.failure is not None and any(
        m.actual == "unknown on this target" for m in result.failure.mismatches
    ):
        return
    assert result.passed, runner.format_failure(result)


def test_cli_runs_against_http(tmp_path: Path) -> None:
    """`ussd-sim run --target http://…` end to end, with a server in a thread of its own."""
    import asyncio
    import threading

    from ussd import cli
    from ussd.http import start_http

    ready = threading.Event()
    box: dict[str, Any] = {}

    def serve() -> None:
        async def main() -> None:
            gw = Gateway.create(
                make_config(subscribers={"auto_provision": True, "seed": []}),
                clock=SimulatedClock(),
                database=":memory:",
            )
            await gw.start()
            server = await start_http(gw, "127.0.0.1", 0)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            box["url"], box["stop"] = server.url, lambda: loop.call_soon_threadsafe(stop.set)
            ready.set()
            await stop.wait()
            await server.stop()
            await gw.stop()

        asyncio.run(main())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        # One scenario per file here: a live world keeps its state between scenarios.
        code = cli.main(["run", str(SHIPPED / "lockout.yaml"), "--target", box["url"]])
    finally:
        box["stop"]()
        thread.join(10)
    assert code == 0


async def test_smpp_target_keeps_sending_after_response_timeouts(base: dict[str, Any]) -> None:
    """A submit_sm without response expires and leaves the window: the target never stalls.

    The SMSC withholds every response while a full window of dials goes out; each dial fails
    with no_response after the response timeout, and the next dial, answered, gets its screen.
    """
    from tests.smpp.helpers import FakeSmsc

    smsc = await FakeSmsc().start()
    host, port = smsc.address
    target = SmppTarget(host, port, "harness", "secret", response_timeout=0.2)
    text = 'name: T\nsubscribers: [{msisdn: "79900000000"}]\nsteps: [{dial: "*100#"}]\n'
    (scenario,) = sc.loads(text, "t.yaml", base)
    try:
        await target.setup(scenario)
        window = target.client.conn.window
        smsc.answering = False
        # One more than the window: the last waits for a slot, then goes out and times out too.
        results = await asyncio.gather(
            *(target.dial(f"7990{i:07d}", "*100#") for i in range(window + 1))
        )
        assert {(r.status, r.error) for r in results} == {(504, "no_response")}
        assert smsc.submits == window + 1
        assert target.client.conn.window_available == window
        smsc.answering = True
        result = await target.dial("79900000000", "*100#")
        assert result.ok, result.message
        assert result.screen is not None and result.screen.end and result.screen.text == "OK"
    finally:
        await target.close()
        await smsc.stop()


@pytest.mark.parametrize("order", ["in order", "reversed", "interleaved"])
async def test_smpp_target_joins_concatenated_sms(order: str) -> None:
    """Long SMS arrive in parts (TS 23.040 §9.2.3.24.1), read with ussd/smpp/concat.py."""
    from sim.targets import _SmppClient
    from ussd.smpp.ussd import sms_pdus

    client = _SmppClient()
    long_ru = "Номер 79161234567 подключён к лицевому счёту. " * 4
    long_en = "Your number 79161112233 is now linked to your account. " * 5
    a = sms_pdus("79161234567", "Operator", True, long_ru, 7)
    b = sms_pdus("79161234567", "79161112233", False, long_en, 8)
    assert len(a) > 1 and len(b) > 1
    pdus = {
        "in order": a + b,
        "reversed": a[::-1] + b[::-1],
        "interleaved": [p for pair in zip(a, b, strict=False) for p in pair] + a[len(b) :],
    }[order]
    for pdu in pdus:
        client.request_received(pdu)
    inbox = client.sms["79161234567"]
    assert sorted((s.sender, s.text, s.kind) for s in inbox) == [
        ("79161112233", long_en, "mo"),
        ("Operator", long_ru, "network"),
    ]
    assert client.parts == {}


async def test_smpp_target_keeps_few_incomplete_sms() -> None:
    """Parts of sets that never complete are bounded (the oldest set goes first)."""
    from sim.targets import MAX_PARTIAL, _SmppClient
    from ussd.smpp.ussd import sms_pdus

    client = _SmppClient()
    for ref in range(MAX_PARTIAL + 10):
        first = sms_pdus(f"7916{ref:07d}", "Operator", True, "x" * 400, ref)[0]
        client.request_received(first)
    assert len(client.parts) == MAX_PARTIAL
    assert ("79160000000", 0) not in client.parts


@smpp_only
async def test_smpp_target_wrong_password_is_a_clear_error(
    smpp_world: Any, base: dict[str, Any]
) -> None:
    _, _, smpp_url = smpp_world
    target = SmppTarget.from_url(smpp_url.replace(":secret@", ":wrong@"))
    text = 'name: T\nsubscribers: [{msisdn: "79900000000"}]\nsteps: [{dial: "*100#"}]\n'
    (scenario,) = sc.loads(text, "t.yaml", base)
    with pytest.raises(ConnectionError, match=r"^bind_transceiver refused: ESME_RINVPASWD$"):
        await target.setup(scenario)
    await target.close()
