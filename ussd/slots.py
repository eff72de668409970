"""A cheaper __init__ for the frozen slotted dataclasses built on every USSD step.

A frozen dataclass's generated __init__ sets each field through `object.__setattr__` (a global
and an attribute lookup per field, since the class forbids plain assignment); a screen, an
event or an SMSC action is built several times per step (docs/performance.md "Where the time
goes"). `fast_init` swaps that __init__ for one with the same signature (names, order,
defaults, keywords) that calls each slot's own setter, as `ussd.smpp.pdu.constructor` does for
the PDUs. Everything else — equality, hashing, repr, immutability after __init__ — stays the
dataclass's; tests/test_slots.py checks both build equal objects.
"""

from __future__ import annotations

from dataclasses import MISSING, fields, is_dataclass
from types import MemberDescriptorType
from typing import Any, TypeVar

_T = TypeVar("_T")


def fast_init(cls: type[_T]) -> type[_T]:
    """Class decorator, applied over @dataclass(frozen=True, slots=True): slot-setting __init__."""
    if not is_dataclass(cls) or "__post_init__" in vars(cls):
        raise TypeError(f"{cls.__name__}: a dataclass without __post_init__ is needed")
    namespace: dict[str, Any] = {"_MISSING": MISSING}
    params: list[str] = []
    body: list[str] = []
    for f in fields(cls):
        slot = vars(cls).get(f.name)
        if not isinstance(slot, MemberDescriptorType) or not f.init or f.kw_only:
            raise TypeError(f"{cls.__name__}.{f.name} is not an __init__ slot")
        name = f.name
        namespace[f"_s_{name}"] = slot.__set__
        value = name
        if f.default is not MISSING:
            namespace[f"_d_{name}"] = f.default
            params.append(f"{name}=_d_{name}")
        elif f.default_factory is not MISSING:
            namespace[f"_f_{name}"] = f.default_factory
            params.append(f"{name}=_MISSING")
            value = f"_f_{name}() if {name} is _MISSING else {name}"
        else:
            params.append(name)
        body.append(f"    _s_{name}(self, {value})")
    source = f"def __init__(self, {', '.join(params)}):\n" + "\n".join(body or ["    pass"])
    exec(source, namespace)  # our own source, made of dataclass field names only
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    cls.__init__ = init  # type: ignore[method-assign]
    return cls
