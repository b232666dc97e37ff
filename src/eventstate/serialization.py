"""The one cattrs Converter: the only place that knows the JSON and wire shapes of eventstate's types.

Request bodies are decoded strictly: a JSON boolean or float is not an integer, a string of digits is
not an integer, unknown fields and nulls are refused. Anything refused raises `BadRequest` (malformed
JSON) or `InvalidUpdate` (well-formed but unacceptable), each with a message naming the field.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import cattrs
import msgspec

from eventstate.domain import Event, Head, InvalidUpdate, State, Update

UPDATE_FIELDS = ("counter", "message")

converter = cattrs.Converter()
_encoder = msgspec.json.Encoder()


class BadRequest(ValueError):
    """The request body is not well-formed JSON text."""


def _strict_int(value: Any, _type: Any) -> int:
    if type(value) is not int:  # bool is a subclass of int; floats and strings are not integers
        raise InvalidUpdate(f"must be a JSON integer, not {_json_kind(value)}")
    return value


def _strict_str(value: Any, _type: Any) -> str:
    if type(value) is not str:
        raise InvalidUpdate(f"must be a JSON string, not {_json_kind(value)}")
    return value


def _json_kind(value: Any) -> str:
    kinds = {bool: "a boolean", int: "an integer", float: "a number with a fraction or exponent",
             str: "a string", list: "an array", dict: "an object", type(None): "null"}
    return kinds.get(type(value), type(value).__name__)


_strict = cattrs.Converter(forbid_extra_keys=True)
_strict.register_structure_hook(int, _strict_int)
_strict.register_structure_hook(str, _strict_str)


def decode_update(body: bytes) -> Update:
    """Turn a `POST /update` body into an Update, refusing anything but the documented shape."""
    try:
        data = msgspec.json.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError) as e:
        raise BadRequest(f"the body is not valid JSON in UTF-8: {e}") from e
    if not isinstance(data, dict):
        raise InvalidUpdate(f"the body must be a JSON object, not {_json_kind(data)}")
    unknown = sorted(set(data) - set(UPDATE_FIELDS))
    if unknown:
        raise InvalidUpdate(f"unknown field(s): {', '.join(unknown)}; allowed: counter, message")
    fields: dict[str, Any] = {}
    for name, kind in (("counter", int), ("message", str)):
        if name in data:
            try:
                fields[name] = _strict.structure(data[name], kind)
            except InvalidUpdate as e:
                raise InvalidUpdate(f"{name} {e}") from None
    return Update(**fields)


def unstructure_state(state: State) -> dict[str, Any]:
    """{"counter", "message"}."""
    return {"counter": state.counter, "message": state.message}


def unstructure_event(event: Event) -> dict[str, Any]:
    """The wire form of an event: {"seq", "timestamp", "old", "new", "hash"}."""
    return {
        "seq": event.seq,
        "timestamp": event.timestamp,
        "old": {"counter": event.old.counter, "message": event.old.message},
        "new": {"counter": event.new.counter, "message": event.new.message},
        "hash": event.hash,
    }


def unstructure_status(head: Head) -> dict[str, Any]:
    """The wire form of the current state: {"counter", "message", "version", "updated_at"}."""
    return {
        "counter": head.state.counter,
        "message": head.state.message,
        "version": head.version,
        "updated_at": head.timestamp,
    }


def structure_event(data: Any) -> Event:
    """An Event from its wire form (an export line, a `GET /logs` item); strict about the shape."""
    try:
        return converter.structure(data, Event)
    except (cattrs.BaseValidationError, KeyError, TypeError, ValueError) as e:
        raise ValueError(f"not an eventstate event: {_describe(e)}") from e


def _describe(error: BaseException) -> str:
    if isinstance(error, cattrs.BaseValidationError):
        return "; ".join(cattrs.transform_error(error))
    return str(error)


def encode(value: Any) -> bytes:
    """JSON bytes for an unstructured value."""
    return _encoder.encode(value)


def encode_events_jsonl(events: Iterable[Event]) -> Iterable[bytes]:
    """One JSON line per event, exactly as `GET /logs` shows each event."""
    for event in events:
        yield _encoder.encode(unstructure_event(event)) + b"\n"


def decode_json(line: bytes | str) -> Any:
    """Parse one JSON document."""
    return msgspec.json.decode(line)


# The converter's view of Event and State is the wire form above, so `structure(unstructure(e)) == e`.
converter.register_unstructure_hook(Event, unstructure_event)
converter.register_unstructure_hook(State, unstructure_state)
converter.register_structure_hook(Event, lambda d, _t: _strict.structure(d, Event))
