"""Route handlers: parse the request, make one call to the service, shape the response."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from litestar import Request, get, post
from litestar.exceptions import ClientException
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import PathParameter, QueryParameter
from litestar.response import Stream
from litestar.response.base import ASGIResponse

from eventstate.commands import Command, Recorded
from eventstate.domain import Head, parse_timestamp
from eventstate.http.body import read_json_body
from eventstate.http.pages import IMMUTABLE, MUTABLE, Page, PageCache, PageKey, etag_for, is_immutable
from eventstate.http.responses import Encoded, RawHeaders
from eventstate.http.schemas import (
    ETAG_LIST_PATTERN,
    IDEMPOTENCY_KEY_PATTERN,
    SEQ_PATTERN,
    LogsOperation,
    PlainOperation,
    StatusOperation,
    StreamOperation,
    UpdateOperation,
    not_modified,
    ok,
    problems,
)
from eventstate.serialization import (
    ConsistencyProofBody,
    EventBody,
    HealthBody,
    InclusionProofBody,
    LogPage,
    StatusBody,
    decode_update,
    encode,
    event_body,
)
from eventstate.serialization import status_body as status_wire
from eventstate.service import EventService, NotReady
from eventstate.tlog import b64

JSON = "application/json"
MAX_LIMIT = 1000
MAX_SEQ = 2**63 - 1
_ETAG_LIST = re.compile(ETAG_LIST_PATTERN)
_ETAG = re.compile(r'(W/)?"([0-9]{1,19})"')
_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)
_SEQ = re.compile(SEQ_PATTERN)
# An unencoded "+" in a query string arrives as a space, so a space may stand for it.
RFC3339_PATTERN = (r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?"
                   r"([Zz]|[+ -][0-9]{2}:[0-9]{2})$")


def service(request: Request[Any, Any, Any]) -> EventService:
    """The process's EventService, installed by the app's lifespan."""
    svc: EventService = request.app.state.service
    return svc


def _json(body: bytes, headers: RawHeaders | None = None, status: int = 200) -> ASGIResponse:
    # An ASGIResponse goes out as is: the hot paths skip Litestar's response rendering.
    return Encoded(body, headers, status_code=status)


def _etag(version: int) -> RawHeaders:
    return [(b"etag", b'"%d"' % version)]


def _header(request: Request[Any, Any, Any], name: bytes) -> str | None:
    """A request header read straight from the ASGI scope (names there are lower-case)."""
    for key, value in request.scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def parse_if_match(value: str | None) -> frozenset[int] | None:
    """The versions an `If-Match` header admits; None for absent or `*` (any version)."""
    if value is None or value.strip() == "*":
        return None
    if not _ETAG_LIST.fullmatch(value):
        raise ClientException(f"If-Match must be a list of entity tags like \"42\", not {value!r}")
    # A weak tag never matches under strong comparison, so only strong ones are kept.
    return frozenset(int(v) for weak, v in _ETAG.findall(value) if not weak and int(v) <= MAX_SEQ)


def parse_idempotency_key(value: str | None) -> str | None:
    """The key of an `Idempotency-Key` header: a structured-field string, or the same bare."""
    if value is None:
        return None
    if not _KEY.fullmatch(value):
        raise ClientException("Idempotency-Key must be 1 to 255 visible ASCII characters, "
                              "optionally in double quotes")
    return value[1:-1] if value.startswith('"') else value


@get("/status", summary="Current state", operation_class=StatusOperation,
     responses={**ok(StatusBody, "The state, its version and when it last changed"),
                **not_modified(), **problems(400, 401, 404)})
async def get_status(
    request: Request[Any, Any, Any],
    as_of: Annotated[int | None, QueryParameter(ge=0, le=2**63 - 1,
                                                description="State right after this seq")] = None,
    at: Annotated[str | None, QueryParameter(
        pattern=RFC3339_PATTERN, description="State at this RFC 3339 time (with Z or an offset)")] = None,
) -> ASGIResponse:
    """The current state with a strong ETag; or, with `as_of`/`at`, the state at a point in history."""
    svc = service(request)
    if as_of is not None and at is not None:
        raise ClientException("give at most one of as_of and at")
    if at is not None:
        head = svc.status_at(_moment(at))
    elif as_of is not None:
        head = svc.status_as_of(as_of)
    else:
        head = await svc.fresh_status()
        if_none_match = _header(request, b"if-none-match")
        if if_none_match is not None and if_none_match.strip() in (f'"{head.version}"', "*"):
            return Encoded(b"", _etag(head.version), status_code=304)
    return _json(status_body(head), _etag(head.version))


def status_body(head: Head) -> bytes:
    """The JSON body of `GET /status` for `head`."""
    return encode(status_wire(head))


def _moment(text: str) -> datetime:
    try:
        return parse_timestamp(text.replace(" ", "+"))  # a '+' in a query string arrives as a space
    except ValueError:
        raise ClientException(f"at must be an RFC 3339 timestamp with an offset, not {text!r}") from None


@post("/update", status_code=200, operation_class=UpdateOperation, summary="Record an update",
      responses={**ok(EventBody, "The recorded event"),
                 **problems(400, 401, 408, 409, 412, 413, 415, 422, 429, 503)})
async def post_update(request: Request[Any, Any, Any]) -> ASGIResponse:
    """Append one update to the log; answer with the event once it is durably committed."""
    body, headers = await record_update(service(request), await read_json_body(request),
                                        _header(request, b"if-match"),
                                        _header(request, b"idempotency-key"))
    return _json(body, headers)


async def record_update(svc: EventService, body: bytes, if_match: str | None,
                        idempotency_key: str | None) -> tuple[bytes, RawHeaders]:
    """The whole of `POST /update` after the body is read: the event's JSON and the headers."""
    command = Command(decode_update(body), parse_if_match(if_match),
                      parse_idempotency_key(idempotency_key))
    recorded: Recorded = await svc.update(command)
    headers = _etag(recorded.event.seq)
    if recorded.replayed:
        headers.append((b"idempotent-replayed", b"true"))
    return encode(event_body(recorded.event)), headers


