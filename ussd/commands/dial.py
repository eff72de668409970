"""`ussd-sim dial MSISDN STRING [REPLY...]`: run one dialog and print every screen (SPEC §9)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ussd.commands._common import add_common, load_config
from ussd.dialstring import DialStringError
from ussd.engine import EngineError, NotUssd
from ussd.events import DialogEnded, Event, Screen, SmsQueued
from ussd.msisdn import InvalidMsisdn
from ussd.runtime import Gateway


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "dial",
        help="run a USSD dialog in-process and print each screen",
        description="Dial STRING from MSISDN against the configured store, answer with each "
        "REPLY in turn, and print every screen and SMS notice.",
    )
    parser.add_argument("msisdn", metavar="MSISDN")
    parser.add_argument("string", metavar="STRING", help="what is typed, e.g. '*111*17#'")
    parser.add_argument("replies", metavar="REPLY", nargs="*", help="answers to the prompts")
    add_common(parser)
    parser.set_defaults(handler=run)


def render(screen: Screen) -> str:
    """A screen as one block: a status line, then the text."""
    state = "end" if screen.end else "continue"
    page = f" page {screen.page}/{screen.pages}" if screen.pages > 1 else ""
    return f"[{state}{page}] session {screen.session}\n{screen.text}"


def run(args: argparse.Namespace) -> int:
    gateway = Gateway.create(load_config(args))
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
        screen = gateway.engine.dial(args.msisdn, args.string)
        print(render(screen))
        flush()
        for reply in args.replies:
            if screen.end:
                print("ussd-sim: the dialog has ended; extra replies ignored", file=sys.stderr)
                return 1
            print(f"> {reply}")
            screen = gateway.engine.reply(args.msisdn, reply)
            print(render(screen))
            flush()
    except (DialStringError, InvalidMsisdn, NotUssd, EngineError) as exc:
        flush()
        print(f"ussd-sim: {exc}", file=sys.stderr)
        return 1
    finally:
        gateway.engine.shutdown()
        gateway.store.close()
    return 0
