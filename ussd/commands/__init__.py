"""Subcommands of `ussd-sim`; each module defines `register(subparsers)`."""
