"""The audit console in a real Chromium against a real `eventstate serve` process."""

from __future__ import annotations

import shutil
import sqlite3
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from eventstate.http.console import CONSOLE_CSP
from tests_support import ServerProcess

pytestmark = [pytest.mark.browser, pytest.mark.slow]

KEY = "console-test-key-0123"
MESSAGES = ["", "hello", "ünïcödé ✓", "a\nb:c", "12:34", "🙂🙂", "x" * 300]
# Counters past 2**53 would lose digits as JS numbers; the page must keep them exact to hash them.
COUNTERS = [2**63 - 1, -(2**63), 2**53 + 1, 0, -7]
TRIGGERS = ("events_no_update", "events_no_delete", "events_gapless")

# What the page shows of each timeline row, read from the DOM.
READ_ROWS = """() => [...document.querySelectorAll('#timeline li.event')].map(li => {
  const pick = (field, side) => {
    const box = li.querySelector('.change.' + field);
    const node = box.querySelector('.' + side) || box.querySelector('.new');
    return node.textContent;
  };
  return {seq: Number(li.dataset.seq), timestamp: li.querySelector('time').getAttribute('datetime'),
          old: {counter: pick('counter', 'old'), message: pick('message', 'old')},
          new: {counter: pick('counter', 'new'), message: pick('message', 'new')}};
})"""


def seed(server: ServerProcess, count: int, headers: dict[str, str] | None = None) -> None:
    """Append `count` varied updates (exact 64-bit extremes, non-ASCII, line feeds, colons)."""
    with httpx.Client(base_url=server.url, headers=headers) as client:
        for i in range(count):
            body: dict[str, Any] = {}
            if i % 3 != 1:
                body["counter"] = COUNTERS[i % len(COUNTERS)] if i % 2 else i * 7 - 20
            if i % 3 != 0:
                body["message"] = MESSAGES[i % len(MESSAGES)] + ("" if i % 4 else str(i))
            assert 200 == client.post("/update", json=body).status_code


def as_shown(event: dict[str, Any]) -> dict[str, Any]:
    """An event of GET /logs in the form the rows are read back (counters as decimal text)."""
    def state(s: dict[str, Any]) -> dict[str, Any]:
        return {"counter": str(s["counter"]), "message": s["message"]}
    return {"seq": event["seq"], "timestamp": event["timestamp"], "old": state(event["old"]),
            "new": state(event["new"])}


def tamper(path: Path, statement: str, *args: Any) -> None:
    """Change the log file behind the server's back, as someone with write access could."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        for name in TRIGGERS:
            conn.execute(f"DROP TRIGGER IF EXISTS {name}")
        conn.execute(statement, args)
        conn.execute("COMMIT")
    finally:
        conn.close()


def wait_until(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


@pytest.fixture
def server(server_factory: type[ServerProcess], db_path: Path) -> ServerProcess:
    """A real server with 40 events."""
    started = server_factory(db_path).start()
    seed(started, 40)
    return started


def test_the_page_loads_from_its_own_origin_only(server: ServerProcess, open_page: Any) -> None:
    """`/` leads to the console, which requests nothing from any other origin and works."""
    watched = open_page(f"{server.url}/")
    page = watched.page
    page.wait_for_selector("#chain-all.good")
    page.wait_for_selector("#connection.live")

    assert f"{server.url}/console" == page.url
    assert watched.requests, "the page made no requests at all"
    assert [] == [url for url in watched.requests if not url.startswith(f"{server.url}/")]
    # The only logged error is the browser noting the 404 of /checkpoint (not enabled here).
    assert [] == [e for e in watched.errors if "404" not in e]


def test_the_console_is_served_with_a_self_only_policy(server: ServerProcess) -> None:
    """Every console file carries the console's CSP (self only, no inline code); unknown files 404."""
    for path in ("/console", "/console/console.js", "/console/api.js", "/console/chain.js",
                 "/console/checkpoint.js", "/console/console.css", "/console/favicon.svg"):
        response = httpx.get(f"{server.url}{path}")
        assert 200 == response.status_code, path
        assert [CONSOLE_CSP] == response.headers.get_list("content-security-policy"), path
    assert "'unsafe-inline'" not in CONSOLE_CSP
    assert "http" not in CONSOLE_CSP
    for path in ("/console/index.html", "/console/..%2Fapp.py", "/console/nope.js"):
        assert 404 == httpx.get(f"{server.url}{path}").status_code, path
    redirect = httpx.get(f"{server.url}/")
    assert (302, "/console") == (redirect.status_code, redirect.headers["location"])


