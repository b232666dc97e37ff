"""Shapes of request and response bodies, for the OpenAPI document (the wire form is serialization's)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import attrs
from litestar.enums import ParamType
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, Operation, Parameter, RequestBody, Schema
from litestar.openapi.spec.enums import OpenAPIType

from eventstate.domain import COUNTER_MAX, COUNTER_MIN, MESSAGE_MAX_CHARS

PROBLEM_JSON = "application/problem+json"


@attrs.frozen
class StateBody:
    """A state: counter and message."""

    counter: int
    message: str


@attrs.frozen
class EventBody:
    """One recorded event."""

    seq: int
    timestamp: str
    old: StateBody
    new: StateBody
    hash: str


@attrs.frozen
class StatusBody:
    """The current (or historical) state and its version."""

    counter: int
    message: str
    version: int
    updated_at: str | None


@attrs.frozen
class LogPage:
    """A page of the log and the URL of the next page (null at the end)."""

    items: list[EventBody]
    next: str | None


@attrs.frozen
class HealthBody:
    """A health probe's answer."""

    status: str
    version: int | None = None


@attrs.frozen
class ProblemDetails:
    """An RFC 9457 problem document."""

    type: str
    title: str
    status: int
    detail: str


UPDATE_SCHEMA = Schema(
    type=OpenAPIType.OBJECT,
    description="At least one of counter and message; unknown fields are refused.",
    properties={
        "counter": Schema(type=OpenAPIType.INTEGER,
                          minimum=COUNTER_MIN, maximum=COUNTER_MAX),
        "message": Schema(type=OpenAPIType.STRING, max_length=MESSAGE_MAX_CHARS),
    },
    additional_properties=False,
    min_properties=1,
)


HEADER_DOCS = {
    "If-Match": "Apply only if the state is at this version: an entity tag like \"42\" (or `*`)",
    "Idempotency-Key": "A key (1-255 visible ASCII characters, quotes optional) that makes retries safe",
    "If-None-Match": "Answer 304 if the state is still at this version",
    "Last-Event-ID": "Resume the stream after this seq (sent by EventSource on reconnect)",
}


def documented(*headers: str, body: Schema | None = None) -> type[Operation]:
    """An Operation class adding request headers (and a body) that the handler reads by hand."""

    @dataclass
    class _Documented(Operation):
        def __post_init__(self) -> None:
            self.parameters = [
                *(self.parameters or []),
                *(Parameter(name=h, param_in=ParamType.HEADER, required=False,
                            schema=Schema(type=OpenAPIType.STRING), description=HEADER_DOCS[h])
                  for h in headers),
            ]
            if body is not None:
                self.request_body = RequestBody(
                    content={"application/json": OpenAPIMediaType(schema=body)}, required=True
                )

    return _Documented


UpdateOperation = documented("If-Match", "Idempotency-Key", body=UPDATE_SCHEMA)
StatusOperation = documented("If-None-Match")
StreamOperation = documented("Last-Event-ID")


_DESCRIPTIONS = {
    304: "Not modified (the If-None-Match version is current)",
    400: "Malformed request (JSON, UTF-8 or a parameter)",
    401: "Missing or wrong X-API-KEY",
    404: "No such resource",
    409: "A request with the same Idempotency-Key is in progress",
    412: "If-Match does not name the current version",
    413: "Request body larger than the limit",
    422: "Well-formed but unacceptable update, or an Idempotency-Key reused with another body",
    429: "Too many requests; see Retry-After",
    503: "The log cannot be written or read right now; see Retry-After",
}


def problems(*codes: int) -> dict[int, ResponseSpec]:
    """OpenAPI response entries for the given error statuses, all problem+json."""
    return {
        code: ResponseSpec(data_container=ProblemDetails, media_type=PROBLEM_JSON,
                           description=_DESCRIPTIONS[code], generate_examples=False)
        for code in codes
    }


def ok(container: Any, description: str) -> dict[int, ResponseSpec]:
    """The documented 200 response."""
    return {200: ResponseSpec(data_container=container, description=description,
                              generate_examples=False)}
