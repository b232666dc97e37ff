// The audit console. Reads only this server's public API, recomputes the hash chain of what it shows
// (and of the whole log, in the background), tails the log live, and checks signed checkpoints and
// inclusion proofs when the server publishes them.

import { ApiError, apiKey, forgetApiKey, getJSON, parseJSON, request, setApiKey, streamEvents } from "./api.js";
import { GENESIS, checkLink, linkOf, verifySegment } from "./chain.js";
import {
  TreeBuilder, VerificationError, base64Decode, eventLeaf, openNote, parseCheckpoint, parseVerifierKey,
  sameBytes, verifyInclusion,
} from "./checkpoint.js";

const PAGE = 25;
const VERIFY_PAGE = 1000;
const VKEY_NAME = "eventstate.verifierKey";
const $ = (id) => document.getElementById(id);

const view = { events: [], next: null, newest: true, highlight: null, unseen: 0 };
let current = null; // the newest status we know of
let tailSeq = 0; // the live tail resumes after this seq
let tailCtl = null;
let generation = 0; // bumped on every (re)start, so work from an older start stops
let checkpoint = null; // a verified {origin, size, root, signer}
const failures = new Map(); // seq -> reason, from any check
const inclusion = new Map(); // seq -> true (proved in the checkpoint) | string (why not)

// ---- small DOM helpers ------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
}

function say(id, text, tone = "") {
  const node = $(id);
  node.textContent = text;
  node.className = `verdict ${tone}`.trim();
  node.hidden = !text;
}

function showAlert(text) {
  say("alert", text, "bad");
}

const delay = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

function formatTime(timestamp) {
  // The stored UTC text, shown exactly (auditors compare it with exports); local time as a tooltip.
  return timestamp.replace("T", " ").replace(/Z$/, " UTC");
}

// ---- state -----------------------------------------------------------------------------------

function renderState(target, status, caption) {
  const box = $(target);
  box.replaceChildren(
    el("div", { class: "fact" }, el("dt", { text: "counter" }), el("dd", { class: "counter", text: String(status.counter) })),
    el("div", { class: "fact wide" }, el("dt", { text: "message" }),
      el("dd", { class: `message${status.message ? "" : " empty"}`, text: status.message })),
    el("div", { class: "fact" }, el("dt", { text: "version" }), el("dd", { class: "version", text: String(status.version) })),
    el("div", { class: "fact" }, el("dt", { text: "last change" }),
      el("dd", { class: "updated", text: status.updated_at ? formatTime(status.updated_at) : "never" })),
  );
  if (caption) $(`${target}-title`).textContent = caption;
}

// ---- timeline --------------------------------------------------------------------------------

function change(label, oldValue, newValue, isMessage) {
  const same = isMessage ? oldValue === newValue : String(oldValue) === String(newValue);
  const cls = (v) => `${isMessage ? "msg" : "num"}${isMessage && !v ? " empty" : ""}`;
  if (same) {
    return el("div", { class: `change ${label} same` }, el("span", { class: "label", text: label }),
      el("span", { class: `new ${cls(newValue)}`, text: String(newValue) }),
      el("span", { class: "unchanged", text: "unchanged" }));
  }
  return el("div", { class: `change ${label}` }, el("span", { class: "label", text: label }),
    el("span", { class: `old ${cls(oldValue)}`, text: String(oldValue) }),
    el("span", { class: "arrow", "aria-label": "changed to", text: "→" }),
    el("span", { class: `new ${cls(newValue)}`, text: String(newValue) }));
}

function row(event) {
  const failure = failures.get(event.seq);
  const proved = inclusion.get(event.seq);
  const badges = [];
  if (failure) badges.push(el("span", { class: "badge bad", text: `✗ chain broken here: ${failure}` }));
  if (proved === true) badges.push(el("span", { class: "badge good", text: "✓ in checkpoint" }));
  else if (typeof proved === "string") badges.push(el("span", { class: "badge bad", text: `✗ ${proved}` }));
  const item = el("li", {
    class: `event${failure || typeof proved === "string" ? " broken" : ""}${view.highlight === event.seq ? " highlight" : ""}`,
    id: `seq-${event.seq}`, "data-seq": String(event.seq),
  },
  el("div", { class: "meta" }, el("span", { class: "seq", text: `#${event.seq}` }),
    el("time", { datetime: event.timestamp, title: new Date(event.timestamp).toString(), text: formatTime(event.timestamp) })),
  change("counter", event.old.counter, event.new.counter, false),
  change("message", event.old.message, event.new.message, true),
  badges.length ? el("div", { class: "badges" }, ...badges) : null);
  return item;
}

