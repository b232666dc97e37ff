// The hash chain, recomputed in the browser with Web Crypto, byte for byte as ARCHITECTURE.md
// ("The canonical encoding") specifies: eight fields joined by LF, messages as <utf-8 length>:<bytes>.

const encoder = new TextEncoder();
export const GENESIS_HASH = "0".repeat(64);

function join(parts) {
  const total = parts.reduce((n, p) => n + p.length, 0) + parts.length - 1;
  const out = new Uint8Array(total);
  let at = 0;
  parts.forEach((part, i) => {
    if (i) out[at++] = 0x0a;
    out.set(part, at);
    at += part.length;
  });
  return out;
}

function message(text) {
  const bytes = encoder.encode(text);
  const prefix = encoder.encode(`${bytes.length}:`);
  const out = new Uint8Array(prefix.length + bytes.length);
  out.set(prefix);
  out.set(bytes, prefix.length);
  return out;
}

/** The bytes an event's hash covers, given its predecessor's hash (64 hex digits). */
export function canonicalBytes(event, previousHash) {
  return join([
    encoder.encode("eventstate/1"),
    encoder.encode(String(event.seq)),
    encoder.encode(event.timestamp),
    encoder.encode(String(event.old.counter)),
    message(event.old.message),
    encoder.encode(String(event.new.counter)),
    message(event.new.message),
    encoder.encode(previousHash),
  ]);
}

export function toHex(buffer) {
  return Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, "0")).join("");
}

export async function chainHash(event, previousHash) {
  return toHex(await crypto.subtle.digest("SHA-256", canonicalBytes(event, previousHash)));
}

/** What a verified event leaves for its successor to link to. */
export function linkOf(event) {
  return { seq: event.seq, hash: event.hash, state: event.new, time: event.timestamp };
}

export const GENESIS = { seq: 0, hash: GENESIS_HASH, state: { counter: 0, message: "" }, time: "" };

const sameState = (a, b) => String(a.counter) === String(b.counter) && a.message === b.message;

/**
 * Check `event` against the link its predecessor left: null if it holds, else {seq, reason} naming
 * the first seq that fails (the four rules of "What a valid log satisfies").
 */
export async function checkLink(previous, event) {
  const expected = previous.seq + 1;
  if (event.seq !== expected) {
    return { seq: expected, reason: `seq ${expected} is missing: the next event is seq ${event.seq}` };
  }
  if (!sameState(event.old, previous.state)) {
    return { seq: event.seq, reason: "its old state is not the previous event's new state" };
  }
  if (event.timestamp < previous.time) {
    return { seq: event.seq, reason: "its timestamp is earlier than the previous event's" };
  }
  if (await chainHash(event, previous.hash) !== event.hash) {
    return { seq: event.seq, reason: "its hash does not match its content and its predecessor's hash" };
  }
  return null;
}

/** Verify `events` (ascending, contiguous) from `previous`; {ok, from, to} or {ok: false, seq, reason}. */
export async function verifySegment(previous, events) {
  let link = previous;
  for (const event of events) {
    const failure = await checkLink(link, event);
    if (failure) return { ok: false, ...failure };
    link = linkOf(event);
  }
  return { ok: true, from: events.length ? events[0].seq : null, to: link.seq, link };
}
