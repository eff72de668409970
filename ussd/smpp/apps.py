"""Application binds (`role: app`), sans-IO: dialogs handed to apps and pushes from them.

The gateway's other side over SMPP (docs/smpp.md "SMPP applications"): a route
`"*555#": smpp:SYSTEM_ID` makes each step of the dialog an effect of kind `smpp`
(ussd/services/smppapp.py); the adapter hands it to `perform()`, which sends the app a
`deliver_sm` (op 1 with the whole dial string to start, op 18 with each answer), and the app's
`submit_sm` (op 2 show and wait, 17 show and end, 3 notify) comes back through `submit_sm()`
as the effect's result. A `submit_sm` op 2 or 3 to an MSISDN with no dialog starts a
network-initiated one (`Engine.push`). When the subscriber's side ends a dialog the app is
told with an end-bit `deliver_sm` (`engine_event()`).

Like the SMSC core (ussd/smpp/smsc.py) it is handed bind events, PDUs, the fate of its
requests, engine events and `now`, and answers with actions (`Respond`, `Send`) and effect
results, pulled with `actions()` and `results()`. No sockets, no asyncio.

The PDU layouts of each `ussd_profile` are pure functions (`deliver_pdu`, `read_submit`), with
golden PDUs in tests/smpp/test_apps_profiles.py.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass

from ussd import log
from ussd.config import SmppAccount, SmppConfig
from ussd.effects import Answer, Effect, Failure, Result
from ussd.engine import Engine, SubscriberBusy, UnknownSubscriber
from ussd.events import AppExchange, DialogEnded, Event, Outcome
from ussd.faults import APP_ERROR
from ussd.msisdn import InvalidMsisdn
from ussd.services import smppapp
from ussd.smpp.constants import CommandId, CommandStatus, Npi, Tag, Ton, UssdServiceOp, status_name
from ussd.smpp.pdu import (
    DeliverSm,
    ItsSessionInfo,
    ShortMessagePdu,
    SubmitSm,
    SubmitSmResp,
    TextCodingError,
    Tlv,
    decode_text,
    encode_text,
    tlv_u16,
)
from ussd.smpp.smsc import Respond, Send, Window
from ussd.smpp.ussd import SEQUENCE_MODULO, USSD_SERVICE_TYPE, screen_source

__all__ = [
    "CLOSE_23",
    "LATE_MAX",
    "PROFILES",
    "AppDialog",
    "AppPart",
    "AppSubmit",
    "Apps",
    "deliver_pdu",
    "exchange",
    "read_submit",
]

_log = log.get("smpp")
_OK = CommandStatus.ESME_ROK

PROFILES = ("standard", "6d", "mica")
# vumi's 6D and Mica processors write ussd_service_op as hex text ('17' for "close"), which
# python-smpp packs as the octet 0x17: those apps end a dialog with op 23, not 17.
CLOSE_23 = 0x17
LATE_MAX = 10_000  # ended dialogs remembered to recognise an app's late answer, at most

# A push to a busy MSISDN: SMPP 3.4 has no "subscriber busy" status. ESME_RSUBMITFAIL (0x45,
# "submit_sm failed") is its status for a well-formed submit the SMSC refuses; the busy
# subscriber is MAP's ussd-Busy, which a gateway reports the same way (docs/smpp.md).
BUSY_STATUS = CommandStatus.ESME_RSUBMITFAIL

BindKey = int


# ---- the profiles' PDUs (pure) ------------------------------------------------------------


_APP_OPS: dict[int, str] = {
    UssdServiceOp.USSR_REQUEST: smppapp.CONTINUE,
    UssdServiceOp.PSSR_RESPONSE: smppapp.END,
    UssdServiceOp.USSN_REQUEST: smppapp.NOTIFY,
    UssdServiceOp.RELEASE: smppapp.RELEASE,
}


@dataclass(frozen=True, slots=True)
class AppSubmit:
    """An application's USSD submit_sm, read per its profile."""

    op: int
    kind: str  # smppapp.CONTINUE | END | NOTIFY | RELEASE, or "refuse"
    ident: int | None  # the session it names: its_session_info (standard, 6d) or umr (mica)
    sequence: int | None = None  # standard: its_session_info's sequence number


