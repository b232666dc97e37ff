"""The Merkle tree part of the storage contract: every adapter stores and serves the same tree."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from _stores import Backend
from eventstate import merkle
from eventstate.domain import Event, State, record
from eventstate.ports import EventStore, StoreError

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def reference_root(leaves: list[bytes]) -> bytes:
    """MTH from RFC 9162 §2.1.1 over leaf hashes, written here independently of the adapters."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + reference_root(leaves[:k]) + reference_root(leaves[k:])).digest()


def _append(store: EventStore, count: int) -> list[Event]:
    written = []
    with store.transaction() as tx:
        for i in range(count):
            event = record(tx.head, State(tx.head.state.counter + 1, f"m{i}"), T0 + timedelta(seconds=i))
            tx.append(event)
            written.append(event)
    return written


def _leaves(events: list[Event]) -> list[bytes]:
    return [merkle.event_leaf(e.hash) for e in events]


def test_the_tree_grows_with_every_commit(store: EventStore) -> None:
    """After commits of assorted sizes the store's root, at every size, is RFC 9162's."""
    events: list[Event] = []
    for count in (1, 2, 13, 1, 31, 17, 5):
        events += _append(store, count)
        assert reference_root(_leaves(events)) == merkle.root(len(events), store.nodes)
    for size in (1, 16, 17, 32, 47, 70):
        assert reference_root(_leaves(events[:size])) == merkle.root(size, store.nodes)


def test_proofs_from_the_store_verify(store: EventStore) -> None:
    """Inclusion and consistency proofs read from the store verify against reference roots."""
    events = _append(store, 70)
    leaves = _leaves(events)
    for size in (1, 15, 16, 33, 70):
        root = reference_root(leaves[:size])
        for index in {0, size // 2, size - 1}:
            merkle.verify_inclusion(index, size, leaves[index],
                                    merkle.inclusion_proof(index, size, store.nodes), root)
        for first in (1, 16, size):
            if first <= size:
                merkle.verify_consistency(first, size, merkle.consistency_proof(first, size, store.nodes),
                                          reference_root(leaves[:first]), root)


def test_a_snapshot_serves_the_same_tree(store: EventStore) -> None:
    """A read snapshot's nodes give the same root as the store's."""
    events = _append(store, 40)
    with store.snapshot() as snap:
        assert reference_root(_leaves(events)) == merkle.root(40, snap.nodes)


def test_a_rolled_back_transaction_leaves_the_tree_as_it_was(store: EventStore) -> None:
    """Appends that are rolled back add no nodes; the next commit continues the committed tree."""
    events = _append(store, 20)
    tx = store.begin()
    for i in range(20):
        tx.append(record(tx.head, State(-i, "rolled back"), T0 + timedelta(hours=1)))
    tx.rollback()
    events += _append(store, 20)
    assert reference_root(_leaves(events)) == merkle.root(40, store.nodes)


def test_another_writer_continues_the_same_tree(store: EventStore,
                                                reopen: Callable[[], EventStore]) -> None:
    """Two stores on one log (two processes) alternate commits; each builds on the other's tree."""
    other = reopen()
    events: list[Event] = []
    for turn in range(6):
        events += _append(store if turn % 2 else other, 7)
    assert reference_root(_leaves(events)) == merkle.root(len(events), store.nodes)
    assert reference_root(_leaves(events)) == merkle.root(len(events), other.nodes)


def test_the_tree_is_stored_sparsely_and_append_only(db_backend: Backend) -> None:
    """Only nodes of level 4 and up are rows (one per 8 events), and the database refuses to
    change or delete one."""
    _append(db_backend.store, 64)
    assert db_backend.raw is not None
    count = db_backend.raw("SELECT COUNT(*) FROM merkle_nodes")[0][0]
    assert 4 + 2 + 1 == count
    for sql in ("UPDATE merkle_nodes SET level = level", "DELETE FROM merkle_nodes"):
        with pytest.raises(Exception, match="append-only"):
            db_backend.raw(sql)


def test_a_missing_node_is_reported_not_guessed(db_backend: Backend) -> None:
    """A node gone from the table (altered outside eventstate) makes reads fail with StoreError."""
    _append(db_backend.store, 40)
    assert db_backend.raw is not None
    trigger = ("DROP TRIGGER merkle_nodes_no_delete" if db_backend.name == "sqlite"
               else "DROP TRIGGER merkle_nodes_no_update_or_delete ON merkle_nodes")
    db_backend.raw(trigger)
    db_backend.raw("DELETE FROM merkle_nodes WHERE level = 5")
    with pytest.raises(StoreError, match="no node"):
        merkle.root(40, db_backend.store.nodes)
