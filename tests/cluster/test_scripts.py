"""The step's Redis scripts and the saved dialog state, as a worker sends them (ussd/cluster.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis

from tests.services import Server
from ussd import cluster as cluster_mod
from ussd.cluster import DEADLINES, DIALOG, INBOX
from ussd.engine import Dialog
from ussd.events import Outcome

RU = "79161234567"
NOW = 1_780_000_000.0


def _dialog(**values: object) -> Dialog:
    return Dialog(
        session="s1",
        msisdn=RU,
        service="menu",
        service_code="*111#",
        screen="main",
        values=dict(values),
        started=NOW,
        reply_deadline=NOW + 60,
        max_deadline=NOW + 300,
        pages=("first page", "второй"),
        left_on={"main": 2},
        outcome=Outcome.REPLACED,
    )


@dataclass
class Point:
    x: int


def test_the_saved_state_is_to_states_json() -> None:
    dialog = _dialog(amount=10.5, items=["a", {"b": (1, 2)}], none=None)
    saved = cluster_mod._state(dialog)
    assert json.loads(saved) == json.loads(json.dumps(dialog.to_state()))
    back = Dialog.from_state(json.loads(saved))  # what a worker taking it over reads
    assert back.outcome is Outcome.REPLACED and back.pages == dialog.pages
    assert back.left_on == {"main": 2} and back.values["items"] == ["a", {"b": [1, 2]}]


def test_a_value_only_to_state_can_encode_goes_through_it() -> None:
    dialog = _dialog(point=Point(3))  # asdict() makes it a dict; json alone cannot
    assert json.loads(cluster_mod._state(dialog))["values"] == {"point": {"x": 3}}
    with pytest.raises(TypeError):
        cluster_mod._state(_dialog(what={1, 2}))  # neither can: the worker logs and skips it


@pytest.fixture
def scripts(redis_url: str) -> Iterator[cluster_mod._Scripts]:
    client = redis.Redis.from_url(redis_url)
    s = cluster_mod._Scripts(client.connection_pool)
    yield s
    s.close()
    client.close()


def _claim(scripts: cluster_mod._Scripts, worker: str, session: str) -> object:
    return scripts([(b"c", DIALOG + RU, (worker, session, repr(NOW + 60), RU, INBOX, "100"))])[0]


def test_the_scripts_run_after_redis_forgot_them(
    scripts: cluster_mod._Scripts, redis_url: str
) -> None:
    assert _claim(scripts, "w1", "s1") is None  # nobody held it
    client = redis.Redis.from_url(redis_url)
    try:
        client.script_flush()
        assert _claim(scripts, "w2", "s2") == b"w1"  # EVAL once, after NOSCRIPT
        assert client.xlen(INBOX + "w1") == 1  # w1 is told its dialog was replaced
        assert client.script_exists(cluster_mod._STEPS_SHA.decode()) == [True]
        client.set(DIALOG + "79990000000", "not a dialog")
        with pytest.raises(redis.ResponseError):  # an error from Redis is an error, at once
            scripts([(b"p", DIALOG + "79990000000", ())])
        assert scripts([(b"t", DIALOG + RU, ("w2", RU, INBOX, "100"))]) == [None]
    finally:
        client.close()


def test_a_restarted_redis_is_used_again_at_the_next_call(own_redis: Server) -> None:
    client = redis.Redis.from_url(f"redis://127.0.0.1:{own_redis.port}/0")
    scripts = cluster_mod._Scripts(client.connection_pool)
    try:
        assert _claim(scripts, "w1", "s1") is None
        own_redis.stop(kill=True)
        with pytest.raises(redis.ConnectionError):  # down: one error, no retries that wait
            _claim(scripts, "w1", "s2")
        own_redis.start_again()
        assert _claim(scripts, "w1", "s3") is None  # a new connection, the script loaded again
        own_redis.stop(kill=True)
        own_redis.start_again()
        # The connection from before the restart is broken: the call goes out on a new one.
        assert _claim(scripts, "w2", "s4") is None
        assert client.hget(DIALOG + RU, "worker") == b"w2"
    finally:
        scripts.close()
        client.close()


def test_several_operations_go_in_one_call_in_order(
    scripts: cluster_mod._Scripts, redis_url: str
) -> None:
    key, due = DIALOG + RU, repr(NOW + 60)
    state = cluster_mod._state(_dialog())
    answers = scripts(
        [
            (b"p", key, ()),  # nobody holds it yet
            (b"c", key, ("w1", "s1", due, RU, INBOX, "100")),
            (b"s", key, ("w1", "s1", state, due, RU, "0")),
            (b"p", key, ()),
            (b"t", key, ("w2", RU, INBOX, "100")),  # w2 takes it over from the saved state
            (b"s", key, ("w1", "s9", state, due, RU, "0")),  # not the session: refused
            (b"r", key, ("s1", RU)),
            (b"p", key, ()),
        ]
    )
    assert answers == [
        [None, None],
        None,
        1,
        [b"w1", b"s1"],
        [b"w1", b"s1", state, b"w1"],
        0,
        1,
        [None, None],
    ]
    client = redis.Redis.from_url(redis_url)
    try:
        told: Any = client.xrange(INBOX + "w1")
        assert [fields[b"op"] for _, fields in told] == [b"moved"]
        assert client.zscore(DEADLINES, RU) is None
    finally:
        client.close()


def test_a_take_answers_every_worker_that_held_the_dialog_each_once(
    scripts: cluster_mod._Scripts, redis_url: str
) -> None:
    # Its end goes back to a harness bind on any of them (docs/cluster.md "What is routed").
    key, due = DIALOG + RU, repr(NOW + 60)
    state = cluster_mod._state(_dialog())

    def take(worker: str) -> Any:
        return scripts([(b"t", key, (worker, RU, INBOX, "100"))])[0]

    scripts([(b"c", key, ("w1", "s1", due, RU, INBOX, "100"))])
    scripts([(b"s", key, ("w1", "s1", state, due, RU, "0"))])
    assert take("w1") == [b"w1", b"s1", state, b""]  # its own: nothing moves
    assert take("w2") == [b"w1", b"s1", state, b"w1"]
    assert take("w3") == [b"w2", b"s1", state, b"w1,w2"]
    assert take("w1") == [b"w3", b"s1", state, b"w1,w2,w3"]  # back on w1: w1 is there once
    assert take("w2") == [b"w1", b"s1", state, b"w1,w2,w3"]
    # Waiting on w2 (it performs the outside answer): not moved, the list as it stands.
    scripts([(b"s", key, ("w2", "s1", state, due, RU, "1"))])
    assert take("w3") == [b"w2", b"s1", b"", b"w1,w2,w3"]
    # A new dialog on the number starts with nobody before it.
    scripts([(b"c", key, ("w4", "s2", due, RU, INBOX, "100"))])
    scripts([(b"s", key, ("w4", "s2", state, due, RU, "0"))])
    assert take("w5") == [b"w4", b"s2", state, b"w4"]
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.hget(key, "before") == b"w4"
    finally:
        client.close()


@pytest.mark.parametrize(
    "op", [(b"x", DIALOG + RU, ()), (b"c", DIALOG + RU, ("w1",)), (b"p", DIALOG + RU, ("a",))]
)
def test_an_operation_with_the_wrong_name_or_arguments_is_refused_before_sending(
    scripts: cluster_mod._Scripts, op: cluster_mod._Op
) -> None:
    with pytest.raises(ValueError, match="not an operation"):
        scripts([op])
