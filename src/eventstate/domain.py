"""The pure core of eventstate: state, the update command, events, the hash chain and the fold.

Nothing here does I/O or knows about HTTP, SQL or JSON; every rule about what an update may do
and what makes the log valid lives here, so both the server and the audit tools apply the same ones.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from datetime import UTC, datetime

import attrs

COUNTER_MIN = -(2**63)
COUNTER_MAX = 2**63 - 1
MESSAGE_MAX_CHARS = 1024
GENESIS_HASH = "0" * 64


class DomainError(Exception):
    """Base class for a rule of the domain that a request or a log broke."""


class InvalidUpdate(DomainError):
    """The update command itself is not acceptable (range, length, emptiness)."""


class PreconditionFailed(DomainError):
    """The caller's `If-Match` version is not the log's current version."""

    def __init__(self, expected: frozenset[int], actual: int) -> None:
        self.expected = expected
        self.actual = actual
        names = ", ".join(str(v) for v in sorted(expected))
        super().__init__(f"the state is at version {actual}, not {names}")


class ChainBroken(DomainError):
    """The log contradicts itself at `seq`: an edited, missing, reordered or forged event."""

    def __init__(self, seq: int, reason: str) -> None:
        self.seq = seq
        self.reason = reason
        super().__init__(f"seq {seq}: {reason}")


def _check_message(value: str) -> str:
    if len(value) > MESSAGE_MAX_CHARS:
        raise InvalidUpdate(f"message is {len(value)} characters long; at most {MESSAGE_MAX_CHARS}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InvalidUpdate("message must be valid Unicode text (no lone surrogates)") from e
    if "\x00" in value:  # PostgreSQL text cannot hold it; refused on every backend alike
        raise InvalidUpdate("message must not contain NUL (U+0000)")
    return value


def _check_counter(value: int) -> int:
    if type(value) is not int:
        raise InvalidUpdate("counter must be an integer")
    if not COUNTER_MIN <= value <= COUNTER_MAX:
        raise InvalidUpdate(f"counter must be between {COUNTER_MIN} and {COUNTER_MAX}")
    return value


@attrs.frozen
class State:
    """The projected state: a signed 64-bit counter and a short message."""

    counter: int = 0
    message: str = ""


@attrs.frozen
class Update:
    """A request to change the state; a field left as None keeps its current value."""

    counter: int | None = None
    message: str | None = None

    def __attrs_post_init__(self) -> None:
        if self.counter is None and self.message is None:
            raise InvalidUpdate("an update names at least one of counter and message")
        if self.counter is not None:
            _check_counter(self.counter)
        if self.message is not None:
            _check_message(self.message)


@attrs.frozen
class Event:
    """One recorded update: its place in the log, when, the state before and after, and its hash."""

    seq: int
    timestamp: str
    old: State
    new: State
    hash: str


@attrs.frozen
class Head:
    """The tip of the log: the version (seq of the last event), its state, timestamp and hash."""

    version: int = 0
    state: State = State()
    timestamp: str | None = None
    hash: str = GENESIS_HASH

    @classmethod
    def after(cls, event: Event) -> Head:
        """The head of a log whose last event is `event`."""
        return cls(event.seq, event.new, event.timestamp, event.hash)


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with exactly six fractional digits and a `Z`: fixed width (the year too, even
    before 1000), so timestamps compare as moments when compared as text."""
    m = moment.astimezone(UTC)
    return (f"{m.year:04d}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:{m.second:02d}"
            f".{m.microsecond:06d}Z")


_RFC3339 = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2})(\.[0-9]+)?"
                      r"([Zz]|[+-][0-9]{2}:[0-9]{2})", re.ASCII)


def parse_timestamp(text: str) -> datetime:
    """Parse an RFC 3339 timestamp with an offset (`Z` or `+hh:mm`) into an aware datetime in UTC.

    ValueError if it is not RFC 3339 or if the moment falls outside years 1-9999 once in UTC.
    """
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError(f"timestamp {text!r} is not RFC 3339 with an offset")
    whole, fraction, offset = match.groups()
    whole = f"{whole[:10]}T{whole[11:]}"
    fraction = (fraction or ".0")[:7]  # microseconds: finer digits cannot matter to a log in µs
    try:
        moment = datetime.fromisoformat(f"{whole}{fraction}{'+00:00' if offset in 'Zz' else offset}")
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise ValueError(
            f"timestamp {text!r} is not an RFC 3339 moment between years 1 and 9999 in UTC") from None


TIMESTAMP_MIN = "0001-01-01T00:00:00.000000Z"
TIMESTAMP_MAX = "9999-12-31T23:59:59.999999Z"
_STORED = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z", re.ASCII)


def check_event(event: Event) -> None:
    """Raise ChainBroken unless `event` keeps the domain's rules about values: counters in 64 bits,
    messages within the length limit, and a timestamp in the stored form naming a real moment."""
    for name, state in (("old", event.old), ("new", event.new)):
        if type(state.counter) is not int or not COUNTER_MIN <= state.counter <= COUNTER_MAX:
            raise ChainBroken(event.seq, f"{name} counter is outside the signed 64-bit range")
        if type(state.message) is not str or len(state.message) > MESSAGE_MAX_CHARS:
            raise ChainBroken(event.seq, f"{name} message is longer than {MESSAGE_MAX_CHARS} characters")
    if type(event.timestamp) is not str or not _STORED.fullmatch(event.timestamp):
        raise ChainBroken(event.seq, "timestamp is not in the form YYYY-MM-DDTHH:MM:SS.ffffffZ")
    try:
        datetime.fromisoformat(event.timestamp)
    except ValueError:
        raise ChainBroken(event.seq, f"timestamp {event.timestamp} is not a real moment") from None


