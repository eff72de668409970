"""SMPP PDUs as pcap records Wireshark reads as SMPP over TCP (sans-IO: bytes in, bytes out).

The server sees PDUs, not packets, so the framing is synthesised: one Ethernet/IPv4 (or IPv6)
/TCP segment per PDU, with the real peer address and port and the server's listen address and
port. Each connection starts with a SYN, SYN-ACK, ACK handshake and ends with a FIN from each
side, and every segment carries the sequence and acknowledgement numbers a real stack would
(RFC 793 §3.3), so Wireshark's TCP analysis finds nothing to flag and reassembles nothing.

`PcapWriter` keeps one `TcpFlow` per connection and buffers the records; the caller takes
them with `data_to_send()` and writes them where it likes (ussd/smpp/capture.py writes files).
`restart()` begins a new file (rotation, a capture switched on mid-connection): the file
header, then a handshake for each open connection whose numbers continue where they are.

File format: the classic libpcap format, microsecond timestamps, LINKTYPE_ETHERNET
(https://www.tcpdump.org/manpages/pcap-savefile.5.html).
"""

from __future__ import annotations

import ipaddress
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from ussd.ss import mask_passwords

__all__ = [
    "HEADER",
    "MAX_SEGMENT",
    "PcapWriter",
    "PduFramer",
    "TcpFlow",
    "checksum",
    "record",
    "redact",
]

# pcap-savefile(5): magic, version 2.4, thiszone 0, sigfigs 0, snaplen, LINKTYPE_ETHERNET (1).
SNAPLEN = 262_144
HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, SNAPLEN, 1)
_RECORD = struct.Struct("<IIII")  # ts_sec, ts_usec, incl_len, orig_len

# Locally administered MACs (IEEE 802 "U/L" bit set): no real vendor is implied.
SERVER_MAC = bytes.fromhex("020000000001")
CLIENT_MAC = bytes.fromhex("020000000002")

FIN, SYN, PSH, ACK = 0x01, 0x02, 0x08, 0x10
WINDOW = 65_535  # no window scaling: the SYNs carry no options
# A PDU past this is cut into several segments: an IPv4 total length is 16 bits (RFC 791).
MAX_SEGMENT = 65_000
# A segment that would take the unacknowledged bytes past this is preceded by a bare ACK from
# the other side, so Wireshark never sees a full window (a segment from the other side
# acknowledges everything before it anyway). MAX_SEGMENT alone stays under WINDOW.
_ACK_AFTER = WINDOW // 2

_ETH = struct.Struct("!6s6sH")
_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_IPV6 = struct.Struct("!IHBB16s16s")
_TCP = struct.Struct("!HHIIBBHHH")
_ETHERTYPE_IPV4, _ETHERTYPE_IPV6 = 0x0800, 0x86DD
_TCP_PROTO = 6
_MOD32 = 1 << 32
_MIN_PDU = 16  # the SMPP 3.4 §3.2 header
_BINDS = frozenset((0x00000001, 0x00000002, 0x00000009))  # bind_receiver/transmitter/transceiver
_SUBMIT_SM = 0x00000004
_MESSAGE_PAYLOAD = 0x0424  # SMPP 3.4 §5.3.2.32
_UCS2 = 0x08

