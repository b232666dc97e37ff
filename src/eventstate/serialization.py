"""The wire types: every JSON shape eventstate reads or writes, defined once as msgspec Structs.

Litestar generates the OpenAPI document from these same Structs, and the server, the audit tools and
the live tail encode through them; no JSON is assembled anywhere else. To add a shape (a proof, a
checkpoint), add a Struct here and name it in a route's `responses`.

Request bodies are decoded strictly: a JSON boolean or float is not an integer, a string of digits is
not an integer, unknown fields, nulls and duplicate keys are refused. Anything refused raises
`BadRequest` (malformed JSON) or `InvalidUpdate` (well-formed but unacceptable), naming the field.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Annotated, Any

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from eventstate.domain import (
    COUNTER_MAX,
    COUNTER_MIN,
    MESSAGE_MAX_CHARS,
    Event,
    Head,
    InvalidUpdate,
    State,
    Update,
)

SEQ_MAX = 2**63 - 1
TIMESTAMP_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z$"
HASH_PATTERN = r"^[0-9a-f]{64}$"
PROBLEM_TYPE_PREFIX = "urn:eventstate:problem:"

Counter = Annotated[int, Meta(ge=COUNTER_MIN, le=COUNTER_MAX, description="A signed 64-bit integer")]
Message = Annotated[str, Meta(max_length=MESSAGE_MAX_CHARS, description="At most 1,024 characters")]
Seq = Annotated[int, Meta(ge=1, le=SEQ_MAX, description="The event's place in the log, from 1")]
Version = Annotated[int, Meta(ge=0, le=SEQ_MAX, description="The seq of the last event (0: empty log)")]
Timestamp = Annotated[str, Meta(
    pattern=TIMESTAMP_PATTERN, extra_json_schema={"format": "date-time"},
    description="RFC 3339 in UTC, six fractional digits and Z", examples=["2026-11-21T09:30:00.123456Z"])]
Hash = Annotated[str, Meta(pattern=HASH_PATTERN,
                           description="SHA-256 of the event and its predecessor's hash")]


class BadRequest(ValueError):
    """The request body is not well-formed JSON text."""


class StateBody(Struct, forbid_unknown_fields=True):
    """A state: counter and message."""

    counter: Counter
    message: Message


class EventBody(Struct, forbid_unknown_fields=True):
    """One recorded event."""

    seq: Seq
    timestamp: Timestamp
    old: StateBody
    new: StateBody
    hash: Hash


class StatusBody(Struct):
    """The current (or historical) state, its version and when it last changed."""

    counter: Counter
    message: Message
    version: Version
    updated_at: Timestamp | None


class UpdateBody(Struct, forbid_unknown_fields=True):
    """At least one of counter and message; unknown fields are refused."""

    counter: Counter | UnsetType = UNSET
    message: Message | UnsetType = UNSET


class LogPage(Struct):
    """A page of the log and the URL of the next page (null at the end)."""

    items: list[EventBody]
    next: str | None


class HealthBody(Struct, omit_defaults=True):
    """A health probe's answer."""

    status: str
    version: Version | None = None


class ProblemBody(Struct):
    """An RFC 9457 problem document; `type` is always `urn:eventstate:problem:<kind>`."""

    type: Annotated[str, Meta(pattern=r"^urn:eventstate:problem:[a-z0-9-]+$")]
    title: str
    status: Annotated[int, Meta(ge=400, le=599)]
    detail: str


class InclusionProofBody(Struct):
    """RFC 9162 §2.1.3 audit path of event `seq` (leaf seq - 1) in the tree of `tree_size` events."""

    seq: Seq
    tree_size: Seq
    hashes: list[str]  # base64 SHA-256 hashes, from the leaf's sibling up


class ConsistencyProofBody(Struct):
    """RFC 9162 §2.1.4 proof that the tree of `from` events is a prefix of the tree of `to` events."""

    from_: Seq = msgspec.field(name="from")
    to: Seq = 1
    hashes: list[str] = msgspec.field(default_factory=list)  # base64 SHA-256 hashes


# Every wire type, for the OpenAPI document (generated from these by msgspec).
WIRE_TYPES = (StateBody, EventBody, StatusBody, UpdateBody, LogPage, HealthBody, ProblemBody,
              InclusionProofBody, ConsistencyProofBody)
_EXAMPLE_STATE = StateBody(42, "hello")
_EXAMPLE_EVENT = EventBody(
    7, "2026-11-21T09:30:00.123456Z", StateBody(41, "hello"), _EXAMPLE_STATE,
    "3f5a0c9e7b1d2f4a6c8e0b1d3f5a7c9e1b3d5f7a9c1e3b5d7f9a1c3e5b7d9f1a")
