"""The gateway's messages as SMPP PDUs, sans-IO: USSD requests, screens, SMS parts, receipts.

No sockets and no engine calls here: `classify()` reads what a harness's submit_sm asks for,
`HarnessDialog` numbers the PDUs of one USSD dialog (SMPP 3.4 §5.3.2.43), `screen_pdu()`,
`sms_pdus()` and `receipt_pdu()` build the deliver_sm the server writes. docs/smpp.md has the
mapping with a worked example.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import Enum
from typing import Any

from ussd.slots import fast_init
from ussd.smpp.constants import (
    DataCoding,
    EsmClass,
    MessageState,
    Npi,
    Tag,
    Ton,
    UssdServiceOp,
)
from ussd.smpp.pdu import (
    DeliverSm,
    ItsSessionInfo,
    ShortMessagePdu,
    Tlv,
    constructor,
    encode_text,
    tlv_cstring,
    tlv_u8,
    tlv_u16,
)

# SMPP 3.4 §5.3.2.43: the its_session_info sequence number has 7 bits, but aiosmpplib 0.7 (an
# interop peer) decodes TLVs as ASCII and raises on an octet >= 0x80, so the second octet
# ((sequence << 1) | end) must stay below 0x80: sequence numbers run 0..63 and wrap.
SEQUENCE_MODULO = 64
# Session numbers the gateway assigns stay below 0x80 for the same reason.
MAX_ASSIGNED_SESSION = 127

USSD_SERVICE_TYPE = "USSD"

# TS 23.040 §9.2.3.24.1: concatenation IE 0x00 (8-bit reference), IEDL 3.
_CONCAT_IEI = 0x00
# GSM 7-bit: 160 septets in one SMS, 153 per part once the 6-octet UDH takes its room
# (TS 23.040 §9.2.3.24); UCS-2: 70 characters, 67 per part.
GSM_SINGLE, GSM_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67
_MAX_PARTS = 255  # the UDH counts parts in one octet


class Action(Enum):
    """What a USSD submit_sm asks the engine for (docs/smpp.md)."""

    DIAL = "dial"  # ussd_service_op 1 (PSSR indication) or 0 (PSSD indication, phase 1)
    REPLY = "reply"  # 18 (USSR confirm)
    RELEASE = "release"  # 0x81, or its_session_info with the end bit
    CONFIRM = "confirm"  # 19 (USSN confirm): acknowledged, nothing to run
    REFUSE = "refuse"  # a network-side operation (2, 3, 16, 17) or an unknown one


@fast_init
@dataclass(frozen=True, slots=True)
class UssdRequest:
    """A harness's USSD submit_sm, read once: the operation and the TLVs to echo."""

    action: Action
    op: int
    session: ItsSessionInfo | None
    user_message_reference: int | None


_OP_ACTIONS: dict[int, Action] = {
    UssdServiceOp.PSSR_INDICATION: Action.DIAL,
    UssdServiceOp.PSSD_INDICATION: Action.DIAL,
    UssdServiceOp.USSR_CONFIRM: Action.REPLY,
    UssdServiceOp.USSN_CONFIRM: Action.CONFIRM,
    UssdServiceOp.RELEASE: Action.RELEASE,
}


def classify(pdu: ShortMessagePdu) -> UssdRequest | None:
    """The USSD request in a submit_sm, or None when it has no ussd_service_op (an MO SMS).

    One pass over the TLVs (first occurrence wins, as the typed accessors do). The end bit of
    its_session_info releases the dialog (docs/smpp.md) on any operation but a PSSR/PSSD
    indication, where it is ignored: an opening request cannot also be the last PDU.
    """
    op: int | None = None
    info: bytes | None = None
    umr: bytes | None = None
    for tag, value in pdu.tlvs:
        if tag == Tag.USSD_SERVICE_OP:
            if op is None and len(value) == 1:
                op = value[0]
        elif tag == Tag.ITS_SESSION_INFO:
            if info is None and len(value) == 2:
                info = value
        elif tag == Tag.USER_MESSAGE_REFERENCE and umr is None and len(value) == 2:
            umr = value
    if op is None:
        return None
    session = ItsSessionInfo(info[0], info[1] >> 1, bool(info[1] & 1)) if info else None
    action = _OP_ACTIONS.get(op, Action.REFUSE)
    if session is not None and session.end_of_session and action is not Action.DIAL:
        action = Action.RELEASE
    return UssdRequest(action, op, session, int.from_bytes(umr, "big") if umr else None)


