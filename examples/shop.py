"""The menu both example apps serve: balance, buy airtime, exit.

It takes every input so far and answers the next screen, the way an Africa's Talking app reads
`text`; the dialect adapters (at_app.py, hubtel_app.py) only translate the wire format.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from aiohttp import web

WELCOME = "Welcome to the shop\n1. Balance\n2. Buy airtime\n3. Exit"
START_BALANCE = 100


class Shop:
    """Balances by phone number, kept in memory for as long as the app runs."""

    def __init__(self) -> None:
        self.balances: dict[str, int] = {}

    def screen(self, phone: str, inputs: Sequence[str]) -> tuple[str, bool]:
        """The next screen and whether it ends the dialog."""
        balance = self.balances.setdefault(phone, START_BALANCE)
        match list(inputs):
            case []:
                return WELCOME, False
            case ["1"]:
                return f"Your balance is {balance}.00", True
            case ["2"]:
                return "Amount?", False
            case ["2", amount] if amount.isdigit() and 0 < int(amount) <= balance:
                return f"Buy {int(amount)} airtime for {phone}?\n1. Yes\n2. No", False
            case ["2", _]:
                return "Invalid amount", True
            case ["2", amount, "1"]:
                self.balances[phone] = balance - int(amount)
                return f"Bought {int(amount)}. Balance {self.balances[phone]}.00", True
            case ["2", _, _]:
                return "Cancelled", True
            case ["3"]:
                return "Goodbye", True
            case _:
                return "Invalid choice", True


def serve(app: web.Application, description: str) -> None:
    """Run an example app from the command line: `--host`, `--port`."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args()
    web.run_app(app, host=args.host, port=args.port)
