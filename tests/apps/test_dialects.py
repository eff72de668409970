"""The seven app dialects against golden fixtures written from each provider's documentation.

Each tests/apps/golden/<dialect>.yaml names its sources; docs/apps.md "Dialects" has the tables.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from ussd.apps.dialects import (
    DIALECTS,
    MAX_ANSWER_BYTES,
    AppAnswer,
    AppAnswerError,
    AppTarget,
    AppTurn,
    DialogEnd,
    HttpRequest,
    at_text,
    parse_ussd_xml,
    xml_safe,
)

GOLDEN = Path(__file__).parent / "golden"
FILES = sorted(GOLDEN.glob("*.yaml"))


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def turn_of(data: dict[str, Any]) -> AppTurn:
    return AppTurn(**{**data, "inputs": tuple(data["inputs"])})


def target_of(data: dict[str, Any]) -> AppTarget:
    return AppTarget(url=data["url"], headers=data.get("headers", {}), end_url=data.get("end_url"))


def cases(section: str) -> list[Any]:
    out = []
    for path in FILES:
        golden = load(path)
        for case in golden.get(section, []):
            out.append(pytest.param(golden, case, id=f"{golden['dialect']}: {case['name']}"))
    return out


def check_body(request: HttpRequest, case: dict[str, Any]) -> None:
    if "form" in case:
        # Field order is part of nothing a form decoder sees; the values are exact.
        assert dict(parse_qsl(request.body.decode("ascii"), keep_blank_values=True)) == case["form"]
    elif "json" in case:
        assert json.loads(request.body) == case["json"]
    else:
        assert request.body.decode("utf-8") == case["xml"]


def test_every_dialect_has_golden_fixtures() -> None:
    assert (
        {load(path)["dialect"] for path in FILES}
        == set(DIALECTS)
        == {
            "africastalking",
            "hubtel",
            "hubtel-ps",
            "arkesel",
            "nalo",
            "truroute",
            "json",
        }
    )
    for name, dialect in DIALECTS.items():
        assert dialect.name == name


@pytest.mark.parametrize(("golden", "case"), cases("requests"))
def test_request(golden: dict[str, Any], case: dict[str, Any]) -> None:
    app = target_of(golden["app"])
    request = DIALECTS[golden["dialect"]].request(turn_of(case["turn"]), app)
    assert request.method == "POST"
    assert request.url == app.url
    content_type = request.headers["Content-Type"]
    assert content_type == case.get("content_type", content_type)
    for key, value in app.headers.items():
        assert request.headers[key] == value  # API keys go with every request
    check_body(request, case)


def answer_body(case: dict[str, Any]) -> bytes:
    if "body_hex" in case:
        return bytes.fromhex(case["body_hex"])
    if "body_repeat" in case:
        text, times = case["body_repeat"]
        return str(text).encode() * int(times)
    return str(case["body"]).encode("utf-8")


@pytest.mark.parametrize(("golden", "case"), cases("answers"))
def test_answer(golden: dict[str, Any], case: dict[str, Any]) -> None:
    dialect = DIALECTS[golden["dialect"]]
    status = case.get("status", 200)
    body = answer_body(case)
    if "error" in case:
        with pytest.raises(AppAnswerError, match=re.escape(case["error"])):
            dialect.answer(status, "text/plain", body)
    else:
        assert dialect.answer(status, "text/plain", body) == AppAnswer(
            case["text"], case["end"], case.get("client_state")
        )


@pytest.mark.parametrize(("golden", "case"), cases("ends"))
def test_end(golden: dict[str, Any], case: dict[str, Any]) -> None:
    app = target_of(golden["app"])
    notice = DIALECTS[golden["dialect"]].end(turn_of(case["turn"]), app, DialogEnd(**case["end"]))
    if case.get("none"):
        assert notice is None
        return
    assert notice is not None
    assert notice.method == "POST"
    assert notice.url == case["url"]
    check_body(notice, case)


def test_africastalking_sends_no_end_notice_without_end_url() -> None:
    golden = load(GOLDEN / "africastalking.yaml")
    app = AppTarget(url=golden["app"]["url"])
    turn = turn_of(golden["turns"]["third"])
    assert DIALECTS["africastalking"].end(turn, app, DialogEnd("release")) is None


@pytest.mark.parametrize(
    ("inputs", "text"),
    [
        ((), ""),  # the first request
        (("1",), "1"),
        (("1", "2"), "1*2"),
        (("1", "2", "3"), "1*2*3"),
        (("1", ""), "1*"),  # an empty reply is still a hop
        (("", "1"), "*1"),
        (("1*2",), "1*2"),  # a star typed inside one input: indistinguishable from two inputs
        (("12#",), "12#"),
    ],
)
def test_africastalking_text_rule(inputs: tuple[str, ...], text: str) -> None:
    assert at_text(inputs) == text


def test_a_typed_star_reads_as_two_inputs_to_an_africastalking_app() -> None:
    """The AT format cannot carry `*` inside an input: `1*2` typed once and `1`, `2` look alike."""
    assert at_text(("1*2",)) == at_text(("1", "2"))
    assert at_text(("1*2",)).split("*") == ["1", "2"]


def test_content_type_cannot_be_overridden_by_app_headers() -> None:
    turn = turn_of(load(GOLDEN / "json.yaml")["turns"]["first"])
    app = AppTarget(url="http://127.0.0.1:1/", headers={"content-type": "text/html", "X-Key": "k"})
    for dialect in DIALECTS.values():
        request = dialect.request(turn, app)
        assert [k for k in request.headers if k.lower() == "content-type"] == ["Content-Type"]
        assert request.headers["X-Key"] == "k"


@pytest.mark.parametrize("name", sorted(DIALECTS))
@given(status=st.integers(min_value=100, max_value=599), body=st.binary(max_size=512))
def test_any_answer_is_a_screen_or_a_clear_error(name: str, status: int, body: bytes) -> None:
    """Any bytes from an app give an AppAnswer or an AppAnswerError, never another exception."""
    try:
        answer = DIALECTS[name].answer(status, "application/octet-stream", body)
    except AppAnswerError as exc:
        message = str(exc)
        assert message  # the console and the logs say why
    else:
        assert 200 <= status <= 299
        assert answer.text.strip()


@pytest.mark.parametrize("name", sorted(DIALECTS))
@given(text=st.text(max_size=200), end=st.booleans())
def test_any_text_an_app_sends_comes_through(name: str, text: str, end: bool) -> None:
    """Unicode both ways: whatever text an app sends in its dialect reaches the screen."""
    if not text.strip() or text != text.strip() or "\x00" in text:
        return  # empty screens are errors; AT strips the trailing blank
    kind = "release" if end else "response"
    xml_text = f"<ussd><type>{3 if end else 2}</type><msg><![CDATA[{text}]]></msg></ussd>"
    body = {
        "africastalking": ("END " if end else "CON ") + text,
        "hubtel": json.dumps({"Message": text, "Type": kind.capitalize()}),
        "hubtel-ps": json.dumps({"message": text, "type": kind}),
        "arkesel": json.dumps({"message": text, "continueSession": not end}),
        "nalo": json.dumps({"MSG": text, "MSGTYPE": not end}),
        "truroute": xml_text,
        "json": json.dumps({"text": text, "end": end}),
    }[name]
    # XML 1.0 cannot carry control characters or `]]>` in CDATA, and parsers normalise CR.
    if name == "truroute" and ("]]>" in text or any(ord(c) < 32 and c != "\n" for c in text)):
        return
    assert DIALECTS[name].answer(200, "", body.encode("utf-8")) == AppAnswer(text, end)


@pytest.mark.parametrize("name", sorted(DIALECTS))
def test_oversized_answers_are_refused(name: str) -> None:
    with pytest.raises(AppAnswerError, match="over"):
        DIALECTS[name].answer(200, "", b"E" * (MAX_ANSWER_BYTES + 1))


def _sent(name: str, request: HttpRequest) -> dict[str, Any]:
    """The fields of a request as the app's framework would decode them."""
    if name == "africastalking":
        return dict(parse_qsl(request.body.decode("ascii"), keep_blank_values=True))
    if name == "truroute":
        return parse_ussd_xml(request.body)
    data = json.loads(request.body)
    assert isinstance(data, dict)
    return data


