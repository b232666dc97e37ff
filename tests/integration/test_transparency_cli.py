"""keygen, prove, verify-proof and verify --checkpoint as an auditor runs them, on real files."""

from __future__ import annotations

import base64
import os
import shutil
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import httpx
import pytest
from _audit_support import append, build, edit, run_cli, run_main, tamper, updates

from eventstate import merkle
from eventstate.domain import GENESIS_HASH, State, chain_hash
from eventstate.note import Signer, Verifier
from eventstate.tlog import Checkpoint

ORIGIN = "audit.example/eventstate"


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, str]:
    """A key file made by `eventstate keygen`, and the verifier key it printed."""
    key = tmp_path / "log.key"
    result = run_main("keygen", "--origin", ORIGIN, "--out", key)
    assert 0 == result.code, result.err
    return key, result.out.strip()


def checkpoint_of(db: Path, key: Path, out: Path) -> Path:
    """Save the checkpoint that `prove` signs for the log as it is now."""
    proof = out.with_suffix(".tlog-proof")
    assert 0 == run_main("prove", "1", "--database", db, "--out", proof, "--key", key).code
    out.write_text(proof.read_text().split("\n\n", 1)[1])
    return out


def rewrite_chain(db: Path, start: int) -> None:
    """Recompute every hash from `start` on and the recorded head, as a forger with the file would."""
    with tamper(db) as conn:
        rows = conn.execute("SELECT seq, timestamp, old_counter, old_message, new_counter, new_message "
                            "FROM events ORDER BY seq").fetchall()
        previous = GENESIS_HASH
        for seq, ts, oc, om, nc, nm in rows:
            digest = chain_hash(seq, ts, State(oc, om), State(nc, nm), previous)
            if seq >= start:
                conn.execute("UPDATE events SET hash = ? WHERE seq = ?", (digest, seq))
            previous = digest
        conn.execute("UPDATE log_head SET hash = ? WHERE id = 1", (previous,))


def rebuild_tree(db: Path) -> None:
    """Replace the stored tree by the tree of the events as they are now."""
    with tamper(db) as conn:
        conn.execute("DROP TRIGGER IF EXISTS merkle_nodes_no_delete")
        conn.execute("DELETE FROM merkle_nodes")
        leaves = [merkle.event_leaf(h) for (h,) in conn.execute("SELECT hash FROM events ORDER BY seq")]
        _, created = merkle.append_leaves(0, [], leaves)
        conn.executemany("INSERT INTO merkle_nodes (level, idx, hash) VALUES (?, ?, ?)",
                         [node for node in created if merkle.is_stored(node[0])])


def test_keygen_writes_a_private_key_and_prints_its_verifier_key(keys):
    """keygen creates a 0600 signer key and prints the matching ORIGIN+KEYID+BASE64 verifier key."""
    key, vkey = keys
    assert 0o600 == key.stat().st_mode & 0o777
    signer = Signer.parse(key.read_text())
    assert (ORIGIN, signer.verifier) == (Verifier.parse(vkey).name, Verifier.parse(vkey))


@pytest.mark.parametrize("origin", ["has space", "a+b", ""])
def test_keygen_refuses_a_bad_origin(tmp_path, origin):
    """An origin that cannot name a key is one line and exit status 2; no file is written."""
    result = run_main("keygen", "--origin", origin, "--out", tmp_path / "k")
    assert (2, 1) == (result.code, len(result.err.strip().splitlines()))
    assert not (tmp_path / "k").exists()


def test_keygen_never_overwrites_a_key(keys):
    """A second keygen to the same file fails with exit status 2 and leaves the key alone."""
    key, _ = keys
    before = key.read_text()
    result = run_cli("keygen", "--origin", ORIGIN, "--out", key)
    assert 2 == result.code
    assert "already exists" in result.err
    assert before == key.read_text()


