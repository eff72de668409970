"""`ussd-sim serve`: the gateway in one asyncio process: SMPP, HTTP and timers (README.md)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from dataclasses import replace
from typing import TYPE_CHECKING

from ussd import listener, log
from ussd.commands._common import Subcommands, add_common, load_config
from ussd.config import DEFAULT_ADMIN_TOKEN, Config, ConfigError, is_loopback, parse_listen
from ussd.http.app import start_http
from ussd.runtime import Gateway
from ussd.smpp.server import SmppServer

if TYPE_CHECKING:
    from ussd.cluster import Cluster

_log = log.get("serve")


def register(sub: Subcommands) -> None:
    parser = sub.add_parser(
        "serve",
        help="run the gateway: SMPP server, web phone and HTTP API",
        description="Start the gateway on the configured addresses and run until SIGINT or "
        "SIGTERM; then unbind SMPP clients and stop cleanly.",
    )
    add_common(parser)
    parser.add_argument(
        "--smpp-listen", metavar="HOST:PORT", help="override smpp.listen (port 0: any free port)"
    )
    parser.add_argument(
        "--http-listen", metavar="HOST:PORT", help="override http.listen (port 0: any free port)"
    )
    parser.add_argument("--database", metavar="PATH", help="override storage.database")
    parser.add_argument(
        "--clock",
        choices=("real", "simulated"),
        help="override clock.mode (simulated: advance "
        "it with the admin API or `ussd-sim clock advance`)",
    )
    parser.add_argument(
        "--workers",
        type=_workers,
        default=1,
        metavar="N",
        help="run N worker processes on the same ports (needs `cluster:` in the config; "
        "docs/cluster.md)",
    )
    # A worker started by --workers: listen with SO_REUSEPORT beside the others.
    parser.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    parser.set_defaults(handler=run)


MAX_WORKERS = 64


def _workers(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 1 <= value <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"expected 1 to {MAX_WORKERS}")
    return value


def _with_overrides(config: Config, args: argparse.Namespace) -> Config:
    if args.smpp_listen:
        config = replace(
            config,
            smpp=replace(config.smpp, listen=parse_listen(args.smpp_listen, "--smpp-listen")),
        )
    if args.http_listen:
        config = replace(
            config,
            http=replace(config.http, listen=parse_listen(args.http_listen, "--http-listen")),
        )
    if args.database:
        config = replace(config, storage_database=args.database)
    if args.clock:
        config = replace(config, clock_mode=args.clock)
    if not is_loopback(config.http.listen[0]) and config.http.admin_token == DEFAULT_ADMIN_TOKEN:
        # docs/config.md: the shipped admin token never leaves loopback.
        raise ConfigError(
            "http.admin_token",
            "the shipped default token is refused when http.listen is not a loopback address",
        )
    return config


def run(args: argparse.Namespace) -> int:
    # ussd.cli hands down when the process started (`args.started`), so start-to-ready
    # includes the imports; called without it, the clock starts here.
    started: float | None = getattr(args, "started", None)
    config = _with_overrides(load_config(args), args)
    workers: int = getattr(args, "workers", 1)
    if workers > 1:
        if not config.cluster.enabled:
            raise ConfigError(
                "cluster",
                "--workers needs cluster mode: set cluster.redis and "
                "cluster.postgres (docs/cluster.md)",
            )
        if config.smpp.listen[1] == 0 or config.http.listen[1] == 0:
            raise ConfigError(
                "http.listen",
                "--workers shares fixed ports: port 0 gives each worker a port of its own",
            )
        from ussd.supervisor import supervise  # only the supervising process needs it

        return supervise(_worker_argv(args), workers)
    if getattr(args, "reuse_port", False):
        listener.REUSE_PORT = True
    try:
        return asyncio.run(serve(config, started))
    except OSError as exc:
        print(f"ussd-sim: cannot listen: {exc.strerror or exc}", file=sys.stderr)
        return 1


def _worker_argv(args: argparse.Namespace) -> list[str]:
    """The command line of one worker: this one's options, without --workers."""
    argv = [sys.executable, "-m", "ussd.cli", "serve", "--reuse-port"]
    for option in ("config", "log_format", "log_level", "smpp_listen", "http_listen", "clock"):
        value = getattr(args, option, None)
        if value:
            argv += [f"--{option.replace('_', '-')}", str(value)]
    return argv