# One example per wire type, built from the types themselves so they cannot drift.
EXAMPLES: dict[str, Any] = msgspec.to_builtins({
    "StateBody": _EXAMPLE_STATE,
    "EventBody": _EXAMPLE_EVENT,
    "StatusBody": StatusBody(42, "hello", 7, "2026-11-21T09:30:00.123456Z"),
    "UpdateBody": UpdateBody(42, "hello"),
    "LogPage": LogPage([_EXAMPLE_EVENT], "/logs?after=7&limit=1"),
    "HealthBody": HealthBody("ready", 7),
    "ProblemBody": ProblemBody(PROBLEM_TYPE_PREFIX + "version-mismatch", "Precondition failed", 412,
                               "the state is at version 8, not 7"),
})

_encoder = msgspec.json.Encoder()
_update_decoder = msgspec.json.Decoder(UpdateBody)
_event_decoder = msgspec.json.Decoder(EventBody)


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    names = [name for name, _ in pairs]
    if len(set(names)) != len(names):
        raise InvalidUpdate("the body names a field twice")
    return dict(pairs)


def decode_update(body: bytes) -> Update:
    """Turn a `POST /update` body into an Update, refusing anything but the documented shape."""
    try:
        data = _update_decoder.decode(body)
    except msgspec.ValidationError as e:
        raise InvalidUpdate(str(e).replace("`", "")) from None
    except (msgspec.DecodeError, UnicodeDecodeError) as e:
        raise BadRequest(f"the body is not valid JSON in UTF-8: {e}") from None
    # msgspec keeps the last of two equal names; the body is known to be one flat object by now,
    # so the standard library's pair hook finds a repeated name (even an escaped one) in microseconds.
    json.loads(body, object_pairs_hook=_reject_duplicates)
    return Update(None if isinstance(data.counter, UnsetType) else data.counter,
                  None if isinstance(data.message, UnsetType) else data.message)


def state_body(state: State) -> StateBody:
    """The wire form of a state."""
    return StateBody(state.counter, state.message)


def event_body(event: Event) -> EventBody:
    """The wire form of an event: {"seq", "timestamp", "old", "new", "hash"}."""
    return EventBody(event.seq, event.timestamp, StateBody(event.old.counter, event.old.message),
                     StateBody(event.new.counter, event.new.message), event.hash)


def status_body(head: Head) -> StatusBody:
    """The wire form of the current state: {"counter", "message", "version", "updated_at"}."""
    return StatusBody(head.state.counter, head.state.message, head.version, head.timestamp)


def problem_body(status: int, detail: str, kind: str, title: str) -> bytes:
    """The JSON bytes of a problem document of `kind`."""
    return _encoder.encode(ProblemBody(PROBLEM_TYPE_PREFIX + kind, title, status, detail))


def to_event(body: EventBody) -> Event:
    """The domain Event of a decoded wire event."""
    return Event(body.seq, body.timestamp, State(body.old.counter, body.old.message),
                 State(body.new.counter, body.new.message), body.hash)


def decode_event(line: bytes | str) -> Event:
    """An Event from one JSON document (an export line, a `GET /logs` item); strict about the shape,
    raising ValueError with what is wrong."""
    try:
        return to_event(_event_decoder.decode(line))
    except msgspec.ValidationError as e:
        raise ValueError(f"not an eventstate event: {str(e).replace('`', '')}") from None
    except (msgspec.DecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"not valid JSON: {e}") from None


def structure_event(data: Any) -> Event:
    """An Event from its decoded JSON value; strict about the shape (ValueError otherwise)."""
    try:
        return to_event(msgspec.convert(data, EventBody, strict=True))
    except msgspec.ValidationError as e:
        raise ValueError(f"not an eventstate event: {str(e).replace('`', '')}") from None


def unstructure_event(event: Event) -> dict[str, Any]:
    """The wire form of an event as plain JSON values (for code that nests it in other JSON)."""
    data: dict[str, Any] = msgspec.to_builtins(event_body(event))
    return data


def unstructure_status(head: Head) -> dict[str, Any]:
    """The wire form of the current state as plain JSON values."""
    data: dict[str, Any] = msgspec.to_builtins(status_body(head))
    return data


def encode(value: Any) -> bytes:
    """JSON bytes for a wire value (a Struct, or a plain str/int/None)."""
    return _encoder.encode(value)


def encode_events_jsonl(events: Iterable[Event]) -> Iterable[bytes]:
    """One JSON line per event, exactly as `GET /logs` shows each event."""
    for event in events:
        yield _encoder.encode(event_body(event)) + b"\n"


def decode_json(line: bytes | str) -> Any:
    """Parse one JSON document."""
    return msgspec.json.decode(line)
