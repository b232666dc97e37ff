"""The proof-checking script in ARCHITECTURE.md accepts what eventstate signs and refuses forgeries."""

from __future__ import annotations

import ast
import base64
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from eventstate import merkle
from eventstate.checkpoints import write_new_key
from eventstate.commands import Command, apply_batch
from eventstate.domain import Update
from eventstate.eventlog import EventLog
from eventstate.note import Signer
from eventstate.tlog import Checkpoint

DOC = Path(__file__).parents[2] / "ARCHITECTURE.md"
ORIGIN = "doc.example/log"
ALLOWED_IMPORTS = {"base64", "hashlib", "json", "sys", "cryptography.hazmat.primitives.asymmetric.ed25519"}


def _script(tmp_path: Path) -> Path:
    blocks = re.findall(r"^```python\n(.*?)^```", DOC.read_text(encoding="utf-8"), re.S | re.M)
    found = [b for b in blocks if b.startswith('"""Check an eventstate tlog proof')]
    assert 1 == len(found), "ARCHITECTURE.md should hold exactly one proof-checking script"
    script = tmp_path / "check_proof.py"
    script.write_text(found[0], encoding="utf-8")
    return script


@pytest.fixture
def signer() -> Signer:
    return Signer.generate(ORIGIN)


@pytest.fixture
def proof(tmp_path: Path, signer: Signer) -> Path:
    """A proof of event 5 in a log of 11 awkward events, written by `eventstate prove`."""
    database = tmp_path / "events.db"
    log = EventLog.open(database)
    try:
        start = datetime(2026, 11, 21, tzinfo=UTC)
        for i in range(11):
            with log.transaction() as tx:
                apply_batch(tx, [Command(Update(counter=-i, message=f"é\n{i}: 🙂"))],
                            start + timedelta(seconds=i), timedelta(days=1))
    finally:
        log.close()
    key = tmp_path / "key"
    write_new_key(key, signer)
    out = tmp_path / "five.tlog-proof"
    subprocess.run([sys.executable, "-m", "eventstate.cli", "prove", "5", "--database", str(database),
                    "--out", str(out), "--key", str(key)], check=True, capture_output=True)
    return out


def run(script: Path, vkey: str, file: Path) -> subprocess.CompletedProcess[str]:
    """Isolated mode: no PYTHONPATH, no user site; eventstate is never imported by the script."""
    return subprocess.run([sys.executable, "-I", str(script), vkey, str(file)], capture_output=True,
                          text=True, check=False, cwd=file.parent)


def test_the_script_needs_only_the_standard_library_and_cryptography(tmp_path: Path) -> None:
    """Every import in the script is from the standard library or cryptography's Ed25519."""
    tree = ast.parse(_script(tmp_path).read_text(encoding="utf-8"))
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                 and node.module is not None}
    assert imported <= ALLOWED_IMPORTS


def test_the_script_accepts_a_proof_made_by_prove(tmp_path: Path, proof: Path, signer: Signer) -> None:
    """On an untouched proof file the script prints OK naming the event and the tree size."""
    result = run(_script(tmp_path), str(signer.verifier), proof)
    assert (0, "OK: event 5 is in the log of 11 events\n") == (result.returncode, result.stdout)


def test_the_script_accepts_a_bare_checkpoint(tmp_path: Path, signer: Signer) -> None:
    """A checkpoint as GET /checkpoint serves it verifies, with its size and root printed."""
    root = merkle.leaf_hash(b"x")
    path = tmp_path / "checkpoint"
    path.write_text(Checkpoint(ORIGIN, 1, root).sign(signer), encoding="utf-8")
    result = run(_script(tmp_path), str(signer.verifier), path)
    assert (0, f"OK: checkpoint of 1 events, root {base64.b64encode(root).decode()}\n") == (
        result.returncode, result.stdout)


def _swap_line(text: str, prefix: str, replace) -> str:
    lines = text.split("\n")
    i = next(n for n, line in enumerate(lines) if line.startswith(prefix))
    lines[i] = replace(lines[i])
    return "\n".join(lines)


def _flip_signature(line: str) -> str:
    dash, name, blob = line.split(" ")
    data = bytearray(base64.b64decode(blob))
    data[-1] ^= 1
    return f"{dash} {name} {base64.b64encode(bytes(data)).decode()}"


def _edit_extra(line: str) -> str:
    data = base64.b64decode(line.removeprefix("extra ")).replace(b'"counter":-4', b'"counter":4')
    return "extra " + base64.b64encode(data).decode()


@pytest.mark.parametrize(("case", "edit"), [
    ("event edited", lambda t: _swap_line(t, "extra ", _edit_extra)),
    ("index moved", lambda t: t.replace("\nindex 4\n", "\nindex 3\n")),
    ("path hash changed", lambda t: t.replace(t.split("\n")[3], base64.b64encode(b"\0" * 32).decode())),
    ("size changed", lambda t: t.replace(f"{ORIGIN}\n11\n", f"{ORIGIN}\n12\n")),
    ("signature changed", lambda t: _swap_line(t, "\u2014 ", _flip_signature)),
])
def test_the_script_refuses_a_tampered_proof(tmp_path: Path, proof: Path, signer: Signer,
                                             case: str, edit) -> None:
    """Editing the event, index, path, checkpoint or signature makes the script print BROKEN."""
    original = proof.read_text(encoding="utf-8")
    tampered = edit(original)
    assert tampered != original, case
    proof.write_text(tampered, encoding="utf-8")
    result = run(_script(tmp_path), str(signer.verifier), proof)
    assert 1 == result.returncode, case
    assert result.stdout.startswith("BROKEN"), result.stdout


def test_the_script_refuses_another_key(tmp_path: Path, proof: Path) -> None:
    """A proof checked against another key of the same name does not verify."""
    result = run(_script(tmp_path), str(Signer.generate(ORIGIN).verifier), proof)
    assert (1, True) == (result.returncode, result.stdout.startswith("BROKEN"))
