"""How each USSD aggregator talks to its applications over HTTP (docs/apps.md "Dialects").

A dialect is pure: it turns one subscriber turn into an HTTP request (`request`), an HTTP
answer into the next screen (`answer`) and the end of a dialog into the notification the
provider sends, if it sends one (`end`). It does no I/O; the `http` performer sends what it
builds, the way h11 leaves the socket to its caller.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlencode
from xml.parsers import expat
from xml.sax.saxutils import escape


@dataclass(frozen=True, slots=True)
class AppTurn:
    """One request to an app: who, which dialog, and every input so far."""

    session: str
    msisdn: str  # international digits, no '+'
    service_code: str  # e.g. "*384#"
    dial: str  # the whole dial string of the first request, e.g. "*384*1*2#"
    inputs: tuple[str, ...]  # every subscriber input so far, direct-dial inputs first
    new: bool  # first request of the dialog
    sequence: int  # 1 on the first request
    client_state: str | None  # echoed back (Hubtel)
    network_code: str
    operator: str


@dataclass(frozen=True, slots=True)
class AppTarget:
    """Where an app lives and what goes with every request to it."""

    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    end_url: str | None = None  # Africa's Talking end-of-session notification
    network_code: str = "25001"  # MCC+MNC sent to the app


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """A request the `http` performer sends as is."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class AppAnswer:
    """The app's next screen: `end` means show it and close the dialog."""

    text: str
    end: bool
    client_state: str | None = None


class AppAnswerError(ValueError):
    """The app's answer is unusable (status, unparseable, empty, not CON/END); says why."""


@dataclass(frozen=True, slots=True)
class DialogEnd:
    """Told to the app when a dialog ends, in the dialects that tell it."""

    # "completed" (the app ended it) | "release" (the subscriber) | "timeout" | "error"
    cause: str
    duration_ms: int = 0
    last_answer: str = ""  # the app's last screen text
    hops: int = 0  # requests sent to the app in this dialog
    error: str = ""  # why, for cause "error" (Africa's Talking errorMessage)
    ended_at: float = 0.0  # wall-clock seconds since the epoch (Africa's Talking `date`)


class Dialect(Protocol):
    """One aggregator's wire format; pure functions of their arguments."""

    name: str

    def request(self, turn: AppTurn, app: AppTarget) -> HttpRequest:
        """The HTTP request for this turn."""
        ...

    def answer(self, status: int, content_type: str, body: bytes) -> AppAnswer:
        """The app's screen, or AppAnswerError saying why there is none."""
        ...

    def end(self, turn: AppTurn, app: AppTarget, end: DialogEnd) -> HttpRequest | None:
        """The end-of-dialog notification this dialect sends, if any; `turn` is the last one."""
        ...


# An answer is one USSD screen, perhaps paginated (docs/apps.md); 64 KiB is far more than
# any app needs and bounds the work done on a broken or hostile one. The performer reads at most
# this much before handing the body over.
MAX_ANSWER_BYTES = 64 * 1024

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
XML = "text/xml; charset=utf-8"

# The application's own id at the aggregator (Nalo and Arkesel `USERID`/`userID`): ussd-sim
# hands out one id, as a single-tenant aggregator account would.
USER_ID = "ussdsim"


def _headers(app: AppTarget, content_type: str) -> dict[str, str]:
    # The app's configured headers (API keys) win over ours except Content-Type, which
    # must describe the body we build.
    headers = {k: v for k, v in app.headers.items() if k.lower() != "content-type"}
    headers["Content-Type"] = content_type
    return headers


def _post(app: AppTarget, url: str, content_type: str, body: bytes) -> HttpRequest:
    return HttpRequest("POST", url, _headers(app, content_type), body)


def _json_body(data: Mapping[str, Any]) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _bare_code(service_code: str) -> str:
    """`*714#` → `714`: Hubtel's ServiceCode carries neither the star nor the hash."""
    return service_code.strip().removeprefix("*").removesuffix("#")


