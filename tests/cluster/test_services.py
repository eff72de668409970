"""The servers the cluster tests start are real, private and empty (tests/services.py)."""

from __future__ import annotations

import psycopg
import redis

from tests.services import Server


def test_redis_is_private_and_empty(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.dbsize() == 0
        client.set("k", "v")
        assert client.get("k") == b"v"
    finally:
        client.close()


def test_each_test_has_its_own_postgres_database(postgres_url: str) -> None:
    with psycopg.connect(postgres_url) as conn:
        tables = conn.execute(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
        assert tables == (0,)


def test_a_server_can_be_killed_and_started_again(own_redis: Server) -> None:
    url = f"redis://127.0.0.1:{own_redis.port}/0"
    own_redis.stop(kill=True)
    client = redis.Redis.from_url(url, socket_connect_timeout=1)
    try:
        try:
            client.ping()
        except redis.ConnectionError:
            pass
        else:
            raise AssertionError("a killed redis-server answered")
        own_redis.start_again()
        assert client.ping()
    finally:
        client.close()
