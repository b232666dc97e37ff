"""Properties of the Merkle tree: every proof verifies, batching never matters, and no edit hides."""

from __future__ import annotations

import hashlib
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventstate import merkle
from eventstate.commands import Command, apply_batch
from eventstate.domain import ChainBroken, Event, State, Update, chain_hash, fold
from eventstate.eventlog import EventLog


def reference_root(leaves: list[bytes]) -> bytes:
    """MTH straight from RFC 9162 §2.1.1 (over leaf hashes), independent of merkle.py's storage."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + reference_root(leaves[:k]) + reference_root(leaves[k:])).digest()


def store(leaves: list[bytes], cuts: list[int]) -> dict[tuple[int, int], bytes]:
    """The nodes written when `leaves` are appended in batches split at `cuts`."""
    nodes: dict[tuple[int, int], bytes] = {}
    frontier: list[bytes] = []
    bounds = [0, *sorted({c % (len(leaves) + 1) for c in cuts}), len(leaves)]
    for start, end in zip(bounds, bounds[1:], strict=False):
        frontier, created = merkle.append_leaves(start, frontier, leaves[start:end])
        for level, index, value in created:
            assert (level, index) not in nodes, "a node is written once"
            nodes[(level, index)] = value
    return nodes


sizes = st.integers(1, 300)


@given(sizes.flatmap(lambda n: st.tuples(st.just(n), st.lists(st.integers(0, n), max_size=6),
                                         st.integers(0, n - 1), st.integers(1, n), st.integers(1, n))))
def test_every_proof_verifies_for_random_sizes(case):
    """For any size and batching, the root is RFC 9162's and inclusion/consistency proofs verify."""
    n, cuts, index, a, b = case
    leaves = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(n)]
    nodes = store(leaves, cuts)
    assert len(nodes) <= 2 * n  # about two stored rows per event

    def full(ids):
        return [nodes[i] for i in ids]

    # What the log does: only the upper levels stored, the rest recomputed from the leaves.
    kept = {node: value for node, value in nodes.items() if merkle.is_stored(node[0])}
    read = merkle.combined_reader(lambda ids: [kept[i] for i in ids], lambda b, e: leaves[b:e])
    wanted = merkle.range_nodes(0, n) + [node for t in merkle.inclusion_plan(index, n) for node in t]
    assert full(wanted) == read(wanted)

    first, second = min(a, b), max(a, b)
    size = max(index + 1, second)
    root = merkle.root(size, read)
    assert reference_root(leaves[:size]) == root
    merkle.verify_inclusion(index, size, leaves[index], merkle.inclusion_proof(index, size, read), root)
    merkle.verify_consistency(first, second, merkle.consistency_proof(first, second, read),
                              merkle.root(first, read), merkle.root(second, read))
    other = leaves[(index + 1) % n]
    if n > 1:
        with pytest.raises(merkle.ProofError):
            merkle.verify_inclusion(index, size, other, merkle.inclusion_proof(index, size, read), root)


@given(sizes.flatmap(lambda n: st.tuples(st.just(n), st.integers(1, n), st.integers(1, n))))
def test_a_consistency_proof_does_not_prove_a_different_old_root(case):
    """A proof between two sizes fails if the older root is any other prefix's root."""
    n, a, b = case
    first, second = min(a, b), max(a, b)
    leaves = [merkle.leaf_hash(bytes([i % 256, i // 256])) for i in range(n)]
    nodes = store(leaves, [])

    def read(ids):
        return [nodes[i] for i in ids]

    if first == second or first == 1:
        return
    proof = merkle.consistency_proof(first, second, read)
    with pytest.raises(merkle.ProofError):
        merkle.verify_consistency(first, second, proof, merkle.root(first - 1, read),
                                  merkle.root(second, read))


edits = st.one_of(
    st.builds(lambda c: ("counter", c), st.integers(-(2**63), 2**63 - 1)),
    st.builds(lambda m: ("message", m), st.text(st.characters(exclude_categories=["Cs"]), max_size=20)),
    st.builds(lambda s: ("timestamp", f"2027-01-01T00:00:{s:02d}.000000Z"), st.integers(0, 59)),
)


def _edited(event: Event, edit: tuple[str, object]) -> Event:
    field, value = edit
    if field == "counter":
        return attrs.evolve(event, new=attrs.evolve(event.new, counter=value))
    if field == "message":
        return attrs.evolve(event, new=attrs.evolve(event.new, message=value))
    return attrs.evolve(event, timestamp=value)


@given(st.integers(1, 25).flatmap(lambda n: st.tuples(st.just(n), st.integers(1, n))), edits,
       st.booleans())
def test_any_edit_to_any_event_breaks_the_chain_and_its_inclusion_proof(case, edit, rehash):
    """Changing any field of any stored event breaks the hash chain there (or, for a rehashed last
    event, moves the head away from its anchor), and the edited event's leaf no longer verifies
    against the root, whether or not the forger recomputed its hash."""
    n, seq = case
    with tempfile.TemporaryDirectory() as tmp:
        log = EventLog.open(Path(tmp) / "t.db", synchronous="OFF")
        try:
            start = datetime(2026, 1, 1, tzinfo=UTC)
            for first in range(0, n, 4):  # batches of four: the tree grows across commits too
                with log.transaction() as tx:
                    apply_batch(tx, [Command(Update(counter=i, message=f"m{i}"))
                                     for i in range(first, min(n, first + 4))],
                                start + timedelta(seconds=first), timedelta(hours=1))
            with log.snapshot() as snap:
                events = list(snap.events())
                root = merkle.root(n, snap.nodes)
                proof = merkle.inclusion_proof(seq - 1, n, snap.nodes)
        finally:
            log.close()
    original = events[seq - 1]
    forged = _edited(original, edit)
    if forged == original:
        return
    previous = events[seq - 2].hash if seq > 1 else "0" * 64
    if rehash:
        forged = attrs.evolve(forged, hash=chain_hash(forged.seq, forged.timestamp, forged.old,
                                                      forged.new, previous))
    tampered = [*events[: seq - 1], forged, *events[seq:]]
    if rehash and seq == n:  # a rehashed last event keeps a valid chain: only the anchor moves
        assert events[-1].hash != fold(tampered).hash
    else:
        with pytest.raises(ChainBroken) as broken:
            fold(tampered)
        assert broken.value.seq in (seq, seq + 1)
    recomputed = chain_hash(forged.seq, forged.timestamp, forged.old, forged.new, previous)
    with pytest.raises(merkle.ProofError):
        merkle.verify_inclusion(seq - 1, n, merkle.event_leaf(recomputed), proof, root)
    merkle.verify_inclusion(seq - 1, n, merkle.event_leaf(original.hash), proof, root)
    assert State() == events[0].old