async def serve(config: Config, started: float | None = None) -> int:
    """Run until SIGINT/SIGTERM; returns the exit code."""
    started = started if started is not None else time.perf_counter()
    gateway = Gateway.create(config)
    gateway.hash_off_loop()
    await gateway.start()
    cluster = None
    shared_faults = None
    if config.cluster.enabled:
        from ussd.cluster import Cluster  # redis is needed in cluster mode only

        assert config.cluster.redis is not None
        cluster = Cluster(gateway.engine, config.cluster.redis, config.cluster.worker)
        try:
            await cluster.start()
        except ConnectionError as exc:
            await gateway.stop()
            raise ConfigError("cluster.redis", str(exc)) from None
        # One fault rule set, counted in Redis, for every worker (docs/network.md "Faults").
        from ussd.cluster_faults import ClusterFaults

        shared_faults = ClusterFaults(gateway.faults, config.cluster.redis)
        await shared_faults.start()
    smpp = SmppServer(gateway)
    if cluster is not None:
        smpp.around_read = cluster.batch  # a read's Redis writes in one round trip
    http = None
    routes = None
    try:
        smpp_host, smpp_port = await smpp.start()
        http = await start_http(gateway, *config.http.listen, smpp=smpp)
        if cluster is not None:
            # Screens and SMS to the worker holding the socket or bind (docs/cluster.md).
            from ussd.cluster_bus import ClusterBus
            from ussd.http.phones import HUB

            routes = ClusterBus(cluster, http.runner.app[HUB], smpp)
            await routes.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        ready = time.perf_counter() - started
        accounts = (
            ", ".join(f"system_id={a.system_id!r}" for a in config.smpp.accounts)
            or "no accounts configured"
        )
        print(
            f"ussd-sim ready in {ready:.2f} s\n"
            f"  web phone:  {http.url}/\n"
            f"  account:    {http.url}/lk  (the personal-account website)\n"
            f"  console:    {http.url}/console  (binds, dialogs, records, PDU traces)\n"
            f"  HTTP API:   {http.url}/api/v1  (admin: Bearer token http.admin_token)\n"
            f"  SMPP 3.4:   bind an ESME to {smpp_host}:{smpp_port} ({accounts})\n"
            f"  {_storage(config, cluster)}; clock: {config.clock_mode}\n"
            f"  stop with Ctrl-C",
            flush=True,
        )
        _log.info(
            "ready",
            http=http.url,
            smpp=f"{smpp_host}:{smpp_port}",
            seconds=round(ready, 3),
        )
        await stop.wait()
        print("ussd-sim: stopping", flush=True)
    finally:
        if routes is not None:
            await routes.stop()
        with contextlib.suppress(Exception):
            await smpp.stop()
        if http is not None:
            with contextlib.suppress(Exception):
                await http.stop()
        await gateway.stop()
        if shared_faults is not None:
            await shared_faults.stop()
        if cluster is not None:
            await cluster.stop()  # after the gateway: the dialogs it ended are released
    return 0


def _storage(config: Config, cluster: Cluster | None) -> str:
    if cluster is None:
        return f"database:   {config.storage_database}"
    from ussd.pgsql import where  # cluster mode: psycopg is there

    assert config.cluster.postgres is not None
    postgres = where(config.cluster.postgres)
    return f"cluster:    worker {cluster.worker}, PostgreSQL {postgres}, Redis {cluster.where()}"
