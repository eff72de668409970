"""PDU captures on disk: `smpp.capture` (every connection) and per-bind captures (admin API).

The records come from ussd/smpp/pcap.py; this module only owns files. Writes are buffered in
memory and reach the file when CHUNK octets are waiting, a second after the first record
waiting, when a connection ends, and at shutdown, so the loop never writes per PDU. A file
past `smpp.capture_max_bytes` is renamed `NAME.1` (replacing the previous one) and a new one
begins, with a handshake for every connection still open (docs/operations.md).

Per-bind files are created only inside `smpp.capture_dir`, under a plain file name, and never
over an existing file: the admin API chooses a name, not a path.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ussd import log
from ussd.config import ConfigError
from ussd.smpp.pcap import HEADER, PcapWriter, Secret
from ussd.smpp.trace import Trace, Traces

__all__ = ["CHUNK", "CaptureError", "CaptureFile", "Captures"]

_log = log.get("smpp")

CHUNK = 64 * 1024  # buffered octets that make a write
FLUSH_AFTER = 1.0  # seconds a record waits at most before it reaches the file
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")

Address = tuple[str, int]


class CaptureError(Exception):
    """A capture request that cannot be met; `code` names why (docs/openapi.yaml)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class CaptureFile:
    """One pcap file and its writer: buffered, rotated past `max_bytes`."""

    def __init__(
        self, path: Path, max_bytes: int, *, exclusive: bool = False, secret: Secret | None = None
    ) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.writer = PcapWriter(secret=secret)
        self.written = 0  # octets in the current file
        self.total = 0  # octets over every file
        self.rotations = 0
        self.error: str | None = None  # why writing stopped (a full disk)
        # "x": a per-bind capture never overwrites a file (nor follows a planted symlink).
        self._file: IO[bytes] | None = open(path, "xb" if exclusive else "wb")  # noqa: SIM115

    def before_write(self, now: float) -> None:
        """Rotate when the file has reached its limit (so a file ends past it by one read)."""
        if self.written + self.writer.buffered >= self.max_bytes:
            self.flush()
            if self.written > len(HEADER):
                self._rotate(now)

    @property
    def due(self) -> bool:
        return self.writer.buffered >= CHUNK

    def flush(self) -> None:
        data = self.writer.data_to_send()
        if data and self._file is not None:
            try:
                self._file.write(data)
                self._file.flush()
            except OSError as exc:
                # A full disk ends the capture, never the SMPP connection it records.
                self.error = exc.strerror or str(exc)
                _log.warning("smpp_capture_failed", path=str(self.path), reason=self.error)
                with contextlib.suppress(OSError):
                    self._file.close()
                self._file = None
                return
            self.written += len(data)
            self.total += len(data)

    def close(self) -> None:
        self.flush()
        if self._file is not None:
            self._file.close()
            self._file = None

    def _rotate(self, now: float) -> None:
        if self._file is None:
            return
        self._file.close()
        self._file = None
        try:
            os.replace(self.path, self.path.with_name(self.path.name + ".1"))
            self._file = open(self.path, "wb")  # noqa: SIM115
        except OSError as exc:
            self.error = exc.strerror or str(exc)
            _log.warning("smpp_capture_failed", path=str(self.path), reason=self.error)
            return
        self.written = 0
        self.rotations += 1
        self.writer.restart(now)

    def info(self) -> dict[str, Any]:
        return {
            "file": self.path.name,
            "path": str(self.path),
            "pdus": self.writer.pdus,
            "bytes": self.total + self.writer.buffered,
            "rotations": self.rotations,
            "max_bytes": self.max_bytes,
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class _Endpoints:
    peer: Address
    local: Address


class Captures:
    """Every capture of one SMPP server; the server calls the hooks, the admin API the rest."""

    def __init__(
        self,
        path: str | None,
        directory: str,
        max_bytes: int,
        *,
        secret: Secret | None = None,
    ) -> None:
        self.path = path
        self.secret = secret  # replies to password prompts are starred (ussd/smpp/pcap.py)
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self._all: CaptureFile | None = None  # smpp.capture
        self._per_bind: dict[int, CaptureFile] = {}
        self._endpoints: dict[int, _Endpoints] = {}
        self._flush_timer: asyncio.TimerHandle | None = None
        # The console's in-memory PDU traces ride on the same hooks (ussd/smpp/trace.py).
        self.traces = Traces(secret)
        self.active = False  # any file or trace open: the server's hooks skip the calls otherwise

    # -- the server's hooks ----------------------------------------------------------------

    def start(self) -> None:
        """Open the `smpp.capture` file, if configured (the server has started listening)."""
        if self.path is not None and self._all is None:
            path = Path(self.path)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._all = CaptureFile(path, self.max_bytes, secret=self.secret)
            except OSError as exc:
                raise ConfigError("smpp.capture", f"cannot write {path}: {exc.strerror}") from None
            self._update()
            _log.info("smpp_capture_started", path=str(path))

    def opened(self, key: int, peer: object, local: object, now: float) -> None:
        """A connection was admitted; `peer`/`local` are the socket's peername/sockname."""
        if not (isinstance(peer, tuple) and isinstance(local, tuple)):
            return  # not an IP socket: nothing to frame
        ends = _Endpoints((str(peer[0]), int(peer[1])), (str(local[0]), int(local[1])))
        self._endpoints[key] = ends
        if self._all is not None:
            self._open(self._all, key, ends, now)

    def received(self, key: int, data: bytes, now: float) -> None:
        for capture in self._files(key):
            capture.before_write(now)
            capture.writer.received(key, data, now)
            self._written(capture)
        if self.traces.live:
            self.traces.received(key, data, now)

    def sent(self, key: int, data: bytes, now: float) -> None:
        for capture in self._files(key):
            capture.before_write(now)
            capture.writer.sent(key, data, now)
            self._written(capture)
        if self.traces.live:
            self.traces.sent(key, data, now)

    def closed(self, key: int, now: float) -> None:
        """The connection ended: its FINs; a per-bind file ends with it."""
        self._endpoints.pop(key, None)
        self.traces.closed(key)
        if self._all is not None:
            self._all.writer.close(key, now)
            self._all.flush()
        capture = self._per_bind.pop(key, None)
        if capture is not None:
            capture.writer.close(key, now)
            self._finish(key, capture)
        self._update()

    def close_all(self, now: float) -> None:
        """Shutdown: every open connection's FINs, every file flushed and closed."""
        for key in list(self._endpoints):
            self.closed(key, now)
        if self._all is not None:
            self._all.close()
            self._all = None
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        self._update()

    # -- per-bind captures (admin API) -------------------------------------------------------

    def start_bind(
        self, key: int, name: str | None, label: str, now: float, pending: bytes = b""
    ) -> dict[str, Any]:
        """Capture connection `key` into `name` (default: from `label` and the time)."""
        ends = self._endpoints.get(key)
        if ends is None:
            raise CaptureError("unknown_bind", f"no open SMPP connection {key}")
        if key in self._per_bind:
            raise CaptureError("capture_running", f"connection {key} is already being captured")
        if name is None:
            stamp = dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y%m%dT%H%M%SZ")
            name = f"bind-{key}-{_UNSAFE.sub('_', label) or 'unbound'}-{stamp}.pcap"
        elif not _NAME.fullmatch(name) or name.endswith((".", ".1")):
            raise CaptureError(
                "bad_field",
                "file: a plain file name of letters, digits, '.', '_' and '-' (at most 64), "
                "created in smpp.capture_dir",
            )
        elif not name.endswith(".pcap"):
            name += ".pcap"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            capture = CaptureFile(
                self.directory / name, self.max_bytes, exclusive=True, secret=self.secret
            )
        except FileExistsError:
            raise CaptureError(
                "file_exists", f"{name} already exists in smpp.capture_dir"
            ) from None
        except OSError as exc:
            raise CaptureError("capture_failed", f"cannot create {name}: {exc.strerror}") from None
        self._per_bind[key] = capture
        self._open(capture, key, ends, now, pending)
        self._update()
        _log.info("smpp_capture_started", path=str(capture.path), bind=key)
        return capture.info()

    def stop_bind(self, key: int, now: float) -> dict[str, Any]:
        """End connection `key`'s capture (the file then ends with FINs, as if it closed)."""
        capture = self._per_bind.pop(key, None)
        if capture is None:
            raise CaptureError("no_capture", f"connection {key} is not being captured")
        capture.writer.close(key, now)
        info = self._finish(key, capture)
        self._update()
        return info

    def start_trace(self, key: int, pending: bytes = b"") -> Trace:
        """Keep connection `key`'s PDUs in memory from now on (the console's trace)."""
        trace = self.traces.start(key, pending)
        self._update()
        return trace

    def bind_info(self, key: int) -> dict[str, Any] | None:
        capture = self._per_bind.get(key)
        return None if capture is None else capture.info()

    # -- internals ---------------------------------------------------------------------------

    def _files(self, key: int) -> list[CaptureFile]:
        files = [] if self._all is None or key not in self._all.writer else [self._all]
        capture = self._per_bind.get(key)
        if capture is not None:
            files.append(capture)
        return files

    def _open(
        self, capture: CaptureFile, key: int, ends: _Endpoints, now: float, pending: bytes = b""
    ) -> None:
        try:
            capture.writer.open(key, ends.peer, ends.local, now, pending=pending)
        except ValueError as exc:  # an IPv4 peer on an IPv6 socket or the reverse
            _log.warning("smpp_capture_skipped", bind=key, reason=str(exc))
            return
        self._written(capture)

    def _written(self, capture: CaptureFile) -> None:
        if capture.due:
            capture.flush()
        elif capture.writer.buffered and self._flush_timer is None:
            with contextlib.suppress(RuntimeError):  # no running loop: flushed at close
                loop = asyncio.get_running_loop()
                self._flush_timer = loop.call_later(FLUSH_AFTER, self._flush_all)

    def _flush_all(self) -> None:
        self._flush_timer = None
        if self._all is not None:
            self._all.flush()
        for capture in self._per_bind.values():
            capture.flush()

    def _finish(self, key: int, capture: CaptureFile) -> dict[str, Any]:
        capture.close()
        info = capture.info()
        _log.info("smpp_capture_stopped", path=info["path"], bind=key, pdus=info["pdus"])
        return info

    def _update(self) -> None:
        self.active = self._all is not None or bool(self._per_bind) or bool(self.traces.live)
