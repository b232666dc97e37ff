"""The server's signed checkpoints: the signing key file, and a signer that never contradicts itself.

`CheckpointLog` signs a checkpoint at most once per tree size and, before signing a larger tree,
checks a consistency proof from the last checkpoint it signed: a tree that does not extend that
one (a rolled-back or rewritten log) is refused, never signed.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from eventstate import merkle
from eventstate.note import NoteError, Signer
from eventstate.tlog import Checkpoint

HOW_TO_ENABLE = ("signed checkpoints are not enabled on this server: create a key with "
                 "`eventstate keygen --origin ORIGIN --out KEYFILE` and set EVENTSTATE_SIGNING_KEY_FILE")


class SigningKeyError(ValueError):
    """The signing key file cannot be used (missing, unreadable, too open, or not a signer key)."""


class CheckpointsDisabled(LookupError):
    """This server has no signing key."""


class TreeInconsistent(Exception):
    """The log's tree does not extend the last checkpoint this process signed; nothing is signed."""


def load_signer(path: Path) -> Signer:
    """The signer key in `path`; refuse a file others may read or write (fail closed)."""
    try:
        info = path.stat()
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) else "not UTF-8 text"
        raise SigningKeyError(f"cannot read the signing key file {path}: {reason}") from None
    if not stat.S_ISREG(info.st_mode):
        raise SigningKeyError(f"the signing key file {path} is not a regular file")
    if info.st_mode & 0o077:
        raise SigningKeyError(
            f"the signing key file {path} has mode {stat.S_IMODE(info.st_mode):04o}: others may read "
            f"it; make it private with `chmod 600 {path}`"
        )
    try:
        return Signer.parse(text)
    except NoteError as e:
        raise SigningKeyError(f"the signing key file {path} does not hold a signer key: {e}") from None


def write_new_key(path: Path, signer: Signer) -> None:
    """Create `path` (mode 0600) holding the signer key; refuse to overwrite anything."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise SigningKeyError(f"{path} already exists; refusing to overwrite a key") from None
    except OSError as e:
        raise SigningKeyError(f"cannot create {path}: {e.strerror}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(f"{signer}\n")
        out.flush()
        os.fsync(out.fileno())


class CheckpointLog:
    """Signs this log's checkpoints with one key: once per tree size, never an inconsistent one."""

    def __init__(self, signer: Signer) -> None:
        self.signer = signer
        self._last: tuple[Checkpoint, str] | None = None
        self.signed = 0  # signatures made, for metrics and tests

    def checkpoint(self, size: int, read: merkle.NodeReader) -> str:
        """The signed checkpoint note for the tree of `size` leaves read through `read`."""
        last = self._last
        if last is not None and last[0].size == size:
            return last[1]
        current = Checkpoint(self.signer.name, size, merkle.root(size, read))
        if last is not None and last[0].size > 0:
            previous = last[0]
            try:
                proof = [] if size < previous.size else merkle.consistency_proof(previous.size, size, read)
                merkle.verify_consistency(previous.size, size, proof, previous.root, current.root)
            except merkle.ProofError as e:
                raise TreeInconsistent(
                    f"refusing to sign: the log's tree of size {size} is not consistent with the "
                    f"checkpoint of size {previous.size} signed earlier ({e})"
                ) from None
        note = current.sign(self.signer)
        self.signed += 1
        self._last = (current, note)
        return note
