"""`ussd-sim clock show | advance DURATION`: a running gateway's clock (docs/account.md).

Only a gateway with `clock.mode: simulated` can be advanced; every deadline on the way (dialog
timers, SMS validity, office links) runs at its own time. --url defaults to http.listen.
"""

from __future__ import annotations

import argparse
from typing import Any

from ussd import durations
from ussd.commands import _admin
from ussd.commands._common import Subcommands, add_common, load_config
from ussd.config import ConfigError, parse_duration


def register(sub: Subcommands) -> None:
    parser = sub.add_parser(
        "clock",
        help="show or advance a running gateway's clock",
        description="Show or advance the clock of a running gateway (admin API). --url "
        "defaults to the configured http.listen.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    show = actions.add_parser("show", help="print the gateway's time and clock mode")
    advance = actions.add_parser(
        "advance",
        help="move a simulated clock forward",
        description="Move a simulated clock forward by DURATION: 30s, 5m, 1.5h, 2d, 1d12h "
        f"(at most {durations.to_text(durations.MAX_SECONDS)}).",
    )
    advance.add_argument(
        "duration", metavar="DURATION", type=_duration, help="e.g. 2d, 1d12h, 90m, 30s"
    )
    for parser_ in (show, advance):
        add_common(parser_, url=True)
        _admin.add_admin(parser_)
        parser_.set_defaults(handler=run)


def _duration(text: str) -> str:
    """Check DURATION at parse time (a usage error, exit 2); the gateway gets the text.

    The gateway parses it again with the same grammar and bounds (ussd.durations).
    """
    try:
        parse_duration(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(exc.message) from exc
    return text


def describe(clock: dict[str, Any]) -> str:
    return f"{clock['now']} ({clock['mode']} clock, epoch {clock['epoch']})"


def run(args: argparse.Namespace) -> int:
    config = load_config(args)

    def action() -> int:
        if args.action == "advance":
            body = {"by": args.duration}
            clock = _admin.call(args, config, "POST", "/api/v1/clock/advance", body)
        else:
            clock = _admin.call(args, config, "GET", "/api/v1/clock")
        _admin.emit(args, clock, describe(clock))
        return 0

    return _admin.run_guarded(action)
