"""A trivial SMSC to measure the load generator's own ceiling (docs/performance.md).

Binds are accepted whatever the credentials; every submit_sm is answered at once with a
submit_sm_resp, and a USSD one (ussd_service_op 1 or 18, SMPP 3.4 §5.3.2.44) also gets a canned
deliver_sm op 17 (PSSR response: the dialog ends) with its its_session_info echoed, sequence
+1 and the end bit set (§5.3.2.43). enquire_link and unbind are answered; everything else
(deliver_sm_resp included) is read and dropped. Hand-framed, no codec: it must cost less than
the generator it measures.

Run: python -m bench.peer.null_smsc [--port 0]   (prints `listening HOST:PORT`)
"""

from __future__ import annotations

import asyncio
import socket
import struct

from bench.peer import _serve

_HEADER = struct.Struct("!IIII")
_TLV = struct.Struct("!HH")
_BIND_IDS = (0x00000001, 0x00000002, 0x00000009)  # bind_receiver, _transmitter, _transceiver
_SUBMIT_SM = 0x00000004
_DELIVER_SM = 0x00000005
_UNBIND = 0x00000006
_ENQUIRE_LINK = 0x00000015
_RESP = 0x80000000
_OP_TAG = 0x0501
_SESSION_TAG = 0x1383
_SCREEN = "OK".encode("ascii")  # GSM 7-bit unpacked, data_coding 0


def _deliver_sm(seq: int, msisdn: bytes, session: bytes) -> bytes:
    body = b"".join(
        (
            b"USSD\x00",
            b"\x00\x00",  # source TON, NPI
            b"100\x00",
            b"\x01\x01",  # destination TON, NPI
            msisdn,
            b"\x00",
            b"\x00\x00\x00",  # esm_class, protocol_id, priority_flag
            b"\x00\x00",  # schedule_delivery_time, validity_period
            b"\x00\x00\x00\x00",  # registered_delivery, replace, data_coding, sm_default_msg_id
            bytes((len(_SCREEN),)),
            _SCREEN,
            _TLV.pack(_OP_TAG, 1),
            b"\x11",  # 17: PSSR response
            _TLV.pack(_SESSION_TAG, 2),
            session,
        )
    )
    return _HEADER.pack(16 + len(body), _DELIVER_SM, 0, seq) + body


class NullSmsc(asyncio.Protocol):
    """One ESME connection."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.seq = 0
        self.message_id = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        n = len(buf)
        pos = 0
        out: list[bytes] = []
        close = False
        while n - pos >= 16:
            length, cid, _status, seq = _HEADER.unpack_from(buf, pos)
            if length < 16:
                close = True
                break
            if n - pos < length:
                break
            end = pos + length
            if cid == _SUBMIT_SM:
                self.message_id += 1
                mid = b"%d\x00" % self.message_id
                out.append(_HEADER.pack(16 + len(mid), _SUBMIT_SM | _RESP, 0, seq) + mid)
                screen = self._ussd(buf, pos, end)
                if screen is not None:
                    out.append(screen)
            elif cid in _BIND_IDS:
                out.append(_HEADER.pack(21, cid | _RESP, 0, seq) + b"null\x00")
            elif cid == _ENQUIRE_LINK:
                out.append(_HEADER.pack(16, _ENQUIRE_LINK | _RESP, 0, seq))
            elif cid == _UNBIND:
                out.append(_HEADER.pack(16, _UNBIND | _RESP, 0, seq))
                close = True
            pos = end
        del buf[:pos]
        if self.transport is not None:
            if out:
                self.transport.write(b"".join(out))
            if close:
                self.transport.close()

    def _ussd(self, buf: bytearray, pos: int, end: int) -> bytes | None:
        """The canned end screen for a USSD submit_sm (op 1 or 18), else None."""
        try:
            p = buf.index(0, pos + 16, end) + 3  # service_type, source TON/NPI
            q = buf.index(0, p, end)
            msisdn = bytes(buf[p:q])
            p = buf.index(0, q + 3, end) + 4  # destination_addr; esm_class .. priority
            p = buf.index(0, p, end) + 1  # schedule_delivery_time
            p = buf.index(0, p, end) + 6  # validity_period; registered_delivery .. sm_length
            p += buf[p - 1]
            op = -1
            session = b"\x01\x00"
            while p + 4 <= end:
                tag, ln = _TLV.unpack_from(buf, p)
                p += 4
                if tag == _OP_TAG and ln == 1:
                    op = buf[p]
                elif tag == _SESSION_TAG and ln == 2:
                    session = bytes((buf[p], ((buf[p + 1] >> 1) + 1) % 128 << 1 | 1))
                p += ln
        except (ValueError, IndexError):
            return None
        if op not in (1, 18):
            return None
        self.seq = self.seq % 0x7FFFFFFF + 1
        return _deliver_sm(self.seq, msisdn, session)


async def start(host: str = "127.0.0.1", port: int = 0) -> asyncio.Server:
    """Listen; the caller closes the returned server."""
    return await _serve.start(NullSmsc, host, port)


if __name__ == "__main__":
    _serve.main(NullSmsc, "python -m bench.peer.null_smsc", __doc__)
