"""Store-and-forward drain: N queued SMS go out on one bind, while `*100#` is dialled alongside.

Run: .venv/bin/python -m bench.drain [N]   (default 60,000; prints JSON; asserts nothing)

The gateway (file-backed store, real clock) starts with N SMS queued for numbers nobody
delivered to yet; then ONE transceiver binds, answers every deliver_sm at once, and the drain
begins (SMPP 3.4 §4.6: deliver_sm/deliver_sm_resp). Alongside, a second transceiver dials
`*100#` in a closed loop, so the figures are: SMS delivered per second (bind → last
deliver_sm_resp) and the `*100#` round trip (submit_sm → screen deliver_sm) during the drain,
against the same round trip once the queue is empty. Everything runs in one process on one
event loop, as `ussd-sim serve` does; the client side is a few lines per PDU.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_HEADER = struct.Struct("!IIII")
_DELIVER_SM = 0x00000005
_SUBMIT_SM_RESP = 0x80000004
_BIND_TRX_RESP = 0x80000009
PROBE_MSISDN = "79161234567"  # seeded in config.yaml
DRAIN_SMS = 60_000  # the figure the bench reports


class _Client(asyncio.Protocol):
    """A transceiver that acks every deliver_sm and tells USSD screens from plain SMS."""

    def __init__(self, on_sms: Callable[[], None], on_screen: Callable[[], None]) -> None:
        self.on_sms = on_sms
        self.on_screen = on_screen
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.bound: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.seq = 1

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def send(self, pdu: bytes) -> None:
        assert self.transport is not None
        self.transport.write(pdu)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        acks: list[bytes] = []
        while len(buf) >= 16:
            length, command_id, _status, seq = _HEADER.unpack_from(buf)
            if len(buf) < length:
                break
            body = bytes(buf[16:length])
            del buf[:length]
            if command_id == _DELIVER_SM:
                acks.append(_HEADER.pack(17, 0x80000005, 0, seq) + b"\0")
                if body.startswith(b"USSD\0"):
                    self.on_screen()
                else:
                    self.on_sms()
            elif command_id == _BIND_TRX_RESP and not self.bound.done():
                self.bound.set_result(None)
        if acks and self.transport is not None:
            self.transport.write(b"".join(acks))


def _bind_pdu(system_id: str) -> bytes:
    from ussd.smpp.pdu import BindTransceiver, encode_pdu

    return encode_pdu(BindTransceiver(sequence_number=1, system_id=system_id, password="secret"))


def _dial_pdu(seq: int) -> bytes:
    from ussd.smpp.pdu import SubmitSm, encode_pdu, encode_text, ussd_tlvs

    data, coding = encode_text("*100#")
    return encode_pdu(
        SubmitSm(
            sequence_number=seq,
            service_type="USSD",
            source_addr_ton=1,
            source_addr_npi=1,
            source_addr=PROBE_MSISDN,
            destination_addr="111",
            data_coding=coding,
            short_message=data,
            tlvs=ussd_tlvs(1),
        )
    )


async def drain(n: int, database: str) -> dict[str, float]:
    import yaml

    from ussd import config as config_mod
    from ussd import log
    from ussd.runtime import Gateway
    from ussd.smpp.server import SmppServer

    log.configure("console", "error")
    data = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    data["storage"] = {"database": database}
    data["clock"] = {"mode": "real"}
    data["smpp"]["accounts"] = [
        {"system_id": "harness", "password": "secret", "role": "harness"},
        # The prober's range covers none of the queued numbers: no SMS is routed to it.
        {"system_id": "prober", "password": "secret", "role": "harness", "sms_ranges": ["0"]},
    ]
    gateway = Gateway.create(config_mod.from_mapping(data, source="bench"))
    started = time.perf_counter()
    with gateway.store.transaction():
        for i in range(n):
            gateway.sms.queue(f"7926{i % 100_000:07d}", f"queued message {i}")
    queued_s = time.perf_counter() - started
    await gateway.start()
    server = SmppServer(gateway)
    host, port = await server.start("127.0.0.1", 0)
    loop = asyncio.get_running_loop()

    delivered = 0
    done = loop.create_future()

    def on_sms() -> None:
        nonlocal delivered
        delivered += 1
        if delivered == n and not done.done():
            done.set_result(time.perf_counter())

    screen: asyncio.Future[None] | None = None

    def on_screen() -> None:
        if screen is not None and not screen.done():
            screen.set_result(None)

    # The prober binds first (its account covers none of the queued numbers), then the
    # drain's bind starts the drain.
    _, prober = await loop.create_connection(lambda: _Client(lambda: None, on_screen), host, port)
    prober.send(_bind_pdu("prober"))
    await prober.bound

    async def probe(until: asyncio.Future[float] | None, count: int) -> list[float]:
        nonlocal screen
        latencies: list[float] = []
        seq = 1
        while (until is not None and not until.done()) or (
            until is None and len(latencies) < count
        ):
            seq += 1
            screen = loop.create_future()
            sent = time.perf_counter()
            prober.send(_dial_pdu(seq))
            await asyncio.wait_for(screen, 60)
            latencies.append(time.perf_counter() - sent)
            await asyncio.sleep(0.02)
        return latencies

    t0 = time.perf_counter()
    _, drainer = await loop.create_connection(lambda: _Client(on_sms, lambda: None), host, port)
    drainer.send(_bind_pdu("harness"))
    during = await probe(done, 0)
    t1 = await done
    after = await probe(None, 50)
    await server.stop()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(gateway.stop(), 2)
    elapsed = t1 - t0

    def ms(values: list[float], q: float) -> float:
        if not values:
            return float("nan")
        ordered = sorted(values)
        return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {
        "sms": n,
        "queue_seconds": round(queued_s, 2),
        "drain_seconds": round(elapsed, 2),
        "sms_per_second": round(n / elapsed, 1),
        "dial_during_median_ms": round(1000 * statistics.median(during), 2) if during else 0,
        "dial_during_p99_ms": round(ms(during, 0.99), 2),
        "dials_during": len(during),
        "dial_after_median_ms": round(1000 * statistics.median(after), 2),
    }


def run(n: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        return asyncio.run(drain(n, str(Path(tmp) / "drain.db")))


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    n = int(args[0]) if args else DRAIN_SMS
    print(json.dumps(run(n)))


if __name__ == "__main__":
    main()
