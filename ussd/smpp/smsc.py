"""The SMSC behind the SMPP binds, as a sans-IO core: no sockets, no asyncio, no clock.

aioquic's `QuicConnection` under `aioquic/asyncio/` is the model. The adapter
(ussd/smpp/server.py) hands in bind events (a bind opened or closed, a submit_sm, the fate
of one of our requests), engine events and `now`; the core answers with actions, pulled
with `actions()`:

* `Respond(bind, pdu)`                    -> conn.send_response(pdu)
* `Send(bind, pdu, context, urgent)`      -> conn.send_request(pdu, context, now=now, urgent=...)

and hands the context back on `response()`, `timed_out()` or `failed()` (the connection's
ResponseReceived, RequestTimedOut and RequestFailed carry it). `get_timer()` says when
`handle_timer(now)` has work: SMS and receipts to offer (as soon as the adapter's loop turns,
so that a submit_sm_resp always goes out before the deliver_sm it causes) or a refused SMS
or receipt whose retry is due.

What it owns (docs/smpp.md): dialog-to-bind routing, screens (urgent: ahead of SMS and
receipts in the window), store-and-forward SMS dispatch over the binds whose sms_ranges
cover the recipient, retries, MO SMS committed before the submit_sm_resp, concatenation,
and delivery receipts. Windows and outstanding requests are the connections' (read through
`Window`), never counted twice.

`mo_sms()`, `due_receipts()` and `receipt_settled()` are the public SMS-centre side, for any
front end that submits MO SMS and collects receipts (the in-process scenario target too).
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from ussd import log
from ussd.config import SmppAccount, SmppConfig
from ussd.dialstring import DialStringError
from ussd.effects import Effect
from ussd.engine import DialogBusy, Engine, NoDialog, NotUssd, UnknownSubscriber
from ussd.events import (
    DialogEnded,
    DialogStarted,
    Event,
    Screen,
    ScreenShown,
    Sms,
    SmsQueued,
    SmsState,
    SmsStateChanged,
)
from ussd.msisdn import InvalidMsisdn
from ussd.slots import fast_init
from ussd.smpp.concat import Concat, UdhError, UserData, split_user_data
from ussd.smpp.constants import CommandId, CommandStatus, MessageState, status_name
from ussd.smpp.pdu import (
    DeliverSm,
    Pdu,
    SubmitSm,
    SubmitSmResp,
    TextCodingError,
    constructor,
    decode_text,
)
from ussd.smpp.ussd import (
    MAX_ASSIGNED_SESSION,
    Action,
    HarnessDialog,
    SmsTooLong,
    UssdRequest,
    classify,
    receipt_pdu,
    receipt_requested,
    receipt_wanted,
    screen_pdu,
    sms_fits,
    sms_pdus,
)
from ussd.sms import SmsCentre, covered
from ussd.store import Receipt, ReceiptState

__all__ = [
    "HELD_MAX",
    "RECEIPT_ATTEMPTS",
    "RETRY_ROUNDS",
    "SCAN_BATCH",
    "SCAN_STEP",
    "MoSms",
    "ReceiptPart",
    "Respond",
    "ScreenPart",
    "Send",
    "SmsPart",
    "Smsc",
    "Window",
]

_log = log.get("smpp")

RECEIPT_ATTEMPTS = 3  # a delivery receipt the harness refuses this often is given up
SCAN_BATCH = 256  # queued SMS read per store query while draining
SCAN_STEP = 1024  # queued SMS read per scan (per loop iteration) at most
HELD_MAX = 20_000  # queued SMS held in memory waiting for a busy bind at most
RETRY_ROUNDS = 4  # refused SMS and receipts go again in at most this many rounds per timeout

_OK = CommandStatus.ESME_ROK
_submit_sm_resp = constructor(SubmitSmResp)
BindKey = int  # the adapter's name for a bind (opaque here)


class Window(Protocol):
    """What the core reads of a bind's connection (ussd/smpp/connection.py owns it)."""

    @property
    def window(self) -> int: ...
    @property
    def window_free(self) -> int: ...
    @property
    def queued_urgent(self) -> int: ...
    def may_send(self, command_id: int) -> bool: ...
    # A screen is built with its number (SMPP 3.4 §3.2): the connection need not copy it.
    def allocate_sequence(self) -> int: ...


# ---- actions (core -> adapter) and request contexts (and back) --------------------------------


@fast_init
@dataclass(frozen=True, slots=True)
class Respond:
    """Send this response on the bind."""

    bind: BindKey
    pdu: Pdu


@fast_init
@dataclass(frozen=True, slots=True)
class Send:
    """Send this request on the bind with its context (urgent: ahead of queued SMS)."""

    bind: BindKey
    pdu: Pdu
    context: object  # a Context here; ussd/smpp/apps.py's AppPart for an app bind
    urgent: bool = False


@fast_init
@dataclass(frozen=True, slots=True)
class ScreenPart:
    """Context of a screen (deliver_sm with ussd_service_op)."""

    msisdn: str
    session: str
    end: bool


@dataclass(slots=True, eq=False)
class _Delivery:
    """An SMS on its way out on one bind: delivered only when every part is acknowledged."""

    sms: Sms
    bind: BindKey
    remaining: int
    failed: bool = False


@dataclass(frozen=True, slots=True, eq=False)
class SmsPart:
    """Context of one deliver_sm of an SMS."""

    delivery: _Delivery