def read_submit(profile: str, pdu: ShortMessagePdu) -> AppSubmit | None:
    """What an app's submit_sm asks for; None without a ussd_service_op (not USSD).

    standard: op 2 continue, 17 end, 3 notify, 0x81 release; the end bit of its_session_info
    ends the dialog whatever the op (vumi's default processor ends with op 2 + end bit).
    6d: as standard, with op 0x17 for end and its_session_info a 15-bit id + end bit.
    mica: as 6d, the session id in user_message_reference.
    """
    op: int | None = None
    info: bytes | None = None
    umr: bytes | None = None
    for tag, value in pdu.tlvs:
        if tag == Tag.USSD_SERVICE_OP and op is None and len(value) == 1:
            op = value[0]
        elif tag == Tag.ITS_SESSION_INFO and info is None and len(value) == 2:
            info = value
        elif tag == Tag.USER_MESSAGE_REFERENCE and umr is None and len(value) == 2:
            umr = value
    if op is None:
        return None
    kind = _APP_OPS.get(op, "refuse")
    if op == CLOSE_23 and profile != "standard":
        kind = smppapp.END
    ident: int | None = None
    sequence: int | None = None
    end_bit = False
    if profile == "mica":
        ident = int.from_bytes(umr, "big") if umr else None
    elif info is not None:
        end_bit = bool(info[1] & 1)
        if profile == "6d":
            ident = int.from_bytes(info, "big") & 0xFFFE
        else:
            ident, sequence = info[0], info[1] >> 1
    if end_bit and kind in (smppapp.CONTINUE, smppapp.NOTIFY):
        kind = smppapp.END
    return AppSubmit(op, kind, ident, sequence)


def deliver_pdu(
    profile: str,
    op: int,
    msisdn: str,
    service_code: str,
    text: str,
    ident: int,
    sequence: int,
    end: bool,
) -> DeliverSm:
    """A deliver_sm to an application (SMPP 3.4 §4.6.1) in its profile's conventions.

    source_addr is the subscriber (TON 1, NPI 1), destination_addr the service code,
    service_type USSD. standard: its_session_info (ident, sequence, end) per SMPP 3.4
    §5.3.2.43. 6d: its_session_info = the 15-bit id | end bit, the same for the whole dialog.
    mica: user_message_reference = the id.
    """
    data, coding = encode_text(text)
    tlvs: tuple[Tlv, ...]
    op_tlv: Tlv = (Tag.USSD_SERVICE_OP, bytes((op,)))
    if profile == "mica":
        tlvs = (op_tlv, tlv_u16(Tag.USER_MESSAGE_REFERENCE, ident))
    elif profile == "6d":
        tlvs = (op_tlv, tlv_u16(Tag.ITS_SESSION_INFO, (ident & 0xFFFE) | end))
    else:
        info = ItsSessionInfo(ident, sequence % SEQUENCE_MODULO, end)
        tlvs = (op_tlv, (Tag.ITS_SESSION_INFO, info.to_bytes()))
    if len(data) > 254:
        tlvs = (*tlvs, (Tag.MESSAGE_PAYLOAD, data))  # SMPP 3.4 §5.3.2.32
        data = b""
    return DeliverSm(
        service_type=USSD_SERVICE_TYPE,
        source_addr_ton=Ton.INTERNATIONAL,
        source_addr_npi=Npi.ISDN,
        source_addr=msisdn,
        dest_addr_ton=Ton.UNKNOWN,
        dest_addr_npi=Npi.UNKNOWN,
        destination_addr=screen_source(service_code),
        data_coding=coding,
        short_message=data,
        tlvs=tlvs,
    )


# ---- the core ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AppPart:
    """Context of a deliver_sm to an app: the effect it asks for, if any."""

    session: str
    effect: str  # "" for an end-bit deliver_sm, which asks for nothing
    end: bool


@dataclass(slots=True, eq=False)
class _AppBind:
    key: BindKey
    account: SmppAccount
    conn: Window
    receives: bool
    next_ident: int = 0

    def ident(self) -> int:
        """A session id the gateway assigns: 1..127 (standard), even 2..0x7FFE (6d), 1..0xFFFF.

        Standard ids stay below 0x80 for apps on aiosmpplib (docs/smpp.md "Interoperability").
        """
        profile = self.account.ussd_profile
        modulo = 127 if profile == "standard" else 0x3FFF if profile == "6d" else 0xFFFF
        self.next_ident = self.next_ident % modulo + 1
        return self.next_ident * 2 if profile == "6d" else self.next_ident


