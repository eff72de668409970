"""PDU captures (ussd/smpp/pcap.py, ussd/smpp/capture.py; docs/operations.md).

Tables pin the exact bytes of a known PDU's record and the framing of byte streams; hypothesis
checks that any exchange keeps TCP's numbers consistent (RFC 793 §3.3) with valid checksums;
real tshark reads the capture of a USSD dialog and an SMS with its receipt over a real bind.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import struct
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import make_config
from tests.smpp.helpers import RecordingEsme
from ussd.config import ConfigError
from ussd.http import start_http
from ussd.runtime import Gateway
from ussd.smpp.capture import FLUSH_AFTER, CaptureError, CaptureFile, Captures
from ussd.smpp.constants import CommandId, EsmClass, UssdServiceOp
from ussd.smpp.pcap import (
    ACK,
    FIN,
    HEADER,
    MAX_SEGMENT,
    PSH,
    SYN,
    WINDOW,
    PcapWriter,
    PduFramer,
    TcpFlow,
    checksum,
    record,
    redact,
)
from ussd.smpp.pdu import (
    BindTransceiver,
    EnquireLink,
    ItsSessionInfo,
    Pdu,
    SubmitSm,
    Unbind,
    encode_pdu,
    encode_text,
    ussd_tlvs,
)
from ussd.smpp.server import SmppServer

ENQUIRE_LINK = encode_pdu(EnquireLink(sequence_number=1))
ALICE = "79161234567"
BOB = "79161112233"
TIMEOUT = 5.0


# -- tables: checksum, timestamps, one known PDU ------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (bytes.fromhex("0001f203f4f5f6f7"), 0x220D),  # RFC 1071 §3's example, complemented
        (b"", 0xFFFF),
        (b"\xff\xff", 0x0000),
        (b"\x01", 0xFEFF),  # an odd octet is padded with a zero
    ],
)
def test_checksum(data: bytes, expected: int) -> None:
    assert checksum(data) == expected


@given(st.binary(max_size=200))
def test_checksum_agrees_with_rfc_1071_word_sum(data: bytes) -> None:
    padded = data + b"\0" * (len(data) % 2)
    total = sum(struct.unpack(f"!{len(padded) // 2}H", padded))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    assert checksum(data) == ~total & 0xFFFF


@pytest.mark.parametrize(
    ("now", "seconds", "micros"),
    [
        (1.5, 1, 500_000),
        (1_700_000_000.000001, 1_700_000_000, 1),
        (0.9999996, 1, 0),  # rounding carries into the seconds
        (-5.0, 0, 0),  # before 1970: clamped, a pcap timestamp is unsigned
    ],
)
def test_record_timestamp(now: float, seconds: int, micros: int) -> None:
    assert record(now, b"xy") == struct.pack("<IIII", seconds, micros, 2, 2) + b"xy"


def test_file_header() -> None:
    # pcap-savefile(5): little-endian magic, 2.4, zone 0, sigfigs 0, snaplen, Ethernet.
    assert HEADER.hex() == "d4c3b2a10200040000000000000000000000040001000000"


def test_known_pdu_ipv4_exact_bytes() -> None:
    flow = TcpFlow(("127.0.0.1", 40000), ("127.0.0.1", 2775), isn=(1000, 5000))
    got = flow.segment(True, ENQUIRE_LINK, 1.5)
    expected = bytes.fromhex(
        "01000000"
        "20a10700"
        "46000000"
        "46000000"  # 1.5 s; 70 octets captured of 70
        "020000000001"
        "020000000002"
        "0800"  # to the server's MAC, from the client's; IPv4
        "4500"
        "0038"
        "0000"
        "4000"
        "40"
        "06"
        "3cbe"
        "7f000001"
        "7f000001"  # DF, TTL 64, TCP
        "9c40"
        "0ad7"
        "000003e9"
        "00001389"  # 40000 -> 2775, seq ISN+1, ack the server's ISN+1
        "50"
        "18"
        "ffff"
        "f30a"
        "0000"  # 20-octet header, PSH|ACK, window 65535, checksum
        "00000010"
        "00000015"
        "00000000"
        "00000001"  # enquire_link, sequence_number 1
    )
    assert got == expected
    assert (flow.client.seq, flow.server.seq) == (1001 + 16, 5001)


def test_known_pdu_ipv6_exact_bytes() -> None:
    flow = TcpFlow(("::1", 40000), ("::1", 2775), isn=(1000, 5000))
    got = flow.segment(False, ENQUIRE_LINK, 1.5)
    expected = bytes.fromhex(
        "01000000"
        "20a10700"
        "5a000000"
        "5a000000"  # 90 octets
        "020000000002"
        "020000000001"
        "86dd"  # to the client, from the server; IPv6
        "60000000"
        "0024"
        "06"
        "40" + "00" * 15 + "01" + "00" * 15 + "01"
        "0ad7"
        "9c40"
        "00001389"
        "000003e9"
        "50"
        "18"
        "ffff"
        "f10b"
        "0000"
        "00000010"
        "00000015"
        "00000000"
        "00000001"
    )
    assert got == expected


def test_ipv4_mapped_peer_is_framed_as_ipv4() -> None:
    flow = TcpFlow(("::ffff:127.0.0.1", 40000), ("127.0.0.1", 2775))
    assert len(flow.client.address) == 4


def test_mixed_ip_versions_refused() -> None:
    with pytest.raises(ValueError, match="IP version"):
        TcpFlow(("::1", 1), ("127.0.0.1", 2))


# -- framing by command_length --------------------------------------------------------------

TWO = ENQUIRE_LINK + encode_pdu(EnquireLink(sequence_number=2))


@pytest.mark.parametrize(
    ("chunks", "expected", "pending"),
    [
        ([ENQUIRE_LINK], [ENQUIRE_LINK], 0),
        ([TWO], [TWO[:16], TWO[16:]], 0),
        ([TWO[:20]], [TWO[:16]], 4),
        ([TWO[:3], TWO[3:17], TWO[17:]], [TWO[:16], TWO[16:]], 0),
        ([bytes([b]) for b in TWO], [TWO[:16], TWO[16:]], 0),
        # command_length 8: unframeable, passed through from there on.
        (
            [ENQUIRE_LINK + b"\0\0\0\x08abcd", b"more"],
            [ENQUIRE_LINK, b"\0\0\0\x08abcd", b"more"],
            0,
        ),
        ([b"\xff\xff\xff\xff" + bytes(12)], [b"\xff\xff\xff\xff" + bytes(12)], 0),
    ],
)
def test_framer(chunks: list[bytes], expected: list[bytes], pending: int) -> None:
    framer = PduFramer(max_pdu_size=64 * 1024)
    got = [pdu for chunk in chunks for pdu in framer.feed(chunk)]
    assert got == expected
    assert framer.pending == pending


@given(st.lists(st.integers(16, 300), max_size=20), st.data())
def test_framer_any_split_gives_the_same_pdus(sizes: list[int], data: st.DataObject) -> None:
    pdus = [n.to_bytes(4, "big") + bytes([n % 256]) * (n - 4) for n in sizes]
    stream = b"".join(pdus)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=30)))
    framer = PduFramer()
    got = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        got += framer.feed(stream[start:end])
    assert got == pdus and framer.pending == 0


def test_framer_starts_from_pending_input() -> None:
    framer = PduFramer(pending=ENQUIRE_LINK[:10])
    assert framer.feed(ENQUIRE_LINK[10:]) == [ENQUIRE_LINK]


# -- passwords starred out ------------------------------------------------------------------


def submit(text: str, coding: int | None = None, source: str = ALICE, **kw: Any) -> bytes:
    data, dc = encode_text(text, coding)
    return encode_pdu(
        SubmitSm(
            sequence_number=3,
            service_type="USSD",
            source_addr=source,
            destination_addr="111",
            data_coding=dc,
            short_message=data,
            **kw,
        )
    )


def prompting(msisdn: str) -> bool:
    return msisdn == ALICE


BIND = encode_pdu(BindTransceiver(sequence_number=1, system_id="harness", password="secret"))
STARRED_BIND = encode_pdu(
    BindTransceiver(sequence_number=1, system_id="harness", password="******")
)


@pytest.mark.parametrize(
    ("pdu", "expected"),
    [
        (BIND, STARRED_BIND),
        (BIND[:22], BIND[:16] + b"*" * 6),  # cut inside system_id: the whole body
        (BIND[:26], BIND[:24] + b"**"),  # cut inside the password
        (ENQUIRE_LINK, ENQUIRE_LINK),
        (submit("secret12"), submit("********")),
        (submit("пароль1"), submit("*******", 0x08)),  # UCS2: '*' is 00 2A
        (submit("secret12", source=BOB), submit("secret12", source=BOB)),  # no prompt shown
        (
            submit("", tlvs=((0x0424, b"secret12"),)),  # text in a TLV instead
            submit("", tlvs=((0x0424, b"********"),)),
        ),
        (submit("secret12")[:30], submit("secret12")[:30]),  # malformed: refused unseen
    ],
)
def test_redact(pdu: bytes, expected: bytes) -> None:
    assert redact(pdu, prompting) == expected


def test_redact_without_a_prompt_source_keeps_submits() -> None:
    assert redact(submit("secret12")) == submit("secret12")


# -- hypothesis: TCP numbers stay consistent ------------------------------------------------


def parse(data: bytes) -> Iterator[tuple[float, bytes]]:
    """(timestamp, frame) for each record of a pcap file, checking the header."""
    assert data[:24] == HEADER
    pos = 24
    while pos < len(data):
        sec, usec, incl, orig = struct.unpack_from("<IIII", data, pos)
        assert incl == orig
        yield sec + usec / 1e6, data[pos + 16 : pos + 16 + incl]
        pos += 16 + incl
    assert pos == len(data)


def segments(data: bytes) -> Iterator[tuple[tuple[bytes, int], int, int, int, bytes]]:
    """(source, seq, ack, flags, payload) per frame; checksums verified."""
    for _, frame in parse(data):
        ethertype = struct.unpack_from("!H", frame, 12)[0]
        if ethertype == 0x0800:
            ip = frame[14:34]
            assert checksum(ip) == 0
            total = struct.unpack_from("!H", ip, 2)[0]
            src, dst, tcp = ip[12:16], ip[16:20], frame[34 : 14 + total]
            pseudo = src + dst + struct.pack("!BBH", 0, 6, len(tcp))
        else:
            assert ethertype == 0x86DD
            length = struct.unpack_from("!H", frame, 18)[0]
            src, dst, tcp = frame[22:38], frame[38:54], frame[54 : 54 + length]
            pseudo = src + dst + struct.pack("!II", len(tcp), 6)
        assert checksum(pseudo + tcp) == 0
        sport, _, seq, ack, offset, flags, window = struct.unpack_from("!HHIIBBH", tcp)
        assert window == WINDOW and offset >> 4 == 5
        yield (src, sport), seq, ack, flags, tcp[20:]


def check_tcp(data: bytes) -> list[bytes]:
    """Assert RFC 793 consistency of every connection; the payloads in order."""
    nxt: dict[tuple[bytes, int], int] = {}  # per sender: the next sequence number
    acked: dict[tuple[bytes, int], int] = {}  # per sender: what the other side acknowledged
    other: dict[tuple[bytes, int], tuple[bytes, int]] = {}
    payloads = []
    for src, seq, ack, flags, payload in segments(data):
        if flags == SYN:
            nxt[src] = seq
            continue
        if flags == SYN | ACK:
            client = next(k for k in nxt if k not in other)
            other[src], other[client] = client, src
            nxt[src] = seq
            nxt[client] = (nxt[client] + 1) % (1 << 32)
            assert ack == nxt[client]
            acked[client] = ack
        assert seq == nxt[src], "a gap or an overlap in the sequence numbers"
        if flags != SYN | ACK:
            assert flags & ACK and ack == nxt[other[src]], "ACK must cover what was sent"
        acked[other[src]] = ack
        nxt[src] = (seq + len(payload) + bool(flags & (SYN | FIN))) % (1 << 32)
        in_flight = (nxt[src] - acked.get(src, nxt[src])) % (1 << 32)
        assert in_flight <= WINDOW, "more in flight than the window"
        if payload:
            assert flags == PSH | ACK and len(payload) <= MAX_SEGMENT
            payloads.append(payload)
    return payloads


exchanges = st.lists(
    st.tuples(st.booleans(), st.integers(min_value=16, max_value=3 * MAX_SEGMENT)),
    max_size=30,
)


@settings(max_examples=60, deadline=None)
@given(
    exchanges,
    st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
    st.booleans(),
    st.booleans(),
)
def test_any_exchange_keeps_tcp_consistent(
    steps: list[tuple[bool, int]], isn: tuple[int, int], v6: bool, by_client: bool
) -> None:
    host = "::1" if v6 else "192.0.2.7"
    writer = PcapWriter(max_pdu_size=4 * MAX_SEGMENT)
    writer.open(1, (host, 40000), ("::1" if v6 else "192.0.2.1", 2775), 10.0, isn=isn)
    sent = []
    for i, (from_client, size) in enumerate(steps):
        pdu = size.to_bytes(4, "big") + bytes([i % 251]) * (size - 4)
        sent.append(pdu)
        (writer.received if from_client else writer.sent)(1, pdu, 10.0 + i)
    writer.close(1, 99.0, by_client=by_client)
    data = writer.data_to_send()
    payloads = check_tcp(data)
    assert b"".join(payloads) == b"".join(sent)
    flags = [f for _, _, _, f, _ in segments(data)]
    assert flags[:3] == [SYN, SYN | ACK, ACK]
    assert flags[-3:] == [FIN | ACK, FIN | ACK, ACK]


def test_restart_continues_the_numbers() -> None:
    writer = PcapWriter()
    writer.open(1, ("127.0.0.1", 40000), ("127.0.0.1", 2775), 1.0)
    writer.received(1, ENQUIRE_LINK, 2.0)
    writer.data_to_send()
    writer.restart(3.0)  # a new file: header, then a handshake where the flow is
    writer.sent(1, ENQUIRE_LINK, 4.0)
    writer.close(1, 5.0)
    assert check_tcp(writer.data_to_send()) == [ENQUIRE_LINK]


def test_a_partial_pdu_at_close_is_still_written() -> None:
    writer = PcapWriter()
    writer.open(1, ("127.0.0.1", 40000), ("127.0.0.1", 2775), 1.0)
    writer.received(1, ENQUIRE_LINK[:7], 2.0)
    writer.close(1, 3.0, by_client=True)
    assert check_tcp(writer.data_to_send()) == [ENQUIRE_LINK[:7]]


# -- files: rotation, per-bind names --------------------------------------------------------


def test_rotation_keeps_one_old_file(tmp_path: Path) -> None:
    path = tmp_path / "all.pcap"
    capture = CaptureFile(path, max_bytes=2000)
    capture.writer.open(1, ("127.0.0.1", 40000), ("127.0.0.1", 2775), 1.0)
    for i in range(100):
        capture.before_write(float(i))
        capture.writer.received(1, ENQUIRE_LINK, float(i))
        capture.flush()
    capture.writer.close(1, 200.0)
    capture.close()
    assert capture.rotations >= 3
    old, new = (tmp_path / "all.pcap.1").read_bytes(), path.read_bytes()
    # A file ends at the first write past the limit: one record (86 octets) over at most.
    assert len(old) <= 2000 + 86
    assert len(new) <= 2000 + 86 + 3 * 54
    for data in (old, new):
        assert data.startswith(HEADER)
        flags = [f for _, _, _, f, _ in segments(data)]
        assert flags[:3] == [SYN, SYN | ACK, ACK]  # every file opens the connection again
    assert check_tcp(new)  # numbers continue from the file before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["all.pcap", "all.pcap.1"]


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("../escape", "bad_field"),
        ("a/b", "bad_field"),
        (".hidden", "bad_field"),
        ("x" * 65, "bad_field"),
        ("name.1", "bad_field"),  # would collide with a rotated file
        ("", "bad_field"),
        ("exists.pcap", "file_exists"),
    ],
)
def test_per_bind_names_stay_in_the_directory(tmp_path: Path, name: str, code: str) -> None:
    (tmp_path / "exists.pcap").write_bytes(b"keep")
    captures = Captures(None, str(tmp_path), 1 << 20)
    captures.opened(7, ("127.0.0.1", 40000), ("127.0.0.1", 2775), 1.0)
    with pytest.raises(CaptureError) as info:
        captures.start_bind(7, name, "harness", 1.0)
    assert info.value.code == code
    assert (tmp_path / "exists.pcap").read_bytes() == b"keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exists.pcap"]


def test_per_bind_capture_lifecycle(tmp_path: Path) -> None:
    captures = Captures(None, str(tmp_path / "caps"), 1 << 20)
    with pytest.raises(CaptureError) as info:
        captures.start_bind(7, None, "harness", 1.0)
    assert info.value.code == "unknown_bind"
    captures.opened(7, ("127.0.0.1", 40000), ("127.0.0.1", 2775), 1.0)
    started = captures.start_bind(7, "mine", "harness", 1.0, pending=ENQUIRE_LINK[:5])
    assert started["file"] == "mine.pcap" and captures.active
    with pytest.raises(CaptureError) as info:
        captures.start_bind(7, "again", "harness", 1.0)
    assert info.value.code == "capture_running"
    captures.received(7, ENQUIRE_LINK[5:], 2.0)
    stopped = captures.stop_bind(7, 3.0)
    assert stopped["pdus"] == 1 and not captures.active
    assert check_tcp((tmp_path / "caps" / "mine.pcap").read_bytes()) == [ENQUIRE_LINK]
    with pytest.raises(CaptureError) as info:
        captures.stop_bind(7, 3.0)
    assert info.value.code == "no_capture"


async def test_records_reach_the_file_within_a_second(tmp_path: Path) -> None:
    path = tmp_path / "all.pcap"
    captures = Captures(str(path), str(tmp_path), 1 << 20)
    flushed = asyncio.Event()
    flush_all = captures._flush_all

    def spy() -> None:
        flush_all()
        flushed.set()

    captures._flush_all = spy  # type: ignore[method-assign]
    captures.start()
    captures.opened(1, ("127.0.0.1", 40000), ("127.0.0.1", 2775), 1.0)
    captures.received(1, ENQUIRE_LINK, 2.0)
    assert path.read_bytes() == b""  # nothing written per record...
    await asyncio.wait_for(flushed.wait(), FLUSH_AFTER + TIMEOUT)  # ...but on the timer
    assert check_tcp(path.read_bytes()) == [ENQUIRE_LINK]
    captures.close_all(3.0)
    flags = [f for _, _, _, f, _ in segments(path.read_bytes())]
    assert flags[-3:] == [FIN | ACK, FIN | ACK, ACK]


def test_default_name_is_safe(tmp_path: Path) -> None:
    captures = Captures(None, str(tmp_path), 1 << 20)
    captures.opened(3, ("127.0.0.1", 40000), ("127.0.0.1", 2775), 0.0)
    info = captures.start_bind(3, None, "../x y", 0.0)
    assert info["file"] == "bind-3-___x_y-19700101T000000Z.pcap"
    assert Path(info["path"]).parent == tmp_path


def test_unwritable_capture_path_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    captures = Captures(str(tmp_path / "file" / "all.pcap"), str(tmp_path), 1 << 20)
    with pytest.raises(ConfigError) as info:
        captures.start()
    assert info.value.key == "smpp.capture"


@pytest.mark.parametrize(
    ("value", "ok"),
    [(None, True), ("var/x.pcap", True), (12, True), ("", False), ([], False)],
)
def test_config_capture_key(value: Any, ok: bool) -> None:
    if ok:
        cfg = make_config(smpp={"capture": value})
        assert cfg.smpp.capture == (None if value is None else str(value))
    else:
        with pytest.raises(ConfigError, match=r"smpp\.capture"):
            make_config(smpp={"capture": value})


@pytest.mark.parametrize("value", [1024, 2**40, "big", True])
def test_config_capture_max_bytes_bounded(value: Any) -> None:
    with pytest.raises(ConfigError, match=r"smpp\.capture_max_bytes"):
        make_config(smpp={"capture_max_bytes": value})


# -- real tshark on a real bind -------------------------------------------------------------


def tshark_path() -> str:
    """tshark; under CI a missing tshark fails the test instead of skipping it."""
    path = os.environ.get("TSHARK") or shutil.which("tshark")
    if path:
        return path
    message = "tshark not found (install Debian's `tshark`, or `make tools`)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


def tshark(path: Path, port: int, *args: str) -> list[list[str]]:
    out = subprocess.run(
        [tshark_path(), "-r", str(path), "-d", f"tcp.port=={port},smpp", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "HOME": str(path.parent)},  # no user profile
    )
    return [line.split("\t") for line in out.stdout.splitlines()]


class TracingEsme(RecordingEsme):
    """Also remembers what it sent, in order (the other direction of the capture)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sent: list[Pdu] = []

    def request_received(self, pdu: Pdu) -> Pdu | None:
        response = super().request_received(pdu)
        if response is not None:
            self.sent.append(response)
        return response

    async def request(self, pdu: Pdu) -> Pdu:
        self.sent.append(pdu)
        return await super().request(pdu)

    async def ussd(self, text: str, op: int, session: ItsSessionInfo | None = None) -> Pdu:
        data, coding = encode_text(text)
        return await self.request(
            SubmitSm(
                service_type="USSD",
                source_addr_ton=1,
                source_addr_npi=1,
                source_addr=ALICE,
                destination_addr="111",
                data_coding=coding,
                short_message=data,
                tlvs=ussd_tlvs(op, session),
            )
        )


