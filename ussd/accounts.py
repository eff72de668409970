"""The personal account: login, SMS passwords, tokens, linking numbers, social sign-in.

Sans-IO: no asyncio and no wall clock. Time is read from the injected clock; every rule's state
(wrong-password counts, locks, SMS-password rate limit, tokens, links) lives in SQLite, so a
restarted gateway keeps enforcing it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
import string
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ussd import log, selfcare, subscribers
from ussd.captcha import CaptchaError, Captchas, Challenge
from ussd.clock import Clock
from ussd.config import Config
from ussd.menus import Texts
from ussd.msisdn import InvalidMsisdn, mask, normalise
from ussd.passwords import Flow, Hash, Verify, drive
from ussd.selfcare import Catalogue, Refused
from ussd.sms import SmsCentre
from ussd.store import Link, Store, Subscriber

_log = log.get("accounts")

PASSWORD_RE = re.compile(r"[A-Za-z0-9]{4,10}")  # docs/services.md: 4–10 Latin letters, digits
SMS_PASSWORD_LENGTH = 8
UNKNOWN_AUTH_CAP = 10_000  # numbers that are no subscriber whose wrong passwords are counted
# Generated passwords are read off a handset screen and retyped: no look-alikes (0/O/o/D/Q,
# 1/l/I/i/j/J, 5/S, 2/Z, 8/B). 45 symbols are left: 8 of them are about 44 bits.
LOOK_ALIKES = frozenset("0OoDQ1lIijJ5S2Z8B")
_SMS_PASSWORD_ALPHABET = "".join(
    c for c in string.ascii_letters + string.digits if c not in LOOK_ALIKES
)
_PROVIDER_RE = re.compile(r"[a-z][a-z0-9_.-]{0,31}")
MAX_EXTERNAL_ID = 128

# SMS texts of the personal account (docs/account.md) live in menus/texts.yaml under `account:`;
# {password} appears only in the SMS-password text: the SMS is the one place it may go.
SMS_TEXT_KEYS = (
    "account.sms_password",
    "account.password_changed",
    "account.linked_account",
    "account.linked_number",
    "bonus.sms_exchanged",
    "instalments.sms_paid",
)


# -- errors -----------------------------------------------------------------------------------


class AccountError(Exception):
    """A refused account request: HTTP `status`, machine `code`, readable message."""

    status = 400
    code = "account_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class Invalid(AccountError):
    """Malformed input: a bad number, password format, provider (400)."""

    status = 400
    code = "invalid"


class BadCredentials(AccountError):
    """Wrong number/password pair (401)."""

    status = 401
    code = "bad_credentials"


class Unauthorized(AccountError):
    """No valid token, or an unknown social identity (401)."""

    status = 401
    code = "unauthorized"


class NotFound(AccountError):
    """Unknown subscriber or link (404)."""

    status = 404
    code = "not_found"


class Forbidden(AccountError):
    """Signed in, but the number asked about is not one of this account's (403)."""

    status = 403
    code = "forbidden"


class Conflict(AccountError):
    """The state forbids it: number management off, already linked, linking to itself (409)."""

    status = 409
    code = "conflict"


class Locked(AccountError):
    """Too many wrong passwords: locked for `retry_after` more seconds (423, docs/account.md)."""

    status = 423
    code = "locked"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RateLimited(AccountError):
    """An SMS password was sent too recently: try again in `retry_after` seconds (429)."""

    status = 429
    code = "rate_limited"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


# -- helpers ----------------------------------------------------------------------------------