@dataclass(slots=True, eq=False)
class AppDialog:
    """A dialog an application takes part in (by engine session)."""

    session: str
    msisdn: str
    system_id: str
    profile: str
    bind: BindKey | None
    service_code: str
    ident: int
    pdus: int = 0  # standard: PDUs of the dialog so far, both directions (the sequence)
    waiting: str = ""  # the effect waiting for the app's next submit_sm
    notified: bool = False  # the subscriber's screen is a USSN notice (op 3)
    app_ended: bool = False  # the app released it: it needs no end-bit deliver_sm


class Apps:
    """Every application bind of one SMPP server (docs/smpp.md "SMPP applications")."""

    def __init__(self, engine: Engine, config: SmppConfig) -> None:
        self.engine = engine
        self.config = config
        self._binds: dict[BindKey, _AppBind] = {}
        self._by_session: dict[str, AppDialog] = {}
        self._by_msisdn: dict[str, AppDialog] = {}
        self._actions: list[Respond | Send] = []
        self._results: list[tuple[str, Result]] = []
        self._rr = 0
        # (system_id, msisdn) -> (ident, until): a late answer to an ended dialog is refused,
        # not taken for a push (bounded: the oldest go first).
        self._ended: OrderedDict[tuple[str, str], tuple[int, float]] = OrderedDict()
        self._prefix = "a" + os.urandom(3).hex()
        self._answered = False  # the submit_sm being handled has its response
        self._ids = 0
        self.late_answers = 0

    # ---- pulled output ------------------------------------------------------------------------

    def actions(self) -> list[Respond | Send]:
        actions, self._actions = self._actions, []
        return actions

    def results(self) -> list[tuple[str, Result]]:
        """(effect id, result) for effects the apps answered or failed since the last call."""
        results, self._results = self._results, []
        return results

    @property
    def pending(self) -> bool:
        return bool(self._actions or self._results)

    # ---- binds -------------------------------------------------------------------------------

    def is_app(self, key: BindKey) -> bool:
        return key in self._binds

    def profile(self, system_id: str) -> str:
        """The ussd_profile of a bound app ("standard" when none of its binds is open)."""
        for bind in self._binds.values():
            if bind.account.system_id == system_id:
                return bind.account.ussd_profile
        return "standard"

    def bind_opened(self, key: BindKey, account: SmppAccount, conn: Window, receives: bool) -> None:
        self._binds[key] = _AppBind(key, account, conn, receives)

    def bind_closed(self, key: BindKey) -> None:
        """An app's bind is gone: its dialogs end with "service unavailable" at once, unless
        another bind of the app can take them when the subscriber answers."""
        bind = self._binds.pop(key, None)
        if bind is None:
            return
        others = self._receiver(bind.account.system_id) is not None
        for dialog in list(self._by_session.values()):
            if dialog.bind != key:
                continue
            dialog.bind = None
            if dialog.waiting:
                self._fail(dialog, Outcome.APP_UNAVAILABLE, "the application's bind was lost")
            elif not others:
                # The subscriber has the turn, but nobody is left to hear the answer.
                dialog.app_ended = True
                try:
                    self.engine.abort(
                        dialog.msisdn, dialog.session, Outcome.APP_UNAVAILABLE, smppapp.UNAVAILABLE
                    )
                except Exception:  # one dialog's trouble must not stop the others' ending
                    _log.exception("smpp_app_abort_failed", msisdn=dialog.msisdn)

    def _receiver(self, system_id: str, prefer: BindKey | None = None) -> _AppBind | None:
        binds = [
            b
            for b in self._binds.values()
            if b.account.system_id == system_id
            and b.receives
            and b.conn.may_send(CommandId.DELIVER_SM)
        ]
        if not binds:
            return None
        for bind in binds:
            if bind.key == prefer:
                return bind
        self._rr = (self._rr + 1) % len(binds)
        return binds[self._rr]

    # ---- effects: the subscriber's side asks the app ---------------------------------------

    def perform(self, effect: Effect) -> None:
        """Send the app the PDU an `smpp` effect asks for; its answer comes as a result."""
        request = effect.request
        system_id = str(request.get("system_id", ""))
        op = str(request.get("op", ""))
        text = str(request.get("text", ""))
        injected = self.engine.faults.app(effect.msisdn, effect.service_code, system_id)
        if injected is not None:  # an injected fault (docs/network.md): the app is not asked
            if injected.kind == APP_ERROR:
                failure = Failure(Outcome.APP_ERROR, f"injected fault {injected.rule}")
                self._results.append((effect.id, failure))
            return  # app_timeout: nothing is sent; the effect's deadline ends the wait
        dialog = self._by_session.get(effect.session)
        if dialog is not None and dialog.system_id != system_id:
            dialog = None
        bind = self._receiver(system_id, dialog.bind if dialog is not None else None)
        if bind is None:
            reason = (
                "the application's bind was lost"
                if dialog is not None
                else f"no application bound as {system_id!r}"
            )
            self._results.append((effect.id, Failure(Outcome.APP_UNAVAILABLE, reason)))
            _log.info("smpp_app_unavailable", system_id=system_id, msisdn=effect.msisdn)
            return
        if dialog is None:
            dialog = AppDialog(
                effect.session,
                effect.msisdn,
                system_id,
                bind.account.ussd_profile,
                bind.key,
                effect.service_code,
                bind.ident(),
            )
            self._by_session[dialog.session] = dialog
            self._by_msisdn[dialog.msisdn] = dialog
        dialog.bind = bind.key
        dialog.waiting = effect.id
        dialog.notified = False
        ussd_op = UssdServiceOp.PSSR_INDICATION if op == "begin" else UssdServiceOp.USSR_CONFIRM
        self._deliver(dialog, bind, ussd_op, text, end=False, effect=effect.id)

    def cancel(self, effect_id: str) -> None:
        """The engine stopped waiting (timeout, release): a late answer is refused."""
        for dialog in self._by_session.values():
            if dialog.waiting == effect_id:
                dialog.waiting = ""

    def _deliver(
        self, dialog: AppDialog, bind: _AppBind, op: int, text: str, end: bool, effect: str
    ) -> None:
        pdu = deliver_pdu(
            dialog.profile,
            op,
            dialog.msisdn,
            dialog.service_code,
            text,
            dialog.ident,
            dialog.pdus,
            end,
        )
        dialog.pdus += 1
        self._actions.append(Send(bind.key, pdu, AppPart(dialog.session, effect, end), urgent=True))

    def _fail(self, dialog: AppDialog, cause: Outcome, reason: str) -> None:
        effect, dialog.waiting = dialog.waiting, ""
        self._results.append((effect, Failure(cause, reason)))
        if cause is Outcome.APP_UNAVAILABLE:
            dialog.app_ended = True  # nobody to tell

    def response(self, context: AppPart, status: int) -> None:
        """The app answered one of our deliver_sm: a refusal fails what it asked for."""
        if status == _OK or not context.effect:
            return
        dialog = self._by_session.get(context.session)
        if dialog is not None and dialog.waiting == context.effect:
            self._fail(dialog, Outcome.APP_ERROR, f"deliver_sm refused: {status_name(status)}")

    def failed(self, context: AppPart) -> None:
        """One of our deliver_sm got no answer (timed out, bind closed)."""
        dialog = self._by_session.get(context.session)
        if context.effect and dialog is not None and dialog.waiting == context.effect:
            self._fail(dialog, Outcome.APP_UNAVAILABLE, "the application did not take the PDU")

    # ---- the app's submit_sm ------------------------------------------------------------------

    def submit_sm(self, key: BindKey, pdu: SubmitSm) -> None:
        """A submit_sm from an app bind: answered with exactly one submit_sm_resp."""
        self._answered = False
        try:
            self._submit_sm(key, pdu)
        except Exception:
            # An engine or service bug costs this request only, never the connection; and a
            # request is answered once: after an OK, a later failure is only logged.
            _log.exception("smpp_app_submit_failed", system_id=self._binds[key].account.system_id)
            if not self._answered:
                self._respond(key, pdu, CommandStatus.ESME_RSYSERR)

    def _submit_sm(self, key: BindKey, pdu: SubmitSm) -> None:
        bind = self._binds[key]
        system_id = bind.account.system_id
        request = read_submit(bind.account.ussd_profile, pdu)
        if request is None:
            # An app bind speaks USSD only; SMS to subscribers go through a harness account.
            self._respond(key, pdu, CommandStatus.ESME_RSUBMITFAIL)
            _log.info("smpp_app_not_ussd", system_id=system_id)
            return
        try:
            msisdn = self.engine.normalise(pdu.destination_addr)
        except InvalidMsisdn:
            self._respond(key, pdu, CommandStatus.ESME_RINVDSTADR)
            return
        try:
            text = decode_text(pdu.message, pdu.data_coding)
        except TextCodingError as exc:
            self._respond(key, pdu, exc.status)
            return
        if request.kind == "refuse":
            self._respond(key, pdu, CommandStatus.ESME_RINVOPTPARVAL)
            _log.info("smpp_app_op_refused", system_id=system_id, msisdn=msisdn, op=request.op)
            return
        dialog = self._by_msisdn.get(msisdn)
        if dialog is not None and dialog.system_id == system_id:
            self._in_dialog(key, pdu, dialog, request, text)
            return
        if request.kind == smppapp.RELEASE:
            self._respond(key, pdu, _OK, self._message_id())  # nothing open: a crossed release
            return
        if request.kind == smppapp.END:
            # A final screen needs a dialog to end: without one there is nothing to answer.
            self._respond(key, pdu, CommandStatus.ESME_RINVOPTPARVAL)
            _log.info("smpp_app_no_dialog", system_id=system_id, msisdn=msisdn)
            return
        if self._late(system_id, msisdn, request):
            self.late_answers += 1
            self._respond(key, pdu, CommandStatus.ESME_RINVOPTPARVAL)
            _log.info("smpp_app_late_answer", system_id=system_id, msisdn=msisdn)
            return
        self._push(bind, pdu, request, msisdn, text)

    def _in_dialog(
        self, key: BindKey, pdu: SubmitSm, dialog: AppDialog, request: AppSubmit, text: str
    ) -> None:
        if not dialog.waiting:
            if request.kind == smppapp.RELEASE:
                dialog.app_ended = True
                self._respond(key, pdu, _OK, self._message_id())
                self.engine.abort(dialog.msisdn, dialog.session, Outcome.APP_RELEASE)
                return
            # The subscriber has the turn: one screen at a time (TS 24.090).
            self._respond(key, pdu, CommandStatus.ESME_RINVOPTPARVAL)
            _log.info("smpp_app_not_its_turn", system_id=dialog.system_id, msisdn=dialog.msisdn)
            return
        effect, dialog.waiting = dialog.waiting, ""
        dialog.pdus += 1
        dialog.notified = request.kind == smppapp.NOTIFY
        if request.kind in (smppapp.END, smppapp.RELEASE):
            dialog.app_ended = True
        self._respond(key, pdu, _OK, self._message_id())
        self._results.append((effect, Answer({"op": request.kind, "text": text})))

    def _push(
        self, bind: _AppBind, pdu: SubmitSm, request: AppSubmit, msisdn: str, text: str
    ) -> None:
        system_id = bind.account.system_id
        if not text:
            self._respond(bind.key, pdu, CommandStatus.ESME_RINVMSGLEN)
            return
        origin = f"{smppapp.ORIGIN_PREFIX}{system_id}"
        try:
            screen = self.engine.push(
                msisdn, text, request.kind == smppapp.CONTINUE, origin, pdu.source_addr
            )
        except SubscriberBusy:
            self._respond(bind.key, pdu, BUSY_STATUS)
            _log.info("smpp_push_busy", system_id=system_id, msisdn=msisdn)
            return
        except UnknownSubscriber:
            self._respond(bind.key, pdu, CommandStatus.ESME_RINVDSTADR)
            return
        profile = bind.account.ussd_profile
        ident = request.ident if request.ident is not None else bind.ident()
        dialog = AppDialog(
            screen.session,
            msisdn,
            system_id,
            profile,
            bind.key if bind.receives else None,
            pdu.source_addr,
            ident,
            # standard: our next PDU follows the app's opening one in the sequence
            pdus=(request.sequence or 0) + 1,
            notified=request.kind == smppapp.NOTIFY,
        )
        if not screen.end:
            self._by_session[dialog.session] = dialog
            self._by_msisdn[msisdn] = dialog
        self._respond(bind.key, pdu, _OK, screen.session)
        _log.info("smpp_push", system_id=system_id, msisdn=msisdn, reply=not dialog.notified)

    def _late(self, system_id: str, msisdn: str, request: AppSubmit) -> bool:
        ended = self._ended.get((system_id, msisdn))
        if ended is None or request.ident is None:
            return False
        ident, until = ended
        return ident == request.ident and self.engine.clock.now() < until

    def _respond(self, key: BindKey, pdu: SubmitSm, status: int, message_id: str = "") -> None:
        self._answered = True
        resp = SubmitSmResp(
            command_status=status, sequence_number=pdu.sequence_number, message_id=message_id
        )
        self._actions.append(Respond(key, resp))

    def _message_id(self) -> str:
        self._ids += 1
        return f"{self._prefix}.{self._ids:x}"

    # ---- engine events: the subscriber's side ended a dialog ---------------------------------

    def engine_event(self, event: Event) -> None:
        if not isinstance(event, DialogEnded) or not self._by_session:
            return
        dialog = self._by_session.pop(event.session, None)
        if dialog is None:
            return
        if self._by_msisdn.get(dialog.msisdn) is dialog:
            del self._by_msisdn[dialog.msisdn]
        if dialog.waiting:
            # It ended while the app owed an answer (too slow, or the subscriber left): that
            # answer may still come, and must not be taken for a new push.
            self._remember(dialog)
        if dialog.app_ended or event.outcome in (Outcome.APP_RELEASE, Outcome.APP_UNAVAILABLE):
            return
        bind = self._receiver(dialog.system_id, dialog.bind)
        if bind is None:
            return
        if dialog.notified and event.outcome is Outcome.COMPLETED:
            op = UssdServiceOp.USSN_CONFIRM  # the notice was acknowledged: that ends it
        elif dialog.profile == "standard":
            # Released, timed out, replaced, app too slow, ...: SMPP 3.4 has no release
            # operation; the end bit says it (§5.3.2.43), on an empty USSR confirm. Not 0x81:
            # apps on aiosmpplib cannot parse an octet >= 0x80 in a TLV (docs/smpp.md).
            op = UssdServiceOp.USSR_CONFIRM
        else:
            op = UssdServiceOp.RELEASE  # 6D's and Mica's "close" (user abort), op 0x81
        self._deliver(dialog, bind, op, "", end=True, effect="")

    def _remember(self, dialog: AppDialog) -> None:
        key = (dialog.system_id, dialog.msisdn)
        self._ended.pop(key, None)
        self._ended[key] = (dialog.ident, self.engine.clock.now() + self.config.app_timeout)
        while len(self._ended) > LATE_MAX:
            self._ended.popitem(last=False)


