// Signed checkpoints and inclusion proofs, checked in the browser:
//  - the verifier key and the note signature follow C2SP signed-note (Ed25519, key ID =
//    SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)[:4], signature line "— name base64(key ID ‖ signature)");
//  - the note's text is a C2SP tlog-checkpoint (origin, tree size, base64 root hash, extensions);
//  - inclusion proofs are verified as RFC 9162 §2.1.3.2 says, the leaf of event seq being index
//    seq - 1 with data the 32 bytes of the event's hash.

const encoder = new TextEncoder();
const EM_DASH = "\u2014";
const ED25519 = 0x01;

export class VerificationError extends Error {}

export function base64Decode(text) {
  if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(text)) {
    throw new VerificationError("not valid base64");
  }
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

export function hexDecode(text) {
  if (!/^(?:[0-9a-f]{2})*$/.test(text)) throw new VerificationError("not lowercase hex");
  return Uint8Array.from(text.match(/../g) || [], (h) => parseInt(h, 16));
}

const concat = (...parts) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
};
const sha256 = async (bytes) => new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
const equal = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

/** Parse and check a verifier key `name+hexkeyid+base64(0x01 ‖ key)`; {name, id, key}. */
export async function parseVerifierKey(text) {
  // The name holds no "+", the key ID is hex; the base64 after them may contain "+" itself.
  const match = /^([^+\s]+)\+([^+]*)\+(\S+)$/.exec(text.trim());
  if (!match) {
    throw new VerificationError("a verifier key looks like name+1234abcd+base64 (three parts joined by +)");
  }
  const [, name, idHex, keyB64] = match;
  if (!/^[0-9a-f]{8}$/.test(idHex)) throw new VerificationError("the key ID must be 8 lowercase hex digits");
  let raw;
  try {
    raw = base64Decode(keyB64);
  } catch {
    throw new VerificationError("the key's last part is not valid base64");
  }
  if (raw.length !== 33 || raw[0] !== ED25519) {
    throw new VerificationError("this is not an Ed25519 verifier key (type 0x01 and 32 bytes)");
  }
  const id = (await sha256(concat(encoder.encode(name), Uint8Array.of(0x0a), raw))).slice(0, 4);
  if (!equal(id, hexDecode(idHex))) {
    throw new VerificationError("the key ID does not match the key's name and bytes: the key was altered");
  }
  let key;
  try {
    key = await crypto.subtle.importKey("raw", raw.slice(1), { name: "Ed25519" }, false, ["verify"]);
  } catch {
    throw new VerificationError("this browser cannot verify Ed25519 signatures; use a current one");
  }
  return { name, id, key };
}

/** The text of a signed note if `verifier` signed it validly; else VerificationError. */
export async function openNote(note, verifier) {
  const split = note.indexOf("\n\n");
  if (split < 0 || !note.endsWith("\n")) {
    throw new VerificationError("the checkpoint is not a signed note (no blank line before signatures)");
  }
  const text = note.slice(0, split + 1);
  const lines = note.slice(split + 2, -1).split("\n");
  let found = false;
  for (const line of lines) {
    const match = new RegExp(`^${EM_DASH} (\\S+) ([A-Za-z0-9+/=]+)$`).exec(line);
    if (!match) throw new VerificationError(`malformed signature line: ${JSON.stringify(line)}`);
    if (match[1] !== verifier.name) continue; // signed by a key we were not asked to trust
    const bytes = base64Decode(match[2]);
    if (bytes.length !== 4 + 64 || !equal(bytes.slice(0, 4), verifier.id)) continue;
    found = true;
    if (await crypto.subtle.verify({ name: "Ed25519" }, verifier.key, bytes.slice(4), encoder.encode(text))) {
      return text;
    }
  }
  throw new VerificationError(found
    ? `the signature by ${verifier.name} does not verify: the checkpoint was altered or forged`
    : `the checkpoint carries no signature by the key ${verifier.name}`);
}

/** A tlog-checkpoint's text: {origin, size, root (32 bytes), extensions}. */
export function parseCheckpoint(text) {
  const lines = text.slice(0, -1).split("\n");
  if (lines.length < 3) throw new VerificationError("the checkpoint needs an origin, a size and a root hash");
  const [origin, sizeText, rootText] = lines;
  if (!/^(0|[1-9][0-9]{0,18})$/.test(sizeText)) throw new VerificationError("the checkpoint's size is not a number");
  const root = base64Decode(rootText);
  if (root.length !== 32) throw new VerificationError("the checkpoint's root hash is not 32 bytes");
  return { origin, size: Number(sizeText), root, extensions: lines.slice(3) };
}

/** The RFC 9162 leaf hash of an event: SHA-256(0x00 ‖ the 32 bytes of its hash). */
export async function eventLeaf(eventHashHex) {
  return sha256(concat(Uint8Array.of(0x00), hexDecode(eventHashHex)));
}

/** RFC 9162 §2.1.3.2: true if `proof` leads from `leaf` at `index` to `root` of a tree of `size`. */
export async function verifyInclusion(index, size, leaf, proof, root) {
  if (index >= size) return false;
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = await sha256(concat(Uint8Array.of(0x01), p, r));
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = await sha256(concat(Uint8Array.of(0x01), r, p));
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && equal(r, root);
}

/** An RFC 9162 tree head built leaf by leaf from a stack of perfect subtrees (O(log n) memory). */
export class TreeBuilder {
  constructor() {
    this.size = 0;
    this.stack = []; // {height, hash}, tallest first
  }

  async push(leafHash) {
    let node = { height: 0, hash: leafHash };
    this.size += 1;
    while (this.stack.length && this.stack.at(-1).height === node.height) {
      const left = this.stack.pop();
      node = { height: node.height + 1, hash: await sha256(concat(Uint8Array.of(0x01), left.hash, node.hash)) };
    }
    this.stack.push(node);
  }

  /** MTH of the leaves pushed so far: the subtrees joined from the smallest (rightmost) up. */
  async root() {
    if (!this.stack.length) return sha256(new Uint8Array(0));
    let r = this.stack.at(-1).hash;
    for (let i = this.stack.length - 2; i >= 0; i--) {
      r = await sha256(concat(Uint8Array.of(0x01), this.stack[i].hash, r));
    }
    return r;
  }
}

export const sameBytes = equal;
