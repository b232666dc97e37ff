"""The `eventstate` command: serve the API, and audit the log (verify, replay, export, import, backup)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from eventstate.adapters import init_store, open_store
from eventstate.adapters.sqlite import ServerLock
from eventstate.ports import StoreError
from eventstate.replication import ReplicaError
from eventstate.settings import SETTINGS_HELP, Settings, SettingsError
from eventstate.transparency import BadInput, VerificationFailed

PROG = "eventstate"


class CliError(Exception):
    """A failure to report as one line on stderr with a non-zero exit."""


def _serve(args: argparse.Namespace) -> int:
    import structlog
    import uvicorn

    from eventstate.observability import configure_logging

    settings = Settings.from_env(host=args.host, port=args.port, workers=args.workers,
                                 database=args.database)
    # The address first: a port in use or a bad host is one line, before anything is written.
    _check_address(settings.host, settings.port)
    # Check (and create a SQLite file) before any worker starts, so a bad path is one clear line;
    # a PostgreSQL database without the log's schema is refused here, naming `eventstate init`.
    open_store(settings.database, synchronous=settings.synchronous,
               busy_timeout_ms=settings.busy_timeout_ms).close()
    from eventstate.app import checkpoint_log

    checkpoint_log(settings)  # an unusable signing key is one line here, not a worker's traceback
    os.environ.update(settings.to_env())
    loop = "uvloop" if _has("uvloop") else "asyncio"
    # httptools with a bound on unfinished request heads (h11 has its own, its max incomplete event).
    http = "eventstate.http.server:BoundedHttpToolsProtocol" if _has("httptools") else "h11"
    configure_logging(settings.log_level)
    structlog.get_logger("eventstate").info(
        "serving", database=settings.shown_database, url=f"http://{settings.host}:{settings.port}",
        workers=settings.workers, synchronous=settings.synchronous,
        api_keys=len(settings.api_keys), protect_reads=settings.protect_reads,
    )
    # uvicorn re-raises the stop signal after its graceful shutdown; a no-op handler turns that
    # into a normal return, so a drained SIGTERM/SIGINT exits 0 as supervisors expect.
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, lambda *_: None)
    # With several workers the supervising process holds the server lock for all of them; a single
    # process takes it in the app, and probing here turns a clash into one clear line.
    lock: ServerLock | None = (
        ServerLock(settings.database) if isinstance(settings.database, Path) else None
    )
    if settings.workers == 1 and lock is not None:
        lock.release()
        lock = None
    uvicorn.run(
        "eventstate.app:app_from_env", factory=True, host=settings.host, port=settings.port,
        workers=settings.workers, loop=loop, http=http, lifespan="on",
        access_log=False, log_config=None, log_level=settings.log_level.lower(),
        # In-flight updates finish in milliseconds; the bound is for open event streams, which
        # would otherwise hold a stop past a container runtime's usual 10-second grace period.
        timeout_graceful_shutdown=8, server_header=False, proxy_headers=False,
    )
    if lock is not None:
        lock.release()
    return 0


def _check_address(host: str, port: int) -> None:
    """Refuse (CliError) an address this process cannot listen on, naming the flag and the value."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as e:
        raise CliError(f"--host/EVENTSTATE_HOST {host!r} is not an address to bind: {e}") from None
    family, kind, proto, _name, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(address)
        except OSError as e:
            raise CliError(f"cannot listen on --host {host!r} --port {port} "
                           f"(EVENTSTATE_HOST/EVENTSTATE_PORT): {e.strerror}") from None


def _init(args: argparse.Namespace) -> int:
    settings = Settings.from_env(database=args.database)
    store, created = init_store(settings.database)
    try:
        head = store.head()
    finally:
        store.close()
    what = "created" if created else "already initialised"
    print(f"{settings.shown_database}: {what}; log at version {head.version}")
    return 0


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one line (naming the flag and the value) and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    from importlib.metadata import version

    parser = _Parser(prog=PROG, description=__doc__)
    parser.add_argument("--version", action="version", version=f"{PROG} {version('eventstate')}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="serve the HTTP API", epilog=SETTINGS_HELP,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    serve.add_argument("--host", help="address to bind (EVENTSTATE_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (EVENTSTATE_PORT, default 5000)")
    serve.add_argument("--workers", type=int,
                       help="worker processes sharing the log (EVENTSTATE_WORKERS, default 1)")
    serve.add_argument("--database",
                       help="SQLite file or postgresql:// URL of the log "
                            "(EVENTSTATE_DATABASE, default ./eventstate.db)")
    serve.set_defaults(run=_serve)

    init = sub.add_parser("init", help="create or upgrade the log's schema (idempotent)")
    init.add_argument("--database",
                      help="SQLite file or postgresql:// URL (EVENTSTATE_DATABASE, default ./eventstate.db)")
    init.set_defaults(run=_init)

    from eventstate import audit, transparency

    audit.add_commands(sub)
    transparency.add_commands(sub)
    from eventstate import restore

    restore.add_command(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status: int = args.run(args)
    except (StoreError, SettingsError, CliError, BadInput, ReplicaError) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except VerificationFailed as e:
        print(f"{PROG}: FAILED: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    return status


if __name__ == "__main__":
    sys.exit(main())
