"""The storage port: what the use cases need from a log, whatever database holds it.

Three small Protocols (a store, its write transaction, a read snapshot) and the typed errors every
adapter translates its driver's errors into, once, at its edge. `commands`, `writer`, `projection`,
`service`, `audit` and the HTTP layer import this module, never an adapter; the composition root
(`app.create_app`, `adapters.open_store`) picks the adapter from the database setting.

Adapters: `adapters.sqlite` (the embedded default), `adapters.postgresql` (several instances on one
database), `adapters.memory` (a fake for fast unit tests). `tests/contract/` runs one suite against each.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import attrs

from eventstate.domain import Event, Head, State

# ---- errors ---------------------------------------------------------------------------------------


class StoreError(Exception):
    """The log cannot be used: missing, unreadable, not an eventstate log, or a schema too new."""


class StoreNotInitialised(StoreError):
    """The database holds no eventstate log yet (run `eventstate init`)."""


class StoreReplaced(StoreError):
    """The database under a running server was deleted or replaced by another one."""


class StoreCorrupt(StoreError):
    """The database is damaged, or its tables were altered outside eventstate."""


class UnreadableValue(StoreCorrupt):
    """A stored value cannot be decoded (for audits: the row it is in is damaged)."""


class StoreUnavailable(Exception):
    """A write could not be committed (disk full, database down, locked too long); nothing was written."""


class StoreBusy(StoreUnavailable):
    """Another writer holds the log's write lock right now."""


class StoreConflict(StoreUnavailable):
    """The database refused the write as contradicting what it holds (a seq or key already taken)."""


# ---- values ---------------------------------------------------------------------------------------


@attrs.frozen
class StoredKey:
    """An idempotency key already decided: the request's fingerprint, its event's seq, and when."""

    fingerprint: str
    seq: int
    created_at: str


EVENT_COLUMNS = ("seq", "timestamp", "old_counter", "old_message", "new_counter", "new_message", "hash")


def row_to_event(row: Sequence[Any]) -> Event:
    """Build an Event from a row in `EVENT_COLUMNS` order."""
    seq, timestamp, old_counter, old_message, new_counter, new_message, hash_ = row
    return Event(
        seq, timestamp, State(old_counter, old_message), State(new_counter, new_message), hash_
    )


def event_row(event: Event) -> tuple[Any, ...]:
    """An Event as a row in `EVENT_COLUMNS` order."""
    return (event.seq, event.timestamp, event.old.counter, event.old.message,
            event.new.counter, event.new.message, event.hash)


# ---- protocols ------------------------------------------------------------------------------------


class WriteTransaction(Protocol):
    """One serialised write: the head as committed by anyone, then appends after it, all or nothing.

    While it is open no other writer (thread, process or instance) can append. `commit` and
    `rollback` may run on another thread than the one that began it. Adapters that store more
    beside each event (tree nodes, say) write it inside `commit`, in this same transaction.
    """

    head: Head
    """The head including this transaction's own appends."""

    def decided(self, key: str, *, not_before: str = "") -> StoredKey | None:
        """The record of idempotency key `key` if a request with it was accepted, in this
        transaction or committed before, at or after `not_before`; an older record counts as expired."""
        ...

    def event(self, seq: int) -> Event:
        """A committed or appended event by seq (to answer a replayed idempotent request)."""
        ...

    def append(self, event: Event, key: str | None = None, fingerprint: str = "") -> None:
        """Append `event` (which must continue `head`), recording `key` for it if given."""
        ...

    def expire_keys_older_than(self, cutoff: datetime) -> None:
        """Forget idempotency keys created before `cutoff`."""
        ...

    def commit(self) -> None:
        """Make every append durable, or raise StoreUnavailable having written none of them.

        If the outcome cannot be known (the connection dropped during COMMIT), the adapter finds it
        out by reading back before it returns or raises; it never guesses."""
        ...

    def rollback(self) -> None:
        """Write nothing of this transaction."""
        ...


