"""User data headers of MO SMS, sans-IO: find the concatenation IE, split header from text.

A submit_sm with UDHI set in esm_class (SMPP 3.4 §5.2.12, bit 6 = 0x40) starts its
short_message (or message_payload) with a User Data Header (TS 23.040 §9.2.3.24): UDHL, then
information elements (IEI, IEDL, IED). Concatenation uses IE 0x00 (8-bit reference,
§9.2.3.24.1) or 0x08 (16-bit reference, §9.2.3.24.8). The server keeps parts in the store
until their set is complete; here is only what the bytes say.
"""

from __future__ import annotations

from dataclasses import dataclass

from ussd.smpp.constants import CommandStatus, EsmClass
from ussd.smpp.pdu import SmppError

IEI_CONCAT_8 = 0x00  # TS 23.040 §9.2.3.24.1: reference, total, sequence (1 octet each)
IEI_CONCAT_16 = 0x08  # TS 23.040 §9.2.3.24.8: reference (2 octets), total, sequence


class UdhError(SmppError, ValueError):
    """A User Data Header that does not parse: the submit_sm is refused with `status`."""

    status = CommandStatus.ESME_RINVESMCLASS  # the UDHI bit promised a header that is not there

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Concat:
    """The concatenation IE of one part: which set, how many parts, which one this is."""

    reference: int
    total: int
    seq: int
    reference_bits: int = 8


@dataclass(frozen=True, slots=True)
class UserData:
    """short_message split into its concatenation IE (if any) and the text octets."""

    concat: Concat | None
    payload: bytes


def split_user_data(message: bytes, esm_class: int) -> UserData:
    """Header and text of an MO short_message; UdhError when UDHI is set and the UDH is bad.

    Without UDHI the whole message is text. IEs other than concatenation (ports, national
    language shift, …) are skipped; when an IE repeats, the last one counts (TS 23.040
    §9.2.3.24). A concatenation IE with total 0, sequence 0 or sequence > total is one a handset
    would ignore (§9.2.3.24.1); a harness sent it by mistake, so it is refused instead.
    """
    if not esm_class & EsmClass.UDHI:
        return UserData(None, message)
    if not message:
        raise UdhError("UDHI set but the message is empty (no UDHL)")
    udhl = message[0]
    if udhl == 0:
        raise UdhError("UDHI set but UDHL is 0")
    if 1 + udhl > len(message):
        raise UdhError(f"UDHL {udhl} runs past the {len(message)}-octet message")
    header = message[1 : 1 + udhl]
    concat: Concat | None = None
    pos = 0
    while pos < len(header):
        if pos + 2 > len(header):
            raise UdhError(f"information element at octet {pos} has no length")
        iei, iedl = header[pos], header[pos + 1]
        data = header[pos + 2 : pos + 2 + iedl]
        if len(data) != iedl:
            raise UdhError(f"IE 0x{iei:02X} length {iedl} runs past UDHL {udhl}")
        if iei == IEI_CONCAT_8:
            if iedl != 3:
                raise UdhError(f"concatenation IE 0x00 with length {iedl} (expected 3)")
            concat = Concat(data[0], data[1], data[2], 8)
        elif iei == IEI_CONCAT_16:
            if iedl != 4:
                raise UdhError(f"concatenation IE 0x08 with length {iedl} (expected 4)")
            concat = Concat(int.from_bytes(data[:2], "big"), data[2], data[3], 16)
        pos += 2 + iedl
    if concat is not None:
        if concat.total == 0:
            raise UdhError("concatenation IE with 0 parts")
        if not 1 <= concat.seq <= concat.total:
            raise UdhError(f"concatenation part {concat.seq} of {concat.total}")
    return UserData(concat, message[1 + udhl :])


def udh_concat(reference: int, total: int, seq: int, reference_bits: int = 8) -> bytes:
    """A UDH holding only a concatenation IE (for building parts, e.g. in tests)."""
    if reference_bits == 16:
        return bytes((6, IEI_CONCAT_16, 4)) + reference.to_bytes(2, "big") + bytes((total, seq))
    return bytes((5, IEI_CONCAT_8, 3, reference, total, seq))