def _latest(turn: AppTurn) -> str:
    """What the subscriber just sent: the whole dial string first, then the last input."""
    if turn.new:
        return turn.dial
    return turn.inputs[-1] if turn.inputs else ""


def _check_status(status: int) -> None:
    if not 200 <= status <= 299:
        raise AppAnswerError(f"the app answered HTTP {status}")


def _check_size(body: bytes) -> None:
    if len(body) > MAX_ANSWER_BYTES:
        raise AppAnswerError(f"the answer is {len(body)} bytes, over {MAX_ANSWER_BYTES}")


def _body_text(body: bytes) -> str:
    _check_size(body)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AppAnswerError(f"the answer is not UTF-8 (byte {exc.start})") from None
    return text.removeprefix("\ufeff")  # a BOM some frameworks write before the body


def _text(value: Any, field_name: str) -> str:
    """A screen text from a JSON field: a non-empty string (numbers are not screens)."""
    if value is None:
        raise AppAnswerError(f"the answer has no {field_name}")
    if not isinstance(value, str):
        raise AppAnswerError(f"{field_name} is {type(value).__name__}, not a string")
    if not value.strip():
        raise AppAnswerError(f"{field_name} is empty")
    return value


def _flag(value: Any, field_name: str) -> bool:
    """A JSON boolean; the strings "true"/"false" too, which PHP and form encoders send."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if value is None:
        raise AppAnswerError(f"the answer has no {field_name}")
    raise AppAnswerError(f"{field_name} is {value!r}, not true or false")


def _json_object(body: bytes) -> dict[str, Any]:
    """The answer's JSON object with its keys folded to lower case.

    Providers' own documents disagree on the casing of the same field (Hubtel's reference
    mixes `SessionId` and `serviceCode`), so answers are read case-insensitively.
    """
    text = _body_text(body)
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise AppAnswerError(f"the answer is not JSON: {str(exc)[:80]}") from None
    if not isinstance(data, dict):
        raise AppAnswerError(f"the answer is JSON {type(data).__name__}, not an object")
    return {str(k).lower(): v for k, v in data.items()}


def _client_state(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else json.dumps(value)


# --- Africa's Talking -------------------------------------------------------------------------


def at_text(inputs: tuple[str, ...]) -> str:
    """Africa's Talking `text`: every input so far joined with `*` ("" before any input).

    A `*` typed inside an input is passed on as typed, so the app cannot tell `1*2` typed once
    from `1` then `2`: Africa's Talking's own format has no way to say it either.
    """
    return "*".join(inputs)


_AT_STATUS = {"completed": "Success", "release": "Incomplete", "timeout": "Incomplete"}


class AfricasTalking:
    """Form POST in, `CON `/`END ` text out, and a form POST to `end_url` at the end."""

    __slots__ = ()
    name = "africastalking"

    def request(self, turn: AppTurn, app: AppTarget) -> HttpRequest:
        form = {
            "sessionId": turn.session,
            "serviceCode": turn.service_code,
            "phoneNumber": "+" + turn.msisdn,
            "networkCode": turn.network_code,
            "text": at_text(turn.inputs),
        }
        return _post(app, app.url, FORM, urlencode(form).encode("ascii"))

    def answer(self, status: int, content_type: str, body: bytes) -> AppAnswer:
        _check_status(status)
        text = _body_text(body)
        for prefix, end in (("CON", False), ("END", True)):
            if text.startswith(prefix):
                rest = text[len(prefix) :]
                if rest and not rest[0].isspace():
                    break  # "CONTINUE" is not "CON" + text
                # One separator goes: a space, or a line break (CRLF from Windows servers).
                screen = rest.removeprefix("\r\n") if rest.startswith("\r\n") else rest[1:]
                screen = screen.rstrip()
                if not screen.strip():
                    raise AppAnswerError(f"{prefix} with an empty text")
                return AppAnswer(screen, end)
        raise AppAnswerError(f"the answer does not begin with CON or END: {text[:40]!r}")

    def end(self, turn: AppTurn, app: AppTarget, end: DialogEnd) -> HttpRequest | None:
        if not app.end_url:
            return None
        status = _AT_STATUS.get(end.cause, "Failed")
        # lastAppResponse is the app's answer as it sent it, prefix included.
        last = ("END " if end.cause == "completed" else "CON ") + end.last_answer
        form = {
            "sessionId": turn.session,
            "serviceCode": turn.service_code,
            "phoneNumber": "+" + turn.msisdn,
            "networkCode": turn.network_code,
            "date": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(end.ended_at)),
            "status": status,
            "durationInMillis": str(end.duration_ms),
            "hopsCount": str(end.hops),
            "input": at_text(turn.inputs),
            "lastAppResponse": last if end.last_answer else "",
            "errorMessage": end.error if status == "Failed" else "",
            "cost": "0",
        }
        return _post(app, app.end_url, FORM, urlencode(form).encode("ascii"))


# --- Hubtel USSD (JSON, PascalCase) -----------------------------------------------------------

_HUBTEL_END = {"release": "Release", "timeout": "Timeout"}


class Hubtel:
    """Hubtel's USSD API: only the latest input, the whole dial string on Initiation."""

    __slots__ = ()
    name = "hubtel"

    def _body(self, turn: AppTurn, kind: str, message: str, step: int = 0) -> dict[str, Any]:
        # `step` 1 for an end notice: it is one more request in the dialog, and Sequence counts
        # requests.
        return {
            "Mobile": turn.msisdn,
            "SessionId": turn.session,
            "ServiceCode": _bare_code(turn.service_code),
            "Type": kind,
            "Message": message,
            "Operator": turn.operator,
            "Sequence": turn.sequence + step,
            "ClientState": turn.client_state or "",
        }

    def request(self, turn: AppTurn, app: AppTarget) -> HttpRequest:
        kind = "Initiation" if turn.new else "Response"
        return _post(app, app.url, JSON, _json_body(self._body(turn, kind, _latest(turn))))

    def answer(self, status: int, content_type: str, body: bytes) -> AppAnswer:
        _check_status(status)
        data = _json_object(body)
        kind = data.get("type")
        if not isinstance(kind, str) or kind.lower() not in ("response", "release"):
            raise AppAnswerError(f"Type is {kind!r}, not Response or Release")
        text = _text(data.get("message"), "Message")
        return AppAnswer(text, kind.lower() == "release", _client_state(data.get("clientstate")))

    def end(self, turn: AppTurn, app: AppTarget, end: DialogEnd) -> HttpRequest | None:
        kind = _HUBTEL_END.get(end.cause)
        if kind is None:
            return None  # the app ended it, or its answer was unusable: nothing to tell
        return _post(app, app.url, JSON, _json_body(self._body(turn, kind, "", step=1)))


