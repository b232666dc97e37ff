"""One contract every storage adapter keeps (memory, SQLite, PostgreSQL), tested the same way."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from _stores import Backend
from eventstate.domain import GENESIS_HASH, Event, Head, State, evolve, format_timestamp, record
from eventstate.ports import EventStore

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _append(store: EventStore, count: int, *, start: datetime = T0, step: timedelta = timedelta(seconds=1),
            key: str | None = None) -> list[Event]:
    """Commit `count` increments in one transaction; the events written."""
    written = []
    with store.transaction() as tx:
        for i in range(count):
            event = record(tx.head, State(tx.head.state.counter + 1, f"m{i}"), start + i * step)
            tx.append(event, key if i == 0 else None, "fp")
            written.append(event)
    return written


def test_a_new_log_is_empty(store: EventStore) -> None:
    """A fresh log has version 0, the genesis hash and no events."""
    assert (0, GENESIS_HASH) == (store.head().version, store.head().hash)
    assert [] == store.page(after=0, limit=10)
    assert store.event(1) is None


def test_append_then_read_back(store: EventStore) -> None:
    """Committed events come back byte for byte, and the head follows the last."""
    written = _append(store, 3)
    assert written == store.page(after=0, limit=10)
    assert written[1] == store.event(2)
    assert Head.after(written[-1]) == store.head()


def test_a_second_store_sees_commits(store: EventStore, reopen: Callable[[], EventStore]) -> None:
    """Another store on the same log (another process) reads what this one committed, and is told."""
    other = reopen()
    other.changed()
    written = _append(store, 2)
    assert other.changed() or other is store
    assert Head.after(written[-1]) == other.head()


def test_rollback_writes_nothing(store: EventStore) -> None:
    """A rolled-back transaction leaves no event and no key."""
    tx = store.begin()
    tx.append(record(tx.head, State(1, "x"), T0), "k", "fp")
    tx.rollback()
    assert 0 == store.head().version
    with store.transaction() as tx:
        assert tx.decided("k") is None


def test_pages_in_both_directions(store: EventStore) -> None:
    """Keyset pages: ascending after a seq, descending before one, both bounded."""
    _append(store, 10)
    assert [4, 5, 6] == [e.seq for e in store.page(after=3, limit=3)]
    assert [10, 9] == [e.seq for e in store.page(descending=True, limit=2)]
    assert [6, 5, 4] == [e.seq for e in store.page(before=7, after=3, limit=5, descending=True)]
    assert [9] == [e.seq for e in store.page(after=8, before=10, limit=5)]
    assert [] == store.page(after=10, limit=5)


def test_seq_at_finds_the_last_event_at_or_before_a_moment(store: EventStore) -> None:
    """seq_at answers by timestamp: 0 before the first event, the last one after the end."""
    _append(store, 5, step=timedelta(minutes=1))
    assert 0 == store.seq_at(format_timestamp(T0 - timedelta(seconds=1)))
    assert 1 == store.seq_at(format_timestamp(T0))
    assert 3 == store.seq_at(format_timestamp(T0 + timedelta(minutes=2, seconds=30)))
    assert 5 == store.seq_at(format_timestamp(T0 + timedelta(days=1)))
    with store.snapshot() as snap:
        assert 3 == snap.seq_at(format_timestamp(T0 + timedelta(minutes=2, seconds=30)))


def test_snapshot_streams_every_event_in_order(store: EventStore) -> None:
    """A snapshot streams the events in seq order and records the head beside them."""
    written = _append(store, 7)
    with store.snapshot() as snap:
        assert written == list(snap.events())
        assert written[3:5] == list(snap.events(after=3, until=5))
        assert 7 == snap.max_seq()
        assert (7, written[-1].hash) == snap.recorded_head()
        assert written[2] == snap.event(3)


def test_keys_are_decided_within_the_transaction_and_after_commit(store: EventStore) -> None:
    """A key appended earlier in the same transaction is already decided; after commit it stays so."""
    with store.transaction() as tx:
        assert tx.decided("k") is None
        first = record(tx.head, State(1, ""), T0)
        tx.append(first, "k", "fp-1")
        pending = tx.decided("k")
        assert pending is not None
        assert ("fp-1", 1) == (pending.fingerprint, pending.seq)
        assert first == tx.event(1)
    with store.transaction() as tx:
        stored = tx.decided("k")
        assert stored is not None
        assert ("fp-1", 1, first.timestamp) == (stored.fingerprint, stored.seq, stored.created_at)


def test_an_expired_key_counts_as_undecided_and_is_replaced_on_reuse(store: EventStore) -> None:
    """A key older than `not_before` is not decided; appending it again replaces the old record."""
    _append(store, 1, key="k")
    later = format_timestamp(T0 + timedelta(days=2))
    with store.transaction() as tx:
        assert tx.decided("k", not_before=later) is None
        assert tx.decided("k", not_before=format_timestamp(T0)) is not None
        tx.append(record(tx.head, State(9, ""), T0 + timedelta(days=2)), "k", "fp-2")
    with store.transaction() as tx:
        stored = tx.decided("k")
        assert stored is not None
        assert ("fp-2", 2) == (stored.fingerprint, stored.seq)


def test_expire_keys_forgets_old_keys_only(store: EventStore) -> None:
    """expire_keys_older_than drops keys created before the cutoff and keeps the rest."""
    _append(store, 1, key="old")
    _append(store, 1, start=T0 + timedelta(hours=5), key="new")
    with store.transaction() as tx:
        tx.expire_keys_older_than(T0 + timedelta(hours=1))
    with store.transaction() as tx:
        assert tx.decided("old") is None
        assert tx.decided("new") is not None


def test_concurrent_appenders_make_one_gapless_chain(store: EventStore,
                                                     reopen: Callable[[], EventStore]) -> None:
    """Writers on several stores of one log, in threads, serialise: every append lands, in one chain."""
    stores = [store, reopen(), reopen()]
    per_writer = 15
    errors: list[BaseException] = []

    def work(s: EventStore) -> None:
        try:
            for _ in range(per_writer):
                with s.transaction() as tx:
                    tx.append(record(tx.head, State(tx.head.state.counter + 1, ""), T0))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(s,)) for s in stores for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert [] == errors
    head = Head()
    with store.snapshot() as snap:
        for event in snap.events():
            head = evolve(head, event)
    assert (len(threads) * per_writer, len(threads) * per_writer) == (head.version, head.state.counter)


def test_import_appends_recorded_events_verbatim(store: EventStore, tmp_path) -> None:
    """import_events writes given events as they are; a backup is a SQLite file with the same chain."""
    other_events = []
    head = Head()
    for i in range(5):
        event = record(head, State(i, "x"), T0 + timedelta(seconds=i))
        other_events.append(event)
        head = Head.after(event)
    assert 5 == store.import_events(iter(other_events))
    assert other_events == store.page(limit=10)
    from eventstate.adapters.sqlite import SQLiteStore

    store.backup_to(tmp_path / "copy.db")
    copy = SQLiteStore.open(tmp_path / "copy.db", readonly=True)
    try:
        assert other_events == copy.page(limit=10)
    finally:
        copy.close()


# ---- the database refuses what the log must never do (real databases only) -------------------

REFUSED = {
    "update": "UPDATE events SET new_counter = 99 WHERE seq = 1",
    "delete": "DELETE FROM events WHERE seq = 1",
    "gapped insert": ("INSERT INTO events (seq, timestamp, old_counter, old_message, new_counter, "
                      "new_message, hash) VALUES (5, 't', 0, '', 1, '', 'h')"),
    "insert over an existing seq": ("INSERT INTO events (seq, timestamp, old_counter, old_message, "
                                    "new_counter, new_message, hash) VALUES (1, 't', 0, '', 1, '', 'h')"),
}


@pytest.mark.parametrize("statement", sorted(REFUSED))
def test_the_database_refuses_rewriting_the_log(db_backend: Backend, statement: str) -> None:
    """UPDATE, DELETE and inserts that leave a gap or reuse a seq are refused by the database itself."""
    backend = db_backend
    assert backend.raw is not None
    written = _append(backend.store, 2)
    with pytest.raises(Exception, match=r"append-only|without gaps|UNIQUE|duplicate|unique"):
        backend.raw(REFUSED[statement])
    assert written == backend.store.page(limit=10)