@dataclass(slots=True, eq=False)
class HarnessDialog:
    """A USSD dialog a harness bind opened (or replied to): what its screens must echo.

    PDU numbering (SMPP 3.4 §5.3.2.43, bits 7..1 of octet 2): every PDU of the dialog counts,
    in both directions, from 0 for the harness's opening submit_sm. The first screen is 1,
    the harness's reply 2, the next screen 3, and so on, modulo 64; a harness that numbers
    its own PDUs the same way sees each screen carry its last number plus one.
    """

    msisdn: str
    session: str  # the engine's session id
    bind: Any  # the bind screens go to: the one that opened the dialog (opaque here)
    session_number: int  # its_session_info octet 1: the harness's, or one we assigned
    pdus: int = 1  # PDUs of the dialog so far (the opening submit_sm was number 0)
    user_message_reference: int | None = None
    service_addr: str = ""  # destination_addr of the harness's submit_sm (screen_source)

    def harness_pdu(self, request: UssdRequest) -> None:
        """Count a submit_sm of this dialog; adopt the session number and reference it sent."""
        self.pdus += 1
        if request.session is not None:
            self.session_number = request.session.session_number
        if request.user_message_reference is not None:
            self.user_message_reference = request.user_message_reference

    def next_info(self, end: bool) -> ItsSessionInfo:
        """its_session_info for the next screen we send (counts it)."""
        info = ItsSessionInfo(self.session_number, self.pdus % SEQUENCE_MODULO, end)
        self.pdus += 1
        return info


_MAX_ADDR = 20  # SMPP 3.4 §5.2.8: source_addr is a C-octet string of at most 21 octets
_MAX_SHORT_MESSAGE = 254  # SMPP 3.4 §5.2.22; longer user data goes in message_payload


def screen_source(service_code: str, fallback: str = "") -> str:
    """The screen's source_addr: the service code when an address can carry it, else fallback.

    A service code over 20 octets (`*123456789012345678901#`) or one outside Latin-1 (a short
    code such as `да` or `€`, TS 22.030 §6.5.3) cannot be a source_addr; the screen then
    comes from the address the harness sent its submit_sm to (or none), never not at all.
    """
    for candidate in (service_code, fallback):
        try:
            raw = candidate.encode("latin-1")
        except UnicodeEncodeError:
            continue
        if len(raw) <= _MAX_ADDR and b"\0" not in raw:
            return candidate
    return ""


# What every screen shares, built once (an enum member lookup alone is ~0.15 µs).
_OP_TLVS = {
    (end, notice): (Tag.USSD_SERVICE_OP, bytes((op,)))
    for end, notice, op in (
        (True, False, UssdServiceOp.PSSR_RESPONSE),
        (True, True, UssdServiceOp.PSSR_RESPONSE),  # an end screen is never a notice
        (False, False, UssdServiceOp.USSR_REQUEST),
        (False, True, UssdServiceOp.USSN_REQUEST),
    )
}
_ITS_SESSION_INFO = int(Tag.ITS_SESSION_INFO)
_MESSAGE_PAYLOAD = int(Tag.MESSAGE_PAYLOAD)
_UMR = int(Tag.USER_MESSAGE_REFERENCE)
_TON_UNKNOWN, _NPI_UNKNOWN = Ton.UNKNOWN, Npi.UNKNOWN
_TON_INTERNATIONAL, _NPI_ISDN = Ton.INTERNATIONAL, Npi.ISDN
_deliver_sm = constructor(DeliverSm)