def key(pdu: Pdu) -> tuple[int, int | None, tuple[int, int, int] | None]:
    """What tshark must decode: command_id, ussd_service_op, its_session_info."""
    op = getattr(pdu, "ussd_service_op", None)
    its = getattr(pdu, "its_session_info", None)
    session = None if its is None else (its.session_number, its.sequence_number, its.end_of_session)
    return pdu.command_id, op, session


def decoded(row: list[str]) -> tuple[int, int | None, tuple[int, int, int] | None]:
    command, op, number, sequence, ind = row
    session = None if not number else (int(number), int(sequence, 0), int(ind, 0))
    return int(command, 0), int(op) if op else None, session


@pytest.fixture
async def capturing(tmp_path: Path) -> AsyncIterator[tuple[SmppServer, Path]]:
    config = make_config(
        smpp={
            "accounts": [{"system_id": "harness", "password": "secret"}],
            "capture": str(tmp_path / "smpp.pcap"),
            "capture_dir": str(tmp_path / "binds"),
        }
    )
    gateway = Gateway.create(config, database=":memory:")
    server = SmppServer(gateway)
    server.address = await server.start("127.0.0.1", 0)  # type: ignore[attr-defined]
    try:
        yield server, tmp_path
    finally:
        await server.stop()
        gateway.engine.shutdown()
        gateway.store.close()