def canonical_bytes(
    seq: int, timestamp: str, old: State, new: State, previous_hash: str
) -> bytes:
    """The exact bytes an event's hash covers (ARCHITECTURE.md, "Verifying the log yourself")."""
    old_message = old.message.encode("utf-8")
    new_message = new.message.encode("utf-8")
    return b"eventstate/1\n%d\n%s\n%d\n%d:%s\n%d\n%d:%s\n%s" % (
        seq,
        timestamp.encode("ascii"),
        old.counter,
        len(old_message),
        old_message,
        new.counter,
        len(new_message),
        new_message,
        previous_hash.encode("ascii"),
    )


def chain_hash(seq: int, timestamp: str, old: State, new: State, previous_hash: str) -> str:
    """SHA-256, as lowercase hex, of the canonical encoding of an event and its predecessor's hash."""
    return hashlib.sha256(canonical_bytes(seq, timestamp, old, new, previous_hash)).hexdigest()


def decide(state: State, update: Update) -> State:
    """The state that `update` produces from `state`."""
    return State(
        state.counter if update.counter is None else update.counter,
        state.message if update.message is None else update.message,
    )


def check_precondition(head: Head, if_match: frozenset[int] | None) -> None:
    """Refuse the update unless `if_match` is absent or names the head's version."""
    if if_match is not None and head.version not in if_match:
        raise PreconditionFailed(if_match, head.version)


def record(head: Head, new: State, now: datetime | str) -> Event:
    """The event that moves the log from `head` to `new`, stamped no earlier than the head.

    `now` is the wall clock, or its `format_timestamp` text when a caller stamps a whole batch.
    """
    timestamp = now if isinstance(now, str) else format_timestamp(now)
    if head.timestamp is not None and timestamp < head.timestamp:
        timestamp = head.timestamp  # the wall clock stepped back: time in the log never does
    seq = head.version + 1
    return Event(seq, timestamp, head.state, new, chain_hash(seq, timestamp, head.state, new, head.hash))


def evolve(head: Head, event: Event) -> Head:
    """Apply a recorded event to `head`, refusing any event that does not continue the chain or
    that breaks the domain's rules about values (`check_event`)."""
    check_event(event)
    if event.seq != head.version + 1:
        expected = head.version + 1
        raise ChainBroken(
            expected,
            f"expected seq {expected}, found seq {event.seq} (an event missing, reordered or inserted)",
        )
    if event.old != head.state:
        raise ChainBroken(event.seq, "old state does not equal the previous event's new state")
    if head.timestamp is not None and event.timestamp < head.timestamp:
        raise ChainBroken(event.seq, "timestamp is earlier than the previous event's")
    if event.hash != chain_hash(event.seq, event.timestamp, event.old, event.new, head.hash):
        raise ChainBroken(event.seq, "hash does not match the event's contents and its predecessor")
    return Head.after(event)


def fold(events: Iterable[Event], head: Head | None = None) -> Head:
    """The head reached by applying `events` in order, checking the whole chain on the way."""
    current = Head() if head is None else head
    for event in events:
        current = evolve(current, event)
    return current


Row = tuple[int, str, int, str, int, str, str]
"""An event as stored: seq, timestamp, old counter, old message, new counter, new message, hash."""


def fold_rows(rows: Iterable[Row], head: Head | None = None) -> Head:
    """`fold` over stored rows, with the same checks and errors as `evolve`, but no Event per row.

    Audits of long logs spend their time here: this keeps one State per row (the next row's `old`
    is compared with it field by field) and hashes through `chain_hash`: one encoding, one place.
    """
    current = Head() if head is None else head
    seq = current.version
    state, timestamp, previous_hash = current.state, current.timestamp, current.hash
    for seq_, timestamp_, old_counter, old_message, new_counter, new_message, hash_ in rows:
        expected = seq + 1
        if seq_ != expected or old_counter != state.counter or old_message != state.message:
            # Rare: let `evolve` choose the seq and the words, so both paths report alike.
            evolve(Head(seq, state, timestamp, previous_hash),
                   Event(seq_, timestamp_, State(old_counter, old_message),
                         State(new_counter, new_message), hash_))
        if timestamp is not None and timestamp_ < timestamp:
            raise ChainBroken(seq_, "timestamp is earlier than the previous event's")
        new = State(new_counter, new_message)
        check_event(Event(seq_, timestamp_, state, new, hash_))
        if hash_ != chain_hash(seq_, timestamp_, state, new, previous_hash):
            raise ChainBroken(seq_, "hash does not match the event's contents and its predecessor")
        seq, state, timestamp, previous_hash = seq_, new, timestamp_, hash_
    return Head(seq, state, timestamp, previous_hash)