class ReadSnapshot(Protocol):
    """One read transaction over the log: every read sees the same committed state."""

    def rows(self, *, after: int = 0, until: int | None = None,
             batch: int = 4096) -> Iterator[tuple[Any, ...]]:
        """Raw event rows (`EVENT_COLUMNS` order) in seq order, streamed in constant memory."""
        ...

    def events(self, *, after: int = 0, until: int | None = None) -> Iterator[Event]:
        """Events in seq order, streamed in constant memory."""
        ...

    def event(self, seq: int) -> Event | None:
        """One event by seq in this snapshot."""
        ...

    def max_seq(self) -> int:
        """The highest seq present (0 when empty)."""
        ...

    def recorded_head(self) -> tuple[int, str]:
        """The head written beside the events (seq, hash)."""
        ...

    def nodes(self, ids: Sequence[tuple[int, int]]) -> list[bytes]:
        """Merkle tree nodes (level, index) of this snapshot's tree, in order (a `merkle.NodeReader`)."""
        ...

    def seq_at(self, moment: str) -> int:
        """The last seq stamped at or before `moment`, by scanning (audits trust no ordering)."""
        ...


class EventStore(Protocol):
    """An open event log."""

    description: str
    """Where the log lives, for messages (a file path, or a URL without its password)."""

    remote: bool
    """Whether reading the head is a network round trip (then the service asks it off the event
    loop, one check shared by the reads that arrive together) rather than a local, cheap look."""

    def begin(self, *, wait: bool = True) -> WriteTransaction:
        """Begin a write transaction; without `wait`, raise StoreBusy rather than wait for another writer."""
        ...

    def transaction(self) -> AbstractContextManager[WriteTransaction]:
        """A write transaction committed when the block ends without error, rolled back otherwise."""
        ...

    def changed(self) -> bool:
        """Whether anything may have been committed, by anyone, since the last call (cheap)."""
        ...

    def on_news(self, callback: Callable[[], None]) -> bool:
        """Call `callback` (from any thread) soon after anyone commits, if this store can push news;
        whether it can (otherwise callers poll `changed`)."""
        ...

    def head(self) -> Head:
        """The head of the log as committed now."""
        ...

    def event(self, seq: int) -> Event | None:
        """One committed event by seq, or None."""
        ...

    def page(self, *, after: int = 0, before: int | None = None, limit: int = 50,
             descending: bool = False) -> list[Event]:
        """Up to `limit` events by keyset: seq > after (ascending) or seq < before (descending)."""
        ...

    def seq_at(self, moment: str) -> int:
        """The seq of the last event stamped at or before `moment` (0 if none)."""
        ...

    def nodes(self, ids: Sequence[tuple[int, int]]) -> list[bytes]:
        """Merkle tree nodes (level, index), in order (a `merkle.NodeReader`): the complete subtrees
        the write transactions stored with the events (RFC 9162, see `merkle`), the lower levels
        recomputed from event hashes. StoreCorrupt if one is missing."""
        ...

    def snapshot(self) -> AbstractContextManager[ReadSnapshot]:
        """A consistent read-only view of the whole log, safe while others write."""
        ...

    def check(self) -> None:
        """Raise StoreError if the log is no longer usable for serving (gone, replaced, unreadable,
        not writable); a real round trip to the database."""
        ...

    def probe_write(self, stamp: str) -> None:
        """Commit a tiny write outside the event table; raise StoreUnavailable if it does not take."""
        ...

    def import_events(self, events: Iterator[Event]) -> int:
        """Append already-recorded events verbatim into an empty log; the caller checks the chain."""
        ...

    def backup_to(self, dest: Path) -> None:
        """Write a consistent copy of the log as a new SQLite file at `dest`."""
        ...

    def close(self) -> None:
        """Release every connection."""
        ...
