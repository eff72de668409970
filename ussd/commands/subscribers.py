"""`ussd-sim subscribers list | add | set | charge` (docs/account.md).

In-process against the configured store, or a running gateway's admin API with --url. Fields
are those of the admin API (docs/account.md); `set` values are YAML scalars or flow mappings
(`balance=10.5`, `number_management=true`, `services={roaming: false}`), except `password`,
which is taken as typed. `charge` records one charge of simulated usage in the number's
ledger (spending control, docs/account.md "Мой МТС") and takes it from the balance.
"""

from __future__ import annotations

import argparse
from typing import Any

from ussd import subscribers, yamlload
from ussd.accounts import Invalid
from ussd.commands import _admin
from ussd.commands._common import Subcommands, add_common, load_config


def register(sub: Subcommands) -> None:
    parser = sub.add_parser(
        "subscribers",
        help="list, add or change subscribers",
        description="Subscribers in the configured store, or of a running gateway (--url).",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    list_ = actions.add_parser("list", help="print every subscriber")
    add = actions.add_parser("add", help="create a subscriber (fails if it exists)")
    add.add_argument("msisdn", metavar="MSISDN")
    add.add_argument("--balance", type=float)
    add.add_argument("--language", choices=("ru", "en"))
    add.add_argument("--minutes", type=int, help="package minutes")
    add.add_argument("--sms", type=int, help="package SMS")
    add.add_argument("--mb", type=int, help="package megabytes")
    add.add_argument("--bonus-points", type=int)
    add.add_argument("--password", help="personal-account password (4-10 letters/digits)")
    add.add_argument("--number-management", action="store_true", help="turn number management on")
    set_ = actions.add_parser(
        "set",
        help="change fields: key=value ...",
        description="Change fields of a subscriber, e.g. balance=10 package_mb=2048 "
        "number_management=true services='{roaming: false}'.",
    )
    set_.add_argument("msisdn", metavar="MSISDN")
    set_.add_argument("assignments", metavar="KEY=VALUE", nargs="+")
    charge = actions.add_parser(
        "charge",
        help="record a charge of simulated usage",
        description="One charge in the number's ledger (spending control), taken from its "
        "balance, e.g. --category sms --amount 2.5.",
    )
    charge.add_argument("msisdn", metavar="MSISDN")
    charge.add_argument("--category", required=True, choices=subscribers.CATEGORIES)
    charge.add_argument("--amount", required=True, type=float, help="roubles, > 0")
    charge.add_argument("--description", help="at most 64 characters")
    charge.add_argument("--date", help="YYYY-MM-DD or an ISO date-time (default: now)")
    for p in (list_, add, set_, charge):
        add_common(p, url=True)
        _admin.add_admin(p)
        p.set_defaults(handler=run)


def add_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The admin-API fields of `subscribers add`."""
    fields: dict[str, Any] = {}
    if args.balance is not None:
        fields["balance"] = args.balance
    if args.language is not None:
        fields["language"] = args.language
    package = {
        k: getattr(args, k) for k in ("minutes", "sms", "mb") if getattr(args, k) is not None
    }
    if package:
        fields["package"] = package
    if args.bonus_points is not None:
        fields["bonus_points"] = args.bonus_points
    if args.password is not None:
        fields["password"] = args.password
    if args.number_management:
        fields["number_management"] = True
    return fields


def set_fields(assignments: list[str]) -> dict[str, Any]:
    """`key=value` words as admin-API fields (Invalid on a word without `=` or bad YAML)."""
    fields: dict[str, Any] = {}
    for word in assignments:
        key, sep, raw = word.partition("=")
        if not sep or not key:
            raise Invalid(f"expected KEY=VALUE, got {word!r}", code="bad_field")
        if key == "password":
            fields[key] = raw  # as typed: "0123" must not become the number 123
            continue
        try:
            fields[key] = yamlload.loads(raw) if raw else ""  # bounded: no alias bombs
        except yamlload.YamlError as exc:
            raise Invalid(f"{key}: not a value: {raw!r}", code="bad_field") from exc
    return fields


def line(sub: dict[str, Any]) -> str:
    """One readable line per subscriber."""
    package = sub["package"]
    flags = []
    if sub["number_management"]:
        flags.append("number-management")
    if sub["has_password"]:
        flags.append("password")
    return (
        f"{sub['msisdn']}  {sub['language']}  balance {sub['balance']:.2f}  "
        f"{package['minutes']} min / {package['sms']} sms / {package['mb']} MB"
        + (f"  [{', '.join(flags)}]" if flags else "")
    )


def record_charge(args: argparse.Namespace, config: Any) -> int:
    """`subscribers charge`: POST /api/v1/subscribers/{msisdn}/charges, or in-process."""
    fields: dict[str, Any] = {"category": args.category, "amount": args.amount}
    for key in ("description", "date"):
        if getattr(args, key) is not None:
            fields[key] = getattr(args, key)
    if args.url:
        path = f"/api/v1/subscribers/{args.msisdn}/charges"
        charge = _admin.call(args, config, "POST", path, fields)
    else:
        with _admin.local_gateway(config) as gateway:
            charge = gateway.accounts.record_charge(args.msisdn, fields)
    text = f"{charge['msisdn']}  {charge['at']}  {charge['category']}  -{charge['amount']:.2f}"
    _admin.emit(args, charge, text)
    return 0


def run(args: argparse.Namespace) -> int:
    config = load_config(args)

    def action() -> int:
        if args.action == "list":
            if args.url:
                subs = _admin.call(args, config, "GET", "/api/v1/subscribers")["subscribers"]
            else:
                with _admin.local_gateway(config) as gateway:
                    subs = [s.public() for s in gateway.subscribers()]
            _admin.emit(args, subs, "\n".join(line(s) for s in subs))
            return 0
        if args.action == "charge":
            return record_charge(args, config)
        fields = add_fields(args) if args.action == "add" else set_fields(args.assignments)
        if args.url:
            if args.action == "add":
                body = {"msisdn": args.msisdn, **fields}
                sub = _admin.call(args, config, "POST", "/api/v1/subscribers", body)
            else:
                path = f"/api/v1/subscribers/{args.msisdn}"
                sub = _admin.call(args, config, "PATCH", path, fields)
        else:
            with _admin.local_gateway(config) as gateway:
                accounts = gateway.accounts
                if args.action == "add":
                    sub = accounts.create_subscriber(args.msisdn, fields).public()
                else:
                    sub = accounts.update_subscriber(args.msisdn, fields).public()
        _admin.emit(args, sub, line(sub))
        return 0

    return _admin.run_guarded(action)
