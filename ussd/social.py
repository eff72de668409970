"""Simulated social sign-in providers for the website (docs/account.md "Website").

Nothing leaves the machine. Each provider (VK, Yandex, Google) has a user directory: any login
of 1-64 letters, digits and `._@-` with the password `website.provider_password`. Signing in
there and consenting gives a one-time authorisation code (as OAuth 2.0's authorization code
grant does, RFC 6749 §4.1); the website exchanges it for the provider's user id. When no account
is bound to that id yet, the site gets a binding ticket instead and asks for number and
password once.

Sans-IO: time is a parameter. Provider sessions, codes and tickets are in memory, each expiring
after `ttl` and each map bounded (LRU): a restart only asks the visitor to start again.
"""

from __future__ import annotations

import hmac
import re
import secrets
from collections import OrderedDict
from dataclasses import dataclass

PROVIDERS = ("vk", "yandex", "google")
LOGIN_RE = re.compile(r"[A-Za-z0-9._@-]{1,64}")
TTL = 300.0  # a provider session, code or ticket lives five minutes
CAP = 1000  # of each kind outstanding; the oldest is dropped first


class SocialError(Exception):
    """A refused provider step: HTTP `status`, machine `code`, readable message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Identity:
    """A provider's user: `external_id` is what the account binding stores."""

    provider: str
    external_id: str


class _Expiring:
    """Keys to identities, each expiring, at most CAP (oldest dropped)."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._items: OrderedDict[str, tuple[Identity, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def put(self, identity: Identity, expires: float) -> str:
        key = secrets.token_urlsafe(24)
        self._items[key] = (identity, expires)
        while len(self._items) > self.cap:
            self._items.popitem(last=False)
        return key

    def get(self, key: object, now: float, *, spend: bool) -> Identity | None:
        if not isinstance(key, str):
            return None
        entry = self._items.pop(key, None) if spend else self._items.get(key)
        if entry is None or entry[1] <= now:
            self._items.pop(key, None)
            return None
        return entry[0]


class SocialSim:
    """The simulated providers and the site's half-finished social sign-ins."""

    def __init__(self, password: str, ttl: float = TTL, cap: int = CAP) -> None:
        self._password = password
        self.ttl = ttl
        self.sessions = _Expiring(cap)  # signed in at the provider, consent not yet given
        self.codes = _Expiring(cap)  # consent given: one-time code for the site
        self.tickets = _Expiring(cap)  # site: identity known, no account bound yet

    @staticmethod
    def provider(name: object) -> str:
        """A known provider name, or 404 unknown_provider."""
        if not isinstance(name, str) or name not in PROVIDERS:
            raise SocialError(404, "unknown_provider", f"no provider {str(name)[:32]!r}")
        return name

    def sign_in(self, provider: str, login: str, password: str, now: float) -> str:
        """The provider's own login page: a provider session id (401 on a wrong password)."""
        provider = self.provider(provider)
        if not LOGIN_RE.fullmatch(login):
            raise SocialError(400, "invalid_login", "login: 1-64 letters, digits or ._@-")
        if not hmac.compare_digest(password.encode(), self._password.encode()):
            raise SocialError(401, "bad_provider_credentials", "wrong login or password")
        return self.sessions.put(Identity(provider, login.lower()), now + self.ttl)

    def consent(self, provider: str, session: str, now: float) -> str:
        """The provider's consent page, allowed: a one-time code for the site."""
        provider = self.provider(provider)
        identity = self.sessions.get(session, now, spend=True)
        if identity is None or identity.provider != provider:
            raise SocialError(401, "provider_session_expired", "sign in at the provider again")
        return self.codes.put(identity, now + self.ttl)

    def exchange(self, provider: str, code: str, now: float) -> Identity:
        """The site trades a code for the identity; a code works once (RFC 6749 §4.1.2)."""
        provider = self.provider(provider)
        identity = self.codes.get(code, now, spend=True)
        if identity is None or identity.provider != provider:
            raise SocialError(401, "invalid_code", "the sign-in code is unknown or has expired")
        return identity

    def ticket(self, identity: Identity, now: float) -> str:
        """A binding ticket: the site asks for number and password once, then binds."""
        return self.tickets.put(identity, now + self.ttl)

    def ticket_identity(self, ticket: object, now: float) -> Identity:
        """The identity a binding ticket stands for (kept until the binding succeeds)."""
        identity = self.tickets.get(ticket, now, spend=False)
        if identity is None:
            raise SocialError(401, "invalid_ticket", "start the social sign-in again")
        return identity
