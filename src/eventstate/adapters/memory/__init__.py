"""An in-memory store: the port's behaviour without a database, for fast tests of the writer and commands.

It keeps the same promises as the real adapters (serialised writes, all-or-nothing commits, gapless
seq, idempotency keys decided inside the transaction) and is checked by the same contract suite.
It can be told to fail its next commit (`fail_next_commit`), as a full disk or a dropped server would.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from eventstate import merkle
from eventstate.domain import Event, Head, format_timestamp
from eventstate.ports import (
    StoreBusy,
    StoreConflict,
    StoreCorrupt,
    StoredKey,
    StoreError,
    StoreUnavailable,
    event_row,
)


class _Data:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.keys: dict[str, StoredKey] = {}
        self.commits = 0
        self.nodes: dict[tuple[int, int], bytes] = {}  # the stored levels, as the real stores keep them
        self.edge: merkle.TreeEdge | None = None

    def reader(self, events: Sequence[Event]) -> merkle.NodeReader:
        """Tree nodes over `events` (the store's, or a snapshot's copy)."""
        def stored(ids: Sequence[merkle.NodeId]) -> list[bytes]:
            try:
                return [self.nodes[node] for node in ids]
            except KeyError as e:
                raise StoreCorrupt(f"the Merkle tree has no node {e.args[0]}") from None

        def leaves(begin: int, end: int) -> list[bytes]:
            return [merkle.event_leaf(e.hash) for e in events[begin:end]]

        return merkle.combined_reader(stored, leaves)


class MemoryTransaction:
    """A write transaction over the in-memory log; holds the store's write lock until it ends."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self._data = store._data
        self._appended: list[Event] = []
        self._keys: dict[str, StoredKey] = {}
        self._expire_before: str | None = None
        self._base = len(self._data.events)
        self.head = Head() if not self._data.events else Head.after(self._data.events[-1])
        self._open = True
        self._tree = merkle.TreeGrowth(self._data.edge, self._data.reader(self._data.events))

    def decided(self, key: str, *, not_before: str = "") -> StoredKey | None:
        """The live record of `key`: appended in this transaction, or committed at or after `not_before`."""
        if key in self._keys:
            return self._keys[key]
        stored = self._data.keys.get(key)
        if stored is None or stored.created_at < not_before:
            return None
        return stored

    def event(self, seq: int) -> Event:
        """A committed or appended event by seq."""
        if seq > self._base:
            return self._appended[seq - self._base - 1]
        return self._data.events[seq - 1]

    def append(self, event: Event, key: str | None = None, fingerprint: str = "") -> None:
        """Queue `event` (and its key) for the commit."""
        if event.seq != self.head.version + 1:
            raise StoreConflict(f"seq {event.seq} does not continue the log at {self.head.version}")
        self._appended.append(event)
        self._tree.add(event.seq, event.hash)
        if key is not None:
            self._keys[key] = StoredKey(fingerprint, event.seq, event.timestamp)
        self.head = Head.after(event)

    def expire_keys_older_than(self, cutoff: datetime) -> None:
        """Forget keys created before `cutoff`, at commit."""
        self._expire_before = format_timestamp(cutoff)

    def commit(self) -> None:
        """Apply everything at once, or nothing (when told to fail)."""
        try:
            failure = self._store._failures.pop(0) if self._store._failures else None
            if failure is not None:
                raise failure
            if self._expire_before is not None:
                cutoff = self._expire_before
                for k in [k for k, v in self._data.keys.items() if v.created_at < cutoff]:
                    del self._data.keys[k]
            self._data.events.extend(self._appended)
            self._data.nodes.update(((level, index), value) for level, index, value in self._tree.rows)
            if self._tree.edge is not None:
                self._data.edge = self._tree.edge
            self._data.keys.update(self._keys)
            if self._appended:
                self._data.commits += 1
        finally:
            self._end()

    def rollback(self) -> None:
        """Write nothing."""
        self._end()

    def _end(self) -> None:
        if self._open:
            self._open = False
            self._store._lock.release()


