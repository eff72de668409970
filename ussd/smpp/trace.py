"""The PDU trace of a bind, for the operations console (docs/operations.md "Console").

A trace keeps the last `LIMIT` PDUs of one connection in memory, cut at `command_length`
(SMPP 3.4 §3.2) by the capture's own framer and with passwords starred out as captures star
them (ussd/smpp/pcap.py `redact`): the starring is decided when the bytes arrive, because
whether a `submit_sm` answers a password prompt depends on the dialog at that moment.
Decoding waits until someone reads the trace, so tracing costs a frame cut and a deque append
per PDU, and only for the binds being traced (the console asks for one at a time).

A connection is traced from the first request for its trace until it closes; its trace then
stays readable until `MAX_TRACES` newer ones push it out, so a test's bind can be read after
the test has unbound.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterator
from typing import Any

from ussd.smpp.constants import UssdServiceOp, command_name, status_name
from ussd.smpp.pcap import PduFramer, Secret, redact
from ussd.smpp.pdu import (
    BindRequest,
    BindResponse,
    DataSm,
    DecodeError,
    MessageIdResponse,
    Pdu,
    ShortMessagePdu,
    TextCodingError,
    UnknownPdu,
    decode_pdu,
    decode_text,
)

__all__ = ["KEEP_OCTETS", "LIMIT", "MAX_TRACES", "Trace", "Traces", "describe"]

LIMIT = 256  # PDUs kept per bind
MAX_TRACES = 8  # traces kept at once, open or closed
KEEP_OCTETS = 4096  # a longer PDU (a long SMS) keeps its header only
_HEADER = 16

Entry = tuple[int, float, bool, int, bytes]  # number, time, incoming, length, octets kept


class Trace:
    """One connection's last PDUs, both directions, in the order they crossed the socket."""

    def __init__(self, key: int, secret: Secret | None, pending: bytes = b"") -> None:
        self.key = key
        self.secret = secret
        self.open = True
        self.system_id: str | None = None  # as last seen while open (kept after the close)
        self.peer = ""
        self.count = 0  # PDUs seen since tracing began (numbers the entries)
        self.entries: deque[Entry] = deque(maxlen=LIMIT)
        self._in = PduFramer(pending=pending)
        self._out = PduFramer()

    @property
    def pending(self) -> int:
        """Octets of PDUs begun and not finished, both directions."""
        return self._in.pending + self._out.pending

    def received(self, data: bytes, now: float) -> None:
        for pdu in self._in.feed(data):
            self._keep(now, True, redact(pdu, self.secret))

    def sent(self, data: bytes, now: float) -> None:
        for pdu in self._out.feed(data):
            self._keep(now, False, pdu)

    def _keep(self, now: float, incoming: bool, pdu: bytes) -> None:
        self.count += 1
        kept = pdu if len(pdu) <= KEEP_OCTETS else pdu[:_HEADER]
        self.entries.append((self.count, now, incoming, len(pdu), kept))

    def after(self, number: int) -> Iterator[Entry]:
        """The entries numbered above `number`, oldest first."""
        return (e for e in self.entries if e[0] > number)


class Traces:
    """The traced connections of one SMPP server (keyed as the server keys its binds)."""

    def __init__(self, secret: Secret | None = None) -> None:
        self.secret = secret
        self._traces: OrderedDict[int, Trace] = OrderedDict()
        self.live = 0  # open connections being traced: the server's hooks skip the calls at 0

    def __contains__(self, key: int) -> bool:
        return key in self._traces

    def get(self, key: int) -> Trace | None:
        return self._traces.get(key)

    def start(self, key: int, pending: bytes = b"") -> Trace:
        """Trace an open connection (no-op when it is traced already); the oldest goes first."""
        trace = self._traces.get(key)
        if trace is not None:
            return trace
        while len(self._traces) >= MAX_TRACES:
            _, old = self._traces.popitem(last=False)
            self.live -= old.open
        trace = self._traces[key] = Trace(key, self.secret, pending)
        self.live += 1
        return trace

    def received(self, key: int, data: bytes, now: float) -> None:
        trace = self._traces.get(key)
        if trace is not None and trace.open:
            trace.received(data, now)

    def sent(self, key: int, data: bytes, now: float) -> None:
        trace = self._traces.get(key)
        if trace is not None and trace.open:
            trace.sent(data, now)

    def closed(self, key: int) -> None:
        """The connection ended: its trace stops growing and stays readable."""
        trace = self._traces.get(key)
        if trace is not None and trace.open:
            trace.open = False
            self.live -= 1

    def closed_keys(self) -> list[int]:
        """Traced connections that have closed, oldest first."""
        return [key for key, trace in self._traces.items() if not trace.open]


def _op_name(value: int) -> str:
    try:
        return UssdServiceOp(value).name.lower()
    except ValueError:
        return f"0x{value:02X}"


def describe(entry: Entry) -> dict[str, Any]:
    """One trace entry as the console shows it: the header and the fields that tell a USSD
    dialog apart (SMPP 3.4 §4; ussd_service_op §5.3.2.44, its_session_info §5.3.2.43)."""
    number, at, incoming, length, octets = entry
    out: dict[str, Any] = {"n": number, "at": at, "dir": "in" if incoming else "out"}
    out["length"] = length
    if len(octets) < _HEADER:
        out.update(command="(unframed)", error=f"{len(octets)} octets without a PDU header")
        return out
    command_id = int.from_bytes(octets[4:8], "big")
    out["command"] = command_name(command_id)
    out["status"] = status_name(int.from_bytes(octets[8:12], "big"))
    out["sequence"] = int.from_bytes(octets[12:16], "big")
    if len(octets) < length:
        out["error"] = f"body not kept ({length} octets; the trace keeps {KEEP_OCTETS})"
        return out
    try:
        pdu = decode_pdu(octets)
    except DecodeError as exc:
        out["error"] = str(exc)
        return out
    out.update(_fields(pdu))
    return out


def _fields(pdu: Pdu) -> dict[str, Any]:
    if isinstance(pdu, BindRequest):
        return {
            "system_id": pdu.system_id,
            "password": pdu.password,  # starred when the bytes arrived
            "system_type": pdu.system_type,
            "interface_version": f"0x{pdu.interface_version:02X}",
        }
    if isinstance(pdu, BindResponse):
        return {"system_id": pdu.system_id}
    if isinstance(pdu, ShortMessagePdu | DataSm):
        fields: dict[str, Any] = {
            "service_type": pdu.service_type,
            "source_addr": pdu.source_addr,
            "destination_addr": pdu.destination_addr,
            "data_coding": f"0x{pdu.data_coding:02X}",
        }
        op = pdu.ussd_service_op
        if op is not None:
            fields["ussd_service_op"] = {"value": op, "name": _op_name(op)}
        info = pdu.its_session_info
        if info is not None:
            fields["its_session_info"] = {
                "session_number": info.session_number,
                "sequence_number": info.sequence_number,
                "end_of_session": info.end_of_session,
            }
        data = pdu.message if isinstance(pdu, ShortMessagePdu) else pdu.message_payload or b""
        try:
            fields["text"] = decode_text(data, pdu.data_coding)
        except TextCodingError:
            fields["text_hex"] = data.hex()
        return fields
    if isinstance(pdu, MessageIdResponse):
        return {"message_id": pdu.message_id} if pdu.message_id else {}
    if isinstance(pdu, UnknownPdu):
        return {"body_hex": pdu.body[:64].hex()}
    return {}
