"""Real `redis-server` and PostgreSQL for the cluster tests (docs/cluster.md).

Each server runs from the Debian packages on a free loopback port in a temporary directory and
is stopped after the session (or the test, for the outage tests). `make test` installs the
packages when it can; under CI=true a missing binary fails the tests that need it instead of
skipping them, as the browser tests do (tests/browser.py).
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import os
import pwd
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pytest

START_TIMEOUT = 30.0  # seconds a server may take to say it is ready


def _ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(message: str) -> None:
    """Fail under CI, skip elsewhere (a developer machine without the packages)."""
    if _ci():
        pytest.fail(message)
    pytest.skip(message)


def find_binary(name: str) -> str | None:
    """`name` on PATH, or in Debian's versioned PostgreSQL directory (newest first)."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
        reverse=True,
    )
    return candidates[0] if candidates else None


def _die_with_us() -> None:
    # A test run killed outright (a timeout, Ctrl-C twice) leaves no server behind: the kernel
    # kills the server when the test process dies (prctl PR_SET_PDEATHSIG).
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_line(proc: subprocess.Popen[bytes], stream: IO[bytes], marker: bytes) -> bytes:
    """Read the server's log until `marker` (it is ready) or its exit; returns what was read."""
    seen = b""
    deadline = time.monotonic() + START_TIMEOUT
    fd = stream.fileno()
    while marker not in seen:
        left = deadline - time.monotonic()
        if left <= 0:
            raise RuntimeError(f"not ready within {START_TIMEOUT:g} s:\n{seen.decode()[-2000:]}")
        readable, _, _ = select.select([fd], [], [], left)
        if not readable:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:  # the server exited
            proc.wait()
            raise RuntimeError(f"exited with {proc.returncode}:\n{seen.decode()[-2000:]}")
        seen += chunk
    return seen


def _drain(stream: IO[bytes], log: Path) -> None:
    # A server blocks once its log pipe is full: keep reading it into a file.
    def run() -> None:
        with log.open("ab") as out:
            for chunk in iter(lambda: os.read(stream.fileno(), 65536), b""):
                out.write(chunk)

    threading.Thread(target=run, daemon=True).start()


def _spawn(argv: list[str], ready: bytes, log: Path) -> subprocess.Popen[bytes]:
    """Start a server and return once its log says `ready`; its log goes on into `log`."""
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, preexec_fn=_die_with_us
    )
    assert proc.stdout is not None
    try:
        _wait_for_line(proc, proc.stdout, ready)
    except RuntimeError as exc:
        proc.kill()
        raise RuntimeError(f"{Path(argv[0]).name}: {exc}") from None
    _drain(proc.stdout, log)
    return proc


@dataclass
class Server:
    """One server process; `stop()` ends it (SIGKILL when `kill`: the outage tests)."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    directory: Path
    restart: Callable[[], subprocess.Popen[bytes]] = field(repr=False)

    def stop(self, *, kill: bool = False) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def start_again(self) -> None:
        """Start it again on the same port and data (after stop())."""
        self.proc = self.restart()


# -- redis-server -------------------------------------------------------------------------------


def start_redis(directory: Path) -> Server:
    binary = find_binary("redis-server")
    if binary is None:
        missing("redis-server not found (install Debian's `redis-server`, or `make services`)")
    assert binary is not None
    port = free_port()

    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly"]
    argv += ["no", "--dir", str(directory), "--logfile", ""]

    def launch() -> subprocess.Popen[bytes]:
        return _spawn(argv, b"Ready to accept connections", directory / "redis.log")

    return Server("redis", launch(), port, directory, launch)


# -- PostgreSQL ---------------------------------------------------------------------------------


def _unprivileged() -> tuple[list[str], int, int] | None:
    """How to run PostgreSQL as root (it refuses to run as root): (prefix, uid, gid)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        # setpriv execs PostgreSQL itself (runuser forks and waits), so the process the
        # tests signal, SIGKILL included, is the server.
        runner = shutil.which("setpriv")
        if runner:
            return (
                [
                    runner,
                    f"--reuid={entry.pw_uid}",
                    f"--regid={entry.pw_gid}",
                    "--clear-groups",
                    "--pdeathsig=KILL",
                ],
                entry.pw_uid,
                entry.pw_gid,
            )
    return None


def start_postgres(directory: Path) -> Server:
    initdb, postgres = find_binary("initdb"), find_binary("postgres")
    if initdb is None or postgres is None:
        missing("PostgreSQL not found (install Debian's `postgresql`, or `make services`)")
    assert initdb is not None and postgres is not None
    prefix: list[str] = []
    as_user = _unprivileged()
    if as_user is not None:
        prefix, uid, gid = as_user
        os.chown(directory, uid, gid)
    data = directory / "data"
    run = subprocess.run(
        [
            *prefix,
            initdb,
            "-D",
            str(data),
            "-A",
            "trust",
            "-U",
            "ussd",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ],
        capture_output=True,
        check=False,
    )
    if run.returncode:
        raise RuntimeError(f"initdb failed: {run.stderr.decode()[-2000:]}")
    port = free_port()

    argv = [*prefix, postgres, "-D", str(data), "-p", str(port), "-k", str(directory)]
    for setting in ("listen_addresses=127.0.0.1", "fsync=off", "full_page_writes=off"):
        argv += ["-c", setting]

    def launch() -> subprocess.Popen[bytes]:
        return _spawn(argv, b"ready to accept connections", directory / "postgres.log")

    return Server("postgres", launch(), port, directory, launch)


def postgres_dsn(server: Server, database: str = "postgres") -> str:
    return f"postgresql://ussd@127.0.0.1:{server.port}/{database}"


def create_database(server: Server, name: str) -> str:
    """A fresh, empty database on the server; returns its DSN."""
    import psycopg

    with psycopg.connect(postgres_dsn(server), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return postgres_dsn(server, name)


@contextlib.contextmanager
def running(start: Callable[[Path], Server], prefix: str) -> Iterator[Server]:
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        server = start(directory)
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_server() -> Iterator[Server]:
    with running(start_redis, "ussd-redis-") as server:
        yield server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Server]:
    with running(start_postgres, "ussd-pg-") as server:
        yield server


_databases = iter(range(1, 1_000_000))


@pytest.fixture
def postgres_url(postgres_server: Server) -> str:
    """A fresh database for one test."""
    return create_database(postgres_server, f"t{os.getpid()}_{next(_databases)}")


@pytest.fixture
def redis_url(redis_server: Server) -> str:
    """The session's Redis, emptied for one test."""
    import redis

    url = f"redis://127.0.0.1:{redis_server.port}/0"
    client = redis.Redis.from_url(url)
    client.flushall()
    client.close()
    return url


@pytest.fixture
def own_redis() -> Iterator[Server]:
    """A Redis of this test's own, which the test may kill and restart."""
    with running(start_redis, "ussd-redis-") as server:
        yield server


@pytest.fixture
def own_postgres() -> Iterator[Server]:
    """A PostgreSQL of this test's own, which the test may kill and restart."""
    with running(start_postgres, "ussd-pg-") as server:
        yield server
