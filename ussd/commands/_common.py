"""Options shared by subcommands: --config, --log-format, --url."""

from __future__ import annotations

import argparse
from typing import TypeAlias

from ussd import config as config_mod
from ussd.msisdn import InvalidMsisdn, normalise

# What ArgumentParser.add_subparsers() returns: each command module's register() adds its
# parser to it (ussd/cli.py). A string, as argparse's class is not subscriptable at run time.
Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def add_common(parser: argparse.ArgumentParser, *, url: bool = False) -> None:
    """Add --config, --log-format, --log-level (and --url for commands that reach a gateway)."""
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="configuration file (default: $USSD_SIM_CONFIG or ./config.yaml)",
    )
    parser.add_argument(
        "--log-format", choices=("console", "json"), default="console", help="log output format"
    )
    parser.add_argument(
        "--log-level", default="warning", choices=("debug", "info", "warning", "error")
    )
    if url:
        parser.add_argument(
            "--url",
            metavar="URL",
            help="a running gateway's HTTP address, e.g. http://127.0.0.1:8080",
        )


def load_config(args: argparse.Namespace) -> config_mod.Config:
    """The validated config named by --config (ConfigError propagates to exit code 2)."""
    return config_mod.load(args.config)


def msisdn_arg(text: str) -> str:
    """An argparse `type` for a subscriber number: a usage error (exit 2) before anything starts.

    The number is returned as typed: the gateway normalises it with its own country code and
    trunk prefix, which do not change whether a number is valid (docs/phones.md).
    """
    try:
        normalise(text)
    except InvalidMsisdn:
        raise argparse.ArgumentTypeError(
            f"not a phone number: {text[:40]!r} (5 to 15 digits, optionally after '+', "
            "e.g. 79161234567)"
        ) from None
    return text
