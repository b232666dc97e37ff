"""Transparency-log formats over signed notes: c2sp.org/tlog-checkpoint and c2sp.org/tlog-proof@v1.

A checkpoint's text is three lines, origin, tree size and base64 root hash, signed as a note.
A proof file binds leaf `index` to a signed checkpoint by an RFC 9162 inclusion proof. No I/O.
"""

from __future__ import annotations

import base64
import binascii
import re

import attrs

from eventstate import merkle
from eventstate.note import NoteError, Signer, Verifier, check_name, open_note, sign

PROOF_HEADER = "c2sp.org/tlog-proof@v1"
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,19}")


class FormatError(ValueError):
    """A checkpoint or proof file is malformed, badly signed, or does not verify."""


def _b64_hash(text: str, what: str) -> bytes:
    try:
        value = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise FormatError(f"{what} is not valid base64") from None
    if len(value) != merkle.HASH_SIZE:
        raise FormatError(f"{what} is {len(value)} bytes, not a SHA-256 hash")
    return value


def _decimal(text: str, what: str) -> int:
    if not _DECIMAL.fullmatch(text) or int(text) >= 2**63:
        raise FormatError(f"{what} must be a decimal number without leading zeros, not {text!r}")
    return int(text)


def b64(value: bytes) -> str:
    """Standard base64, as every C2SP format uses."""
    return base64.b64encode(value).decode("ascii")


@attrs.frozen
class Checkpoint:
    """A tree head: the log's origin, its size and its RFC 9162 root hash."""

    origin: str
    size: int
    root: bytes

    def text(self) -> str:
        """The checkpoint's note text (three lines, each ending in a newline)."""
        return f"{self.origin}\n{self.size}\n{b64(self.root)}\n"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Parse checkpoint note text; extension lines are allowed and ignored."""
        lines = text.split("\n")
        if len(lines) < 4 or lines[-1] != "" or any(not line for line in lines[:-1]):
            raise FormatError("a checkpoint is at least three non-empty lines: origin, size, root hash")
        try:
            origin = check_name(lines[0])
        except NoteError as e:
            raise FormatError(f"checkpoint origin: {e}") from None
        return cls(origin, _decimal(lines[1], "the checkpoint's tree size"),
                   _b64_hash(lines[2], "the checkpoint's root hash"))

    def sign(self, signer: Signer) -> str:
        """The signed checkpoint note."""
        return sign(self.text(), signer)


def open_checkpoint(note: str, verifier: Verifier) -> Checkpoint:
    """The checkpoint in `note` if `verifier` signed it and its origin is the key's name."""
    try:
        checkpoint = Checkpoint.parse(open_note(note, verifier))
    except NoteError as e:
        raise FormatError(f"checkpoint signature: {e}") from None
    if checkpoint.origin != verifier.name:
        raise FormatError(f"the checkpoint's origin {checkpoint.origin!r} is not the key's name "
                          f"{verifier.name!r}")
    return checkpoint


@attrs.frozen
class ProofFile:
    """A c2sp.org/tlog-proof@v1 file: leaf index, inclusion proof, signed checkpoint, extra data."""

    index: int
    hashes: tuple[bytes, ...]
    checkpoint: str
    extra: bytes | None = None

    def text(self) -> str:
        """The file's contents."""
        lines = [PROOF_HEADER]
        if self.extra is not None:
            lines.append(f"extra {b64(self.extra)}")
        lines.append(f"index {self.index}")
        lines.extend(b64(h) for h in self.hashes)
        return "\n".join(lines) + "\n\n" + self.checkpoint

    @classmethod
    def parse(cls, text: str) -> ProofFile:
        """Parse a proof file strictly (the checkpoint is kept verbatim, not yet verified)."""
        head, sep, checkpoint = text.partition("\n\n")
        if not sep or not checkpoint:
            raise FormatError("a tlog proof needs an empty line before its checkpoint")
        lines = head.split("\n")
        if lines[0] != PROOF_HEADER:
            raise FormatError(f"a tlog proof starts with the line {PROOF_HEADER}")
        rest = lines[1:]
        extra = None
        if rest and rest[0].startswith("extra "):
            try:
                extra = base64.b64decode(rest[0].removeprefix("extra ").encode("ascii"), validate=True)
            except (binascii.Error, UnicodeEncodeError):
                raise FormatError("the proof's extra data is not valid base64") from None
            rest = rest[1:]
        if not rest or not rest[0].startswith("index "):
            raise FormatError("a tlog proof names its leaf on a line 'index N'")
        index = _decimal(rest[0].removeprefix("index "), "the proof's index")
        hashes = tuple(_b64_hash(line, f"proof hash {i}") for i, line in enumerate(rest[1:]))
        return cls(index, hashes, checkpoint, extra)

    def verify(self, leaf: bytes, verifier: Verifier) -> Checkpoint:
        """The signed checkpoint, if the proof binds `leaf` at `index` to it; else FormatError."""
        checkpoint = open_checkpoint(self.checkpoint, verifier)
        try:
            merkle.verify_inclusion(self.index, checkpoint.size, leaf, self.hashes, checkpoint.root)
        except merkle.ProofError as e:
            raise FormatError(f"inclusion proof: {e}") from None
        return checkpoint
