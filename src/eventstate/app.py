"""The composition root: `create_app(settings)` is the only code that wires concrete pieces together."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, cast

from litestar import Litestar, Router
from litestar.datastructures import State
from litestar.middleware.rate_limit import RateLimitConfig
from litestar.openapi import OpenAPIConfig
from litestar.plugins import PluginProtocol
from litestar.types import ASGIApp

from eventstate.adapters import open_store
from eventstate.adapters.sqlite import ServerLock
from eventstate.checkpoints import CheckpointLog, SigningKeyError, load_signer
from eventstate.http import docs, openapi, routes
from eventstate.http.auth import api_key_guard
from eventstate.http.console import console_router
from eventstate.http.middleware import EdgeMiddleware
from eventstate.http.pages import PageCache
from eventstate.http.problems import EXCEPTION_HANDLERS
from eventstate.observability import Metrics, configure_logging
from eventstate.ports import EventStore
from eventstate.service import EventService
from eventstate.settings import Settings, SettingsError

if TYPE_CHECKING:
    from eventstate.replication import Replicator


def package_version() -> str:
    """The installed eventstate version."""
    try:
        return version("eventstate")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0+unknown"


def open_log(settings: Settings) -> EventStore:
    """Open the configured log for serving (creating a SQLite file if it does not exist yet)."""
    return open_store(settings.database, synchronous=settings.synchronous,
                      busy_timeout_ms=settings.busy_timeout_ms)


def checkpoint_log(settings: Settings) -> CheckpointLog | None:
    """The checkpoint signer for the configured key, None without one; SettingsError if the key
    file cannot be used (fail closed: a server never starts with a key it cannot trust)."""
    if settings.signing_key_file is None:
        return None
    try:
        return CheckpointLog(load_signer(settings.signing_key_file))
    except SigningKeyError as e:
        raise SettingsError(f"EVENTSTATE_SIGNING_KEY_FILE: {e}") from None


def start_replication(settings: Settings, svc: EventService, metrics: Metrics) -> Replicator | None:
    """Start Litestream for the open log when a replica is configured (SQLite only)."""
    if settings.replica_url is None or not isinstance(settings.database, Path):
        return None  # Settings refuses a replica for PostgreSQL
    from eventstate.replication import ReplicaTarget, Replicator

    def head() -> tuple[int, str, str]:
        h = svc.projection.cached()
        return h.version, h.hash, h.timestamp or ""

    replicator = Replicator(
        settings.database, ReplicaTarget.parse(settings.replica_url, settings.replica_endpoint), head=head,
        sync_interval=settings.replica_sync_interval_s, max_lag=settings.replica_max_lag_s,
        anchor_interval=settings.replica_anchor_interval_s,
    )
    replicator.start(replicator.register_metrics(metrics.registry))
    svc.readiness_checks.append(replicator.readiness)
    return replicator


def create_app(settings: Settings, plugins: Sequence[PluginProtocol] = ()) -> Litestar:
    """Build the ASGI application for `settings`; the log is opened in its lifespan.

    `plugins` (CORS, OpenTelemetry, an extra guard...) apply to every route alike: there is one
    request path.
    """
    checkpoints = checkpoint_log(settings)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        # One process serving a SQLite file alone holds the server lock and trusts its own commits;
        # with several workers the parent holds it and every worker checks the log for the others'
        # commits. A PostgreSQL log is always shared: any number of instances may serve it.
        alone = settings.workers == 1 and isinstance(settings.database, Path)
        lock = ServerLock(settings.database) if isinstance(settings.database, Path) and alone else None
        try:
            svc = EventService(
                open_log(settings), max_batch=settings.max_batch, max_pending=settings.max_pending,
                key_ttl=settings.idempotency_ttl, shared=not alone, on_batch=metrics.observe_batch,
                checkpoints=checkpoints,
            )
            metrics.track(version=lambda: svc.projection.cached().version, lag=svc.lag,
                          pending=lambda: svc.writer.pending)
            metrics.track_head_checks(started=lambda: svc.head_check.started,
                                      reads=lambda: svc.head_check.waits)
            svc.start()
            app.state.service = svc
            replicator = None
            try:
                replicator = start_replication(settings, svc, metrics)
                yield
            finally:
                await svc.stop()
                if replicator is not None:  # last, so that its final sync holds every commit
                    await asyncio.to_thread(replicator.stop)
        finally:
            if lock is not None:
                lock.release()

    metrics = Metrics()
    write_guards = [api_key_guard(settings.api_keys)] if settings.api_keys else []
    read_guards = write_guards if settings.protect_reads else []
    write_middleware = (
        [RateLimitConfig(rate_limit=settings.write_rate_limit).middleware]  # type: ignore[arg-type]
        if settings.write_rate_limit else []
    )
    app = Litestar(
        route_handlers=[
            Router("/", route_handlers=[routes.get_status, routes.get_logs, routes.get_event,
                                        routes.stream_logs, routes.metrics,
                                        routes.get_checkpoint, routes.get_inclusion_proof,
                                        routes.get_consistency_proof], guards=read_guards),
            Router("/", route_handlers=[routes.post_update], guards=write_guards,
                   middleware=write_middleware),
            routes.live,
            routes.ready,
            console_router,
            docs.swagger_asset,
        ],
        lifespan=[lifespan],
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="eventstate", version=package_version(), path="/schema",
            description="An HTTP API over an append-only, hash-chained event log.",
            render_plugins=[docs.swagger_plugin()],
            operation_id_creator=lambda handler, _method, _path: openapi.operation_id(
                handler.handler_name),
        ),
        debug=False,
        logging_config=None,
        plugins=list(plugins),
        state=State({"metrics": metrics, "page_cache": PageCache(),
                     "tail_frames": routes.TailFrames(), "max_body_bytes": settings.max_body_bytes,
                     "body_timeout": settings.body_timeout_seconds}),
    )
    openapi.finish(app.openapi_schema, protect_reads=settings.protect_reads,
                   keys_configured=bool(settings.api_keys))
    # The edge layer wraps Litestar's whole handler (as Litestar's own OpenTelemetry plugin does),
    # so that requests no route matched are counted and carry a request id too. It never routes.
    edge = EdgeMiddleware(app.asgi_handler, metrics, access_log=settings.access_log,
                          max_header_bytes=settings.max_header_bytes)
    app.asgi_handler = cast("ASGIApp", edge)
    return app


def app_from_env() -> Litestar:
    """The uvicorn factory for `eventstate serve`: settings read once from the environment."""
    settings = Settings.from_env()
    configure_logging(settings.log_level)
    app = create_app(settings)
    # The modules and the app live as long as the process: move them out of the cyclic collector's
    # reach, whose full passes over them otherwise stall every request for 50-100 ms.
    gc.collect()
    gc.freeze()
    return app
