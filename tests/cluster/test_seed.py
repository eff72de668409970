"""Workers starting together on an empty database seed each subscriber once (docs/cluster.md)."""

from __future__ import annotations

import threading

import psycopg

from tests.conftest import make_config
from tests.services import Server, create_database
from ussd.clock import SimulatedClock
from ussd.runtime import Gateway

WORKERS = 4
ROUNDS = 3


def _start_together(dsn: str) -> None:
    config = make_config()
    ready = threading.Barrier(WORKERS)
    failed: list[BaseException] = []

    def start() -> None:
        try:
            ready.wait(timeout=30)
            Gateway.create(config, clock=SimulatedClock(), database=dsn).close()
        except BaseException as exc:  # reported below, from the test thread
            failed.append(exc)

    threads = [threading.Thread(target=start) for _ in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert failed == []


def test_workers_starting_together_seed_the_charges_once(postgres_server: Server) -> None:
    seeds = [s for s in make_config().subscribers.seed if s.charges or s.instalments]
    assert seeds  # the shipped config seeds a ledger: the test has something to count
    for round_ in range(ROUNDS):  # each round a fresh database, WORKERS gateways at once
        dsn = create_database(postgres_server, f"seed_{round_}_{threading.get_ident()}")
        _start_together(dsn)
        with psycopg.connect(dsn) as conn:
            for seed in seeds:
                charges = conn.execute(
                    "SELECT COUNT(*) FROM charges WHERE msisdn = %s", (seed.msisdn,)
                ).fetchone()
                plans = conn.execute(
                    "SELECT COUNT(*) FROM instalment_plans WHERE msisdn = %s", (seed.msisdn,)
                ).fetchone()
                assert (charges, plans) == (
                    (len(seed.charges or ()),),
                    (len(seed.instalments or ()),),
                )
