"""password.set — `*111*17#`: the personal-account password (docs/services.md, docs/account.md)."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Mapping
from typing import Any

from ussd.effects import Answer, Result
from ussd.events import Outcome
from ussd.services.base import Await, Context, Continue, End, Step
from ussd.store import hash_password

MIN_LENGTH = 4
MAX_LENGTH = 10
MAX_ATTEMPTS = 3
HASH_TIMEOUT = 30.0  # seconds a confirmed password may wait for a hashing thread
PASSWORD_HASH = "password.hash"  # the effect kind of that wait (docs/design.md)
_ALLOWED = re.compile(r"[A-Za-z0-9]+")

# Keys the candidate's digest between the two prompts. A keyed SHA-256 is enough there: the
# digest lives seconds, only in this process, and a guess would need the key; scrypt is for
# what is stored (docs/account.md), and is computed once, off the event loop when serving.
_CANDIDATE_KEY = secrets.token_bytes(32)


def _digest(password: str) -> str:
    return hmac.new(_CANDIDATE_KEY, password.encode(), hashlib.sha256).hexdigest()


def share_candidate_key(key: bytes) -> None:
    """Key the candidates' digests with `key` (cluster mode: one key for every worker, so the
    confirmation may reach another worker than the first entry; docs/cluster.md)."""
    global _CANDIDATE_KEY
    _CANDIDATE_KEY = key


def candidate_key() -> bytes:
    """The key the candidates' digests are keyed with now."""
    return _CANDIDATE_KEY


def store_now(ctx: Context, password: str) -> None:
    """Hash, store and notify in this step (CLI, tests; the gateway hashes on a thread)."""
    ctx.store.set_password_hash(ctx.msisdn, hash_password(password), ctx.now)
    ctx.send_sms(ctx.msisdn, ctx.t("password.sms"))


class PasswordSet:
    """Ask for a password, ask again, store only its salted hash, send a notice without it.

    In-process, `store_password(ctx, password)` hashes and stores in the step. When serving,
    the gateway sets `hash_kind`: the confirming step then awaits an effect of that kind,
    performed on a hashing thread (ussd/passwords.py), so a confirmed password never stalls
    other dialogs, and "password set" is shown only once its hash is stored.
    """

    def __init__(self) -> None:
        self.store_password: Callable[[Context, str], None] = store_now
        self.hash_kind: str | None = None

    name = "password.set"
    texts_used = (
        "password.prompt_new",
        "password.prompt_retry",
        "password.prompt_confirm",
        "password.bad_length",
        "password.bad_chars",
        "password.mismatch",
        "password.too_many",
        "password.done",
        "password.sms",
        "common.error",
    )

    def start(self, ctx: Context, args: Mapping[str, str]) -> Step:
        return Continue("new", ctx.t("password.prompt_new"), values={"failures": 0}, secret=True)

    def reply(self, ctx: Context, screen: str, values: Mapping[str, Any], text: str) -> Step:
        failures = int(values.get("failures", 0))
        if screen == "new":
            problem = _problem(text)
            if problem is not None:
                return self._retry(ctx, failures, problem)
            # Only a keyed digest of the candidate is kept between the two steps, so dialog
            # state (plain data, possibly stored elsewhere) never holds a password.
            return Continue(
                "confirm",
                ctx.t("password.prompt_confirm"),
                values={"failures": failures, "candidate": _digest(text)},
                secret=True,
            )
        candidate = str(values.get("candidate", ""))
        if not text.isascii() or not hmac.compare_digest(_digest(text), candidate):
            return self._retry(ctx, failures, "password.mismatch")
        if self.hash_kind is not None:
            # The password itself is in the effect's request only: dialog state never holds it.
            values = {"failures": failures}
            return Await(self.hash_kind, {"password": text}, HASH_TIMEOUT, "confirm", values)
        self.store_password(ctx, text)
        return End(ctx.t("password.done"))

    def resume(self, ctx: Context, screen: str, values: Mapping[str, Any], result: Result) -> Step:
        if not isinstance(result, Answer):  # no hashing thread in time, or a failed one
            return End(ctx.t("common.error"), outcome=Outcome.ERROR)
        ctx.store.set_password_hash(ctx.msisdn, str(result.value["hash"]), ctx.now)
        ctx.send_sms(ctx.msisdn, ctx.t("password.sms"))
        return End(ctx.t("password.done"))

    def _retry(self, ctx: Context, failures: int, problem: str) -> Step:
        failures += 1
        if failures >= MAX_ATTEMPTS:
            return End(ctx.t("password.too_many"))
        text = f"{ctx.t(problem)} {ctx.t('password.prompt_retry')}"
        return Continue("new", text, values={"failures": failures}, secret=True)


def _problem(password: str) -> str | None:
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        return "password.bad_length"
    if not _ALLOWED.fullmatch(password) or not password.isascii():
        return "password.bad_chars"
    return None