Secret = Callable[[str], bool]  # source_addr -> its dialog shows a password prompt


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071): one's complement of the one's complement sum."""
    if len(data) % 2:
        data += b"\0"
    # 2**16 ≡ 1 (mod 0xFFFF), so the end-around-carry sum of the 16-bit words is the whole
    # buffer as one big-endian integer mod 0xFFFF, with 0xFFFF (not 0) for a non-zero multiple.
    number = int.from_bytes(data, "big")
    total = number % 0xFFFF
    if total == 0 and number:
        total = 0xFFFF
    return ~total & 0xFFFF


def record(now: float, frame: bytes) -> bytes:
    """One pcap record: the header (timestamp `now`, seconds since the epoch) and the frame."""
    micros = max(0, min(round(now * 1_000_000), (_MOD32 - 1) * 1_000_000))
    seconds, micros = divmod(micros, 1_000_000)
    return _RECORD.pack(seconds, micros, len(frame), len(frame)) + frame


def _address(host: str) -> bytes:
    """Packed IPv4 (4 octets) or IPv6 (16); an IPv4-mapped IPv6 address counts as IPv4."""
    ip = ipaddress.ip_address(host.split("%", 1)[0])  # drop an IPv6 zone id
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.packed


@dataclass(slots=True)
class _End:
    """One end of a connection: where it is, its next sequence number, bytes not yet ACKed."""

    address: bytes
    port: int
    mac: bytes
    seq: int  # the next sequence number this end sends
    unacked: int = 0  # its bytes the other end has not acknowledged yet
    ip_id: int = 0


def redact(pdu: bytes, secret: Secret | None = None) -> bytes:
    """`pdu` with its passwords starred out, at the same length (framing and decoding hold).

    A bind's `password` (SMPP 3.4 §4.1.1), the text of a `submit_sm` whose `source_addr`
    has a dialog showing a password prompt (`secret`, docs/operations.md), and the barring
    PINs in a dialled `*33*PIN#` or `**03*330*OLD*NEW*NEW#` (docs/network.md), as the
    recorder masks them (ussd.ss.mask_passwords).
    """
    if len(pdu) < _MIN_PDU:
        return pdu
    command_id = int.from_bytes(pdu[4:8], "big")
    if command_id in _BINDS:
        end = pdu.find(b"\0", _MIN_PDU)  # system_id
        if end < 0:
            return pdu[:_MIN_PDU] + b"*" * (len(pdu) - _MIN_PDU)
        stop = pdu.find(b"\0", end + 1)
        stop = len(pdu) if stop < 0 else stop
        return pdu[: end + 1] + b"*" * (stop - end - 1) + pdu[stop:]
    if command_id == _SUBMIT_SM:
        return _redact_submit(pdu, secret)
    return pdu


def _stars(text: str) -> str:
    return "*" * len(text)


def _redact_pins(data: bytes, data_coding: int) -> bytes:
    """A dial string's barring PINs starred at the same length; any other text unchanged."""
    codec = "utf-16-be" if data_coding == _UCS2 else "latin-1"  # digits, * and # are ASCII
    try:
        text = data.decode(codec)
    except UnicodeDecodeError:
        return data
    masked = mask_passwords(text, _stars)
    return data if masked == text else masked.encode(codec)


def _redact_submit(pdu: bytes, secret: Secret | None) -> bytes:
    # SMPP 3.4 §4.4.1: the mandatory fields up to short_message.
    try:
        pos = pdu.index(b"\0", _MIN_PDU) + 1 + 2  # service_type, source_addr_ton/npi
        end = pdu.index(b"\0", pos)
        prompted = secret is not None and secret(pdu[pos:end].decode("latin-1"))
        pos = pdu.index(b"\0", end + 1 + 2) + 1 + 3  # destination_addr; esm_class .. priority
        pos = pdu.index(b"\0", pos) + 1  # schedule_delivery_time
        pos = pdu.index(b"\0", pos) + 1  # validity_period
        data_coding = pdu[pos + 2]  # after registered_delivery, replace_if_present_flag
        length = pdu[pos + 4]  # after sm_default_msg_id
    except (ValueError, IndexError):
        return pdu  # malformed: refused before any dialog sees it
    star = b"\0*" if data_coding == _UCS2 else b"*"
    out = bytearray(pdu)

    def mask(start: int, stop: int) -> None:
        stop = min(stop, len(out))
        if stop <= start:
            return
        if prompted:
            out[start:stop] = (star * (stop - start))[: stop - start]
        else:
            out[start:stop] = _redact_pins(bytes(out[start:stop]), data_coding)

    pos += 5
    mask(pos, pos + length)
    pos += length
    while pos + 4 <= len(out):  # the text may come as message_payload instead
        tag, size = struct.unpack_from("!HH", out, pos)
        if tag == _MESSAGE_PAYLOAD:
            mask(pos + 4, pos + 4 + size)
        pos += 4 + size
    return bytes(out)


