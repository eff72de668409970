"""Turn a live session into a scenario file that replays green (SPEC §8).

Handsets call `dial`, `reply`, `release`, `sms` and `timeout` as things happen; `save(path)`
writes the YAML. Each dial and reply gets `expect` with continue/end, the full screen text and,
for paged screens, the page numbers; each SMS received becomes an `sms` step.

`attach(gateway)` hears an in-process gateway's events instead of being told: SMS and reply
timeouts are recorded as they happen, and a subscriber's data is captured when it first dials
(so the replay world shows the same balance and menus).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from ussd.events import DialogEnded, DialogStarted, Event, Outcome, SmsQueued

# The subscriber fields a scenario can seed (the `subscribers.seed` keys of SPEC §10).
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
        # Plain text of this shape would read as /regex/flags (SPEC §8 matchers).
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
        self._gateway: Any = None
        self._only: str | None = None  # attach(gateway, msisdn): hear that number only
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
            return  # SPEC §2: handset-local codes never reach the network
        self._screen_step(msisdn, {"dial": text}, screen)

    def reply(self, msisdn: str, text: str, screen: object) -> None:
        """A reply and the screen it produced."""
        self._screen_step(msisdn, {"reply": text}, screen)

    def release(self, msisdn: str) -> None:
        """The user pressed End."""
        self._add(self._who(msisdn, {"release": True}))

    def timeout(self, msisdn: str, screen: object = None) -> None:
        """The dialog ended on its reply timeout (SPEC §4)."""
        step: dict[str, Any] = {"wait_timeout": True}
        if screen is not None:
            text = _screen_fields(screen)[0]
            if text:
                step["expect"] = {"text": exact(text)}
        self._add(self._who(msisdn, step))

    def sms(self, msisdn: str, text: str, sender: str | None = None) -> None:
        """An SMS arrived in msisdn's inbox."""
        self.subscriber(msisdn)
        check: dict[str, Any] = {"to": msisdn, "text": exact(text)}
        if sender is not None:
            check["from"] = sender
        self._pending_sms.append({"sms": check})
        if self._gateway is None:
            self._flush()

    def advance(self, seconds: float) -> None:
        """Simulated time moved on."""
        self._add({"advance": f"{seconds:g}s"})

    def _screen_step(self, msisdn: str, step: dict[str, Any], screen: object) -> None:
        text, end, page, pages = _screen_fields(screen)
        expect: dict[str, Any] = {"end": True} if end else {"continue": True}
        if pages is not None and pages > 1:
            expect["page"] = page
            expect["pages"] = pages
        expect["text"] = exact(text)
        step["expect"] = expect
        self._add(self._who(msisdn, step))

    def _add(self, step: dict[str, Any]) -> None:
        self.steps.append(step)
        self._flush()

    def _flush(self) -> None:
        self.steps.extend(self._pending_sms)
        self._pending_sms.clear()

    # -- an in-process gateway --------------------------------------------------------------

    def attach(self, gateway: Any, msisdn: str | None = None) -> Callable[[], None]:
        """Hear `gateway`'s events: SMS, timeouts, and subscriber data at first dial.

        With `msisdn`, only that number's events count (one handset's recording).
        """
        self._gateway = gateway
        self._only = msisdn
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
        if isinstance(event, DialogStarted):
            known = {s["msisdn"] for s in self.subscribers}
            if event.msisdn not in known:
                sub = self._gateway.store.subscriber(event.msisdn)
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
        data["steps"] = self.steps
        return data

    def dumps(self) -> str:
        """The scenario file's text."""
        header = "# Recorded by ussd-sim (SPEC §8); edit freely, then `ussd-sim run` it.\n"
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
