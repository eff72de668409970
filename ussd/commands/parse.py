"""`ussd-sim parse STRING...`: show how dial strings parse (docs/grammar.md).

Exit code: 0 when every string parsed, 1 when any did not (argparse usage errors are 2).
With no STRING, one string per stdin line (batch mode): the line terminator is removed and
nothing else, and one result is written and flushed per line, so a harness can keep one
process open and pipe strings through it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Iterator
from typing import IO, Any

from ussd import dialstring
from ussd.commands._common import Subcommands, add_common

NOT_UTF8 = "input line is not valid UTF-8"


def register(subparsers: Subcommands) -> None:
    """Add the `parse` subcommand."""
    parser = subparsers.add_parser(
        "parse",
        help="parse dial strings (stdin, one per line, when none are given)",
        description="Parse dial strings as a handset would (3GPP TS 22.030 §6.5, TS 22.090). "
        "With no STRING, read one string per line from stdin. Exit code 0 when all parsed, "
        "1 when any failed.",
    )
    parser.add_argument(
        "strings", nargs="*", metavar="STRING", help="dial strings, e.g. '*111*17#'"
    )
    parser.add_argument(
        "--json", action="store_true", help="one JSON object per string (fields, or error)"
    )
    # --config is accepted like everywhere but not read: parsing needs no config.
    add_common(parser)
    parser.set_defaults(handler=run)


def result_json(text: str) -> dict[str, Any]:
    """The DialString fields of text, plus `error` {message, column} when it does not parse."""
    try:
        return dialstring.parse(text).to_json()
    except dialstring.DialStringError as exc:
        return _error_object(text, exc.message, exc.column)


def _error_object(text: str, message: str, column: int) -> dict[str, Any]:
    obj: dict[str, Any] = dict.fromkeys(dialstring.FIELDS)
    obj["text"] = text
    obj["error"] = {"message": message, "column": column}
    return obj


def readable(obj: dict[str, Any]) -> str:
    """One line for people: `TEXT<tab>kind procedure key=value...` or `TEXT<tab>error at ...`."""
    text = obj["text"]
    error = obj.get("error")
    if error:
        return f"{text}\terror at column {error['column']}: {error['message']}"
    words = [obj["kind"]]
    if obj["procedure"]:
        words.append(obj["procedure"])
    for key in ("service_code", "sia", "sib", "sic", "extra", "dial_number", "clir"):
        value = obj[key]
        if value is not None:
            # Empty fields are shown as "" so that "*111**5#" reads differently from "*111*5#".
            words.append(f"{key}={value}" if value else f'{key}=""')
    return f"{text}\t{' '.join(words)}"


def _render(obj: dict[str, Any], as_json: bool) -> str:
    if not as_json:
        return readable(obj)
    return json.dumps(obj, ensure_ascii=False)


def _write(out: IO[str], line: str) -> None:
    try:
        out.write(line + "\n")
    except UnicodeEncodeError:
        # A terminal or pipe that cannot show the text (or a lone surrogate from argv):
        # escape rather than fail the line.
        out.write(line.encode("ascii", "backslashreplace").decode("ascii") + "\n")
    out.flush()


_Item = tuple[str, tuple[str, int] | None]


def _stdin_lines(stream: IO[str]) -> Iterator[_Item]:
    """(text, problem) per input line; the terminator ("\\n" or "\\r\\n") is all that is removed."""
    binary = getattr(stream, "buffer", None)
    if binary is None:  # a text-only stream (tests): already decoded
        for line in stream:
            yield _strip_newline(line), None
        return
    for raw in binary:
        try:
            yield _strip_newline(raw.decode("utf-8")), None
        except UnicodeDecodeError as exc:
            # One bad line is reported like any other bad string; the batch goes on.
            text = _strip_newline(raw.decode("utf-8", "replace"))
            column = len(raw[: exc.start].decode("utf-8", "replace")) + 1
            yield text, (NOT_UTF8, column)


def _strip_newline(line: str) -> str:
    if line.endswith("\n"):
        line = line[:-1]
        if line.endswith("\r"):
            line = line[:-1]
    return line


def _run_items(items: Iterable[_Item], as_json: bool, out: IO[str]) -> int:
    failed = False
    for text, problem in items:
        obj = result_json(text) if problem is None else _error_object(text, *problem)
        failed = failed or "error" in obj
        _write(out, _render(obj, as_json))
    return 1 if failed else 0


def run(args: argparse.Namespace) -> int:
    """Parse the strings given, or stdin lines; 0 when all parsed, 1 otherwise."""
    out = sys.stdout
    items: Iterable[_Item] = (
        ((text, None) for text in args.strings) if args.strings else _stdin_lines(sys.stdin)
    )
    try:
        return _run_items(items, args.json, out)
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as other Unix tools do.
        _silence_stdout()
        return 1


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass
