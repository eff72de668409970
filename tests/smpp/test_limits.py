"""Resource limits of the SMPP server over real sockets: bounded metrics, connection cap,
bind and PDU timeouts, and the file-descriptor limit (docs/smpp.md, "Limits")."""

from __future__ import annotations

import asyncio
import contextlib
import resource
import struct
import sys
import textwrap
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from tests.smpp.helpers import ACCOUNTS, server_config
from tests.smpp.helpers import RecordingEsme as Esme
from ussd import metrics
from ussd.clock import Clock, SimulatedClock
from ussd.runtime import Gateway
from ussd.smpp import server as server_mod
from ussd.smpp.constants import CommandStatus
from ussd.smpp.pdu import (
    BindTransceiver,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    Pdu,
    SubmitSm,
    Unbind,
    UnbindResp,
    encode_pdu,
)
from ussd.smpp.server import SmppServer

S = CommandStatus
ROOT = Path(__file__).resolve().parents[2]
REAL = object()  # transport clock: real time (the server's default under a simulated gateway)
TIMEOUT = 5.0


class NackCounter(Esme):
    """The shared test client, also counting the generic_nacks that answer raw frames it
    wrote past its state machine (they answer no request of its own, so they are "ignored")."""

    def __init__(self, expected: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.expected = expected
        self.nacks: list[Pdu] = []
        self.all_nacked = asyncio.Event()

    def pdu_ignored(self, event: Any) -> None:
        super().pdu_ignored(event)
        if isinstance(event.pdu, GenericNack):
            self.nacks.append(event.pdu)
            if len(self.nacks) >= self.expected:
                self.all_nacked.set()


@contextlib.asynccontextmanager
async def serving(
    transport_clock: Any = None, **smpp: Any
) -> AsyncIterator[tuple[SmppServer, Gateway, tuple[str, int]]]:
    """A gateway and its SMPP server on 127.0.0.1:0; transport timers on the simulated clock
    (advanced by hand) unless `transport_clock=REAL`."""
    gateway = Gateway.create(server_config(**smpp), clock=SimulatedClock(), database=":memory:")
    clock: Clock | None = None if transport_clock is REAL else gateway.clock
    srv = SmppServer(gateway, transport_clock=clock)
    address = await srv.start("127.0.0.1", 0)
    try:
        yield srv, gateway, address
    finally:
        await srv.stop()
        gateway.engine.shutdown()
        gateway.store.close()


async def connected(address: tuple[str, int]) -> Esme:
    """An unbound client the server has surely accepted (its enquire_link got an answer)."""
    client = await Esme.connect(address)
    assert isinstance(await client.request(EnquireLink()), EnquireLinkResp)
    return client


async def bound(address: tuple[str, int]) -> Esme:
    client = await Esme.connect(address)
    resp = await client.request(BindTransceiver(system_id="harness", password="secret"))
    assert resp.command_status == S.ESME_ROK
    return client


def smpp_series(gateway: Gateway) -> list[str]:
    text = gateway.metrics.render().decode()
    return [line for line in text.splitlines() if line.startswith("ussd_smpp_pdus_total{")]


# -- item: unknown command_ids and statuses keep metrics bounded ------------------------------


async def test_unknown_command_ids_do_not_grow_metrics() -> None:
    names_before = len(server_mod._COMMAND_NAMES)
    async with serving() as (srv, gateway, address):
        n = 5000
        client = await NackCounter.connect(address, expected=n)
        assert isinstance(client, NackCounter)
        frames = [struct.pack("!IIII", 16, 0x0001_0000 + i, 0, i + 1) for i in range(n)]
        client.write(b"".join(frames))  # from an unbound client, as an attacker would
        await asyncio.wait_for(client.all_nacked.wait(), TIMEOUT * 4)
        # Each still gets its generic_nack (SMPP 3.4 §5.1.3: ESME_RINVCMDID).
        assert sorted(r.sequence_number for r in client.nacks) == list(range(1, n + 1))
        assert {r.command_status for r in client.nacks} == {S.ESME_RINVCMDID}
        assert srv.metrics.pdus == Counter(
            {("in", "unknown", "ESME_ROK"): n, ("out", "generic_nack", "ESME_RINVCMDID"): n}
        )
        assert len(srv.metrics._counts) == 2
        assert len(server_mod._COMMAND_NAMES) == names_before
        series = smpp_series(gateway)
        assert 'ussd_smpp_pdus_total{command="unknown",status="ESME_ROK"} 5000.0' in series
        assert len(series) == 2, series
        await client.close()


async def test_unknown_statuses_count_as_unknown() -> None:
    async with serving() as (srv, gateway, address):
        client = await bound(address)
        client.auto_ack = False
        interval = gateway.config.smpp.enquire_link_interval
        for status in (0x0000_0400, 0x0000_0401, 0x7FFF_FFFF):  # not in SMPP 3.4 §5.1.3
            gateway.clock.advance(interval)  # the server probes the idle link
            probe = await client.next_request()
            assert isinstance(probe, EnquireLink)
            client.write(
                encode_pdu(
                    EnquireLinkResp(command_status=status, sequence_number=probe.sequence_number)
                )
            )
            # A round trip after it: the server has taken the odd answer, the bind is usable.
            assert isinstance(await client.request(EnquireLink()), EnquireLinkResp)
        assert srv.metrics.pdus["in", "enquire_link_resp", "unknown"] == 3
        assert not any("0x0000040" in line or "0x7FFF" in line for line in smpp_series(gateway))
        await client.close()


def test_metrics_smpp_labels_come_from_a_fixed_set() -> None:
    m = metrics.Metrics()
    for i in range(1000):
        m.smpp_pdu(f"0x{0x00010000 + i:08X}", f"0x{i:08X}")
    m.smpp_pdu("submit_sm_resp", "ESME_RINVDSTADR")
    m.smpp_pdu("submit_sm", "0x00000400")
    text = m.render().decode()
    series = [line for line in text.splitlines() if line.startswith("ussd_smpp_pdus_total{")]
    assert sorted(series) == [
        'ussd_smpp_pdus_total{command="submit_sm",status="unknown"} 1.0',
        'ussd_smpp_pdus_total{command="submit_sm_resp",status="ESME_RINVDSTADR"} 1.0',
        'ussd_smpp_pdus_total{command="unknown",status="unknown"} 1000.0',
    ]
    assert len(m._pdu_named) == 3  # counted under the fixed names only


def test_metrics_smpp_series_sum_servers_and_directions_at_scrape_time() -> None:
    m = metrics.Metrics()
    first, second = server_mod._Metrics(m), server_mod._Metrics(m)  # a restarted server
    for _ in range(3):
        first.pdu("in", 0x00000004, 0)
    second.pdu("in", 0x00000004, 0)
    second.pdu("out", 0x80000004, CommandStatus.ESME_RINVDSTADR)
    first.pdu("in", 0x00000004, 0x0000_0400)  # a status outside SMPP 3.4 §5.1.3
    m.smpp_pdu("submit_sm")
    text = m.render().decode()
    series = [line for line in text.splitlines() if line.startswith("ussd_smpp_pdus_total{")]
    assert sorted(series) == [
        'ussd_smpp_pdus_total{command="submit_sm",status="ESME_ROK"} 5.0',
        'ussd_smpp_pdus_total{command="submit_sm",status="unknown"} 1.0',
        'ussd_smpp_pdus_total{command="submit_sm_resp",status="ESME_RINVDSTADR"} 1.0',
    ]
    assert "# TYPE ussd_smpp_pdus_total counter" in text
    # Each server still has its own counts by direction.
    assert first.pdus == Counter(
        {("in", "submit_sm", "ESME_ROK"): 3, ("in", "submit_sm", "unknown"): 1}
    )
    first.pdu("in", 0x00000004, 0)  # counted after a scrape: the next scrape sees it
    assert 'ussd_smpp_pdus_total{command="submit_sm",status="ESME_ROK"} 6.0' in m.render().decode()


# -- bind timeout, PDU timeout --------------------------------------------------------------


async def test_bind_timeout_closes_a_connection_that_never_binds() -> None:
    async with serving(bind_timeout="5s") as (srv, gateway, address):
        idle = await connected(address)
        client = await bound(address)
        assert srv.connections == 2
        gateway.clock.advance(4.9)
        assert srv.connections == 2
        with capture_logs() as logs:
            gateway.clock.advance(0.1)
        await idle.closed()
        assert srv.connections == 1
        [timed_out] = [e for e in logs if e["event"] == "smpp_peer_timed_out"]
        assert timed_out["reason"] == "no bind within 5 s"
        # The bound client is not affected.
        gateway.clock.advance(60.0)
        assert isinstance(await client.request(EnquireLink()), EnquireLinkResp)
        await client.close()


async def test_bind_timeout_on_real_time() -> None:
    async with serving(REAL, bind_timeout="200ms") as (srv, _gateway, address):
        idle = await Esme.connect(address)
        await idle.closed()  # no sleep: the server's own timer closes it
        assert srv.connections == 0


async def test_pdu_timeout_closes_a_half_pdu() -> None:
    async with serving(REAL, pdu_timeout="200ms") as (srv, _gateway, address):
        client = await bound(address)
        other = await bound(address)
        half = encode_pdu(SubmitSm(sequence_number=7, source_addr="79161234567"))[:20]
        with capture_logs() as logs:
            client.write(half)
            await client.closed()
        [timed_out] = [e for e in logs if e["event"] == "smpp_peer_timed_out"]
        assert timed_out["reason"] == "PDU incomplete after 0.2 s (20 octets buffered)"
        assert srv.binds == 1
        assert isinstance(await other.request(EnquireLink()), EnquireLinkResp)
        await other.close()


# -- connection cap ---------------------------------------------------------------------------


async def test_connections_beyond_the_cap_are_closed_at_once() -> None:
    async with serving(max_connections=2) as (srv, gateway, address):
        first = await bound(address)
        second = await bound(address)
        with capture_logs() as logs:
            refused = [await Esme.connect(address) for _ in range(5)]
            for client in refused:
                await client.closed()  # closed by the server before any byte
        assert srv.connections == 2
        assert [e["event"] for e in logs] == ["smpp_connection_limit"]  # once per burst
        assert logs[0]["max_connections"] == 2
        text = gateway.metrics.render().decode()
        assert "ussd_smpp_connections_refused_total 5.0" in text
        # The binds already open keep working.
        assert isinstance(await first.request(EnquireLink()), EnquireLinkResp)
        # One leaves: the next connection gets in, and the burst is summed up once.
        assert isinstance(await second.request(Unbind()), UnbindResp)
        await second.closed()
        with capture_logs() as logs:
            third = await bound(address)
        assert [(e["event"], e.get("refused")) for e in logs if "limit" in e["event"]] == [
            ("smpp_connection_limit_cleared", 5)
        ]
        await third.close()
        await first.close()


def test_connection_limit_keys_are_bounded() -> None:
    from ussd.config import ConfigError

    config = server_config(max_connections=3, bind_timeout="1m", pdu_timeout="2s")
    assert (config.smpp.max_connections, config.smpp.bind_timeout) == (3, 60.0)
    assert config.smpp.pdu_timeout == 2.0
    for key, value in [
        ("max_connections", 0),
        ("max_connections", 10**7),
        ("bind_timeout", "0s"),
        ("bind_timeout", "2d"),
        ("pdu_timeout", 0),
        ("pdu_timeout", "2d"),
    ]:
        with pytest.raises(ConfigError) as err:
            server_config(**{key: value})
        assert err.value.key == f"smpp.{key}"


# -- refused PDUs: the log is bounded, the metrics count each one -------------------------------


class Answered(Esme):
    """The shared test client, also counting the answers to raw frames it wrote past its state
    machine, by status (they answer no request of its own, so they are "ignored")."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.answers: Counter[int] = Counter()
        self.expected = 0
        self.all_answered = asyncio.Event()

    def flood(self, frames: list[bytes]) -> None:
        self.expected += len(frames)
        self.all_answered.clear()
        self.write(b"".join(frames))

    def pdu_ignored(self, event: Any) -> None:
        super().pdu_ignored(event)
        if event.pdu is not None:
            self.answers[event.pdu.command_status] += 1
            if self.answers.total() >= self.expected:
                self.all_answered.set()


def unknown_commands(n: int, first_seq: int) -> list[bytes]:
    return [struct.pack("!IIII", 16, 0x0001_0000 + i, 0, first_seq + i) for i in range(n)]


def rejected(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == "smpp_pdu_rejected"]


async def test_a_flood_of_refused_pdus_is_summed_up_in_the_log() -> None:
    first, interval = server_mod.REJECTS_LOGGED, server_mod.REJECTS_INTERVAL
    async with serving() as (srv, gateway, address):
        other = await bound(address)
        client = await Answered.connect(address)
        assert isinstance(client, Answered)
        ok = await client.request(BindTransceiver(system_id="harness", password="secret"))
        assert ok.command_status == S.ESME_ROK
        # 1,000 binds on a bound connection (ESME_RALYBND), then 4,000 unknown command_ids.
        binds = [
            encode_pdu(BindTransceiver(system_id="harness", password="x", sequence_number=i + 10))
            for i in range(1000)
        ]
        with capture_logs() as logs:
            client.flood(binds + unknown_commands(4000, 2000))
            await asyncio.wait_for(client.all_answered.wait(), TIMEOUT * 4)
            # The other bind's garbage is logged in full: its own budget, not the flood's.
            other.write(unknown_commands(1, 1)[0])
            assert isinstance(await other.request(EnquireLink()), EnquireLinkResp)
        # Every PDU is answered and counted ...
        assert client.answers == {S.ESME_RALYBND: 1000, S.ESME_RINVCMDID: 4000}
        pdus = srv.metrics.pdus
        assert pdus["out", "bind_transceiver_resp", "ESME_RALYBND"] == 1000
        assert pdus["out", "generic_nack", "ESME_RINVCMDID"] == 4001
        assert pdus["in", "unknown", "ESME_ROK"] == 4001
        nacks = 'ussd_smpp_pdus_total{command="generic_nack",status="ESME_RINVCMDID"} 4001.0'
        assert nacks in smpp_series(gateway)
        # ... but the flooding connection logs its first ones only: the clock has not moved.
        lines = rejected(logs)
        assert len(lines) == first + 1
        assert {e["status"] for e in lines[:first]} == {"ESME_RALYBND"}
        assert all(e["system_id"] == "harness" and "reason" in e for e in lines)
        assert lines[-1]["peer"] != lines[0]["peer"]  # the other bind's one
        assert lines[-1]["status"] == "ESME_RINVCMDID"

        # A timer of the connection after the interval: the rest summed up, by status.
        with capture_logs() as logs:
            gateway.clock.advance(max(interval, gateway.config.smpp.enquire_link_interval))
            assert isinstance(await client.request(EnquireLink()), EnquireLinkResp)
        [summary] = rejected(logs)
        assert summary["peer"] == lines[0]["peer"]
        assert summary["suppressed"] == 4990
        assert summary["statuses"] == {"ESME_RALYBND": 990, "ESME_RINVCMDID": 4000}
        assert "reason" not in summary and "command" not in summary

        # Within the next interval nothing more is logged; the end of the connection sums up
        # what was held back.
        with capture_logs() as logs:
            client.flood(unknown_commands(3, 9000))
            await asyncio.wait_for(client.all_answered.wait(), TIMEOUT)
            assert rejected(logs) == []
            assert isinstance(await client.request(Unbind()), UnbindResp)
            await client.closed()
        [end] = rejected(logs)
        assert (end["suppressed"], end["statuses"]) == (3, {"ESME_RINVCMDID": 3})
        assert pdus["out", "generic_nack", "ESME_RINVCMDID"] == 4001  # pdus is a snapshot
        assert srv.metrics.pdus["out", "generic_nack", "ESME_RINVCMDID"] == 4004
        # The other bind never noticed.
        assert isinstance(await other.request(EnquireLink()), EnquireLinkResp)
        await other.close()


def test_reject_log_summary_keys_are_a_fixed_set() -> None:
    rejects = server_mod._RejectLog()
    for _ in range(server_mod.REJECTS_LOGGED):
        assert rejects.own_line(0.0)
    assert not rejects.own_line(0.0)
    for status in range(0x0000_0400, 0x0000_0400 + 1000):  # outside SMPP 3.4 §5.1.3
        rejects.hold(status)
    rejects.hold(S.ESME_RINVCMDID)
    assert rejects.take(server_mod.REJECTS_INTERVAL - 0.1) is None  # too soon
    assert rejects.take(server_mod.REJECTS_INTERVAL) == {"unknown": 1000, "ESME_RINVCMDID": 1}
    assert rejects.take(1e9) is None  # nothing held
    rejects.hold(S.ESME_RALYBND)
    assert rejects.take(server_mod.REJECTS_INTERVAL, ending=True) == {"ESME_RALYBND": 1}


# -- the file-descriptor limit ------------------------------------------------------------------

FD_LIMIT = 256

CHILD = textwrap.dedent(
    f"""
    import asyncio, resource
    from tests.conftest import make_config
    from ussd import log
    from ussd.clock import SimulatedClock
    from ussd.runtime import Gateway
    from ussd.smpp.server import SmppServer

    async def main():
        log.configure("json", "info")
        config = make_config(smpp={{"accounts": {ACCOUNTS!r}, "max_connections": 100000}})
        gateway = Gateway.create(config, clock=SimulatedClock(), database=":memory:")
        server = SmppServer(gateway)
        _, port = await server.start("127.0.0.1", 0)
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, ({FD_LIMIT}, hard))
        print(port, flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())
    """
)


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_NOFILE behaviour checked on Linux")
async def test_file_descriptor_limit_pauses_accepting_and_logs_once() -> None:
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] > FD_LIMIT + 200
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    lines: list[str] = []
    overload = asyncio.Event()
    resumed = asyncio.Event()

    async def read_log() -> None:
        assert proc.stderr is not None
        async for raw in proc.stderr:
            line = raw.decode(errors="replace")
            lines.append(line)
            if "accept_paused" in line or "out of system resource" in line:
                overload.set()
            if "accept_resumed" in line:
                resumed.set()

    reading = asyncio.create_task(read_log())
    idle: list[asyncio.StreamWriter] = []
    try:
        assert proc.stdout is not None
        port = int(await asyncio.wait_for(proc.stdout.readline(), 30))
        address = ("127.0.0.1", port)
        client = await bound(address)
        # More idle connections than the server has descriptors. One after the other: a
        # handshake completes in the kernel, so the last ones wait in the listen backlog
        # (BACKLOG = 100 > the 50 over the limit) instead of being dropped.
        for _ in range(FD_LIMIT + 50):
            _, writer = await asyncio.wait_for(asyncio.open_connection(*address), TIMEOUT)
            idle.append(writer)
        await asyncio.wait_for(overload.wait(), TIMEOUT * 2)
        # While it cannot accept, the server serves what it has.
        for _ in range(3):
            assert isinstance(await client.request(EnquireLink()), EnquireLinkResp)
        for writer in idle:
            writer.close()
        idle.clear()
        # Descriptors free again: new connections get in.
        late = await asyncio.wait_for(bound(address), TIMEOUT * 3)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(resumed.wait(), TIMEOUT)
        assert isinstance(await client.request(EnquireLink()), EnquireLinkResp)
        overload_lines = [
            line for line in lines if "accept_paused" in line or "out of system resource" in line
        ]
        assert len(overload_lines) == 1, f"{len(overload_lines)} lines, e.g. {lines[-3:]}"
        assert not any("Traceback" in line for line in lines), lines[-20:]
        assert resumed.is_set()  # the end of the episode is logged too, once
        assert sum("accept_resumed" in line for line in lines) == 1
        await late.close()
        await client.close()
    finally:
        for writer in idle:
            writer.close()
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reading
