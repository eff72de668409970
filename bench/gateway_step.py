"""The whole gateway's cost per USSD `*100#` step without sockets (docs/performance.md).

Run: .venv/bin/python -m bench.gateway_step [STEPS]   (prints figures; asserts nothing)

One `SmppServer` with its `Smsc` and engine on a SQLite file, one transceiver bind fed bytes
by hand: each read carries four `submit_sm` (`*100#`, ussd_service_op 1) and every screen's
`deliver_sm` is answered with a `deliver_sm_resp`, so every PDU goes through framing, the
bind-state machine, the SMS centre, the engine, the event fan-out and the dialog records, as
over TCP — only the socket calls are missing. Prints process time per step (best of several
rounds, and every round: on a shared machine only the best means much). For a figure that
does not move with the machine's load, count instructions with valgrind at two sizes and take
the difference:

    valgrind --tool=cachegrind --cache-sim=no .venv/bin/python -m bench.gateway_step 1000
    valgrind --tool=cachegrind --cache-sim=no .venv/bin/python -m bench.gateway_step 3000
    # (I refs at 3000 - I refs at 1000) / (ROUNDS × 2,000) = instructions per step
"""

from __future__ import annotations

import asyncio
import gc
import os
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from ussd import config as config_mod
from ussd import log
from ussd.clock import SimulatedClock
from ussd.runtime import Gateway
from ussd.smpp.constants import CommandId, UssdServiceOp
from ussd.smpp.pdu import (
    BindTransceiver,
    DeliverSmResp,
    ItsSessionInfo,
    SubmitSm,
    encode_pdu,
    ussd_tlvs,
)
from ussd.smpp.server import SmppServer

ROOT = Path(__file__).resolve().parent.parent
SUBSCRIBERS = 2_000
PER_READ = 4  # submit_sm per read
ROUNDS = 5
_HEADER = struct.Struct("!IIII")
_DELIVER_SM = int(CommandId.DELIVER_SM)
_SUBMIT_SM_RESP = int(CommandId.SUBMIT_SM_RESP)


class _Transport(asyncio.Transport):
    """Collects what the server writes."""

    def __init__(self) -> None:
        super().__init__()
        self.out: list[bytes] = []

    def write(self, data: Any) -> None:
        self.out.append(bytes(data))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def close(self) -> None:
        pass

    def is_closing(self) -> bool:
        return False


def _answers(out: list[bytes], refused: list[int] | None = None) -> bytes:
    """A deliver_sm_resp for every deliver_sm (a screen) in what the server wrote; counts
    the submit_sm refused in refused[0] when given."""
    answers = []
    for chunk in out:
        pos = 0
        while pos < len(chunk):
            length, command_id, status, sequence = _HEADER.unpack_from(chunk, pos)
            if command_id == _DELIVER_SM:
                answers.append(encode_pdu(DeliverSmResp(sequence_number=sequence)))
            elif refused is not None and command_id == _SUBMIT_SM_RESP and status:
                refused[0] += 1
            pos += length
    return b"".join(answers)


def _harness_bind(server: SmppServer) -> tuple[Any, _Transport]:
    """A transceiver bind of the shipped `harness` account on `server`, without a socket:
    (the bind, which takes bytes in data_received(); the transport, whose `out` collects what
    the server writes)."""
    server._loop = asyncio.get_running_loop()  # timers as under start(), without a socket
    bind = server._new_bind()
    transport = _Transport()
    bind.connection_made(transport)
    bind.data_received(
        encode_pdu(BindTransceiver(sequence_number=1, system_id="harness", password="secret"))
    )
    transport.out.clear()
    return bind, transport


async def _measure(steps: int, rounds: int) -> list[float]:
    data = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory(prefix="ussd-step-") as tmp:
        data["storage"] = {"database": os.path.join(tmp, "step.sqlite3")}
        data["clock"] = {"mode": "simulated"}
        gw = Gateway.create(config_mod.from_mapping(data, source="bench"), clock=SimulatedClock())
        await gw.start()
        server = SmppServer(gw)
        bind, transport = _harness_bind(server)
        dials = [
            bytearray(
                encode_pdu(
                    SubmitSm(
                        sequence_number=1,
                        service_type="USSD",
                        source_addr_ton=1,
                        source_addr_npi=1,
                        source_addr=f"7991{i:07d}",
                        destination_addr="100",
                        short_message=b"*100#",
                        tlvs=ussd_tlvs(UssdServiceOp.PSSR_INDICATION, ItsSessionInfo(1, 0, False)),
                    )
                )
            )
            for i in range(SUBSCRIBERS)
        ]
        sequence = 1

        async def run(n: int) -> None:
            nonlocal sequence
            done = 0
            while done < n:
                read = []
                for _ in range(PER_READ):
                    sequence += 1
                    pdu = dials[done % SUBSCRIBERS]
                    pdu[12:16] = sequence.to_bytes(4, "big")
                    read.append(bytes(pdu))
                    done += 1
                bind.data_received(b"".join(read))
                answers = _answers(transport.out)
                transport.out.clear()
                if answers:
                    bind.data_received(answers)
                    transport.out.clear()
                await asyncio.sleep(0)  # the loop turns: the timer task, record flushes

        await run(SUBSCRIBERS)  # provisions every subscriber once, outside the rounds
        costs = []
        for _ in range(rounds):
            gc.collect()
            started = time.process_time()
            await run(steps)
            costs.append((time.process_time() - started) / steps)
        await server.stop()
        await gw.stop()
        gw.close()
    return costs


def main() -> None:
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 4_000
    log.configure("console", "error")
    costs = asyncio.run(_measure(steps, ROUNDS))
    rounds = ", ".join(f"{c * 1e6:.1f}" for c in costs)
    print(f"*100# per step, process time: best {min(costs) * 1e6:.1f} µs (rounds: {rounds})")


if __name__ == "__main__":
    main()