# --- Hubtel Programmable Services -------------------------------------------------------------


class HubtelProgrammable:
    """Hubtel Programmable Services: lower-case types, a Platform, Label/DataType answers.

    Hubtel's reference sample and its .NET SDK send PascalCase keys (`SessionId`, `Type`) with
    lower-case type values (`initiation`); other simulators send camelCase keys. ussd-sim sends
    the provider's casing and reads answers in either.
    """

    __slots__ = ()
    name = "hubtel-ps"

    def _body(self, turn: AppTurn, kind: str, message: str, step: int = 0) -> dict[str, Any]:
        return {
            "SessionId": turn.session,
            "Type": kind,
            "Mobile": turn.msisdn,
            "Message": message,
            "ServiceCode": _bare_code(turn.service_code),
            "Operator": turn.operator,
            "ClientState": turn.client_state or "",
            "Sequence": turn.sequence + step,
            "Platform": "USSD",
        }

    def request(self, turn: AppTurn, app: AppTarget) -> HttpRequest:
        kind = "initiation" if turn.new else "response"
        return _post(app, app.url, JSON, _json_body(self._body(turn, kind, _latest(turn))))

    def answer(self, status: int, content_type: str, body: bytes) -> AppAnswer:
        _check_status(status)
        data = _json_object(body)
        kind = data.get("type")
        # AddToCart hands a USSD subscriber to checkout, which ends the USSD dialog (the SDK
        # turns it into a release on USSD).
        if not isinstance(kind, str) or kind.lower() not in ("response", "release", "addtocart"):
            raise AppAnswerError(f"type is {kind!r}, not response or release")
        text = _text(data.get("message"), "message")
        return AppAnswer(text, kind.lower() != "response", _client_state(data.get("clientstate")))

    def end(self, turn: AppTurn, app: AppTarget, end: DialogEnd) -> HttpRequest | None:
        kind = {"release": "release", "timeout": "timeout"}.get(end.cause)
        if kind is None:
            return None
        return _post(app, app.url, JSON, _json_body(self._body(turn, kind, "", step=1)))


