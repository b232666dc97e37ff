"""The RFC 9162 (§2.1) Merkle tree over the log: hashing, proofs and their verification. No I/O.

A tree of `size` leaves is addressed by complete subtrees: node `(level, index)` covers leaves
`index * 2**level` up to `(index + 1) * 2**level`. Once written such a node never changes, so the
storage keeps exactly these, and every root or proof below is built from O(log n) of them, read
through a `NodeReader` in one call. Leaf `i` of the eventstate log is event `seq = i + 1`, and its
input is the 32 raw bytes of that event's `hash`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

NodeId = tuple[int, int]
"""A complete subtree: (level, index); level 0 holds the leaf hashes."""

NodeReader = Callable[[Sequence[NodeId]], Sequence[bytes]]
"""Return the hash of each node asked for, in the same order."""

LeafReader = Callable[[int, int], Sequence[bytes]]
"""Return the leaf hashes of leaves [begin, end) that exist (fewer at the end of the log)."""

STORED_FROM_LEVEL = 4
"""Storage keeps the complete subtrees of this level and above (one row per 8 leaves, amortised).
A node below it is recomputed from at most 2**4 = 16 leaves, all in one aligned block."""
_BLOCK = 1 << STORED_FROM_LEVEL


class ProofError(ValueError):
    """A proof, or the sizes it is asked for, does not verify; the message says what failed."""


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 leaf hash: SHA-256(0x00 ‖ data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 interior node hash: SHA-256(0x01 ‖ left ‖ right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def event_leaf(event_hash: str) -> bytes:
    """The leaf hash of an event, from its `hash` (64 hex digits)."""
    return leaf_hash(bytes.fromhex(event_hash))


def _split(n: int) -> int:
    """The largest power of two smaller than `n` (n >= 2): where RFC 9162 splits a tree."""
    return 1 << ((n - 1).bit_length() - 1)


def range_nodes(begin: int, end: int) -> list[NodeId]:
    """The maximal complete subtrees covering leaves [begin, end), left to right."""
    nodes: list[NodeId] = []
    while begin < end:
        size = begin & -begin if begin else 1 << (end.bit_length() - 1)
        while begin + size > end:
            size >>= 1
        level = size.bit_length() - 1
        nodes.append((level, begin >> level))
        begin += size
    return nodes


def _fold(hashes: Sequence[bytes]) -> bytes:
    """The hash of an RFC 9162 subtree from its `range_nodes` hashes (they shrink left to right)."""
    result = hashes[-1]
    for left in reversed(hashes[:-1]):
        result = node_hash(left, result)
    return result


def _build(terms: list[list[NodeId]], read: NodeReader) -> list[bytes]:
    wanted = list(dict.fromkeys(node for term in terms for node in term))
    found = read(wanted)
    if len(found) != len(wanted):
        raise LookupError(f"{len(wanted) - len(found)} tree nodes are missing from the log")
    by_id = dict(zip(wanted, found, strict=True))
    return [_fold([by_id[node] for node in term]) for term in terms]


def is_stored(level: int) -> bool:
    """Whether storage keeps the nodes of `level` (the others are recomputed from leaves)."""
    return level >= STORED_FROM_LEVEL


def subtree_hash(leaves: Sequence[bytes]) -> bytes:
    """The hash of a complete subtree (a power-of-two number of leaf hashes)."""
    level = list(leaves)
    while len(level) > 1:
        level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def combined_reader(stored: NodeReader, leaves: LeafReader) -> NodeReader:
    """A NodeReader over storage that keeps only `is_stored` levels: lower nodes are computed
    from the leaves of their 16-leaf block, read once per block per call."""

    def read(ids: Sequence[NodeId]) -> list[bytes]:
        high = [node for node in ids if is_stored(node[0])]
        found = dict(zip(high, stored(high), strict=True)) if high else {}
        blocks: dict[int, Sequence[bytes]] = {}
        for level, index in ids:
            if is_stored(level):
                continue
            begin = index << level
            block = begin >> STORED_FROM_LEVEL
            if block not in blocks:
                blocks[block] = leaves(block * _BLOCK, (block + 1) * _BLOCK)
            offset = begin - block * _BLOCK
            span = blocks[block][offset:offset + (1 << level)]
            if len(span) != 1 << level:
                raise LookupError(f"the leaves under node ({level}, {index}) are missing")
            found[(level, index)] = subtree_hash(span)
        return [found[node] for node in ids]

    return read


def root(size: int, read: NodeReader) -> bytes:
    """MTH(D[0:size]), the root hash of the first `size` leaves."""
    if size < 0:
        raise ValueError("a tree size is 0 or more")
    if size == 0:
        return EMPTY_ROOT
    return _build([range_nodes(0, size)], read)[0]


def root_of_leaves(leaves: Iterable[bytes]) -> bytes:
    """MTH over leaf hashes given in order, in O(log n) memory (for auditing a whole log)."""
    size, frontier = 0, list[bytes]()
    for leaf in leaves:
        frontier, _ = append_leaves(size, frontier, [leaf])
        size += 1
    return EMPTY_ROOT if size == 0 else _fold(frontier)


def inclusion_plan(index: int, size: int) -> list[list[NodeId]]:
    """The nodes each hash of PATH(index, D[0:size]) (RFC 9162 §2.1.3.1) is made of, leaf side first."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is not in a tree of size {size}")
    terms: list[list[NodeId]] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            terms.append(range_nodes(lo + k, hi))
            hi = lo + k
        else:
            terms.append(range_nodes(lo, lo + k))
            lo += k
    terms.reverse()
    return terms