def test_the_timeline_matches_the_log(server: ServerProcess, open_page: Any) -> None:
    """Newest first, every row is the event GET /logs returns, exactly; Older follows the log's keyset."""
    page = open_page(f"{server.url}/console").page
    page.wait_for_selector("#chain-view.good")
    first = httpx.get(f"{server.url}/logs", params={"order": "desc", "limit": 25}).json()

    assert [as_shown(e) for e in first["items"]] == page.evaluate(READ_ROWS)
    status = httpx.get(f"{server.url}/status").json()
    assert str(status["counter"]) == page.inner_text("#state .counter")
    assert str(status["version"]) == page.inner_text("#state .version")

    page.click("#older")
    page.wait_for_selector("#seq-1")
    second = httpx.get(f"{server.url}{first['next']}").json()
    assert [as_shown(e) for e in second["items"]] == page.evaluate(READ_ROWS)
    assert page.is_disabled("#older")
    assert "chain verified from seq 1 to 15" in page.inner_text("#chain-view")


def test_jumping_to_a_seq_and_a_moment_shows_the_state_then(server: ServerProcess,
                                                            open_page: Any) -> None:
    """Going to seq 10 shows GET /status?as_of=10 and the events up to it; a moment, ?at= that moment."""
    page = open_page(f"{server.url}/console").page
    page.wait_for_selector("#chain-view.good")

    page.fill("#jump-seq", "10")
    page.press("#jump-seq", "Enter")
    page.wait_for_selector("#seq-10.highlight")
    then = httpx.get(f"{server.url}/status", params={"as_of": 10}).json()
    assert str(then["counter"]) == page.inner_text("#point .counter")
    assert then["message"] == page.text_content("#point .message")
    assert 10 == page.evaluate("Number(document.querySelector('#timeline li').dataset.seq)")

    # A moment: just after event 12 (to the millisecond, as the picker allows).
    events = httpx.get(f"{server.url}/logs", params={"after": 11, "limit": 2}).json()["items"]
    stamp = datetime.fromisoformat(events[0]["timestamp"])
    moment = (stamp + timedelta(microseconds=999 - (stamp.microsecond % 1000) + 1)).replace(tzinfo=None)
    assert moment.isoformat() < events[1]["timestamp"], "events 12 and 13 are within one millisecond"
    page.fill("#jump-at", moment.isoformat(timespec="milliseconds"))
    page.press("#jump-at", "Enter")
    page.wait_for_selector("#seq-12.highlight")
    at = httpx.get(f"{server.url}/status",
                   params={"at": moment.isoformat(timespec="milliseconds") + "Z"}).json()
    assert 12 == at["version"]
    assert str(at["counter"]) == page.inner_text("#point .counter")

    # New events while looking at the past are counted, not mixed in; one click shows them.
    assert 200 == httpx.post(f"{server.url}/update", json={"message": "meanwhile"}).status_code
    page.wait_for_selector("#unseen:not([hidden])")
    assert "1 new event since" in page.inner_text("#unseen")
    assert 12 == page.evaluate("Number(document.querySelector('#timeline li').dataset.seq)")
    page.click("#unseen")
    page.wait_for_selector("#seq-41")
    assert page.is_hidden("#unseen")

    page.fill("#jump-seq", "999")
    page.press("#jump-seq", "Enter")
    page.wait_for_selector("#alert:not([hidden])")
    assert "404" in page.inner_text("#alert")


@pytest.mark.parametrize(
    ("change", "args", "broken"),
    [
        ("UPDATE events SET new_message = ? WHERE seq = ?", ("paid in full", 7), 7),
        ("DELETE FROM events WHERE seq = ?", (7,), 7),
        ("UPDATE events SET hash = ? WHERE seq = ?", ("f" * 64, 12), 12),
    ],
    ids=["edited message", "deleted row", "edited hash"],
)
def test_a_tampered_log_is_shown_broken_at_the_right_seq(
    server_factory: type[ServerProcess], db_path: Path, open_page: Any, change: str,
    args: tuple[Any, ...], broken: int,
) -> None:
    """After the file is edited behind the server's back, the page names the first bad seq, in red."""
    first = server_factory(db_path).start()
    seed(first, 40)
    first.stop()
    tamper(db_path, change, *args)
    server = server_factory(db_path).start()

    page = open_page(f"{server.url}/console").page
    page.wait_for_selector("#chain-all.bad")
    verdict = page.inner_text("#chain-all")
    assert f"chain broken at seq {broken}:" in verdict
    assert "rgb(185, 28, 28)" == page.eval_on_selector("#chain-all", "e => getComputedStyle(e).color")

    page.click("#older")
    page.wait_for_selector(f"#seq-{broken}.broken" if broken != 7 or "DELETE" not in change
                           else "#seq-8")
    page.wait_for_selector("#chain-view.bad")
    assert f"chain broken at seq {broken}:" in page.inner_text("#chain-view")
    marked = page.eval_on_selector_all("li.event.broken", "rows => rows.map(r => r.dataset.seq)")
    assert [str(broken)] == marked or (not marked and "DELETE" in change)


