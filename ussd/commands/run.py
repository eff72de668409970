"""`ussd-sim run FILE_OR_DIR...`: run scenario files (docs/scenarios.md)."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping
from typing import Any

from ussd import config
from ussd.commands._common import Subcommands, add_common
from ussd.config import APP_DIALECTS

APP_NAME = "app"  # the one app of `run --app`: its route is `app:app`
SERVICE_CODE = re.compile(r"\*[0-9]+(?:\*[0-9]+)*#")  # *384#, *384*1234#


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
    app = parser.add_argument_group(
        "an external app (docs/apps.md)",
        "With --app, each scenario runs in-process against one app route, --code to URL, in "
        "the app's dialect; no config file is read unless --config names one (the route is "
        "added to it).",
    )
    app.add_argument("--app", metavar="URL", help="the app's URL, e.g. http://127.0.0.1:5000/ussd")
    app.add_argument(
        "--dialect",
        choices=APP_DIALECTS,
        default="africastalking",
        help="what the app speaks (default: africastalking)",
    )
    app.add_argument(
        "--code",
        default="*384#",
        help="the code routed to the app, and every direct-dial string under it (default: *384#)",
    )
    add_common(parser)
    parser.set_defaults(handler=run)


def app_base(
    url: str, dialect: str, code: str, start: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The configuration of a run against one app: `start` (else the defaults) and its route."""
    data: dict[str, Any] = dict(start or {})
    ussd = dict(data.get("ussd") or {})
    ussd["routes"] = {**(ussd.get("routes") or {}), code: f"app:{APP_NAME}"}
    data["ussd"] = ussd
    data["apps"] = {**(data.get("apps") or {}), APP_NAME: {"url": url, "dialect": dialect}}
    config.from_mapping(data, source="--app")  # a bad URL or code is a usage error, here
    return data


def run(args: argparse.Namespace) -> int:
    from sim import runner
    from sim.scenario import base_config_data

    if args.jobs < 1:
        print("ussd-sim: -j needs a number ≥ 1", file=sys.stderr)
        return 2
    if args.app is None:
        base = base_config_data(args.config)  # ConfigError → exit 2 via ussd.cli
    elif args.target:
        print("ussd-sim: --app runs in-process; it cannot be used with --target", file=sys.stderr)
        return 2
    elif not SERVICE_CODE.fullmatch(args.code):
        bad = f"--code {args.code!r}: expected a service code such as *384#"
        print(f"ussd-sim: {bad}", file=sys.stderr)
        return 2
    else:
        # With --config, that file's world (its operator profile, say) gains the app route.
        start = None if args.config is None else base_config_data(args.config)
        base = app_base(args.app, args.dialect, args.code, start)
        dead = runner.unreachable([args.app])  # one line, not one failure per scenario
        if dead is not None:
            print(f"✗ {dead}; nothing was run", file=sys.stderr)
            return 2
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