def consistency_plan(first: int, second: int) -> list[list[NodeId]]:
    """The nodes each hash of PROOF(first, D[0:second]) (RFC 9162 §2.1.4.1) is made of."""
    if not 0 < first <= second:
        raise ProofError(f"no consistency proof from size {first} to size {second}: "
                         "sizes must satisfy 0 < from <= to")
    terms: list[list[NodeId]] = []
    lo, hi, whole = 0, second, True
    while first != hi:
        k = _split(hi - lo)
        if first - lo <= k:
            terms.append(range_nodes(lo + k, hi))
            hi = lo + k
        else:
            terms.append(range_nodes(lo, lo + k))
            lo += k
            whole = False
    if not whole:
        terms.append(range_nodes(lo, hi))
    terms.reverse()
    return terms


def inclusion_proof(index: int, size: int, read: NodeReader) -> list[bytes]:
    """The audit path of leaf `index` in the tree of `size` leaves."""
    return _build(inclusion_plan(index, size), read)


def consistency_proof(first: int, second: int, read: NodeReader) -> list[bytes]:
    """The proof that the tree of `first` leaves is a prefix of the tree of `second` leaves."""
    return _build(consistency_plan(first, second), read)


class TreeEdge:
    """The right edge of a growing tree: its size and the hashes of `range_nodes(0, size)`.

    That is all appending needs: `push` adds a leaf and returns the complete subtrees it completes.
    """

    __slots__ = ("_levels", "hashes", "size")

    def __init__(self, size: int, hashes: Sequence[bytes]) -> None:
        self.size = size
        self._levels = [bit for bit in range(size.bit_length() - 1, -1, -1) if size >> bit & 1]
        if len(self._levels) != len(hashes):
            raise ValueError(f"a tree of size {size} has {len(self._levels)} edge nodes, not {len(hashes)}")
        self.hashes = list(hashes)

    def copy(self) -> TreeEdge:
        """An independent copy (a transaction grows a copy, so a rollback leaves this one)."""
        return TreeEdge(self.size, self.hashes)

    def push(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Append a leaf hash; every node it completes, as (level, index, hash), leaf first."""
        index, levels, hashes = self.size, self._levels, self.hashes
        created = [(0, index, leaf)]
        current, level = leaf, 0
        while levels and levels[-1] == level:
            current = node_hash(hashes.pop(), current)
            levels.pop()
            level += 1
            created.append((level, index >> level, current))
        hashes.append(current)
        levels.append(level)
        self.size = index + 1
        return created


class TreeGrowth:
    """What one write transaction adds to the tree: a store's transactions all use this.

    It grows a copy of the store's cached edge (so a rollback leaves the cache as it was), reading
    the edge through `read` instead when the cache does not end where the transaction starts
    (another writer appended meanwhile), and collects the node rows to insert with the events.
    """

    def __init__(self, cached: TreeEdge | None, read: NodeReader) -> None:
        self._cached = cached
        self._read = read
        self.edge: TreeEdge | None = None
        self.rows: list[tuple[int, int, bytes]] = []

    def add(self, seq: int, event_hash: str) -> None:
        """Add event `seq`'s leaf (events come in seq order)."""
        if self.edge is None or self.edge.size != seq - 1:
            cached = self._cached
            if cached is not None and cached.size == seq - 1:
                self.edge = cached.copy()
            else:
                self.edge = TreeEdge(seq - 1, self._read(range_nodes(0, seq - 1)))
        for level, index, value in self.edge.push(event_leaf(event_hash)):
            if level >= STORED_FROM_LEVEL:
                self.rows.append((level, index, value))


def append_leaves(size: int, frontier: Sequence[bytes],
                  leaves: Iterable[bytes]) -> tuple[list[bytes], list[tuple[int, int, bytes]]]:
    """Add `leaves` to a tree of `size` leaves whose `range_nodes(0, size)` hashes are `frontier`.

    Return the new frontier and every complete subtree the new leaves complete, as
    (level, index, hash): about two per leaf.
    """
    edge = TreeEdge(size, frontier)
    created: list[tuple[int, int, bytes]] = []
    for leaf in leaves:
        created.extend(edge.push(leaf))
    return edge.hashes, created


def _check_hash(value: bytes, what: str) -> None:
    if len(value) != HASH_SIZE:
        raise ProofError(f"{what} is {len(value)} bytes, not {HASH_SIZE}")


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root that `proof` leads to from `leaf` at `index` (RFC 9162 §2.1.3.2); ProofError if malformed."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is not in a tree of size {size}")
    _check_hash(leaf, "the leaf hash")
    fn, sn, result = index, size - 1, leaf
    for position, sibling in enumerate(proof):
        _check_hash(sibling, f"proof hash {position}")
        if sn == 0:
            raise ProofError(f"the inclusion proof is too long ({len(proof)} hashes)")
        if fn & 1 or fn == sn:
            result = node_hash(sibling, result)
            while not fn & 1 and fn:
                fn >>= 1
                sn >>= 1
        else:
            result = node_hash(result, sibling)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"the inclusion proof is too short ({len(proof)} hashes)")
    return result


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root_hash: bytes) -> None:
    """Raise ProofError unless `proof` shows `leaf` at `index` in the tree of `size` with `root_hash`."""
    if root_from_inclusion(index, size, leaf, proof) != root_hash:
        raise ProofError(f"the inclusion proof of leaf {index} does not lead to the root of size {size}")