def test_a_new_event_appears_within_a_second_and_the_tail_resumes(
    server_factory: type[ServerProcess], db_path: Path, open_page: Any,
) -> None:
    """A committed update shows up live in under 1 s; after the server restarts, the tail resumes."""
    server = server_factory(db_path).start()
    seed(server, 5)
    page = open_page(f"{server.url}/console").page
    page.wait_for_selector("#connection.live")

    started = time.monotonic()
    assert 200 == httpx.post(f"{server.url}/update", json={"message": "live"}).status_code
    page.wait_for_selector("#seq-6", timeout=5000)
    elapsed = time.monotonic() - started
    assert elapsed < 1.0, f"the event took {elapsed:.3f} s to appear"
    assert "live" == page.text_content("#state .message")
    page.wait_for_selector("#chain-all.good >> text=from seq 1 to 6")

    server.stop()
    page.wait_for_selector("#connection.down")
    assert "Reconnecting" in page.inner_text("#connection")
    server.start()
    assert 200 == httpx.post(f"{server.url}/update", json={"counter": 99}).status_code
    page.wait_for_selector("#seq-7", timeout=15000)
    page.wait_for_selector("#connection.live")
    assert "99" == page.inner_text("#state .counter")
    assert [7, 6, 5, 4, 3, 2, 1] == [r["seq"] for r in page.evaluate(READ_ROWS)]
    page.wait_for_selector("#chain-all.good >> text=from seq 1 to 7")


def test_a_log_that_went_backwards_is_reported_not_tailed(
    server_factory: type[ServerProcess], db_path: Path, tmp_path: Path, open_page: Any,
) -> None:
    """If the server comes back with a log that ends before what the page showed (a restored old
    copy), the page says so in red instead of waiting silently for seqs that will never come."""
    server = server_factory(db_path).start()
    seed(server, 5)
    server.stop()
    saved = tmp_path / "saved"
    saved.mkdir()
    for part in db_path.parent.glob(db_path.name + "*"):
        shutil.copy2(part, saved / part.name)
    server.start()
    seed(server, 5)
    page = open_page(f"{server.url}/console").page
    page.wait_for_selector("#connection.live")
    page.wait_for_selector("#seq-10")

    server.stop()
    page.wait_for_selector("#connection.down")
    for part in db_path.parent.glob(db_path.name + "*"):
        part.unlink()
    for part in saved.iterdir():
        shutil.copy2(part, db_path.parent / part.name)
    server.start()
    page.wait_for_selector("#alert:not([hidden])", timeout=20_000)
    assert "now ends at seq 5, before seq 10" in page.inner_text("#alert")
    assert "went backwards" in page.inner_text("#connection")


def test_an_unreachable_server_is_said_in_words(server: ServerProcess, open_page: Any) -> None:
    """With the server gone, paging says it cannot be reached instead of failing silently."""
    page = open_page(f"{server.url}/console").page
    page.wait_for_selector("#chain-view.good")
    server.stop()
    page.click("#older")
    page.wait_for_selector("#alert:not([hidden])")
    assert "cannot be reached" in page.inner_text("#alert")


def test_protected_reads_ask_for_a_key_and_keep_it_for_the_tab(
    server_factory: type[ServerProcess], db_path: Path, open_page: Any,
) -> None:
    """With reads protected, the page asks for the key, refuses a wrong one in words, and with the
    right one shows the log and tails it, the key kept in sessionStorage only."""
    server = server_factory(db_path, env={"EVENTSTATE_API_KEYS": KEY,
                                          "EVENTSTATE_PROTECT_READS": "true"}).start()
    seed(server, 3, headers={"X-API-KEY": KEY})
    page = open_page(f"{server.url}/console").page
    page.wait_for_selector("#key-form:not([hidden])")
    assert "" == page.inner_text("#timeline")
    assert page.evaluate("document.activeElement.id") == "key-input"

    page.fill("#key-input", "wrong-key")
    page.press("#key-input", "Enter")
    page.wait_for_selector("#key-error:not([hidden])")
    assert "refused" in page.inner_text("#key-error")

    page.fill("#key-input", KEY)
    page.press("#key-input", "Enter")
    page.wait_for_selector("#connection.live")
    page.wait_for_selector("#chain-all.good >> text=from seq 1 to 3")
    assert page.is_hidden("#key-form")
    assert KEY == page.evaluate("sessionStorage.getItem('eventstate.apiKey')")
    assert KEY not in page.evaluate("JSON.stringify(Object.entries(localStorage))")

    assert 200 == httpx.post(f"{server.url}/update", json={"message": "behind a key"},
                             headers={"X-API-KEY": KEY}).status_code
    page.wait_for_selector("#seq-4")
    assert "behind a key" == page.text_content("#state .message")

    page.reload()
    page.wait_for_selector("#seq-4")
    assert page.is_hidden("#key-form")
    page.click("#forget-key")
    page.wait_for_selector("#key-form:not([hidden])")
    assert page.evaluate("sessionStorage.getItem('eventstate.apiKey')") is None