# ---- what the web phone's app console shows (ussd.events.AppExchange) ----------------------

_SHOWN = 4096  # characters of a request or an answer an exchange keeps, as for HTTP apps
_ANSWER_OPS = {
    smppapp.CONTINUE: "op 2",
    smppapp.END: "op 17",
    smppapp.NOTIFY: "op 3",
    smppapp.RELEASE: "op 0x81",
}
_FAILED: dict[Outcome, str] = {
    Outcome.APP_TIMEOUT: "timeout",
    Outcome.APP_UNAVAILABLE: "unavailable",
    Outcome.APP_ERROR: "error",
}


def exchange(
    effect: Effect, profile: str, result: Result | None, latency_ms: float, timed_out: bool
) -> AppExchange:
    """One deliver_sm to an app and what came of it, for the console and the metrics.

    `result` None: the effect was cancelled (its deadline passed: `timed_out`, or the dialog
    ended). Outcomes are ussd.apps.client.EXCHANGE_OUTCOMES; no HTTP status (None).
    """
    request = effect.request
    system_id = str(request.get("system_id", ""))
    op = "op 1" if request.get("op") == "begin" else "op 18"
    answer = ""
    if isinstance(result, Answer):
        kind = str(result.value.get("op", smppapp.CONTINUE))
        answer = f"submit_sm {_ANSWER_OPS.get(kind, kind)}\n{result.value.get('text', '')}"
        outcome = "end" if kind in (smppapp.END, smppapp.RELEASE) else "continue"
    elif isinstance(result, Failure):
        answer = result.reason
        outcome = _FAILED.get(result.cause, "error")
    else:
        outcome = "timeout" if timed_out else "cancelled"
    return AppExchange(
        msisdn=effect.msisdn,
        session=effect.session,
        app=f"{smppapp.ORIGIN_PREFIX}{system_id}",
        dialect=f"smpp/{profile}",
        url=f"smpp://{system_id}",
        request=f"deliver_sm {op}\n{request.get('text', '')}"[:_SHOWN],
        status=None,
        answer=answer[:_SHOWN],
        latency_ms=latency_ms,
        outcome=outcome,
    )