function renderTimeline() {
  const list = $("timeline");
  list.replaceChildren(...view.events.map(row));
  if (!view.events.length) {
    list.append(el("li", { class: "empty-log",
      text: view.newest ? "No events here: the log is empty." : "No events up to this point." }));
  }
  $("older").disabled = !view.next;
  $("newer").disabled = view.newest;
  $("newest").disabled = view.newest;
  const top = view.events[0]?.seq;
  const bottom = view.events.at(-1)?.seq;
  $("view-caption").textContent = view.events.length
    ? `${view.newest ? "Newest events" : "Events"}: seq ${top} down to ${bottom}, newest first.`
    : "";
  $("unseen").hidden = view.newest || !view.unseen;
  $("unseen").textContent = `${view.unseen} new event${view.unseen === 1 ? "" : "s"} since — show the newest`;
}

async function loadPage(path, { newest = false, reverse = false, page = null } = {}) {
  page = page || await getJSON(path);
  let events = page.items;
  if (reverse) events = events.reverse();
  view.events = events;
  view.newest = newest;
  view.unseen = newest ? 0 : view.unseen;
  // Older pages come from the server's own `next` link when the page was read newest first.
  view.next = reverse
    ? (events.length ? `/logs?order=desc&before=${events.at(-1).seq}&limit=${PAGE}` : null)
    : page.next;
  if (events.length && events.at(-1).seq === 1) view.next = null;
  renderTimeline();
  await verifyView();
  await proveView();
}

function showNewest() {
  view.highlight = null;
  return loadPage(`/logs?order=desc&limit=${PAGE}`, { newest: true });
}

async function showNewer() {
  const top = view.events[0]?.seq ?? 0;
  const page = await getJSON(`/logs?after=${top}&limit=${PAGE}`);
  if (page.items.length < PAGE) return showNewest();
  return loadPage(null, { reverse: true, page });
}

async function jumpTo(seq, status, label) {
  view.highlight = seq;
  renderState("point", status, label);
  $("point-section").hidden = false;
  await loadPage(`/logs?order=desc&before=${seq + 1}&limit=${PAGE}`, { newest: current && seq >= current.version });
  const target = $(`seq-${seq}`);
  (target || $("timeline")).scrollIntoView({ block: "center" });
  $("timeline").focus({ preventScroll: true });
}

// ---- chain verification ----------------------------------------------------------------------

async function verifyView() {
  const ascending = [...view.events].reverse();
  if (!ascending.length) { say("chain-view", ""); return; }
  const first = ascending[0].seq;
  let previous = GENESIS;
  if (first > 1) {
    const anchor = await getJSON(`/logs/${first - 1}`);
    previous = linkOf(anchor);
  }
  const result = await verifySegment(previous, ascending);
  if (result.ok) {
    say("chain-view", `Events shown: chain verified from seq ${first} to ${result.to}` +
      (first > 1 ? ` (linked to the recorded hash of seq ${first - 1}).` : "."), "good");
  } else {
    failures.set(result.seq, result.reason);
    say("chain-view", `Events shown: chain broken at seq ${result.seq}: ${result.reason}.`, "bad");
    renderTimeline();
  }
}

// The whole log, from seq 1, in the background; new events from the live tail extend it.
const whole = { link: GENESIS, failed: null, queue: Promise.resolve() };

function wholeVerdict(suffix = "") {
  if (whole.failed) {
    say("chain-all", `Whole log: chain broken at seq ${whole.failed.seq}: ${whole.failed.reason}. ` +
      `Events before seq ${whole.failed.seq} verified.`, "bad");
  } else if (whole.link.seq === 0) {
    say("chain-all", `Whole log: no events to verify yet.${suffix}`, "good");
  } else {
    say("chain-all", `Whole log: chain verified from seq 1 to ${whole.link.seq}.${suffix}`, "good");
  }
}