def iso(epoch: float) -> str:
    """ISO-8601 UTC with a `Z`, to the second."""
    moment = dt.datetime.fromtimestamp(epoch, dt.UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def token_hash(token: str) -> str:
    """What the store keeps of a bearer token: a leaked table gives no usable token."""
    return hashlib.sha256(token.encode()).hexdigest()


def link_json(link: Link, now: float) -> dict[str, Any]:
    """A link as the account view and the admin API show it."""
    return {
        "number": link.number,
        "account": link.account,
        "flow": link.flow,
        "state": "active" if link.active(now) else "pending",
        "created": iso(link.created),
        "active_at": iso(link.active_at),
        "active_at_epoch": link.active_at,
    }


@dataclass(frozen=True, slots=True)
class AuthState:
    """Wrong-password count, lock and SMS-password time of one number."""

    failures: int = 0
    locked_until: float | None = None
    last_sms_password_at: float | None = None


SUBSCRIBER_FIELDS = subscribers.FIELDS


def subscriber_fields(data: Mapping[str, Any]) -> dict[str, Any]:
    """Validate admin-supplied subscriber fields into Store.update_subscriber keywords.

    The rules are ussd.subscribers' (the same as for config seeds); `package` is spread into
    the package_* columns and `password` becomes `password_hash`.
    """
    return drive(subscriber_fields_flow(data))


def subscriber_fields_flow(data: Mapping[str, Any]) -> Flow[dict[str, Any]]:
    """subscriber_fields() as a flow: the password's hash may run off the event loop."""
    try:
        out = subscribers.validate(data)
    except subscribers.FieldError as exc:
        raise Invalid(str(exc), code=exc.code) from None
    if "password" in out:
        out["password_hash"] = yield Hash(out.pop("password"))
    return out


# -- the account service ----------------------------------------------------------------------


class Accounts:
    """The rules of docs/account.md over the store; every method is one short transaction."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        sms: SmsCentre,
        config: Config,
        texts: Texts | None = None,
        catalogue: Catalogue | None = None,
    ) -> None:
        self.store = store
        # "МТС Бонус" gifts (menus/bonus.yaml); the gateway passes the one it checked at start.
        self.catalogue = catalogue if catalogue is not None else Catalogue.load()
        self.clock = clock
        self.sms = sms
        self.config = config
        self.texts = texts if texts is not None else Texts.load()
        self.texts.require(SMS_TEXT_KEYS)  # a texts file without them fails at start
        # Called after a pending link is created, so a sleeping timer task re-reads deadlines
        # (the gateway sets it to Gateway.wake; docs/design.md: only the runtime waits).
        self.wake: Callable[[], None] = lambda: None
        # Lockout state of numbers that are no subscriber: memory only, LRU-bounded.
        self._strangers: OrderedDict[str, AuthState] = OrderedDict()
        # The website's captchas (memory only, LRU-bounded; docs/account.md "Website").
        self.captchas = Captchas(config.website.captcha, config.website.captcha_ttl)

    # -- numbers and subscribers ------------------------------------------------------------

    def normalise(self, msisdn: str) -> str:
        """The store's form of a number, or Invalid."""
        if not isinstance(msisdn, str):
            raise Invalid("a phone number is required", code="bad_msisdn")
        op = self.config.operator
        try:
            return normalise(msisdn, op.country_code, op.trunk_prefix)
        except InvalidMsisdn as exc:
            raise Invalid(str(exc), code="bad_msisdn") from exc

    def subscriber(self, msisdn: str) -> Subscriber:
        """The subscriber, provisioned on first contact when `subscribers.auto_provision` is on.

        Same rule as Engine.subscriber (docs/config.md); NotFound otherwise.
        """
        sub = self.store.subscriber(msisdn)
        if sub is not None:
            return sub
        if not self.config.subscribers.auto_provision:
            raise NotFound(f"unknown subscriber {msisdn}", code="unknown_msisdn")
        _log.info("subscriber_provisioned", msisdn=msisdn)
        return self.store.create_subscriber(msisdn, self.config.operator.language, self.clock.now())

    def _text(self, key: str, msisdn: str, **fields: str) -> str:
        sub = self.store.subscriber(msisdn)
        language = sub.language if sub is not None else self.config.operator.language
        return self.texts.get(f"account.{key}", language, **fields)

    # -- subscribers for the admin API and CLI (docs/phones.md) ----------------------------------

    def create_subscriber(self, msisdn: str, fields: Mapping[str, Any]) -> Subscriber:
        """A new subscriber with validated fields; Conflict when the number exists."""
        return drive(self.create_subscriber_flow(msisdn, fields))

    def create_subscriber_flow(self, msisdn: str, fields: Mapping[str, Any]) -> Flow[Subscriber]:
        """create_subscriber() as a flow (a `password` field is hashed off the event loop)."""
        number = self.normalise(msisdn)
        values = yield from subscriber_fields_flow(fields)
        now = self.clock.now()
        with self.store.transaction():
            if self.store.subscriber(number) is not None:
                raise Conflict(f"subscriber {number} exists", code="exists")
            self.store.create_subscriber(
                number, values.pop("language", self.config.operator.language), now
            )
            self._apply(number, values, now)
        _log.info("subscriber_created", msisdn=number)
        return self._existing(number)

    def update_subscriber(self, msisdn: str, fields: Mapping[str, Any]) -> Subscriber:
        """Change validated fields of an existing subscriber; NotFound when unknown."""
        return drive(self.update_subscriber_flow(msisdn, fields))

    def update_subscriber_flow(self, msisdn: str, fields: Mapping[str, Any]) -> Flow[Subscriber]:
        """update_subscriber() as a flow (a `password` field is hashed off the event loop)."""
        number = self.normalise(msisdn)
        values = yield from subscriber_fields_flow(fields)
        with self.store.transaction():
            self._existing(number)
            self._apply(number, values, self.clock.now())
        _log.info("subscriber_updated", msisdn=number, fields=sorted(values))
        return self._existing(number)

    def _apply(self, number: str, values: dict[str, Any], now: float) -> None:
        password_hash = values.pop("password_hash", None)
        # The ledger and instalment plans have tables of their own; a given list replaces
        # the subscriber's (PATCH semantics, as for `payments`).
        selfcare.seed(
            self.store,
            number,
            values.pop("charges", None),
            values.pop("instalments", None),
            now,
            replace=True,
        )
        if values:
            self.store.update_subscriber(number, **values)
        if password_hash is not None:
            self.store.set_password_hash(number, password_hash, now)

    def _existing(self, number: str) -> Subscriber:
        sub = self.store.subscriber(number)
        if sub is None:
            raise NotFound(f"unknown subscriber {number}", code="unknown_msisdn")
        return sub

    # -- lockout state ------------------------------

    def auth_state(self, msisdn: str) -> AuthState:
        """The lockout / rate-limit state of a number (persisted for subscribers)."""
        row = self.store.db.execute(
            "SELECT failures, locked_until, last_sms_password_at FROM auth_state WHERE msisdn = ?",
            (msisdn,),
        ).fetchone()
        if row:
            return AuthState(*row)
        return self._strangers.get(msisdn) or AuthState()

    def _stranger_failure(self, msisdn: str, now: float) -> AuthState:
        """Count a wrong password for a number that is no subscriber, in memory only.

        Anyone can try any number: rows for them would grow without bound. Their counts and
        locks follow the same rules (so 401/423 says nothing about existence) in an LRU of
        UNKNOWN_AUTH_CAP numbers; one pushed out simply starts a fresh count.
        """
        auth = self.config.auth
        state = self._strangers.pop(msisdn, None) or AuthState()
        if state.locked_until is not None and state.locked_until <= now:
            state = AuthState()
        failures = state.failures + 1
        if failures >= auth.max_failures:
            state = AuthState(0, now + auth.lockout)
        else:
            state = AuthState(failures, state.locked_until)
        self._strangers[msisdn] = state
        while len(self._strangers) > UNKNOWN_AUTH_CAP:
            self._strangers.popitem(last=False)
        return state

    def _check_lock(self, msisdn: str, now: float) -> None:
        state = self.auth_state(msisdn)
        if state.locked_until is not None and now < state.locked_until:
            raise Locked("too many wrong passwords: the number is locked", state.locked_until - now)

    def _record_failure(self, msisdn: str, now: float) -> None:
        """Count a wrong password; the one that reaches auth.max_failures locks the number."""
        auth = self.config.auth
        if self.store.subscriber(msisdn) is None:
            state = self._stranger_failure(msisdn, now)
            if state.locked_until is not None and state.failures == 0:
                raise Locked("too many wrong passwords: the number is locked", auth.lockout)
            return
        with self.store.transaction() as db:
            db.execute(
                "INSERT INTO auth_state (msisdn, failures) VALUES (?, 0) "
                "ON CONFLICT (msisdn) DO NOTHING",
                (msisdn,),
            )
            # A lock that has lifted starts a fresh count.
            db.execute(
                "UPDATE auth_state SET failures = 0, locked_until = NULL "
                "WHERE msisdn = ? AND locked_until IS NOT NULL AND locked_until <= ?",
                (msisdn, now),
            )
            db.execute("UPDATE auth_state SET failures = failures + 1 WHERE msisdn = ?", (msisdn,))
            (failures,) = db.execute(
                "SELECT failures FROM auth_state WHERE msisdn = ?", (msisdn,)
            ).fetchone()
            locked = failures >= auth.max_failures
            if locked:
                db.execute(
                    "UPDATE auth_state SET failures = 0, locked_until = ? WHERE msisdn = ?",
                    (now + auth.lockout, msisdn),
                )
        _log.info("auth_failed", msisdn=msisdn, failures=failures, locked=locked)
        if locked:
            raise Locked("too many wrong passwords: the number is locked", auth.lockout)

    def _reset_failures(self, msisdn: str) -> None:
        with self.store.transaction() as db:
            db.execute(
                "UPDATE auth_state SET failures = 0, locked_until = NULL WHERE msisdn = ?",
                (msisdn,),
            )

    def _check_password(self, msisdn: str, password: object) -> Flow[None]:
        """Lock check, constant-time hash check, failure counting (docs/account.md)."""
        self._check_lock(msisdn, self.clock.now())
        sub = self.store.subscriber(msisdn)
        encoded = sub.password_hash if sub else None
        text = password if isinstance(password, str) else ""
        if not text.isascii():
            # Valid passwords are ASCII (docs/services.md); this also keeps JSON's lone surrogates
            # ("\ud800") away from str.encode. The scrypt below still runs, on a dummy.
            text = "\x00"
        # Verify spends a full scrypt even when there is no hash (no timing oracle).
        matched = yield Verify(text, encoded)
        # The hash may have run on another thread while other requests were served: a lock
        # set or a password changed meanwhile wins over this answer.
        now = self.clock.now()
        self._check_lock(msisdn, now)
        sub = self.store.subscriber(msisdn)
        if not matched or (sub.password_hash if sub else None) != encoded:
            self._record_failure(msisdn, now)
            raise BadCredentials("wrong number or password")
        self._reset_failures(msisdn)

    # -- tokens -----------------------------------------------------------------------------

    def _issue(self, msisdn: str, method: str) -> str:
        token = secrets.token_urlsafe(32)
        now = self.clock.now()
        with self.store.transaction() as db:
            db.execute("DELETE FROM auth_tokens WHERE expires <= ?", (now,))
            db.execute(
                "INSERT INTO auth_tokens (token_hash, msisdn, method, created, expires) "
                "VALUES (?, ?, ?, ?, ?)",
                (token_hash(token), msisdn, method, now, now + self.config.auth.token_ttl),
            )
        _log.info("login", msisdn=msisdn, method=method)
        return token

    def authenticate(self, token: str) -> str:
        """The MSISDN a bearer token belongs to; Unauthorized when unknown or expired."""
        if not isinstance(token, str) or not token:
            raise Unauthorized("a bearer token is required")
        # Looked up by its sha256: the comparison never touches the token's own bytes.
        row = self.store.db.execute(
            "SELECT msisdn, expires FROM auth_tokens WHERE token_hash = ?", (token_hash(token),)
        ).fetchone()
        if row is None or row[1] <= self.clock.now():
            raise Unauthorized("the token is unknown or has expired", code="invalid_token")
        return str(row[0])

    def logout(self, token: str) -> bool:
        """Forget a token; True when it existed."""
        with self.store.transaction() as db:
            cur = db.execute("DELETE FROM auth_tokens WHERE token_hash = ?", (token_hash(token),))
            return cur.rowcount > 0

    # -- login ------------------------------------------------------------------------------

    def login(self, msisdn: str, password: str) -> str:
        """Number + password → token (docs/account.md); BadCredentials, Locked."""
        return drive(self.login_flow(msisdn, password))

    def login_flow(self, msisdn: str, password: str) -> Flow[str]:
        """login() as a flow, for a driver that hashes off the event loop (ussd/passwords.py)."""
        number = self.normalise(msisdn)
        yield from self._check_password(number, password)
        return self._issue(number, "password")

    def login_network(self, msisdn: str) -> str:
        """The simulated mobile network vouches for the number: no password."""
        number = self.normalise(msisdn)
        self.subscriber(number)
        return self._issue(number, "network")

    def send_sms_password(self, msisdn: str) -> None:
        """Set a random 8-character password and send it by SMS; one per interval."""
        drive(self.send_sms_password_flow(msisdn))

    def _sms_password_due(self, number: str, now: float) -> None:
        interval = self.config.auth.sms_password_interval
        last = self.auth_state(number).last_sms_password_at
        if last is not None and now < last + interval:
            raise RateLimited("an SMS password was sent recently", last + interval - now)

    def send_sms_password_flow(self, msisdn: str) -> Flow[None]:
        """send_sms_password() as a flow (the hash may run off the event loop)."""
        number = self.normalise(msisdn)
        self.subscriber(number)
        # Refused before the hash, so a rate-limited request costs no scrypt.
        self._sms_password_due(number, self.clock.now())
        password = "".join(
            secrets.choice(_SMS_PASSWORD_ALPHABET) for _ in range(SMS_PASSWORD_LENGTH)
        )
        encoded: str = yield Hash(password)
        now = self.clock.now()
        with self.store.transaction() as db:
            self._sms_password_due(number, now)  # again: another request may have won meanwhile
            db.execute(
                "INSERT INTO auth_state (msisdn, last_sms_password_at) VALUES (?, ?) "
                "ON CONFLICT (msisdn) DO UPDATE "
                "SET last_sms_password_at = excluded.last_sms_password_at",
                (number, now),
            )
            self.store.set_password_hash(number, encoded, now, generated=True)
            # The SMS is the one place the generated password goes; the SMS centre logs only ids.
            self.sms.send(number, self._text("sms_password", number, password=password))
        _log.info("sms_password_sent", msisdn=number)

    def site_sms_password_flow(self, msisdn: str, captcha_id: object, answer: object) -> Flow[None]:
        """The website's "get a password by SMS": a solved captcha first (docs/account.md).

        The number is checked before the captcha is spent; the captcha is spent before the
        rate limit is asked, so every try at the limit costs a new captcha.
        """
        number = self.normalise(msisdn)
        try:
            self.captchas.check(captcha_id, answer, self.clock.now())
        except CaptchaError as exc:
            raise Invalid(exc.message, code=exc.code) from None
        yield from self.send_sms_password_flow(number)

    def issue_captcha(self) -> Challenge:
        """A new website captcha; Conflict `captcha_off` when `website.captcha` is off."""
        if not self.captchas.required:
            raise Conflict("captchas are switched off (website.captcha)", code="captcha_off")
        return self.captchas.issue(self.clock.now())

    def site_sms_password(self, msisdn: str, captcha_id: object, answer: object) -> None:
        """site_sms_password_flow() driven here (the scenario runner's in-process target)."""
        drive(self.site_sms_password_flow(msisdn, captcha_id, answer))

    def password_generated(self, msisdn: str) -> bool:
        """Whether the current password was generated and sent by SMS, not chosen."""
        return self.store.password_generated(self.normalise(msisdn))

    def change_password(self, msisdn: str, current: str, new: str) -> None:
        """Replace the password: `current` must verify, `new` is 4–10 Latin letters/digits."""
        drive(self.change_password_flow(msisdn, current, new))

    def change_password_flow(self, msisdn: str, current: str, new: str) -> Flow[None]:
        """change_password() as a flow (the hashes may run off the event loop)."""
        number = self.normalise(msisdn)
        if not isinstance(new, str) or not PASSWORD_RE.fullmatch(new):
            raise Invalid(
                "the new password must be 4-10 Latin letters and digits", code="invalid_password"
            )
        yield from self._check_password(number, current)
        encoded: str = yield Hash(new)
        with self.store.transaction():
            self.store.set_password_hash(number, encoded, self.clock.now())
            self.sms.send(number, self._text("password_changed", number))
        _log.info("password_changed", msisdn=number)

    # -- social sign-in (simulated, docs/account.md)
    # ------------------------------------------------

    def _identity(self, provider: str, external_id: str) -> tuple[str, str]:
        if not isinstance(provider, str) or not _PROVIDER_RE.fullmatch(provider):
            raise Invalid("provider must be a short lowercase name", code="invalid_provider")
        if (
            not isinstance(external_id, str)
            or not external_id
            or len(external_id) > MAX_EXTERNAL_ID
            or not external_id.isprintable()
        ):
            raise Invalid(
                f"external_id must be 1-{MAX_EXTERNAL_ID} printable characters",
                code="invalid_external_id",
            )
        return provider, external_id

    def social_bind(self, msisdn: str, provider: str, external_id: str) -> None:
        """Bind a (provider, external id) pair to the account; each pair to one account."""
        number = self.normalise(msisdn)
        pair = self._identity(provider, external_id)
        with self.store.transaction() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO social_identities (provider, external_id, msisdn, created) "
                "VALUES (?, ?, ?, ?)",
                (*pair, number, self.clock.now()),
            )
            if cur.rowcount == 0:
                (owner,) = db.execute(
                    "SELECT msisdn FROM social_identities WHERE provider = ? AND external_id = ?",
                    pair,
                ).fetchone()
                if owner != number:
                    raise Conflict(
                        "this identity is bound to another account", code="identity_taken"
                    )
        _log.info("social_bound", msisdn=number, provider=provider)

    def social_bindings(self, msisdn: str) -> list[dict[str, Any]]:
        """The account's social identities, oldest first (the website's settings)."""
        rows = self.store.db.execute(
            "SELECT provider, external_id, created FROM social_identities WHERE msisdn = ? "
            "ORDER BY created, provider, external_id",
            (self.normalise(msisdn),),
        ).fetchall()
        return [{"provider": p, "external_id": e, "created": iso(c)} for p, e, c in rows]

    def social_unbind(self, msisdn: str, provider: str, external_id: str) -> None:
        """Remove a binding of this account; NotFound when it is not bound here."""
        number = self.normalise(msisdn)
        pair = self._identity(provider, external_id)
        with self.store.transaction() as db:
            cur = db.execute(
                "DELETE FROM social_identities WHERE provider = ? AND external_id = ? "
                "AND msisdn = ?",
                (*pair, number),
            )
        if cur.rowcount == 0:
            raise NotFound("this identity is not bound to the account", code="not_bound")
        _log.info("social_unbound", msisdn=number, provider=provider)

    def social_login(self, provider: str, external_id: str) -> str:
        """Sign in with a bound (provider, external id) pair; Unauthorized when unbound."""
        pair = self._identity(provider, external_id)
        row = self.store.db.execute(
            "SELECT msisdn FROM social_identities WHERE provider = ? AND external_id = ?", pair
        ).fetchone()
        if row is None:
            raise Unauthorized("no account is bound to this identity", code="unknown_identity")
        return self._issue(str(row[0]), "social")

    # -- linking numbers -----------------------------------------------------------

    def _pair(self, account: str, number: str) -> tuple[str, str]:
        a, b = self.normalise(account), self.normalise(number)
        if a == b:
            raise Conflict("a number cannot be linked to its own account", code="self_link")
        return a, b

    def _refuse_mutual(self, account: str, number: str) -> None:
        """Conflict when `account` is itself linked to `number` (pending or active).

        A in B's account and B in A's would make each the holder of the other: neither
        account page could say whose number is whose (docs/account.md: one holder per number).
        """
        own = self.store.link(account)
        if own is not None and own.account == number:
            raise Conflict(
                f"{account} is linked to {number}'s account: links cannot go both ways",
                code="mutual_link",
            )

    def _taken(self, account: str, number: str) -> Conflict:
        link = self.store.link(number)
        where = "this" if link is not None and link.account == account else "another"
        return Conflict(f"the number is already linked to {where} account", code="already_linked")

    def app_link(self, account: str, number: str, password: str) -> Link:
        """App flow: the holder adds number B with B's password; active at once, SMS to both."""
        return drive(self.app_link_flow(account, number, password))

    def app_link_flow(self, account: str, number: str, password: str) -> Flow[Link]:
        """app_link() as a flow (B's password is checked off the event loop)."""
        a, b = self._pair(account, number)
        self.subscriber(a)
        self.subscriber(b)
        # docs/account.md: a wrong password here counts towards B's lockout.
        yield from self._check_password(b, password)
        now = self.clock.now()
        with self.store.transaction() as db:
            self._refuse_mutual(a, b)
            if not self.store.add_link(b, a, "app", now, now):
                raise self._taken(a, b)
            db.execute("UPDATE links SET notified = ? WHERE number = ?", (now, b))
            self.notify_linked(a, b)
        _log.info("number_linked", msisdn=a, number=b, flow="app")
        link = self.store.link(b)
        assert link is not None
        return link

    def office_link(self, account: str, number: str) -> Link:
        """Office flow: B must have number management on; active `links.office_delay` later."""
        a, b = self._pair(account, number)
        now = self.clock.now()
        active_at = now + self.config.links.office_delay
        # One transaction: `*111*828*2#` on B cannot slip between the check and the insert and
        # leave a pending link on a number whose management is off.
        with self.store.transaction():
            self.subscriber(a)
            if not self.subscriber(b).number_management:
                raise Conflict(
                    "number management (*111*828*1#) is not enabled on the number",
                    code="number_management_off",
                )
            self._refuse_mutual(a, b)
            # links.number is the PRIMARY KEY: of racing requests exactly one inserts.
            if not self.store.add_link(b, a, "office", now, active_at):
                raise self._taken(a, b)
        _log.info("number_linked", msisdn=a, number=b, flow="office", active_at=active_at)
        self.wake()
        link = self.store.link(b)
        assert link is not None
        return link

    def notify_linked(self, account: str, number: str) -> None:
        """The activation SMS to both numbers (joins the caller's transaction)."""
        self.sms.send(account, self._text("linked_account", account, number=number))
        # The number's owner sees the account masked, as `*111*828#` shows it (docs/services.md).
        self.sms.send(number, self._text("linked_number", number, account=mask(account)))

    def unlink(self, account: str, number: str) -> None:
        """Remove number from account (active or pending); NotFound when it is not there."""
        a, b = self.normalise(account), self.normalise(number)
        if self.store.remove_link(b, account=a) == 0:
            raise NotFound("the number is not linked to this account", code="not_linked")
        _log.info("number_unlinked", msisdn=a, number=b)

    # -- the account page -------------------------------------------------------------------

    def account_view(self, msisdn: str) -> dict[str, Any]:
        """Balance, package remains and linked numbers (state, activation time)."""
        number = self.normalise(msisdn)
        sub = self.subscriber(number)
        now = self.clock.now()
        numbers = []
        for link in self.store.links_of(number):
            item = link_json(link, now)
            linked = self.store.subscriber(link.number)
            # A pending link shows no data of the number yet: it is not the holder's until then.
            item["balance"] = linked.balance if linked and link.active(now) else None
            numbers.append(item)
        own = self.store.link(number)
        return {
            "msisdn": sub.msisdn,
            "language": sub.language,
            "balance": sub.balance,
            "package": {
                "minutes": sub.package_minutes,
                "sms": sub.package_sms,
                "mb": sub.package_mb,
            },
            "bonus_points": sub.bonus_points,
            # Newest first, whatever order they were stored in (ISO dates sort as text).
            "payments": sorted(
                (dict(p) for p in sub.payments), key=lambda p: str(p.get("date", "")), reverse=True
            ),
            "number_management": sub.number_management,
            "has_password": sub.password_hash is not None,
            "services": dict(sub.services),
            # The app's own requests never count against the package (docs/account.md).
            "app_traffic": "free",
            "linked_to": link_json(own, now) if own is not None else None,
            "numbers": numbers,
        }

    # -- "Мой МТС" (docs/account.md): the app beyond the account page -----------------------

    def subject(self, me: str, number: str | None) -> str:
        """The number a request is about: the signed-in one, or one actively linked to it.

        Tapping a linked number in the app switches to it (docs/account.md: the holder sees and
        manages the numbers of the account); a pending link gives nothing yet.
        """
        if number is None or number == "":
            return me
        other = self.normalise(number)
        if other == me:
            return me
        link = self.store.link(other)
        if link is None or link.account != me:
            raise Forbidden("the number is not linked to this account", code="not_linked")
        if not link.active(self.clock.now()):
            raise Forbidden("the number's link is not active yet", code="link_pending")
        return other

    @staticmethod
    def refused(exc: Refused) -> AccountError:
        """A selfcare refusal as the account error of the same meaning."""
        kind: type[AccountError] = {"not_found": NotFound, "conflict": Conflict}.get(
            exc.kind, Invalid
        )
        return kind(exc.message, code=exc.code)

    def set_password_network_flow(self, msisdn: str, password: str) -> Flow[str]:
        """ "Не помню пароль" in the app: the network vouches for the number, so a new
        password is set without the old one, and a token is issued (docs/account.md app).

        Clears the number's lockout: whoever holds the SIM is its owner on this network.
        """
        number = self.normalise(msisdn)
        if not isinstance(password, str) or not PASSWORD_RE.fullmatch(password):
            raise Invalid(
                "the new password must be 4-10 Latin letters and digits", code="invalid_password"
            )
        self.subscriber(number)
        encoded: str = yield Hash(password)
        with self.store.transaction():
            self.store.set_password_hash(number, encoded, self.clock.now())
            self._reset_failures(number)
            self.sms.send(number, self._text("password_changed", number))
        _log.info("password_set_network", msisdn=number)
        return self._issue(number, "network")

    def switch_service(self, msisdn: str, name: object, on: object) -> dict[str, bool]:
        """Turn one of the subscriber's services on or off (as `*111#` → services does)."""
        sub = self.subscriber(msisdn)
        if not isinstance(on, bool):
            raise Invalid("on: expected true or false", code="bad_field")
        if not isinstance(name, str) or name not in sub.services:
            raise NotFound("the number has no such service", code="unknown_service")
        services = {**sub.services, name: on}
        self.store.update_subscriber(msisdn, services=services)
        _log.info("service_switched", msisdn=msisdn, service=name, on=on)
        return services

    def spending(self, msisdn: str, start: str | None, end: str | None) -> dict[str, Any]:
        """Spending control: charges from `start` to `end` (YYYY-MM-DD, inclusive) by category."""
        self.subscriber(msisdn)
        try:
            first, last = selfcare.period(start, end, self.clock.now())
        except Refused as exc:
            raise self.refused(exc) from None
        return selfcare.spending(self.store, msisdn, first, last)

    def record_charge(self, msisdn: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Simulated usage (admin API): one charge in the ledger, taken from the balance."""
        number = self.normalise(msisdn)
        self._existing(number)
        try:
            charge = selfcare.record_charge(self.store, number, fields, self.clock.now())
        except Refused as exc:
            raise self.refused(exc) from None
        _log.info("charge_recorded", msisdn=number, category=charge["category"])
        return charge

    def instalments(self, msisdn: str) -> dict[str, Any]:
        """The subscriber's instalment plans with schedules, paid and due amounts."""
        sub = self.subscriber(msisdn)
        plans = [selfcare.plan_json(p) for p in self.store.instalment_plans(msisdn)]
        return {"msisdn": msisdn, "balance": sub.balance, "plans": plans}

    def pay_instalment(self, msisdn: str, plan_id: int) -> dict[str, Any]:
        """Pay a plan's next instalment from the balance; SMS confirmation (409 when short)."""
        self.subscriber(msisdn)
        with self.store.transaction():
            try:
                plan = selfcare.pay_next(self.store, msisdn, plan_id, self.clock.now())
            except Refused as exc:
                raise self.refused(exc) from None
            view = selfcare.plan_json(plan)
            paid = [i for i in plan.schedule if i.paid_at is not None][-1]
            self.sms.send(
                msisdn,
                self._instalment_text(msisdn, plan.item, paid.seq, view, paid.amount),
            )
        _log.info("instalment_paid", msisdn=msisdn, plan=plan_id, seq=paid.seq)
        sub = self._existing(msisdn)
        return {
            "paid": {"seq": paid.seq, "amount": paid.amount},
            "balance": sub.balance,
            "plan": view,
        }

    def _instalment_text(
        self, msisdn: str, item: str, seq: int, view: Mapping[str, Any], amount: float
    ) -> str:
        sub = self._existing(msisdn)
        return self.texts.get(
            "instalments.sms_paid",
            sub.language,
            item=item,
            seq=seq,
            count=view["count"],
            amount=f"{amount:.2f}",
            due=f"{view['due']:.2f}",
        )

    def bonus(self, msisdn: str) -> dict[str, Any]:
        """ "МТС Бонус": points, the gift catalogue and the exchange history."""
        self.subscriber(msisdn)
        return selfcare.bonus_json(self.store, self.catalogue, msisdn)

    def exchange_bonus(self, msisdn: str, gift_id: object) -> dict[str, Any]:
        """Exchange points for a gift: deducted atomically, SMS confirmation, in the history."""
        self.subscriber(msisdn)
        with self.store.transaction():
            try:
                gift = selfcare.exchange(
                    self.store, self.catalogue, msisdn, gift_id, self.clock.now()
                )
            except Refused as exc:
                raise self.refused(exc) from None
            sub = self._existing(msisdn)
            self.sms.send(
                msisdn,
                self.texts.get(
                    "bonus.sms_exchanged",
                    sub.language,
                    gift=gift.name.get(sub.language, gift.name["ru"]),
                    points=gift.points,
                    left=sub.bonus_points,
                ),
            )
        _log.info("bonus_exchanged", msisdn=msisdn, gift=gift.id)
        return {"gift": gift.json(), "points": sub.bonus_points}
