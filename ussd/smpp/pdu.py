"""SMPP 3.4 PDU codec: frozen dataclasses <-> wire bytes, and short_message text codings.

Why a codec of our own: aiosmpplib (an interop peer in the tests, a test dependency) models the
common PDUs correctly and its constants and GSM 03.38 table are right (the tests use them as an
oracle), but it types every TLV it does not know as an ASCII string. ussd_service_op and
its_session_info fall in that bucket, so op 0 decodes as '', any octet >= 0x80 raises, and
data_coding 0x0F (the usual USSD DCS) raises too. Importing it also loads its asyncio client
(~150 ms). So this module owns the wire format: TLVs stay (tag, bytes) pairs with typed
accessors, integers stay ints (a peer may send any byte), and text decoding is a separate step
the caller takes once it knows which data_coding it accepts (docs/smpp.md).

Decoding never raises anything but DecodeError, whatever the bytes; encoding raises EncodeError
for values that cannot go on the wire.
"""

from __future__ import annotations

import codecs
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from types import MemberDescriptorType
from typing import Any, NoReturn, TypeVar, cast

from ussd import gsm7
from ussd.smpp.constants import (
    ACCEPTED_DATA_CODINGS,
    HEADER_LENGTH,
    KNOWN_COMMAND_IDS,
    NO_RESPONSE,
    REFUSED_DATA_CODING_STATUS,
    RESPONSE_BIT,
    SMPP_VERSION_34,
    CommandId,
    CommandStatus,
    DataCoding,
    Tag,
    command_name,
    status_name,
)

Tlv = tuple[int, bytes]

_HEADER = struct.Struct("!IIII")
_TLV_HEAD = struct.Struct("!HH")
_NUL = b"\x00"


# ---------------------------------------------------------------------------------------------
# Errors (one base per layer, STYLE §6)


class SmppError(Exception):
    """Base of every SMPP-layer error."""


class LocalProtocolError(SmppError):
    """We (the caller) tried something SMPP forbids: a bad value, or a PDU in the wrong state."""


class EncodeError(LocalProtocolError, ValueError):
    """A PDU field cannot be encoded (too long, out of range, not representable)."""


