"""`ussd-sim phone MSISDN [--url URL] [--record FILE]`: the terminal phone (docs/phones.md)."""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path
from typing import TYPE_CHECKING

from sim.client import DEFAULT_URL, PhonesClient
from ussd.commands._common import Subcommands, add_common, msisdn_arg

if TYPE_CHECKING:  # prompt_toolkit is imported when the phone runs: every command's start
    from prompt_toolkit.history import History  # builds this parser (`serve` included)

HISTORY_ENV = "USSD_SIM_HISTORY"


def register(sub: Subcommands) -> None:
    parser = sub.add_parser(
        "phone",
        help="a terminal handset on a running gateway",
        description="Type codes and replies as on a handset; screens and SMS arrive live "
        "from the gateway at --url. Commands: :help, :sms, :release, :dial CODE, :quit. "
        "--record FILE saves the session as a scenario file.",
    )
    parser.add_argument(
        "msisdn",
        metavar="MSISDN",
        type=msisdn_arg,
        help="the handset's number, e.g. 79161234567",
    )
    add_common(parser, url=True)
    parser.add_argument(
        "--history",
        metavar="PATH",
        help=f"input history file (default: ${HISTORY_ENV} or ~/.ussd_sim_history; "
        "'-' keeps history in memory only)",
    )
    parser.add_argument(
        "--record",
        metavar="FILE",
        type=Path,
        help="record the session and save it as a scenario file on exit (replay with "
        "`ussd-sim run FILE`)",
    )
    parser.set_defaults(handler=run)


def _history(path: str | None) -> History:
    from prompt_toolkit.history import FileHistory, InMemoryHistory

    path = path or os.environ.get(HISTORY_ENV) or str(Path.home() / ".ussd_sim_history")
    if path == "-":
        return InMemoryHistory()
    try:
        Path(path).touch()
    except OSError:
        return InMemoryHistory()  # a read-only home must not stop the phone
    return FileHistory(path)


async def _main(args: argparse.Namespace) -> int:
    from sim.phone import TerminalPhone

    async with PhonesClient(args.url or DEFAULT_URL, via="terminal") as client:
        phone = TerminalPhone(
            client, args.msisdn, history=_history(args.history), record=args.record
        )
        return await phone.run()


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_main(args))
