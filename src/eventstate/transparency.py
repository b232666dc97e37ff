"""The auditor's commands over the Merkle tree: keygen, prove, verify --checkpoint, verify-proof.

`verify --checkpoint` answers "is the log I see now an extension of the one this signed checkpoint
described?" from O(log n) tree nodes (over HTTP, or in a database file, where it also checks that
the stored tree is the tree of the events). `prove` writes a c2sp.org/tlog-proof@v1 file whose
`extra` line carries the event and its predecessor's hash, so `verify-proof` can recompute the
event's hash, its leaf, and the path to a signed root, offline.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from eventstate import merkle
from eventstate.adapters import open_store
from eventstate.checkpoints import SigningKeyError, load_signer, write_new_key
from eventstate.domain import GENESIS_HASH, Event, chain_hash
from eventstate.note import NoteError, Signer, Verifier
from eventstate.ports import EventStore, ReadSnapshot, StoreError
from eventstate.serialization import decode_json, structure_event, unstructure_event
from eventstate.tlog import Checkpoint, FormatError, ProofFile, b64, open_checkpoint

HTTP_TIMEOUT_SECONDS = 30.0


class BadInput(Exception):
    """An argument or file the command cannot use: one line, exit status 2."""


class VerificationFailed(Exception):
    """The log or proof does not verify: one line naming what failed, exit status 1."""


def _read_text(path: str, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) else "not UTF-8 text"
        raise BadInput(f"cannot read {what} {path}: {reason}") from None


def _verifier(text: str) -> Verifier:
    """The verifier key given as text (what keygen printed) or as a file holding it."""
    if "+" not in text and Path(text).is_file():
        text = _read_text(text, "the verifier key file")
    try:
        return Verifier.parse(text)
    except NoteError as e:
        raise BadInput(f"--vkey: {e}") from None


def _checkpoint(path: str, verifier: Verifier) -> Checkpoint:
    note = _read_text(path, "the checkpoint")
    try:
        return open_checkpoint(note, verifier)
    except FormatError as e:
        raise VerificationFailed(f"checkpoint {path}: {e}") from None


def _create(path: str) -> Any:
    """A new file opened for text writing (never one that exists), or stdout for `-`."""
    if path == "-":
        return os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise BadInput(f"{path} already exists; refusing to overwrite it") from None
    except OSError as e:
        raise BadInput(f"cannot create {path}: {e.strerror}") from None
    return os.fdopen(fd, "w", encoding="utf-8")


# ---- keygen ------------------------------------------------------------------------------------


def _cmd_keygen(args: argparse.Namespace) -> int:
    try:
        signer = Signer.generate(args.origin)
    except NoteError as e:
        raise BadInput(f"--origin: {e}") from None
    try:
        write_new_key(Path(args.out), signer)
    except SigningKeyError as e:
        raise BadInput(str(e)) from None
    print(signer.verifier)
    return 0


# ---- consistency with a saved checkpoint ---------------------------------------------------------


def check_extends(saved: Checkpoint, size: int, root: bytes, proof: list[bytes]) -> None:
    """Raise VerificationFailed unless the tree (size, root) extends the saved checkpoint."""
    if size < saved.size:
        raise VerificationFailed(
            f"the checkpoint is for {saved.size} events but the log has only {size}: "
            "events were removed (a rollback or a truncated copy)")
    if saved.size == 0:
        return
    try:
        merkle.verify_consistency(saved.size, size, proof, saved.root, root)
    except merkle.ProofError as e:
        raise VerificationFailed(
            f"the log of {size} events is not consistent with the checkpoint of {saved.size} "
            f"events: {e} (history covered by the checkpoint was rewritten)") from None


def _check_database(snap: ReadSnapshot, saved: Checkpoint) -> tuple[int, bytes]:
    size = snap.max_seq()
    if size < saved.size:
        check_extends(saved, size, b"", [])
    root = merkle.root(size, snap.nodes)
    # The stored nodes are what the server proves from; they must be the tree of the events.
    events_root = merkle.root_of_leaves(merkle.event_leaf(e.hash) for e in snap.events())
    if events_root != root:
        raise VerificationFailed(
            "the Merkle tree stored in the database is not the tree of its events "
            "(events or tree nodes edited outside eventstate)")
    proof = [] if saved.size in (0, size) else merkle.consistency_proof(saved.size, size, snap.nodes)
    check_extends(saved, size, root, proof)
    return size, root


def _check_chain(log: EventStore) -> None:
    """The whole hash chain, as plain `verify` checks it: the tree proves nothing about events
    whose recorded hash no longer matches their fields."""
    from eventstate.audit import AuditFailed, verify

    try:
        verify(log)
    except AuditFailed as e:
        raise VerificationFailed(f"the hash chain breaks at seq {e.error.seq}: {e.error.reason}") from None


def _get(url: str, path: str) -> bytes:
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise BadInput(f"--url must be an http:// or https:// URL, not {url!r}")
    target = urllib.parse.urljoin(url.rstrip("/") + "/", path.lstrip("/"))
    request = urllib.request.Request(target)  # noqa: S310 - the scheme is checked just above
    if key := os.environ.get("EVENTSTATE_API_KEY"):
        request.add_header("X-API-KEY", key)
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_SECONDS) as response:  # noqa: S310
            body: bytes = response.read()
            return body
    except urllib.error.HTTPError as e:
        detail = e.read().decode("utf-8", "replace")
        with contextlib.suppress(ValueError, KeyError, TypeError):
            detail = json.loads(detail)["detail"]
        raise VerificationFailed(f"GET {path}: {e.code} {detail}") from None
    except (urllib.error.URLError, OSError) as e:
        raise BadInput(f"cannot reach {url}: {getattr(e, 'reason', e)}") from None


def _check_server(url: str, saved: Checkpoint, verifier: Verifier) -> tuple[int, bytes]:
    try:
        current = open_checkpoint(_get(url, "/checkpoint").decode("utf-8"), verifier)
    except (FormatError, UnicodeDecodeError) as e:
        raise VerificationFailed(f"the server's current checkpoint: {e}") from None
    if current.origin != saved.origin:
        raise VerificationFailed(f"the server's origin is {current.origin!r}, not {saved.origin!r}")
    proof: list[bytes] = []
    if 0 < saved.size < current.size:
        body = decode_json(_get(url, f"/proofs/consistency?from={saved.size}&to={current.size}"))
        proof = [_b64_hash(h) for h in body["hashes"]]
    check_extends(saved, current.size, current.root, proof)
    return current.size, current.root


def _b64_hash(text: Any) -> bytes:
    import base64
    import binascii

    try:
        return base64.b64decode(str(text), validate=True)
    except binascii.Error:
        raise VerificationFailed("the server sent a proof hash that is not base64") from None


def verify_checkpoint(args: argparse.Namespace, open_log: Callable[[str], EventStore]) -> int:
    """`eventstate verify --checkpoint FILE --vkey VKEY (--database DB | --url URL)`."""
    if args.vkey is None:
        raise BadInput("--checkpoint needs --vkey (the verifier key that keygen printed)")
    if (args.database is None) == (args.url is None):
        raise BadInput("give exactly one of --database and --url")
    verifier = _verifier(args.vkey)
    saved = _checkpoint(args.checkpoint, verifier)
    try:
        if args.url is not None:
            size, root = _check_server(args.url, saved, verifier)
        else:
            log = open_log(args.database)
            try:
                _check_chain(log)
                with log.snapshot() as snap:
                    size, root = _check_database(snap, saved)
            finally:
                log.close()
    except VerificationFailed as e:
        print(f"eventstate: verify FAILED: {e}", file=sys.stderr)
        return 1
    print(f"ok: the log ({size} events, root {b64(root)}) extends the checkpoint "
          f"({saved.size} events, root {b64(saved.root)}) signed by {verifier.name}")
    return 0


# ---- proofs of one event -----------------------------------------------------------------------


@attrs.frozen
class EventClaim:
    """What a proof file's extra data carries: the event, and its predecessor's hash."""

    event: Event
    previous_hash: str

    def extra(self) -> bytes:
        """The JSON carried in the proof's `extra` line."""
        return json.dumps({"event": unstructure_event(self.event), "previous_hash": self.previous_hash},
                          ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    @classmethod
    def parse(cls, extra: bytes | None) -> EventClaim:
        """Read the event back; BadInput if there is none."""
        if extra is None:
            raise BadInput("the proof carries no event (no 'extra' line); eventstate proofs always do")
        try:
            data = decode_json(extra)
            return cls(structure_event(data["event"]), str(data["previous_hash"]))
        except (ValueError, KeyError, TypeError) as e:
            raise BadInput(f"the proof's extra data is not an eventstate event: {e}") from None


def _signer(args: argparse.Namespace) -> Signer:
    path = args.key or os.environ.get("EVENTSTATE_SIGNING_KEY_FILE")
    if not path:
        raise BadInput("prove signs a checkpoint: give --key KEYFILE or set EVENTSTATE_SIGNING_KEY_FILE")
    try:
        return load_signer(Path(path))
    except SigningKeyError as e:
        raise BadInput(str(e)) from None


def build_proof(snap: ReadSnapshot, seq: int, signer: Signer) -> ProofFile:
    """The proof file of event `seq` in the tree of every event in `snap`, with a fresh checkpoint."""
    size = snap.max_seq()
    if not 1 <= seq <= size:
        raise BadInput(f"there is no event {seq}; the log has {size} events")
    event = snap.event(seq)
    before = snap.event(seq - 1) if seq > 1 else None
    if event is None or (seq > 1 and before is None):
        raise StoreError(f"the log has a gap near event {seq}: run `eventstate verify`")
    previous_hash = GENESIS_HASH if before is None else before.hash
    if chain_hash(event.seq, event.timestamp, event.old, event.new, previous_hash) != event.hash:
        raise StoreError(f"event {seq} does not match its hash: run `eventstate verify`")
    root = merkle.root(size, snap.nodes)
    hashes = merkle.inclusion_proof(seq - 1, size, snap.nodes)
    try:
        merkle.verify_inclusion(seq - 1, size, merkle.event_leaf(event.hash), hashes, root)
    except merkle.ProofError:
        raise StoreError("the stored Merkle tree does not hold this event: run `eventstate verify`") from None
    note = Checkpoint(signer.name, size, root).sign(signer)
    return ProofFile(seq - 1, tuple(hashes), note, EventClaim(event, previous_hash).extra())


def _cmd_prove(args: argparse.Namespace) -> int:
    signer = _signer(args)
    log = open_store(args.database, readonly=True)
    try:
        with log.snapshot() as snap:
            proof = build_proof(snap, args.seq, signer)
    finally:
        log.close()
    with _create(args.out) as out:
        out.write(proof.text())
    return 0


def verify_proof_text(text: str, verifier: Verifier) -> tuple[Event, Checkpoint]:
    """The event a proof file proves and the checkpoint it is in; VerificationFailed names what failed."""
    try:
        proof = ProofFile.parse(text)
    except FormatError as e:
        raise BadInput(f"not a tlog proof: {e}") from None
    claim = EventClaim.parse(proof.extra)
    event = claim.event
    if event.seq != proof.index + 1:
        raise VerificationFailed(f"the proof is for leaf {proof.index} but carries event {event.seq}")
    recomputed = chain_hash(event.seq, event.timestamp, event.old, event.new, claim.previous_hash)
    if recomputed != event.hash:
        raise VerificationFailed(f"event {event.seq}'s fields do not hash to its hash {event.hash}")
    try:
        checkpoint = proof.verify(merkle.event_leaf(event.hash), verifier)
    except FormatError as e:
        raise VerificationFailed(str(e)) from None
    return event, checkpoint


def _cmd_verify_proof(args: argparse.Namespace) -> int:
    verifier = _verifier(args.vkey)
    try:
        event, checkpoint = verify_proof_text(_read_text(args.file, "the proof"), verifier)
    except VerificationFailed as e:
        print(f"eventstate: verify-proof FAILED: {e}", file=sys.stderr)
        return 1
    print(f"ok: event {event.seq} (hash {event.hash}) is in {checkpoint.origin} at tree size "
          f"{checkpoint.size}, root {b64(checkpoint.root)}")
    return 0


def add_commands(sub: Any) -> None:
    """Register keygen, prove and verify-proof (verify's --checkpoint lives with verify)."""
    p = sub.add_parser("keygen", help="create an Ed25519 key for signing checkpoints")
    p.add_argument("--origin", required=True, help="the log's name, e.g. example.com/eventstate")
    p.add_argument("--out", required=True, metavar="KEYFILE", help="the key file to create (mode 0600)")
    p.set_defaults(run=_cmd_keygen)

    p = sub.add_parser("prove", help="write a c2sp.org/tlog-proof@v1 file for one event")
    p.add_argument("seq", type=int, help="the event's seq")
    p.add_argument("--database", required=True)
    p.add_argument("--out", required=True, metavar="FILE", help="the proof file to create (- for stdout)")
    p.add_argument("--key", metavar="KEYFILE",
                   help="signing key for the checkpoint (default: EVENTSTATE_SIGNING_KEY_FILE)")
    p.set_defaults(run=_cmd_prove)

    p = sub.add_parser("verify-proof", help="check a tlog proof file offline")
    p.add_argument("file", help="a proof written by `eventstate prove`")
    p.add_argument("--vkey", required=True, help="the verifier key (text or a file holding it)")
    p.set_defaults(run=_cmd_verify_proof)