class MemorySnapshot:
    """A read view over a copy of the events taken when the snapshot began."""

    def __init__(self, events: list[Event], nodes: merkle.NodeReader | None = None) -> None:
        self._events = events
        self._nodes = nodes

    def nodes(self, ids: Sequence[merkle.NodeId]) -> list[bytes]:
        """Merkle tree nodes of this snapshot's tree."""
        assert self._nodes is not None
        return list(self._nodes(ids))

    def rows(self, *, after: int = 0, until: int | None = None,
             batch: int = 4096) -> Iterator[tuple[Any, ...]]:
        """Rows in seq order."""
        del batch
        return (event_row(e) for e in self.events(after=after, until=until))

    def events(self, *, after: int = 0, until: int | None = None) -> Iterator[Event]:
        """Events in seq order."""
        return (e for e in self._events if e.seq > after and (until is None or e.seq <= until))

    def event(self, seq: int) -> Event | None:
        """One event by seq."""
        return self._events[seq - 1] if 1 <= seq <= len(self._events) else None

    def max_seq(self) -> int:
        """The highest seq."""
        return len(self._events)

    def recorded_head(self) -> tuple[int, str]:
        """The head (always the last event's: nothing can alter memory behind our back)."""
        head = Head() if not self._events else Head.after(self._events[-1])
        return head.version, head.hash

    def seq_at(self, moment: str) -> int:
        """The last seq stamped at or before `moment`, by scanning."""
        return max((e.seq for e in self._events if e.timestamp <= moment), default=0)


class MemoryStore:
    """An event log held in this process's memory."""

    description = "memory"
    remote = False

    def __init__(self) -> None:
        self._data = _Data()
        self._lock = threading.Lock()
        self._seen = 0
        self._failures: list[BaseException] = []
        self._closed = False

    def fail_next_commit(self, error: BaseException | None = None) -> None:
        """Make the next commit fail with `error` (default: StoreUnavailable), writing nothing."""
        self._failures.append(error or StoreUnavailable("the update was not recorded (test failure)"))

    def begin(self, *, wait: bool = True) -> MemoryTransaction:
        """Begin a transaction, waiting for the current one (or raising StoreBusy without `wait`)."""
        if self._closed:
            raise StoreError("the store is closed")
        if not self._lock.acquire(blocking=wait, timeout=5 if wait else -1):
            raise StoreBusy("another transaction is open")
        return MemoryTransaction(self)

    @contextmanager
    def transaction(self) -> Iterator[MemoryTransaction]:
        """A transaction committed when the block ends without error."""
        tx = self.begin()
        try:
            yield tx
        except BaseException:
            tx.rollback()
            raise
        tx.commit()

    def changed(self) -> bool:
        """Whether a commit happened since the last call."""
        commits = self._data.commits
        if commits == self._seen:
            return False
        self._seen = commits
        return True

    def on_news(self, callback: Callable[[], None]) -> bool:
        """No pushed news here: callers poll `changed`."""
        del callback
        return False

    def head(self) -> Head:
        """The committed head."""
        events = self._data.events
        return Head() if not events else Head.after(events[-1])

    def event(self, seq: int) -> Event | None:
        """One committed event."""
        events = self._data.events
        return events[seq - 1] if 1 <= seq <= len(events) else None

    def page(self, *, after: int = 0, before: int | None = None, limit: int = 50,
             descending: bool = False) -> list[Event]:
        """Up to `limit` events by keyset."""
        events = self._data.events
        upper = len(events) + 1 if before is None else min(before, len(events) + 1)
        lower = max(after, 0)
        if descending:
            return [events[s - 1] for s in range(upper - 1, lower, -1)][:limit]
        return [events[s - 1] for s in range(lower + 1, upper)][:limit]

    def seq_at(self, moment: str) -> int:
        """The last seq stamped at or before `moment`."""
        return MemorySnapshot(self._data.events).seq_at(moment)

    def nodes(self, ids: Sequence[merkle.NodeId]) -> list[bytes]:
        """Merkle tree nodes over the committed events."""
        return list(self._data.reader(self._data.events)(ids))

    @contextmanager
    def snapshot(self) -> Iterator[MemorySnapshot]:
        """A view of the events committed now."""
        events = list(self._data.events)
        yield MemorySnapshot(events, self._data.reader(events))

    def check(self) -> None:
        """Always usable until closed."""
        if self._closed:
            raise StoreError("the store is closed")

    def probe_write(self, stamp: str) -> None:
        """Succeeds unless a failure is queued."""
        del stamp
        if self._failures:
            raise StoreUnavailable("the store refuses writes (test failure)")

    def import_events(self, events: Iterator[Event]) -> int:
        """Append recorded events verbatim."""
        with self.transaction() as tx:
            count = 0
            for event in events:
                tx.append(event)
                count += 1
        return count

    def backup_to(self, dest: Path) -> None:
        """Write the events to a new SQLite file."""
        from eventstate.adapters.sqlite import SQLiteStore

        with self.snapshot() as snap:
            copy = SQLiteStore.open(dest)
            try:
                copy.import_events(snap.events())
            finally:
                copy.close()

    def close(self) -> None:
        """Forget nothing (tests may reopen); mark closed."""
        self._closed = True
