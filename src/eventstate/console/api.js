// The API as the console uses it: every request same-origin, the key (if any) from sessionStorage as
// X-API-KEY, errors turned into sentences, and the live tail read with fetch (EventSource cannot send
// headers), Server-Sent Events parsed here.

const KEY_NAME = "eventstate.apiKey";

/** An error the page can show as it is: `kind` is "unreachable", "unauthorized" or "http". */
export class ApiError extends Error {
  constructor(kind, message, status = 0) {
    super(message);
    this.kind = kind;
    this.status = status;
  }
}

export function apiKey() {
  return sessionStorage.getItem(KEY_NAME);
}

/** Keep `key` for this tab only; refuse what cannot travel in an HTTP header. */
export function setApiKey(key) {
  if (!/^[\x21-\x7e]+$/.test(key)) {
    throw new ApiError("key", "An API key is made of visible ASCII characters without spaces.");
  }
  sessionStorage.setItem(KEY_NAME, key);
}

export function forgetApiKey() {
  sessionStorage.removeItem(KEY_NAME);
}

/**
 * JSON with 64-bit integers intact: counters go up to 2^63 - 1, past what a JS number holds exactly,
 * and the hash chain covers their exact digits. Unsafe integers become BigInt (from the source text).
 */
export function parseJSON(text) {
  return JSON.parse(text, (_key, value, context) => {
    if (typeof value === "number" && Number.isInteger(value) && !Number.isSafeInteger(value)) {
      if (context && typeof context.source === "string") return BigInt(context.source);
      throw new ApiError("http", "This browser cannot read 64-bit integers exactly; use a current one.");
    }
    return value;
  });
}

/** fetch `path` on this origin; a Response that is ok, or an ApiError that says what went wrong. */
export async function request(path, init = {}) {
  const headers = new Headers(init.headers || {});
  if (!headers.has("Accept")) headers.set("Accept", "application/json");
  const key = apiKey();
  if (key) headers.set("X-API-KEY", key);
  let response;
  try {
    response = await fetch(path, { ...init, headers, cache: "no-store", credentials: "same-origin" });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError("unreachable",
      "The server cannot be reached. Check that eventstate is running and that this network can reach it.");
  }
  if (response.ok) return response;
  let detail = "";
  try {
    const problem = await response.json();
    detail = problem.detail || problem.title || "";
  } catch {
    // not problem+json: the status says enough
  }
  if (response.status === 401) {
    throw new ApiError("unauthorized", key
      ? "The server refused this API key (401 Unauthorized)."
      : "This server protects reads: an API key is required (401 Unauthorized).", 401);
  }
  throw new ApiError("http", `The server answered ${response.status}${detail ? `: ${detail}` : ""}.`,
    response.status);
}

export async function getJSON(path, init) {
  const response = await request(path, init);
  return parseJSON(await response.text());
}

/**
 * The events of `GET /logs/stream?after=…` as they come: yields {event, id, data} per message.
 * Ends when the server closes the stream; throws on a transport error or after `idleMs` of silence
 * (the server sends a heartbeat comment every 15 s, so silence means the connection is gone).
 */
export async function* streamEvents(after, signal, { onOpen, idleMs = 40000 } = {}) {
  const ctl = new AbortController();
  const abort = () => ctl.abort();
  signal.addEventListener("abort", abort, { once: true });
  let idle = setTimeout(abort, idleMs);
  try {
    const response = await request(`/logs/stream?after=${after}`,
      { signal: ctl.signal, headers: { Accept: "text/event-stream" } });
    onOpen?.();
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      let chunk;
      try {
        chunk = await reader.read();
      } catch (error) {
        if (signal.aborted) throw error;
        throw new ApiError("unreachable", "The live tail lost its connection to the server.");
      }
      if (chunk.done) return;
      clearTimeout(idle);
      idle = setTimeout(abort, idleMs);
      buffer += chunk.value;
      // Normalise CRLF/CR to LF, except a CR at the very end whose LF may be in the next chunk.
      const tail = buffer.endsWith("\r") ? "\r" : "";
      buffer = buffer.slice(0, buffer.length - tail.length).replace(/\r\n?/g, "\n") + tail;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const message = parseBlock(block);
        if (message) yield message;
      }
    }
  } finally {
    clearTimeout(idle);
    signal.removeEventListener("abort", abort);
    ctl.abort();
  }
}

function parseBlock(block) {
  const message = { event: "message", id: null, data: [] };
  for (const line of block.split("\n")) {
    if (line === "" || line.startsWith(":")) continue; // a comment: the heartbeat
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") message.data.push(value);
    else if (field === "event") message.event = value;
    else if (field === "id") message.id = value;
  }
  return message.data.length ? { ...message, data: message.data.join("\n") } : null;
}
