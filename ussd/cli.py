"""The `ussd-sim` command line (README.md). Subcommands live in ussd/commands/, one module each."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import time
from collections.abc import Sequence

from ussd import __version__, commands, log
from ussd.config import ConfigError

EXIT_CONFIG = 2
# Taken before the subcommands (aiohttp, the SMPP stack …) are imported, so `serve` can report
# start-to-ready honestly (docs/performance.md).
STARTED = time.perf_counter()


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand found in ussd.commands."""
    parser = argparse.ArgumentParser(
        prog="ussd-sim",
        description="USSD gateway simulator: dial-string parser, session engine, SMPP 3.4 "
        "server, simulated handsets and scenario runner.",
    )
    parser.add_argument("--version", action="version", version=f"ussd-sim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"ussd.commands.{info.name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse arguments, configure logging, run the subcommand."""
    parser = build_parser()
    # The subcommands sit below this module and never import it: what they need from here
    # (when the process started) comes in the namespace.
    parser.set_defaults(started=STARTED)
    args = parser.parse_args(argv)
    log.configure(getattr(args, "log_format", "console"), getattr(args, "log_level", "info"))
    try:
        result: int = args.handler(args)
    except ConfigError as exc:
        print(f"ussd-sim: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130
    return result


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