def screen_pdu(
    sequence_number: int,
    msisdn: str,
    service_code: str,
    text: str,
    end: bool,
    info: ItsSessionInfo,
    user_message_reference: int | None,
    fallback_source: str = "",
    notice: bool = False,
) -> DeliverSm:
    """A USSD screen as deliver_sm (docs/smpp.md): op 2 (USSR request) or 17 (PSSR response),
    or 3 (USSN request) for a notice the handset only acknowledges.

    Always encodable: the source is screen_source(), and text over 254 octets (a long UCS-2
    screen) goes in message_payload (SMPP 3.4 §5.3.2.32) with an empty short_message.
    """
    data, coding = encode_text(text)
    session = (_ITS_SESSION_INFO, info.to_bytes())
    tlvs: tuple[Tlv, ...]
    if user_message_reference is None:
        tlvs = (_OP_TLVS[end, notice], session)
    else:
        tlvs = (tlv_u16(_UMR, user_message_reference), _OP_TLVS[end, notice], session)
    if len(data) > _MAX_SHORT_MESSAGE:
        tlvs = (*tlvs, (_MESSAGE_PAYLOAD, data))
        data = b""
    # Positionally, in DeliverSm's field order (a screen is built per step: constructor()).
    return _deliver_sm(
        0,  # command_status
        sequence_number,
        USSD_SERVICE_TYPE,
        _TON_UNKNOWN,  # source_addr_ton
        _NPI_UNKNOWN,  # source_addr_npi
        screen_source(service_code, fallback_source),
        _TON_INTERNATIONAL,  # dest_addr_ton
        _NPI_ISDN,  # dest_addr_npi
        msisdn,  # destination_addr
        0,  # esm_class
        0,  # protocol_id
        0,  # priority_flag
        "",  # schedule_delivery_time
        "",  # validity_period
        0,  # registered_delivery
        0,  # replace_if_present_flag
        coding,  # data_coding
        0,  # sm_default_msg_id
        data,  # short_message
        tlvs,
    )


class SmsTooLong(ValueError):
    """A text that needs more than 255 parts: the UDH counts parts in one octet."""


def sms_fits(text: str) -> bool:
    """Whether text goes out as one SMS of at most 255 parts (TS 23.040 §9.2.3.24.1)."""
    return len(_split(text)[1]) <= _MAX_PARTS


def split_text(text: str) -> tuple[int, list[bytes]]:
    """(data_coding, parts): one part when it fits one SMS, else parts for a UDH each.

    GSM 7-bit (unpacked, one septet per octet) when the text fits it, else UCS-2. A part never
    ends between an escape and its extension character (TS 23.038 §6.2.1.1), nor inside a
    UTF-16 surrogate pair. SmsTooLong past 255 parts: never cut short and called delivered.
    """
    coding, parts = _split(text)
    if len(parts) > _MAX_PARTS:
        raise SmsTooLong(f"{len(parts)} parts, at most {_MAX_PARTS}")
    return coding, parts


def _split(text: str) -> tuple[int, list[bytes]]:
    data, coding = encode_text(text)
    if coding == DataCoding.SMSC_DEFAULT:
        if len(data) <= GSM_SINGLE:
            return coding, [data]
        size, unit = GSM_PART, 1
    else:
        if len(data) <= 2 * UCS2_SINGLE:
            return coding, [data]
        size, unit = 2 * UCS2_PART, 2
    parts: list[bytes] = []
    pos = 0
    while pos < len(data):
        end = min(pos + size, len(data))
        if end < len(data):
            if unit == 1 and data[end - 1] == 0x1B:
                end -= 1  # keep ESC with its extension character
            elif unit == 2 and 0xD8 <= data[end - 2] <= 0xDB:
                end -= 2  # keep a high surrogate with its low half
        parts.append(data[pos:end])
        pos = end
    return coding, parts


def sms_pdus(
    recipient: str, sender: str, sender_is_alpha: bool, text: str, reference: int
) -> list[DeliverSm]:
    """A network or MO SMS as plain deliver_sm (no ussd_service_op), with a UDH when long.

    Sequence numbers are 0: the server gives each part one when the window lets it go.
    """
    coding, parts = split_text(text)
    if sender_is_alpha:
        src_ton, src_npi = Ton.ALPHANUMERIC, Npi.UNKNOWN
    else:
        src_ton, src_npi = Ton.INTERNATIONAL, Npi.ISDN
    total = len(parts)
    ref = reference & 0xFF

    def part_pdu(esm_class: int, short_message: bytes) -> DeliverSm:
        return DeliverSm(
            source_addr_ton=src_ton,
            source_addr_npi=src_npi,
            source_addr=sender,
            dest_addr_ton=Ton.INTERNATIONAL,
            dest_addr_npi=Npi.ISDN,
            destination_addr=recipient,
            esm_class=esm_class,
            data_coding=coding,
            short_message=short_message,
        )

    if total == 1:
        return [part_pdu(EsmClass.DEFAULT, parts[0])]
    return [
        part_pdu(EsmClass.UDHI, bytes((0x05, _CONCAT_IEI, 0x03, ref, total, i)) + part)
        for i, part in enumerate(parts, 1)
    ]


