"""MO SMS are committed per read (docs/smpp.md "MO SMS"): the submit_sm of one read share one
COMMIT, each its own savepoint in it, and are answered only after it. Nothing acknowledged is
lost: a COMMIT that fails answers every submit_sm of the read with an error."""

from __future__ import annotations

import asyncio

import pytest

from tests.smpp.helpers import ALICE, KATE, bound, server_config, text_of
from tests.smpp.helpers import RecordingEsme as Esme
from ussd.config import Config
from ussd.runtime import Gateway
from ussd.smpp.constants import CommandStatus
from ussd.smpp.pdu import BindReceiver, BindTransmitter
from ussd.smpp.server import SmppServer

S = CommandStatus


@pytest.fixture
def config() -> Config:
    return server_config()


async def submit_together(client: Esme, texts: list[str]) -> list[int]:
    """Every submit_sm in one write (the client transmits once per loop turn): one read."""
    resps = await asyncio.gather(
        *(client.submit(ALICE, text, op=None, destination_addr=KATE) for text in texts)
    )
    return [r.command_status for r in resps]


def poison(gateway: Gateway, *statements: str) -> None:
    for statement in statements:
        gateway.store.db.execute(statement)


async def test_one_read_is_one_commit(server: SmppServer, gateway: Gateway) -> None:
    seen: list[str] = []
    gateway.store.db.set_trace_callback(seen.append)  # type: ignore[attr-defined]
    tx = await bound(server, BindTransmitter)
    assert await submit_together(tx, ["one", "two", "three"]) == [S.ESME_ROK] * 3
    assert seen.count("COMMIT") == 1
    assert [s.text for s in gateway.sms.inbox(KATE)] == ["one", "two", "three"]


async def test_a_failing_submit_sm_rolls_back_alone(server: SmppServer, gateway: Gateway) -> None:
    poison(
        gateway,
        "CREATE TRIGGER poison BEFORE INSERT ON sms WHEN NEW.text = 'poison' "
        "BEGIN SELECT RAISE(ABORT, 'poisoned'); END",
    )
    tx = await bound(server, BindTransmitter)
    statuses = await submit_together(tx, ["one", "poison", "three"])
    assert statuses == [S.ESME_ROK, S.ESME_RSYSERR, S.ESME_ROK]
    assert [s.text for s in gateway.sms.inbox(KATE)] == ["one", "three"]
    kate = await bound(server, BindReceiver, system_id="ranges", password="pw")
    assert sorted([text_of(await kate.deliver_sm()) for _ in range(2)]) == ["one", "three"]


async def test_a_failed_commit_answers_every_submit_sm_with_an_error(
    server: SmppServer, gateway: Gateway
) -> None:
    # COMMIT checks deferred foreign keys: the 'doom' SMS makes the read's COMMIT fail.
    poison(
        gateway,
        "CREATE TABLE gate (id INTEGER PRIMARY KEY)",
        "CREATE TABLE doomed (ref INTEGER REFERENCES gate (id) DEFERRABLE INITIALLY DEFERRED)",
        "CREATE TRIGGER doom AFTER INSERT ON sms WHEN NEW.text = 'doom' "
        "BEGIN INSERT INTO doomed VALUES (42); END",
    )
    tx = await bound(server, BindTransmitter)
    statuses = await submit_together(tx, ["one", "doom", "three"])
    assert statuses == [S.ESME_RSYSERR] * 3  # never an OK for what is not on disk
    assert gateway.sms.inbox(KATE) == []
    # Nothing was announced either: a receiver bound now gets only what comes next.
    assert await submit_together(tx, ["after"]) == [S.ESME_ROK]
    kate = await bound(server, BindReceiver, system_id="ranges", password="pw")
    assert text_of(await kate.deliver_sm()) == "after"
    assert [s.text for s in gateway.sms.inbox(KATE)] == ["after"]
