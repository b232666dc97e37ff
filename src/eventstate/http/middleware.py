"""One pure-ASGI layer around the whole app: request ids, security headers, header limits, metrics
and the optional access log. It wraps Litestar's handler so that 404s and 405s are counted too."""

from __future__ import annotations

import itertools
import re
import secrets
import time
from collections.abc import Callable
from typing import Any

import structlog

from eventstate.observability import Metrics

_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
# The API serves JSON only; the interactive docs under /schema need scripts and styles.
_API_CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")
_TOO_LARGE = (b'{"type":"about:blank","title":"Request header fields too large","status":431,'
              b'"detail":"the request headers are larger than the limit"}')

ASGIApp = Any


class EdgeMiddleware:
    """Everything every HTTP response gets, at a few microseconds per request."""

    def __init__(self, app: ASGIApp, metrics: Metrics, *, access_log: bool,
                 max_header_bytes: int, plain_status: Callable[[], tuple[bytes, int]] | None = None,
                 ) -> None:
        self.app = app
        self.plain_status = plain_status
        self.metrics = metrics
        self.access_log = access_log
        self.max_header_bytes = max_header_bytes
        self.log = structlog.get_logger("eventstate.access")
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._id_prefix = secrets.token_hex(4).encode()
        self._ids = itertools.count(1)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = b""
        header_bytes = 0
        conditional = False
        for name, value in scope["headers"]:
            header_bytes += len(name) + len(value)
            if name == b"x-request-id" and _REQUEST_ID.fullmatch(value):
                request_id = value
            elif name == b"if-none-match":
                conditional = True
        if not request_id:
            # A random per-process prefix and a counter: unique across workers and restarts in
            # practice, and far cheaper per request than fresh randomness.
            request_id = b"%s%08x" % (self._id_prefix, next(self._ids))
        structlog.contextvars.bind_contextvars(request_id=request_id.decode())
        extra = [(b"x-request-id", request_id), *_SECURITY_HEADERS]
        if not scope["path"].startswith("/schema"):
            extra.append(_API_CSP)
        status = 500

        async def send_with_headers(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        if header_bytes > self.max_header_bytes:
            await _reply(send_with_headers, 431, _TOO_LARGE)
        elif (self.plain_status is not None and scope["path"] == "/status"
              and scope["method"] == "GET" and not scope["query_string"] and not conditional):
            # The most frequent request, answered without routing: same body and ETag as the
            # handler (routes.status_body); anything else about /status goes through Litestar.
            body, version = self.plain_status()
            scope["path_template"] = "/status"
            await _reply(send_with_headers, 200, body, b"application/json",
                         [(b"etag", b'"%d"' % version)])
        else:
            await self.app(scope, receive, send_with_headers)
        route = scope.get("path_template") or "unmatched"
        elapsed = time.perf_counter() - started
        key = (route, scope["method"], status)
        series = self._series.get(key)
        if series is None:  # prometheus_client's labels() locks and re-stringifies on every call
            series = self._series[key] = (self.metrics.requests.labels(*key),
                                          self.metrics.latency.labels(route, scope["method"]))
        series[0].inc()
        series[1].observe(elapsed)
        if self.access_log:
            self.log.info("request", request_id=request_id.decode(), method=scope["method"],
                          path=scope["path"], route=route, status=status,
                          duration_ms=round(elapsed * 1000, 3))


async def _reply(send: Any, status: int, body: bytes, media_type: bytes = b"application/problem+json",
                 headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", media_type),
                            (b"content-length", b"%d" % len(body)), *(headers or ())]})
    await send({"type": "http.response.body", "body": body})
