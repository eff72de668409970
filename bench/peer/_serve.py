"""Listening and the command line shared by the Python peers (null and bare SMSC)."""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Callable


async def start(factory: Callable[[], asyncio.Protocol], host: str, port: int) -> asyncio.Server:
    """Listen with `factory` per connection; the caller closes the returned server."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(factory, host, port, reuse_address=True)


async def _serve(factory: Callable[[], asyncio.Protocol], host: str, port: int) -> None:
    server = await start(factory, host, port)
    sockname = server.sockets[0].getsockname()
    print(f"listening {sockname[0]}:{sockname[1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    server.close()


def main(factory: Callable[[], asyncio.Protocol], prog: str, description: str | None) -> None:
    """`python -m bench.peer.X [--host H] [--port P]`: serve until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    asyncio.run(_serve(factory, args.host, args.port))
