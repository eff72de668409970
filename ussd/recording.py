"""Turn a live session into a scenario file that replays green (docs/scenarios.md).

It lives in the product because the phones API records (`POST .../record`,
ussd/http/recording.py); `sim.recorder` re-exports it for in-process scripts.

Handsets call `dial`, `reply`, `release`, `sms` and `timeout` as things happen; `save(path)`
writes the YAML. Each dial and reply gets `expect` with continue/end, the full screen text and,
for paged screens, the page numbers; each SMS received becomes an `sms` step.

`attach(gateway)` hears a gateway's events instead of being told: SMS and reply
timeouts are recorded as they happen, and a subscriber's data is captured when it first dials
(so the replay world shows the same balance and menus).

Secrets never reach the file: a reply to a password prompt (a screen marked `secret`, see
`Continue.secret`) is written as `${password}` (`${password2}`, … for other values), and the
scenario's `vars:` takes each from an environment variable (`USSD_SIM_PASSWORD`, …) when it is
run (docs/scenarios.md). An SMS that carries a typed secret gets the same placeholder; one that
carries a generated password (a text template with `{password}`) gets a regex matcher.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ussd.events import DialogEnded, DialogStarted, Event, Outcome, ScreenShown, SmsQueued
from ussd.menus import Texts
from ussd.ss import mask_passwords

if TYPE_CHECKING:
    from ussd.runtime import Gateway

# The subscriber fields a scenario can seed (the `subscribers.seed` keys of docs/config.md).
SEED_KEYS = (
    "msisdn",
    "language",
    "balance",
    "package",
    "bonus_points",
    "services",
    "payments",
    "password",
    "number_management",
)


def exact(text: str) -> str:
    """A text matcher for exactly this text: plain when that is unambiguous, else a regex."""
    if text.startswith("/") and "/" in text[1:]:
        # Plain text of this shape would read as /regex/flags (docs/scenarios.md matchers).
        return "/^" + re.escape(text) + "$/"
    return text


def _screen_fields(screen: object) -> tuple[str, bool, int | None, int | None]:
    """(text, end, page, pages) from an engine Screen, a ScreenView or the §6 JSON shape."""
    if isinstance(screen, Mapping):
        return (
            str(screen.get("text", "")),
            bool(screen.get("end")),
            screen.get("page"),
            screen.get("pages"),
        )
    text = getattr(screen, "text", "")
    return (
        str(text),
        bool(getattr(screen, "end", False)),
        getattr(screen, "page", None),
        getattr(screen, "pages", None),
    )


def _is_secret(screen: object) -> bool:
    if isinstance(screen, Mapping):
        return screen.get("secret") is True
    return getattr(screen, "secret", False) is True


def is_paging(text: str, page: int | None, pages: int | None) -> bool:
    """True when `text` turns a page of the screen rather than answering it (docs/services.md)."""
    page, pages = page or 1, pages or 1
    return (text == "98" and page < pages) or (text == "0" and page > 1)


# The environment variable a recorded `${name}` is read from: USSD_SIM_PASSWORD, …
ENV_PREFIX = "USSD_SIM_"
_SECRET_WORD = re.compile(r"[^\s.,;:!?«»()\"']+")
_FIELD = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\}")
_SENTINEL = "\x00secret\x00"


def _digest(value: str) -> bytes:
    # Only a digest of each secret is kept while recording, to recognise it again.
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).digest()


def secret_sms_patterns(texts: Texts) -> list[re.Pattern[str]]:
    """Patterns of the SMS texts (menus/texts.yaml) that carry a generated `{password}`."""
    patterns: list[re.Pattern[str]] = []
    keys = list(texts.keys())
    for key in keys:
        for language in ("ru", "en"):
            try:
                text = texts.get(key, language, password=_SENTINEL)
            except (KeyError, ValueError, IndexError):
                continue
            if _SENTINEL not in text:
                continue
            parts = [
                ".*?".join(re.escape(piece) for piece in _FIELD.split(part))
                for part in text.split(_SENTINEL)
            ]
            patterns.append(re.compile("^" + r"\S+".join(parts) + "$", re.DOTALL))
    return patterns


class Recorder:
    """Collects steps of one session; `save()` writes them as one scenario."""

    def __init__(
        self,
        name: str = "Recorded session",
        subscribers: Sequence[Mapping[str, Any] | str] = (),
        description: str = "",
    ) -> None:
        self.name = name
        self.description = description
        self.subscribers: list[dict[str, Any]] = []
        self.steps: list[dict[str, Any]] = []
        self._pending_sms: list[dict[str, Any]] = []
        self._gateway: Gateway | None = None
        self._only: str | None = None  # attach(gateway, msisdn): hear that number only
        self._secrets: dict[bytes, str] = {}  # digest of a typed secret -> its variable name
        self._prompts: dict[str, tuple[bool, int | None, int | None]] = {}  # last screen
        self._sms_patterns: list[re.Pattern[str]] = []
        self._pushes: dict[str, str] = {}  # session of a push -> its sender, until it shows
        for sub in subscribers:
            self.subscriber(sub)

    # -- subscribers ------------------------------------------------------------------------

    def subscriber(self, sub: Mapping[str, Any] | str, **fields: Any) -> None:
        """Add a subscriber (a number, or seed fields; `Subscriber.public()` JSON works too)."""
        data: dict[str, Any] = {"msisdn": sub} if isinstance(sub, str) else dict(sub)
        data.update(fields)
        data["msisdn"] = str(data["msisdn"])
        if any(s["msisdn"] == data["msisdn"] for s in self.subscribers):
            return
        clean = {k: v for k, v in data.items() if k in SEED_KEYS and v is not None}
        for key in ("services", "payments", "package"):
            if not clean.get(key):
                clean.pop(key, None)
        if "payments" in clean:
            clean["payments"] = [
                {"date": str(p["date"]), "amount": p["amount"]} for p in clean["payments"]
            ]
        if clean.get("number_management") is False:
            del clean["number_management"]
        if "password" in clean:  # a seed password is a secret like a typed one
            clean["password"] = self._placeholder(str(clean["password"]))
        self.subscribers.append(clean)

    def _who(self, msisdn: str, step: dict[str, Any]) -> dict[str, Any]:
        self.subscriber(msisdn)
        if msisdn != self.subscribers[0]["msisdn"]:
            step["as"] = msisdn
        return step

    # -- what happened ----------------------------------------------------------------------

    def dial(self, msisdn: str, text: str, screen: object) -> None:
        """A dial and the first screen (a handset-local answer is not recorded)."""
        if isinstance(screen, Mapping) and screen.get("local"):
            return  # docs/grammar.md: handset-local codes never reach the network
        # A barring password typed in an SS string (*33*PIN#) becomes a variable like a reply
        # to a password prompt (docs/network.md).
        self._screen_step(msisdn, {"dial": mask_passwords(text, self._placeholder)}, screen)

    def reply(self, msisdn: str, text: str, screen: object, secret: bool | None = None) -> None:
        """A reply and the screen it produced.

        `secret`: the reply answered a password prompt; None takes it from the last screen
        recorded for msisdn (its `secret` mark). A secret is written as `${password}`.
        """
        if secret is None:
            last, page, pages = self._prompts.get(msisdn, (False, None, None))
            secret = last and not is_paging(text, page, pages)
        written = self._placeholder(text) if secret else text
        self._screen_step(msisdn, {"reply": written}, screen)

    def _placeholder(self, value: str) -> str:
        digest = _digest(value)
        name = self._secrets.get(digest)
        if name is None:
            number = len(self._secrets) + 1
            name = "password" if number == 1 else f"password{number}"
            self._secrets[digest] = name
        return "${" + name + "}"

    def _sms_matcher(self, text: str) -> str:
        """The `text` matcher for an SMS, with no secret left in it."""
        for pattern in self._sms_patterns:
            if pattern.match(text):
                return "/" + pattern.pattern + "/" + ("s" if "\n" in text else "")
        return self._matcher(text)

    def _matcher(self, text: str) -> str:
        """`exact(text)` with each secret typed in this recording as its `${name}`."""

        def hide(match: re.Match[str]) -> str:
            name = self._secrets.get(_digest(match.group(0)))
            return match.group(0) if name is None else f"\x00{name}\x00"

        masked = _SECRET_WORD.sub(hide, text) if self._secrets else text
        # A literal `${` is written `$${`, so only the placeholders are filled in at load.
        written = exact(masked).replace("${", "$${")
        return re.sub("\x00([A-Za-z0-9_]+)\x00", r"${\1}", written)

    def release(self, msisdn: str) -> None:
        """The user pressed End."""
        self._add(self._who(msisdn, {"release": True}))

    def timeout(self, msisdn: str, screen: object = None) -> None:
        """The dialog ended on its reply timeout (docs/design.md)."""
        step: dict[str, Any] = {"wait_timeout": True}
        if screen is not None:
            text = _screen_fields(screen)[0]
            if text:
                step["expect"] = {"text": self._matcher(text)}
        self._add(self._who(msisdn, step))

    def sms(self, msisdn: str, text: str, sender: str | None = None) -> None:
        """An SMS arrived in msisdn's inbox."""
        self.subscriber(msisdn)
        check: dict[str, Any] = {"to": msisdn, "text": self._sms_matcher(text)}
        if sender is not None:
            check["from"] = sender
        self._pending_sms.append({"sms": check})
        if self._gateway is None:
            self._flush()

    def push(self, msisdn: str, screen: object, sender: str = "") -> None:
        """The network pushed a screen (docs/smpp.md "Pushes"): a `push` step, so the replies
        after it have their dialog when the scenario runs."""
        notice = (
            bool(screen.get("notice"))
            if isinstance(screen, Mapping)
            else bool(getattr(screen, "notice", False))
        )
        action: dict[str, Any] = {"text": _screen_fields(screen)[0], "reply": not notice}
        if sender:
            action["from"] = sender
        self._screen_step(msisdn, {"push": action}, screen)

    def advance(self, seconds: float) -> None:
        """Simulated time moved on."""
        self._add({"advance": f"{seconds:g}s"})

    def _screen_step(self, msisdn: str, step: dict[str, Any], screen: object) -> None:
        text, end, page, pages = _screen_fields(screen)
        expect: dict[str, Any] = {"end": True} if end else {"continue": True}
        if pages is not None and pages > 1:
            expect["page"] = page
            expect["pages"] = pages
        expect["text"] = self._matcher(text)
        step["expect"] = expect
        self._prompts[msisdn] = (not end and _is_secret(screen), page, pages)
        self._add(self._who(msisdn, step))

    def _add(self, step: dict[str, Any]) -> None:
        self.steps.append(step)
        self._flush()

    def _flush(self) -> None:
        self.steps.extend(self._pending_sms)
        self._pending_sms.clear()

    # -- an in-process gateway --------------------------------------------------------------

    def attach(self, gateway: Gateway, msisdn: str | None = None) -> Callable[[], None]:
        """Hear `gateway`'s events: SMS, timeouts, and subscriber data at first dial.

        With `msisdn`, only that number's events count (one handset's recording).
        """
        self._gateway = gateway
        self._only = msisdn
        self._sms_patterns = secret_sms_patterns(gateway.engine.texts)
        unsubscribe: Callable[[], None] = gateway.engine.subscribe(self._on_event)

        def detach() -> None:
            unsubscribe()
            self._flush()
            self._gateway = None
            self._only = None

        return detach

    def _on_event(self, event: Event) -> None:
        if self._only is not None and event.msisdn != self._only:
            return
        if isinstance(event, ScreenShown):
            sender = self._pushes.pop(event.screen.session, None)
            if sender is not None:
                self.push(event.msisdn, event.screen, sender)
        elif isinstance(event, DialogStarted):
            if event.service == "push" and len(self._pushes) < 64:  # its screen follows at once
                self._pushes[event.session] = event.service_code
            known = {s["msisdn"] for s in self.subscribers}
            if event.msisdn not in known and self._gateway is not None:
                sub = self._gateway.find_subscriber(event.msisdn)
                self.subscriber(sub.public() if sub is not None else event.msisdn)
        elif isinstance(event, SmsQueued):
            sms = event.sms
            self.sms(event.msisdn, sms.text)
        elif isinstance(event, DialogEnded) and event.outcome is Outcome.TIMEOUT:
            self._flush()
            self.timeout(event.msisdn, event.screen)

    # -- output -----------------------------------------------------------------------------

    def to_data(self) -> dict[str, Any]:
        """The scenario as plain data (what `save` writes)."""
        self._flush()
        data: dict[str, Any] = {"name": self.name}
        if self.description:
            data["description"] = self.description
        data["subscribers"] = self.subscribers
        if self._secrets:
            # The values are supplied when the scenario runs, never written (sim/variables.py).
            data["vars"] = {
                name: {"env": ENV_PREFIX + name.upper()} for name in self._secrets.values()
            }
        data["steps"] = self.steps
        return data

    def dumps(self) -> str:
        """The scenario file's text."""
        header = "# Recorded by ussd-sim; edit freely, then `ussd-sim run` it.\n"
        if self._secrets:
            names = ", ".join(ENV_PREFIX + n.upper() for n in self._secrets.values())
            header += f"# Passwords typed are not kept: set {names} to run it.\n"
        body = yaml.safe_dump(
            self.to_data(), allow_unicode=True, sort_keys=False, width=100, default_flow_style=None
        )
        return header + body

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the scenario file; returns its path."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(self.dumps(), encoding="utf-8")
        return target
