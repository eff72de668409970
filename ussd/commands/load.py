"""`ussd-sim load`: drive a gateway over SMPP, a scenario as the journey (docs/performance.md)."""

from __future__ import annotations

import argparse
import json
import sys

from ussd import config as config_mod
from ussd.commands._common import Subcommands, add_common
from ussd.msisdn import InvalidMsisdn, normalise

EXIT_USAGE = 2


def register(sub: Subcommands) -> None:
    parser = sub.add_parser(
        "load",
        help="load a gateway over SMPP: steps/s, latency percentiles, errors by kind",
        description="Bind K transceivers to --target and run the dial/reply/release steps of "
        "--scenario over M distinct MSISDNs, either at a fixed offered --rate (open model: "
        "latency counts from each step's scheduled time) or with --concurrency virtual users "
        "(closed model). Reports steps/s, journeys/s, p50/p90/p99/max per step and errors by "
        "kind. Exit code 0 without errors, 1 with errors or when the target refuses the bind, "
        "2 for bad arguments.",
    )
    parser.add_argument(
        "--target",
        required=True,
        metavar="URL",
        help="the SMSC to load: smpp://system_id:password@host:port",
    )
    parser.add_argument(
        "--scenario",
        metavar="FILE",
        help="scenario file whose first scenario's dial/reply/release steps are the journey "
        "(`expect: {continue|end}` is checked; text checks are not evaluated under load); "
        "required in --mode ussd",
    )
    parser.add_argument(
        "--mode",
        choices=("ussd", "submit", "submit-ussd"),
        default="ussd",
        help="ussd: the scenario's USSD dialog, a step ends on its screen (default); "
        "submit: plain MO submit_sm to another subscriber, timed to submit_sm_resp; "
        "submit-ussd: a USSD op 1 submit_sm (--dial), timed to submit_sm_resp",
    )
    parser.add_argument("--dial", default="*100#", help="dial string of --mode submit-ussd")
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument(
        "--rate",
        type=float,
        metavar="N",
        help="open model: N steps/s offered (journeys start at N / steps-per-journey per s)",
    )
    model.add_argument("--concurrency", type=int, metavar="N", help="closed model: N virtual users")
    parser.add_argument(
        "--duration", default="10s", metavar="DURATION", help="measured time (default 10s)"
    )
    parser.add_argument(
        "--warmup", default="0s", metavar="DURATION", help="unmeasured time first (default 0s)"
    )
    parser.add_argument(
        "--binds", type=int, default=1, metavar="K", help="transceiver binds (default 1)"
    )
    parser.add_argument(
        "--subscribers",
        type=int,
        default=10_000,
        metavar="M",
        help="distinct MSISDNs, never two journeys on one at once (default 10000)",
    )
    parser.add_argument(
        "--prefix",
        default="7990",
        help="MSISDN prefix (default 7990: 7990xxxxxxx, 11 digits with the index). A gateway "
        "that auto-provisions creates each number it does not know and keeps it: the run "
        "names its first and last number before it starts",
    )
    parser.add_argument(
        "--timeout", default="10s", metavar="DURATION", help="per-step timeout (default 10s)"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--progress",
        action="store_true",
        help="live progress line on stderr even when it is not a terminal",
    )
    add_common(parser)
    parser.set_defaults(handler=run)


def _usage(message: str) -> int:
    print(f"ussd-sim load: {message}", file=sys.stderr)
    return EXIT_USAGE


def run(args: argparse.Namespace) -> int:
    from sim import load
    from sim.scenario import ScenarioError, base_config_data, duration

    try:
        target = load.SmppAddress.parse(args.target)
    except ValueError as exc:
        return _usage(str(exc))
    try:
        seconds = {k: duration(getattr(args, k)) for k in ("duration", "warmup", "timeout")}
    except Exception as exc:
        return _usage(f"bad duration: {exc}")
    name = ""
    if args.mode == "ussd":
        if not args.scenario:
            return _usage("--mode ussd needs --scenario FILE")
        from sim import scenario as scenario_mod

        try:
            scenarios = scenario_mod.load(args.scenario, base_config_data(args.config))
            journey = load.journey_from_scenario(scenarios[0])
        except (ScenarioError, ValueError) as exc:
            return _usage(str(exc))
        name = f"{scenarios[0].file}: {scenarios[0].label}"
    else:
        journey = load.submit_journey(args.mode, args.dial)
        name = "MO submit_sm" if args.mode == "submit" else f"USSD submit_sm {args.dial}"
    try:
        options = load.LoadOptions(
            target=target,
            journey=journey,
            mode=args.mode,
            rate=args.rate,
            concurrency=args.concurrency,
            duration=seconds["duration"],
            warmup=seconds["warmup"],
            binds=args.binds,
            subscribers=args.subscribers,
            prefix=args.prefix,
            timeout=seconds["timeout"],
            journey_name=name,
        )
    except ValueError as exc:
        return _usage(str(exc))
    numbers = options.msisdns()
    first, last = numbers[0], numbers[-1]
    problem = _rewritten(first, last, args.config)
    if problem:
        return _usage(f"--prefix {args.prefix}: {problem}")
    # Said before the run: against a persistent gateway these numbers may become subscribers.
    print(
        f"ussd-sim load: MSISDNs {_span(first, last)} ({len(numbers):,}, --prefix "
        f"{args.prefix}); a gateway with subscribers.auto_provision creates those it does "
        "not know and keeps them",
        file=sys.stderr,
        flush=True,
    )
    try:
        report = load.run(options, load.progress_stream(args.progress))
    except load.LoadError as exc:
        print(f"ussd-sim load: {exc}", file=sys.stderr)
        return 1
    used = {"prefix": args.prefix, "first": first, "last": last, "count": len(numbers)}
    if args.json:
        print(json.dumps({**report.to_dict(), "msisdns": used}, ensure_ascii=False))
    else:
        print(report.format())
        print(f"  MSISDNs: {_span(first, last)} (--prefix {args.prefix})")
    return 1 if report.error_count else 0


def _span(first: str, last: str) -> str:
    return first if first == last else f"{first}–{last}"


def _rewritten(first: str, last: str, config_path: str | None) -> str | None:
    """Why the gateway would not see these numbers as typed, or None.

    The gateway normalises every source_addr (docs/smpp.md): a number with the trunk prefix,
    or not a phone number at all, would be a different subscriber or a refused bind, and the
    screens would come back to a number the load generator never sent from. The operator's
    country code and trunk prefix come from --config (the default ./config.yaml) when it
    loads, else the shipped defaults.
    """
    try:
        operator = config_mod.load(config_path).operator
        country, trunk = operator.country_code, operator.trunk_prefix
    except (config_mod.ConfigError, OSError):
        country, trunk = "7", "8"
    for number in (first, last):
        try:
            seen = normalise(number, country, trunk)
        except InvalidMsisdn:
            return f"{number} is not a phone number (5 to 15 digits)"
        if seen != number:
            return (
                f"the gateway would read {number} as {seen} (operator.country_code "
                f"{country}, trunk_prefix {trunk}); start the prefix with the country code"
            )
    return None