def receipt_requested(registered_delivery: int) -> bool:
    """True when a submit_sm asks for an SMSC delivery receipt (SMPP 3.4 §5.2.17 bits 1..0).

    01: on delivery or failure; 10: on failure only; 00 none; 11 is reserved (none).
    """
    return registered_delivery & 0x03 in (1, 2)


def receipt_wanted(registered_delivery: int, delivered: bool) -> bool:
    """Whether a receipt goes out for this outcome (SMPP 3.4 §5.2.17)."""
    mode = registered_delivery & 0x03
    return mode == 1 or (mode == 2 and not delivered)


# Characters with the same code in ASCII and in the GSM 7-bit default alphabet (TS 23.038
# §6.2.1): a receipt reads the same to a client that parses it as ASCII (jSMPP) and to one that
# decodes data_coding 0x00 as GSM. Not `$` (GSM 0x02), `@` (0x00), `_` (0x11), nor letters
# outside A-Z.
_RECEIPT_SAFE = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 !\"#%&'()*+,-./:;<=>?"
)


def receipt_excerpt(text: str, length: int = 20) -> str:
    """The receipt's `text:` field: the first characters, each one a safe one or `?`.

    Whitespace becomes a space (a line break inside a receipt splits it for line-based
    parsers); anything else outside _RECEIPT_SAFE (Cyrillic, emoji, `$`, `@`) becomes `?`.
    """
    return "".join(c if c in _RECEIPT_SAFE else " " if c.isspace() else "?" for c in text[:length])


def _date(t: float) -> str:
    return time.strftime("%y%m%d%H%M", time.gmtime(t))


def receipt_text(
    message_id: str, submitted: float, done: float, state: MessageState, text: str
) -> str:
    """SMPP 3.4 Appendix B delivery receipt text (dates YYMMDDhhmm, UTC), ASCII only."""
    stat = {MessageState.DELIVERED: "DELIVRD", MessageState.EXPIRED: "EXPIRED"}.get(
        state, "UNDELIV"
    )
    dlvrd = "001" if state == MessageState.DELIVERED else "000"
    return (
        f"id:{message_id} sub:001 dlvrd:{dlvrd} submit date:{_date(submitted)}"
        f" done date:{_date(done)} stat:{stat} err:000 text:{receipt_excerpt(text)}"
    )


def receipt_pdu(
    message_id: str,
    original_source: str,
    original_destination: str,
    submitted: float,
    done: float,
    state: MessageState,
    text: str,
) -> DeliverSm:
    """A delivery receipt (SMPP 3.4 §2.11, §5.2.12): esm_class 0x04, addresses swapped.

    Always data_coding 0x00 whatever the SMS was (Appendix B's format is text for machines:
    Kannel hands a UCS-2 receipt to the application as raw UTF-16, jSMPP parses it as ASCII).
    """
    data, coding = encode_text(
        receipt_text(message_id, submitted, done, state, text), DataCoding.SMSC_DEFAULT
    )
    return DeliverSm(
        source_addr_ton=Ton.INTERNATIONAL,
        source_addr_npi=Npi.ISDN,
        source_addr=original_destination,
        dest_addr_ton=Ton.INTERNATIONAL,
        dest_addr_npi=Npi.ISDN,
        destination_addr=original_source,
        esm_class=EsmClass.DELIVERY_RECEIPT,
        data_coding=coding,
        short_message=data,
        tlvs=(
            tlv_cstring(Tag.RECEIPTED_MESSAGE_ID, message_id),
            tlv_u8(Tag.MESSAGE_STATE, int(state)),
        ),
    )
