"""`ussd-sim run FILE_OR_DIR...`: run scenario files (docs/scenarios.md)."""

from __future__ import annotations

import argparse
import sys

from ussd.commands._common import Subcommands, add_common


def register(sub: Subcommands) -> None:
    parser = sub.add_parser(
        "run",
        help="run scenario files (YAML journeys) and report, optionally as JUnit XML",
        description="Run every scenario in the given files and directories, each in a fresh "
        "in-process world (in-memory store, simulated clock) unless --target names a running "
        "gateway. Exit code 0 when all pass, 1 when any fails, 2 when a file does not load.",
    )
    parser.add_argument("paths", metavar="FILE_OR_DIR", nargs="+", help="scenario files or dirs")
    parser.add_argument("--junit", metavar="OUT.xml", help="write a JUnit XML report here")
    parser.add_argument(
        "-j", "--jobs", type=int, default=1, metavar="N", help="run N scenarios at a time"
    )
    parser.add_argument(
        "--target",
        action="append",
        default=[],
        metavar="URL",
        help="a running gateway: smpp://system_id:password@host:port (dial/reply/SMS) and/or "
        "http://host:port (accounts, clock, and everything when alone)",
    )
    parser.add_argument(
        "--admin-token",
        metavar="TOKEN",
        help="admin bearer token of the --target gateway (default: http.admin_token of --config)",
    )
    add_common(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from sim import runner
    from sim.scenario import base_config_data

    if args.jobs < 1:
        print("ussd-sim: -j needs a number ≥ 1", file=sys.stderr)
        return 2
    base = base_config_data(args.config)  # ConfigError → exit 2 via ussd.cli
    options = runner.Options(
        jobs=args.jobs, targets=tuple(args.target), admin_token=args.admin_token, base=base
    )
    try:
        from sim.targets import make_target

        make_target(options.targets, "")  # check the URLs before anything runs
    except ValueError as exc:
        print(f"ussd-sim: {exc}", file=sys.stderr)
        return 2
    return runner.run(args.paths, options, sys.stdout, junit=args.junit)
