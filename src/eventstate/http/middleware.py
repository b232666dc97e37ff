"""One pure-ASGI layer around the whole app: request ids, security headers, the header-size limit,
metrics and the optional access log. It wraps Litestar's handler so that 404s and 405s are counted
too. It never answers a request itself (except the 431 for oversized headers, which no route may
see): every request is routed by Litestar, through the same guards, middleware and error table."""

from __future__ import annotations

import itertools
import re
import secrets
import time
from typing import Any

import structlog

from eventstate.observability import Metrics
from eventstate.serialization import problem_body

_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
# The API serves JSON only; the interactive docs under /schema need scripts and styles, and the
# console under /console sets its own, stricter policy (http/console.py).
_API_CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")
PROBLEM_JSON = b"application/problem+json"

ASGIApp = Any


class _HeadAnswered(BaseException):
    """Raised into the GET handler serving a HEAD once the headers are sent: the body is never
    wanted, and a live tail would otherwise stream on. A BaseException, so no handler renders it."""


class EdgeMiddleware:
    """Everything every HTTP response gets, at a few microseconds per request; never routes."""

    def __init__(self, app: ASGIApp, metrics: Metrics, *, access_log: bool,
                 max_header_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = access_log
        self.max_header_bytes = max_header_bytes
        self.log = structlog.get_logger("eventstate.access")
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._id_prefix = secrets.token_hex(4).encode()
        self._ids = itertools.count(1)
        self._too_large = problem_body(431, "the request headers are larger than the limit",
                                       "headers-too-large", "Request header fields too large")

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = b""
        header_bytes = 0
        for name, value in scope["headers"]:
            header_bytes += len(name) + len(value)
            if name == b"x-request-id" and _REQUEST_ID.fullmatch(value):
                request_id = value
        if not request_id:
            # A random per-process prefix and a counter: unique across workers and restarts in
            # practice, and far cheaper per request than fresh randomness.
            request_id = b"%s%08x" % (self._id_prefix, next(self._ids))
        structlog.contextvars.bind_contextvars(request_id=request_id.decode())
        extra = [(b"x-request-id", request_id), *_SECURITY_HEADERS]
        path = scope["path"]
        if not (path.startswith("/schema") or path == "/console" or path.startswith("/console/")):
            extra.append(_API_CSP)
        method = scope["method"]
        head = method == "HEAD"
        if head:
            # HEAD is GET without the body (RFC 9110 9.3.2): the same route, guards and headers.
            # A copy: the server keeps its own scope, and must still know it answers a HEAD.
            scope = {**scope, "method": "GET"}
        status = 500
        answered = False

        async def send_with_headers(message: dict[str, Any]) -> None:
            nonlocal status, answered
            if answered:
                raise _HeadAnswered  # a HEAD response ends with its headers; stop the GET handler
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), *extra]
                if head:
                    await send(message)
                    answered = True
                    message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        if header_bytes > self.max_header_bytes:
            await send_with_headers({"type": "http.response.start", "status": 431, "headers": [
                (b"content-type", PROBLEM_JSON), (b"content-length", b"%d" % len(self._too_large))]})
            await send_with_headers({"type": "http.response.body", "body": self._too_large})
        elif head:
            try:
                await self.app(scope, receive, send_with_headers)
            except* _HeadAnswered:
                pass
        else:
            await self.app(scope, receive, send_with_headers)
        self._record(scope, method, status, started, request_id)

    def _record(self, scope: dict[str, Any], method: str, status: int, started: float,
                request_id: bytes) -> None:
        route = scope.get("path_template") or "unmatched"
        elapsed = time.perf_counter() - started
        key = (route, method, status)
        series = self._series.get(key)
        if series is None:  # prometheus_client's labels() locks and re-stringifies on every call
            series = self._series[key] = (self.metrics.requests.labels(*key),
                                          self.metrics.latency.labels(route, method))
        series[0].inc()
        series[1].observe(elapsed)
        if self.access_log:
            self.log.info("request", request_id=request_id.decode(), method=method,
                          path=scope["path"], route=route, status=status,
                          duration_ms=round(elapsed * 1000, 3))
