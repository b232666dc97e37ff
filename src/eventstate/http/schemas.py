"""Shapes of request and response bodies, for the OpenAPI document (the wire form is serialization's)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import msgspec
from litestar.enums import ParamType
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import (
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    Operation,
    Parameter,
    RequestBody,
    Schema,
)
from litestar.openapi.spec.enums import OpenAPIType

from eventstate.serialization import EXAMPLES, ProblemBody, UpdateBody

PROBLEM_JSON = "application/problem+json"


def _schema(json_schema: dict[str, Any]) -> Schema:
    """A Litestar Schema from msgspec's JSON Schema of a wire type (one flat object)."""
    names = {"type": "type", "description": "description", "minimum": "minimum",
             "maximum": "maximum", "maxLength": "max_length", "pattern": "pattern",
             "format": "format", "minProperties": "min_properties", "title": "title",
             "examples": "examples"}
    fields: dict[str, Any] = {names[k]: v for k, v in json_schema.items() if k in names}
    if "type" in fields:
        fields["type"] = OpenAPIType(fields["type"])
    if "properties" in json_schema:
        fields["properties"] = {k: _schema(v) for k, v in json_schema["properties"].items()}
    if "additionalProperties" in json_schema:
        fields["additional_properties"] = json_schema["additionalProperties"]
    return Schema(**fields)


def _update_schema() -> Schema:
    definitions = msgspec.json.schema(UpdateBody)["$defs"]
    body = {**definitions["UpdateBody"], "minProperties": 1, "examples": [EXAMPLES["UpdateBody"]]}
    return _schema(body)


# The update body's schema, generated from the wire type that decodes it.
UPDATE_SCHEMA = _update_schema()


# The server parses these headers with exactly these expressions (routes.py), so the document and
# the behaviour cannot drift apart.
ETAG_LIST_PATTERN = r'^\s*(\*|(W/)?"[0-9]{1,19}"(\s*,\s*(W/)?"[0-9]{1,19}")*)\s*$'
IDEMPOTENCY_KEY_PATTERN = r'^("[\x21\x23-\x7e]{1,255}"|[\x21\x23-\x7e][\x21-\x7e]{0,254})$'
SEQ_PATTERN = r"^[0-9]{1,19}$"

REQUEST_HEADERS = {
    "If-Match": ("Apply only if the state is at one of these versions: entity tags like \"42\", or *",
                 ETAG_LIST_PATTERN),
    "Idempotency-Key": ("A key (1-255 visible ASCII characters, quotes optional) that makes retries safe",
                        IDEMPOTENCY_KEY_PATTERN),
    "If-None-Match": ("Answer 304 if the state is still at this version", None),
    "Last-Event-ID": ("Resume the stream after this seq (sent by EventSource on reconnect)", SEQ_PATTERN),
}

RESPONSE_HEADERS = {
    "ETag": "The version of the state the response shows, as a strong entity tag",
    "Retry-After": "Seconds to wait before retrying",
    "Link": 'The next page, as <URL>; rel="next"',
    "Idempotent-Replayed": "true when this is the stored answer to an earlier request with the same key",
    "X-Request-ID": "The request's id, also in the server's logs",
}


def _header(description: str, pattern: str | None = None) -> OpenAPIHeader:
    return OpenAPIHeader(schema=Schema(type=OpenAPIType.STRING, pattern=pattern),
                         description=description)