# --- Arkesel ----------------------------------------------------------------------------------


class Arkesel:
    """Arkesel: `newSession` on the first request, `continueSession` in the answer."""

    __slots__ = ()
    name = "arkesel"

    def request(self, turn: AppTurn, app: AppTarget) -> HttpRequest:
        data = {
            "sessionID": turn.session,
            "userID": USER_ID,
            "newSession": turn.new,
            "msisdn": turn.msisdn,
            "userData": _latest(turn),
            "network": turn.operator,
        }
        return _post(app, app.url, JSON, _json_body(data))

    def answer(self, status: int, content_type: str, body: bytes) -> AppAnswer:
        _check_status(status)
        data = _json_object(body)
        text = _text(data.get("message"), "message")
        return AppAnswer(text, not _flag(data.get("continuesession"), "continueSession"))

    def end(self, turn: AppTurn, app: AppTarget, end: DialogEnd) -> HttpRequest | None:
        return None  # Arkesel documents no end-of-session callback


# --- Nalo -------------------------------------------------------------------------------------


class Nalo:
    """Nalo Solutions: upper-case keys, `MSGTYPE` true on the first request and to continue."""

    __slots__ = ()
    name = "nalo"

    def request(self, turn: AppTurn, app: AppTarget) -> HttpRequest:
        data = {
            "USERID": USER_ID,
            "MSISDN": turn.msisdn,
            "USERDATA": _latest(turn),
            "MSGTYPE": turn.new,
            "NETWORK": turn.operator.upper(),
            "SESSIONID": turn.session,
        }
        return _post(app, app.url, JSON, _json_body(data))

    def answer(self, status: int, content_type: str, body: bytes) -> AppAnswer:
        _check_status(status)
        data = _json_object(body)
        text = _text(data.get("msg"), "MSG")
        return AppAnswer(text, not _flag(data.get("msgtype"), "MSGTYPE"))

    def end(self, turn: AppTurn, app: AppTarget, end: DialogEnd) -> HttpRequest | None:
        return None  # Nalo documents no end-of-session callback


# --- TruRoute (XML) ---------------------------------------------------------------------------

_TRUROUTE_END = {"release": 3, "timeout": 4}
_MAX_XML_DEPTH = 8


class _XmlRefused(ValueError):
    pass


def _refuse_dtd(*_args: object) -> None:
    # No DOCTYPE means no entity declarations, so nothing can expand (the billion laughs
    # and external entities both need a DTD); this is what defusedxml's forbid_dtd does.
    raise _XmlRefused("a DOCTYPE is not allowed")


def parse_ussd_xml(body: bytes) -> dict[str, str]:
    """The text of each child of a `<ussd>` root (`<premium>` flattened), or AppAnswerError."""
    _check_size(body)
    parser = expat.ParserCreate()
    fields: dict[str, str] = {}
    path: list[str] = []
    buffer: list[str] = []

    def start(name: str, _attrs: dict[str, str]) -> None:
        if len(path) >= _MAX_XML_DEPTH:
            raise _XmlRefused("nested too deeply")
        if not path and name != "ussd":
            raise _XmlRefused(f"the root is <{name}>, not <ussd>")
        path.append(name)
        buffer.clear()

    def end(name: str) -> None:
        if len(path) >= 2:
            fields.setdefault(name.lower(), "".join(buffer))
        path.pop()
        buffer.clear()

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = buffer.append
    parser.StartDoctypeDeclHandler = _refuse_dtd
    parser.EntityDeclHandler = _refuse_dtd
    parser.ExternalEntityRefHandler = _refuse_dtd  # type: ignore[assignment]
    try:
        parser.Parse(body, True)
    except _XmlRefused as exc:
        raise AppAnswerError(f"the answer is refused as XML: {exc}") from None
    except (expat.ExpatError, ValueError) as exc:
        raise AppAnswerError(f"the answer is not XML: {exc}") from None
    return fields