class DecodeError(SmppError):
    """The peer's PDU is malformed; `status` is the SMPP 3.4 §5.1.3 status to answer with."""

    def __init__(
        self, status: int, reason: str, command_id: int = 0, sequence_number: int = 0
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.command_id = command_id
        self.sequence_number = sequence_number

    def __str__(self) -> str:
        return f"{status_name(self.status)}: {self.reason}"


class TextCodingError(SmppError, ValueError):
    """short_message bytes do not decode (or text does not encode) in the given data_coding."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


# ---------------------------------------------------------------------------------------------
# its_session_info and TLV helpers


@dataclass(frozen=True, slots=True)
class ItsSessionInfo:
    """SMPP 3.4 §5.3.2.43 its_session_info, the two octets split into their fields."""

    session_number: int  # octet 1, 0..255
    sequence_number: int = 0  # octet 2 bits 7..1, 0..127
    end_of_session: bool = False  # octet 2 bit 0

    @classmethod
    def from_bytes(cls, value: bytes) -> ItsSessionInfo:
        """Split the two TLV octets; any of the 65,536 values is valid."""
        if len(value) != 2:
            raise ValueError(f"its_session_info is 2 octets, got {len(value)}")
        return cls(value[0], value[1] >> 1, bool(value[1] & 1))

    def to_bytes(self) -> bytes:
        """The two TLV octets."""
        if not 0 <= self.session_number <= 0xFF or not 0 <= self.sequence_number <= 0x7F:
            raise EncodeError(f"its_session_info out of range: {self}")
        return bytes((self.session_number, (self.sequence_number << 1) | self.end_of_session))


def tlv_u8(tag: int, value: int) -> Tlv:
    """A 1-octet integer TLV."""
    if not 0 <= value <= 0xFF:
        raise EncodeError(f"TLV 0x{tag:04X} value {value} does not fit one octet")
    return (tag, bytes((value,)))


def tlv_u16(tag: int, value: int) -> Tlv:
    """A 2-octet integer TLV."""
    if not 0 <= value <= 0xFFFF:
        raise EncodeError(f"TLV 0x{tag:04X} value {value} does not fit two octets")
    return (tag, value.to_bytes(2, "big"))


def tlv_cstring(tag: int, value: str) -> Tlv:
    """A C-octet string TLV (NUL included in the length, SMPP 3.4 §3.1)."""
    return (tag, value.encode("latin-1") + _NUL)


def ussd_tlvs(
    op: int,
    session: ItsSessionInfo | bytes | None = None,
    user_message_reference: int | None = None,
) -> tuple[Tlv, ...]:
    """The USSD TLVs of a submit_sm/deliver_sm, in the order gateways usually send them."""
    tlvs: list[Tlv] = []
    if user_message_reference is not None:
        tlvs.append(tlv_u16(Tag.USER_MESSAGE_REFERENCE, user_message_reference))
    tlvs.append(tlv_u8(Tag.USSD_SERVICE_OP, op))
    if session is not None:
        raw = session.to_bytes() if isinstance(session, ItsSessionInfo) else bytes(session)
        if len(raw) != 2:
            raise EncodeError("its_session_info is 2 octets")
        tlvs.append((Tag.ITS_SESSION_INFO, raw))
    return tuple(tlvs)


class _TlvAccess:
    """Typed read access to a PDU's TLVs (first occurrence wins)."""

    __slots__ = ()
    tlvs: tuple[Tlv, ...]

    def get_tlv(self, tag: int) -> bytes | None:
        """Raw value of the first TLV with this tag, or None."""
        for t, v in self.tlvs:
            if t == tag:
                return v
        return None

    @property
    def ussd_service_op(self) -> int | None:
        """SMPP 3.4 §5.3.2.44, one octet (any value 0-255), or None when absent."""
        v = self.get_tlv(Tag.USSD_SERVICE_OP)
        return v[0] if v is not None and len(v) == 1 else None

    @property
    def its_session_info(self) -> ItsSessionInfo | None:
        """SMPP 3.4 §5.3.2.43, split into session number, sequence number and end bit."""
        v = self.get_tlv(Tag.ITS_SESSION_INFO)
        return ItsSessionInfo.from_bytes(v) if v is not None and len(v) == 2 else None

    @property
    def user_message_reference(self) -> int | None:
        """SMPP 3.4 §5.3.2.17, two octets, or None."""
        v = self.get_tlv(Tag.USER_MESSAGE_REFERENCE)
        return int.from_bytes(v, "big") if v is not None and len(v) == 2 else None

    @property
    def message_payload(self) -> bytes | None:
        """SMPP 3.4 §5.3.2.32, or None."""
        return self.get_tlv(Tag.MESSAGE_PAYLOAD)

    @property
    def receipted_message_id(self) -> str | None:
        """SMPP 3.4 §5.3.2.12 (C-octet string), or None."""
        v = self.get_tlv(Tag.RECEIPTED_MESSAGE_ID)
        return v.rstrip(_NUL).decode("latin-1") if v is not None else None

    @property
    def message_state(self) -> int | None:
        """SMPP 3.4 §5.3.2.35, or None."""
        v = self.get_tlv(Tag.MESSAGE_STATE)
        return v[0] if v is not None and len(v) == 1 else None


# ---------------------------------------------------------------------------------------------
# PDUs


@dataclass(frozen=True, slots=True, kw_only=True)
class Pdu:
    """Any SMPP PDU: the SMPP 3.4 §3.2 header (command_length is computed on encode)."""

    command_id: int = field(default=0, init=False)
    command_status: int = 0
    sequence_number: int = 0

    @property
    def is_response(self) -> bool:
        """True for *_resp and generic_nack."""
        return bool(self.command_id & RESPONSE_BIT)

    def encode(self) -> bytes:
        """Wire bytes of this PDU."""
        return encode_pdu(self)

    def _body(self) -> bytes:
        return b""


@dataclass(frozen=True, slots=True, kw_only=True)
class GenericNack(Pdu):
    """SMPP 3.4 §4.3.1."""

    command_id: int = field(default=CommandId.GENERIC_NACK, init=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class EnquireLink(Pdu):
    """SMPP 3.4 §4.11.1."""

    command_id: int = field(default=CommandId.ENQUIRE_LINK, init=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class EnquireLinkResp(Pdu):
    """SMPP 3.4 §4.11.2."""

    command_id: int = field(default=CommandId.ENQUIRE_LINK_RESP, init=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Unbind(Pdu):
    """SMPP 3.4 §4.2.1."""

    command_id: int = field(default=CommandId.UNBIND, init=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class UnbindResp(Pdu):
    """SMPP 3.4 §4.2.2."""

    command_id: int = field(default=CommandId.UNBIND_RESP, init=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class BindRequest(Pdu):
    """SMPP 3.4 §4.1.1/§4.1.3/§4.1.5 bind_* body (shared by the three bind requests)."""

    system_id: str = ""  # C-octet string, max 16 with NUL
    password: str = ""  # max 9
    system_type: str = ""  # max 13
    interface_version: int = SMPP_VERSION_34
    addr_ton: int = 0
    addr_npi: int = 0
    address_range: str = ""  # max 41

    def _body(self) -> bytes:
        return b"".join(
            (
                _c_enc(self.system_id, 16, "system_id"),
                _c_enc(self.password, 9, "password"),
                _c_enc(self.system_type, 13, "system_type"),
                bytes((self.interface_version, self.addr_ton, self.addr_npi)),
                _c_enc(self.address_range, 41, "address_range"),
            )
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class BindTransmitter(BindRequest):
    """SMPP 3.4 §4.1.1."""

    command_id: int = field(default=CommandId.BIND_TRANSMITTER, init=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class BindReceiver(BindRequest):
    """SMPP 3.4 §4.1.3."""

    command_id: int = field(default=CommandId.BIND_RECEIVER, init=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class BindTransceiver(BindRequest):
    """SMPP 3.4 §4.1.5."""

    command_id: int = field(default=CommandId.BIND_TRANSCEIVER, init=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class BindResponse(Pdu, _TlvAccess):
    """SMPP 3.4 §4.1.2 bind_*_resp body: system_id and optional sc_interface_version."""

    system_id: str = ""  # max 16
    tlvs: tuple[Tlv, ...] = ()

    def _body(self) -> bytes:
        # SMPP 3.4 §4.1.2 says the body "is not returned" on error; we send it anyway because
        # aiosmpplib 0.7 (an interop peer, docs/smpp.md) fails to parse a bodiless bind_resp, and
        # every parser we know accepts the body. Decoding accepts both forms.
        return _c_enc(self.system_id, 16, "system_id") + _tlvs_enc(self.tlvs)

    @property
    def sc_interface_version(self) -> int | None:
        """SMPP 3.4 §5.3.2.25, or None."""
        v = self.get_tlv(Tag.SC_INTERFACE_VERSION)
        return v[0] if v is not None and len(v) == 1 else None


@dataclass(frozen=True, slots=True, kw_only=True)
class BindTransmitterResp(BindResponse):
    """SMPP 3.4 §4.1.2."""

    command_id: int = field(default=CommandId.BIND_TRANSMITTER_RESP, init=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class BindReceiverResp(BindResponse):
    """SMPP 3.4 §4.1.4."""

    command_id: int = field(default=CommandId.BIND_RECEIVER_RESP, init=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class BindTransceiverResp(BindResponse):
    """SMPP 3.4 §4.1.6."""

    command_id: int = field(default=CommandId.BIND_TRANSCEIVER_RESP, init=False)


# SMPP 3.4 §4.4.1's body up to short_message in wire order: C-octet strings (%s and their
# NUL) and one-octet integers (%c), encoded as Latin-1 in one go by ShortMessagePdu._body.
_SM_BODY = "%s\0%c%c%s\0%c%c%s\0%c%c%c%s\0%s\0%c%c%c%c%c"


@dataclass(frozen=True, slots=True, kw_only=True)
class ShortMessagePdu(Pdu, _TlvAccess):
    """SMPP 3.4 §4.4.1 submit_sm / §4.6.1 deliver_sm body (identical layouts)."""

    service_type: str = ""  # max 6
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""  # max 21
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""  # max 21
    esm_class: int = 0
    protocol_id: int = 0
    priority_flag: int = 0
    schedule_delivery_time: str = ""  # max 17
    validity_period: str = ""  # max 17
    registered_delivery: int = 0
    replace_if_present_flag: int = 0
    data_coding: int = 0
    sm_default_msg_id: int = 0
    short_message: bytes = b""  # 0..254 octets, SMPP 3.4 §5.2.22
    tlvs: tuple[Tlv, ...] = ()

    @property
    def message(self) -> bytes:
        """The user data: message_payload when present, else short_message (§5.3.2.32)."""
        payload = self.get_tlv(Tag.MESSAGE_PAYLOAD)
        return self.short_message if payload is None else payload

    def _body(self) -> bytes:
        # One %-format and one encode instead of eleven pieces joined: about half the cost of
        # _checked_body, and every screen and SMS goes out through here (docs/performance.md).
        # What it cannot vouch for (a long or NUL-bearing string, a character outside Latin-1,
        # an octet out of range) takes _checked_body, which raises the precise EncodeError.
        sm, st, sa = self.short_message, self.service_type, self.source_addr
        da, sd, vp = self.destination_addr, self.schedule_delivery_time, self.validity_period
        if (
            len(sm) <= 254
            and len(st) < 6
            and len(sa) < 21
            and len(da) < 21
            and len(sd) < 17
            and len(vp) < 17
            and "\0" not in st + sa + da + sd + vp
        ):
            try:
                head = (
                    _SM_BODY
                    % (
                        st,
                        self.source_addr_ton,
                        self.source_addr_npi,
                        sa,
                        self.dest_addr_ton,
                        self.dest_addr_npi,
                        da,
                        self.esm_class,
                        self.protocol_id,
                        self.priority_flag,
                        sd,
                        vp,
                        self.registered_delivery,
                        self.replace_if_present_flag,
                        self.data_coding,
                        self.sm_default_msg_id,
                        len(sm),
                    )
                ).encode("latin-1")
            except (UnicodeEncodeError, OverflowError):  # %c of 256 is not Latin-1; of -1 fails
                pass
            else:
                tlvs = self.tlvs
                return head + sm + _tlvs_enc(tlvs) if tlvs else head + sm
        return self._checked_body()

    def _checked_body(self) -> bytes:
        """The body field by field, each checked (the reference _body agrees with)."""
        sm = self.short_message
        if len(sm) > 254:
            raise EncodeError(f"short_message is {len(sm)} octets, max 254 (SMPP 3.4 §5.2.22)")
        return b"".join(
            (
                _c_enc(self.service_type, 6, "service_type"),
                bytes((self.source_addr_ton, self.source_addr_npi)),
                _c_enc(self.source_addr, 21, "source_addr"),
                bytes((self.dest_addr_ton, self.dest_addr_npi)),
                _c_enc(self.destination_addr, 21, "destination_addr"),
                bytes((self.esm_class, self.protocol_id, self.priority_flag)),
                _c_enc(self.schedule_delivery_time, 17, "schedule_delivery_time"),
                _c_enc(self.validity_period, 17, "validity_period"),
                bytes(
                    (
                        self.registered_delivery,
                        self.replace_if_present_flag,
                        self.data_coding,
                        self.sm_default_msg_id,
                        len(sm),
                    )
                ),
                sm,
                _tlvs_enc(self.tlvs),
            )
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class SubmitSm(ShortMessagePdu):
    """SMPP 3.4 §4.4.1."""

    command_id: int = field(default=CommandId.SUBMIT_SM, init=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliverSm(ShortMessagePdu):
    """SMPP 3.4 §4.6.1."""

    command_id: int = field(default=CommandId.DELIVER_SM, init=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class DataSm(Pdu, _TlvAccess):
    """SMPP 3.4 §4.7.1 (the user data travels in message_payload)."""

    command_id: int = field(default=CommandId.DATA_SM, init=False)
    service_type: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""  # max 65
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""  # max 65
    esm_class: int = 0
    registered_delivery: int = 0
    data_coding: int = 0
    tlvs: tuple[Tlv, ...] = ()

    def _body(self) -> bytes:
        return b"".join(
            (
                _c_enc(self.service_type, 6, "service_type"),
                bytes((self.source_addr_ton, self.source_addr_npi)),
                _c_enc(self.source_addr, 65, "source_addr"),
                bytes((self.dest_addr_ton, self.dest_addr_npi)),
                _c_enc(self.destination_addr, 65, "destination_addr"),
                bytes((self.esm_class, self.registered_delivery, self.data_coding)),
                _tlvs_enc(self.tlvs),
            )
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageIdResponse(Pdu, _TlvAccess):
    """SMPP 3.4 §4.4.2/§4.6.2/§4.7.2 body: message_id (max 65) and, for data_sm_resp, TLVs."""

    message_id: str = ""
    # 3.4 defines TLVs only for data_sm_resp; SMPP 5.0 adds some to submit_sm_resp and
    # deliver_sm_resp, so decoding keeps well-formed trailing TLVs instead of refusing them.
    tlvs: tuple[Tlv, ...] = ()

    def _body(self) -> bytes:
        return _c_enc(self.message_id, 65, "message_id") + _tlvs_enc(self.tlvs)


@dataclass(frozen=True, slots=True, kw_only=True)
class SubmitSmResp(MessageIdResponse):
    """SMPP 3.4 §4.4.2."""

    command_id: int = field(default=CommandId.SUBMIT_SM_RESP, init=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliverSmResp(MessageIdResponse):
    """SMPP 3.4 §4.6.2 (message_id is unused and NUL)."""

    command_id: int = field(default=CommandId.DELIVER_SM_RESP, init=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class DataSmResp(MessageIdResponse):
    """SMPP 3.4 §4.7.2."""

    command_id: int = field(default=CommandId.DATA_SM_RESP, init=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class UnknownPdu(Pdu):
    """A PDU this codec does not model (unknown id, or query_sm/replace_sm/...): raw body."""

    command_id: int
    body: bytes = b""

    def _body(self) -> bytes:
        return self.body


# ---------------------------------------------------------------------------------------------
# Encoding


_P = TypeVar("_P", bound=Pdu)


def _slot_setters(cls: type[Pdu]) -> tuple[tuple[str, ...], dict[str, Any]]:
    """cls's field names in order (command_id first) and each slot's setter, by `_s_NAME`."""
    names = tuple(f.name for f in fields(cls))
    setters: dict[str, Any] = {}
    for name in names:
        slot = getattr(cls, name)
        if not isinstance(slot, MemberDescriptorType):  # pragma: no cover - a PDU without slots
            raise TypeError(f"{cls.__name__}.{name} is not a slot")
        setters[f"_s_{name}"] = slot.__set__
    return names, setters


def _generate(name: str, source: str, namespace: dict[str, Any]) -> Any:
    exec(source, namespace)  # our own source, made of dataclass field names only
    return namespace[name]


def constructor(cls: type[_P]) -> Callable[..., _P]:
    """A constructor for hot paths (the decoders, screens): build(command_status,
    sequence_number, ...every other field, positionally in declaration order) is
    cls(**the same by name).

    A frozen dataclass's __init__ sets each field through object.__setattr__ (a global and
    an attribute lookup per field) and a 20-keyword call is costly in itself: this sets the
    slots directly and takes positions, at under half the cost (docs/performance.md). Like
    dataclasses' own __init__, it is generated once per class.
    """
    names, namespace = _slot_setters(cls)
    params = [n for n in names if n != "command_id"]
    namespace.update(_new=object.__new__, _cls=cls, _command_id=cls().command_id)
    lines = [f"def build({', '.join(params)}):", "    pdu = _new(_cls)"]
    lines += [f"    _s_{n}(pdu, {'_command_id' if n == 'command_id' else n})" for n in names]
    lines.append("    return pdu")
    return cast("Callable[..., _P]", _generate("build", "\n".join(lines), namespace))


_RENUMBER: dict[type, Callable[[Any, int], Any]] = {}


def with_sequence(pdu: _P, sequence_number: int) -> _P:
    """pdu with another sequence_number: dataclasses.replace() at about a quarter of its cost.

    Every request sent without a number gets one this way (SmppConnection._put); replace()
    rebuilds keyword arguments and runs __init__, this copies the slots with code generated
    once per class (timeit in one process, a screen deliver_sm: ~2 µs against ~8 µs; the
    getattr/object.__setattr__ loop it replaces took ~4.5 µs).
    """
    cls = type(pdu)
    renumber = _RENUMBER.get(cls)
    if renumber is None:
        names, namespace = _slot_setters(cls)
        namespace["_new"] = object.__new__
        lines = ["def renumber(pdu, sequence_number):", "    copy = _new(type(pdu))"]
        lines += [
            f"    _s_{n}(copy, {'sequence_number' if n == 'sequence_number' else 'pdu.' + n})"
            for n in names
        ]
        lines.append("    return copy")
        renumber = _RENUMBER[cls] = _generate("renumber", "\n".join(lines), namespace)
    return cast("_P", renumber(pdu, sequence_number))


def encode_pdu(pdu: Pdu) -> bytes:
    """Wire bytes of a PDU; EncodeError when a field cannot be represented."""
    try:
        body = pdu._body()
        return (
            _HEADER.pack(
                HEADER_LENGTH + len(body), pdu.command_id, pdu.command_status, pdu.sequence_number
            )
            + body
        )
    except EncodeError:
        raise
    except (struct.error, ValueError, OverflowError, TypeError) as exc:
        # bytes((300,)) and struct.pack of out-of-range ints land here; latin-1 failures too.
        raise EncodeError(f"{command_name(pdu.command_id)}: {exc}") from exc


def _c_enc(value: str, maxlen: int, name: str) -> bytes:
    # SMPP 3.4 §3.1: C-octet string, maxlen counts the NUL.
    raw = value.encode("latin-1")
    if len(raw) >= maxlen or _NUL in raw:
        raise EncodeError(f"{name} {value!r}: at most {maxlen - 1} octets, no NUL")
    return raw + _NUL


def _tlvs_enc(tlvs: tuple[Tlv, ...]) -> bytes:
    if not tlvs:
        return b""
    pack = _TLV_HEAD.pack
    return b"".join([pack(tag, len(value)) + value for tag, value in tlvs])


# ---------------------------------------------------------------------------------------------
# Decoding

# TLVs this gateway interprets, with their SMPP 3.4 §5.3.2 value lengths (min, max); a wrong
# length is ESME_RINVPARLEN. Other tags are kept as they come (§3.2.7: unknown TLVs are ignored).
_TLV_LENGTHS: dict[int, tuple[int, int]] = {
    Tag.USSD_SERVICE_OP: (1, 1),
    Tag.ITS_SESSION_INFO: (2, 2),
    Tag.USER_MESSAGE_REFERENCE: (2, 2),
    Tag.SAR_MSG_REF_NUM: (2, 2),
    Tag.SAR_TOTAL_SEGMENTS: (1, 1),
    Tag.SAR_SEGMENT_SEQNUM: (1, 1),
    Tag.MESSAGE_STATE: (1, 1),
    Tag.SC_INTERFACE_VERSION: (1, 1),
    Tag.RECEIPTED_MESSAGE_ID: (1, 65),
}


def decode_pdu(data: bytes) -> Pdu:
    """Decode exactly one PDU (len(data) == command_length); DecodeError on malformed input."""
    if len(data) < HEADER_LENGTH:
        raise DecodeError(CommandStatus.ESME_RINVCMDLEN, f"{len(data)} octets, header is 16")
    length, command_id, status, seq = _HEADER.unpack_from(data)
    if length != len(data):
        raise DecodeError(
            CommandStatus.ESME_RINVCMDLEN,
            f"command_length {length} but {len(data)} octets given",
            command_id,
            seq,
        )
    decoder = _DECODERS.get(command_id)
    if decoder is None:
        return UnknownPdu(
            command_id=command_id,
            command_status=status,
            sequence_number=seq,
            body=bytes(data[HEADER_LENGTH:]),
        )
    try:
        return decoder(data, status, seq)
    except DecodeError as exc:
        exc.command_id, exc.sequence_number = command_id, seq
        raise
    except (struct.error, IndexError):
        # A fixed-size mandatory field runs past command_length.
        raise DecodeError(
            CommandStatus.ESME_RINVCMDLEN,
            f"{command_name(command_id)} body ends inside its mandatory fields",
            command_id,
            seq,
        ) from None


def _c_dec(data: bytes, pos: int, maxlen: int, status: int, name: str) -> tuple[str, int]:
    # SMPP 3.4 §3.1: the NUL must come within maxlen octets (maxlen counts it).
    nul = data.find(0, pos, pos + maxlen)
    if nul < 0:
        _c_missing(data, pos, maxlen, status, name)
    return data[pos:nul].decode("latin-1"), nul + 1


def _c_missing(data: bytes, pos: int, maxlen: int, status: int, name: str) -> NoReturn:
    """The error for a C-octet string at pos with no NUL within maxlen octets."""
    if pos + maxlen > len(data):
        # command_length cut the field short: the length is wrong, not the field.
        raise DecodeError(
            CommandStatus.ESME_RINVCMDLEN, f"body ends inside {name} (no NUL terminator)"
        )
    raise DecodeError(
        status, f"{name}: no NUL within {maxlen} octets (max {maxlen - 1} characters)"
    )


def _tlvs_dec(data: bytes, pos: int) -> tuple[Tlv, ...]:
    end = len(data)
    out: list[Tlv] = []
    unpack = _TLV_HEAD.unpack_from
    lengths = _TLV_LENGTHS
    while pos < end:
        if end - pos < 4:
            raise DecodeError(
                CommandStatus.ESME_RINVOPTPARSTREAM, f"{end - pos} stray octets after the TLVs"
            )
        tag, length = unpack(data, pos)
        pos += 4
        stop = pos + length
        if stop > end:
            raise DecodeError(
                CommandStatus.ESME_RINVOPTPARSTREAM,
                f"TLV 0x{tag:04X} length {length} runs past the PDU end",
            )
        bounds = lengths.get(tag)
        if bounds is not None and not bounds[0] <= length <= bounds[1]:
            raise DecodeError(
                CommandStatus.ESME_RINVPARLEN,
                f"TLV {Tag(tag).name.lower()} (0x{tag:04X}) length {length}, "
                f"expected {bounds[0]}" + ("" if bounds[0] == bounds[1] else f"..{bounds[1]}"),
            )
        out.append((tag, data[pos:stop]))
        pos = stop
    return tuple(out)


def _no_body(cls: type[Pdu]) -> Callable[[bytes, int, int], Pdu]:
    name = command_name(cls().command_id)

    def decode(data: bytes, status: int, seq: int) -> Pdu:
        if len(data) != HEADER_LENGTH:
            raise DecodeError(
                CommandStatus.ESME_RINVCMDLEN,
                f"{name} has no body, got {len(data) - HEADER_LENGTH} octets",
            )
        return cls(command_status=status, sequence_number=seq)

    return decode


def _bind(cls: type[BindRequest]) -> Callable[[bytes, int, int], Pdu]:
    def decode(data: bytes, status: int, seq: int) -> Pdu:
        S = CommandStatus
        system_id, p = _c_dec(data, HEADER_LENGTH, 16, S.ESME_RINVSYSID, "system_id")
        password, p = _c_dec(data, p, 9, S.ESME_RINVPASWD, "password")
        system_type, p = _c_dec(data, p, 13, S.ESME_RINVSYSTYP, "system_type")
        version, ton, npi = data[p], data[p + 1], data[p + 2]
        address_range, p = _c_dec(data, p + 3, 41, S.ESME_RBINDFAIL, "address_range")
        if p != len(data):
            # SMPP 3.4 §4.1.1: bind has no optional part.
            raise DecodeError(S.ESME_RINVCMDLEN, f"{len(data) - p} octets after address_range")
        return cls(
            command_status=status,
            sequence_number=seq,
            system_id=system_id,
            password=password,
            system_type=system_type,
            interface_version=version,
            addr_ton=ton,
            addr_npi=npi,
            address_range=address_range,
        )

    return decode


def _bind_resp(cls: type[BindResponse]) -> Callable[[bytes, int, int], Pdu]:
    def decode(data: bytes, status: int, seq: int) -> Pdu:
        if len(data) == HEADER_LENGTH:  # SMPP 3.4 §4.1.2: no body on error
            return cls(command_status=status, sequence_number=seq)
        system_id, p = _c_dec(data, HEADER_LENGTH, 16, CommandStatus.ESME_RINVSYSID, "system_id")
        return cls(
            command_status=status,
            sequence_number=seq,
            system_id=system_id,
            tlvs=_tlvs_dec(data, p),
        )

    return decode


def _short_message(cls: type[ShortMessagePdu]) -> Callable[[bytes, int, int], Pdu]:
    build = constructor(cls)

    # Every submit_sm and deliver_sm comes through here: the C-octet strings are found inline
    # (_c_missing only for the error) and the PDU is built positionally by `build`.
    def decode(data: bytes, status: int, seq: int) -> Pdu:
        S = CommandStatus
        find = data.find
        q = find(0, 16, 22)
        if q < 0:
            _c_missing(data, 16, 6, S.ESME_RINVSERTYP, "service_type")
        service_type = data[16:q].decode("latin-1")
        src_ton, src_npi = data[q + 1], data[q + 2]
        p = q + 3
        q = find(0, p, p + 21)
        if q < 0:
            _c_missing(data, p, 21, S.ESME_RINVSRCADR, "source_addr")
        source_addr = data[p:q].decode("latin-1")
        dst_ton, dst_npi = data[q + 1], data[q + 2]
        p = q + 3
        q = find(0, p, p + 21)
        if q < 0:
            _c_missing(data, p, 21, S.ESME_RINVDSTADR, "destination_addr")
        destination_addr = data[p:q].decode("latin-1")
        esm_class, protocol_id, priority = data[q + 1], data[q + 2], data[q + 3]
        p = q + 4
        q = find(0, p, p + 17)
        if q < 0:
            _c_missing(data, p, 17, S.ESME_RINVSCHED, "schedule_delivery_time")
        schedule = data[p:q].decode("latin-1") if q > p else ""
        p = q + 1
        q = find(0, p, p + 17)
        if q < 0:
            _c_missing(data, p, 17, S.ESME_RINVEXPIRY, "validity_period")
        validity = data[p:q].decode("latin-1") if q > p else ""
        registered, replace, coding = data[q + 1], data[q + 2], data[q + 3]
        default_id, sm_length = data[q + 4], data[q + 5]
        p = q + 6
        if sm_length > 254:
            raise DecodeError(S.ESME_RINVMSGLEN, f"sm_length {sm_length}, max 254")
        end = p + sm_length
        if end > len(data):
            raise DecodeError(S.ESME_RINVMSGLEN, f"sm_length {sm_length} runs past the PDU end")
        return build(
            status,
            seq,
            service_type,
            src_ton,
            src_npi,
            source_addr,
            dst_ton,
            dst_npi,
            destination_addr,
            esm_class,
            protocol_id,
            priority,
            schedule,
            validity,
            registered,
            replace,
            coding,
            default_id,
            data[p:end],
            _tlvs_dec(data, end) if end < len(data) else (),
        )

    return decode


def _data_sm(data: bytes, status: int, seq: int) -> Pdu:
    S = CommandStatus
    service_type, p = _c_dec(data, HEADER_LENGTH, 6, S.ESME_RINVSERTYP, "service_type")
    src_ton, src_npi = data[p], data[p + 1]
    source_addr, p = _c_dec(data, p + 2, 65, S.ESME_RINVSRCADR, "source_addr")
    dst_ton, dst_npi = data[p], data[p + 1]
    destination_addr, p = _c_dec(data, p + 2, 65, S.ESME_RINVDSTADR, "destination_addr")
    esm_class, registered, coding = data[p], data[p + 1], data[p + 2]
    return DataSm(
        command_status=status,
        sequence_number=seq,
        service_type=service_type,
        source_addr_ton=src_ton,
        source_addr_npi=src_npi,
        source_addr=source_addr,
        dest_addr_ton=dst_ton,
        dest_addr_npi=dst_npi,
        destination_addr=destination_addr,
        esm_class=esm_class,
        registered_delivery=registered,
        data_coding=coding,
        tlvs=_tlvs_dec(data, p + 3),
    )


def _message_id_resp(cls: type[MessageIdResponse]) -> Callable[[bytes, int, int], Pdu]:
    build = constructor(cls)

    def decode(data: bytes, status: int, seq: int) -> Pdu:
        end = len(data)
        if end == HEADER_LENGTH:
            # SMPP 3.4 §4.4.2 omits the body on error; many ESMEs also send a bodiless
            # deliver_sm_resp on success. Both mean message_id "".
            return build(status, seq, "", ())
        q = data.find(0, HEADER_LENGTH, HEADER_LENGTH + 65)
        if q < 0:
            _c_missing(data, HEADER_LENGTH, 65, CommandStatus.ESME_RINVMSGID, "message_id")
        message_id = data[HEADER_LENGTH:q].decode("latin-1") if q > HEADER_LENGTH else ""
        q += 1
        return build(status, seq, message_id, _tlvs_dec(data, q) if q < end else ())

    return decode


_DECODERS: dict[int, Callable[[bytes, int, int], Pdu]] = {
    CommandId.GENERIC_NACK: _no_body(GenericNack),
    CommandId.ENQUIRE_LINK: _no_body(EnquireLink),
    CommandId.ENQUIRE_LINK_RESP: _no_body(EnquireLinkResp),
    CommandId.UNBIND: _no_body(Unbind),
    CommandId.UNBIND_RESP: _no_body(UnbindResp),
    CommandId.BIND_TRANSMITTER: _bind(BindTransmitter),
    CommandId.BIND_RECEIVER: _bind(BindReceiver),
    CommandId.BIND_TRANSCEIVER: _bind(BindTransceiver),
    CommandId.BIND_TRANSMITTER_RESP: _bind_resp(BindTransmitterResp),
    CommandId.BIND_RECEIVER_RESP: _bind_resp(BindReceiverResp),
    CommandId.BIND_TRANSCEIVER_RESP: _bind_resp(BindTransceiverResp),
    CommandId.SUBMIT_SM: _short_message(SubmitSm),
    CommandId.DELIVER_SM: _short_message(DeliverSm),
    CommandId.DATA_SM: _data_sm,
    CommandId.SUBMIT_SM_RESP: _message_id_resp(SubmitSmResp),
    CommandId.DELIVER_SM_RESP: _message_id_resp(DeliverSmResp),
    CommandId.DATA_SM_RESP: _message_id_resp(DataSmResp),
}


# ---------------------------------------------------------------------------------------------
# Responses

_RESPONSE_CLASS: dict[int, type[Pdu]] = {
    CommandId.BIND_TRANSMITTER: BindTransmitterResp,
    CommandId.BIND_RECEIVER: BindReceiverResp,
    CommandId.BIND_TRANSCEIVER: BindTransceiverResp,
    CommandId.SUBMIT_SM: SubmitSmResp,
    CommandId.DELIVER_SM: DeliverSmResp,
    CommandId.DATA_SM: DataSmResp,
    CommandId.ENQUIRE_LINK: EnquireLinkResp,
    CommandId.UNBIND: UnbindResp,
}


def make_response(
    command_id: int, sequence_number: int, status: int = CommandStatus.ESME_ROK, **fields: Any
) -> Pdu:
    """The response to a request: its *_resp when SMPP 3.4 defines one, else generic_nack.

    Unknown command ids, response ids and outbind/alert_notification (no *_resp in §4) get a
    generic_nack (SMPP 3.4 §4.3). `fields` go to the response class (system_id, message_id).
    """
    cls = _RESPONSE_CLASS.get(command_id)
    if cls is not None:
        return cls(command_status=status, sequence_number=sequence_number, **fields)
    if (
        command_id in KNOWN_COMMAND_IDS
        and not command_id & RESPONSE_BIT
        and command_id not in NO_RESPONSE
    ):
        # query_sm, replace_sm, cancel_sm, submit_multi: their *_resp, header only.
        return UnknownPdu(
            command_id=command_id | RESPONSE_BIT,
            command_status=status,
            sequence_number=sequence_number,
        )
    return GenericNack(command_status=status, sequence_number=sequence_number)


def response_to(request: Pdu, status: int = CommandStatus.ESME_ROK, **fields: Any) -> Pdu:
    """make_response() for a decoded request."""
    return make_response(request.command_id, request.sequence_number, status, **fields)


# ---------------------------------------------------------------------------------------------
# short_message text (TS 23.038, SMPP 3.4 §5.2.19)

# TS 23.038 §6.2.1 default alphabet and §6.2.1.1 extension table: one copy, in ussd.gsm7.
_GSM_BASIC = gsm7.DEFAULT_ALPHABET
_GSM_EXT = gsm7.EXTENSION_TABLE

_GSM_DECODE: dict[int, str] = {i: ch for i, ch in enumerate(_GSM_BASIC) if i != 0x1B}
_GSM_ENCODE: dict[int, str] = {ord(ch): chr(i) for i, ch in enumerate(_GSM_BASIC) if i != 0x1B}
_GSM_ENCODE.update({ord(ch): "\x1b" + chr(code) for code, ch in _GSM_EXT.items()})
_NOT_GSM = re.compile(
    "[^" + re.escape("".join(chr(c) for c in _GSM_ENCODE)) + "]",
)

# ASCII characters that are one septet of the default alphabet (not the extension table), and
# each one's septet: most screens are such text, and bytes.translate encodes it in one C call.
_ONE_SEPTET_ASCII = bytes(b for b in range(128) if len(_GSM_ENCODE.get(b, "")) == 1)
_ASCII_TO_GSM = bytes(ord(_GSM_ENCODE[b]) if b in _ONE_SEPTET_ASCII else b for b in range(256))

_UCS2_CODINGS = frozenset({DataCoding.UCS2, DataCoding.USSD_UCS2})
_utf_16_be_encode = codecs.utf_16_be_encode
_GSM_CODINGS = frozenset({DataCoding.SMSC_DEFAULT, DataCoding.USSD_GSM7})


gsm7_fits = gsm7.is_gsm7
gsm7_length = gsm7.gsm7_length


def _gsm7_decode(data: bytes) -> str:
    if not data.isascii():
        raise TextCodingError(
            CommandStatus.ESME_RSUBMITFAIL, "GSM 7-bit (unpacked) octet above 0x7F"
        )
    text = data.decode("latin-1")
    if "\x1b" not in text:
        return text.translate(_GSM_DECODE)
    out: list[str] = []
    escaped = False
    for ch in text:
        code = ord(ch)
        if escaped:
            escaped = False
            if code == 0x1B:
                # TS 23.038 §6.2.1.1: ESC ESC (another extension table) displays as space.
                out.append(" ")
            else:
                # An undefined extension code shows the default-alphabet character.
                out.append(_GSM_EXT.get(code) or _GSM_DECODE[code])
        elif code == 0x1B:
            escaped = True
        else:
            out.append(_GSM_DECODE[code])
    if escaped:
        raise TextCodingError(CommandStatus.ESME_RSUBMITFAIL, "GSM 7-bit text ends with ESC")
    return "".join(out)


def decode_text(data: bytes, data_coding: int) -> str:
    """short_message/message_payload bytes -> text; TextCodingError when refused or invalid.

    Accepted (docs/smpp.md): 0x00 and 0x0F GSM 7-bit unpacked (one septet per octet), 0x01 IA5,
    0x03 Latin-1, 0x08 and 0x48 UCS-2 big-endian (UTF-16 surrogate pairs allowed).
    """
    if data_coding in _GSM_CODINGS:
        return _gsm7_decode(data)
    if data_coding in _UCS2_CODINGS:
        if len(data) % 2:
            raise TextCodingError(
                CommandStatus.ESME_RINVMSGLEN, f"UCS-2 text of odd length {len(data)}"
            )
        try:
            return data.decode("utf-16-be")
        except UnicodeDecodeError as exc:
            raise TextCodingError(CommandStatus.ESME_RSUBMITFAIL, f"UCS-2: {exc.reason}") from None
    if data_coding == DataCoding.IA5:
        if not data.isascii():
            raise TextCodingError(CommandStatus.ESME_RSUBMITFAIL, "IA5 octet above 0x7F")
        return data.decode("ascii")
    if data_coding == DataCoding.LATIN_1:
        return data.decode("latin-1")
    raise TextCodingError(
        REFUSED_DATA_CODING_STATUS,
        f"data_coding 0x{data_coding:02X} not accepted (accepted: 0x00 0x01 0x03 0x08 0x0F 0x48)",
    )


def encode_text(text: str, data_coding: int | None = None) -> tuple[bytes, int]:
    """text -> (bytes, data_coding); by default GSM 7-bit (0x00) when it fits, else UCS-2 (0x08)."""
    if (data_coding is None or data_coding in _GSM_CODINGS) and text.isascii():
        raw = text.encode("ascii")
        if not raw.translate(None, _ONE_SEPTET_ASCII):  # nothing but one-septet characters
            coding = DataCoding.SMSC_DEFAULT if data_coding is None else data_coding
            return raw.translate(_ASCII_TO_GSM), coding
    if data_coding is None:
        if not gsm7_fits(text):
            # The usual non-Latin screen (Cyrillic): straight to the codec, no lookup by name.
            try:
                return _utf_16_be_encode(text)[0], DataCoding.UCS2
            except UnicodeEncodeError as exc:
                raise TextCodingError(
                    CommandStatus.ESME_RSUBMITFAIL, f"utf-16-be: {exc.reason}"
                ) from None
        data_coding = DataCoding.SMSC_DEFAULT
    if data_coding not in ACCEPTED_DATA_CODINGS:
        raise TextCodingError(
            REFUSED_DATA_CODING_STATUS, f"data_coding 0x{data_coding:02X} not supported"
        )
    if data_coding in _GSM_CODINGS:
        m = _NOT_GSM.search(text)
        if m is not None:
            raise TextCodingError(
                CommandStatus.ESME_RSUBMITFAIL, f"{m.group()!r} is not in the GSM 7-bit alphabet"
            )
        return text.translate(_GSM_ENCODE).encode("latin-1"), data_coding
    codec = {
        DataCoding.IA5: "ascii",
        DataCoding.LATIN_1: "latin-1",
    }.get(DataCoding(data_coding), "utf-16-be")
    try:
        return text.encode(codec), data_coding
    except UnicodeEncodeError as exc:
        raise TextCodingError(CommandStatus.ESME_RSUBMITFAIL, f"{codec}: {exc.reason}") from None