async function feedWhole(events) {
  for (const event of events) {
    if (whole.failed || event.seq <= whole.link.seq) continue;
    const failure = await checkLink(whole.link, event);
    if (failure) {
      whole.failed = failure;
      failures.set(failure.seq, failure.reason);
      renderTimeline();
      return;
    }
    whole.link = linkOf(event);
  }
}

function verifyWholeLog(gen) {
  whole.queue = whole.queue.then(async () => {
    let path = `/logs?after=${whole.link.seq}&limit=${VERIFY_PAGE}`;
    while (path && !whole.failed && gen === generation) {
      say("chain-all", `Whole log: verifying… seq ${whole.link.seq} of ${current?.version ?? "?"} checked.`, "busy");
      const page = await getJSON(path);
      await feedWhole(page.items);
      path = page.next;
    }
    wholeVerdict();
  }).catch((error) => say("chain-all", `Whole log: could not finish verifying: ${error.message}`, "bad"));
}

// ---- live tail -------------------------------------------------------------------------------

function setConnection(state, text) {
  const node = $("connection");
  node.className = `pill ${state}`;
  node.textContent = text;
}

function onLiveEvent(event) {
  current = { counter: event.new.counter, message: event.new.message, version: event.seq, updated_at: event.timestamp };
  renderState("state", current);
  whole.queue = whole.queue.then(() => feedWhole([event])).then(() => wholeVerdict());
  if (view.newest) {
    const top = view.events[0];
    view.events.unshift(event);
    renderTimeline();
    (async () => {
      const failure = top ? await checkLink(linkOf(top), event) : null;
      if (failure) {
        failures.set(failure.seq, failure.reason);
        say("chain-view", `Events shown: chain broken at seq ${failure.seq}: ${failure.reason}.`, "bad");
        renderTimeline();
      } else if (!$("chain-view").classList.contains("bad")) {
        const bottom = view.events.at(-1).seq;
        say("chain-view", `Events shown: chain verified from seq ${bottom} to ${event.seq}` +
          (bottom > 1 ? ` (linked to the recorded hash of seq ${bottom - 1}).` : "."), "good");
      }
    })();
  } else {
    view.unseen += 1;
    renderTimeline();
  }
}

// After a lost connection the log must still reach the seq this page has shown; a log that now ends
// earlier was rolled back or replaced, which an auditor needs to hear rather than a silent tail.
async function stillExtends() {
  const status = await getJSON("/status");
  if (status.version >= tailSeq) return true;
  setConnection("down", "Live tail stopped: the log went backwards.");
  showAlert(`The server's log now ends at seq ${status.version}, before seq ${tailSeq} that this page ` +
    "already showed: it was rolled back or replaced. Reload the page to look at it as it is now.");
  return false;
}

async function runTail(gen) {
  let backoff = 500;
  let reconnecting = false;
  while (gen === generation) {
    tailCtl = new AbortController();
    try {
      if (reconnecting && !(await stillExtends())) return;
      for await (const message of streamEvents(tailSeq, tailCtl.signal, {
        onOpen: () => { backoff = 500; setConnection("live", "Live: new events appear as they are committed"); },
      })) {
        if (message.event !== "event") continue;
        const event = parseJSON(message.data);
        if (event.seq <= tailSeq) continue;
        tailSeq = event.seq;
        onLiveEvent(event); // the pill is a live region: it is not re-announced for every event
      }
    } catch (error) {
      if (gen !== generation) return;
      if (error instanceof ApiError && error.kind === "unauthorized") {
        askForKey(error.message);
        return;
      }
    }
    if (gen !== generation) return;
    reconnecting = true;
    setConnection("down", `Live tail disconnected: the server cannot be reached. Reconnecting in ` +
      `${Math.round(backoff / 100) / 10} s, resuming after seq ${tailSeq}.`);
    await delay(backoff);
    backoff = Math.min(backoff * 2, 8000);
  }
}

