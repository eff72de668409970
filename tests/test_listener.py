"""ussd/listener.py: accept() failing for want of descriptors pauses the listener, logged once
per episode (the real limit is exercised in tests/smpp/test_limits.py with RLIMIT_NOFILE)."""

from __future__ import annotations

import asyncio
import errno

import pytest
from structlog.testing import capture_logs

from ussd import listener as listener_mod
from ussd.listener import Listener

TIMEOUT = 5.0


class Exhausted:
    """A listening socket at the descriptor limit: every accept() fails with EMFILE."""

    def __init__(self) -> None:
        self.calls = 0

    def accept(self) -> tuple[object, object]:
        self.calls += 1
        raise OSError(errno.EMFILE, "Too many open files")


class Accepted(asyncio.Protocol):
    made: asyncio.Queue[asyncio.BaseTransport]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.made.put_nowait(transport)


@pytest.fixture
async def accepted() -> asyncio.Queue[asyncio.BaseTransport]:
    Accepted.made = asyncio.Queue()
    return Accepted.made


async def test_an_episode_is_logged_once_and_accepting_resumes(
    accepted: asyncio.Queue[asyncio.BaseTransport], monkeypatch: pytest.MonkeyPatch
) -> None:
    listener = Listener(Accepted, component="test", retry_delay=0.01)
    address = await listener.start("127.0.0.1", 0)
    exhausted = Exhausted()
    with capture_logs() as logs:
        for _ in range(50):  # every wake-up while the limit lasts
            listener._accept(exhausted)  # type: ignore[arg-type]
        assert listener.paused
        assert exhausted.calls == 50  # one attempt per wake-up, not `backlog` of them
        _reader, writer = await asyncio.open_connection(*address)
        transport = await asyncio.wait_for(accepted.get(), TIMEOUT)
        assert not listener.paused
        # Another episode right after: counted, not logged (QUIET).
        listener._accept(exhausted)  # type: ignore[arg-type]
        _reader2, writer2 = await asyncio.open_connection(*address)
        transport2 = await asyncio.wait_for(accepted.get(), TIMEOUT)
        # After the quiet period the next one is logged again, with the count.
        monkeypatch.setattr(listener_mod, "QUIET", 0.0)
        listener._accept(exhausted)  # type: ignore[arg-type]
    assert [e["event"] for e in logs] == ["accept_paused", "accept_resumed", "accept_paused"]
    assert logs[0]["error"] == "EMFILE"
    assert logs[1]["failed_attempts"] == 50
    assert logs[2]["episodes_not_logged"] == 1
    listener.close()
    for t in (transport, transport2):
        t.close()
    writer.close()
    writer2.close()


async def test_close_while_paused() -> None:
    listener = Listener(asyncio.Protocol, component="test", retry_delay=0.01)
    await listener.start("127.0.0.1", 0)
    with capture_logs():
        listener._accept(Exhausted())  # type: ignore[arg-type]
    assert listener.paused
    listener.close()
    assert listener._retry is None
    assert listener.sockets == []
    assert not listener.paused
