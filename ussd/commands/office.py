"""`ussd-sim office link ACCOUNT NUMBER`: an operator links a number in an office (docs/account.md).

With --url the request goes to a running gateway's admin API (so its timer sends the
activation SMS when the link comes into force); without it, straight into the configured store.
"""

from __future__ import annotations

import argparse
from typing import Any

from ussd.accounts import link_json
from ussd.commands import _admin
from ussd.commands._common import Subcommands, add_common, load_config


def register(sub: Subcommands) -> None:
    parser = sub.add_parser(
        "office",
        help="office operations: link a number to an account",
        description="What an operator does in a sales office (docs/account.md).",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    link = actions.add_parser(
        "link",
        help="link NUMBER to ACCOUNT; active after links.office_delay (2 days)",
        description="Link NUMBER to the personal account of ACCOUNT through the office flow. "
        "NUMBER must have number management on (*111*828*1#). The link comes into force "
        "links.office_delay later by the gateway's clock; both numbers get an SMS then.",
    )
    link.add_argument("account", metavar="ACCOUNT", help="the account holder's number")
    link.add_argument("number", metavar="NUMBER", help="the number to link")
    add_common(link, url=True)
    _admin.add_admin(link)
    link.set_defaults(handler=run)


def describe(link: dict[str, Any]) -> str:
    """One readable line for a link."""
    return (
        f"{link['number']} → account {link['account']} ({link['flow']}): {link['state']}, "
        f"active at {link['active_at']}"
    )


def run(args: argparse.Namespace) -> int:
    config = load_config(args)

    def action() -> int:
        if args.url:
            body = {"account": args.account, "number": args.number}
            link = _admin.call(args, config, "POST", "/api/v1/office/links", body)
        else:
            with _admin.local_gateway(config) as gateway:
                made = gateway.accounts.office_link(args.account, args.number)
                link = link_json(made, gateway.clock.now())
        _admin.emit(args, link, describe(link))
        return 0

    return _admin.run_guarded(action)