def test_a_proof_file_verifies_offline(tmp_path, db_path, keys):
    """prove writes a tlog-proof@v1 file that verify-proof accepts with the verifier key alone."""
    key, vkey = keys
    build(db_path, 20)
    out = tmp_path / "seven.tlog-proof"
    assert 0 == run_cli("prove", "7", "--database", db_path, "--out", out, "--key", key).code
    text = out.read_text()
    assert text.startswith("c2sp.org/tlog-proof@v1\nextra ")
    assert "\nindex 6\n" in text
    db_path.unlink()  # offline: the log is not needed any more
    result = run_cli("verify-proof", out, "--vkey", vkey)
    assert 0 == result.code, result.err
    assert "event 7 " in result.out
    assert "tree size 20" in result.out


def _extra_json(text: str) -> str:
    line = next(x for x in text.splitlines() if x.startswith("extra "))
    return base64.b64decode(line.removeprefix("extra ")).decode()


def _with_extra(text: str, payload: str) -> str:
    old = next(x for x in text.splitlines() if x.startswith("extra "))
    return text.replace(old, "extra " + base64.b64encode(payload.encode()).decode())


@pytest.mark.parametrize(("tamper_with", "reason"), [
    (lambda t: _with_extra(t, _extra_json(t).replace('"message":"', '"message":"X', 1)), "do not hash"),
    (lambda t: _with_extra(t, _extra_json(t).replace('"seq":7', '"seq":8')), "carries event 8"),
    (lambda t: t.replace("index 6", "index 5"), "carries event 7"),
    (lambda t: t.replace("\n\n", "\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n", 1), "too long"),
    (lambda t: t.replace(t.split("\n\n")[1].splitlines()[1], "99"), "signature"),
])
def test_a_tampered_proof_file_fails_naming_what_failed(tmp_path, db_path, keys, tamper_with, reason):
    """Editing the event, the index, the path or the checkpoint of a proof makes verify-proof fail."""
    key, vkey = keys
    build(db_path, 20)
    out = tmp_path / "p"
    assert 0 == run_main("prove", "7", "--database", db_path, "--out", out, "--key", key).code
    out.write_text(tamper_with(out.read_text()))
    result = run_main("verify-proof", out, "--vkey", vkey)
    assert 1 == result.code
    assert reason in result.err


def test_a_proof_checked_with_another_key_fails(tmp_path, db_path, keys):
    """A proof does not verify under somebody else's key of the same name."""
    key, _ = keys
    build(db_path, 3)
    out = tmp_path / "p"
    assert 0 == run_main("prove", "2", "--database", db_path, "--out", out, "--key", key).code
    other = str(Signer.generate(ORIGIN).verifier)
    result = run_main("verify-proof", out, "--vkey", other)
    assert 1 == result.code
    assert "not signed by a known key" in result.err


@pytest.mark.parametrize(("args", "message"), [
    (("prove", "0"), "no event 0"),
    (("prove", "21"), "no event 21"),
    (("prove", "-3"), "no event -3"),
])
def test_prove_refuses_an_event_not_in_the_log(tmp_path, db_path, keys, args, message):
    """Asking for an event the log does not hold is one line and exit status 2."""
    key, _ = keys
    build(db_path, 20)
    result = run_main(*args, "--database", db_path, "--out", tmp_path / "p", "--key", key)
    assert 2 == result.code
    assert message in result.err
    assert not (tmp_path / "p").exists()


def test_prove_needs_a_key_and_a_new_output_file(tmp_path, db_path, keys, monkeypatch):
    """Without a key, or onto an existing file, prove stops with exit status 2."""
    key, _ = keys
    build(db_path, 2)
    monkeypatch.delenv("EVENTSTATE_SIGNING_KEY_FILE", raising=False)
    assert 2 == run_main("prove", "1", "--database", db_path, "--out", tmp_path / "p").code
    existing = tmp_path / "exists"
    existing.write_text("keep me")
    result = run_main("prove", "1", "--database", db_path, "--out", existing, "--key", key)
    assert (2, "keep me") == (result.code, existing.read_text())