@get("/logs", sync_to_thread=False, summary="Browse the event log", operation_class=LogsOperation,
     responses={**ok(LogPage, "A page of events and the next page's URL"), **not_modified(),
                **problems(400, 401)})
def get_logs(
    request: Request[Any, Any, Any],
    after: Annotated[int, QueryParameter(ge=0, le=2**63 - 1, description="Events after this seq")] = 0,
    before: Annotated[int | None,
                      QueryParameter(ge=1, le=2**63 - 1, description="Events before this seq")] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT, description="Page size")] = 50,
    order: Annotated[Literal["asc", "desc"], QueryParameter(description="Oldest or newest first")] = "asc",
) -> ASGIResponse:
    """A page of the log by keyset (`after`/`before`), with `next` and a `Link: rel="next"` header.
    A full page anchored by `after` or `before` never changes: strong ETag, cached for a year."""
    key = (after, before, limit, order == "desc")
    cache: PageCache = request.app.state.page_cache
    page = cache.get(key)
    if page is None:
        page, immutable = _page(service(request), key)
        if immutable:
            cache.put(key, page)
    else:
        immutable = True
    headers = [(b"cache-control", _IMMUTABLE if immutable else _MUTABLE)]
    if page.link:
        headers.append((b"link", page.link.encode()))
    if immutable:
        headers.append((b"etag", page.etag.encode()))
        if _header(request, b"if-none-match") in (page.etag, "*"):
            return Encoded(b"", headers, status_code=304)
    return _json(page.body, headers)


_IMMUTABLE = IMMUTABLE.encode()
_MUTABLE = MUTABLE.encode()