async def test_tshark_decodes_a_ussd_dialog_and_an_sms_with_receipt(
    capturing: tuple[SmppServer, Path],
) -> None:
    tshark_path()  # fail or skip before the dialog
    server, tmp = capturing
    host, port = server.address  # type: ignore[attr-defined]
    client = await TracingEsme.connect((host, port))
    assert (
        await client.request(BindTransceiver(system_id="harness", password="secret"))
    ).command_status == 0
    bind_id = server.bind_list()[0]["id"]
    server.start_capture(bind_id, "one-bind")  # the per-bind switch, beside smpp.capture

    # A USSD dialog: the dial, its screen, a reply, the next screen, a release.
    await client.ussd("*111#", UssdServiceOp.PSSR_INDICATION, ItsSessionInfo(9, 0))
    screen = await client.deliver_sm()
    assert screen.ussd_service_op == UssdServiceOp.USSR_REQUEST
    await client.ussd("1", UssdServiceOp.USSR_CONFIRM, ItsSessionInfo(9, 2))
    await client.deliver_sm()
    await client.ussd("", UssdServiceOp.RELEASE, ItsSessionInfo(9, 4, True))
    # An SMS with a delivery receipt: the MO copy and the receipt come back as deliver_sm.
    data, coding = encode_text("Hello Bob")
    await client.request(
        SubmitSm(
            source_addr_ton=1,
            source_addr_npi=1,
            source_addr=ALICE,
            destination_addr=BOB,
            data_coding=coding,
            short_message=data,
            registered_delivery=1,
        )
    )
    receipt = None
    while receipt is None:
        pdu = await client.deliver_sm()
        if pdu.esm_class == EsmClass.DELIVERY_RECEIPT:
            receipt = pdu
    await client.request(Unbind())
    await client.closed()
    await server.stop()  # flushes and closes every file

    # One pass per file: TCP fields of every frame, then SMPP's (empty when not SMPP).
    tcp = ["tcp.srcport", "tcp.len", "tcp.flags.syn", "tcp.flags.fin", "smpp.receipted_message_id"]
    smpp = ["smpp.command_id", "smpp.ussd_service_op"]
    smpp += ["smpp.its_session.number", "smpp.its_session.sequence", "smpp.its_session.ind"]
    args = ["-T", "fields", "-Eoccurrence=f", *(f"-e{f}" for f in tcp + smpp)]
    for name in ("smpp.pcap", "binds/one-bind.pcap"):
        path = tmp / name
        frames = tshark(path, port, *args)
        data = [f for f in frames if f[1] != "0"]
        # Every segment with data decodes as exactly one SMPP PDU.
        assert all(f[5] for f in data)
        to_server = [decoded(f[5:]) for f in data if f[0] != str(port)]
        to_client = [decoded(f[5:]) for f in data if f[0] == str(port)]
        sent = client.sent if name == "smpp.pcap" else client.sent[1:]  # bound before the switch
        seen = client.seen if name == "smpp.pcap" else client.seen[1:]
        assert to_server == [key(p) for p in sent]
        assert to_client == [key(p) for p in seen]
        # The dialog's screen and release decode with their USSD fields; one receipt.
        assert (int(CommandId.DELIVER_SM), 2, (9, 1, 0)) in to_client
        assert (int(CommandId.SUBMIT_SM), 0x81, (9, 4, 1)) in to_server
        assert [f[4] for f in data if f[4]] == [receipt.receipted_message_id]
        # One connection: SYN to the listen port, SYN-ACK back; a FIN each way at the end.
        syn = [f[0] == str(port) for f in frames if f[2] in ("1", "True")]
        fin = [f[0] == str(port) for f in frames if f[3] in ("1", "True")]
        assert syn == [False, True] and sorted(fin) == [False, True]
        # Wireshark's TCP analysis finds nothing: no retransmission, gap, window or ACK issue.
        assert (
            tshark(path, port, "-Y", "tcp.analysis.flags || _ws.expert.severity >= warning") == []
        )


