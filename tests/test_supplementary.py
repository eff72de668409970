"""Supplementary services (ussd/ss.py, ussd/services/supplementary.py, docs/network.md).

The table is (state before, dial string) → (the whole final screen, the state after), dialled
through the engine; the state is written and read with ussd.ss. `summary()` writes a state
compactly: `21+tfd>N` is CFU active for telephony, fax and data to N (`-` inactive, `@25` the
no-reply time), `43+t` call waiting for telephony, `33+tfsd` BAOC, `pw` a changed barring
password, `fail=2` two wrong passwords in a row, `clir=permanent` a CLIR mode.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ussd import ss
from ussd.dialstring import PROCEDURES, SS_CODES, DialStringError, parse
from ussd.engine import NotUssd
from ussd.runtime import Gateway
from ussd.ss import DATA, FAX, SMS, TELEPHONY, Forwarding, SsState

RU = "79161234567"  # seeded, Russian (config.yaml)
EN = "79161112233"  # seeded, English
N = "+79161112233"
M = "89160001122"
CALLS = (TELEPHONY, FAX, DATA)
ALL = (TELEPHONY, FAX, SMS, DATA)


def _cf(code: str, active: bool = True, number: str = N, time: int | None = None) -> SsState:
    return SsState(forwarding={(code, b): Forwarding(number, active, time) for b in CALLS})


def _join(*states: SsState) -> SsState:
    fw: dict[tuple[str, str], Forwarding] = {}
    barring: set[tuple[str, str]] = set()
    for s in states:
        fw.update(s.forwarding)
        barring |= s.barring
    return SsState(forwarding=fw, barring=frozenset(barring))


COND = _join(_cf("67"), _cf("61", time=20), _cf("62"))
BAOC = SsState(barring=frozenset(("33", b) for b in ALL))
BAIC = SsState(barring=frozenset(("35", b) for b in ALL))
PRESETS: dict[str, SsState] = {
    "none": SsState(),
    "cfu": _cf("21"),
    "cfu_off": _cf("21", active=False),
    "cond": COND,
    "allcf": _join(_cf("21"), COND),
    "cw": SsState(waiting=frozenset(CALLS)),
    "baoc": BAOC,
    "boic_tel": SsState(barring=frozenset({("331", TELEPHONY)})),
    "baic": BAIC,
    "baoc_baic": _join(BAOC, BAIC),
    "pw": SsState(password_hash=ss.hash_pin("1234")),
    "fail2": SsState(failures=2),
    "blocked": SsState(failures=3),
    "clir_perm": SsState(clir="permanent"),
}

_ORDER = {c: i for i, c in enumerate(("21", "67", "61", "62", "43", "33", "331", "332", "35"))}


def summary(state: SsState) -> str:
    """The compact form of a state described in the module docstring."""
    groups: dict[tuple[str, bool, str, int | None], list[str]] = {}
    for (code, basic), fw in state.forwarding.items():
        groups.setdefault((code, fw.active, fw.number, fw.no_reply_time), []).append(basic)
    tokens: list[tuple[int, str]] = []
    for (code, active, number, time), basics in groups.items():
        letters = "".join(b[0] for b in ALL if b in basics)
        name = {N: "N", M: "M"}.get(number, number)
        tail = f"@{time}" if time is not None else ""
        tokens.append((_ORDER[code], f"{code}{'+' if active else '-'}{letters}>{name}{tail}"))
    if state.waiting:
        tokens.append((_ORDER["43"], "43+" + "".join(b[0] for b in ALL if b in state.waiting)))
    for code in sorted({c for c, _ in state.barring}):
        letters = "".join(b[0] for b in ALL if (code, b) in state.barring)
        tokens.append((_ORDER.get(code, 50), f"{code}+{letters}"))
    words = [t for _, t in sorted(tokens)]
    if state.clir != "temporary_allowed":
        words.append(f"clir={state.clir}")
    if state.password_hash is not None:
        words.append("pw")
    if state.failures:
        words.append(f"fail={state.failures}")
    return " ".join(words)


CFU_RU = "Переадресация всех вызовов"
BLOCKED_RU = "Пароль запрета заблокирован (3 ошибки). Обратитесь к оператору."
WRONG_RU = "Неверный пароль запрета. Осталось попыток: {}."

# (before, dial string, the final screen (pages joined), after); EN rows dial as EN.
TABLE: list[tuple[str, str, str, str]] = [
    # Call forwarding unconditional (TS 22.082 §1): register, activate, deactivate, erase.
    ("none", "**21*+79161112233#", f"{CFU_RU}: включена на {N}.", "21+tfd>N"),
    ("none", "*21*+79161112233#", f"{CFU_RU}: включена на {N}.", "21+tfd>N"),
    ("none", "*21*89160001122#", f"{CFU_RU}: включена на {M}.", "21+tfd>M"),
    ("none", "**21*+79161112233*11#", f"{CFU_RU} (телефония): включена на {N}.", "21+t>N"),
    ("none", "**21*+79161112233*10#", f"{CFU_RU} (телефония, факс): включена на {N}.", "21+tf>N"),
    ("none", "**21*+79161112233*19#", f"{CFU_RU} (телефония, факс): включена на {N}.", "21+tf>N"),
    ("none", "**21*+79161112233*20#", f"{CFU_RU} (данные): включена на {N}.", "21+d>N"),
    ("none", "**21*+79161112233*13#", f"{CFU_RU} (факс): включена на {N}.", "21+f>N"),
    ("none", "**21*+79161112233*16#", f"{CFU_RU}: не для «SMS».", ""),
    ("none", "**21*+79161112233*99#", "Группа услуг 99 не поддерживается.", ""),
    ("none", "**21*+79161112233*17#", "Группа услуг 17 не поддерживается.", ""),
    ("none", "**21#", f"{CFU_RU}: неверный номер переадресации.", ""),
    ("none", "**21*12#", f"{CFU_RU}: неверный номер переадресации.", ""),
    ("none", "**21*+79161112233*11*5*1#", "Неверный формат запроса.", ""),
    ("none", "*21#", f"{CFU_RU}: нет номера (**21*номер#).", ""),
    ("cfu_off", "*21#", f"{CFU_RU}: услуга включена.", "21+tfd>N"),
    ("cfu", "#21#", f"{CFU_RU}: услуга выключена.", "21-tfd>N"),
    ("cfu", "##21#", f"{CFU_RU}: номер удалён.", ""),
    ("cfu", "#21**11#", f"{CFU_RU} (телефония): услуга выключена.", "21+fd>N 21-t>N"),
    ("cfu", "##21**20#", f"{CFU_RU} (данные): номер удалён.", "21+tf>N"),
    ("cfu", "#21*+79161112233#", "Неверный формат запроса.", "21+tfd>N"),
    ("cfu", "*#21#", f"{CFU_RU}: телефония, факс, данные: включена на {N}", "21+tfd>N"),
    ("cfu_off", "*#21#", f"{CFU_RU}: телефония, факс, данные: выключена, номер {N}", "21-tfd>N"),
    ("cfu", "*#21**11#", f"{CFU_RU} (телефония): телефония: включена на {N}", "21+tfd>N"),
    ("none", "*#21#", f"{CFU_RU}: услуга не активна.", ""),
    # No reply (TS 22.082 §3): the timer in SIC, 5-30 s in steps of 5, 20 s by default.
    (
        "none",
        "**61*+79161112233**25#",
        f"Переадресация при неответе: включена на {N}.",
        "61+tfd>N@25",
    ),
    ("none", "**61*+79161112233#", f"Переадресация при неответе: включена на {N}.", "61+tfd>N@20"),
    ("none", "**61*+79161112233**7#", "Время до переадресации: от 5 до 30 с, шаг 5 с.", ""),
    ("none", "**61*+79161112233**35#", "Время до переадресации: от 5 до 30 с, шаг 5 с.", ""),
    ("none", "**61*+79161112233**0#", "Время до переадресации: от 5 до 30 с, шаг 5 с.", ""),
    ("none", "**21*+79161112233**20#", "Неверный формат запроса.", ""),
    (
        "cond",
        "*#61#",
        f"Переадресация при неответе: телефония, факс, данные: включена на {N} через 20 с",
        "67+tfd>N 61+tfd>N@20 62+tfd>N",
    ),
    # The groups 002 and 004 act on their members (TS 22.030 Annex B).
    (
        "none",
        "**004*+79161112233#",
        f"Вся условная переадресация: включена на {N}.",
        "67+tfd>N 61+tfd>N@20 62+tfd>N",
    ),
    (
        "none",
        "**004*+79161112233**15#",
        f"Вся условная переадресация: включена на {N}.",
        "67+tfd>N 61+tfd>N@15 62+tfd>N",
    ),
    (
        "none",
        "**002*+79161112233*11#",
        f"Вся переадресация (телефония): включена на {N}.",
        "21+t>N 67+t>N 61+t>N@20 62+t>N",
    ),
    ("cond", "##004#", "Вся условная переадресация: номер удалён.", ""),
    ("allcf", "##002#", "Вся переадресация: номер удалён.", ""),
    ("cfu", "##004#", "Вся условная переадресация: номер удалён.", "21+tfd>N"),
    (
        "allcf",
        "#004#",
        "Вся условная переадресация: услуга выключена.",
        "21+tfd>N 67-tfd>N 61-tfd>N@20 62-tfd>N",
    ),
    (
        "cond",
        "**67*89160001122#",
        f"Переадресация при занятости: включена на {M}.",
        "67+tfd>M 61+tfd>N@20 62+tfd>N",
    ),
    (
        "cfu",
        "*#002#",
        f"{CFU_RU}: телефония, факс, данные: включена на {N} "
        "Переадресация при занятости: услуга не активна. "
        "Переадресация при неответе: услуга не активна. "
        "Переадресация при недоступности: услуга не активна.",
        "21+tfd>N",
    ),
    ("none", "*002#", "Вся переадресация: нет номера (**002*номер#).", ""),
    (
        "en:none",
        "**21*+79161112233#",
        f"Call forwarding unconditional: registered and activated to {N}.",
        "21+tfd>N",
    ),
    ("en:none", "*#21#", "Call forwarding unconditional: not active.", ""),
    ("en:none", "**61*+79161112233**12#", "No-reply time: 5 to 30 s in steps of 5 s.", ""),
    # Call waiting (TS 22.083): the basic service group is SIA.
    ("none", "*43#", "Ожидание вызова: услуга включена.", "43+tfd"),
    ("none", "*43*11#", "Ожидание вызова (телефония): услуга включена.", "43+t"),
    ("cw", "#43#", "Ожидание вызова: услуга выключена.", ""),
    ("cw", "#43*13#", "Ожидание вызова (факс): услуга выключена.", "43+td"),
    ("cw", "*#43#", "Ожидание вызова: услуга включена для: телефония, факс, данные.", "43+tfd"),
    ("none", "*#43#", "Ожидание вызова: услуга не активна.", ""),
    ("none", "*43*16#", "Ожидание вызова: не для «SMS».", ""),
    ("none", "**43#", "Ожидание вызова: операция недоступна.", ""),
    ("none", "##43#", "Ожидание вызова: операция недоступна.", ""),
    ("en:cw", "*#43#", "Call waiting: active for telephony, fax, data.", "43+tfd"),
    # CLIP, CLIR (TS 22.081), COLP/COLR: interrogation only.
    ("none", "*#30#", "Определитель номера (CLIP): услуга предоставляется.", ""),
    ("none", "*#31#", "Скрытие номера (CLIR): номер показан (скрыть: #31#номер).", ""),
    ("clir_perm", "*#31#", "Скрытие номера (CLIR): постоянно, номер скрыт.", "clir=permanent"),
    (
        "en:clir_perm",
        "*#31#",
        "Caller ID restriction (CLIR): permanent mode, your number is withheld.",
        "clir=permanent",
    ),
    ("none", "*30#", "Определитель номера (CLIP): операция недоступна.", ""),
    ("none", "#31#", "Скрытие номера (CLIR): операция недоступна.", ""),
    ("none", "*#76#", "Показ номера ответившего (COLP): услуга не предоставляется.", ""),
    ("none", "*#77#", "Скрытие номера ответившего (COLR): услуга не предоставляется.", ""),
    ("none", "*76#", "Услуга не поддерживается.", ""),
    ("en:none", "#77#", "Service not supported.", ""),
    # Barring (TS 22.088) with the barring password in SIA, default 0000.
    ("none", "*33*0000#", "Запрет всех исходящих: услуга включена.", "33+tfsd"),
    ("none", "*33*0000*11#", "Запрет всех исходящих (телефония): услуга включена.", "33+t"),
    ("none", "*33*0000*16#", "Запрет всех исходящих (SMS): услуга включена.", "33+s"),
    ("none", "*33#", "Укажите пароль запрета: *33*пароль#", ""),
    ("none", "*33*1111#", WRONG_RU.format(2), "fail=1"),
    ("none", "*33*12#", WRONG_RU.format(2), "fail=1"),
    ("fail2", "*33*1111#", BLOCKED_RU, "fail=3"),
    ("fail2", "*33*0000#", "Запрет всех исходящих: услуга включена.", "33+tfsd"),
    ("blocked", "*33*0000#", BLOCKED_RU, "fail=3"),
    ("blocked", "#33*0000#", BLOCKED_RU, "fail=3"),
    ("blocked", "*#33#", "Запрет всех исходящих: услуга не активна.", "fail=3"),
    ("baoc", "*331*0000#", "Запрет исходящих международных: услуга включена.", "331+tfsd"),
    ("boic_tel", "*33*0000*11#", "Запрет всех исходящих (телефония): услуга включена.", "33+t"),
    ("baic", "*351*0000#", "Запрет входящих в роуминге: услуга включена.", "351+tfsd"),
    ("baoc", "*35*0000#", "Запрет всех входящих: услуга включена.", "33+tfsd 35+tfsd"),
    ("baoc", "#33*0000#", "Запрет всех исходящих: услуга выключена.", ""),
    ("baoc", "#330*0000#", "Все запреты вызовов: услуга выключена.", ""),
    ("baoc_baic", "#333*0000#", "Все запреты исходящих: услуга выключена.", "35+tfsd"),
    ("baic", "#353*0000*11#", "Все запреты входящих (телефония): услуга выключена.", "35+fsd"),
    ("none", "*330*0000#", "Все запреты вызовов: операция недоступна.", ""),
    ("none", "**33*0000#", "Запрет всех исходящих: операция недоступна.", ""),
    ("none", "##33*0000#", "Запрет всех исходящих: операция недоступна.", ""),
    (
        "baoc",
        "*#33#",
        "Запрет всех исходящих: услуга включена для: телефония, факс, SMS, данные.",
        "33+tfsd",
    ),
    ("none", "*#35#", "Запрет всех входящих: услуга не активна.", ""),
    (
        "baic",
        "*#353#",
        "Запрет всех входящих: услуга включена для: телефония, факс, SMS, данные. "
        "Запрет входящих в роуминге: услуга не активна.",
        "35+tfsd",
    ),
    ("pw", "*33*0000#", WRONG_RU.format(2), "pw fail=1"),
    ("pw", "*33*1234#", "Запрет всех исходящих: услуга включена.", "33+tfsd pw"),
    (
        "en:fail2",
        "*33*9999#",
        "Barring password blocked after 3 wrong attempts. Please contact your operator.",
        "fail=3",
    ),
    # The barring password: **03*ZZ*OLD*NEW*NEW# (TS 22.030 §6.5.4).
    ("none", "**03*330*0000*1234*1234#", "Пароль запрета изменён.", "pw"),
    ("none", "**03**0000*1234*1234#", "Пароль запрета изменён.", "pw"),
    ("none", "*03**0000*1234*1234#", "Пароль запрета изменён.", "pw"),
    ("none", "**03*33*0000*1234*1234#", "Пароль запрета изменён.", "pw"),
    ("none", "**03*330*0000*1234*4321#", "Новые пароли не совпадают. Пароль не изменён.", ""),
    ("none", "**03*330*1111*1234*1234#", WRONG_RU.format(2), "fail=1"),
    ("fail2", "**03*330*1111*1234*1234#", BLOCKED_RU, "fail=3"),
    ("blocked", "**03*330*0000*1234*1234#", BLOCKED_RU, "fail=3"),
    ("none", "**03*330*0000*12*12#", "Пароль запрета: 4 цифры.", ""),
    ("none", "**03*330*0000#", "Пароль запрета: 4 цифры.", ""),
    ("none", "**03*21*0000*1234*1234#", "Неверный формат запроса.", ""),
    ("none", "*#03#", "Пароль запрета: операция недоступна.", ""),
    ("pw", "**03*330*0000*5555*5555#", WRONG_RU.format(2), "pw fail=1"),
    ("pw", "**03*330*1234*0000*0000#", "Пароль запрета изменён.", "pw"),
    (
        "en:none",
        "**03*330*0000*1234*4321#",
        "The new passwords do not match. Password not changed.",
        "",
    ),
]


def _flat(text: str) -> str:
    return " ".join(text.split())


def dial_all(gateway: Gateway, msisdn: str, text: str) -> str:
    """The final screen of a dial, its pages joined (`98` pages on, TS 22.090-style)."""
    screen = gateway.engine.dial(msisdn, text)
    pages = []
    while True:
        body = screen.text
        if not screen.end:
            body = body.rsplit("\n", 1)[0]  # the "98. More" line
        pages.append(body)
        if screen.end:
            return _flat(" ".join(pages))
        screen = gateway.engine.reply(msisdn, "98")


def test_the_table_has_at_least_sixty_rows() -> None:
    assert len(TABLE) >= 60


@pytest.mark.parametrize(("before", "text", "screen", "after"), TABLE, ids=[r[1] for r in TABLE])
def test_ss_table(gateway: Gateway, before: str, text: str, screen: str, after: str) -> None:
    language, _, preset = before.rpartition(":")
    msisdn = EN if language == "en" else RU
    ss.save_state(gateway.store, msisdn, PRESETS[preset], 0.0)
    assert dial_all(gateway, msisdn, text) == _flat(screen)
    assert summary(ss.load_state(gateway.store, msisdn)) == after
    assert gateway.engine.dialog(msisdn) is None  # one request, one final screen


def test_a_changed_password_is_the_one_that_works(gateway: Gateway) -> None:
    assert dial_all(gateway, RU, "**03**0000*4321*4321#") == "Пароль запрета изменён."
    assert dial_all(gateway, RU, "*33*0000#") == WRONG_RU.format(2)
    assert dial_all(gateway, RU, "*33*4321#") == "Запрет всех исходящих: услуга включена."
    assert ss.load_state(gateway.store, RU).failures == 0


def test_three_wrong_passwords_block_until_the_operator_resets(gateway: Gateway) -> None:
    for left in (2, 1):
        assert dial_all(gateway, RU, "*33*9999#") == WRONG_RU.format(left)
    assert dial_all(gateway, RU, "*33*9999#") == BLOCKED_RU
    assert dial_all(gateway, RU, "*33*0000#") == BLOCKED_RU  # the right one no longer helps
    state = gateway.administer_supplementary(RU, {"barring_password": "reset"})
    assert state["barring_password"] == {"changed": False, "failures": 0, "blocked": False}
    assert dial_all(gateway, RU, "*33*0000#") == "Запрет всех исходящих: услуга включена."


def test_the_password_is_stored_salted_and_never_as_typed(gateway: Gateway) -> None:
    dial_all(gateway, RU, "**03**0000*2468*2468#")
    dial_all(gateway, EN, "**03**0000*2468*2468#")
    rows = gateway.store.db.execute("SELECT * FROM ss_state ORDER BY msisdn").fetchall()
    dump = json.dumps(rows)
    assert "2468" not in dump
    hashes = [r[2] for r in rows]
    assert hashes[0] != hashes[1] and all(h.startswith("hmac-sha256$") for h in hashes)
    assert "2468" not in json.dumps(gateway.supplementary(RU))


def test_the_password_is_not_logged(gateway: Gateway, capsys: pytest.CaptureFixture[str]) -> None:
    dial_all(gateway, RU, "**03**0000*8642*8642#")
    dial_all(gateway, RU, "*33*8642#")
    dial_all(gateway, RU, "*33*7531#")
    out = capsys.readouterr()
    assert "dialog_dial" in out.out + out.err  # the engine did log these dials
    assert "8642" not in out.out + out.err and "7531" not in out.out + out.err


def test_without_the_ss_service_the_network_says_not_supported(gateway: Gateway) -> None:
    del gateway.engine.services["ss"]
    assert gateway.engine.dial(RU, "*#21#").text == "Услуга не поддерживается."


@pytest.mark.parametrize("text", ["*#06#", "**04*1234*5678*5678#", "**042*1234*5678*5678#"])
def test_handset_local_codes_stay_local(gateway: Gateway, text: str) -> None:
    # TS 22.030 §6.6: SIM PIN changes and the IMEI never reach the network's SS handler.
    with pytest.raises(NotUssd):
        gateway.engine.dial(RU, text)


def test_operator_sets_the_clir_mode(gateway: Gateway) -> None:
    gateway.administer_supplementary(RU, {"clir": "temporary_restricted"})
    assert (
        dial_all(gateway, RU, "*#31#")
        == "Скрытие номера (CLIR): номер скрыт (показать: *31#номер)."
    )
    for bad in ({"clir": "sometimes"}, {"barring_password": "1234"}, {"colour": "red"}):
        with pytest.raises(ValueError):
            gateway.administer_supplementary(RU, bad)


def test_every_screen_fits_or_pages(gateway: Gateway) -> None:
    # Final screens of single changes fit one Cyrillic USSD page (80 characters, TS 23.038).
    for _, text, screen, _ in TABLE:
        if not text.startswith("*#") and "\n" not in screen:
            assert len(screen) <= 80, screen


# -- invariants ----------------------------------------------------------------------------------

_FIELD = st.text(alphabet="0123456789+", max_size=6)
_SS_STRINGS = st.builds(
    lambda prefix, code, fields: prefix + "*".join([code, *fields]) + "#",
    st.sampled_from(sorted(PROCEDURES)),
    st.sampled_from(sorted(SS_CODES)),
    st.lists(_FIELD, max_size=5),
)
_STATES = st.sampled_from(sorted(PRESETS))


def _ss(text: str) -> bool:
    try:
        return parse(text).kind == "ss"
    except DialStringError:
        return False


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(preset=_STATES, text=_SS_STRINGS)
def test_any_ss_string_gets_a_final_screen(gateway: Gateway, preset: str, text: str) -> None:
    if not _ss(text):
        return
    ss.save_state(gateway.store, RU, PRESETS[preset], 0.0)
    screen = dial_all(gateway, RU, text)
    assert screen and screen != "Сервис временно недоступен. Попробуйте позже."
    assert gateway.engine.dialog(RU) is None


@settings(max_examples=200, deadline=None)
@given(preset=_STATES, texts=st.lists(_SS_STRINGS, max_size=8))
def test_apply_never_raises_and_state_round_trips(preset: str, texts: list[str]) -> None:
    state = PRESETS[preset]
    for text in texts:
        if not _ss(text):
            continue
        answer, after = ss.apply(state, parse(text))
        assert isinstance(answer, ss.Answer)
        assert after.failures <= ss.MAX_PASSWORD_FAILURES
        # A blocked password stays blocked whatever the subscriber dials.
        assert not state.blocked or after.blocked
        # Only the barring password procedures touch the password.
        if parse(text).service_code not in (*ss.BARRING, ss.BARRING_PASSWORD):
            assert (after.password_hash, after.failures) == (state.password_hash, state.failures)
        for fw in after.forwarding.values():
            assert re.fullmatch(r"\+?[0-9]{3,20}", fw.number)
        again = SsState.from_row(after.to_json(), after.password_hash, after.failures)
        assert again == after
        json.dumps(after.public())
        state = after


def test_every_ss_text_exists_in_both_languages(gateway: Gateway) -> None:
    from ussd.services.supplementary import Supplementary

    gateway.texts.require(Supplementary.texts_used)
    names = gateway.texts.keys()
    keys = [k for k in names if k.startswith("ss.")]
    assert set(keys) <= set(Supplementary.texts_used)  # no dead texts


@pytest.mark.parametrize(
    ("typed", "written"),
    [
        ("*33*1234#", "*33*${password}#"),
        ("#330*1234*11#", "#330*${password}*11#"),
        ("**03*330*1234*5678*5678#", "**03*330*${password}*${password2}*${password2}#"),
        ("**03**1234*5678*5678#", "**03**${password}*${password2}*${password2}#"),
        ("*33#", "*33#"),
        ("*#33#", "*#33#"),
        ("**21*+79161112233#", "**21*+79161112233#"),
        ("*111*1234#", "*111*1234#"),
    ],
)
def test_a_recording_never_holds_the_barring_password(
    gateway: Gateway, typed: str, written: str
) -> None:
    from ussd.recording import Recorder

    rec = Recorder("SS")
    detach = rec.attach(gateway)
    rec.dial(RU, typed, gateway.engine.dial(RU, typed).to_json())
    detach()
    steps = rec.to_data()["steps"]
    assert steps[0]["dial"] == written


def test_an_older_database_gains_the_ss_table(tmp_path: Path) -> None:
    # A file written before supplementary services existed migrates in place on open.
    from ussd.store import MIGRATIONS, Store

    mine = next(i for i, script in enumerate(MIGRATIONS) if "CREATE TABLE ss_state" in script)
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    for number, script in enumerate(MIGRATIONS[:mine], start=1):
        db.executescript(script)
        db.execute(f"PRAGMA user_version = {number}")
    db.commit()
    db.close()
    store = Store(str(path))
    try:
        assert store.schema_version == len(MIGRATIONS)
        ss.save_state(store, RU, PRESETS["cfu"], 1.0)
        assert ss.load_state(store, RU) == PRESETS["cfu"]
    finally:
        store.close()
