"""ussd/slots.py: fast_init builds exactly what the dataclass's own __init__ builds."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ussd.events import DialogEnded, DialogStarted, Outcome, Screen, ScreenShown
from ussd.services.base import Continue, End
from ussd.slots import fast_init
from ussd.smpp.pdu import ItsSessionInfo, SubmitSmResp
from ussd.smpp.smsc import Respond, ScreenPart, Send
from ussd.smpp.ussd import Action, UssdRequest


def _twin(cls: type) -> Any:
    """cls as @dataclass(frozen=True, slots=True) alone would build it (its own __init__)."""
    specs = []
    for f in dataclasses.fields(cls):
        spec = field(default=f.default, default_factory=f.default_factory)
        specs.append((f.name, f.type, spec))
    return dataclasses.make_dataclass(f"{cls.__name__}Twin", specs, frozen=True, slots=True)


def _values(obj: object) -> tuple[Any, ...]:
    return tuple(getattr(obj, f.name) for f in dataclasses.fields(obj))  # type: ignore[arg-type]


SCREEN = Screen("s1", "Balance: 1.00", True)
CASES: list[tuple[type, tuple[Any, ...], dict[str, Any]]] = [
    (Screen, ("s1", "text", False), {}),
    (Screen, ("s1", "text", True, 2, 3, "100", True, True), {}),
    (Screen, (), {"session": "s", "text": "t", "end": True, "service_code": "111"}),
    (Screen, ("s",), {"text": "t", "end": False, "notice": True}),
    (DialogStarted, ("79260000001", "s1", "balance", "100"), {}),
    (ScreenShown, ("79260000001", SCREEN), {}),
    (DialogEnded, ("79260000001", "s1", Outcome.COMPLETED), {}),
    (DialogEnded, ("79260000001", "s1", Outcome.TIMEOUT, SCREEN), {"record": None}),
    (End, ("Bye",), {}),
    (End, ("Bye", Outcome.APP_RELEASE), {"cause": "not_supported"}),
    (Continue, ("main", "Menu"), {}),
    (Continue, (), {"screen": "pw", "text": "Password?", "values": {"a": 1}, "secret": True}),
    (UssdRequest, (Action.DIAL, 1, ItsSessionInfo(5, 0, False), None), {}),
    (Respond, (3, SubmitSmResp(sequence_number=7)), {}),
    (Send, (3, SubmitSmResp(sequence_number=7), None), {"urgent": True}),
    (ScreenPart, ("79260000001", "s1", True), {}),
]


@pytest.mark.parametrize(("cls", "args", "kwargs"), CASES)
def test_the_same_fields_as_the_dataclass_init(
    cls: type, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    fast = cls(*args, **kwargs)
    slow = _twin(cls)(*args, **kwargs)
    assert _values(fast) == _values(slow)
    assert fast == cls(*_values(slow))  # equality and hashing stay the dataclass's
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(fast, dataclasses.fields(cls)[0].name, "other")


@pytest.mark.parametrize(("cls", "args", "kwargs"), CASES)
def test_the_same_refusals_as_the_dataclass_init(
    cls: type, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    with pytest.raises(TypeError):
        cls(*args, **kwargs, no_such_field=1)
    with pytest.raises(TypeError):
        cls()  # every case's class has a field without a default
    if args:
        first = dataclasses.fields(cls)[0].name
        with pytest.raises(TypeError):  # given twice: by position and by name
            cls(*args, **{**kwargs, first: args[0]})


@fast_init
@dataclass(frozen=True, slots=True)
class _Sample:
    a: int
    b: str = "b"
    c: list[int] = field(default_factory=list)


@given(a=st.integers(), b=st.text(), c=st.lists(st.integers()) | st.none())
def test_defaults_and_factories(a: int, b: str, c: list[int] | None) -> None:
    fast = _Sample(a, b) if c is None else _Sample(a, b, c)
    assert _values(fast) == _values(_twin(_Sample)(a, b) if c is None else _twin(_Sample)(a, b, c))
    assert _Sample(a).c is not _Sample(a).c  # a fresh default per instance


def test_classes_it_cannot_serve_are_refused() -> None:
    @dataclass(frozen=True)  # no slots
    class NoSlots:
        a: int

    @dataclass(frozen=True, slots=True)
    class PostInit:
        a: int

        def __post_init__(self) -> None:
            pass

    @dataclass(frozen=True, slots=True, kw_only=True)
    class KeywordOnly:
        a: int

    for cls in (NoSlots, PostInit, KeywordOnly, int):
        with pytest.raises(TypeError):
            fast_init(cls)