async def test_admin_api_switches_a_bind_capture(capturing: tuple[SmppServer, Path]) -> None:
    server, tmp = capturing
    client = await TracingEsme.connect(server.address)  # type: ignore[attr-defined]
    bind = BindTransceiver(system_id="harness", password="secret")
    assert (await client.request(bind)).command_status == 0
    http = await start_http(server.gateway, "127.0.0.1", 0, smpp=server)
    auth = {"Authorization": "Bearer change-me"}
    try:
        async with aiohttp.ClientSession(base_url=http.url, headers=auth) as session:

            async def call(method: str, path: str, body: Any = None) -> tuple[int, Any]:
                async with session.request(method, f"/api/v1{path}", json=body) as r:
                    return r.status, await r.json()

            async with session.get("/api/v1/binds", headers={"Authorization": ""}) as r:
                assert r.status == 401
            status, body = await call("GET", "/binds")
            assert status == 200
            (listed,) = body["binds"]
            assert listed["system_id"] == "harness" and listed["bind_type"] == "transceiver"
            assert listed["capture"] is None and listed["peer"].startswith("127.0.0.1:")
            bind_id = listed["id"]
            for path, payload, expected, code in [
                (f"/binds/{bind_id}/capture", {"file": "../x"}, 400, "bad_field"),
                (f"/binds/{bind_id}/capture", {"file": 7}, 400, "bad_field"),
                ("/binds/999/capture", {}, 404, "unknown_bind"),
                ("/binds/abc/capture", {}, 404, "unknown_bind"),
                (f"/binds/{bind_id}/capture", {"file": "api"}, 201, None),
                (f"/binds/{bind_id}/capture", {"file": "other"}, 409, "capture_running"),
            ]:
                status, body = await call("POST", path, payload)
                assert (status, body["error"]["code"] if code else None) == (expected, code), body
            status, body = await call("GET", f"/binds/{bind_id}/capture")
            assert (status, body["file"]) == (200, "api.pcap")
            await client.request(EnquireLink())
            status, body = await call("DELETE", f"/binds/{bind_id}/capture")
            assert (status, body["file"], body["pdus"]) == (200, "api.pcap", 2)
            status, body = await call("DELETE", f"/binds/{bind_id}/capture")
            assert (status, body["error"]["code"]) == (404, "no_capture")
            status, body = await call("GET", f"/binds/{bind_id}/capture")
            assert (status, body["error"]["code"]) == (404, "no_capture")
        written = (tmp / "binds" / "api.pcap").read_bytes()
        ids = [int.from_bytes(p[4:8], "big") for p in check_tcp(written)]
        assert ids == [CommandId.ENQUIRE_LINK, CommandId.ENQUIRE_LINK_RESP]
    finally:
        await http.stop()
        client.disconnect()


