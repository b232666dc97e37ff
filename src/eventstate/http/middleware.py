"""One pure-ASGI layer around the whole app: request ids, security headers, header limits, metrics
and the optional access log. It wraps Litestar's handler so that 404s and 405s are counted too."""

from __future__ import annotations

import itertools
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from litestar.exceptions.http_exceptions import RequestEntityTooLarge

from eventstate.http.problems import problem_parts
from eventstate.observability import Metrics

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
_CONDITIONAL = (b"if-none-match",)
PROBLEM_JSON = b"application/problem+json"
PlainUpdate = Callable[[bytes, str | None, str | None, bytes], Awaitable[tuple[bytes, dict[str, str]]]]
_TOO_LARGE = (b'{"type":"about:blank","title":"Request header fields too large","status":431,'
              b'"detail":"the request headers are larger than the limit"}')

ASGIApp = Any


class EdgeMiddleware:
    """Everything every HTTP response gets, at a few microseconds per request."""

    def __init__(self, app: ASGIApp, metrics: Metrics, *, access_log: bool,
                 max_header_bytes: int, plain_status: Callable[[], tuple[bytes, int]] | None = None,
                 plain_update: PlainUpdate | None = None, max_body_bytes: int = 64 * 1024) -> None:
        self.app = app
        self.plain_status = plain_status
        self.plain_update = plain_update
        self.max_body_bytes = max_body_bytes
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
            elif name in _CONDITIONAL:
                conditional = True
        if not request_id:
            # A random per-process prefix and a counter: unique across workers and restarts in
            # practice, and far cheaper per request than fresh randomness.
            request_id = b"%s%08x" % (self._id_prefix, next(self._ids))
        structlog.contextvars.bind_contextvars(request_id=request_id.decode())
        extra = [(b"x-request-id", request_id), *_SECURITY_HEADERS]
        path = scope["path"]
        if not (path.startswith("/schema") or path == "/console" or path.startswith("/console/")):
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
        elif (self.plain_update is not None and scope["path"] == "/update"
              and scope["method"] == "POST"):
            # Updates, answered without routing: the handler's own function does the work and
            # every error goes through the one problem table (problems.problem_parts).
            scope["path_template"] = "/update"
            await self._update(scope, receive, send_with_headers)
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


    async def _update(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert self.plain_update is not None
        wanted = {b"if-match": None, b"idempotency-key": None, b"x-api-key": b"",
                  b"content-length": None}
        for name, value in scope["headers"]:
            if name in wanted:
                wanted[name] = value
        try:
            body = await _read_body(receive, self.max_body_bytes, wanted[b"content-length"])
            if body is None:
                return  # the client went away before sending its body: nothing to answer
            payload, headers = await self.plain_update(
                body, _text(wanted[b"if-match"]), _text(wanted[b"idempotency-key"]),
                wanted[b"x-api-key"] or b"")
        except Exception as exc:
            status, problem, problem_headers = problem_parts(exc)
            await _reply(send, status, problem, PROBLEM_JSON,
                         [(k.lower().encode(), v.encode()) for k, v in problem_headers.items()])
            return
        await _reply(send, 200, payload, b"application/json",
                     [(k.encode(), v.encode()) for k, v in headers.items()])


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")


async def _read_body(receive: Any, limit: int, content_length: bytes | None) -> bytes | None:
    """The whole request body, or RequestEntityTooLarge past `limit`; None if the client left."""
    if content_length is not None and content_length.isdigit() and int(content_length) > limit:
        raise RequestEntityTooLarge
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise RequestEntityTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _reply(send: Any, status: int, body: bytes, media_type: bytes = b"application/problem+json",
                 headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", media_type),
                            (b"content-length", b"%d" % len(body)), *(headers or ())]})
    await send({"type": "http.response.body", "body": body})