def _page(svc: EventService, key: PageKey) -> tuple[Page, bool]:
    after, before, limit, descending = key
    events = svc.page(after=after, before=before, limit=limit, descending=descending)
    next_url = None
    if len(events) == limit:
        last = events[-1].seq
        params: dict[str, Any] = {"order": "desc", "before": last} if descending else {"after": last}
        if descending and after:
            params["after"] = after
        if not descending and before is not None:
            params["before"] = before
        params["limit"] = limit
        if not (descending and last <= after + 1):
            next_url = f"/logs?{urlencode(params)}"
    body = encode(LogPage([event_body(e) for e in events], next_url))
    etag = etag_for(key, events[-1].hash) if events else '"empty"'
    return (Page(body, etag, f'<{next_url}>; rel="next"' if next_url else None),
            is_immutable(key, len(events)))


HEARTBEAT_SECONDS = 15.0
STREAM_PAGE = 500


@get("/logs/stream", sync_to_thread=False, summary="Live tail of the log (Server-Sent Events)",
     operation_class=StreamOperation,
     responses={**problems(400, 401)})
def stream_logs(
    request: Request[Any, Any, Any],
    after: Annotated[int | None, QueryParameter(ge=0, le=2**63 - 1,
                                                description="Start after this seq")] = None,
) -> Stream:
    """Every event after the cursor (`after` or `Last-Event-ID`), each once and in order, then new
    ones as they are committed, with heartbeat comments while the log is quiet."""
    cursor = after if after is not None else _last_event_id(request)
    return Stream(_tail(service(request), request.app.state.tail_frames, cursor),
                  media_type="text/event-stream; charset=utf-8",
                  headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _last_event_id(request: Request[Any, Any, Any]) -> int:
    value = _header(request, b"last-event-id")
    if value is None:
        return 0
    if not _SEQ.fullmatch(value.strip()) or int(value) > MAX_SEQ:
        raise ClientException("Last-Event-ID must be the seq of an event")
    return int(value)


KEEP_ALIVE = b": keep-alive\n\n"


class TailFrames:
    """The Server-Sent Events bytes of the events after a cursor, encoded once for every tail that
    a commit wakes (hundreds of tails then cost one read, one encoding and one write each)."""

    def __init__(self) -> None:
        self._version = -1
        self._frames: dict[int, tuple[bytes, int]] = {}

    def after(self, svc: EventService, cursor: int) -> tuple[bytes, int]:
        """The frames of the events after `cursor` (up to a page) and the last seq in them."""
        version = svc.projection.cached().version
        if version != self._version:
            self._frames.clear()
            self._version = version
        hit = self._frames.get(cursor)
        if hit is None:
            events = svc.events_after(cursor, STREAM_PAGE)
            frames = b"".join(b"id: %d\nevent: event\ndata: %s\n\n" % (e.seq, encode(event_body(e)))
                              for e in events)
            hit = self._frames[cursor] = (frames, events[-1].seq if events else cursor)
        return hit


async def _tail(svc: EventService, frames: TailFrames, cursor: int) -> AsyncIterator[bytes]:
    while True:
        chunk, last = frames.after(svc, cursor)
        if chunk:
            yield chunk
            cursor = last
            continue
        if not await svc.wait_past(cursor, HEARTBEAT_SECONDS):
            yield KEEP_ALIVE


@get("/logs/{seq:int}", sync_to_thread=False, summary="One event", operation_class=PlainOperation,
     responses={**ok(EventBody, "The event"), **problems(400, 401, 404)})
def get_event(
    request: Request[Any, Any, Any],
    seq: Annotated[int, PathParameter(ge=0, le=2**63 - 1, description="The event's seq")],
) -> ASGIResponse:
    """One event by seq, or 404."""
    return _json(encode(event_body(service(request).event(seq))))


PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


@get("/metrics", sync_to_thread=False, operation_class=PlainOperation, summary="Prometheus metrics",
     responses={200: ResponseSpec(data_container=str, media_type=PROMETHEUS_TEXT,
                                  description="Metrics in the Prometheus text format",
                                  generate_examples=False), **problems(401)})
def metrics(request: Request[Any, Any, Any]) -> ASGIResponse:
    """Request counts and latency by route and status, commits, batch sizes, projection lag."""
    return ASGIResponse(body=request.app.state.metrics.render(), media_type=PROMETHEUS_TEXT)


@get("/health/live", sync_to_thread=False, operation_class=PlainOperation, summary="Liveness",
     responses=ok(HealthBody, "Alive"))
def live() -> ASGIResponse:
    """The process answers."""
    return _json(encode(HealthBody("alive")))


@get("/health/ready", sync_to_thread=False, operation_class=PlainOperation, summary="Readiness",
     responses={**ok(HealthBody, "Ready to serve reads and writes"), **problems(503)})
def ready(request: Request[Any, Any, Any]) -> ASGIResponse:
    """Ready: the log is reachable and writable and the projection is current."""
    state = service(request).readiness()
    if not state.ready:
        raise NotReady(state.reason)
    return _json(encode(HealthBody("ready", state.version)))


# ---- the verifiable log: signed checkpoints and Merkle proofs (RFC 9162, C2SP) ------------------

CHECKPOINT_TEXT = "text/plain; charset=utf-8"


@get("/checkpoint", sync_to_thread=False, operation_class=PlainOperation,
     summary="Signed tree head (C2SP tlog-checkpoint)",
     responses={200: ResponseSpec(data_container=str, media_type=CHECKPOINT_TEXT,
                                  description="A c2sp.org/tlog-checkpoint (origin, tree size, base64 "
                                              "RFC 9162 root) signed as a c2sp.org/signed-note with "
                                              "Ed25519", generate_examples=False),
                **problems(401, 404, 500, 503)})
def get_checkpoint(request: Request[Any, Any, Any]) -> ASGIResponse:
    """The log's current tree head, signed; 404 when the server has no signing key."""
    return ASGIResponse(body=service(request).checkpoint().encode(), media_type=CHECKPOINT_TEXT)


@get("/proofs/inclusion/{seq:int}", sync_to_thread=False, operation_class=PlainOperation,
     summary="Inclusion proof of one event (RFC 9162 §2.1.3)",
     responses={**ok(InclusionProofBody, "The audit path of the event's leaf"),
                **problems(400, 401, 404, 503)})
def get_inclusion_proof(
    request: Request[Any, Any, Any],
    seq: Annotated[int, PathParameter(ge=1, le=MAX_SEQ, description="The event's seq (leaf seq - 1)")],
    tree_size: Annotated[int | None, QueryParameter(
        ge=1, le=MAX_SEQ, description="The tree to prove inclusion in (default: the current head)")] = None,
) -> ASGIResponse:
    """The hashes that lead from event `seq`'s leaf to the root of the tree of `tree_size` events."""
    size, hashes = service(request).inclusion_proof(seq, tree_size)
    return _json(encode(InclusionProofBody(seq, size, [b64(h) for h in hashes])))


@get("/proofs/consistency", sync_to_thread=False, operation_class=PlainOperation,
     summary="Consistency proof between two tree sizes (RFC 9162 §2.1.4)",
     responses={**ok(ConsistencyProofBody, "The proof that the smaller tree is a prefix of the larger"),
                **problems(400, 401, 404, 503)})
def get_consistency_proof(
    request: Request[Any, Any, Any],
    first: Annotated[int, QueryParameter(name="from", ge=1, le=MAX_SEQ,
                                         description="The earlier tree size")],
    second: Annotated[int, QueryParameter(name="to", ge=1, le=MAX_SEQ,
                                          description="The later tree size (at most the head)")],
) -> ASGIResponse:
    """The hashes that show the tree of `from` events is a prefix of the tree of `to` events."""
    hashes = service(request).consistency_proof(first, second)
    return _json(encode(ConsistencyProofBody(first, second, [b64(h) for h in hashes])))
