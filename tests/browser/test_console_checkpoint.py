"""The console's checkpoint and inclusion-proof checks, in a real Chromium.

The server's own /checkpoint and /proofs endpoints are answered here by a fixture built in the test:
an RFC 9162 Merkle tree over the real log's event hashes, and a C2SP signed note signed with Ed25519
by `cryptography`. The page's code (Web Crypto) checks them exactly as it would the server's.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests_support import ServerProcess

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ORIGIN = "console.test/log"
SIZE = 20
EVENTS = 30

# golang.org/x/mod/sumdb/note, note_test.go (also the example in c2sp.org/signed-note).
GO_KEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = ("If you think cryptography is the answer to your problem,\n"
           "then you don't know what your problem is.\n")
GO_NOTE = (GO_TEXT + "\n\u2014 PeterNeumann "
           "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n")
# transparency-dev/formats, note/note_cosigv1_test.go: a verifier key whose base64 contains '+'.
PLUS_KEY = "TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6"


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def tree_hash(leaves: list[bytes]) -> bytes:
    """RFC 9162 §2.1.1 MTH over leaf data."""
    if not leaves:
        return sha256(b"")
    if len(leaves) == 1:
        return sha256(b"\x00" + leaves[0])
    k = _split(len(leaves))
    return sha256(b"\x01" + tree_hash(leaves[:k]) + tree_hash(leaves[k:]))


def audit_path(m: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 9162 §2.1.3.1 PATH(m, D[n])."""
    if len(leaves) <= 1:
        return []
    k = _split(len(leaves))
    if m < k:
        return [*audit_path(m, leaves[:k]), tree_hash(leaves[k:])]
    return [*audit_path(m - k, leaves[k:]), tree_hash(leaves[:k])]


class Signer:
    """An Ed25519 C2SP signed-note key."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.private = Ed25519PrivateKey.generate()
        public = self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.key_id = sha256(name.encode() + b"\n\x01" + public)[:4]
        material = base64.b64encode(b"\x01" + public).decode()
        self.verifier_key = f"{name}+{self.key_id.hex()}+{material}"

    def sign(self, text: str) -> str:
        signature = self.private.sign(text.encode())
        line = base64.b64encode(self.key_id + signature).decode()
        return f"{text}\n\u2014 {self.name} {line}\n"


class Fixture:
    """A checkpoint of the first SIZE events of a real log and the proofs for it."""

    def __init__(self, server: ServerProcess, signer: Signer, *, other_history: bool = False) -> None:
        events = httpx.get(f"{server.url}/logs", params={"limit": SIZE}).json()["items"]
        self.leaves = [bytes.fromhex(e["hash"]) for e in events]
        if other_history:  # the checkpoint signs a history whose event 2 is not the one served
            self.leaves[1] = sha256(b"another event 2")
        self.root = tree_hash(self.leaves)
        self.note = signer.sign(f"{ORIGIN}\n{SIZE}\n{base64.b64encode(self.root).decode()}\n")
        self.bad_proof_for: int | None = None
        self.proofs_served: list[int] = []

    def routes(self) -> dict[Any, Any]:
        def checkpoint(route: Any) -> None:
            route.fulfill(status=200, body=self.note, content_type="text/plain; charset=utf-8")

        def proof(route: Any) -> None:
            match = re.search(r"/proofs/inclusion/(\d+)\?tree_size=(\d+)$", route.request.url)
            assert match, route.request.url
            seq, size = int(match[1]), int(match[2])
            self.proofs_served.append(seq)
            hashes = audit_path(seq - 1, self.leaves[:size])
            if seq == self.bad_proof_for:
                hashes[0] = bytes([hashes[0][0] ^ 1]) + hashes[0][1:]
            route.fulfill(status=200, content_type="application/json", body=json.dumps(
                {"seq": seq, "tree_size": size, "hashes": [base64.b64encode(h).decode() for h in hashes]}))

        return {"**/checkpoint": checkpoint, re.compile(r".*/proofs/inclusion/\d+.*"): proof}


@pytest.fixture
def server(server_factory: type[ServerProcess], db_path: Path) -> ServerProcess:
    started = server_factory(db_path).start()
    with httpx.Client(base_url=started.url) as client:
        for i in range(EVENTS):
            assert 200 == client.post("/update", json={"counter": i, "message": f"m{i}"}).status_code
    return started


def test_the_page_checks_a_published_signed_note_vector(server: ServerProcess, open_page: Any) -> None:
    """The page's note code opens the Go sumdb/note example and refuses it altered by one letter."""
    page = open_page(f"{server.url}/console").page
    page.wait_for_selector("#chain-all.good")
    result = page.evaluate("""async ([key, note, plus]) => {
        const m = await import('/console/checkpoint.js');
        const verifier = await m.parseVerifierKey(key);
        const text = await m.openNote(note, verifier);
        let altered = null;
        try { await m.openNote(note.replace('cryptography', 'cryptographY'), verifier); }
        catch (e) { altered = e.message; }
        const withPlus = await m.parseVerifierKey(plus);
        return {text, altered, plusName: withPlus.name};
    }""", [GO_KEY, GO_NOTE, PLUS_KEY])
    assert GO_TEXT == result["text"]
    assert "does not verify" in result["altered"]
    assert "TEST" == result["plusName"]