def _same_size(first: int, second: int, proof: Sequence[bytes],
               first_root: bytes, second_root: bytes) -> bool:
    """Check the cases no proof hash is needed for; whether that settled it."""
    if first > second:
        raise ProofError(f"tree size {first} is larger than {second}: a log never shrinks")
    if first == 0:
        raise ProofError("a consistency proof from the empty tree proves nothing")
    if first == second:
        if proof:
            raise ProofError("the sizes are equal, so the proof must be empty")
        if first_root != second_root:
            raise ProofError(f"two different roots for the same tree size {first}")
        return True
    if not proof:
        raise ProofError("the consistency proof is empty")
    return False


def verify_consistency(first: int, second: int, proof: Sequence[bytes],
                       first_root: bytes, second_root: bytes) -> None:
    """Raise ProofError unless `proof` shows the tree (first, first_root) is a prefix of
    (second, second_root), by RFC 9162 §2.1.4.2."""
    if _same_size(first, second, proof, first_root, second_root):
        return
    for position, value in enumerate(proof):
        _check_hash(value, f"proof hash {position}")
    path = list(proof)
    if first & (first - 1) == 0:  # a power of two: the old root is itself a node of the new tree
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for value in path[1:]:
        if sn == 0:
            raise ProofError(f"the consistency proof is too long ({len(proof)} hashes)")
        if fn & 1 or fn == sn:
            fr = node_hash(value, fr)
            sr = node_hash(value, sr)
            while not fn & 1 and fn:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, value)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"the consistency proof is too short ({len(proof)} hashes)")
    if fr != first_root:
        raise ProofError(f"the consistency proof does not lead to the root of size {first}")
    if sr != second_root:
        raise ProofError(f"the consistency proof does not lead to the root of size {second}")