@dataclass(frozen=True, slots=True)
class ReceiptPart:
    """Context of a delivery receipt (deliver_sm with esm_class 0x04)."""

    receipt_id: int
    system_id: str
    sms_id: int


Context = ScreenPart | SmsPart | ReceiptPart
Action_ = Respond | Send


@dataclass(frozen=True, slots=True)
class MoSms:
    """What mo_sms() did: the submit_sm_resp's status and message_id, the SMS if queued."""

    status: int
    message_id: str = ""
    sms: Sms | None = None


@dataclass(slots=True, eq=False)
class _Bind:
    key: BindKey
    account: SmppAccount
    conn: Window
    receives: bool
    next_session: int = 0
    open: bool = True

    def session_number(self) -> int:
        """A gateway-assigned its_session_info session number (1..127, per bind)."""
        self.next_session = self.next_session % MAX_ASSIGNED_SESSION + 1
        return self.next_session


class Smsc:
    """The SMS centre and USSD gateway seen from SMPP binds (SMPP 3.4, docs/smpp.md)."""

    def __init__(
        self, engine: Engine, sms: SmsCentre, config: SmppConfig, *, now: float = 0.0
    ) -> None:
        self.engine = engine
        self.sms = sms
        self.config = config
        self._actions: list[Action_] = []
        self._binds: dict[BindKey, _Bind] = {}
        self._bound: list[_Bind] = []
        self._dialogs: dict[str, HarnessDialog] = {}
        # Harness dialogs by session whose next screen waits for an outside answer (an app's
        # over HTTP or an app bind): the engine shows it later, as a ScreenShown event.
        self._awaiting: dict[str, HarnessDialog] = {}
        self._pushes: set[str] = set()  # sessions of pushes whose first screen is still to come
        self._calling: tuple[str, BindKey] | None = None
        self._answered: SubmitSm | None = None
        self._ussd_prefix = "u" + os.urandom(3).hex()  # see _ussd_message_id
        self._ussd_ids = 0
        self.stopping = False
        self._now = now
        # SMS reply path
        self._work = False  # SMS events, acknowledgements or receipts to act on
        self._sms_events: list[Event] = []
        self._in_flight: dict[int, _Delivery] = {}
        self._retry_at: dict[int, float] = {}
        # The earliest retry pending: a refusal only moves it earlier (O(1)); handle_timer
        # looks at every retry once per round, at most RETRY_ROUNDS rounds per timeout.
        self._retry_next: float | None = None
        self._scan_needed = False
        # The drain's cursor: every queued SMS with an id up to here is in flight, waiting for
        # a retry, covered by no bind, or unsendable (see _scan); it moves back when that ends.
        self._scan_after = 0
        self._scan_binds: frozenset[BindKey] = frozenset()
        self._held: dict[tuple[BindKey, ...], deque[Sms]] = {}
        self._held_ids: set[int] = set()
        self._acked: list[int] = []
        self.scan_reads = 0  # queued SMS read by scans (tests check the drain is linear)
        self._rr = 0
        # Receipts: the store holds what is owed; here only what is on the wire, when a
        # refused one may go again, and which bind the MO SMS came in on.
        self._receipts_out: set[int] = set()
        self._receipt_retry_at: dict[int, tuple[float, str]] = {}
        self._receipt_systems: set[str] = set()
        self._receipt_binds: dict[int, BindKey] = {}

    # ---- pulled output -------------------------------------------------------------------

    def actions(self) -> list[Action_]:
        """Everything to send since the last call, in order."""
        actions, self._actions = self._actions, []
        return actions

    @property
    def pending(self) -> bool:
        """Actions to pull, or work for handle_timer() as soon as the loop turns."""
        return bool(self._actions) or (self._work and not self.stopping)

    def get_timer(self) -> float | None:
        """When handle_timer() has work: -inf for "next loop iteration" (work to do or actions
        to pull), a retry, or None."""
        if (self._work or self._actions) and not self.stopping:
            return float("-inf")
        return None if self.stopping else self._retry_next

    def handle_timer(self, now: float) -> None:
        """Record acknowledged SMS, offer queued SMS and due receipts, retries that fell due."""
        self._now = now
        self._work = False
        self._mark_acked()  # even when stopping: an acknowledged SMS is delivered
        if self.stopping:
            return
        if self._retry_next is not None and self._retry_next <= now:
            self._retries_due(now)
        events, self._sms_events = self._sms_events, []
        settled: list[int] = []  # MO SMS delivered or expired: receipts may be due
        receivers: list[_Bind] | None = None  # the same for every SMS of this round
        for event in events:
            if isinstance(event, SmsQueued):
                sms_id = event.sms.id
                if sms_id in self._in_flight or sms_id in self._held_ids:
                    continue
                if receivers is None:
                    receivers = self._receivers()
                if self._deliver(event.sms, receivers) is False:
                    self._scan_needed = True
            elif isinstance(event, SmsStateChanged):
                # Delivered elsewhere (shown on a handset) or expired: a held copy is stale.
                sms = event.sms
                self._held_ids.discard(sms.id)
                if sms.kind == "mo" and sms.state is not SmsState.QUEUED:
                    settled.append(sms.id)
        if settled:
            # The store marked their receipts due in the same transaction as the state change;
            # one query for the whole batch, not one per SMS.
            self._receipt_systems.update(self.sms.receipt_systems_due(settled))
        if self._scan_needed:
            self._scan()
        if self._receipt_systems:
            systems, self._receipt_systems = self._receipt_systems, set()
            for system_id in sorted(systems):
                self._send_due_receipts(system_id)

    def _retries_due(self, now: float) -> None:
        due = [sms_id for sms_id, at in self._retry_at.items() if at <= now]
        if due:
            self._rewind(min(due))
            self._scan_needed = True
        later: float | None = None
        for at in self._retry_at.values():
            if at > now and (later is None or at < later):
                later = at
        for at, system_id in self._receipt_retry_at.values():
            if at <= now:
                self._receipt_systems.add(system_id)
            elif later is None or at < later:
                later = at
        if later is not None:
            # In rounds: a round looks at every pending retry, so one per refusal would make
            # a harness refusing a whole queue O(N²).
            later = max(later, now + self.config.response_timeout / RETRY_ROUNDS)
        self._retry_next = later

    def _retry(self, at: float) -> None:
        if self._retry_next is None or at < self._retry_next:
            self._retry_next = at

    def stop(self) -> None:
        """Shutting down: record what was acknowledged, offer nothing new."""
        self._mark_acked()
        self.stopping = True

    # ---- binds ---------------------------------------------------------------------------

    @property
    def binds(self) -> int:
        """Bound sessions."""
        return len(self._bound)

    def bind_opened(self, key: BindKey, account: SmppAccount, conn: Window, receives: bool) -> None:
        """A bind_*_resp OK went out: the bind takes screens (and SMS) if it receives."""
        bind = _Bind(key, account, conn, receives)
        self._binds[key] = bind
        self._bound.append(bind)
        if receives:
            # Store-and-forward: what waited for a bind goes out now (after the bind_resp),
            # receipts due for this system_id included (also those from before a restart).
            self._scan_needed = True
            self._receipt_systems.add(account.system_id)
            self._work = True

    def bind_closed(self, key: BindKey) -> None:
        """The bind's connection closed (its requests come back through failed())."""
        bind = self._binds.pop(key, None)
        if bind is None:
            return
        bind.open = False
        self._bound.remove(bind)
        for sms_id in [i for i, k in self._receipt_binds.items() if k == key]:
            del self._receipt_binds[sms_id]  # its receipts go to any bind of the system now
        # A harness that vanishes mid-dialog releases its dialogs (nobody is left to answer).
        mine = [m for m, d in self._dialogs.items() if d.bind == key]
        for msisdn in mine:
            del self._dialogs[msisdn]
            try:
                self.engine.release(msisdn)
            except Exception:
                _log.exception("smpp_release_failed", msisdn=msisdn)
        if bind.receives:
            self._scan_needed = True
            self._work = True

    def window_changed(self, key: BindKey) -> None:
        """A response freed room on a bind: queued SMS and receipts may go there."""
        bind = self._binds.get(key)
        if bind is not None and bind.receives and (self._scan_needed or self._held_ids):
            self._work = True

    # ---- our requests' fate ----------------------------------------------------------------

    def response(self, context: object, status: int, *, now: float) -> None:
        """A response to one of our requests arrived."""
        self._now = now
        ok = status == _OK
        if isinstance(context, ScreenPart):
            if not ok:
                self._screen_refused(context, status)
        elif isinstance(context, SmsPart):
            self._sms_part_done(context.delivery, ok, retry_now=False)
        elif isinstance(context, ReceiptPart):
            if ok:
                self._receipt_sent(context)
            else:
                self._receipt_failed(context, refused=True)

    def failed(self, context: object, *, now: float) -> None:
        """One of our requests got no answer (timed out, bind closed, state changed)."""
        self._now = now
        if isinstance(context, SmsPart):
            self._sms_part_done(context.delivery, False, retry_now=True)
        elif isinstance(context, ReceiptPart):
            self._receipt_failed(context, refused=False)
        elif self._scan_needed or self._held_ids:
            self._work = True  # a screen left a window: SMS waiting for room may go there

    timed_out = failed

    # ---- engine events -----------------------------------------------------------------------

    def engine_event(self, event: Event) -> None:
        """An engine event (synchronous; the engine is never called from here)."""
        if isinstance(event, ScreenShown):
            if self._pushes and event.screen.session in self._pushes:
                self._push_shown(event)
            elif self._awaiting:
                self._screen_shown(event)
        elif isinstance(event, DialogStarted):
            if event.service == "push":  # network-initiated: its screen goes to a handset bind
                self._pushes.add(event.session)
        elif isinstance(event, DialogEnded):
            self._dialog_ended(event)
        elif isinstance(event, SmsQueued | SmsStateChanged):
            self._sms_events.append(event)
            self._work = True

    # ---- submit_sm: USSD or MO SMS --------------------------------------------------------

    def submit_sm(self, key: BindKey, pdu: SubmitSm) -> None:
        """A submit_sm from a bound ESME: answered with exactly one submit_sm_resp."""
        bind = self._binds[key]
        request = classify(pdu)
        try:
            msisdn = self.engine.normalise(pdu.source_addr)
        except InvalidMsisdn:
            self._submit_resp(bind, pdu, CommandStatus.ESME_RINVSRCADR)
            _log.info("smpp_bad_source", system_id=bind.account.system_id)
            return
        user_data: UserData | None = None
        try:
            if request is None:
                user_data = split_user_data(pdu.message, pdu.esm_class)
                text = decode_text(user_data.payload, pdu.data_coding)
            else:
                text = decode_text(pdu.message, pdu.data_coding)
        except (UdhError, TextCodingError) as exc:
            self._submit_resp(bind, pdu, exc.status)
            _log.warning(
                "smpp_udh_refused" if isinstance(exc, UdhError) else "smpp_text_refused",
                system_id=bind.account.system_id,
                msisdn=msisdn,
                esm_class=pdu.esm_class,
                data_coding=pdu.data_coding,
                status=status_name(exc.status),
                reason=exc.reason,
            )
            return
        if request is None:
            assert user_data is not None
            system_id = bind.account.system_id
            concat = user_data.concat
            result = self._accept_mo(
                system_id, msisdn, pdu.destination_addr, text, concat, pdu.registered_delivery
            )

            def answer(committed: bool) -> None:
                final = self._mo_settled(system_id, msisdn, concat, result, committed)
                if final.sms is not None and receipt_requested(pdu.registered_delivery):
                    self._receipt_binds[final.sms.id] = key
                # Not _submit_resp(): this may run inside another request's handling (a USSD
                # step's write commits the batch first), whose _answered it must not touch.
                resp = SubmitSmResp(
                    command_status=final.status,
                    sequence_number=pdu.sequence_number,
                    message_id=final.message_id,
                )
                self._actions.append(Respond(key, resp))

            # In a batch (the adapter's group of one read's PDUs) the answer waits for the
            # batch's COMMIT: an OK only for what is on disk (docs/smpp.md).
            if result.status != _OK or not self.sms.after_commit(answer):
                answer(True)
            return
        self._ussd(bind, pdu, request, msisdn, text)

    def _ussd(
        self, bind: _Bind, pdu: SubmitSm, request: UssdRequest, msisdn: str, text: str
    ) -> None:
        action = request.action
        if action is Action.DIAL or action is Action.REPLY:
            target = self._screen_bind(bind)
            if target is not None and target.conn.queued_urgent >= target.conn.window:
                # The harness does not acknowledge its screens: a full window and as many
                # screens again waiting. Refuse new work until it catches up.
                self._submit_resp(bind, pdu, CommandStatus.ESME_RMSGQFUL)
                return
        self._answered = None
        try:
            if action is Action.DIAL:
                self._dial(bind, pdu, request, msisdn, text)
            elif action is Action.REPLY:
                self._reply(bind, pdu, request, msisdn, text)
            elif action is Action.RELEASE:
                self._release(bind, pdu, msisdn)
            elif action is Action.CONFIRM and self._notice_shown(msisdn):
                # A USSN confirm acknowledges a notice (docs/smpp.md "Pushes"); to any other
                # screen it means nothing, as before.
                self._reply(bind, pdu, request, msisdn, "")
            elif action is Action.CONFIRM:
                self._submit_resp(bind, pdu, _OK, self._ussd_message_id(""))
            else:
                self._submit_resp(bind, pdu, CommandStatus.ESME_RINVOPTPARVAL)
                _log.info(
                    "smpp_ussd_op_refused",
                    system_id=bind.account.system_id,
                    msisdn=msisdn,
                    op=request.op,
                )
        except Exception:
            # An engine bug costs this request only, never the connection; and a request is
            # answered once: after an OK, a later failure is only logged.
            _log.exception("smpp_submit_failed", system_id=bind.account.system_id, msisdn=msisdn)
            if self._answered is not pdu:
                self._submit_resp(bind, pdu, CommandStatus.ESME_RSYSERR)

    def _notice_shown(self, msisdn: str) -> bool:
        dialog = self.engine.dialog(msisdn)
        return dialog is not None and dialog.notice and not dialog.waiting

    def _submit_resp(self, bind: _Bind, pdu: SubmitSm, status: int, message_id: str = "") -> None:
        self._answered = pdu
        # Positionally (command_status, sequence_number, message_id, tlvs): one per submit_sm.
        resp = _submit_sm_resp(status, pdu.sequence_number, message_id, ())
        self._actions.append(Respond(bind.key, resp))

    def _ussd_message_id(self, session: str) -> str:
        """A non-empty message_id for a USSD submit_sm_resp OK, unique like every other one.

        SMPP 3.4 §4.4.2: the SMSC names each accepted submit_sm; clients such as Kannel log
        an error for an empty one. A dial keeps its session id (unique per dialog); a later
        PDU of the dialog is `<session>.<n>`; a release or USSN confirm with no session
        `u<random>.<n>`, random per start so ids never repeat across restarts.
        """
        self._ussd_ids += 1
        return f"{session or self._ussd_prefix}.{self._ussd_ids:x}"

    def _dial(
        self, bind: _Bind, pdu: SubmitSm, request: UssdRequest, msisdn: str, text: str
    ) -> None:
        self._calling = (msisdn, bind.key)
        try:
            shown = self.engine.handle_dial(msisdn, text, via="smpp")
        except DialStringError:
            # Not a dial string at all: a network answers the handset with an end screen, so
            # the submit is accepted and the dialog ends at once with "unknown request".
            error = self._error_screen(msisdn, pdu.destination_addr)
            if error is None:
                self._submit_resp(bind, pdu, CommandStatus.ESME_RINVSRCADR)
                return
            shown = error
        except NotUssd as exc:
            # A call or a handset-local code never reaches the USSD network (TS 22.030 §6.5).
            self._submit_resp(bind, pdu, CommandStatus.ESME_RINVDSTADR)
            _log.info(
                "smpp_not_ussd", system_id=bind.account.system_id, msisdn=msisdn, kind=exc.kind
            )
            return
        except UnknownSubscriber:
            self._submit_resp(bind, pdu, CommandStatus.ESME_RINVSRCADR)
            _log.info("smpp_unknown_subscriber", system_id=bind.account.system_id, msisdn=msisdn)
            return
        finally:
            self._calling = None
        session_number = (
            request.session.session_number if request.session else bind.session_number()
        )
        dialog = HarnessDialog(
            msisdn,
            shown.session,
            bind.key,
            session_number,
            user_message_reference=request.user_message_reference,
        )
        dialog.service_addr = pdu.destination_addr
        if isinstance(shown, Effect):
            self._await(dialog)
            self._submit_resp(bind, pdu, _OK, shown.session)
            return
        screen = shown
        if screen.end:
            self._dialogs.pop(msisdn, None)
        else:
            self._dialogs[msisdn] = dialog
        self._submit_resp(bind, pdu, _OK, screen.session or self._ussd_message_id(""))
        self._send_screen(dialog, screen.text, screen.end, screen.service_code, screen.notice)

    def _error_screen(self, msisdn: str, service_code: str) -> Screen | None:
        # A dialog of its own in the engine, so it has a record like any other (cause
        # unknown_code, docs/operations.md "Dialog records").
        try:
            return self.engine.unknown_request(msisdn, service_code, via="smpp")
        except UnknownSubscriber:
            return None

    def _reply(
        self, bind: _Bind, pdu: SubmitSm, request: UssdRequest, msisdn: str, text: str
    ) -> None:
        self._calling = (msisdn, bind.key)
        try:
            shown = self.engine.handle_reply(msisdn, text)
        except NoDialog:
            self._submit_resp(bind, pdu, CommandStatus.ESME_RINVOPTPARVAL)
            _log.info("smpp_no_dialog", system_id=bind.account.system_id, msisdn=msisdn)
            return
        except DialogBusy:
            # A reply before the screen it answers: the dialog still waits for its app's
            # answer to the previous input. Refused, and the dialog goes on (docs/smpp.md).
            self._submit_resp(bind, pdu, CommandStatus.ESME_RMSGQFUL)
            _log.info("smpp_dialog_busy", system_id=bind.account.system_id, msisdn=msisdn)
            return
        except UnknownSubscriber:
            self._submit_resp(bind, pdu, CommandStatus.ESME_RINVSRCADR)
            return
        finally:
            self._calling = None
        dialog = self._dialogs.get(msisdn)
        if dialog is None or dialog.session != shown.session or dialog.bind not in self._binds:
            # Opened elsewhere (web handset) or on a bind since gone: this bind takes it over.
            dialog = HarnessDialog(
                msisdn,
                shown.session,
                bind.key,
                request.session.session_number if request.session else bind.session_number(),
                pdus=0,
                service_addr=pdu.destination_addr,
            )
            self._dialogs[msisdn] = dialog
        dialog.harness_pdu(request)
        if isinstance(shown, Effect):
            self._await(dialog)
            self._submit_resp(bind, pdu, _OK, self._ussd_message_id(shown.session))
            return
        screen = shown
        if screen.end:
            del self._dialogs[msisdn]
        self._submit_resp(bind, pdu, _OK, self._ussd_message_id(screen.session))
        live = self.engine.dialog(msisdn)
        if live is not None and live.dropped and not screen.end:
            # An injected fault dropped the dialog (docs/network.md "Faults"): the answer is
            # lost, so nothing comes back until the handset's timer ends it.
            return
        self._send_screen(dialog, screen.text, screen.end, screen.service_code, screen.notice)

    def _release(self, bind: _Bind, pdu: SubmitSm, msisdn: str) -> None:
        # A release of a dialog that already ended (a timeout crossing it) is not an error.
        dialog = self._dialogs.pop(msisdn, None)
        self._calling = (msisdn, bind.key)
        try:
            released = self.engine.release(msisdn)
        finally:
            self._calling = None
        if dialog is not None and dialog.bind != bind.key and dialog.bind in self._binds:
            self._send_screen(dialog, "", True, "")
        self._submit_resp(bind, pdu, _OK, self._ussd_message_id(""))
        _log.info(
            "smpp_ussd_release", system_id=bind.account.system_id, msisdn=msisdn, open=released
        )

    # ---- screens -------------------------------------------------------------------------

    def _screen_bind(self, bind: _Bind) -> _Bind | None:
        """Where a bind's screens go: itself, or for a transmitter a receiver of its system_id."""
        if bind.receives:
            return bind
        for other in self._bound:
            if other.receives and other.account.system_id == bind.account.system_id:
                return other
        return None

    def _send_screen(
        self, dialog: HarnessDialog, text: str, end: bool, service_code: str, notice: bool = False
    ) -> None:
        owner = self._binds.get(dialog.bind)
        bind = self._screen_bind(owner) if owner is not None else None
        if bind is None:
            _log.info(
                "smpp_screen_undeliverable",
                system_id=owner.account.system_id if owner is not None else "",
                msisdn=dialog.msisdn,
                session=dialog.session,
            )
            return
        pdu = screen_pdu(
            bind.conn.allocate_sequence(),
            dialog.msisdn,
            service_code,
            text,
            end,
            dialog.next_info(end),
            dialog.user_message_reference,
            dialog.service_addr,
            notice,
        )
        context = ScreenPart(dialog.msisdn, dialog.session, end)
        self._actions.append(Send(bind.key, pdu, context, urgent=True))

    def _screen_refused(self, context: ScreenPart, status: int) -> None:
        _log.info(
            "smpp_screen_refused",
            msisdn=context.msisdn,
            session=context.session,
            status=status_name(status),
        )
        dialog = self._dialogs.get(context.msisdn)
        if not context.end and dialog is not None and dialog.session == context.session:
            # The user side refused a screen that waits for an answer: nobody will answer it,
            # so the dialog is released now rather than left to time out (like a TC-U-ABORT).
            del self._dialogs[context.msisdn]
            self._calling = (context.msisdn, dialog.bind)
            try:
                self.engine.release(context.msisdn)
            finally:
                self._calling = None

    def _await(self, dialog: HarnessDialog) -> None:
        """The dialog's next screen comes from an effect: submit_sm_resp now, the screen later."""
        self._dialogs[dialog.msisdn] = dialog
        self._awaiting[dialog.session] = dialog

    def _screen_shown(self, event: ScreenShown) -> None:
        screen = event.screen
        dialog = self._awaiting.pop(screen.session, None)
        if dialog is None or self._dialogs.get(dialog.msisdn) is not dialog:
            return  # not waited for here, or since taken over by another bind
        if screen.end:
            del self._dialogs[dialog.msisdn]
        self._send_screen(dialog, screen.text, screen.end, screen.service_code, screen.notice)

    def _push_shown(self, event: ScreenShown) -> None:
        """A push's first screen: to a receiving harness bind covering the MSISDN, as SMS go."""
        screen = event.screen
        self._pushes.discard(screen.session)
        msisdn = event.msisdn
        binds = [b for b in self._receivers() if covered(msisdn, b.account.sms_ranges)]
        if not binds:
            return  # no harness plays this handset: a web or terminal phone may show it
        bind = binds[0]
        dialog = HarnessDialog(
            msisdn,
            screen.session,
            bind.key,
            bind.session_number(),
            pdus=0,
            service_addr=screen.service_code,
        )
        if not screen.end:
            self._dialogs[msisdn] = dialog
        self._send_screen(dialog, screen.text, screen.end, screen.service_code, screen.notice)

    def _dialog_ended(self, event: DialogEnded) -> None:
        self._pushes.discard(event.session)
        if self._awaiting:
            self._awaiting.pop(event.session, None)
        dialog = self._dialogs.get(event.msisdn)
        if dialog is None or dialog.session != event.session:
            return
        calling = self._calling
        if calling is not None and calling[0] == event.msisdn and calling[1] == dialog.bind:
            return  # the harness's own request ended or replaced it; its call path answers
        del self._dialogs[event.msisdn]
        # Timeout, max_duration, replaced from another transport, shutdown: the harness hears
        # a PSSR response with the end bit, with the engine's text when it has one.
        screen = event.screen
        self._send_screen(
            dialog,
            screen.text if screen is not None else "",
            True,
            screen.service_code if screen is not None else "",
        )

    # ---- SMS reply path ------------------------------------------------------------------

    def _receivers(self) -> list[_Bind]:
        # may_send: an unbinding session takes no new deliver_sm (SMPP 3.4 §2.3).
        return [b for b in self._bound if b.receives and b.conn.may_send(CommandId.DELIVER_SM)]

    def _mark_acked(self) -> None:
        acked, self._acked = self._acked, []
        if acked:
            self.sms.mark_delivered_many(acked)

    def _scan(self) -> None:
        """Offer queued SMS to the binds (after a bind, a freed window, a retry), from a cursor.

        Each scan goes on from where the last one stopped, in id order, so a drain of N SMS
        reads each about once. An SMS whose covering binds are all busy is held in memory, by
        the binds that cover it, and goes out first when one of them has room; the rest the
        cursor passes (in flight, waiting for a retry, covered by no bind) it reads again only
        when that changes: a delivery failed, a retry fell due, the receivers changed. A scan
        reads at most SCAN_STEP rows and holds at most HELD_MAX SMS, then lets the loop run.
        """
        self._scan_needed = False
        receivers = self._receivers()
        if not receivers:
            return
        binds = frozenset(b.key for b in receivers)
        if binds != self._scan_binds:
            # Who covers what changed: what was held or passed may go elsewhere now.
            self._scan_binds = binds
            self._scan_after = 0
            self._held.clear()
            self._held_ids.clear()
        now = self.sms.clock.now()
        for key, queue in list(self._held.items()):
            while queue:
                sms = queue[0]
                if sms.id in self._held_ids and sms.expires > now:
                    if self._deliver(sms, receivers) is False:
                        break
                    self._held_ids.discard(sms.id)
                queue.popleft()
            if not queue:
                del self._held[key]
        after = self._scan_after
        read = 0
        exhausted = False
        while len(self._held_ids) < HELD_MAX and read < SCAN_STEP:
            if not any(b.conn.window_free > 0 for b in receivers):
                break  # nothing could go out now: no point reading on
            limit = min(SCAN_BATCH, SCAN_STEP - read)
            batch = self.sms.queued_after(after, limit)
            read += len(batch)
            for sms in batch:
                after = sms.id
                if sms.id in self._in_flight or sms.id in self._held_ids or sms.expires <= now:
                    continue
                retry = self._retry_at.get(sms.id)
                if retry is not None:
                    if retry > self._now:
                        continue
                    del self._retry_at[sms.id]
                if self._deliver(sms, receivers) is False:
                    covering = tuple(
                        b.key for b in receivers if covered(sms.recipient, b.account.sms_ranges)
                    )
                    self._held.setdefault(covering, deque()).append(sms)
                    self._held_ids.add(sms.id)
            if len(batch) < limit:
                exhausted = True
                break
        self.scan_reads += read
        self._scan_after = after
        if self._held_ids or not exhausted:
            self._scan_needed = True  # goes on when a window frees up
        if not exhausted and read >= SCAN_STEP and len(self._held_ids) < HELD_MAX:
            self._work = True  # more to read: next loop iteration, after other work

    def _rewind(self, sms_id: int) -> None:
        """The next scan must look at sms_id again (its delivery failed or may be retried)."""
        self._scan_after = min(self._scan_after, sms_id - 1)

    def _deliver(self, sms: Sms, receivers: list[_Bind] | None = None) -> bool | None:
        """Send an SMS on one covering bind: True sent, False all busy, None nobody covers."""
        if receivers is None:
            receivers = self._receivers()
        n = len(receivers)
        covering = False
        for i in range(n):
            bind = receivers[(self._rr + i) % n]
            if not covered(sms.recipient, bind.account.sms_ranges):
                continue
            covering = True
            if bind.conn.window_free <= 0:
                continue
            self._rr = (self._rr + i + 1) % n
            try:
                parts = sms_pdus(sms.recipient, sms.sender, sms.sender_is_alpha, sms.text, sms.id)
            except Exception:
                _log.exception("smpp_sms_unencodable", msisdn=sms.recipient, sms_id=sms.id)
                return True  # never sendable; it waits in the store until it expires
            delivery = _Delivery(sms, bind.key, len(parts))
            self._in_flight[sms.id] = delivery
            context = SmsPart(delivery)
            for part in parts:
                self._actions.append(Send(bind.key, part, context))
            return True
        return False if covering else None

    def _sms_part_done(self, delivery: _Delivery, ok: bool, retry_now: bool) -> None:
        delivery.remaining -= 1
        if not ok:
            delivery.failed = True
            if not retry_now:
                # The harness refused it: try again after a while, not in a tight loop.
                at = self._now + self.config.response_timeout
                self._retry_at[delivery.sms.id] = at
                self._retry(at)
        if delivery.remaining > 0:
            return
        sms_id = delivery.sms.id
        if self._in_flight.get(sms_id) is delivery:
            del self._in_flight[sms_id]
        if not delivery.failed:
            # Every part acknowledged: only now is it delivered. Recorded with the other
            # acknowledgements of this loop iteration in one transaction (handle_timer).
            self._acked.append(sms_id)
            if self.stopping:
                self._mark_acked()
        else:
            if sms_id not in self._retry_at:
                self._rewind(sms_id)  # unanswered: again at once (a refused one: its retry)
            self._scan_needed = True
        self._work = True

    # ---- MO SMS and delivery receipts (the SMS-centre side) --------------------------------

    def mo_sms(
        self,
        system_id: str,
        sender: str,
        destination: str,
        text: str,
        concat: Concat | None = None,
        registered_delivery: int = 0,
    ) -> MoSms:
        """Accept an MO SMS (or one part of a concatenated one), committed before it returns.

        One transaction holds the SMS (or the held part) and the receipt it owes, so nothing
        acknowledged is lost; a receipt goes to `system_id` once the SMS is delivered or
        expires (due_receipts()).
        """
        result = self._accept_mo(system_id, sender, destination, text, concat, registered_delivery)
        return self._mo_settled(system_id, sender, concat, result, True)

    def _accept_mo(
        self,
        system_id: str,
        sender: str,
        destination: str,
        text: str,
        concat: Concat | None,
        registered_delivery: int,
    ) -> MoSms:
        """mo_sms() up to its transaction: in a store group, a savepoint not yet committed."""
        try:
            recipient = self.engine.normalise(destination)
        except InvalidMsisdn:
            return MoSms(CommandStatus.ESME_RINVDSTADR)
        centre = self.sms
        sms: Sms | None = None
        try:
            with centre.transaction(grouped=True):
                if concat is None or concat.total == 1:
                    if not sms_fits(text):
                        raise SmsTooLong(text)
                    sms = self.sms.queue(
                        recipient, text, sender=sender, kind="mo", sender_is_alpha=False
                    )
                    message_id = str(sms.id)
                    if receipt_requested(registered_delivery):
                        centre.owe_receipt(sms, system_id, message_id, sender, registered_delivery)
                else:
                    # TS 23.040 §9.2.3.24.1: parts of one set share originator, recipient,
                    # reference and count; it becomes ONE SMS when the last part arrives.
                    message_id, parts = centre.hold_part(
                        sender,
                        recipient,
                        concat.reference,
                        concat.total,
                        concat.seq,
                        text,
                        system_id=system_id,
                        registered_delivery=registered_delivery,
                    )
                    if parts is not None:
                        whole = "".join(p.text for p in parts)
                        if not sms_fits(whole):
                            raise SmsTooLong(whole)  # rolled back: this part is not kept
                        sms = self.sms.queue(
                            recipient, whole, sender=sender, kind="mo", sender_is_alpha=False
                        )
                        # SMPP 3.4 §5.2.17: each submit_sm is a message of its own, so every
                        # part that asked for a receipt is owed one, named after that part,
                        # all reporting the fate of the reassembled SMS.
                        for part in parts:
                            if receipt_requested(part.registered_delivery):
                                centre.owe_receipt(
                                    sms,
                                    part.system_id,
                                    part.message_id,
                                    sender,
                                    part.registered_delivery,
                                )
        except SmsTooLong:
            # It could only go out cut short (255 parts at most, TS 23.040 §9.2.3.24.1), and a
            # truncated SMS reported delivered is worse than a clear refusal now.
            _log.warning("smpp_mo_sms_too_long", system_id=system_id, msisdn=sender)
            return MoSms(CommandStatus.ESME_RINVMSGLEN)
        except Exception:
            # A store failure costs this request only; nothing was acknowledged.
            _log.exception("smpp_mo_sms_failed", system_id=system_id, msisdn=sender)
            return MoSms(CommandStatus.ESME_RSYSERR)
        return MoSms(_OK, message_id, sms)

    def _mo_settled(
        self,
        system_id: str,
        sender: str,
        concat: Concat | None,
        result: MoSms,
        committed: bool,
    ) -> MoSms:
        """The answer to an accepted MO SMS once its transaction committed, or did not."""
        if result.status != _OK:
            return result
        if not committed:
            # The batch's COMMIT failed (the store logged why): nothing of it is on disk.
            _log.warning("smpp_mo_sms_not_committed", system_id=system_id, msisdn=sender)
            return MoSms(CommandStatus.ESME_RSYSERR)
        sms = result.sms
        if sms is not None:
            self.sms.announce(sms)  # after the commit: persist first, tell second
        _log.info(
            "smpp_mo_sms_part" if concat is not None and concat.total > 1 else "smpp_mo_sms",
            system_id=system_id,
            msisdn=sender,
            part=concat.seq if concat is not None else None,
            parts=concat.total if concat is not None else None,
            sms_id=sms.id if sms is not None else None,
        )
        return result

    def due_receipts(self, system_id: str) -> list[tuple[Receipt, DeliverSm]]:
        """Receipts owed to system_id whose SMS met its fate, each with its deliver_sm.

        Receipts the ESME did not ask for on this outcome (registered_delivery) are skipped
        here; settle each returned one with receipt_settled().
        """
        out: list[tuple[Receipt, DeliverSm]] = []
        for receipt in self.sms.due_receipts(system_id):
            delivered = receipt.final_state is SmsState.DELIVERED
            if not receipt_wanted(receipt.registered_delivery, delivered):
                self.sms.close_receipt(receipt.id, ReceiptState.SKIPPED)
                continue
            out.append((receipt, _receipt_pdu(receipt)))
        return out

    def receipt_settled(self, receipt_id: int, ok: bool) -> bool:
        """The receipt was acknowledged (ok) or refused; True when it is closed for good."""
        if ok:
            self.sms.close_receipt(receipt_id, ReceiptState.SENT)
            return True
        if self.sms.receipt_refused(receipt_id) >= RECEIPT_ATTEMPTS:
            self.sms.close_receipt(receipt_id, ReceiptState.REFUSED)
            return True
        return False

    def _send_due_receipts(self, system_id: str) -> None:
        """Offer the receipts due for system_id to its receiving binds."""
        binds = [b for b in self._receivers() if b.account.system_id == system_id]
        if not binds:
            return  # kept in the store until this system_id binds as receiver or transceiver
        keys = [b.key for b in binds]
        now = self._now
        for n, (receipt, pdu) in enumerate(self.due_receipts(system_id)):
            if receipt.id in self._receipts_out:
                continue  # on the wire already: exactly one copy at a time
            retry = self._receipt_retry_at.get(receipt.id)
            if retry is not None:
                if retry[0] > now:
                    continue
                del self._receipt_retry_at[receipt.id]
            key = self._receipt_binds.get(receipt.sms_id)
            if key is None or key not in keys:
                key = keys[n % len(keys)]
            self._receipts_out.add(receipt.id)
            context = ReceiptPart(receipt.id, system_id, receipt.sms_id)
            self._actions.append(Send(key, pdu, context))

    def _receipt_sent(self, context: ReceiptPart) -> None:
        self._receipts_out.discard(context.receipt_id)
        self._receipt_binds.pop(context.sms_id, None)
        self.receipt_settled(context.receipt_id, ok=True)  # only a deliver_sm_resp OK settles

    def _receipt_failed(self, context: ReceiptPart, refused: bool) -> None:
        self._receipts_out.discard(context.receipt_id)
        if self.stopping:
            return  # it stays due in the store for the next start
        if not refused:
            # Unanswered (timeout, bind gone): offer it again now, on any bind of the system.
            self._receipt_systems.add(context.system_id)
            self._work = True
            return
        if self.receipt_settled(context.receipt_id, ok=False):
            _log.warning("smpp_receipt_refused", system_id=context.system_id, sms_id=context.sms_id)
            return
        # The harness refused it: again after a while, not in a tight loop (as for SMS).
        at = self._now + self.config.response_timeout
        self._receipt_retry_at[context.receipt_id] = (at, context.system_id)
        self._retry(at)


def _receipt_pdu(receipt: Receipt) -> DeliverSm:
    delivered = receipt.final_state is SmsState.DELIVERED
    return receipt_pdu(
        receipt.message_id,
        receipt.source_addr,
        receipt.dest_addr,
        receipt.submitted,
        receipt.done if receipt.done is not None else receipt.submitted,
        MessageState.DELIVERED if delivered else MessageState.EXPIRED,
        receipt.text,
    )
