"""The terminal phone (`ussd-sim phone MSISDN`, docs/phones.md): a REPL handset.

Type a code to dial it; while a dialog is open, what you type is the reply. Screens, dialog
ends and SMS arrive over the gateway's WebSocket and are printed above the prompt as they come.
"""

from __future__ import annotations

import asyncio
import contextlib
import textwrap
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from prompt_toolkit import PromptSession, print_formatted_text
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.history import History, InMemoryHistory
from prompt_toolkit.input import Input
from prompt_toolkit.output import Output
from prompt_toolkit.patch_stdout import patch_stdout
from prompt_toolkit.styles import Style

from sim.client import ApiError, ClientError, PhonesClient, Unreachable

WIDTH = 44

SCREEN_WAIT = 2.0
"""How long a live phone waits for the socket's copy of a screen it already has from the
response before it prints the SMS held back behind it (the socket is normally milliseconds
behind; a dropped socket must not keep the SMS back for good)."""

HELP = """\
Type a USSD code (e.g. *100#, *111*17#) and press Enter to dial it.
While a dialog is open, what you type is the reply (98 = next page).
  :dial CODE   dial CODE even while a dialog is open (it replaces the dialog)
  :release     end the open dialog (the phone's End key)
  :sms         show the SMS inbox
  :help        this text
  :quit        leave (Ctrl-D, or Ctrl-C on an empty line, works too)"""

STYLE = Style.from_dict(
    {
        "frame": "#6c7a89",
        "screen": "bold",
        "end": "#d08770",
        "sms": "#a3be8c",
        "error": "#bf616a bold",
        "info": "#88c0d0",
        "prompt": "#88c0d0 bold",
        "prompt.dialog": "#ebcb8b bold",
    }
)

_OUTCOMES = {
    "released": "dialog released",
    "timeout": "dialog ended: no reply in time",
    "max_duration": "dialog ended: open too long",
    "replaced": "dialog replaced by a new request",
    "error": "dialog ended by a network error",
    "shutdown": "dialog ended: the gateway stopped",
    "network_fault": "dialog ended by an injected network fault",
}


def frame(title: str, text: str, footer: str = "") -> list[tuple[str, str]]:
    """A screen as a small box of formatted-text fragments."""
    top = f"┌─ {title} " + "─" * max(0, WIDTH - len(title) - 4)
    lines: list[tuple[str, str]] = [("class:frame", top + "\n")]
    for paragraph in text.splitlines() or [""]:
        for line in textwrap.wrap(paragraph, WIDTH - 2) or [""]:
            lines += [("class:frame", "│ "), ("class:screen", line + "\n")]
    bottom = "└" + "─" * (WIDTH - 1)
    if footer:
        bottom = f"└─ {footer} " + "─" * max(0, WIDTH - len(footer) - 4)
    lines.append(("class:frame", bottom + "\n"))
    return lines


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


class CodesOnlyHistory(History):
    """History that keeps codes and commands but never replies: a reply may be a password
    (docs/services.md `*111*17#`), and the history file outlives the session."""

    def __init__(self, inner: History) -> None:
        super().__init__()
        self.inner = inner
        self.recording = True

    def load_history_strings(self) -> Iterable[str]:
        return self.inner.load_history_strings()

    def store_string(self, string: str) -> None:
        self.inner.store_string(string)

    def append_string(self, string: str) -> None:
        if self.recording:
            super().append_string(string)


