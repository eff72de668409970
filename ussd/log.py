"""structlog, configured once at start (docs/config.md): console for people, JSON for machines."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

# Loggers are cached on first use for speed. The test suite turns this off (tests/conftest.py)
# because `structlog.testing.capture_logs` cannot see a logger cached by an earlier
# `configure()`, such as the one every in-process `ussd-sim` command run makes.
CACHE_LOGGERS = True

# Keys whose values never reach a log line.
SECRET_KEYS = frozenset({"password", "new_password", "reply", "text_secret", "token", "secret"})


def _redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in SECRET_KEYS.intersection(event):
        event[key] = "***"
    return event


class _Stderr:
    """Whatever sys.stderr is at write time (it may be swapped after configure())."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure(fmt: str = "console", level: str = "info") -> None:
    """Set up structlog processors for `console` or `json` output on stderr."""
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=_Stderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=CACHE_LOGGERS,
    )


def get(name: str) -> Any:
    """A structlog logger bound to a component name."""
    return structlog.get_logger(component=name)