async def test_replies_to_password_prompts_are_starred(capturing: tuple[SmppServer, Path]) -> None:
    server, tmp = capturing
    client = await TracingEsme.connect(server.address)  # type: ignore[attr-defined]
    bind = BindTransceiver(system_id="harness", password="secret")
    assert (await client.request(bind)).command_status == 0
    (listed,) = server.bind_list()
    server.start_capture(listed["id"], "password")
    # *111*17# asks for a new password (docs/services.md): the reply is a password.
    await client.ussd("*111*17#", UssdServiceOp.PSSR_INDICATION, ItsSessionInfo(5, 0))
    await client.deliver_sm()
    assert server.gateway.engine.dialog(ALICE).secret
    await client.ussd("k9secret", UssdServiceOp.USSR_CONFIRM, ItsSessionInfo(5, 2))
    await client.deliver_sm()
    client.disconnect()
    await client.closed()
    await server.stop()
    for name in ("smpp.pcap", "binds/password.pcap"):
        data = (tmp / name).read_bytes()
        submits = [p for p in check_tcp(data) if p[4:8] == b"\0\0\0\x04"]
        assert b"*111*17#" in submits[0]  # the dial is not a reply to a prompt
        assert b"k9secret" not in data and b"********" in submits[1]
    # The bind's password is starred too (SMPP 3.4 §4.1.1).
    whole = (tmp / "smpp.pcap").read_bytes()
    assert b"harness\0******\0" in whole and b"secret\0" not in whole


