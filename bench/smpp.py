"""USSD over SMPP end to end (SPEC §11): dialog steps/s and latency at a fixed offered rate.

Run: .venv/bin/python -m bench.smpp   (prints figures; asserts nothing)

The gateway and its SMPP server run in a subprocess (`--serve`), so the server and this load
generator each have a core of their own. The generator binds several transceivers, speaks our
codec with pre-encoded submit_sm templates, and answers every deliver_sm at once. A *step* is
one submit_sm → screen deliver_sm round trip. Journeys: `*100#` (one end screen) and
`*111#` → `3` → `3` (menu, sub-menu, end screen), over many distinct MSISDNs.

(a) closed loop: every virtual subscriber sends its next step as soon as its screen arrives.
(b) open model: steps are sent on a fixed schedule (2,000/s by default) to idle subscribers,
    whatever the answers do; latency is send → screen, so a slow server shows up as latency.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_HEADER = struct.Struct("!IIII")
_DELIVER_SM = 0x00000005
_SUBMIT_SM_RESP = 0x80000004
_BIND_TRX_RESP = 0x80000009

JOURNEYS: tuple[tuple[str, ...], ...] = (("*100#",), ("*111#", "3", "3"))


# -- the server side (subprocess) -------------------------------------------------------------


async def serve(profile: str | None) -> None:
    """Gateway + SMPP server on 127.0.0.1:0 (in-memory store, real clock); print the port."""
    import faulthandler

    import yaml

    from ussd import config as config_mod
    from ussd import log
    from ussd.runtime import Gateway
    from ussd.smpp.server import SmppServer

    faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1` shows the stacks
    # Per-dialog info lines would cost more than the dialogs: figures, not logs, here.
    log.configure("console", "warning")
    data = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    data["storage"] = {"database": ":memory:"}
    data["clock"] = {"mode": "real"}
    config = config_mod.from_mapping(data, source="bench")
    gateway = Gateway.create(config)
    await gateway.start()
    server = SmppServer(gateway)
    _, port = await server.start("127.0.0.1", 0)
    print(port, flush=True)
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()
    if profiler is not None and profile:
        profiler.disable()
        profiler.dump_stats(profile)
    await server.stop()
    # Bounded: Gateway's timer task can miss its cancellation on Python 3.11 (asyncio.wait_for
    # returns the inner result when it completes together with the cancel).
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(gateway.stop(), 2)


# -- the load generator -----------------------------------------------------------------------


def _submit_template(msisdn: str, text: str, op: int) -> bytearray:
    from ussd.smpp.pdu import SubmitSm, encode_pdu, encode_text, ussd_tlvs

    data, coding = encode_text(text)
    pdu = SubmitSm(
        sequence_number=1,
        service_type="USSD",
        source_addr_ton=1,
        source_addr_npi=1,
        source_addr=msisdn,
        destination_addr="111",
        data_coding=coding,
        short_message=data,
        tlvs=ussd_tlvs(op),
    )
    return bytearray(encode_pdu(pdu))


class User:
    """One virtual subscriber: its journey, where it is, and its pre-encoded submits."""

    __slots__ = ("busy", "journey", "msisdn", "sent_at", "step", "templates")

    def __init__(self, msisdn: str, journey: tuple[str, ...]) -> None:
        self.msisdn = msisdn
        self.journey = journey
        self.step = 0
        self.busy = False
        self.sent_at = 0.0
        self.templates = [
            _submit_template(msisdn, text, 1 if i == 0 else 18) for i, text in enumerate(journey)
        ]


class Bind(asyncio.Protocol):
    """A transceiver bind of the load generator: frames PDUs, acks deliver_sm, times steps."""

    def __init__(self, on_screen: Callable[[User, float], None]) -> None:
        self.on_screen = on_screen
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.users: dict[bytes, User] = {}
        self.seq = 1
        self.in_flight: dict[int, User] = {}  # submit seq -> user, until its submit_sm_resp
        self.bound: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.errors = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def send_step(self, user: User) -> None:
        tpl = user.templates[user.step]
        self.seq += 1
        struct.pack_into("!I", tpl, 12, self.seq)
        self.in_flight[self.seq] = user
        user.busy = True
        user.sent_at = time.perf_counter()
        assert self.transport is not None
        self.transport.write(bytes(tpl))

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        pos = 0
        out: list[bytes] = []
        now = time.perf_counter()
        n = len(buf)
        while n - pos >= 16:
            length, cid, status, seq = _HEADER.unpack_from(buf, pos)
            if n - pos < length:
                break
            if cid == _DELIVER_SM:
                # destination_addr: after service_type, source TON/NPI, source_addr, dest TON/NPI.
                p = buf.index(0, pos + 16) + 3
                p = buf.index(0, p) + 3
                end = buf.index(0, p)
                user = self.users.get(bytes(buf[p:end]))
                out.append(_HEADER.pack(17, 0x80000005, 0, seq) + b"\x00")
                if user is not None and user.busy:
                    self.on_screen(user, now)
            elif cid == _SUBMIT_SM_RESP:
                refused = self.in_flight.pop(seq, None)
                if status:
                    # Refused (e.g. ESME_RMSGQFUL when screens pile up): the user starts over.
                    self.errors += 1
                    if refused is not None:
                        refused.busy = False
                        refused.step = 0
            elif cid == _BIND_TRX_RESP:
                if not self.bound.done():
                    self.bound.set_result(None)
            elif cid == 0x00000015:  # enquire_link
                out.append(_HEADER.pack(16, 0x80000015, 0, seq))
            pos += length
        del buf[:pos]
        if out and self.transport is not None:
            self.transport.write(b"".join(out))


async def connect_binds(
    port: int, n_binds: int, on_screen: Callable[[User, float], None]
) -> list[Bind]:
    from ussd.smpp.pdu import BindTransceiver, encode_pdu

    loop = asyncio.get_running_loop()
    binds = []
    for _ in range(n_binds):
        _, bind = await loop.create_connection(lambda: Bind(on_screen), "127.0.0.1", port)
        assert bind.transport is not None
        bind.transport.write(
            encode_pdu(BindTransceiver(sequence_number=1, system_id="harness", password="secret"))
        )
        await asyncio.wait_for(bind.bound, 5)
        binds.append(bind)
    return binds


def make_users(binds: list[Bind], per_bind: int, prefix: str) -> list[tuple[Bind, User]]:
    users = []
    for b, bind in enumerate(binds):
        for i in range(per_bind):
            msisdn = f"{prefix}{b:02d}{i:05d}"
            user = User(msisdn, JOURNEYS[i % len(JOURNEYS)])
            bind.users[msisdn.encode()] = user
            users.append((bind, user))
    return users


async def closed_loop(port: int, n_binds: int, per_bind: int, seconds: float) -> tuple[float, int]:
    """(steps/s, errors): every user sends its next step as soon as its screen arrives."""
    counting = False
    steps = 0
    owner: dict[User, Bind] = {}

    def on_screen(user: User, now: float) -> None:
        nonlocal steps
        user.busy = False
        if counting:
            steps += 1
        user.step = (user.step + 1) % len(user.journey)
        owner[user].send_step(user)

    binds = await connect_binds(port, n_binds, on_screen)
    for bind, user in make_users(binds, per_bind, "7950"):
        owner[user] = bind
    for user, bind in owner.items():
        bind.send_step(user)
    await asyncio.sleep(1.0)  # warm-up: subscribers provisioned, caches hot
    counting = True
    start = time.perf_counter()
    await asyncio.sleep(seconds)
    counting = False
    elapsed = time.perf_counter() - start
    for user in owner:  # stop sending: screens still on the way are simply dropped
        user.journey = ("",)
    for bind in binds:
        bind.on_screen = lambda user, now: None
    errors = sum(b.errors for b in binds)
    for bind in binds:
        assert bind.transport is not None
        bind.transport.close()
    return steps / elapsed, errors


async def open_model(
    port: int, n_binds: int, per_bind: int, rate: float, seconds: float
) -> tuple[list[float], int, int]:
    """(latencies in s, steps offered, steps skipped for lack of an idle user)."""
    latencies: list[float] = []
    recording = False

    def on_screen(user: User, now: float) -> None:
        if recording:
            latencies.append(now - user.sent_at)
        user.busy = False
        user.step = (user.step + 1) % len(user.journey)

    binds = await connect_binds(port, n_binds, on_screen)
    pairs = make_users(binds, per_bind, "7960")
    # Warm-up: one closed pass so every subscriber exists before the clock starts.
    for wave in range(0, len(pairs), 100):
        for bind, user in pairs[wave : wave + 100]:
            bind.send_step(user)
        deadline = time.perf_counter() + 5
        while any(u.busy for _, u in pairs) and time.perf_counter() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    for _, user in pairs:
        user.step = 0
    recording = True
    offered = skipped = 0
    cursor = 0
    total = int(rate * seconds)
    start = time.perf_counter()
    while offered < total:
        due = min(total, int((time.perf_counter() - start) * rate) + 1)
        while offered < due:
            offered += 1
            for _ in range(len(pairs)):
                bind, user = pairs[cursor]
                cursor = (cursor + 1) % len(pairs)
                if not user.busy:
                    bind.send_step(user)
                    break
            else:
                skipped += 1
        next_at = start + offered / rate
        await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
    await asyncio.sleep(0.5)  # let the last answers in
    recording = False
    for bind in binds:
        assert bind.transport is not None
        bind.transport.close()
    return latencies, offered, skipped


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def run(args: argparse.Namespace) -> None:
    cmd = [sys.executable, "-m", "bench.smpp", "--serve"]
    if args.profile:
        cmd += ["--profile", args.profile]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)  # noqa: ASYNC220
    try:
        assert proc.stdout is not None
        port = int(await asyncio.to_thread(proc.stdout.readline))
        cores = os.cpu_count()
        rate, errors = await closed_loop(port, args.binds, args.users, args.seconds)
        print(
            f"smpp: USSD steps/s, closed loop       {rate:>12,.0f}  "
            f"({args.binds} transceivers x {args.users} subscribers; {errors} error statuses; "
            f"{cores} cores, server in its own process)"
        )
        lat, offered, skipped = await open_model(
            port, args.binds, args.pool, args.rate, args.seconds
        )
        print(
            f"smpp: latency at {args.rate:,.0f} steps/s offered  "
            f"p50 {percentile(lat, 50) * 1000:.2f} ms  p99 {percentile(lat, 99) * 1000:.2f} ms  "
            f"max {max(lat, default=float('nan')) * 1000:.1f} ms  "
            f"({len(lat):,} of {offered:,} steps answered; {skipped} without an idle subscriber; "
            f"{cores} cores)"
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(proc.wait, 10)
        except subprocess.TimeoutExpired:
            proc.kill()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.smpp", description=__doc__)
    parser.add_argument("--serve", action="store_true", help="run the server side only")
    parser.add_argument("--profile", help="cProfile the server into this file")
    parser.add_argument("--binds", type=int, default=4)
    parser.add_argument(
        "--users", type=int, default=50, help="subscribers per bind in the closed loop"
    )
    parser.add_argument(
        "--pool", type=int, default=1000, help="subscribers per bind in the open model"
    )
    parser.add_argument("--rate", type=float, default=2000.0, help="open-model steps/s")
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args(argv)
    if args.serve:
        asyncio.run(serve(args.profile))
    else:
        asyncio.run(run(args))


if __name__ == "__main__":
    main()