# WCAG 2.x contrast of each element's text against the first opaque background behind it.
CONTRAST = """(selectors) => {
  const channel = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
  const rgb = (text) => text.match(/[\\d.]+/g).map(Number);
  const luminance = ([r, g, b]) => 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
  const background = (node) => {
    for (; node; node = node.parentElement) {
      const c = rgb(getComputedStyle(node).backgroundColor);
      if (c.length < 4 || c[3] > 0) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const out = {};
  for (const selector of selectors) {
    const node = document.querySelector(selector);
    if (!node) { out[selector] = null; continue; }
    const [a, b] = [luminance(rgb(getComputedStyle(node).color)), luminance(background(node))];
    out[selector] = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  }
  return out;
}"""


@pytest.mark.parametrize(("width", "height"), [(1280, 900), (390, 844)], ids=["desktop", "phone"])
def test_the_page_is_readable_at_desktop_and_phone_width(
    server_factory: type[ServerProcess], db_path: Path, open_page: Any, width: int, height: int,
) -> None:
    """Nothing overflows sideways, and text (verdicts in green and red included) has 4.5:1 contrast."""
    first = server_factory(db_path).start()
    seed(first, 30)
    first.stop()
    tamper(db_path, "UPDATE events SET new_message = ? WHERE seq = ?", "edited", 28)
    server = server_factory(db_path).start()
    page = open_page(f"{server.url}/console", width=width, height=height).page
    page.wait_for_selector("#chain-all.bad")
    page.wait_for_selector("#seq-28.broken")

    assert page.evaluate("document.documentElement.scrollWidth") <= width
    ratios = page.evaluate(CONTRAST, [
        "#chain-all", "#chain-view", "#connection", "#state .counter", "#state dt", "li.event .seq",
        "li.event time", "li.event .change .old", "li.event .change .new", "li.event .label",
        "li.broken .badge.bad", "#older", "#newest", "#checkpoint-verdict", "footer p",
    ])
    assert {} == {k: v for k, v in ratios.items() if v is None or v < 4.5}


def test_the_page_can_be_used_with_the_keyboard_alone(server: ServerProcess, open_page: Any) -> None:
    """Tab reaches the controls in reading order, Enter jumps to a seq, and focus stays visible."""
    page = open_page(f"{server.url}/console").page
    page.wait_for_selector("#chain-view.good")
    reached = []
    for _ in range(20):
        page.keyboard.press("Tab")
        reached.append(page.evaluate("document.activeElement.id || document.activeElement.className"))
        if reached[-1] == "older":
            break
    assert reached[0] == "skip"
    assert reached.index("jump-seq") < reached.index("jump-at") < reached.index("older")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert "none" != outline

    page.keyboard.press("Enter")  # Older
    page.wait_for_selector("#seq-15")
    page.focus("#jump-seq")
    page.keyboard.type("3")
    page.keyboard.press("Enter")
    page.wait_for_selector("#seq-3.highlight")
    assert "timeline" == page.evaluate("document.activeElement.id")


def test_an_empty_log_says_so_and_fills_in_live(server_factory: type[ServerProcess], db_path: Path,
                                                open_page: Any) -> None:
    """A fresh log shows that it is empty; the first event then appears and is verified from seq 1."""
    server = server_factory(db_path).start()
    page = open_page(f"{server.url}/console").page
    page.wait_for_selector("#connection.live")
    assert "the log is empty" in page.inner_text("#timeline")
    assert "no events to verify yet" in page.inner_text("#chain-all")

    assert 200 == httpx.post(f"{server.url}/update", json={"counter": 1}).status_code
    page.wait_for_selector("#seq-1")
    page.wait_for_selector("#chain-all.good >> text=from seq 1 to 1")
    assert "the log is empty" not in page.inner_text("#timeline")