async def test_ipv6_bind_is_captured_as_ipv6(capturing: tuple[SmppServer, Path]) -> None:
    tshark_path()
    server, tmp = capturing
    await server.stop()  # listen on ::1 instead (the same capture file, opened again)
    try:
        host, port = await server.start("::1", 0)
    except OSError as exc:  # pragma: no cover - a host without IPv6 loopback
        pytest.skip(f"no IPv6 loopback: {exc}")
    client = await TracingEsme.connect((host, port))
    assert (
        await client.request(BindTransceiver(system_id="harness", password="secret"))
    ).command_status == 0
    await client.request(EnquireLink())
    await client.request(Unbind())
    await client.closed()
    await server.stop()
    fields = ["-T", "fields", "-eipv6.src", "-eipv6.dst", "-etcp.dstport", "-esmpp.command_id"]
    rows = tshark(tmp / "smpp.pcap", port, "-Y", "smpp", *fields)
    commands = [int(r[3], 0) for r in rows]
    assert commands == [1 << 31 | c if i % 2 else c for i, c in enumerate([9, 9, 0x15, 0x15, 6, 6])]
    assert {(r[0], r[1]) for r in rows} == {("::1", "::1")}
    assert (
        tshark(
            tmp / "smpp.pcap", port, "-Y", "tcp.analysis.flags || _ws.expert.severity >= warning"
        )
        == []
    )
