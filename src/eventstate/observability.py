"""Structured logs (structlog, JSON lines) and Prometheus metrics.

Nothing here is built at import time: the entry point calls `configure_logging` once, and each app
gets its own `Metrics` registry, so several apps in one process (tests) never share counters.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from eventstate.writer import BatchStats

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


def configure_logging(level: str) -> None:
    """Send eventstate's, uvicorn's and Litestar's logs to stderr as one JSON object per line."""
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
    ))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "litestar"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    # eventstate writes its own structured access log (EVENTSTATE_ACCESS_LOG), with the request id.
    logging.getLogger("uvicorn.access").disabled = True


class Metrics:
    """The Prometheus metrics of one app, in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("eventstate_http_requests", "HTTP requests answered",
                                ["route", "method", "status"], registry=r)
        self.latency = Histogram("eventstate_http_request_duration_seconds",
                                 "Time from request start to the last response byte",
                                 ["route", "method"], buckets=_LATENCY_BUCKETS, registry=r)
        self.events = Counter("eventstate_events_appended", "Events committed to the log", registry=r)
        self.batch_size = Histogram("eventstate_commit_batch_size",
                                    "Updates per group commit", buckets=_BATCH_BUCKETS, registry=r)
        self.commit_seconds = Histogram("eventstate_commit_duration_seconds",
                                        "Duration of one group commit (transaction and flush)",
                                        buckets=_LATENCY_BUCKETS, registry=r)
        self.commit_failures = Counter("eventstate_commit_failures",
                                       "Group commits that failed (every request got 503)", registry=r)
        self.version = Gauge("eventstate_log_version", "Seq of the last event this process has seen",
                             registry=r)
        self.lag = Gauge("eventstate_projection_lag_events",
                         "Events committed to the log that this process's projection has not seen",
                         registry=r)
        self.pending = Gauge("eventstate_writer_pending", "Updates waiting for the writer", registry=r)
        self.head_checks = Gauge(
            "eventstate_head_checks_started",
            "Head checks asked of a remote log (PostgreSQL) for fresh reads; one serves every read "
            "that arrived while the previous one ran", registry=r)
        self.fresh_reads = Gauge("eventstate_head_check_reads",
                                 "Reads that waited for a head check of a remote log", registry=r)

    def observe_batch(self, stats: BatchStats) -> None:
        """Record one group commit (called on the writer thread)."""
        self.batch_size.observe(stats.size)
        self.commit_seconds.observe(stats.seconds)
        if stats.ok:
            self.events.inc(stats.appended)
        else:
            self.commit_failures.inc()

    def track(self, version: Callable[[], float], lag: Callable[[], float],
              pending: Callable[[], float]) -> None:
        """Gauges computed at scrape time from the running service."""
        self.version.set_function(version)
        self.lag.set_function(lag)
        self.pending.set_function(pending)

    def track_head_checks(self, started: Callable[[], float], reads: Callable[[], float]) -> None:
        """Gauges of the shared head check (what the freshness promise costs on a remote log)."""
        self.head_checks.set_function(started)
        self.fresh_reads.set_function(reads)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
