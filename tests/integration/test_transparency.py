"""Signed checkpoints and Merkle proofs over HTTP, checked with code written from RFC 9162 here."""

from __future__ import annotations

import base64
import hashlib
import os
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from eventstate import merkle
from eventstate.app import create_app
from eventstate.checkpoints import write_new_key
from eventstate.note import Signer, Verifier
from eventstate.settings import Settings, SettingsError
from eventstate.tlog import open_checkpoint

PROBLEM = "application/problem+json"
ORIGIN = "eventstate.test/log"


def reference_root(leaves: list[bytes]) -> bytes:
    """MTH from RFC 9162 §2.1.1, recursively, independent of the project's tree code."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + reference_root(leaves[:k]) + reference_root(leaves[k:])).digest()


def leaf_inputs(client) -> list[bytes]:
    items = client.get("/logs", params={"limit": 1000}).json()["items"]
    return [bytes.fromhex(e["hash"]) for e in items]


def hashes(body: dict) -> list[bytes]:
    return [base64.b64decode(h) for h in body["hashes"]]


@pytest.fixture
def signer(tmp_path: Path) -> Signer:
    return Signer.generate(ORIGIN)


@pytest.fixture
def key_file(tmp_path: Path, signer: Signer) -> Path:
    path = tmp_path / "signing.key"
    write_new_key(path, signer)
    return path


@pytest.fixture
def signed(make_client, key_file):
    """A client for an app that signs checkpoints."""
    return make_client(signing_key_file=key_file)


def fill(client, n: int) -> None:
    for i in range(n):
        assert 200 == client.post("/update", json={"counter": i, "message": f"m{i}"}).status_code


def test_without_a_key_checkpoint_is_a_404_that_says_how_to_enable_it(client):
    """With no signing key, GET /checkpoint answers a 404 problem naming the setting to use."""
    response = client.get("/checkpoint")
    assert 404 == response.status_code
    assert response.headers["content-type"].startswith(PROBLEM)
    assert "EVENTSTATE_SIGNING_KEY_FILE" in response.json()["detail"]
    assert "eventstate keygen" in response.json()["detail"]


def test_the_checkpoint_is_signed_and_commits_to_the_events(signed, signer):
    """The checkpoint verifies with the verifier key, and its root is RFC 9162 over the events' hashes."""
    fill(signed, 13)
    response = signed.get("/checkpoint")
    assert 200 == response.status_code
    assert response.headers["content-type"].startswith("text/plain")
    checkpoint = open_checkpoint(response.text, Verifier.parse(str(signer.verifier)))
    assert (ORIGIN, 13) == (checkpoint.origin, checkpoint.size)
    assert reference_root(leaf_inputs(signed)) == checkpoint.root


def test_the_empty_log_has_a_checkpoint_too(signed, signer):
    """A fresh log's checkpoint is size 0 with the SHA-256 of the empty string as its root."""
    checkpoint = open_checkpoint(signed.get("/checkpoint").text, signer.verifier)
    assert (0, hashlib.sha256(b"").digest()) == (checkpoint.size, checkpoint.root)


def test_a_head_is_signed_once_however_often_it_is_asked_for(signed):
    """Repeated GET /checkpoint at one head sign once; a new head signs once more."""
    fill(signed, 2)
    first = {signed.get("/checkpoint").text for _ in range(5)}
    fill(signed, 1)
    second = {signed.get("/checkpoint").text for _ in range(5)}
    assert (1, 1) == (len(first), len(second))
    assert 2 == signed.app.state.service.checkpoints.signed


def test_every_inclusion_proof_verifies_against_an_independent_root(signed):
    """For every tree size and every event in it, the served proof leads to the recomputed root."""
    fill(signed, 13)
    leaves = leaf_inputs(signed)
    for size in range(1, 14):
        root = reference_root(leaves[:size])
        for seq in range(1, size + 1):
            body = signed.get(f"/proofs/inclusion/{seq}", params={"tree_size": size}).json()
            assert (seq, size) == (body["seq"], body["tree_size"])
            merkle.verify_inclusion(seq - 1, size, merkle.leaf_hash(leaves[seq - 1]), hashes(body), root)


def test_inclusion_defaults_to_the_current_tree(signed):
    """Without tree_size the proof is for the current head."""
    fill(signed, 5)
    assert 5 == signed.get("/proofs/inclusion/2").json()["tree_size"]


def test_every_consistency_proof_verifies_against_independent_roots(signed):
    """For every pair of sizes, the served proof links the two recomputed roots."""
    fill(signed, 13)
    leaves = leaf_inputs(signed)
    for second in range(1, 14):
        for first in range(1, second + 1):
            body = signed.get("/proofs/consistency", params={"from": first, "to": second}).json()
            assert (first, second) == (body["from"], body["to"])
            merkle.verify_consistency(first, second, hashes(body), reference_root(leaves[:first]),
                                      reference_root(leaves[:second]))