class TerminalPhone:
    """One handset on a running gateway, driven from a prompt."""

    def __init__(
        self,
        client: PhonesClient,
        msisdn: str,
        *,
        history: History | None = None,
        input: Input | None = None,
        output: Output | None = None,
        record: Path | None = None,
    ) -> None:
        self.client = client
        self.msisdn = msisdn
        self.record = record  # where to save the session as a scenario file (docs/scenarios.md)
        self.session: str | None = None  # the open dialog, if any
        self.secret = False  # the screen on show asks for a password: the reply is masked
        self.notice = False  # the screen on show is a USSN notice: Enter acknowledges it
        self.live = False  # the event socket is up: screens are printed from it
        self._ready = asyncio.Event()
        # While a dial or reply is in flight, SMS are held back until its screen is printed:
        # the engine queues an SMS a service sends (the password notice of *111*17#) before it
        # shows the screen that answers the request, so the socket carries the SMS first, yet
        # on a handset the answer comes first and the SMS it caused after it.
        self._awaiting = False
        self._held: list[dict[str, Any]] = []
        self._screen_shown = asyncio.Event()
        self.history = CodesOnlyHistory(history or InMemoryHistory())
        self._prompt: PromptSession[str] = PromptSession(
            history=self.history, input=input, output=output, style=STYLE
        )
        self._output = output

    # -- output -------------------------------------------------------------------------------

    def say(self, fragments: list[tuple[str, str]]) -> None:
        print_formatted_text(FormattedText(fragments), style=STYLE, output=self._output, end="")

    def info(self, text: str, style: str = "class:info") -> None:
        self.say([(style, text + "\n")])

    def show_screen(self, screen: dict[str, Any], pushed: bool = False) -> None:
        self.secret = bool(screen.get("secret")) and not screen["end"]
        self.notice = bool(screen.get("notice")) and not screen["end"]
        pages = int(screen.get("pages") or 1)
        title = "USSD" + (f"  {screen.get('page', 1)}/{pages}" if pages > 1 else "")
        if pushed:  # network-initiated (docs/smpp.md "Pushes"): nobody here dialled
            title += " · pushed"
        if screen.get("local"):
            title = "phone"
        footer = "end" if screen["end"] else "reply expected · :release to cancel"
        if self.notice:
            footer = "notice · Enter to acknowledge"
        self.say(frame(title, str(screen["text"]), footer))

    def show_sms(self, sms: dict[str, Any]) -> None:
        self.say(frame(f"✉ SMS from {sms['sender']}", str(sms["text"])))

    # -- the event socket -----------------------------------------------------------------------

    async def watch(self) -> None:
        """Follow `.../events`, reconnecting with back-off until cancelled."""
        delay = 0.5
        while True:
            try:
                async for message in self.client.events(self.msisdn):
                    delay = 0.5
                    self.on_event(message)
            except ClientError as exc:
                if not self._ready.is_set():
                    self.info(f"live events unavailable: {exc}", "class:error")
                    self._ready.set()
            self.live = False
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    def on_event(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "ready":
            self.live = True
            self._ready.set()
        elif kind == "screen":
            pushed = not self._awaiting and self.session is None
            self.session = None if message["end"] else message["session"]
            self.show_screen(message, pushed)
            self._screen_printed()
        elif kind == "end":
            if message["session"] == self.session:
                self.session = None
            outcome = message["outcome"]
            if outcome != "completed":  # a completed dialog's last screen was already shown
                self.info(f"[{_OUTCOMES.get(outcome, outcome)}]", "class:end")
                screen = message.get("screen")
                if screen:
                    self.say(frame("USSD", str(screen["text"]), "end"))
            if outcome != "replaced":  # a new dial ends the old dialog before its own screen
                self._screen_printed()
        elif kind == "fault":
            # An injected network fault hit this number (docs/network.md "Faults"): a lost SMS
            # leaves no other trace.
            self.info(
                f"[network fault: {message.get('kind')}, rule {message.get('rule')}]", "class:error"
            )
        elif kind == "sms" and message.get("state") == "queued":
            # A state change (delivered, expired) repeats the SMS; show each one once.
            if self._awaiting and not self._screen_shown.is_set():
                self._held.append(message)
            else:
                self.show_sms(message)

    def _screen_printed(self) -> None:
        """The answer to the request in flight is on screen: the SMS behind it may follow."""
        if self._awaiting:
            self._screen_shown.set()
        self._release_held()

    def _release_held(self) -> None:
        held, self._held = self._held, []
        for sms in held:
            self.show_sms(sms)

    # -- commands -------------------------------------------------------------------------------

    async def handle(self, line: str) -> bool:
        """Act on one input line; False when the phone should quit."""
        text = line.strip()
        if not text:
            if self.notice and self.session is not None:  # Enter acknowledges a notice
                await self._request(self.client.reply, "")
            return True
        if text.startswith(":"):
            command, _, arg = text[1:].partition(" ")
            action = self._commands().get(command.lower())
            if action is None:
                self.info(f"unknown command :{command} (try :help)", "class:error")
                return True
            return await action(arg.strip())
        if self.session is None:
            await self._request(self.client.dial, text)
        else:
            await self._request(self.client.reply, text)
        return True

    def _commands(self) -> dict[str, Callable[[str], Awaitable[bool]]]:
        return {
            "help": self._help,
            "h": self._help,
            "?": self._help,
            "sms": self._sms,
            "release": self._release,
            "r": self._release,
            "dial": self._dial,
            "d": self._dial,
            "quit": self._quit,
            "q": self._quit,
            "exit": self._quit,
        }

    async def _request(self, call: Callable[[str, str], Any], text: str) -> None:
        self._awaiting = True
        self._screen_shown.clear()
        try:
            await self._send(call, text)
        finally:
            self._awaiting = False
            self._release_held()

    async def _send(self, call: Callable[[str, str], Any], text: str) -> None:
        try:
            screen: dict[str, Any] = await call(self.msisdn, text)
        except ApiError as exc:
            if exc.code == "no_dialog":
                self.session = None
            self.info(f"✗ {exc.message}", "class:error")
            return
        except Unreachable as exc:
            self.info(f"✗ {exc}", "class:error")
            return
        self.session = None if screen["end"] else screen["session"]
        # With the socket up the same screen arrives there (in order with dialog ends); local
        # answers and a phone without a socket print from the response.
        if screen.get("local") or not self.live:
            self.show_screen(screen)
            return
        # The response can overtake the socket: wait for the socket's copy of the screen, so
        # that it is printed before the SMS held back and before the next prompt.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._screen_shown.wait(), SCREEN_WAIT)

    async def _help(self, _: str) -> bool:
        self.info(HELP)
        return True

    async def _sms(self, _: str) -> bool:
        try:
            inbox = await self.client.inbox(self.msisdn)
        except ClientError as exc:
            self.info(f"✗ {exc}", "class:error")
            return True
        if not inbox:
            self.info("no messages")
        for sms in inbox:
            self.show_sms(sms)
        return True

    async def _release(self, _: str) -> bool:
        try:
            released = await self.client.release(self.msisdn)
        except ClientError as exc:
            self.info(f"✗ {exc}", "class:error")
            return True
        self.session = None
        self.info("released" if released else "no open dialog")
        return True

    async def _dial(self, code: str) -> bool:
        if not code:
            self.info("usage: :dial CODE", "class:error")
        else:
            await self._request(self.client.dial, code)
        return True

    async def _quit(self, _: str) -> bool:
        return False

    # -- the loop -------------------------------------------------------------------------------

    def _message(self) -> FormattedText:
        if self.session is not None:
            return FormattedText([("class:prompt.dialog", "reply› ")])
        return FormattedText([("class:prompt", f"{self.msisdn}› ")])

    async def run(self) -> int:
        """Check the gateway, follow its events and read lines until :quit or Ctrl-D."""
        try:
            await self.client.health()
        except ClientError as exc:
            self.info(f"✗ {exc}", "class:error")
            return 1
        if self.record is not None and not await self._start_recording():
            return 1
        watcher = asyncio.create_task(self.watch())
        saved = True
        try:
            # Screens must not race the prompt's first draw; the socket says `ready` quickly.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ready.wait(), 5.0)
            self.info(f"phone {self.msisdn} on {self.client.url} — :help for commands")
            with patch_stdout(raw=True):
                while True:
                    try:
                        self.history.recording = self.session is None
                        line = await self._prompt.prompt_async(
                            self._message, is_password=self.secret and self.session is not None
                        )
                    except KeyboardInterrupt:
                        if self._prompt.default_buffer.text:
                            continue  # Ctrl-C clears the line, as in a shell
                        break  # on an empty line it leaves
                    except EOFError:
                        break
                    if not await self.handle(line):
                        break
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            if self.record is not None:
                saved = await self._save_recording(self.record)
        return 0 if saved else 1

    # -- recording ------------------------------------------------------------------------------
    # The gateway records (POST/DELETE .../record) and writes the file with ussd.recording: it
    # sees SMS and timeouts in the order they happened and has the subscriber's data.

    async def _start_recording(self) -> bool:
        try:
            await self.client.start_recording(self.msisdn)
        except ClientError as exc:
            self.info(f"✗ cannot record: {exc}", "class:error")
            return False
        self.info(f"recording to {self.record}")
        return True

    async def _save_recording(self, path: Path) -> bool:
        try:
            text = await self.client.stop_recording(self.msisdn)
        except ClientError as exc:
            self.info(f"✗ recording lost: {exc}", "class:error")
            return False
        try:
            await asyncio.to_thread(_write, path, text)
        except OSError as exc:
            self.info(f"✗ cannot write {path}: {exc.strerror or exc}", "class:error")
            return False
        self.info(f"scenario saved to {path} — replay it with `ussd-sim run {path}`")
        return True