// ---- checkpoints and inclusion proofs --------------------------------------------------------

async function probeCheckpoint() {
  let response;
  try {
    response = await request("/checkpoint", { headers: { Accept: "text/plain" } });
  } catch (error) {
    $("checkpoint-form").hidden = true;
    say("checkpoint-verdict", error.status === 404
      ? "This server does not publish signed checkpoints (they are not enabled)."
      : `Could not fetch the checkpoint: ${error.message}`, error.status === 404 ? "" : "bad");
    return null;
  }
  $("checkpoint-form").hidden = false;
  return response.text();
}

async function verifyCheckpoint(keyText) {
  checkpoint = null;
  inclusion.clear();
  say("checkpoint-root", "");
  const note = await probeCheckpoint();
  if (note === null) return;
  if (!keyText) {
    say("checkpoint-verdict", "This server publishes signed checkpoints: paste its verifier key to check them.");
    return;
  }
  try {
    const verifier = await parseVerifierKey(keyText);
    const parsed = parseCheckpoint(await openNote(note, verifier));
    if (parsed.origin !== verifier.name) {
      throw new VerificationError(`the checkpoint is for log "${parsed.origin}", not "${verifier.name}"`);
    }
    checkpoint = { ...parsed, signer: verifier.name };
    localStorage.setItem(VKEY_NAME, keyText.trim());
    await proveView();
    checkTreeRoot(checkpoint).catch((error) =>
      say("checkpoint-root", `Could not recompute the checkpoint's root: ${error.message}`, "bad"));
  } catch (error) {
    if (!(error instanceof VerificationError)) throw error;
    say("checkpoint-verdict", `Checkpoint NOT verified: ${error.message}.`, "bad");
  }
}

// Inclusion proofs cover the events on screen; the root, recomputed from every event the checkpoint
// counts, covers the rest: it fails if any event the server serves differs from what was signed.
async function checkTreeRoot(signed) {
  const { size, root } = signed;
  const tree = new TreeBuilder();
  let after = 0;
  while (tree.size < size && checkpoint === signed) {
    say("checkpoint-root", `Recomputing the checkpoint's root: ${tree.size} of ${size} events…`, "busy");
    const page = await getJSON(`/logs?after=${after}&limit=${Math.min(VERIFY_PAGE, size - tree.size)}`);
    if (!page.items.length) break;
    for (const event of page.items) await tree.push(await eventLeaf(event.hash));
    after = page.items.at(-1).seq;
  }
  if (checkpoint !== signed) return;
  if (tree.size < size) {
    say("checkpoint-root", `The log served has ${tree.size} events, fewer than the ${size} the checkpoint ` +
      "signed: it was cut short or rolled back.", "bad");
  } else if (sameBytes(await tree.root(), root)) {
    say("checkpoint-root", `The checkpoint's root hash is the Merkle tree of events 1 to ${size} as ` +
      "this server serves them.", "good");
  } else {
    say("checkpoint-root", `The checkpoint's root hash does NOT match the Merkle tree of events 1 to ${size} ` +
      "as this server serves them: the log differs from what was signed.", "bad");
  }
}

async function proveView() {
  if (!checkpoint) { renderTimeline(); return; }
  const { size, root, signer } = checkpoint;
  const shown = view.events.filter((e) => e.seq <= size);
  let bad = null;
  for (const event of shown) {
    if (inclusion.get(event.seq) === true) continue;
    const proof = await getJSON(`/proofs/inclusion/${event.seq}?tree_size=${size}`);
    let ok = false;
    try {
      ok = proof.seq === event.seq && proof.tree_size === size &&
        await verifyInclusion(event.seq - 1, size, await eventLeaf(event.hash), proof.hashes.map(base64Decode), root);
    } catch (error) {
      if (!(error instanceof VerificationError)) throw error;
    }
    inclusion.set(event.seq, ok ? true : "inclusion proof fails");
    if (!ok && bad === null) bad = event.seq;
  }
  const later = view.events.length - shown.length;
  const summary = `Checkpoint signed by ${signer} verified: ${size} events.`;
  if (bad !== null) {
    say("checkpoint-verdict", `${summary} Inclusion proof for seq ${bad} does NOT lead to its root hash: ` +
      "this event is not the one the checkpoint committed to.", "bad");
  } else if (shown.length) {
    const seqs = shown.map((e) => e.seq);
    say("checkpoint-verdict", `${summary} Inclusion proofs verified for seq ${Math.min(...seqs)} to ` +
      `${Math.max(...seqs)}${later ? ` (${later} newer events are not in this checkpoint yet)` : ""}.`, "good");
  } else {
    say("checkpoint-verdict", `${summary} None of the events shown is in it yet.`, "good");
  }
  renderTimeline();
}