def test_a_signed_checkpoint_and_inclusion_proofs_verify(server: ServerProcess, open_page: Any) -> None:
    """Given the verifier key once, the page checks the checkpoint and proves the events it covers."""
    signer = Signer(ORIGIN)
    fixture = Fixture(server, signer)
    page = open_page(f"{server.url}/console", routes=fixture.routes()).page
    page.wait_for_selector("#checkpoint-form:not([hidden])")
    assert "paste its verifier key" in page.inner_text("#checkpoint-verdict")

    page.fill("#vkey", signer.verifier_key)
    page.press("#vkey", "Enter")
    page.wait_for_selector("#checkpoint-verdict.good")
    verdict = page.inner_text("#checkpoint-verdict")
    assert f"Checkpoint signed by {ORIGIN} verified: {SIZE} events." in verdict
    assert f"Inclusion proofs verified for seq 6 to {SIZE} (10 newer events" in verdict
    proved = page.eval_on_selector_all(
        "li.event:has(.badge.good)", "rows => rows.map(r => Number(r.dataset.seq))")
    assert list(range(SIZE, 5, -1)) == proved
    assert sorted(fixture.proofs_served) == list(range(6, SIZE + 1))
    assert signer.verifier_key == page.evaluate("localStorage.getItem('eventstate.verifierKey')")
    page.wait_for_selector("#checkpoint-root.good")
    assert f"the Merkle tree of events 1 to {SIZE} as this server serves them" in page.inner_text(
        "#checkpoint-root")

    # The key is remembered: a new visit checks the checkpoint without asking.
    page.reload()
    page.wait_for_selector("#checkpoint-verdict.good")


@pytest.mark.parametrize(
    "case",
    ["wrong key", "altered checkpoint", "altered key ID", "other log", "bad proof", "not a key"],
)
def test_a_bad_checkpoint_or_proof_is_refused_in_words(server: ServerProcess, open_page: Any,
                                                       case: str) -> None:
    """A forged or altered checkpoint, a mismatched key and a wrong proof are each named, in red."""
    signer = Signer(ORIGIN)
    fixture = Fixture(server, signer)
    key = signer.verifier_key
    expected = {
        "wrong key": "carries no signature by the key",
        "altered checkpoint": "does not verify",
        "altered key ID": "key ID does not match",
        "other log": 'is for log "console.test/log", not "other.test/log"',
        "bad proof": "Inclusion proof for seq 15 does NOT lead to its root hash",
        "not a key": "a verifier key looks like name+1234abcd+base64",
    }[case]
    if case == "wrong key":
        key = Signer(ORIGIN).verifier_key
    elif case == "altered checkpoint":
        fixture.note = fixture.note.replace(f"\n{SIZE}\n", f"\n{SIZE + 1}\n", 1)
    elif case == "altered key ID":
        name, key_id, material = key.split("+", 2)
        key = f"{name}+{(int(key_id, 16) ^ 1):08x}+{material}"
    elif case == "other log":
        other = Signer("other.test/log")
        fixture.note = other.sign(fixture.note.split("\n\n")[0] + "\n")
        key = other.verifier_key
    elif case == "bad proof":
        fixture.bad_proof_for = 15
    else:
        key = "not-a-key"

    page = open_page(f"{server.url}/console", routes=fixture.routes()).page
    page.wait_for_selector("#checkpoint-form:not([hidden])")
    page.fill("#vkey", key)
    page.click("#checkpoint-form button")
    page.wait_for_selector("#checkpoint-verdict.bad")
    assert expected in page.inner_text("#checkpoint-verdict")
    if case == "bad proof":
        assert ["15"] == page.eval_on_selector_all("li.event.broken", "rows => rows.map(r => r.dataset.seq)")


def test_a_checkpoint_of_another_history_is_caught_by_its_root(server: ServerProcess,
                                                               open_page: Any) -> None:
    """If the signed tree differs from the served log only in an event not on screen, the proofs of the
    events shown still verify, and recomputing the root from every event catches it."""
    signer = Signer(ORIGIN)
    fixture = Fixture(server, signer, other_history=True)
    page = open_page(f"{server.url}/console", routes=fixture.routes()).page
    page.wait_for_selector("#checkpoint-form:not([hidden])")
    page.fill("#vkey", signer.verifier_key)
    page.press("#vkey", "Enter")
    page.wait_for_selector("#checkpoint-verdict.good")
    page.wait_for_selector("#checkpoint-root.bad")
    assert f"does NOT match the Merkle tree of events 1 to {SIZE}" in page.inner_text("#checkpoint-root")
