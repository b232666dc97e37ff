"""Every error becomes an RFC 9457 problem+json response here, in one table; no stack traces, ever."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from eventstate.checkpoints import CheckpointsDisabled, TreeInconsistent
from eventstate.commands import IdempotencyKeyInFlight, IdempotencyKeyReused
from eventstate.domain import InvalidUpdate, PreconditionFailed
from eventstate.http.schemas import PROBLEM_JSON
from eventstate.ports import StoreError, StoreUnavailable
from eventstate.serialization import BadRequest, problem_body
from eventstate.service import InvalidProofRequest, NotFound, NotReady
from eventstate.writer import Overloaded

log = logging.getLogger("eventstate.http")

RETRY_AFTER_SECONDS = "1"

_TITLES = {
    400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found",
    405: "Method not allowed", 406: "Not acceptable", 408: "Request timeout", 409: "Conflict",
    412: "Precondition failed", 413: "Request body too large", 415: "Unsupported media type",
    422: "Unprocessable update", 429: "Too many requests", 431: "Request header fields too large",
    500: "Internal error", 503: "Service unavailable",
}
# The kind of a problem that only an HTTP status describes; every `type` is urn:eventstate:problem:<kind>.
KINDS = {
    400: "bad-request", 401: "unauthorized", 403: "forbidden", 404: "not-found",
    405: "method-not-allowed", 406: "not-acceptable", 408: "request-timeout", 409: "conflict",
    412: "version-mismatch", 413: "body-too-large", 415: "unsupported-media-type",
    422: "invalid-update", 429: "rate-limited", 431: "headers-too-large", 500: "internal-error",
    503: "unavailable",
}


def problem(status: int, detail: str, *, kind: str | None = None,
            headers: Mapping[str, str] | None = None) -> Response[bytes]:
    """A problem+json response."""
    body = problem_body(status, detail, kind or KINDS.get(status, "error"), _TITLES.get(status, "Error"))
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=dict(headers or {}))


def _retry(status: int, kind: str) -> Callable[[Request[Any, Any, Any], Exception], Response[bytes]]:
    def handler(_request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
        return problem(status, str(exc), kind=kind, headers={"Retry-After": RETRY_AFTER_SECONDS})

    return handler


def _simple(status: int, kind: str) -> Callable[[Request[Any, Any, Any], Exception], Response[bytes]]:
    def handler(_request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
        return problem(status, str(exc), kind=kind)

    return handler


def _precondition(_request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    assert isinstance(exc, PreconditionFailed)
    return problem(412, str(exc), kind="version-mismatch", headers={"ETag": f'"{exc.actual}"'})


def _http(_request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    assert isinstance(exc, HTTPException)
    status = exc.status_code
    detail = exc.detail
    if isinstance(exc, ValidationException) and isinstance(exc.extra, list):
        details = [f"{e.get('key', '?')}: {e.get('message', 'invalid')}" for e in exc.extra
                   if isinstance(e, dict)]
        if details:
            detail = "invalid parameter " + "; ".join(details)
    if status == 413:
        detail = "the request body is larger than the limit"
    headers = dict(exc.headers or {})
    if status == 429:
        detail = "too many updates from this client; see Retry-After"
        headers["Retry-After"] = str(headers.get("RateLimit-Reset", RETRY_AFTER_SECONDS))
    if status >= 500:
        log.error("server error: %s", detail)
        detail = "the server could not handle this request"
    return problem(status, detail, headers=headers)


def _inconsistent(_request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.error("checkpoint refused: %s", exc)
    return problem(500, str(exc), kind="tree-inconsistent")


def _internal(_request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.error("unhandled error: %s: %s", type(exc).__name__, exc, exc_info=exc)
    return problem(500, "the server could not handle this request; nothing was acknowledged")


EXCEPTION_HANDLERS: dict[type[Exception], Callable[[Request[Any, Any, Any], Exception], Response[bytes]]] = {
    BadRequest: _simple(400, "malformed-body"),
    InvalidUpdate: _simple(422, "invalid-update"),
    PreconditionFailed: _precondition,
    IdempotencyKeyReused: _simple(422, "idempotency-key-reused"),
    IdempotencyKeyInFlight: _simple(409, "idempotency-key-in-flight"),
    Overloaded: _retry(503, "overloaded"),
    StoreUnavailable: _retry(503, "log-unavailable"),
    StoreError: _retry(503, "log-unavailable"),
    NotFound: _simple(404, "not-found"),
    NotReady: _retry(503, "not-ready"),
    CheckpointsDisabled: _simple(404, "checkpoints-disabled"),
    TreeInconsistent: _inconsistent,
    InvalidProofRequest: _simple(400, "invalid-proof-request"),
    HTTPException: _http,
    Exception: _internal,
}


def problem_parts(exc: Exception) -> tuple[int, bytes, dict[str, str]]:
    """Status, body and headers for `exc` through the table above (for the edge's fast path,
    which answers without Litestar's exception middleware)."""
    for kind in type(exc).__mro__:
        handler = EXCEPTION_HANDLERS.get(kind)
        if handler is not None:
            response = handler(None, exc)  # type: ignore[arg-type]  # handlers ignore the request
            return response.status_code or 500, response.content, dict(response.headers)
    raise exc  # pragma: no cover - Exception itself is in the table