// ---- key prompt ------------------------------------------------------------------------------

function askForKey(reason) {
  generation += 1;
  tailCtl?.abort();
  setConnection("down", "Locked: an API key is needed to read this log.");
  const form = $("key-form");
  form.hidden = false;
  say("key-error", apiKey() ? reason : "", "bad");
  if (apiKey()) forgetApiKey();
  $("key-input").value = "";
  $("key-input").focus();
}

// ---- start -----------------------------------------------------------------------------------

async function start() {
  const gen = ++generation;
  tailCtl?.abort();
  say("alert", "");
  $("forget-key").hidden = !apiKey();
  whole.link = GENESIS;
  whole.failed = null;
  failures.clear();
  try {
    current = await getJSON("/status");
    renderState("state", current);
    tailSeq = current.version;
    await showNewest();
  } catch (error) {
    if (error instanceof ApiError && error.kind === "unauthorized") { askForKey(error.message); return; }
    setConnection("down", "Not connected.");
    showAlert(error instanceof ApiError ? error.message : `The console failed: ${error.message}`);
    return;
  }
  $("key-form").hidden = true;
  runTail(gen);
  verifyWholeLog(gen);
  verifyCheckpoint(localStorage.getItem(VKEY_NAME) || "").catch((error) => say("checkpoint-verdict", error.message, "bad"));
}

function guarded(action) {
  return async (event) => {
    event?.preventDefault();
    say("alert", "");
    try {
      await action(event);
    } catch (error) {
      if (error instanceof ApiError && error.kind === "unauthorized") askForKey(error.message);
      else showAlert(error instanceof ApiError ? error.message : `The console failed: ${error.message}`);
    }
  };
}

function bind() {
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    try {
      setApiKey($("key-input").value.trim());
    } catch (error) {
      say("key-error", error.message, "bad");
      return;
    }
    start();
  });
  $("forget-key").addEventListener("click", () => { forgetApiKey(); location.reload(); });
  $("older").addEventListener("click", guarded(() => { view.highlight = null; return loadPage(view.next); }));
  $("newer").addEventListener("click", guarded(() => { view.highlight = null; return showNewer(); }));
  $("newest").addEventListener("click", guarded(() => { $("point-section").hidden = true; return showNewest(); }));
  $("unseen").addEventListener("click", guarded(() => { $("point-section").hidden = true; return showNewest(); }));
  $("jump-seq-form").addEventListener("submit", guarded(async () => {
    const text = $("jump-seq").value.trim();
    if (!/^(0|[1-9][0-9]{0,17})$/.test(text)) throw new ApiError("input", "Type a seq: a whole number from 0.");
    const seq = Number(text);
    const status = await getJSON(`/status?as_of=${seq}`);
    await jumpTo(seq, status, `State right after seq ${seq}`);
  }));
  $("jump-at-form").addEventListener("submit", guarded(async () => {
    const text = $("jump-at").value;
    const moment = new Date(text);
    if (!text || Number.isNaN(moment.getTime())) throw new ApiError("input", "Choose a date and time.");
    const iso = moment.toISOString();
    const status = await getJSON(`/status?at=${encodeURIComponent(iso)}`);
    await jumpTo(status.version, status, `State at ${formatTime(iso)} (after seq ${status.version})`);
  }));
  $("checkpoint-form").addEventListener("submit", guarded(() => verifyCheckpoint($("vkey").value)));
  $("vkey").value = localStorage.getItem(VKEY_NAME) || "";
}

bind();
start();
