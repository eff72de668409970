"""The terminal phone (`ussd-sim phone`) in a real pseudo-terminal against a real gateway."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import pty
import re
import struct
import sys
import termios
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from prompt_toolkit.input import Input, create_pipe_input
from prompt_toolkit.output import DummyOutput

from sim import phone as phone_mod
from sim import runner
from sim import scenario as sc
from sim.client import PhonesClient
from sim.phone import TerminalPhone
from sim.targets import InProcessTarget
from tests.http.conftest import RU
from ussd.http import HttpServer
from ussd.runtime import Gateway

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 15.0
PROMPT = r"(\d+|reply)› "
_ANSI = re.compile(r"\x1b(\[[0-9;?<=>]*[ -/]*[@-~]|\][^\x07]*\x07|[()][0-9A-Za-z]|[=>78])")


class Terminal:
    """A child process on a pty; `expect` waits on output, never on the clock alone."""

    def __init__(self) -> None:
        self.master = -1
        self.proc: asyncio.subprocess.Process | None = None
        self.raw = b""
        self.pos = 0
        self.changed = asyncio.Event()
        self.eof = False

    async def spawn(self, *argv: str) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 120, 0, 0))
        env = {
            **os.environ,
            "TERM": "xterm-256color",
            "PROMPT_TOOLKIT_NO_CPR": "1",  # no cursor-position query to answer
            "PYTHONUNBUFFERED": "1",
            "NO_COLOR": "1",
        }
        self.proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            cwd=ROOT,
            start_new_session=True,
        )
        os.close(slave)
        self.master = master
        os.set_blocking(master, False)
        asyncio.get_running_loop().add_reader(master, self._readable)

    def _readable(self) -> None:
        try:
            data = os.read(self.master, 65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.eof = True
            asyncio.get_running_loop().remove_reader(self.master)
        self.raw += data
        self.changed.set()

    @property
    def text(self) -> str:
        return _ANSI.sub("", self.raw.decode("utf-8", "replace")).replace("\r", "")

    async def expect(self, *patterns: str, within: float = TIMEOUT) -> None:
        """Wait until every regex appears (in any order) after the previous match."""
        regexes = [re.compile(p) for p in patterns]

        async def wait() -> None:
            while True:
                text = self.text
                found = [r.search(text, self.pos) for r in regexes]
                if all(found):
                    self.pos = max(m.end() for m in found if m)
                    return
                if self.eof:
                    raise AssertionError(f"process ended before {patterns!r}")
                self.changed.clear()
                await self.changed.wait()

        try:
            await asyncio.wait_for(wait(), within)
        except TimeoutError:
            raise AssertionError(
                f"{patterns!r} not seen in {within}s; output after last match:\n"
                f"{self.text[self.pos :]}"
            ) from None

    def send(self, text: str) -> None:
        os.write(self.master, text.encode())

    async def type_line(self, text: str, prompt: str = PROMPT) -> None:
        """Type a line once `prompt` is drawn after the last match: typed ahead of the
        prompt, a line would meet the terminal's cooked mode instead of the phone."""
        await self.expect(prompt)
        self.send(text + "\r")

    async def wait(self) -> int:
        assert self.proc is not None
        return await asyncio.wait_for(self.proc.wait(), TIMEOUT)

    async def close(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        if self.master >= 0:
            if not self.eof:
                asyncio.get_running_loop().remove_reader(self.master)
            os.close(self.master)
            self.master = -1


@pytest.fixture
async def terminal() -> AsyncIterator[Terminal]:
    term = Terminal()
    yield term
    await term.close()


def _phone_argv(url: str, history: Path, msisdn: str = RU) -> list[str]:
    return [
        sys.executable,
        "-m",
        "ussd.cli",
        "phone",
        msisdn,
        "--url",
        url,
        "--history",
        str(history),
    ]


async def test_password_dialog_in_the_terminal(
    terminal: Terminal, server: HttpServer, started: Gateway, tmp_path: Path
) -> None:
    history = tmp_path / "history"
    await terminal.spawn(*_phone_argv(server.url, history))
    await terminal.expect(r"phone 79161234567 on http://127\.0\.0\.1:\d+")

    await terminal.type_line("*111*17#")
    await terminal.expect(r"Введите новый пароль")
    await terminal.expect(r"reply expected")
    await terminal.type_line("secret12")
    await terminal.expect(r"Повторите пароль")
    await terminal.type_line("secret12")
    # The SMS notice is pushed live over the WebSocket, after the final screen it caused.
    await terminal.expect(r"установлен[\s\S]*SMS from MTS")

    await terminal.type_line(":sms")
    await terminal.expect(r"SMS from MTS[\s\S]*изменён")

    await terminal.type_line(":help")
    await terminal.expect(r":release")

    # A timeout on the gateway's clock reaches the terminal by itself.
    await terminal.type_line("*111*17#")
    await terminal.expect(r"Введите новый пароль")
    await terminal.expect(r"reply› ")
    started.advance(started.config.ussd.reply_timeout + 1)
    await terminal.expect(r"no reply in time")

    await terminal.type_line("*111*17#")
    await terminal.type_line(":release", prompt=r"reply› ")
    await terminal.expect(r"released")

    await terminal.type_line("*#06#")
    await terminal.expect(r"IMEI")
    await terminal.type_line("84951234567")
    await terminal.expect(r"✗ .*call")

    await terminal.type_line(":quit")
    assert await terminal.wait() == 0

    saved = history.read_text(encoding="utf-8")
    assert "*111*17#" in saved and ":sms" in saved
    assert "secret12" not in saved  # replies can be passwords: never in the history file
    assert "secret12" not in terminal.text  # and password prompts are typed masked
    assert "********" in terminal.text


async def test_reply_typed_after_dialog_ended_elsewhere(
    terminal: Terminal, server: HttpServer, started: Gateway, tmp_path: Path
) -> None:
    await terminal.spawn(*_phone_argv(server.url, tmp_path / "h"))
    await terminal.type_line("*111*17#")
    await terminal.expect(r"reply› ")
    started.engine.release(RU)  # e.g. an SMPP harness released it
    await terminal.expect(r"dialog released")
    await terminal.type_line(
        "*100#", prompt=r"79161234567› "
    )  # the phone knows: this is a new dial, not a reply
    await terminal.expect(r"USSD")
    await terminal.expect(r"79161234567› ")
    terminal.send("\x04")  # Ctrl-D
    assert await terminal.wait() == 0


async def test_unreachable_gateway_exits_1(terminal: Terminal, tmp_path: Path) -> None:
    await terminal.spawn(*_phone_argv("http://127.0.0.1:9", tmp_path / "h"))
    await terminal.expect(r"cannot reach http://127\.0\.0\.1:9")
    assert await terminal.wait() == 1


class CapturingPhone(TerminalPhone):
    """The real phone with its output captured as plain text, in the order it is printed."""

    def __init__(self, client: PhonesClient, msisdn: str, pipe: Input) -> None:
        super().__init__(client, msisdn, input=pipe, output=DummyOutput())
        self.printed = ""
        self.changed = asyncio.Event()

    def say(self, fragments: list[tuple[str, str]]) -> None:
        self.printed += "".join(text for _, text in fragments)
        self.changed.set()

    async def shows(self, *patterns: str) -> None:
        """Wait until each pattern has been printed, in this order."""
        regex = re.compile("[\\s\\S]*".join(patterns))

        async def wait() -> None:
            while not regex.search(self.printed):
                self.changed.clear()
                await self.changed.wait()

        try:
            await asyncio.wait_for(wait(), TIMEOUT)
        except TimeoutError:
            raise AssertionError(f"{patterns!r} not printed in order:\n{self.printed}") from None


async def test_screen_comes_before_the_sms_it_caused(server: HttpServer) -> None:
    # The engine queues the password SMS before it shows the final screen, so the socket
    # carries them in that order; the phone prints the answer first, then the SMS.
    async with PhonesClient(server.url) as client:
        with create_pipe_input() as pipe:
            phone = CapturingPhone(client, RU, pipe)
            watcher = asyncio.create_task(phone.watch())
            try:
                await asyncio.wait_for(phone._ready.wait(), TIMEOUT)
                assert phone.live
                for line in ("*111*17#", "secret12", "secret12"):
                    await phone.handle(line)
                await phone.shows("установлен", "SMS from MTS")
                assert phone.printed.count("SMS from MTS") == 1
                assert phone._held == []  # nothing is left behind once the request is done
            finally:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher


class OvertakingClient:
    """A phones client whose response overtakes the socket: during the request the SMS comes
    in on the socket, and the screen's socket copy only after the response (or never)."""

    def __init__(self, socket_screen: bool, replacing: bool = False) -> None:
        self.phone: CapturingPhone | None = None
        self.socket_screen = socket_screen
        self.replacing = replacing  # the dial replaces an open dialog, whose end comes first

    async def dial(self, msisdn: str, text: str) -> dict[str, Any]:
        assert self.phone is not None
        screen = {"type": "screen", "session": "s1", "text": "Done", "end": True}
        sms = {"type": "sms", "state": "queued", "sender": "MTS", "text": "Notice"}
        if self.replacing:
            end = {"type": "end", "session": "s0", "outcome": "replaced", "screen": None}
            self.phone.on_event(end)
        self.phone.on_event(sms)
        if self.socket_screen:
            asyncio.get_running_loop().call_soon(self.phone.on_event, screen)
        return screen


@pytest.mark.parametrize(
    ("socket_screen", "replacing"),
    [(True, False), (True, True), (False, False)],
    ids=["socket-late", "socket-late-replacing", "socket-never"],
)
async def test_response_overtaking_the_socket_keeps_the_order(
    socket_screen: bool, replacing: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without the socket's copy the SMS held back is still shown, after a bounded wait.
    monkeypatch.setattr(phone_mod, "SCREEN_WAIT", 0.05)
    client = OvertakingClient(socket_screen, replacing)
    with create_pipe_input() as pipe:
        phone = CapturingPhone(client, RU, pipe)  # type: ignore[arg-type]
        client.phone = phone
        phone.live = True
        await phone.handle("*100#")
    if socket_screen:
        assert re.search(r"Done[\s\S]*SMS from MTS", phone.printed), phone.printed
        assert phone.printed.count("Done") == 1
    else:
        assert "SMS from MTS" in phone.printed and phone._held == []


async def test_invalid_msisdn_is_a_usage_error_before_the_phone_starts(
    terminal: Terminal, server: HttpServer, tmp_path: Path
) -> None:
    # A reachable gateway: the phone must not get as far as the prompt with "hello".
    history = tmp_path / "h"
    await terminal.spawn(*_phone_argv(server.url, history, msisdn="hello"))
    await terminal.expect(r"argument MSISDN: not a phone number: 'hello'")
    assert await terminal.wait() == 2
    assert "›" not in terminal.text  # no prompt was ever drawn
    assert not history.exists()


async def test_record_a_session_that_replays_green(
    terminal: Terminal,
    server: HttpServer,
    started: Gateway,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = tmp_path / "rec" / "session.yaml"
    await terminal.spawn(*_phone_argv(server.url, tmp_path / "h"), "--record", str(out))
    await terminal.expect(r"recording to .*session\.yaml")
    await terminal.type_line("*100#")
    await terminal.expect(r"Ваш баланс: 120\.50")
    await terminal.type_line("*111*17#")
    await terminal.expect(r"Введите новый пароль")
    await terminal.type_line("secret12", prompt=r"reply› ")
    await terminal.expect(r"Повторите пароль")
    await terminal.type_line("secret12", prompt=r"reply› ")
    await terminal.expect(r"установлен[\s\S]*SMS from MTS")
    await terminal.type_line("*#06#")  # handset-local: never part of a scenario
    await terminal.expect(r"IMEI")
    await terminal.expect(PROMPT)
    terminal.send("*1")
    terminal.send("\x03")  # Ctrl-C with text on the line: clears it, the phone stays
    # Typing redraws the old prompt too: wait for a prompt on the line after "*1". A new
    # prompt is drawn only once the terminal is raw again; a key sent before that would meet
    # the terminal's cooked mode between two prompts.
    await terminal.expect(r"\*1[ \t]*\n" + PROMPT)
    terminal.send("\x03")  # on an empty line: leaves, and the scenario is saved
    await terminal.expect(r"scenario saved to .*session\.yaml")
    assert await terminal.wait() == 0

    assert "secret12" not in out.read_text(encoding="utf-8")  # docs/scenarios.md: no secrets
    monkeypatch.setenv("USSD_SIM_PASSWORD", "secret12")  # the placeholder's value on replay
    (scenario,) = sc.load(out)
    assert [s.kind for s in scenario.steps] == ["dial", "dial", "reply", "reply", "sms"]
    assert scenario.subscribers[0]["msisdn"] == RU
    result = await runner.run_async(scenario, InProcessTarget())
    assert result.passed, runner.format_failure(result)


async def test_record_ends_with_the_phone_on_ctrl_d(
    terminal: Terminal, server: HttpServer, tmp_path: Path
) -> None:
    out = tmp_path / "eof.yaml"
    await terminal.spawn(*_phone_argv(server.url, tmp_path / "h"), "--record", str(out))
    await terminal.type_line("*111#")
    await terminal.expect(r"reply› ")
    terminal.send("\x04")  # Ctrl-D with a dialog open: the file holds what happened so far
    await terminal.expect(r"scenario saved")
    assert await terminal.wait() == 0
    (scenario,) = sc.load(out)
    assert [s.kind for s in scenario.steps] == ["dial"]
    result = await runner.run_async(scenario, InProcessTarget())
    assert result.passed, runner.format_failure(result)
