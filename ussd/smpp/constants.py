"""SMPP 3.4 wire constants: command ids, statuses, TLV tags, USSD operations, data codings.

Names follow the SMPP 3.4 specification (issue 1.2) so they can be grepped against it. The
values are plain ints on the wire; decoders keep unknown values as ints (a peer may send any
byte), and these enums are for building PDUs and for readable logs.
"""

from __future__ import annotations

from enum import IntEnum

# SMPP 3.4 §3.2: sequence_number runs 0x00000001..0x7FFFFFFF.
MIN_SEQUENCE = 0x00000001
MAX_SEQUENCE = 0x7FFFFFFF

# SMPP 3.4 §3.2: the header is four 4-octet integers.
HEADER_LENGTH = 16

# SMPP 3.4 §5.2.4: interface_version for 3.4 is 0x34.
SMPP_VERSION_34 = 0x34

# SMPP 3.4 §5.1.2.1: the response to a request has the request's id with bit 31 set.
RESPONSE_BIT = 0x80000000


class CommandId(IntEnum):
    """SMPP 3.4 §5.1.2.1 command_id values."""

    GENERIC_NACK = 0x80000000
    BIND_RECEIVER = 0x00000001
    BIND_RECEIVER_RESP = 0x80000001
    BIND_TRANSMITTER = 0x00000002
    BIND_TRANSMITTER_RESP = 0x80000002
    QUERY_SM = 0x00000003
    QUERY_SM_RESP = 0x80000003
    SUBMIT_SM = 0x00000004
    SUBMIT_SM_RESP = 0x80000004
    DELIVER_SM = 0x00000005
    DELIVER_SM_RESP = 0x80000005
    UNBIND = 0x00000006
    UNBIND_RESP = 0x80000006
    REPLACE_SM = 0x00000007
    REPLACE_SM_RESP = 0x80000007
    CANCEL_SM = 0x00000008
    CANCEL_SM_RESP = 0x80000008
    BIND_TRANSCEIVER = 0x00000009
    BIND_TRANSCEIVER_RESP = 0x80000009
    OUTBIND = 0x0000000B
    ENQUIRE_LINK = 0x00000015
    ENQUIRE_LINK_RESP = 0x80000015
    SUBMIT_MULTI = 0x00000021
    SUBMIT_MULTI_RESP = 0x80000021
    ALERT_NOTIFICATION = 0x00000102
    DATA_SM = 0x00000103
    DATA_SM_RESP = 0x80000103


# SMPP 3.4 §4: requests that have no response PDU (answered, if at all, by generic_nack).
NO_RESPONSE: frozenset[int] = frozenset({CommandId.OUTBIND, CommandId.ALERT_NOTIFICATION})

KNOWN_COMMAND_IDS: frozenset[int] = frozenset(CommandId)


def is_response(command_id: int) -> bool:
    """True for response ids (bit 31 set), generic_nack included."""
    return bool(command_id & RESPONSE_BIT)


class CommandStatus(IntEnum):
    """SMPP 3.4 §5.1.3 command_status values (the complete 3.4 table)."""

    ESME_ROK = 0x00000000
    ESME_RINVMSGLEN = 0x00000001
    ESME_RINVCMDLEN = 0x00000002
    ESME_RINVCMDID = 0x00000003
    ESME_RINVBNDSTS = 0x00000004
    ESME_RALYBND = 0x00000005
    ESME_RINVPRTFLG = 0x00000006
    ESME_RINVREGDLVFLG = 0x00000007
    ESME_RSYSERR = 0x00000008
    ESME_RINVSRCADR = 0x0000000A
    ESME_RINVDSTADR = 0x0000000B
    ESME_RINVMSGID = 0x0000000C
    ESME_RBINDFAIL = 0x0000000D
    ESME_RINVPASWD = 0x0000000E
    ESME_RINVSYSID = 0x0000000F
    ESME_RCANCELFAIL = 0x00000011
    ESME_RREPLACEFAIL = 0x00000013
    ESME_RMSGQFUL = 0x00000014
    ESME_RINVSERTYP = 0x00000015
    ESME_RINVNUMDESTS = 0x00000033
    ESME_RINVDLNAME = 0x00000034
    ESME_RINVDESTFLAG = 0x00000040
    ESME_RINVSUBREP = 0x00000042
    ESME_RINVESMCLASS = 0x00000043
    ESME_RCNTSUBDL = 0x00000044
    ESME_RSUBMITFAIL = 0x00000045
    ESME_RINVSRCTON = 0x00000048
    ESME_RINVSRCNPI = 0x00000049
    ESME_RINVDSTTON = 0x00000050
    ESME_RINVDSTNPI = 0x00000051
    ESME_RINVSYSTYP = 0x00000053
    ESME_RINVREPFLAG = 0x00000054
    ESME_RINVNUMMSGS = 0x00000055
    ESME_RTHROTTLED = 0x00000058
    ESME_RINVSCHED = 0x00000061
    ESME_RINVEXPIRY = 0x00000062
    ESME_RINVDFTMSGID = 0x00000063
    ESME_RX_T_APPN = 0x00000064
    ESME_RX_P_APPN = 0x00000065
    ESME_RX_R_APPN = 0x00000066
    ESME_RQUERYFAIL = 0x00000067
    ESME_RINVOPTPARSTREAM = 0x000000C0
    ESME_ROPTPARNOTALLWD = 0x000000C1
    ESME_RINVPARLEN = 0x000000C2
    ESME_RMISSINGOPTPARAM = 0x000000C3
    ESME_RINVOPTPARAMVAL = 0x000000C4
    # The short spelling used by docs/smpp.md and by several SMSC vendors; same value.
    ESME_RINVOPTPARVAL = 0x000000C4
    ESME_RDELIVERYFAILURE = 0x000000FE
    ESME_RUNKNOWNERR = 0x000000FF


