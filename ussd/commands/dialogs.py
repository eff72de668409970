"""`ussd-sim dialogs`: dialog records with their end causes (docs/operations.md).

From a running gateway's admin API with --url, else from the configured store in-process (what
a running gateway wrote there, up to the last fraction of a second). The filters are those of
`GET /api/v1/dialogs`; the table lists the newest LIMIT records, oldest first, so the latest is
at the bottom; --json prints the API's answer, --csv its CSV.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any
from urllib.parse import urlencode

from ussd import records
from ussd.commands import _admin
from ussd.commands._common import Subcommands, add_common, load_config

FILTERS = ("msisdn", "code", "cause", "via", "since", "until", "after", "before", "limit")


def register(sub: Subcommands) -> None:
    parser = sub.add_parser(
        "dialogs",
        help="list dialog records and their end causes",
        description="Dialog records (one per ended dialog) with their end causes, newest "
        "LIMIT of them, from a running gateway (--url) or the configured store. End causes: "
        + ", ".join(c.value for c in records.Cause)
        + ".",
    )
    parser.add_argument("--msisdn", metavar="MSISDN", help="one subscriber's dialogs")
    parser.add_argument("--code", metavar="CODE", help="a service code, e.g. '*111#' or 111")
    parser.add_argument("--cause", metavar="CAUSE[,CAUSE]", help="end causes, comma-separated")
    parser.add_argument(
        "--via", metavar="VIA[,VIA]", help=f"transports, comma-separated: {', '.join(records.VIAS)}"
    )
    parser.add_argument(
        "--since", metavar="TIME", help="ended at or after: ISO-8601, epoch, or 10m (ago)"
    )
    parser.add_argument("--until", metavar="TIME", help="ended before (as --since)")
    parser.add_argument("--after", metavar="ID", help="records with a greater id")
    parser.add_argument("--before", metavar="ID", help="records with a smaller id")
    parser.add_argument(
        "--limit", metavar="N", default="50", help="at most N records (default 50, up to 10000)"
    )
    parser.add_argument("--csv", action="store_true", help="print CSV (a header, then rows)")
    add_common(parser, url=True)
    _admin.add_admin(parser)
    parser.set_defaults(handler=run)


def table(rows: list[dict[str, Any]]) -> str:
    """The records as an aligned table, oldest first."""
    if not rows:
        return "no dialog records"
    head = ("ID", "ENDED (UTC)", "MSISDN", "CODE", "ROUTE", "VIA", "STEPS", "SECONDS", "CAUSE")
    lines = [head]
    for r in reversed(rows):
        ended = r["ended"].replace("T", " ").rstrip("Z")
        lines.append(
            (
                str(r["id"]),
                ended,
                r["msisdn"],
                r["code"],
                r["route"] or "-",
                r["via"],
                str(r["steps"]),
                f"{r['duration']:.1f}",
                r["cause"] + (f" ({r['detail']})" if r["detail"] else ""),
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(head) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=False)) + "  " + line[-1]
        for line in lines
    )


def run(args: argparse.Namespace) -> int:
    config = load_config(args)
    params = {name: getattr(args, name) for name in FILTERS if getattr(args, name) is not None}

    def action() -> int:
        if args.url:
            data = _admin.call(args, config, "GET", "/api/v1/dialogs?" + urlencode(params))
            rows: list[dict[str, Any]] = data["dialogs"]
        else:
            with _admin.local_gateway(config) as gateway:
                now = gateway.clock.now()
                try:
                    query = records.parse_query(params, now, gateway.engine.normalise)
                except records.BadQuery as exc:
                    print(f"ussd-sim: {exc}", file=sys.stderr)
                    return 2
                rows = [row.to_json() for row in gateway.records.query(query)]
        if args.csv:
            sys.stdout.write(records.to_csv(rows))
        else:
            _admin.emit(args, {"dialogs": rows}, table(rows))
        return 0

    return _admin.run_guarded(action)
