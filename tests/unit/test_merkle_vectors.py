"""The Merkle tree against other people's numbers: transparency-dev/merkle's published vectors."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from eventstate import merkle

DATA = Path(__file__).parents[1] / "data"


def _load(name: str) -> dict:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


TREE = _load("transparency-dev-merkle-tree.json")
LEAVES = [merkle.leaf_hash(bytes.fromhex(x)) for x in TREE["leaf_inputs"]]
ROOTS = [bytes.fromhex(x) for x in TREE["root_hashes"]]
INCLUSION = _load("transparency-dev-merkle-inclusion.json")["probes"]
CONSISTENCY = _load("transparency-dev-merkle-consistency.json")["probes"]


def _b(text: str | None) -> bytes:
    return base64.b64decode(text or "")


def _hashes(values: list[str] | None) -> list[bytes]:
    return [_b(v) for v in values or []]


class MemoryNodes:
    """Every complete subtree of a list of leaves, as the log's storage keeps them."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self.nodes: dict[tuple[int, int], bytes] = {}
        _, created = merkle.append_leaves(0, [], leaves)
        for level, index, value in created:
            self.nodes[(level, index)] = value
        self.reads = 0

    def read(self, ids: Sequence[tuple[int, int]]) -> list[bytes]:
        self.reads += len(ids)
        return [self.nodes[i] for i in ids]


def test_stored_nodes_are_the_published_node_hashes() -> None:
    """Appending the reference leaves creates exactly the published complete-subtree hashes."""
    store = MemoryNodes(LEAVES)
    expected = {(level, index): bytes.fromhex(h)
                for level, row in enumerate(TREE["node_hashes"]) for index, h in enumerate(row)}
    assert expected == store.nodes


@pytest.mark.parametrize("size", range(len(ROOTS)))
def test_roots_match_the_published_roots(size: int) -> None:
    """The root of every prefix of the reference leaves is the published one, stored or streamed."""
    assert ROOTS[size] == merkle.root(size, MemoryNodes(LEAVES).read)
    assert ROOTS[size] == merkle.root_of_leaves(LEAVES[:size])


@pytest.mark.parametrize("path", sorted(INCLUSION))
def test_inclusion_probes(path: str) -> None:
    """Each published inclusion probe verifies exactly when it should."""
    p = INCLUSION[path]
    try:
        merkle.verify_inclusion(p["leafIdx"], p["treeSize"], _b(p["leafHash"]), _hashes(p["proof"]),
                                _b(p["root"]))
    except merkle.ProofError:
        assert p["wantErr"], p["desc"]
    else:
        assert not p["wantErr"], p["desc"]


@pytest.mark.parametrize("path", sorted(CONSISTENCY))
def test_consistency_probes(path: str) -> None:
    """Each published consistency probe verifies exactly when it should."""
    p = CONSISTENCY[path]
    try:
        merkle.verify_consistency(p["size1"], p["size2"], _hashes(p["proof"]), _b(p["root1"]),
                                  _b(p["root2"]))
    except merkle.ProofError:
        assert p["wantErr"], p["desc"]
    else:
        assert not p["wantErr"], p["desc"]


def _ours(root: bytes, size: int) -> bool:
    return size < len(ROOTS) and ROOTS[size] == root


@pytest.mark.parametrize("path", sorted(p for p, v in INCLUSION.items()
                                        if not v["wantErr"] and _ours(_b(v["root"]), v["treeSize"])))
def test_generated_inclusion_proofs_equal_the_published_ones(path: str) -> None:
    """Our generated proof for each happy-path probe over the reference tree is byte-identical."""
    p = INCLUSION[path]
    assert _hashes(p["proof"]) == merkle.inclusion_proof(p["leafIdx"], p["treeSize"],
                                                         MemoryNodes(LEAVES).read)


@pytest.mark.parametrize("path", sorted(p for p, v in CONSISTENCY.items()
                                        if not v["wantErr"] and v["size1"] > 0
                                        and _ours(_b(v["root2"]), v["size2"])))
def test_generated_consistency_proofs_equal_the_published_ones(path: str) -> None:
    """Our generated consistency proof for each happy-path probe over the reference tree is identical."""
    p = CONSISTENCY[path]
    assert _hashes(p["proof"]) == merkle.consistency_proof(p["size1"], p["size2"],
                                                           MemoryNodes(LEAVES).read)


def test_every_proof_over_the_reference_tree_verifies() -> None:
    """All inclusion and consistency proofs among sizes 1..8 verify against the published roots."""
    store = MemoryNodes(LEAVES)
    for size in range(1, 9):
        for index in range(size):
            merkle.verify_inclusion(index, size, LEAVES[index],
                                    merkle.inclusion_proof(index, size, store.read), ROOTS[size])
        for first in range(1, size + 1):
            merkle.verify_consistency(first, size, merkle.consistency_proof(first, size, store.read),
                                      ROOTS[first], ROOTS[size])


def test_a_proof_reads_logarithmically_many_nodes() -> None:
    """A proof in a tree of a million leaves reads a few dozen stored nodes, not the leaves."""
    size = 1_000_003
    nodes = {node for term in merkle.inclusion_plan(123_456, size) for node in term}
    nodes |= {node for term in merkle.consistency_plan(500_001, size) for node in term}
    assert len(nodes) <= 4 * size.bit_length()


def test_tree_growth_never_changes_the_cached_edge_and_rereads_a_stale_one() -> None:
    """A transaction grows a copy (a rollback leaves the cache intact); a stale cache is re-read."""
    store = MemoryNodes(LEAVES)
    cached = merkle.TreeEdge(5, store.read(merkle.range_nodes(0, 5)))
    before = list(cached.hashes)
    growth = merkle.TreeGrowth(cached, store.read)
    stale = merkle.TreeGrowth(merkle.TreeEdge(2, store.read(merkle.range_nodes(0, 2))), store.read)
    growth.add(6, "00" * 32)
    stale.add(6, "00" * 32)
    assert (5, before) == (cached.size, cached.hashes)
    assert growth.edge is not None
    assert stale.edge is not None
    assert (6, growth.edge.hashes) == (stale.edge.size, stale.edge.hashes)
