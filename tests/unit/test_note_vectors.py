"""Signed notes and checkpoints against the published examples (C2SP specs, Go's sumdb/note)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eventstate import merkle
from eventstate.note import NoteError, Signer, Verifier, open_note, sign
from eventstate.tlog import Checkpoint, FormatError, ProofFile, open_checkpoint

VECTORS = json.loads((Path(__file__).parents[1] / "data" / "signed-note-vectors.json").read_text("utf-8"))
C2SP = VECTORS["c2sp_signed_note"]
GO = VECTORS["go_sumdb_note"]
CHECKPOINT = VECTORS["c2sp_tlog_checkpoint"]


def test_the_c2sp_example_note_verifies_with_its_verifier_key() -> None:
    """The signed-note spec's example verifier key opens its example note and yields its text."""
    assert C2SP["text"] == open_note(C2SP["note"], Verifier.parse(C2SP["vkey"]))


def test_the_c2sp_example_key_round_trips() -> None:
    """Parsing and printing the spec's verifier key gives back the same text."""
    assert C2SP["vkey"] == str(Verifier.parse(C2SP["vkey"]))


def test_the_go_example_key_signs_the_published_note_byte_for_byte() -> None:
    """Ed25519 is deterministic: signing the Go example text with its key gives its exact note."""
    signer = Signer.parse(GO["skey"])
    assert GO["skey"] == str(signer)
    assert GO["vkey"] == str(signer.verifier)
    assert GO["note"] == sign(GO["text"], signer)
    assert GO["text"] == open_note(GO["note"], Verifier.parse(GO["vkey"]))


def test_a_note_from_another_key_is_refused() -> None:
    """A note signed only by an unknown key is rejected (its signature is ignored, none remain)."""
    with pytest.raises(NoteError, match="not signed by a known key"):
        open_note(C2SP["note"], Verifier.parse(GO["vkey"]))


def test_unknown_signatures_are_ignored_beside_a_known_one() -> None:
    """A witness's extra signature line does not stop the log's own from verifying."""
    note = GO["note"] + C2SP["note"].rsplit("\n\n", 1)[1]
    assert GO["text"] == open_note(note, Verifier.parse(GO["vkey"]))


@pytest.mark.parametrize("edit", [
    lambda n: n.replace("problem,", "problem;"),
    lambda n: n.replace("x08go", "x08gp"),
    lambda n: n.replace("\n\n", "\n"),
    lambda n: n.rstrip("\n"),
    lambda n: n.replace("\u2014", "-"),
])
def test_a_tampered_note_is_refused(edit) -> None:
    """Changing the text, the signature or the layout of a signed note makes it fail."""
    with pytest.raises(NoteError):
        open_note(edit(GO["note"]), Verifier.parse(GO["vkey"]))


@pytest.mark.parametrize("vkey", [
    "",
    "example.com/foo+530d903a",
    "example.com/foo+530d903b+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
    "example.com/fo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
    "example.com/foo+530d903a+AkyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
    "example.com/foo+530D903A+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
    "example.com/foo+530d903a+!!!",
])
def test_malformed_verifier_keys_are_refused(vkey: str) -> None:
    """A verifier key with a wrong ID, name, length, case or encoding is refused."""
    with pytest.raises(NoteError):
        Verifier.parse(vkey)


def test_a_generated_key_has_the_c2sp_key_id() -> None:
    """A fresh key's ID is SHA-256(name ‖ LF ‖ 0x01 ‖ public key)[:4] and its vkey parses back."""
    signer = Signer.generate("log.example/one")
    assert signer.verifier == Verifier.parse(str(signer.verifier))
    assert signer.key_id == Signer.parse(str(signer)).key_id


def test_the_c2sp_checkpoint_example_parses() -> None:
    """The tlog-checkpoint spec's example body parses to its origin, size and root."""
    text = CHECKPOINT["note"].rsplit("\n\n", 1)[0] + "\n"
    checkpoint = Checkpoint.parse(text)
    assert (CHECKPOINT["origin"], CHECKPOINT["size"], CHECKPOINT["root"]) == (
        checkpoint.origin, checkpoint.size, __import__("base64").b64encode(checkpoint.root).decode())
    assert text == checkpoint.text()


@pytest.mark.parametrize("text", [
    "log\n012\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
    "log\n12\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I\n",
    "log\n12\n",
    "log\n-1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
    "my log\n12\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
    "log\n12\nAAAA\n",
])
def test_malformed_checkpoints_are_refused(text: str) -> None:
    """Leading zeros, a bad root, a missing line or a bad origin make a checkpoint unreadable."""
    with pytest.raises(FormatError):
        Checkpoint.parse(text)


def test_a_proof_file_round_trips_and_verifies() -> None:
    """A tlog-proof@v1 file written here parses back and binds its leaf to the signed checkpoint."""
    signer = Signer.generate("log.example/one")
    leaves = [merkle.leaf_hash(bytes([i])) for i in range(11)]
    _, created = merkle.append_leaves(0, [], leaves)
    nodes = {(level, index): value for level, index, value in created}

    def read(ids):
        return [nodes[i] for i in ids]

    note = Checkpoint("log.example/one", 11, merkle.root(11, read)).sign(signer)
    proof = ProofFile(6, tuple(merkle.inclusion_proof(6, 11, read)), note, b"extra")
    parsed = ProofFile.parse(proof.text())
    assert proof == parsed
    assert 11 == parsed.verify(leaves[6], signer.verifier).size
    with pytest.raises(FormatError, match="inclusion"):
        parsed.verify(leaves[5], signer.verifier)
    with pytest.raises(FormatError, match="signature"):
        parsed.verify(leaves[6], Signer.generate("log.example/one").verifier)
    assert 11 == open_checkpoint(note, signer.verifier).size


def test_the_tree_and_note_code_does_no_io_and_knows_no_framework() -> None:
    """Importing merkle, note and tlog loads neither litestar, sqlalchemy, cattrs nor sqlite3."""
    import subprocess
    import sys

    code = ("import sys, eventstate.merkle, eventstate.note, eventstate.tlog; "
            "print(sorted(m for m in ('litestar','sqlalchemy','cattrs','sqlite3','msgspec') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "[]" == out.stdout.strip()
