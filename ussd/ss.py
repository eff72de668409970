"""Supplementary-service state of a subscriber and the network's answer to an SS request.

The rules are a pure function, `apply(state, dial) -> (Answer, state)`, in the manner of h11's
state tables: the service (ussd/services/supplementary.py) loads the state, applies the
request, stores the result and renders the Answer from menus/texts.yaml. docs/network.md
lists every code, procedure and screen; the sources are TS 22.030 (§6.5 procedures, Annex B
service codes, Annex C basic service groups), TS 22.004 (general), TS 22.082 (call
forwarding), TS 22.083 (call waiting), TS 22.081 (CLIP/CLIR) and TS 22.088 (barring).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final

from ussd.dialstring import DialString, DialStringError, parse
from ussd.store import Store

# -- basic services (TS 22.030 Annex C) -------------------------------------------------------

TELEPHONY: Final = "telephony"
FAX: Final = "fax"
SMS: Final = "sms"
DATA: Final = "data"
BASIC_ORDER: Final = (TELEPHONY, FAX, SMS, DATA)

# The SIB values this network knows, as sets of the elementary services above. Voice group
# calls (17, 18) and the individual bearer groups (21-27) are not modelled: refused with
# `ss.error.basic_unknown`, never silently widened to "all data".
BASIC_GROUPS: Final[Mapping[str, tuple[str, ...]]] = {
    "10": (TELEPHONY, FAX, SMS),  # all teleservices
    "11": (TELEPHONY,),  # telephony
    "12": (FAX, SMS),  # all data teleservices
    "13": (FAX,),  # all facsimile services
    "16": (SMS,),  # all short message services
    "19": (TELEPHONY, FAX),  # all teleservices except SMS
    "20": (DATA,),  # all bearer services
}

# What each service applies to. Call forwarding and call waiting are about calls, not SMS
# (TS 22.004, applicability of supplementary services); barring also applies to short
# messages (TS 22.088).
CALL_SERVICES: Final = (TELEPHONY, FAX, DATA)
ALL_SERVICES: Final = BASIC_ORDER

# -- service codes (TS 22.030 Annex B) ---------------------------------------------------------

# Call forwarding (TS 22.082): an elementary code or a group, by its members.
FORWARDING: Final[Mapping[str, tuple[str, ...]]] = {
    "21": ("21",),  # CFU
    "67": ("67",),  # CFB
    "61": ("61",),  # CFNRy
    "62": ("62",),  # CFNRc
    "002": ("21", "67", "61", "62"),  # all call forwarding
    "004": ("67", "61", "62"),  # all conditional call forwarding
}
NO_REPLY: Final = "61"
NO_REPLY_TIMES: Final = frozenset({5, 10, 15, 20, 25, 30})  # TS 22.082 §3: 5-30 s, steps of 5
DEFAULT_NO_REPLY_TIME: Final = 20

CALL_WAITING: Final = "43"  # TS 22.083
CLIP: Final = "30"  # TS 22.081
CLIR: Final = "31"
NOT_PROVISIONED: Final = frozenset({"76", "77"})  # COLP, COLR (TS 22.081): not offered here

# Barring (TS 22.088): elementary programmes and groups, by their members.
OUTGOING: Final = ("33", "331", "332")  # BAOC, BOIC, BOIC-exHC
INCOMING: Final = ("35", "351")  # BAIC, BIC-Roam
BARRING: Final[Mapping[str, tuple[str, ...]]] = {
    **{code: (code,) for code in (*OUTGOING, *INCOMING)},
    "330": (*OUTGOING, *INCOMING),  # all barring services
    "333": OUTGOING,  # all outgoing barring
    "353": INCOMING,  # all incoming barring
}
BARRING_PASSWORD: Final = "03"  # TS 22.030 §6.5.4

# CLIR modes (TS 22.081): the subscription option reported by `*#31#`.
CLIR_MODES: Final = ("permanent", "temporary_restricted", "temporary_allowed", "not_provisioned")

# -- the barring password (TS 22.004, TS 22.088) -----------------------------------------------

DEFAULT_PASSWORD: Final = "0000"  # until the subscriber changes it
MAX_PASSWORD_FAILURES: Final = 3  # then blocked (TS 24.080 numberOfPW-AttemptsViolation)
_PIN: Final = re.compile(r"[0-9]{4}")
_NUMBER: Final = re.compile(r"\+?[0-9]{3,20}")


def hash_pin(pin: str, salt: bytes | None = None) -> str:
    """`hmac-sha256$salt$digest` of a 4-digit barring password.

    Not scrypt, on purpose: there are only 10^4 PINs, so no hash cost stops someone who holds
    the database from trying them all (scrypt's 40 ms each is seven minutes), while it would
    stall the event loop inside a synchronous dialog step (ussd/passwords.py). What protects
    the PIN is the network's limit of three attempts; the hash only keeps it out of the store,
    the admin API and dumps, and the random salt keeps equal PINs from looking equal.
    """
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hmac.new(salt, pin.encode(), hashlib.sha256).hexdigest()
    return f"hmac-sha256${salt.hex()}${digest}"


def check_pin(pin: str, encoded: str | None) -> bool:
    """Constant-time check; `encoded` None means the default password is still in force."""
    if encoded is None:
        return hmac.compare_digest(pin.encode(), DEFAULT_PASSWORD.encode())
    try:
        scheme, salt, expected = encoded.split("$")
        if scheme != "hmac-sha256":
            return False
        actual = hmac.new(bytes.fromhex(salt), pin.encode(), hashlib.sha256).hexdigest()
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


# -- state -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Forwarding:
    """A registered forwarded-to number (TS 22.082): erased, it is gone; deactivated, it stays."""

    number: str
    active: bool
    no_reply_time: int | None = None  # CFNRy only


@dataclass(frozen=True, slots=True)
class SsState:
    """Everything the network keeps about one subscriber's supplementary services."""

    forwarding: Mapping[tuple[str, str], Forwarding] = field(default_factory=dict)
    waiting: frozenset[str] = frozenset()  # basic services with call waiting active
    barring: frozenset[tuple[str, str]] = frozenset()  # (programme, basic service) active
    clir: str = "temporary_allowed"
    password_hash: str | None = None  # None: DEFAULT_PASSWORD
    failures: int = 0  # consecutive wrong barring passwords

    @property
    def blocked(self) -> bool:
        return self.failures >= MAX_PASSWORD_FAILURES

    def public(self) -> dict[str, Any]:
        """The admin API's `ss` object (docs/openapi.yaml): never the password or its hash."""
        forwarding = [
            {
                "code": code,
                "basic": basic,
                "active": fw.active,
                "number": fw.number,
                **({"no_reply_time": fw.no_reply_time} if code == NO_REPLY else {}),
            }
            for (code, basic), fw in sorted(self.forwarding.items(), key=_row_order)
        ]
        return {
            "forwarding": forwarding,
            "call_waiting": [b for b in BASIC_ORDER if b in self.waiting],
            "barring": [
                {"code": code, "basic": basic}
                for code, basic in sorted(self.barring, key=lambda r: _row_order((r, None)))
            ],
            "clip": "provisioned",
            "clir": self.clir,
            "barring_password": {
                "changed": self.password_hash is not None,
                "failures": self.failures,
                "blocked": self.blocked,
            },
        }

    def to_json(self) -> str:
        """The `services` column of ss_state (everything but the password)."""
        return json.dumps(
            {
                "forwarding": [
                    [code, basic, fw.number, fw.active, fw.no_reply_time]
                    for (code, basic), fw in sorted(self.forwarding.items(), key=_row_order)
                ],
                "waiting": sorted(self.waiting),
                "barring": sorted([list(r) for r in self.barring]),
                "clir": self.clir,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_row(cls, services: str, password_hash: str | None, failures: int) -> SsState:
        data = json.loads(services or "{}")
        return cls(
            forwarding={
                (c, b): Forwarding(n, bool(a), t) for c, b, n, a, t in data.get("forwarding", [])
            },
            waiting=frozenset(data.get("waiting", [])),
            barring=frozenset((c, b) for c, b in data.get("barring", [])),
            clir=data.get("clir", "temporary_allowed"),
            password_hash=password_hash,
            failures=int(failures),
        )


_CODE_ORDER: Final = {c: i for i, c in enumerate(("21", "67", "61", "62", *OUTGOING, *INCOMING))}


def _row_order(item: tuple[tuple[str, str], object]) -> tuple[int, int]:
    (code, basic), _ = item
    return _CODE_ORDER.get(code, 99), BASIC_ORDER.index(basic)


def load_state(store: Store, msisdn: str) -> SsState:
    """The subscriber's state (defaults when nothing was ever set)."""
    row = store.db.execute(
        "SELECT services, barring_password_hash, barring_failures FROM ss_state WHERE msisdn = ?",
        (msisdn,),
    ).fetchone()
    return SsState.from_row(*row) if row else SsState()


def save_state(store: Store, msisdn: str, state: SsState, now: float) -> None:
    """Write the whole state in one transaction."""
    with store.transaction() as db:
        db.execute(
            "INSERT INTO ss_state (msisdn, services, barring_password_hash, barring_failures, "
            "updated) VALUES (?, ?, ?, ?, ?) ON CONFLICT (msisdn) DO UPDATE SET "
            "services = excluded.services, barring_password_hash = "
            "excluded.barring_password_hash, barring_failures = excluded.barring_failures, "
            "updated = excluded.updated",
            (msisdn, state.to_json(), state.password_hash, state.failures, now),
        )


# -- answers -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Answer:
    """A screen to render: the text `ss.<key>`, with {service} and {basic} filled from `code`
    and `basics`, then one line per entry of `lines`. An empty key shows only the lines."""

    key: str
    code: str | None = None
    basics: tuple[str, ...] = ()
    fields: Mapping[str, Any] = field(default_factory=dict)
    lines: tuple[Answer, ...] = ()


NOT_SUPPORTED: Final = Answer("not_supported")  # rendered as common.not_supported


def _error(key: str, code: str | None = None, **fields: Any) -> Answer:
    return Answer(f"error.{key}", code, (), fields)


class _Refused(Exception):
    def __init__(self, answer: Answer) -> None:
        super().__init__(answer.key)
        self.answer = answer


def _basics(
    sib: str | None, applicable: tuple[str, ...], code: str
) -> tuple[tuple[str, ...], bool]:
    """The elementary basic services a SIB names (all applicable ones when absent), and whether
    one was named (the screen then says which)."""
    if not sib:
        return applicable, False
    group = BASIC_GROUPS.get(sib)
    if group is None:
        raise _Refused(_error("basic_unknown", code, bs=sib))
    chosen = tuple(b for b in group if b in applicable)
    if not chosen:
        raise _Refused(Answer("error.not_applicable", code, group))
    return chosen, True


def _absent(*fields: str | None) -> None:
    if any(f is not None for f in fields):
        raise _Refused(_error("format"))


def apply(state: SsState, dial: DialString) -> tuple[Answer, SsState]:
    """The network's answer to one SS request and the state after it (never raises for any
    DialString of kind "ss")."""
    code = dial.service_code or ""
    try:
        if code in FORWARDING:
            return _forwarding(state, dial, code)
        if code == CALL_WAITING:
            return _waiting(state, dial)
        if code in BARRING:
            return _barring(state, dial, code)
        if code == BARRING_PASSWORD:
            return _password(state, dial)
        if code in (CLIP, CLIR):
            if dial.procedure != "interrogate":
                # TS 22.081: CLIP and CLIR are provisioned by the operator, not switched by
                # the subscriber (the per-call *31#DN / #31#DN is a call, not an SS request).
                return _error("illegal_operation", code), state
            _absent(dial.sia, dial.sib, dial.sic, dial.extra)
            if code == CLIP:
                return Answer("clip.provisioned", CLIP), state
            return Answer(f"clir.{state.clir}", CLIR), state
        if code in NOT_PROVISIONED and dial.procedure == "interrogate":
            return Answer("not_provisioned", code), state
    except _Refused as refused:
        return refused.answer, state
    return NOT_SUPPORTED, state


def _forwarding(state: SsState, dial: DialString, code: str) -> tuple[Answer, SsState]:
    members = FORWARDING[code]
    table = dict(state.forwarding)
    procedure = dial.procedure
    if procedure == "register":
        number = dial.sia or ""
        if not _NUMBER.fullmatch(number):
            return _error("bad_number", code), state
        _absent(dial.extra)
        basics, named = _basics(dial.sib, CALL_SERVICES, code)
        time: int | None = None
        if dial.sic:
            if NO_REPLY not in members:
                return _error("format"), state
            time = int(dial.sic) if dial.sic.isdigit() and len(dial.sic) <= 2 else -1
            if time not in NO_REPLY_TIMES:
                return _error("no_reply_time", code), state
        elif dial.sic is not None:
            return _error("format"), state
        for member in members:
            for basic in basics:
                old = table.get((member, basic))
                timer = None
                if member == NO_REPLY:
                    timer = time or (old.no_reply_time if old else None) or DEFAULT_NO_REPLY_TIME
                # TS 24.082 (CFU registration): a successful registration registers and activates.
                table[(member, basic)] = Forwarding(number, True, timer)
        shown = basics if named else ()
        answer = Answer("registered", code, shown, {"number": number})
        return answer, replace(state, forwarding=table)
    if dial.sia:
        return _error("format"), state
    _absent(dial.sic, dial.extra)
    basics, named = _basics(dial.sib, CALL_SERVICES, code)
    shown = basics if named else ()
    keys = [(m, b) for m in members for b in basics if (m, b) in table]
    if procedure == "activate":
        if not keys:
            return _error("no_number", code), state
        for key in keys:
            table[key] = replace(table[key], active=True)
        return Answer("activated", code, shown), replace(state, forwarding=table)
    if procedure == "deactivate":
        for key in keys:
            table[key] = replace(table[key], active=False)
        return Answer("deactivated", code, shown), replace(state, forwarding=table)
    if procedure == "erase":
        for key in keys:
            del table[key]
        return Answer("erased", code, shown), replace(state, forwarding=table)
    lines = []
    for member in members:
        # One line per distinct registration, naming the basic services it covers.
        same: dict[tuple[str, str, int | None], list[str]] = {}
        for basic in basics:
            fw = table.get((member, basic))
            if fw is None:
                continue
            if not fw.active:
                status = "status.registered"
            elif fw.no_reply_time is not None:
                status = "status.active_after"
            else:
                status = "status.active_to"
            same.setdefault((status, fw.number, fw.no_reply_time), []).append(basic)
        entries = [
            Answer(status, member, tuple(group), {"number": number, "time": time or ""})
            for (status, number, time), group in same.items()
        ]
        if entries:
            lines.append(Answer("status.header", member, shown, {}, tuple(entries)))
        else:
            lines.append(Answer("status.not_active", member, shown))
    return Answer("", code, shown, {}, tuple(lines)), state


def _waiting(state: SsState, dial: DialString) -> tuple[Answer, SsState]:
    # TS 22.030 Annex B: call waiting takes the basic service group in SIA (*43*BS#).
    _absent(dial.sib, dial.sic, dial.extra)
    basics, named = _basics(dial.sia, CALL_SERVICES, CALL_WAITING)
    shown = basics if named else ()
    if dial.procedure == "activate":
        waiting = state.waiting | set(basics)
        return Answer("activated", CALL_WAITING, shown), replace(state, waiting=waiting)
    if dial.procedure == "deactivate":
        waiting = state.waiting - set(basics)
        return Answer("deactivated", CALL_WAITING, shown), replace(state, waiting=waiting)
    if dial.procedure == "interrogate":
        return _active_for(CALL_WAITING, [b for b in basics if b in state.waiting], shown), state
    # TS 22.083: call waiting is activated and deactivated, never registered or erased.
    return _error("illegal_operation", CALL_WAITING), state


def _active_for(code: str, active: list[str], shown: tuple[str, ...]) -> Answer:
    if active:
        return Answer("status.active_for", code, tuple(active))
    return Answer("status.not_active", code, shown)


def _barring(state: SsState, dial: DialString, code: str) -> tuple[Answer, SsState]:
    members = BARRING[code]
    procedure = dial.procedure
    _absent(dial.sic, dial.extra)
    basics, named = _basics(dial.sib, ALL_SERVICES, code)
    shown = basics if named else ()
    if procedure == "interrogate":
        # Interrogation needs no password (TS 22.088); one typed anyway is ignored.
        lines = [
            _active_for(m, [b for b in basics if (m, b) in state.barring], shown) for m in members
        ]
        if len(lines) == 1:
            return lines[0], state
        return Answer("", code, shown, {}, tuple(lines)), state
    if procedure not in ("activate", "deactivate") or (
        procedure == "activate" and len(members) > 1
    ):
        # TS 22.088: programmes are registered by the operator; the group codes 330/333/353
        # only deactivate (one "activate all barring" would contradict itself: BAOC vs BOIC).
        return _error("illegal_operation", code), state
    checked, refusal = _check_password(state, dial.sia, code)
    if refusal is not None:
        return refusal, checked
    barring = set(checked.barring)
    if procedure == "activate":
        # One outgoing and one incoming programme per basic service at a time: activating one
        # replaces its siblings (docs/network.md: where TS 22.088 leaves it to the network).
        siblings = OUTGOING if code in OUTGOING else INCOMING
        for basic in basics:
            barring -= {(s, basic) for s in siblings}
            barring.add((code, basic))
        answer = Answer("activated", code, shown)
    else:
        barring -= {(m, b) for m in members for b in basics}
        answer = Answer("deactivated", code, shown)
    return answer, replace(checked, barring=frozenset(barring))


def _check_password(state: SsState, pin: str | None, code: str) -> tuple[SsState, Answer | None]:
    """Counts a wrong password; three in a row block barring changes (TS 22.004)."""
    if state.blocked:
        return state, _error("password_blocked")
    if not pin:
        return state, _error("password_needed", code)
    if _PIN.fullmatch(pin) and check_pin(pin, state.password_hash):
        return replace(state, failures=0), None
    failed = replace(state, failures=state.failures + 1)
    if failed.blocked:
        return failed, _error("password_blocked")
    return failed, _error("password_wrong", left=MAX_PASSWORD_FAILURES - failed.failures)


def _password(state: SsState, dial: DialString) -> tuple[Answer, SsState]:
    # TS 22.030 §6.5.4: **03*ZZ*OLD*NEW*NEW# (ZZ a barring code or empty; *03* also accepted).
    if dial.procedure not in ("register", "activate"):
        return _error("illegal_operation", BARRING_PASSWORD), state
    if dial.sia not in ("", None) and dial.sia not in BARRING:
        return _error("format"), state
    old, new, again = dial.sib, dial.sic, dial.extra
    if not (old and new and again):
        return (
            _error("password_format") if not state.blocked else _error("password_blocked")
        ), state
    checked, refusal = _check_password(state, old, BARRING_PASSWORD)
    if refusal is not None:
        return refusal, checked
    if not _PIN.fullmatch(new):
        return _error("password_format"), checked
    if not hmac.compare_digest(new.encode(), again.encode()):
        return _error("password_mismatch"), checked
    return Answer("password_changed"), replace(checked, password_hash=hash_pin(new))


def administer(state: SsState, changes: Mapping[str, object]) -> SsState:
    """Operator changes (the admin API): `clir` sets the CLIR mode, `barring_password: "reset"`
    puts the default password back and lifts a block (docs/network.md: only the operator can).
    Raises ValueError naming the field for anything else."""
    for key in changes:
        if key not in ("clir", "barring_password"):
            raise ValueError(f"{key}: unknown field (clir, barring_password)")
    if "clir" in changes:
        if changes["clir"] not in CLIR_MODES:
            raise ValueError(f"clir: one of {', '.join(CLIR_MODES)}")
        state = replace(state, clir=str(changes["clir"]))
    if "barring_password" in changes:
        if changes["barring_password"] != "reset":
            # The PIN itself never travels through the API: only back to the default.
            raise ValueError('barring_password: only "reset" (back to 0000, unblocked)')
        state = replace(state, password_hash=None, failures=0)
    return state


_PROCEDURE = re.compile(r"\*\*|##|\*#|\*|#")


def mask_passwords(text: str, placeholder: Callable[[str], str]) -> str:
    """`text` with each barring password in it replaced by placeholder(password).

    The recorder writes dial strings into scenario files (ussd/recording.py), and a barring
    password is typed inside one: `*33*PIN#`, `**03*330*OLD*NEW*NEW#`. Any other text comes
    back unchanged.
    """
    try:
        dial = parse(text)
    except DialStringError:
        return text
    code = dial.service_code or ""
    if dial.kind != "ss" or (code not in BARRING and code != BARRING_PASSWORD):
        return text
    prefix = _PROCEDURE.match(text)
    if prefix is None or not text.endswith("#"):
        return text
    fields = text[prefix.end() : -1].split("*")
    secret = (1,) if code in BARRING else (2, 3, 4)  # SIA; or OLD, NEW, NEW
    masked = [placeholder(f) if i in secret and f else f for i, f in enumerate(fields)]
    return prefix.group() + "*".join(masked) + "#"