# SMPP 3.4 has no status for "data_coding not supported" (ESME_RINVDCS 0x104 only arrives in
# SMPP 5.0, and a 3.4 ESME may not know it). data_coding is a mandatory field, so the
# optional-parameter statuses (0xC0-0xC4) would misdirect the peer, and ESME_RINVESMCLASS
# names a different field. ESME_RSUBMITFAIL (0x45, "submit_sm or submit_multi failed") is the
# 3.4 status for a well-formed submit the SMSC refuses, which is exactly this case.
REFUSED_DATA_CODING_STATUS = CommandStatus.ESME_RSUBMITFAIL


def status_name(status: int) -> str:
    """Readable name of a command_status, e.g. 'ESME_RINVBNDSTS' or '0x00000400'."""
    try:
        return CommandStatus(status).name
    except ValueError:
        return f"0x{status:08X}"


def command_name(command_id: int) -> str:
    """Readable name of a command_id, e.g. 'submit_sm' or '0x00000099'."""
    try:
        return CommandId(command_id).name.lower()
    except ValueError:
        return f"0x{command_id:08X}"


class UssdServiceOp(IntEnum):
    """SMPP 3.4 §5.3.2.44 ussd_service_op (one octet)."""

    PSSD_INDICATION = 0
    PSSR_INDICATION = 1
    USSR_REQUEST = 2
    USSN_REQUEST = 3
    PSSD_RESPONSE = 16
    PSSR_RESPONSE = 17
    USSR_CONFIRM = 18
    USSN_CONFIRM = 19
    # SMPP 3.4 §5.3.2.44 reserves 32-255 for vendor-specific operations; 0x81 is the
    # "release/abort" operation common USSD gateways use, and docs/smpp.md accepts it as a release.
    RELEASE = 0x81


class DataCoding(IntEnum):
    """SMPP 3.4 §5.2.19 data_coding, plus the USSD DCS values gateways pass through it."""

    SMSC_DEFAULT = 0x00  # this SMSC's default alphabet is GSM 7-bit, unpacked (TS 23.038 §6.2.1)
    IA5 = 0x01  # IA5 (CCITT T.50) / ASCII (ANSI X3.4)
    OCTET_UNSPECIFIED = 0x02
    LATIN_1 = 0x03  # ISO-8859-1
    OCTET_UNSPECIFIED_2 = 0x04
    JIS = 0x05
    CYRILLIC = 0x06  # ISO-8859-5
    LATIN_HEBREW = 0x07
    UCS2 = 0x08  # ISO/IEC-10646, sent big-endian
    PICTOGRAM = 0x09
    ISO_2022_JP = 0x0A
    EXTENDED_KANJI_JIS = 0x0D
    KS_C_5601 = 0x0E
    # 0x0F is "reserved" in SMPP 3.4 §5.2.19, but USSD gateways copy the USSD DCS into
    # data_coding, and in the CBS/USSD coding scheme (TS 23.038 §5) 0x0F is group 0000
    # "GSM 7-bit default alphabet", language unspecified: the DCS nearly every USSD string has.
    USSD_GSM7 = 0x0F
    # 0x48 is reserved in SMPP 3.4 but is TS 23.038 §5 group 01xx ("general data coding"):
    # bit 5 = 0 uncompressed, bit 4 = 0 no class, bits 3..2 = 10 UCS2. The SMS DCS (TS 23.038
    # §4, "automatic deletion" group 01xx) reads the same bits the same way: UCS2, no class.
    USSD_UCS2 = 0x48