_LATEST = {
    "hubtel": "Message",
    "hubtel-ps": "Message",
    "arkesel": "userData",
    "nalo": "USERDATA",
    "truroute": "msg",
    "json": "text",
}


@pytest.mark.parametrize("name", sorted(DIALECTS))
@given(
    inputs=st.lists(st.text(max_size=30) | st.just("a\r\nb"), min_size=1, max_size=5),
    msisdn=st.integers(min_value=10**6, max_value=10**15 - 1).map(str),
)
def test_any_input_reaches_the_app_as_typed(name: str, inputs: list[str], msisdn: str) -> None:
    """Whatever the subscriber typed arrives intact in the dialect's field for it."""
    turn = AppTurn(
        session="s1", msisdn=msisdn, service_code="*384#", dial="*384#", inputs=tuple(inputs),
        new=False, sequence=len(inputs) + 1, client_state=None, network_code="25001",
        operator="mts",
    )  # fmt: skip
    fields = _sent(name, DIALECTS[name].request(turn, AppTarget("http://127.0.0.1:1/")))
    if name == "africastalking":
        assert fields["text"] == "*".join(inputs) and fields["phoneNumber"] == "+" + msisdn
    elif name == "truroute":
        # XML 1.0 cannot carry most control characters: they are left out, the rest as typed.
        assert fields["msg"] == xml_safe(inputs[-1])
        assert fields["msisdn"] == msisdn
    else:
        assert fields[_LATEST[name]] == inputs[-1]
        if name == "json":
            assert fields["inputs"] == inputs