class TcpFlow:
    """One captured connection: every method returns pcap records, in order."""

    def __init__(
        self,
        client: tuple[str, int],
        server: tuple[str, int],
        isn: tuple[int, int] | None = None,
    ) -> None:
        caddr, saddr = _address(client[0]), _address(server[0])
        if len(caddr) != len(saddr):  # a dual-stack socket shows both as IPv6, or both as IPv4
            raise ValueError(f"client {client[0]} and server {server[0]} differ in IP version")
        if isn is None:
            # Deterministic, different per connection: the same inputs give the same file.
            key = f"{client[0]}:{client[1]}>{server[0]}:{server[1]}".encode()
            isn = (zlib.crc32(key), zlib.crc32(key[::-1]))
        # `seq` is the number after the SYN's: the SYN itself takes one (RFC 793 §3.3).
        self.client = _End(caddr, client[1], CLIENT_MAC, (isn[0] + 1) % _MOD32)
        self.server = _End(saddr, server[1], SERVER_MAC, (isn[1] + 1) % _MOD32)
        self.closed = False

    def handshake(self, now: float) -> bytes:
        """SYN, SYN-ACK, ACK whose numbers lead to where the flow is now."""
        c, s = self.client, self.server
        c.unacked = s.unacked = 0
        return (
            self._frame(now, c, s, (c.seq - 1) % _MOD32, 0, SYN)
            + self._frame(now, s, c, (s.seq - 1) % _MOD32, c.seq, SYN | ACK)
            + self._frame(now, c, s, c.seq, s.seq, ACK)
        )

    def segment(self, from_client: bool, payload: bytes, now: float) -> bytes:
        """`payload` sent by the client (`from_client`) or the server, as PSH-ACK segments."""
        if self.closed or not payload:
            return b""
        src, dst = (self.client, self.server) if from_client else (self.server, self.client)
        out = bytearray()
        for start in range(0, len(payload), MAX_SEGMENT):
            chunk = payload[start : start + MAX_SEGMENT]
            if src.unacked and src.unacked + len(chunk) > _ACK_AFTER:
                out += self._frame(now, dst, src, dst.seq, src.seq, ACK)
                src.unacked = 0
            out += self._frame(now, src, dst, src.seq, dst.seq, PSH | ACK, chunk)
            dst.unacked = 0  # this segment's ACK field covers all of dst's bytes
            src.seq = (src.seq + len(chunk)) % _MOD32
            src.unacked += len(chunk)
        return bytes(out)

    def close(self, now: float, by_client: bool = False) -> bytes:
        """FIN-ACK from the end that closed, FIN-ACK back, the last ACK (RFC 793 §3.5)."""
        if self.closed:
            return b""
        self.closed = True
        a, b = (self.client, self.server) if by_client else (self.server, self.client)
        out = self._frame(now, a, b, a.seq, b.seq, FIN | ACK)
        a.seq = (a.seq + 1) % _MOD32
        out += self._frame(now, b, a, b.seq, a.seq, FIN | ACK)
        b.seq = (b.seq + 1) % _MOD32
        return out + self._frame(now, a, b, a.seq, b.seq, ACK)

    @staticmethod
    def _frame(
        now: float, src: _End, dst: _End, seq: int, ack: int, flags: int, payload: bytes = b""
    ) -> bytes:
        tcp_length = _TCP.size + len(payload)
        tcp = bytearray(
            _TCP.pack(src.port, dst.port, seq, ack, _TCP.size // 4 << 4, flags, WINDOW, 0, 0)
        )
        tcp += payload
        if len(src.address) == 4:
            pseudo = src.address + dst.address + struct.pack("!BBH", 0, _TCP_PROTO, tcp_length)
            struct.pack_into("!H", tcp, 16, checksum(pseudo + tcp))
            ip = bytearray(
                _IPV4.pack(
                    0x45,  # version 4, 5 words of header
                    0,
                    _IPV4.size + tcp_length,
                    src.ip_id,
                    0x4000,  # don't fragment
                    64,
                    _TCP_PROTO,
                    0,
                    src.address,
                    dst.address,
                )
            )
            struct.pack_into("!H", ip, 10, checksum(bytes(ip)))
            src.ip_id = (src.ip_id + 1) & 0xFFFF
            ethertype = _ETHERTYPE_IPV4
        else:
            pseudo = src.address + dst.address + struct.pack("!II", tcp_length, _TCP_PROTO)
            struct.pack_into("!H", tcp, 16, checksum(pseudo + tcp))
            ip = bytearray(
                _IPV6.pack(6 << 28, tcp_length, _TCP_PROTO, 64, src.address, dst.address)
            )
            ethertype = _ETHERTYPE_IPV6
        return record(now, _ETH.pack(dst.mac, src.mac, ethertype) + ip + tcp)


class PduFramer:
    """Cuts one direction's byte stream at PDU boundaries (command_length, SMPP 3.4 §3.2).

    Holds at most one unfinished PDU. A length outside 16..max_pdu_size cannot be framed (the
    connection is about to refuse it), so from then on bytes pass through as they come.
    """

    def __init__(self, max_pdu_size: int = 64 * 1024, pending: bytes = b"") -> None:
        self.max_pdu_size = max_pdu_size
        self._buf = bytearray(pending)
        self._raw = False

    @property
    def pending(self) -> int:
        """Octets of a PDU begun and not finished."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        """The whole PDUs (or unframeable bytes) `data` completes, in order."""
        if self._raw:
            return [data] if data else []
        buf = self._buf
        if not buf and len(data) >= 4:
            # The common case: whole PDUs in one read, no copy into the buffer.
            out: list[bytes] = []
            pos, end = 0, len(data)
            while end - pos >= 4:
                length = int.from_bytes(data[pos : pos + 4], "big")
                if length < _MIN_PDU or length > self.max_pdu_size:
                    self._raw = True
                    out.append(data[pos:])
                    return out
                if end - pos < length:
                    break
                out.append(data[pos : pos + length])
                pos += length
            buf += data[pos:]
            return out
        buf += data
        out = []
        while len(buf) >= 4:
            length = int.from_bytes(buf[:4], "big")
            if length < _MIN_PDU or length > self.max_pdu_size:
                self._raw = True
                out.append(bytes(buf))
                buf.clear()
                break
            if len(buf) < length:
                break
            out.append(bytes(buf[:length]))
            del buf[:length]
        return out

    def rest(self) -> bytes:
        """What is left unframed (at the end of a connection); the framer is then empty."""
        rest = bytes(self._buf)
        self._buf.clear()
        return rest


class _Connection:
    __slots__ = ("flow", "incoming", "outgoing")

    def __init__(self, flow: TcpFlow, max_pdu_size: int, pending: bytes) -> None:
        self.flow = flow
        self.incoming = PduFramer(max_pdu_size, pending)
        self.outgoing = PduFramer(max_pdu_size)


class PcapWriter:
    """The records of one pcap file over any number of connections, keyed by the caller."""

    def __init__(self, max_pdu_size: int = 64 * 1024, secret: Secret | None = None) -> None:
        self.max_pdu_size = max_pdu_size
        self.secret = secret  # starred replies to password prompts (see redact())
        self._connections: dict[int, _Connection] = {}
        self._out = bytearray(HEADER)
        self.pdus = 0  # PDUs written, both directions

    def __contains__(self, key: int) -> bool:
        return key in self._connections

    def open(
        self,
        key: int,
        client: tuple[str, int],
        server: tuple[str, int],
        now: float,
        *,
        pending: bytes = b"",
        isn: tuple[int, int] | None = None,
    ) -> None:
        """A connection begins (or starts being captured): its handshake.

        `pending` is what the peer already sent of a PDU not yet complete (a capture switched
        on mid-connection), so that PDU is written whole once its end arrives.
        """
        if key in self._connections:
            raise ValueError(f"connection {key} is already open")
        flow = TcpFlow(client, server, isn)
        self._connections[key] = _Connection(flow, self.max_pdu_size, pending)
        self._out += flow.handshake(now)

    def received(self, key: int, data: bytes, now: float) -> None:
        """Bytes from the peer: one segment per whole PDU, its passwords starred out."""
        conn = self._connections.get(key)
        if conn is not None:
            for pdu in conn.incoming.feed(data):
                self._out += conn.flow.segment(True, redact(pdu, self.secret), now)
                self.pdus += 1

    def sent(self, key: int, data: bytes, now: float) -> None:
        """Bytes to the peer: one segment per whole PDU."""
        conn = self._connections.get(key)
        if conn is not None:
            for pdu in conn.outgoing.feed(data):
                self._out += conn.flow.segment(False, pdu, now)
                self.pdus += 1

    def close(self, key: int, now: float, by_client: bool = False) -> None:
        """The connection ended: what was left of a PDU, then the FINs. Unknown keys: nothing."""
        conn = self._connections.pop(key, None)
        if conn is None:
            return
        flow = conn.flow
        self._out += flow.segment(True, redact(conn.incoming.rest(), self.secret), now)
        self._out += flow.segment(False, conn.outgoing.rest(), now)
        self._out += flow.close(now, by_client)

    def restart(self, now: float) -> None:
        """A new file: drop what was not taken, then the header and every open flow's handshake."""
        self._out = bytearray(HEADER)
        for conn in self._connections.values():
            self._out += conn.flow.handshake(now)

    @property
    def buffered(self) -> int:
        """Octets waiting for data_to_send()."""
        return len(self._out)

    def data_to_send(self) -> bytes:
        """Every record made since the last call (the file header first, the first time)."""
        out, self._out = bytes(self._out), bytearray()
        return out