@pytest.mark.parametrize("content", ["", "c2sp.org/tlog-proof@v1\nindex x\n\nlog\n", "hello\n"])
def test_verify_proof_refuses_a_file_that_is_not_a_proof(tmp_path, keys, content):
    """Something that is not an eventstate tlog proof is bad input: exit status 2, one line."""
    _, vkey = keys
    path = tmp_path / "junk"
    path.write_text(content)
    result = run_main("verify-proof", path, "--vkey", vkey)
    assert (2, 1) == (result.code, len(result.err.strip().splitlines()))


def test_a_grown_log_is_consistent_with_an_earlier_checkpoint(tmp_path, db_path, keys):
    """After more events, verify --checkpoint accepts the log and names both sizes."""
    key, vkey = keys
    build(db_path, 10)
    saved = checkpoint_of(db_path, key, tmp_path / "cp")
    append(db_path, updates(7))
    result = run_cli("verify", "--database", db_path, "--checkpoint", saved, "--vkey", vkey)
    assert 0 == result.code, result.err
    assert "17 events" in result.out
    assert "10 events" in result.out


def test_a_rolled_back_log_fails_against_a_later_checkpoint(tmp_path, db_path, keys):
    """A copy from before the checkpoint (a rollback) fails: the checkpoint is larger than the log."""
    key, vkey = keys
    build(db_path, 10)
    old_copy = tmp_path / "old.db"
    shutil.copy(db_path, old_copy)
    append(db_path, updates(5))
    saved = checkpoint_of(db_path, key, tmp_path / "cp")
    result = run_main("verify", "--database", old_copy, "--checkpoint", saved, "--vkey", vkey)
    assert 1 == result.code
    assert "checkpoint is for 15 events but the log has only 10" in result.err


def test_an_edited_event_fails_the_checkpoint_check(tmp_path, db_path, keys):
    """An event edited in place breaks the chain, and verify --checkpoint says where."""
    key, vkey = keys
    build(db_path, 10)
    saved = checkpoint_of(db_path, key, tmp_path / "cp")
    edit(db_path, 3, new_counter=123456)
    result = run_main("verify", "--database", db_path, "--checkpoint", saved, "--vkey", vkey)
    assert 1 == result.code
    assert "seq 3" in result.err


def test_a_rewritten_chain_fails_against_the_stored_tree(tmp_path, db_path, keys):
    """An event edited with every later hash recomputed no longer matches the stored tree."""
    key, vkey = keys
    build(db_path, 40)
    saved = checkpoint_of(db_path, key, tmp_path / "cp")
    edit(db_path, 3, new_message="forged")
    edit(db_path, 4, old_message="forged")
    rewrite_chain(db_path, 3)
    result = run_main("verify", "--database", db_path, "--checkpoint", saved, "--vkey", vkey)
    assert 1 == result.code
    assert "not the tree of its events" in result.err


def test_a_rewritten_chain_and_tree_fail_against_the_checkpoint(tmp_path, db_path, keys):
    """Even with the chain and the tree recomputed, the signed checkpoint exposes the rewrite."""
    key, vkey = keys
    build(db_path, 10)
    saved = checkpoint_of(db_path, key, tmp_path / "cp")
    append(db_path, updates(3))
    edit(db_path, 3, new_message="forged")
    edit(db_path, 4, old_message="forged")
    rewrite_chain(db_path, 3)
    rebuild_tree(db_path)
    result = run_main("verify", "--database", db_path, "--checkpoint", saved, "--vkey", vkey)
    assert 1 == result.code
    assert "not consistent with the checkpoint of 10 events" in result.err