@pytest.mark.parametrize(("path", "status"), [
    ("/proofs/inclusion/0", 400),
    ("/proofs/inclusion/-1", 400),
    ("/proofs/inclusion/x", 404),
    ("/proofs/inclusion/2?tree_size=0", 400),
    ("/proofs/inclusion/2?tree_size=abc", 400),
    ("/proofs/inclusion/4?tree_size=3", 400),
    ("/proofs/inclusion/2?tree_size=4", 404),
    ("/proofs/inclusion/4", 404),
    ("/proofs/inclusion/99999999999999999999", 400),
    ("/proofs/consistency?from=3&to=2", 400),
    ("/proofs/consistency?from=0&to=2", 400),
    ("/proofs/consistency?from=1&to=4", 404),
    ("/proofs/consistency?from=1", 400),
    ("/proofs/consistency?to=2", 400),
    ("/proofs/consistency?from=a&to=2", 400),
])
def test_bad_proof_requests_are_problems_and_change_nothing(signed, path, status):
    """Each impossible or malformed proof request gets its 4xx problem+json; the log is unchanged."""
    fill(signed, 3)
    response = signed.get(path)
    assert status == response.status_code, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["detail"]
    assert 3 == signed.get("/status").json()["version"]


def test_a_tree_inconsistent_with_the_last_checkpoint_is_never_signed(signed, db_path):
    """After the stored tree is rewritten under the server, /checkpoint refuses to sign the new head."""
    fill(signed, 20)
    assert 200 == signed.get("/checkpoint").status_code
    with closing(sqlite3.connect(db_path)) as conn, conn:
        conn.execute("DROP TRIGGER merkle_nodes_no_update")
        conn.execute("UPDATE merkle_nodes SET hash = ? WHERE level = 4 AND idx = 0", (b"\x07" * 32,))
    fill(signed, 1)
    response = signed.get("/checkpoint")
    assert 500 == response.status_code
    assert "tree-inconsistent" in response.json()["type"]
    assert "not consistent" in response.json()["detail"]


@pytest.mark.parametrize(("setup", "why"), [
    (lambda p: p.unlink(), "cannot read"),
    (lambda p: p.chmod(0o644), "chmod 600"),
    (lambda p: p.write_text("PRIVATE+KEY+x+00000000+AAAA\n") or p.chmod(0o600), "does not hold"),
    (lambda p: p.write_text("not a key\n") or p.chmod(0o600), "does not hold"),
])
def test_an_unusable_key_file_fails_closed(db_path, key_file, setup, why):
    """A missing, group-readable or malformed key file stops the app from being built at all."""
    setup(key_file)
    with pytest.raises(SettingsError, match=why):
        create_app(Settings(database=db_path, signing_key_file=key_file))


def test_the_key_file_setting_is_read_from_the_environment(key_file):
    """EVENTSTATE_SIGNING_KEY_FILE sets the key file, and workers inherit it."""
    settings = Settings.from_env({"EVENTSTATE_SIGNING_KEY_FILE": str(key_file)})
    assert key_file == settings.signing_key_file
    assert str(key_file) == settings.to_env()["EVENTSTATE_SIGNING_KEY_FILE"]


def test_the_new_endpoints_are_in_the_openapi_document(client):
    """/checkpoint and both proofs are documented, with the query parameters named from and to."""
    document = client.get("/schema/openapi.json").json()
    paths = document["paths"]
    assert {"/checkpoint", "/proofs/inclusion/{seq}", "/proofs/consistency"} <= set(paths)
    names = {p["name"] for p in paths["/proofs/consistency"]["get"]["parameters"]}
    assert {"from", "to"} <= names
    assert "text/plain; charset=utf-8" in paths["/checkpoint"]["get"]["responses"]["200"]["content"]


def test_a_version_1_log_gets_its_tree_on_upgrade(make_client, db_path, key_file, signer):
    """A log written before the tree existed is given one when opened, and then proves its events."""
    client = make_client()
    fill(client, 9)
    leaves = leaf_inputs(client)
    client.__exit__(None, None, None)
    with closing(sqlite3.connect(db_path)) as conn, conn:  # what a version-1 file looks like
        conn.execute("DROP TABLE merkle_nodes")
        conn.execute("UPDATE eventstate_meta SET value = '1' WHERE key = 'schema_version'")
    upgraded = make_client(signing_key_file=key_file)
    checkpoint = open_checkpoint(upgraded.get("/checkpoint").text, signer.verifier)
    assert (9, reference_root(leaves)) == (checkpoint.size, checkpoint.root)
    body = upgraded.get("/proofs/inclusion/4").json()
    merkle.verify_inclusion(3, 9, merkle.leaf_hash(leaves[3]), hashes(body), checkpoint.root)
    with closing(sqlite3.connect(db_path)) as conn:
        version = conn.execute("SELECT value FROM eventstate_meta WHERE key='schema_version'")
        assert "2" == version.fetchone()[0]
    fill(upgraded, 2)
    assert reference_root(leaf_inputs(upgraded)) == open_checkpoint(
        upgraded.get("/checkpoint").text, signer.verifier).root


def test_keygen_refuses_to_overwrite(tmp_path):
    """write_new_key creates a 0600 file once and never replaces an existing one."""
    path = tmp_path / "k"
    write_new_key(path, Signer.generate(ORIGIN))
    assert 0o600 == os.stat(path).st_mode & 0o777
    before = path.read_text()
    with pytest.raises(ValueError, match="already exists"):
        write_new_key(path, Signer.generate(ORIGIN))
    assert before == path.read_text()