# XML 1.0 §2.2 Char: tab, line feed, carriage return and everything from U+0020 but the
# surrogates and U+FFFE/U+FFFF. Anything else cannot be written, escaped or not.
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_safe(text: str) -> str:
    """Text with the characters XML 1.0 cannot carry left out (a control key, say)."""
    return _NOT_XML.sub("", text)


def _xml_text(text: str) -> str:
    # A bare CR would reach the app as LF (XML 1.0 §2.11 end-of-line handling): send it as a
    # character reference, which parsers keep.
    return escape(xml_safe(text), {"\r": "&#13;"})


class TruRoute:
    """TruRoute-USSD: `<ussd>` XML both ways, types 1 request, 2 response, 3 release, 4 timeout."""

    __slots__ = ()
    name = "truroute"

    def _body(self, turn: AppTurn, kind: int, message: str) -> bytes:
        xml = (
            '<?xml version="1.0" encoding="UTF-8"?>'
            f"<ussd><msisdn>{escape(turn.msisdn)}</msisdn>"
            f"<sessionid>{escape(turn.session)}</sessionid>"
            f"<type>{kind}</type><msg>{_xml_text(message)}</msg></ussd>"
        )
        return xml.encode("utf-8")

    def request(self, turn: AppTurn, app: AppTarget) -> HttpRequest:
        kind = 1 if turn.new else 2
        return _post(app, app.url, XML, self._body(turn, kind, _latest(turn)))

    def answer(self, status: int, content_type: str, body: bytes) -> AppAnswer:
        _check_status(status)
        fields = parse_ussd_xml(body.removeprefix(b"\xef\xbb\xbf"))
        kind = fields.get("type", "").strip()
        if kind == "5":
            raise AppAnswerError("type 5 (redirect to another service) is not supported")
        if kind not in ("2", "3"):
            raise AppAnswerError(f"type is {kind!r}, not 2 (response) or 3 (release)")
        return AppAnswer(_text(fields.get("msg"), "msg"), kind == "3")

    def end(self, turn: AppTurn, app: AppTarget, end: DialogEnd) -> HttpRequest | None:
        kind = _TRUROUTE_END.get(end.cause)
        if kind is None:
            return None
        return _post(app, app.url, XML, self._body(turn, kind, ""))


# --- ussd-sim's own JSON ----------------------------------------------------------------------


class Json:
    """ussd-sim's own JSON (docs/apps.md): every input as a list, `{text, end}` back."""

    __slots__ = ()
    name = "json"

    def request(self, turn: AppTurn, app: AppTarget) -> HttpRequest:
        data = {
            "session": turn.session,
            "msisdn": turn.msisdn,
            "code": turn.service_code,
            "text": _latest(turn),
            "inputs": list(turn.inputs),
            "new": turn.new,
        }
        return _post(app, app.url, JSON, _json_body(data))

    def answer(self, status: int, content_type: str, body: bytes) -> AppAnswer:
        _check_status(status)
        data = _json_object(body)
        return AppAnswer(_text(data.get("text"), "text"), _flag(data.get("end"), "end"))

    def end(self, turn: AppTurn, app: AppTarget, end: DialogEnd) -> HttpRequest | None:
        return None


DIALECTS: Mapping[str, Dialect] = {
    d.name: d
    for d in (
        AfricasTalking(),
        Hubtel(),
        HubtelProgrammable(),
        Arkesel(),
        Nalo(),
        TruRoute(),
        Json(),
    )
}