# docs/smpp.md: the data_coding values accepted from a harness.
ACCEPTED_DATA_CODINGS: frozenset[int] = frozenset(
    {
        DataCoding.SMSC_DEFAULT,
        DataCoding.IA5,
        DataCoding.LATIN_1,
        DataCoding.UCS2,
        DataCoding.USSD_GSM7,
        DataCoding.USSD_UCS2,
    }
)


class Tag(IntEnum):
    """SMPP 3.4 §5.3.2 optional parameter (TLV) tags."""

    DEST_ADDR_SUBUNIT = 0x0005
    DEST_NETWORK_TYPE = 0x0006
    DEST_BEARER_TYPE = 0x0007
    DEST_TELEMATICS_ID = 0x0008
    SOURCE_ADDR_SUBUNIT = 0x000D
    SOURCE_NETWORK_TYPE = 0x000E
    SOURCE_BEARER_TYPE = 0x000F
    SOURCE_TELEMATICS_ID = 0x0010
    QOS_TIME_TO_LIVE = 0x0017
    PAYLOAD_TYPE = 0x0019
    ADDITIONAL_STATUS_INFO_TEXT = 0x001D
    RECEIPTED_MESSAGE_ID = 0x001E
    MS_MSG_WAIT_FACILITIES = 0x0030
    PRIVACY_INDICATOR = 0x0201
    SOURCE_SUBADDRESS = 0x0202
    DEST_SUBADDRESS = 0x0203
    USER_MESSAGE_REFERENCE = 0x0204
    USER_RESPONSE_CODE = 0x0205
    SOURCE_PORT = 0x020A
    DESTINATION_PORT = 0x020B
    SAR_MSG_REF_NUM = 0x020C
    LANGUAGE_INDICATOR = 0x020D
    SAR_TOTAL_SEGMENTS = 0x020E
    SAR_SEGMENT_SEQNUM = 0x020F
    SC_INTERFACE_VERSION = 0x0210
    CALLBACK_NUM_PRES_IND = 0x0302
    CALLBACK_NUM_ATAG = 0x0303
    NUMBER_OF_MESSAGES = 0x0304
    CALLBACK_NUM = 0x0381
    DPF_RESULT = 0x0420
    SET_DPF = 0x0421
    MS_AVAILABILITY_STATUS = 0x0422
    NETWORK_ERROR_CODE = 0x0423
    MESSAGE_PAYLOAD = 0x0424
    DELIVERY_FAILURE_REASON = 0x0425
    MORE_MESSAGES_TO_SEND = 0x0426
    MESSAGE_STATE = 0x0427
    USSD_SERVICE_OP = 0x0501
    DISPLAY_TIME = 0x1201
    SMS_SIGNAL = 0x1203
    MS_VALIDITY = 0x1204
    ALERT_ON_MESSAGE_DELIVERY = 0x130C
    ITS_REPLY_TYPE = 0x1380
    ITS_SESSION_INFO = 0x1383


class MessageState(IntEnum):
    """SMPP 3.4 §5.2.28 message_state (query_sm_resp, message_state TLV in receipts)."""

    ENROUTE = 1
    DELIVERED = 2
    EXPIRED = 3
    DELETED = 4
    UNDELIVERABLE = 5
    ACCEPTED = 6
    UNKNOWN = 7
    REJECTED = 8


class Ton(IntEnum):
    """SMPP 3.4 §5.2.5 type of number."""

    UNKNOWN = 0
    INTERNATIONAL = 1
    NATIONAL = 2
    NETWORK_SPECIFIC = 3
    SUBSCRIBER_NUMBER = 4
    ALPHANUMERIC = 5
    ABBREVIATED = 6


class Npi(IntEnum):
    """SMPP 3.4 §5.2.6 numbering plan indicator."""

    UNKNOWN = 0
    ISDN = 1  # E.163/E.164
    DATA = 3  # X.121
    TELEX = 4  # F.69
    LAND_MOBILE = 6  # E.212
    NATIONAL = 8
    PRIVATE = 9
    ERMES = 10
    INTERNET = 14  # IP
    WAP_CLIENT_ID = 18


class EsmClass(IntEnum):
    """SMPP 3.4 §5.2.12 esm_class bits the gateway uses."""

    DEFAULT = 0x00
    DELIVERY_RECEIPT = 0x04  # message type bits 5..2 = 0001: SMSC delivery receipt
    UDHI = 0x40  # GSM network specific feature: short_message starts with a UDH
