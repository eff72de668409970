"""A cluster worker's own cost per USSD step beside the embedded gateway's, without sockets.

Run: .venv/bin/python -m bench.cluster_step [STEPS] [--cluster]   (prints figures; asserts
nothing; --cluster: the worker only)

As bench/gateway_step.py, but the journey `make bench` runs for cluster mode (`*111#` → 3 → 3,
docs/cluster.md "Performance") and two gateways in one process: the embedded one (SQLite,
dialogs in memory) and a cluster worker on a redis-server and PostgreSQL started here. One
transceiver bind is fed bytes by hand, each read carrying the next step of READ dialogs, and
every screen's `deliver_sm` is answered. Process time counts this process only, so Redis's
and PostgreSQL's own work is left out as in `make bench`'s CPU-seconds per 1,000 steps, and
the load generator's is not there to blur it: the figure to move when working on the worker's
step path. Best of several rounds (on a shared machine only the best means much).
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml

from bench.gateway_step import _answers, _harness_bind
from ussd import config as config_mod
from ussd import log
from ussd.clock import SimulatedClock
from ussd.runtime import Gateway
from ussd.smpp.constants import UssdServiceOp
from ussd.smpp.pdu import (
    ItsSessionInfo,
    SubmitSm,
    encode_pdu,
    ussd_tlvs,
)
from ussd.smpp.server import SmppServer

ROOT = Path(__file__).resolve().parent.parent
SUBSCRIBERS = 1_200
READ = 12  # dialogs per read: about what a read carries under `make bench`'s closed load
ROUNDS = 5
JOURNEY = (
    (b"*111#", UssdServiceOp.PSSR_INDICATION),
    (b"3", UssdServiceOp.USSR_CONFIRM),
    (b"3", UssdServiceOp.USSR_CONFIRM),
)


def _pdu(msisdn: str, text: bytes, op: int) -> bytearray:
    return bytearray(
        encode_pdu(
            SubmitSm(
                sequence_number=1,
                service_type="USSD",
                source_addr_ton=1,
                source_addr_npi=1,
                source_addr=msisdn,
                destination_addr="111",
                short_message=text,
                tlvs=ussd_tlvs(op, ItsSessionInfo(1, 0, False)),
            )
        )
    )


async def _measure(cluster: dict[str, str] | None, steps: int, rounds: int) -> list[float]:
    data = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory(prefix="ussd-cluster-step-") as tmp:
        data["storage"] = {"database": os.path.join(tmp, "step.sqlite3")}
        data["clock"] = {"mode": "simulated"}
        if cluster is not None:
            data["cluster"] = cluster
        gw = Gateway.create(config_mod.from_mapping(data, source="bench"), clock=SimulatedClock())
        await gw.start()
        worker = None
        if cluster is not None:
            from ussd.cluster import Cluster

            worker = Cluster(gw.engine, cluster["redis"], "bench")
            await worker.start()
        server = SmppServer(gw)
        if worker is not None:
            server.around_read = worker.batch
        bind, transport = _harness_bind(server)
        msisdns = [f"7992{i:07d}" for i in range(SUBSCRIBERS)]
        pdus = [[_pdu(m, text, op) for text, op in JOURNEY] for m in msisdns]
        sequence = 1
        group = 0
        refused = [0]

        async def run(n: int) -> None:
            # n steps: groups of READ dialogs, each group's journey one read per step.
            nonlocal sequence, group
            done = 0
            while done < n:
                first = (group * READ) % SUBSCRIBERS
                group += 1
                for step in range(len(JOURNEY)):
                    read = []
                    for i in range(first, first + READ):
                        sequence += 1
                        pdu = pdus[i % SUBSCRIBERS][step]
                        pdu[12:16] = sequence.to_bytes(4, "big")
                        read.append(bytes(pdu))
                    done += READ
                    bind.data_received(b"".join(read))
                    answers = _answers(transport.out, refused)
                    transport.out.clear()
                    if answers:
                        bind.data_received(answers)
                        transport.out.clear()
                    await asyncio.sleep(0)  # the loop turns: the timer task, record flushes

        await run(SUBSCRIBERS * len(JOURNEY))  # provisions every subscriber, outside the rounds
        costs = []
        for _ in range(rounds):
            gc.collect()
            started = time.process_time()
            before = os.times()
            await run(steps)
            costs.append((time.process_time() - started) / steps)
            after = os.times()
            if os.environ.get("STEP_SPLIT"):
                user = (after.user - before.user) / steps * 1e6
                system = (after.system - before.system) / steps * 1e6
                print(f"  user {user:.1f} µs, system {system:.1f} µs")
        if refused[0]:
            raise RuntimeError(f"{refused[0]} submit_sm refused: the journey did not run")
        await server.stop()
        if worker is not None:
            await worker.stop()
        await gw.stop()
        gw.close()
    return costs


def main() -> None:
    from tests.services import create_database, running, start_postgres, start_redis

    numbers = [a for a in sys.argv[1:] if a.isdigit()]
    steps = int(numbers[0]) if numbers else 6_000
    log.configure("console", "error")
    with (
        running(start_redis, "ussd-step-redis-") as redis_server,
        running(start_postgres, "ussd-step-pg-") as pg_server,
    ):
        cluster = {
            "redis": f"redis://127.0.0.1:{redis_server.port}/0",
            "postgres": create_database(pg_server, "step"),
        }
        runs: list[tuple[str, dict[str, str] | None]] = [
            ("embedded", None),
            ("cluster worker", cluster),
        ]
        if "--cluster" in sys.argv:
            runs = runs[1:]
        elif "--embedded" in sys.argv:
            runs = runs[:1]
        for name, where in runs:
            costs = asyncio.run(_measure(where, steps, ROUNDS))
            rounds = ", ".join(f"{c * 1e6:.1f}" for c in costs)
            print(f"{name}: best {min(costs) * 1e6:.1f} µs per step (rounds: {rounds})")


if __name__ == "__main__":
    main()