@dataclass
class DocumentedOperation(Operation):
    """Adds what handlers do by hand to the generated operation: request headers read from the
    scope, a strictly decoded body, and the headers every response carries."""

    def __post_init__(self) -> None:
        self.parameters = [
            *(self.parameters or []),
            *(Parameter(name=name, param_in=ParamType.HEADER, required=False,
                        schema=Schema(type=OpenAPIType.STRING, pattern=pattern), description=text)
              for name, (text, pattern) in REQUEST_HEADERS.items() if name in self.request_headers),
        ]
        if self.body is not None:
            self.request_body = RequestBody(
                content={"application/json": OpenAPIMediaType(schema=self.body)}, required=True
            )
        for status, response in (self.responses or {}).items():
            if isinstance(response, OpenAPIResponse):
                names = ["X-Request-ID", *self.response_headers.get(status, ())]
                if status in ("429", "503"):
                    names.append("Retry-After")
                response.headers = {**(response.headers or {}),
                                    **{n: _header(RESPONSE_HEADERS[n]) for n in names}}
                if status == "304":
                    response.content = None
        if self.stream is not None and self.responses is not None:
            self.responses["200"] = OpenAPIResponse(
                description="Server-Sent Events: one `event` message per log event, `: keep-alive` "
                            "comments while the log is quiet",
                content={"text/event-stream": OpenAPIMediaType(schema=self.stream)},
                headers={"X-Request-ID": _header(RESPONSE_HEADERS["X-Request-ID"])},
            )

    request_headers: ClassVar[tuple[str, ...]] = ()
    response_headers: ClassVar[dict[str, tuple[str, ...]]] = {}
    body: ClassVar[Schema | None] = None
    stream: ClassVar[Schema | None] = None


def documented(*request_headers: str, body: Schema | None = None, stream: Schema | None = None,
               response_headers: dict[str, tuple[str, ...]] | None = None) -> type[Operation]:
    """An Operation class for one route: its hand-read request headers, body and response headers."""
    return type("Documented", (DocumentedOperation,), {
        "request_headers": request_headers, "body": body, "stream": stream,
        "response_headers": response_headers or {},
    })


UpdateOperation = documented(
    "If-Match", "Idempotency-Key", body=UPDATE_SCHEMA,
    response_headers={"200": ("ETag", "Idempotent-Replayed"), "412": ("ETag",)},
)
StatusOperation = documented("If-None-Match", response_headers={"200": ("ETag",), "304": ("ETag",)})
SSE_MESSAGE = Schema(
    type=OpenAPIType.OBJECT,
    description="One Server-Sent Events message per event: `id` is the seq, `data` the event's JSON",
    properties={
        "event": Schema(type=OpenAPIType.STRING, const="event"),
        "id": Schema(type=OpenAPIType.STRING, pattern=r"^[0-9]+$"),
        "data": Schema(type=OpenAPIType.STRING, content_media_type="application/json"),
    },
    required=["event", "id", "data"],
)
StreamOperation = documented("Last-Event-ID", stream=SSE_MESSAGE)
LogsOperation = documented("If-None-Match", response_headers={"200": ("Link", "ETag"),
                                                              "304": ("ETag",)})
PlainOperation = documented()

_DESCRIPTIONS = {
    400: "Malformed request (JSON, UTF-8 or a parameter)",
    401: "Missing or wrong X-API-KEY",
    404: "No such resource",
    408: "The request body did not arrive in time",
    409: "A request with the same Idempotency-Key is in progress",
    412: "If-Match does not name the current version",
    413: "Request body larger than the limit",
    415: "The body is not application/json",
    422: "Well-formed but unacceptable update, or an Idempotency-Key reused with another body",
    429: "Too many requests; see Retry-After",
    500: "The server refused or failed to handle the request",
    503: "The log cannot be written or read right now; see Retry-After",
}


def problems(*codes: int) -> dict[int, ResponseSpec]:
    """OpenAPI response entries for the given error statuses, all problem+json."""
    return {
        code: ResponseSpec(data_container=ProblemBody, media_type=PROBLEM_JSON,
                           description=_DESCRIPTIONS[code], generate_examples=False)
        for code in codes
    }


def not_modified() -> dict[int, ResponseSpec]:
    """The documented 304: no body, the current ETag."""
    return {304: ResponseSpec(data_container=None, description="Not modified: the If-None-Match "
                              "version is current", generate_examples=False)}


def ok(container: Any, description: str) -> dict[int, ResponseSpec]:
    """The documented 200 response."""
    return {200: ResponseSpec(data_container=container, description=description,
                              generate_examples=False)}
