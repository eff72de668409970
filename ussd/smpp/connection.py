"""Sans-IO SMPP 3.4 connection: bytes in, events out; PDUs in, bytes out. No I/O, no clock.

Shaped like h11 (receive_data / next_event / send, all state rules in the tables below) and
aioquic (the caller hands in `now`; get_timer() says when handle_timer() has work; a bad peer
never raises at the caller, it yields an event with the precise SMPP status).

Flow control lives here too (aioquic's pattern): `send_request(pdu, context, now)` puts a
request on the wire while the window has room and queues it (bounded, urgent ones first)
while it is full; every byte to write collects in one buffer that `data_to_send()` drains, so
an adapter has ONE transmit. The context comes back exactly once: on ResponseReceived, on
RequestTimedOut, or on RequestFailed (closed, or the state no longer allows a queued request).
`send()` (bytes back at once) is the older, unbuffered form of the same thing.

Caller errors (sending a PDU the bind state forbids, a full window or queue, a bad field)
raise LocalProtocolError; peer errors come back as events:

* a decoded request the state allows      -> the PDU itself (SubmitSm, BindTransceiver, ...)
* a response to one of our requests       -> ResponseReceived(request, response, context)
* a request of ours that never goes out / never gets an answer because the connection
  closed or the state changed             -> RequestFailed(request, context, reason)
* a request we must refuse                -> PduRejected (send its .response, carry on)
* something to drop (stray response, ...) -> PduIgnored
* framing broken beyond repair            -> RemoteProtocolError, then ConnectionClosed
* end of stream / unbind finished         -> ConnectionClosed
* timers (handle_timer)                   -> RequestTimedOut, EnquireLinkDue, PeerTimedOut

Deadlines on the peer (all optional): `bind_timeout` for a session that never binds,
`pdu_timeout` for a PDU begun and never finished (its octets dribbled in one at a time would
otherwise hold the connection for good), `enquire_link_interval` + `response_timeout` for a
peer gone silent.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass
from enum import Enum
from typing import Literal

from ussd.smpp.constants import (
    HEADER_LENGTH,
    KNOWN_COMMAND_IDS,
    MAX_SEQUENCE,
    MIN_SEQUENCE,
    CommandId,
    CommandStatus,
    command_name,
    is_response,
    status_name,
)
from ussd.smpp.pdu import (
    DecodeError,
    EnquireLink,
    GenericNack,
    LocalProtocolError,
    Pdu,
    UnknownPdu,
    decode_pdu,
    encode_pdu,
    make_response,
    with_sequence,
)

__all__ = [
    "BIND_STATE_TABLE",
    "NEED_DATA",
    "ConnectionClosed",
    "EnquireLinkDue",
    "Event",
    "LocalProtocolError",
    "NeedData",
    "PduIgnored",
    "PduRejected",
    "PeerTimedOut",
    "QueueFull",
    "RemoteProtocolError",
    "RequestFailed",
    "RequestTimedOut",
    "ResponseReceived",
    "Side",
    "SmppConnection",
    "State",
    "TimerEvent",
]


# ---------------------------------------------------------------------------------------------
# The rules: SMPP 3.4 §2.2 (session states), §2.3 (which PDU in which state), §2.4 (who sends)


class State(Enum):
    """SMPP 3.4 §2.2 session states, plus UNBOUND: unbind sent or received, no *_resp yet."""

    OPEN = "open"
    BOUND_TX = "bound_tx"
    BOUND_RX = "bound_rx"
    BOUND_TRX = "bound_trx"
    UNBOUND = "unbound"
    CLOSED = "closed"

    # Enum.__hash__ is Python code (it hashes the name), and the state keys a dict lookup
    # several times per PDU (may_send, TRANSITIONS): members are singletons compared by
    # identity, so the identity hash is as good and stays in C.
    __hash__ = object.__hash__


class Side(Enum):
    """Who issues a request (SMPP 3.4 §2.4)."""

    ESME = "esme"
    SMSC = "smsc"


C = CommandId
S = State
_TX_REQUESTS = frozenset(
    {C.SUBMIT_SM, C.SUBMIT_MULTI, C.DATA_SM, C.QUERY_SM, C.CANCEL_SM, C.REPLACE_SM}
)
_SMSC_TO_RX = frozenset({C.DELIVER_SM, C.DATA_SM, C.ALERT_NOTIFICATION})
_LINK = frozenset({C.ENQUIRE_LINK, C.UNBIND})

# Requests each side may issue in each state (SMPP 3.4 §2.3 table 2-1). Responses are not
# listed: they are valid in any state as long as they answer an outstanding request, which is
# how a refused request still gets its *_resp.
#
# enquire_link is also allowed in OPEN: 3.4 lists it for bound states only, but SMPP 5.0 §2.4
# allows it before bind, ESMEs do probe early, and answering breaks no 3.4 peer.
# unbind is allowed in UNBOUND so that both sides unbinding at once still completes.
BIND_STATE_TABLE: dict[Side, dict[State, frozenset[int]]] = {
    Side.ESME: {
        S.OPEN: frozenset(
            {C.BIND_TRANSMITTER, C.BIND_RECEIVER, C.BIND_TRANSCEIVER, C.ENQUIRE_LINK}
        ),
        S.BOUND_TX: _TX_REQUESTS | _LINK,
        S.BOUND_RX: _LINK,
        S.BOUND_TRX: _TX_REQUESTS | _LINK,
        S.UNBOUND: frozenset({C.UNBIND}),
        S.CLOSED: frozenset(),
    },
    Side.SMSC: {
        S.OPEN: frozenset({C.OUTBIND, C.ENQUIRE_LINK}),
        S.BOUND_TX: _LINK,
        S.BOUND_RX: _SMSC_TO_RX | _LINK,
        S.BOUND_TRX: _SMSC_TO_RX | _LINK,
        S.UNBOUND: frozenset({C.UNBIND}),
        S.CLOSED: frozenset(),
    },
}

_BINDS = (C.BIND_TRANSMITTER, C.BIND_RECEIVER, C.BIND_TRANSCEIVER)
_BOUND = (S.BOUND_TX, S.BOUND_RX, S.BOUND_TRX)

# Status for a request the state forbids: ESME_RINVBNDSTS, except a second bind, which
# SMPP 3.4 §5.1.3 answers with ESME_RALYBND.
REFUSAL_STATUS: dict[tuple[State, int], CommandStatus] = {
    (state, bind): CommandStatus.ESME_RALYBND for state in _BOUND for bind in _BINDS
}

# State changes, applied when a PDU passes (sent or received): a bind_*_resp with ESME_ROK
# binds (SMPP 3.4 §2.2), unbind starts the teardown, its response ends it.
TRANSITIONS: dict[tuple[State, int], State] = {
    (S.OPEN, C.BIND_TRANSMITTER_RESP): S.BOUND_TX,
    (S.OPEN, C.BIND_RECEIVER_RESP): S.BOUND_RX,
    (S.OPEN, C.BIND_TRANSCEIVER_RESP): S.BOUND_TRX,
    **{(state, C.UNBIND): S.UNBOUND for state in _BOUND},
    (S.UNBOUND, C.UNBIND_RESP): S.CLOSED,
}
_NEEDS_OK = frozenset({C.BIND_TRANSMITTER_RESP, C.BIND_RECEIVER_RESP, C.BIND_TRANSCEIVER_RESP})

# Requests that do not count against the outstanding window: link control must get through
# even when deliver_sm traffic has filled it.
_WINDOW_EXEMPT = frozenset({C.ENQUIRE_LINK, C.UNBIND})

del C, S


# ---------------------------------------------------------------------------------------------
# Events


@dataclass(frozen=True, slots=True)
class NeedData:
    """next_event(): nothing complete in the buffer; feed receive_data()."""


NEED_DATA = NeedData()


class QueueFull(LocalProtocolError):
    """send_request(): the window is full and max_queued requests already wait for it."""


@dataclass(frozen=True, slots=True)
class ResponseReceived:
    """The peer answered one of our requests (its *_resp or a generic_nack).

    `context` is what send_request() was given (None for send()).
    """

    request: Pdu
    response: Pdu
    context: object = None


@dataclass(frozen=True, slots=True)
class RequestFailed:
    """A send_request() request that will get no response: the connection closed while it was
    outstanding or queued, or it waited in the queue until the state forbade it (an unbind)."""

    request: Pdu
    context: object
    reason: str


@dataclass(frozen=True, slots=True)
class PduRejected:
    """The peer sent a request we refuse; send `response`, the connection goes on."""

    command_id: int
    sequence_number: int
    status: int
    reason: str
    response: Pdu
    pdu: Pdu | None = None  # the decoded request, when it decoded


@dataclass(frozen=True, slots=True)
class PduIgnored:
    """The peer sent something that gets no answer (a stray or malformed response)."""

    command_id: int
    sequence_number: int
    reason: str
    pdu: Pdu | None = None


@dataclass(frozen=True, slots=True)
class RemoteProtocolError:
    """Fatal: the byte stream cannot be framed. Write `response.encode()` if set, then close.

    send() refuses after this (the connection is closed), hence the direct encode. With
    `buffered=True` the response is in data_to_send() already.
    """

    status: int
    reason: str
    response: Pdu | None = None


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """Terminal: the stream ended, the unbind finished, or a fatal error happened.

    `unacknowledged` are our send() requests that never got a response (e.g. deliver_sm to
    retry); send_request() requests come back before it, one RequestFailed each.
    """

    reason: str
    unacknowledged: tuple[Pdu, ...] = ()


@dataclass(frozen=True, slots=True)
class RequestTimedOut:
    """One of our requests got no response within response_timeout; it left the window."""

    request: Pdu
    context: object = None


@dataclass(frozen=True, slots=True)
class EnquireLinkDue:
    """The peer was silent for enquire_link_interval; write `data` (already in the window).

    With `buffered=True` the bytes are in data_to_send() instead and `data` is empty.
    """

    request: Pdu
    data: bytes


@dataclass(frozen=True, slots=True)
class PeerTimedOut:
    """Fatal: an enquire_link went unanswered, no bind came in time, or a PDU never finished.

    Close the socket.
    """

    reason: str


Event = (
    Pdu
    | NeedData
    | ResponseReceived
    | PduRejected
    | PduIgnored
    | RemoteProtocolError
    | RequestFailed
    | ConnectionClosed
)
TimerEvent = RequestTimedOut | EnquireLinkDue | PeerTimedOut

_LENGTH = struct.Struct("!I")
_LENGTH_ID = struct.Struct("!II")  # command_length, command_id
_SUBMIT_SM = int(CommandId.SUBMIT_SM)
_COMPACT_AT = 1 << 16


class SmppConnection:
    """One SMPP 3.4 session, as the SMSC (`role="server"`) or as an ESME (`role="client"`)."""

    def __init__(
        self,
        role: Literal["server", "client"] = "server",
        *,
        max_pdu_size: int = 64 * 1024,
        window: int = 100,
        response_timeout: float = 30.0,
        enquire_link_interval: float | None = 60.0,
        bind_timeout: float | None = None,
        pdu_timeout: float | None = None,
        max_queued: int = 10_000,
        buffered: bool = False,
        now: float | None = None,
    ) -> None:
        if role not in ("server", "client"):
            raise ValueError(f"role must be 'server' or 'client', not {role!r}")
        if max_pdu_size < HEADER_LENGTH or window < 1 or response_timeout <= 0 or max_queued < 0:
            raise ValueError(
                "max_pdu_size >= 16, window >= 1, response_timeout > 0 and max_queued >= 0"
            )
        self.role = role
        self.max_pdu_size = max_pdu_size
        self.window = window
        self.response_timeout = response_timeout
        self.enquire_link_interval = enquire_link_interval
        self.bind_timeout = bind_timeout
        self.pdu_timeout = pdu_timeout
        self.max_queued = max_queued
        # Every byte we produce goes to data_to_send(), the timer's enquire_link included.
        self.buffered = buffered
        us, peer = (Side.SMSC, Side.ESME) if role == "server" else (Side.ESME, Side.SMSC)
        self._we_may_send = BIND_STATE_TABLE[us]
        self._peer_may_send = BIND_STATE_TABLE[peer]
        self._state = State.OPEN
        self._bound_as: State | None = None
        self._buf = bytearray()
        self._pos = 0
        self._eof = False
        self._closed: ConnectionClosed | None = None
        self._next_seq = MIN_SEQUENCE
        # seq -> (request, deadline, context, tracked); insertion order is deadline order (one
        # fixed timeout). tracked: sent by send_request(), so its context must come back.
        self._outstanding: dict[int, tuple[Pdu, float, object, bool]] = {}
        self._windowed = 0  # outstanding requests that count against the window
        # send_request() requests waiting for the window: urgent ones (screens) go first.
        self._urgent: deque[tuple[Pdu, object]] = deque()
        self._bulk: deque[tuple[Pdu, object]] = deque()
        self._out: list[bytes] = []  # data_to_send()
        self._events: deque[Event] = deque()  # events made outside next_event(), pulled first
        self._probe_seq: int | None = None  # our enquire_link in flight
        self._started = now  # when the clock first became known (bind_timeout)
        self._last_rx = now  # last time the peer sent anything (idle probing)
        self._partial_since: float | None = None  # a PDU begun, not complete (pdu_timeout)
        # PDUs framed from the peer and PDUs we encoded (the console's per-bind rates).
        self.pdus_received = 0
        self.pdus_sent = 0

    # ---- state -----------------------------------------------------------------------------

    @property
    def state(self) -> State:
        """Current session state."""
        return self._state

    @property
    def bound_as(self) -> State | None:
        """The bound state this session reached (kept through unbind and close), or None."""
        return self._bound_as

    @property
    def outstanding(self) -> int:
        """Our requests awaiting a response."""
        return len(self._outstanding)

    @property
    def window_available(self) -> int:
        """How many more windowed requests (deliver_sm, ...) send() accepts now."""
        return self.window - self._windowed

    @property
    def queued(self) -> int:
        """send_request() requests waiting for room in the window."""
        return len(self._urgent) + len(self._bulk)

    @property
    def queued_urgent(self) -> int:
        """The urgent ones among them."""
        return len(self._urgent)

    @property
    def window_free(self) -> int:
        """Windowed requests send_request() would put on the wire at once (queued ones first)."""
        return self.window - self._windowed - len(self._urgent) - len(self._bulk)

    @property
    def pending_input(self) -> bytes:
        """Received octets of a PDU not yet complete (a capture begun mid-connection)."""
        return bytes(self._buf[self._pos :])

    def submit_sources(self) -> list[str]:
        """The source_addr of each complete submit_sm received and not handled yet.

        A look ahead for callers that prepare for a read's PDUs in one go (cluster mode asks
        Redis about all their numbers in one round trip, docs/cluster.md); it reads only the
        header and the first two C-Octet Strings of the body (SMPP 3.4 §4.4.1: service_type,
        two octets of TON and NPI, source_addr), never raises, and decides nothing: each PDU
        is still decoded and checked by next_event(). A malformed one ends the look ahead.
        """
        buf, pos, end = self._buf, self._pos, len(self._buf)
        found: list[str] = []
        while end - pos >= HEADER_LENGTH:
            length, command_id = _LENGTH_ID.unpack_from(buf, pos)
            if length < HEADER_LENGTH or length > self.max_pdu_size or end - pos < length:
                break
            if command_id == _SUBMIT_SM:
                stop = pos + length
                # service_type: at most 6 octets with its NUL; then TON and NPI.
                nul = buf.find(0, pos + HEADER_LENGTH, min(pos + HEADER_LENGTH + 6, stop))
                start = nul + 3
                # source_addr: at most 21 octets with its NUL.
                close = buf.find(0, start, min(start + 21, stop)) if nul >= 0 else -1
                if close < 0:
                    break
                found.append(buf[start:close].decode("latin-1"))
            pos += length
        return found

    def may_send(self, command_id: int) -> bool:
        """True when the current state lets us issue this request (e.g. deliver_sm)."""
        return command_id in self._we_may_send[self._state]

    def allocate_sequence(self) -> int:
        """A fresh sequence_number for a request we originate (SMPP 3.4 §3.2: 1..2^31-1)."""
        seq = self._next_seq
        while seq in self._outstanding:
            seq = MIN_SEQUENCE if seq >= MAX_SEQUENCE else seq + 1
        self._next_seq = MIN_SEQUENCE if seq >= MAX_SEQUENCE else seq + 1
        return seq

    # ---- input -----------------------------------------------------------------------------

    def receive_data(self, data: bytes, now: float) -> None:
        """Bytes from the peer; b"" means the peer closed its side."""
        if self._closed is not None or self._eof:
            return
        if not data:
            self._eof = True
            return
        self._buf += data
        self._touch(now)

    def next_event(self) -> Event:
        """The next event from buffered bytes, or NEED_DATA. Never raises for peer input."""
        if self._events:
            return self._events.popleft()
        if self._closed is not None:
            return self._closed
        if self._state is State.CLOSED:
            return self._closing("unbind completed")
        buf, pos = self._buf, self._pos
        avail = len(buf) - pos
        if avail < 4:
            if self._eof:
                if avail == 0:
                    return self._closing("peer closed the connection")
                return self._fatal(
                    CommandStatus.ESME_RINVCMDLEN,
                    f"peer closed the connection inside a PDU header ({avail} of 16 octets)",
                )
            return self._need_data(avail)
        (length,) = _LENGTH.unpack_from(buf, pos)
        if length < HEADER_LENGTH or length > self.max_pdu_size:
            seq = _LENGTH.unpack_from(buf, pos + 12)[0] if avail >= HEADER_LENGTH else 0
            return self._fatal(
                CommandStatus.ESME_RINVCMDLEN,
                f"command_length {length} outside {HEADER_LENGTH}..{self.max_pdu_size}",
                GenericNack(command_status=CommandStatus.ESME_RINVCMDLEN, sequence_number=seq),
            )
        if avail < length:
            if self._eof:
                return self._fatal(
                    CommandStatus.ESME_RINVCMDLEN,
                    f"peer closed the connection inside a PDU ({avail} of {length} octets)",
                )
            return self._need_data(avail)
        data = bytes(buf[pos : pos + length])
        pos += length
        if pos == len(buf):
            buf.clear()
            pos = 0
        elif pos >= _COMPACT_AT:
            del buf[:pos]
            pos = 0
        self._pos = pos
        self._partial_since = None
        self.pdus_received += 1
        return self._on_pdu(data)

    def _on_pdu(self, data: bytes) -> Event:
        try:
            pdu = decode_pdu(data)
        except DecodeError as exc:
            cid, seq = exc.command_id, exc.sequence_number
            if is_response(cid):
                # No answer to a response (SMPP 3.4 §2.9); the request will time out.
                return PduIgnored(cid, seq, f"malformed {command_name(cid)}: {exc}")
            allowed = cid in self._peer_may_send[self._state]
            status = exc.status if allowed else self._refusal_status(cid)
            reason = str(exc) if allowed else self._refusal_reason(cid)
            return PduRejected(cid, seq, status, reason, make_response(cid, seq, status))
        cid = pdu.command_id
        if cid & 0x80000000:
            return self._on_response(pdu)
        seq = pdu.sequence_number
        if cid not in KNOWN_COMMAND_IDS:
            status = CommandStatus.ESME_RINVCMDID
            reason = f"unknown command_id 0x{cid:08X}"
            return PduRejected(
                cid,
                seq,
                status,
                reason,
                GenericNack(command_status=status, sequence_number=seq),
                pdu,
            )
        if cid not in self._peer_may_send[self._state]:
            status = self._refusal_status(cid)
            return PduRejected(
                cid, seq, status, self._refusal_reason(cid), make_response(cid, seq, status), pdu
            )
        if isinstance(pdu, UnknownPdu):
            # query_sm, replace_sm, cancel_sm, submit_multi: valid 3.4, not simulated. Their
            # own *_resp with ESME_RINVCMDID tells the ESME the command is not available here.
            status = CommandStatus.ESME_RINVCMDID
            return PduRejected(
                cid,
                seq,
                status,
                f"{command_name(cid)} is not supported",
                make_response(cid, seq, status),
                pdu,
            )
        self._transition(cid, 0)
        return pdu

    def _on_response(self, pdu: Pdu) -> Event:
        cid, seq = pdu.command_id, pdu.sequence_number
        entry = self._outstanding.get(seq)
        if entry is None:
            return PduIgnored(cid, seq, f"{command_name(cid)} answers no outstanding request", pdu)
        request = entry[0]
        if cid != request.command_id | 0x80000000 and cid != CommandId.GENERIC_NACK:
            return PduIgnored(
                cid,
                seq,
                f"{command_name(cid)} does not answer {command_name(request.command_id)}",
                pdu,
            )
        self._forget(seq)
        self._transition(cid, pdu.command_status)
        if self._urgent or self._bulk:
            # A slot came free: the next queued request goes out, its deadline counted from
            # the last input (next_event() has no `now` of its own).
            self._release(self._last_rx if self._last_rx is not None else 0.0)
        return ResponseReceived(request, pdu, entry[2])

    # ---- output ----------------------------------------------------------------------------

    def send(self, pdu: Pdu, now: float | None = None) -> bytes:
        """Wire bytes for a PDU we send; requests need `now` (their response deadline).

        A request with sequence_number 0 gets one from allocate_sequence(); use
        allocate_sequence() yourself when you need the number before sending.
        """
        if self._closed is not None or self._state is State.CLOSED:
            raise LocalProtocolError(f"cannot send {command_name(pdu.command_id)}: closed")
        cid = pdu.command_id
        if cid & 0x80000000:
            data = encode_pdu(pdu)
            self._transition(cid, pdu.command_status)
            self.pdus_sent += 1
            return data
        if cid not in self._we_may_send[self._state]:
            raise LocalProtocolError(
                f"{command_name(cid)} may not be sent in state {self._state.name}"
                f" as the {'SMSC' if self.role == 'server' else 'ESME'} (SMPP 3.4 §2.3)"
            )
        if now is None:
            raise LocalProtocolError(f"send({command_name(cid)}) needs now for its deadline")
        windowed = cid not in _WINDOW_EXEMPT
        if windowed and self._windowed >= self.window:
            raise LocalProtocolError(f"window of {self.window} outstanding requests is full")
        return self._put(pdu, now, None, False)

    def _put(self, pdu: Pdu, now: float, context: object, tracked: bool) -> bytes:
        """Encode a request the state and window allow and start its response deadline."""
        cid = pdu.command_id
        if pdu.sequence_number == 0:
            pdu = with_sequence(pdu, self.allocate_sequence())
        elif pdu.sequence_number in self._outstanding:
            raise LocalProtocolError(f"sequence_number {pdu.sequence_number} is outstanding")
        data = encode_pdu(pdu)
        self._outstanding[pdu.sequence_number] = (
            pdu,
            now + self.response_timeout,
            context,
            tracked,
        )
        self._windowed += cid not in _WINDOW_EXEMPT
        self.pdus_sent += 1
        if cid == CommandId.ENQUIRE_LINK:
            self._probe_seq = pdu.sequence_number
        self._transition(cid, 0)
        return data

    # ---- output with flow control (everything collects in data_to_send()) ---------------------

    def send_request(
        self, pdu: Pdu, context: object = None, *, now: float, urgent: bool = False
    ) -> None:
        """Send a request now if the window has room, else queue it (urgent ones first).

        `context` comes back exactly once: on ResponseReceived, RequestTimedOut or
        RequestFailed. Raises LocalProtocolError when closed or when the state forbids the
        request (check may_send()), QueueFull when max_queued requests already wait.
        Link control (enquire_link, unbind) bypasses the window and the queue.
        """
        cid = pdu.command_id
        if self._closed is not None or self._state is State.CLOSED:
            raise LocalProtocolError(f"cannot send {command_name(cid)}: closed")
        if cid & 0x80000000:
            raise LocalProtocolError(f"{command_name(cid)} is a response: use send_response()")
        if cid not in self._we_may_send[self._state]:
            raise LocalProtocolError(
                f"{command_name(cid)} may not be sent in state {self._state.name}"
                f" as the {'SMSC' if self.role == 'server' else 'ESME'} (SMPP 3.4 §2.3)"
            )
        if pdu.sequence_number and pdu.sequence_number in self._outstanding:
            raise LocalProtocolError(f"sequence_number {pdu.sequence_number} is outstanding")
        if cid in _WINDOW_EXEMPT or (
            self._windowed < self.window and not self._urgent and not self._bulk
        ):
            self._out.append(self._put(pdu, now, context, True))
            return
        if len(self._urgent) + len(self._bulk) >= self.max_queued:
            raise QueueFull(f"window of {self.window} full and {self.max_queued} requests queued")
        (self._urgent if urgent else self._bulk).append((pdu, context))

    def send_response(self, pdu: Pdu) -> None:
        """Queue a response (or a generic_nack) for data_to_send()."""
        if not pdu.command_id & 0x80000000:
            raise LocalProtocolError(
                f"{command_name(pdu.command_id)} is a request: use send_request()"
            )
        self._out.append(self.send(pdu))

    def data_to_send(self) -> bytes:
        """Every byte produced since the last call, for one write."""
        out = self._out
        if not out:
            return b""
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        return data

    def _release(self, now: float) -> None:
        """Queued requests onto the wire while the window has room."""
        urgent, bulk = self._urgent, self._bulk
        while self._windowed < self.window and (urgent or bulk):
            pdu, context = (urgent or bulk).popleft()
            cid = pdu.command_id
            reason = ""
            if cid not in self._we_may_send[self._state]:
                # e.g. an unbind crossed it (SMPP 3.4 §2.3): it never goes out on this session.
                reason = f"{command_name(cid)} may not be sent in state {self._state.name}"
            elif pdu.sequence_number and pdu.sequence_number in self._outstanding:
                reason = f"sequence_number {pdu.sequence_number} is outstanding"
            if reason:
                self._events.append(RequestFailed(pdu, context, reason))
                continue
            self._out.append(self._put(pdu, now, context, True))

    # ---- timers ----------------------------------------------------------------------------

    def get_timer(self) -> float | None:
        """When handle_timer() next has work, or None."""
        if self._closed is not None or self._state is State.CLOSED:
            return None
        deadlines: list[float] = []
        if self._outstanding:
            deadlines.append(next(iter(self._outstanding.values()))[1])
        if (
            self.enquire_link_interval is not None
            and self._last_rx is not None
            and self._probe_seq is None
            and self.may_send(CommandId.ENQUIRE_LINK)
        ):
            deadlines.append(self._last_rx + self.enquire_link_interval)
        if (
            self.bind_timeout is not None
            and self._started is not None
            and self._state is State.OPEN
        ):
            deadlines.append(self._started + self.bind_timeout)
        if self.pdu_timeout is not None and self._partial_since is not None:
            deadlines.append(self._partial_since + self.pdu_timeout)
        return min(deadlines) if deadlines else None

    def handle_timer(self, now: float) -> list[TimerEvent]:
        """Expire requests, probe an idle peer, declare a silent peer dead."""
        if self._closed is not None or self._state is State.CLOSED:
            return []
        self._touch_clock(now)
        events: list[TimerEvent] = []
        while self._outstanding:
            seq, (request, deadline, context, tracked) = next(iter(self._outstanding.items()))
            if deadline > now:
                break
            # An unanswered enquire_link or unbind means the peer is gone, not one lost PDU.
            fatal = seq == self._probe_seq or request.command_id == CommandId.UNBIND
            self._forget(seq)
            if fatal:
                if tracked:
                    events.append(RequestTimedOut(request, context))
                what = command_name(request.command_id)
                reason = f"no {what}_resp within {self.response_timeout:g} s"
                events.append(PeerTimedOut(reason))
                self._close(reason)
                return events
            events.append(RequestTimedOut(request, context))
        if self._urgent or self._bulk:
            self._release(now)
        if (
            self.bind_timeout is not None
            and self._state is State.OPEN
            and self._started is not None
            and now >= self._started + self.bind_timeout
        ):
            reason = f"no bind within {self.bind_timeout:g} s"
            events.append(PeerTimedOut(reason))
            self._close(reason)
            return events
        if (
            self.pdu_timeout is not None
            and self._partial_since is not None
            and now >= self._partial_since + self.pdu_timeout
        ):
            reason = (
                f"PDU incomplete after {self.pdu_timeout:g} s"
                f" ({len(self._buf) - self._pos} octets buffered)"
            )
            events.append(PeerTimedOut(reason))
            self._close(reason)
            return events
        if (
            self.enquire_link_interval is not None
            and self._probe_seq is None
            and self._last_rx is not None
            and now >= self._last_rx + self.enquire_link_interval
            and self.may_send(CommandId.ENQUIRE_LINK)
        ):
            probe = EnquireLink(sequence_number=self.allocate_sequence())
            data = self.send(probe, now)
            if self.buffered:
                self._out.append(data)
                data = b""
            events.append(EnquireLinkDue(probe, data))
        return events

    # ---- internals -------------------------------------------------------------------------

    def _need_data(self, avail: int) -> NeedData:
        # The first NEED_DATA with octets buffered starts the PDU's clock: they came with the
        # last receive_data() (a caller drains next_event() after each one).
        if avail and self._partial_since is None:
            self._partial_since = self._last_rx
        return NEED_DATA

    def _touch(self, now: float) -> None:
        self._last_rx = now
        if self._started is None:
            self._started = now

    def _touch_clock(self, now: float) -> None:
        if self._started is None:
            self._started = now
        if self._last_rx is None:
            self._last_rx = now

    def _forget(self, seq: int) -> None:
        request = self._outstanding.pop(seq)[0]
        if request.command_id not in _WINDOW_EXEMPT:
            self._windowed -= 1
        if seq == self._probe_seq:
            self._probe_seq = None

    def _transition(self, command_id: int, status: int) -> None:
        new = TRANSITIONS.get((self._state, command_id))
        if new is not None and (status == 0 or command_id not in _NEEDS_OK):
            self._state = new
            if new in _BOUND:
                self._bound_as = new

    def _refusal_status(self, command_id: int) -> int:
        return REFUSAL_STATUS.get((self._state, command_id), CommandStatus.ESME_RINVBNDSTS)

    def _refusal_reason(self, command_id: int) -> str:
        status = self._refusal_status(command_id)
        return (
            f"{command_name(command_id)} not allowed in state {self._state.name}"
            f" ({status_name(status)}, SMPP 3.4 §2.3)"
        )

    def _fatal(self, status: int, reason: str, response: Pdu | None = None) -> Event:
        if response is not None and self.buffered:
            self._out.append(encode_pdu(response))  # the last thing the peer hears
        self._close(reason)
        return RemoteProtocolError(status, reason, response)

    def _closing(self, reason: str) -> Event:
        """Close, then the first event owed: a RequestFailed, else ConnectionClosed."""
        closed = self._close(reason)
        return self._events.popleft() if self._events else closed

    def _close(self, reason: str) -> ConnectionClosed:
        if self._closed is None:
            unacked = tuple(r for r, _, _, tracked in self._outstanding.values() if not tracked)
            # Contexts come back exactly once: what was on the wire, then what was queued.
            failed = [(r, c) for r, _, c, tracked in self._outstanding.values() if tracked]
            failed += self._urgent
            failed += self._bulk
            self._urgent.clear()
            self._bulk.clear()
            self._events.extend(RequestFailed(r, c, reason) for r, c in failed)
            self._outstanding.clear()
            self._windowed = 0
            self._probe_seq = None
            self._state = State.CLOSED
            self._closed = ConnectionClosed(reason, unacked)
        return self._closed
