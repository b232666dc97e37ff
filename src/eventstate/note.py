"""C2SP signed notes (c2sp.org/signed-note) with Ed25519 keys: key formats, signing, verifying.

    signer key    PRIVATE+KEY+<name>+<hex key ID>+<base64(0x01 ‖ 32-byte seed)>
    verifier key  <name>+<hex key ID>+<base64(0x01 ‖ 32-byte public key)>
    key ID        SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)[:4]
    signed note   <text ending in a newline>\\n— <name> <base64(key ID ‖ signature)>\\n …

No I/O: reading key files is the caller's business. Ed25519 itself comes from `cryptography`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

import attrs
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

ED25519 = 0x01
EM_DASH = "\u2014"
MAX_SIGNATURES = 100  # the spec asks verifiers to accept at least 16
_SIGNER_PREFIX = "PRIVATE+KEY+"


class NoteError(ValueError):
    """A key or note is malformed, or a note carries no valid signature from a known key."""


def check_name(name: str) -> str:
    """Return `name` if it can name a key (non-empty, no spaces, no `+`); else raise NoteError."""
    if not name or "+" in name or any(c.isspace() for c in name) or not name.isprintable():
        raise NoteError(f"a key name must be non-empty, without spaces or '+', not {name!r}")
    return name


def key_id(name: str, public: bytes) -> bytes:
    """The 4-byte key ID of an Ed25519 key as C2SP signed-note recommends."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([ED25519]) + public).digest()[:4]


def _b64decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise NoteError(f"{what} is not valid base64") from None


def _typed_key(text: str, what: str) -> bytes:
    data = _b64decode(text, what)
    if len(data) != 33 or data[0] != ED25519:
        raise NoteError(f"{what} is not an Ed25519 key (type 0x01 and 32 bytes)")
    return data[1:]


def _hex_id(text: str, what: str) -> bytes:
    if len(text) != 8 or text != text.lower():
        raise NoteError(f"{what} key ID must be 8 lowercase hex digits, not {text!r}")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise NoteError(f"{what} key ID must be 8 lowercase hex digits, not {text!r}") from None


@attrs.frozen
class Verifier:
    """A named Ed25519 public key that checks signatures in notes."""

    name: str
    key_id: bytes
    public: bytes = attrs.field(repr=False)

    @classmethod
    def parse(cls, text: str) -> Verifier:
        """Parse a verifier key `name+hexid+base64`; the ID must match the name and key."""
        parts = text.strip().split("+", 2)  # base64 may itself contain '+'
        if len(parts) != 3:
            raise NoteError("a verifier key looks like NAME+KEYID+BASE64 (three parts joined by '+')")
        name, hex_id, encoded = check_name(parts[0]), parts[1], parts[2]
        public = _typed_key(encoded, "the verifier key")
        expected = _hex_id(hex_id, "the verifier")
        if key_id(name, public) != expected:
            raise NoteError("the verifier key's ID does not match its name and public key")
        return cls(name, expected, public)

    def __str__(self) -> str:
        encoded = base64.b64encode(bytes([ED25519]) + self.public).decode()
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    def verify(self, text: bytes, signature: bytes) -> bool:
        """Whether `signature` is this key's Ed25519 signature of `text`."""
        try:
            Ed25519PublicKey.from_public_bytes(self.public).verify(signature, text)
        except InvalidSignature:
            return False
        return True


@attrs.frozen
class Signer:
    """A named Ed25519 private key that signs notes."""

    name: str
    key_id: bytes
    _key: Ed25519PrivateKey = attrs.field(repr=False, alias="key")

    @classmethod
    def generate(cls, name: str) -> Signer:
        """A fresh random key named `name`."""
        return cls.from_seed(check_name(name), Ed25519PrivateKey.generate().private_bytes(
            Encoding.Raw, PrivateFormat.Raw, NoEncryption()))

    @classmethod
    def from_seed(cls, name: str, seed: bytes) -> Signer:
        """The key with this 32-byte Ed25519 seed."""
        key = Ed25519PrivateKey.from_private_bytes(seed)
        public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return cls(check_name(name), key_id(name, public), key)

    @classmethod
    def parse(cls, text: str) -> Signer:
        """Parse a signer key `PRIVATE+KEY+name+hexid+base64`; the ID must match the name and key."""
        text = text.strip()
        if not text.startswith(_SIGNER_PREFIX):
            raise NoteError("a signer key starts with PRIVATE+KEY+")
        parts = text.removeprefix(_SIGNER_PREFIX).split("+", 2)
        if len(parts) != 3:
            raise NoteError("a signer key looks like PRIVATE+KEY+NAME+KEYID+BASE64")
        name, hex_id, encoded = check_name(parts[0]), parts[1], parts[2]
        signer = cls.from_seed(name, _typed_key(encoded, "the signer key"))
        if signer.key_id != _hex_id(hex_id, "the signer"):
            raise NoteError("the signer key's ID does not match its name and key")
        return signer

    def __str__(self) -> str:
        seed = self._key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        encoded = base64.b64encode(bytes([ED25519]) + seed).decode()
        return f"{_SIGNER_PREFIX}{self.name}+{self.key_id.hex()}+{encoded}"

    @property
    def verifier(self) -> Verifier:
        """The matching verifier key."""
        public = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return Verifier(self.name, self.key_id, public)

    def signature_line(self, text: str) -> str:
        """`— name base64(keyid ‖ signature)` over `text`, newline included."""
        signature = self._key.sign(text.encode("utf-8"))
        return f"{EM_DASH} {self.name} {base64.b64encode(self.key_id + signature).decode()}\n"


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise NoteError("a note's text must end with a newline")
    if any(c < " " and c != "\n" for c in text):
        raise NoteError("a note must not contain control characters other than newline")


def sign(text: str, *signers: Signer) -> str:
    """The signed note of `text` (which ends in a newline) with one signature line per signer."""
    _check_text(text)
    if text.endswith("\n\n"):
        raise NoteError("a note's text must not end with an empty line")
    return text + "\n" + "".join(signer.signature_line(text) for signer in signers)


def open_note(note: str, *verifiers: Verifier) -> str:
    """The text of `note`, if at least one known key signed it and no known key's signature fails.

    Signatures from unknown keys (another name or ID) are ignored, as the spec requires.
    """
    _check_text(note)
    text, sep, block = note.rpartition("\n\n")
    if not sep:
        raise NoteError("a signed note needs an empty line between the text and the signatures")
    text += "\n"
    lines = block.removesuffix("\n").split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"the note carries more than {MAX_SIGNATURES} signatures")
    known = {(v.name, v.key_id): v for v in verifiers}
    verified = False
    for line in lines:
        dash, _, rest = line.partition(" ")
        name, _, encoded = rest.partition(" ")
        if dash != EM_DASH or not name or not encoded or " " in encoded:
            raise NoteError(f"malformed signature line {line!r}")
        blob = _b64decode(encoded, "a signature")
        if len(blob) < 5:
            raise NoteError("a signature is too short to carry a key ID")
        verifier = known.get((name, blob[:4]))
        if verifier is None:
            continue
        if not verifier.verify(text.encode("utf-8"), blob[4:]):
            raise NoteError(f"the signature by {name} ({blob[:4].hex()}) does not verify")
        verified = True
    if not verified:
        names = ", ".join(f"{v.name}+{v.key_id.hex()}" for v in verifiers) or "none given"
        raise NoteError(f"the note is not signed by a known key ({names})")
    return text
