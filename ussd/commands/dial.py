"""`ussd-sim dial MSISDN STRING [REPLY...]`: run one dialog and print every screen (README.md)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from ussd.commands._common import Subcommands, add_common, load_config, msisdn_arg
from ussd.dialstring import DialStringError
from ussd.engine import EngineError, NotUssd
from ussd.events import DialogEnded, Event, Screen, SmsQueued
from ussd.msisdn import InvalidMsisdn
from ussd.runtime import Gateway


def register(sub: Subcommands) -> None:
    parser = sub.add_parser(
        "dial",
        help="run a USSD dialog in-process and print each screen",
        description="Dial STRING from MSISDN against the configured store, answer with each "
        "REPLY in turn, and print every screen and SMS notice.",
    )
    parser.add_argument("msisdn", metavar="MSISDN", type=msisdn_arg, help="e.g. 79161234567")
    parser.add_argument("string", metavar="STRING", help="what is typed, e.g. '*111*17#'")
    parser.add_argument("replies", metavar="REPLY", nargs="*", help="answers to the prompts")
    add_common(parser, url=True)
    parser.set_defaults(handler=run)


def render(screen: Screen) -> str:
    """A screen as one block: a status line, then the text."""
    state = "end" if screen.end else "continue"
    page = f" page {screen.page}/{screen.pages}" if screen.pages > 1 else ""
    return f"[{state}{page}] session {screen.session}\n{screen.text}"


def run(args: argparse.Namespace) -> int:
    if args.url:
        return asyncio.run(run_remote(args))
    return asyncio.run(run_local(args))


async def run_local(args: argparse.Namespace) -> int:
    """The dialog in this process, against the configured store."""
    gateway = Gateway.create(load_config(args))
    # Routes to external apps are asked over HTTP by a started gateway (docs/apps.md).
    apps = bool(gateway.config.apps)
    if apps:
        await gateway.start()
    out: list[str] = []

    def on_event(event: Event) -> None:
        if isinstance(event, SmsQueued):
            out.append(f"[sms to {event.msisdn} from {event.sms.sender}]\n{event.sms.text}")
        elif isinstance(event, DialogEnded) and event.outcome.value not in ("completed",):
            out.append(f"[dialog ended: {event.outcome.value}]")

    gateway.engine.subscribe(on_event)

    def flush() -> None:
        for block in out:
            print(block)
        out.clear()

    try:
        print(f"> {args.string}")
        msisdn, text = args.msisdn, args.string
        screen = (
            await gateway.dial(msisdn, text, via="terminal")
            if apps
            else gateway.engine.dial(msisdn, text, via="terminal")
        )
        print(render(screen))
        flush()
        for reply in args.replies:
            if screen.end:
                print("ussd-sim: the dialog has ended; extra replies ignored", file=sys.stderr)
                return 1
            print(f"> {reply}")
            screen = (
                await gateway.reply(msisdn, reply) if apps else gateway.engine.reply(msisdn, reply)
            )
            print(render(screen))
            flush()
    except (DialStringError, InvalidMsisdn, NotUssd, EngineError) as exc:
        flush()
        print(f"ussd-sim: {exc}", file=sys.stderr)
        return 1
    finally:
        if apps:
            await gateway.stop()
        else:
            gateway.close()
    return 0


async def run_remote(args: argparse.Namespace) -> int:
    """The same dialog against a running gateway's phones API (`--url`)."""
    from sim.client import ClientError, PhonesClient

    async with PhonesClient(args.url, via="terminal") as client:
        try:
            seen = {sms["id"] for sms in await client.inbox(args.msisdn)}
            print(f"> {args.string}")
            data = await client.dial(args.msisdn, args.string)
            print(render(_screen(data)))
            for reply in args.replies:
                if data.get("end"):
                    print("ussd-sim: the dialog has ended; extra replies ignored", file=sys.stderr)
                    return 1
                print(f"> {reply}")
                data = await client.reply(args.msisdn, reply)
                print(render(_screen(data)))
            for sms in await client.inbox(args.msisdn):
                if sms["id"] not in seen:
                    print(f"[sms to {sms['recipient']} from {sms['sender']}]\n{sms['text']}")
        except ClientError as exc:
            print(f"ussd-sim: {exc}", file=sys.stderr)
            return 1
    return 0


def _screen(data: dict[str, Any]) -> Screen:
    return Screen(
        session=str(data.get("session") or "-"),
        text=str(data.get("text", "")),
        end=bool(data.get("end")),
        page=int(data.get("page", 1)),
        pages=int(data.get("pages", 1)),
    )