@pytest.mark.parametrize(("setup", "code"), [
    (lambda cp, vkey: (cp, "nonsense"), 2),
    (lambda cp, vkey: (cp.with_name("missing"), vkey), 2),
    (lambda cp, vkey: (cp, str(Signer.generate(ORIGIN).verifier)), 1),
])
def test_verify_checkpoint_bad_input(tmp_path, db_path, keys, setup, code):
    """A malformed key or a missing file is exit status 2; a checkpoint by another key fails (1)."""
    key, vkey = keys
    build(db_path, 3)
    saved = checkpoint_of(db_path, key, tmp_path / "cp")
    checkpoint, verifier = setup(saved, vkey)
    result = run_main("verify", "--database", db_path, "--checkpoint", checkpoint, "--vkey", verifier)
    assert code == result.code
    assert 1 == len(result.err.strip().splitlines())


@pytest.mark.slow
def test_verify_checkpoint_against_a_running_server(tmp_path, db_path, keys, server_factory):
    """Against a server's URL: a saved checkpoint passes after growth; a larger one (rollback) fails."""
    key, vkey = keys
    server = server_factory(db_path, env={"EVENTSTATE_SIGNING_KEY_FILE": str(key)}).start()
    for i in range(9):
        httpx.post(f"{server.url}/update", json={"counter": i}).raise_for_status()
    saved = tmp_path / "cp"
    saved.write_text(httpx.get(f"{server.url}/checkpoint").text)
    for i in range(4):
        httpx.post(f"{server.url}/update", json={"message": str(i)}).raise_for_status()
    result = run_cli("verify", "--url", server.url, "--checkpoint", saved, "--vkey", vkey)
    assert 0 == result.code, result.err
    assert "13 events" in result.out
    signer = Signer.parse(key.read_text())
    future = tmp_path / "future"
    future.write_text(Checkpoint(ORIGIN, 50, b"\x01" * 32).sign(signer))
    result = run_cli("verify", "--url", server.url, "--checkpoint", future, "--vkey", vkey)
    assert 1 == result.code
    assert "checkpoint is for 50 events but the log has only 13" in result.err
    forged = tmp_path / "forged"
    forged.write_text(Checkpoint(ORIGIN, 5, b"\x02" * 32).sign(signer))
    result = run_cli("verify", "--url", server.url, "--checkpoint", forged, "--vkey", vkey)
    assert 1 == result.code
    assert "not consistent" in result.err


def test_plain_verify_still_needs_a_database(tmp_path):
    """Without --checkpoint, verify needs --database as before."""
    result = run_main("verify")
    assert 2 == result.code


def test_the_tree_survives_backup_and_import(tmp_path, db_path, keys):
    """A backup and an import of an export prove the same root as the original."""
    key, vkey = keys
    build(db_path, 40)
    saved = checkpoint_of(db_path, key, tmp_path / "cp")
    export = tmp_path / "log.jsonl"
    assert 0 == run_main("export", "--database", db_path, "--output", export).code
    imported = tmp_path / "imported.db"
    assert 0 == run_main("import", "--database", imported, export).code
    for copy in (imported,):
        result = run_main("verify", "--database", copy, "--checkpoint", saved, "--vkey", vkey)
        assert 0 == result.code, result.err
    with closing(sqlite3.connect(imported)) as conn:
        # levels 4 and up: two 16-leaf nodes and one 32-leaf node
        assert 3 == conn.execute("SELECT COUNT(*) FROM merkle_nodes").fetchone()[0]


def test_serve_refuses_an_unusable_signing_key_in_one_line(tmp_path, keys):
    """`eventstate serve` with a group-readable key file exits 2 with one line, before serving."""
    key, _ = keys
    key.chmod(0o640)
    proc = subprocess.run(
        [sys.executable, "-m", "eventstate.cli", "serve", "--port", "0", "--database",
         str(tmp_path / "events.db")],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "EVENTSTATE_SIGNING_KEY_FILE": str(key)},
    )
    assert 2 == proc.returncode
    assert 1 == len(proc.stderr.strip().splitlines())
    assert "chmod 600" in proc.stderr
