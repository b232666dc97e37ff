"""A real `eventstate serve` process: restarts, kill -9, several workers, SIGTERM, bad start-ups."""

from __future__ import annotations

import hashlib
import signal
import sqlite3
import subprocess
import sys
import threading
from contextlib import closing
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow


def verify(database: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "eventstate.cli", "verify", "--database",
                           str(database)], capture_output=True, text=True, check=False)


def all_events(url: str) -> list[dict]:
    events, next_url = [], "/logs?limit=1000"
    while next_url:
        page = httpx.get(url + next_url).json()
        events += page["items"]
        next_url = page["next"]
    return events


def writers(url: str, clients: int, per_client: int, acked: list[dict],
            stop: threading.Event | None = None) -> list[threading.Thread]:
    """Start `clients` threads each posting up to `per_client` updates; acknowledged events go to `acked`."""
    lock = threading.Lock()

    def run(n: int) -> None:
        with httpx.Client(base_url=url, timeout=10) as client:
            for i in range(per_client):
                if stop is not None and stop.is_set():
                    return
                try:
                    response = client.post("/update", json={"counter": n * 1_000_000 + i,
                                                            "message": f"client {n} #{i}"})
                except httpx.TransportError:
                    return  # the server went away: this update was never acknowledged
                if response.status_code == 200:
                    with lock:
                        acked.append(response.json())

    threads = [threading.Thread(target=run, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    return threads


def test_state_and_log_survive_a_restart(server_factory, db_path):
    """After a clean restart the status and the whole log are exactly as before."""
    server = server_factory(db_path).start()
    for i in range(20):
        httpx.post(f"{server.url}/update", json={"counter": i, "message": f"m{i}"}).raise_for_status()
    before = (httpx.get(f"{server.url}/status").json(), all_events(server.url))
    server.stop()
    again = server_factory(db_path).start()
    assert before == (httpx.get(f"{again.url}/status").json(), all_events(again.url))


def test_kill_9_during_writes_loses_no_acknowledged_update(server_factory, db_path):
    """SIGKILL while 8 clients write: every acknowledged event is in the log and the chain verifies."""
    server = server_factory(db_path).start()
    acked: list[dict] = []
    threads = writers(server.url, 8, 10_000, acked)
    while len(acked) < 400:  # let the writers get going; polling, not sleeping a guess
        threading.Event().wait(0.01)
    server.signal(signal.SIGKILL)
    server.wait()
    for t in threads:
        t.join()
    again = server_factory(db_path).start()
    logged = {e["seq"]: e for e in all_events(again.url)}
    missing = [e for e in acked if logged.get(e["seq"]) != e]
    print(f"acknowledged {len(acked)}, recovered {len(logged)}, lost {len(missing)}")
    assert [] == missing
    assert list(range(1, len(logged) + 1)) == sorted(logged)
    again.stop()
    result = verify(db_path)
    assert 0 == result.returncode, result.stderr


def test_two_workers_keep_a_gapless_chain_and_read_your_writes(server_factory, db_path):
    """With --workers 2 and 8 clients the log is gapless and chained; no client reads an older version."""
    server = server_factory(db_path, workers=2).start()
    stale: list[tuple[int, int]] = []
    acked: list[dict] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            for i in range(60):
                event = http.post("/update", json={"counter": n * 1000 + i}).json()
                # New connections may land on either worker: each must be at least as fresh.
                seen = httpx.get(f"{server.url}/status").json()["version"]
                with lock:
                    acked.append(event)
                    if seen < event["seq"]:
                        stale.append((event["seq"], seen))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    events = all_events(server.url)
    assert [] == stale
    assert list(range(1, 481)) == [e["seq"] for e in events]
    for previous, current in zip(events, events[1:], strict=False):
        assert previous["new"] == current["old"]
    assert sorted(e["seq"] for e in acked) == list(range(1, 481))
    server.stop()
    assert 0 == verify(db_path).returncode


def test_sigterm_drains_in_flight_updates(server_factory, db_path):
    """SIGTERM under load: the server exits 0 and every acknowledged update is in the log."""
    server = server_factory(db_path).start()
    acked: list[dict] = []
    stop = threading.Event()
    threads = writers(server.url, 8, 10_000, acked, stop)
    while len(acked) < 200:
        threading.Event().wait(0.01)
    server.signal(signal.SIGTERM)
    assert 0 == server.wait()
    stop.set()
    for t in threads:
        t.join()
    with closing(sqlite3.connect(db_path)) as conn:
        logged = {row[0]: row[1] for row in conn.execute("SELECT seq, hash FROM events")}
    assert all(logged.get(e["seq"]) == e["hash"] for e in acked)
    assert 0 == verify(db_path).returncode


def serve_once(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run([sys.executable, "-m", "eventstate.cli", "serve", "--port", "0", *args],
                          capture_output=True, text=True, timeout=30, check=False,
                          env={**os.environ, **(env or {})})


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_missing_directory_is_one_clear_line(tmp_path):
    """A database in a directory that does not exist: one error line, non-zero exit."""
    result = serve_once("--database", str(tmp_path / "nope" / "x.db"))
    assert 0 != result.returncode
    assert ["does not exist"] == [w for w in ["does not exist"] if w in result.stderr]
    assert 1 == len(result.stderr.strip().splitlines())


@pytest.mark.parametrize(
    "content",
    [b"this is not a database" * 100, b"SQLite format 3\x00" + b"\x00" * 4000],
    ids=["text", "truncated"],
)
def test_corrupt_file_is_refused_and_left_untouched(tmp_path, content):
    """A corrupt or truncated file: one error line, non-zero exit, and the bytes unchanged."""
    path = tmp_path / "bad.db"
    path.write_bytes(content)
    before = digest(path)
    result = serve_once("--database", str(path))
    assert 0 != result.returncode
    assert 1 == len(result.stderr.strip().splitlines()), result.stderr
    assert "eventstate: error:" in result.stderr
    assert before == digest(path)


def test_foreign_sqlite_database_is_refused(tmp_path):
    """A SQLite file that is not an eventstate log is not adopted."""
    path = tmp_path / "other.db"
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("CREATE TABLE t (x)")
    before = digest(path)
    result = serve_once("--database", str(path))
    assert 0 != result.returncode
    assert "not an eventstate log" in result.stderr
    assert before == digest(path)


def test_newer_schema_version_is_refused(tmp_path):
    """A log written by a newer eventstate is refused with a message saying so."""
    from eventstate.eventlog import EventLog

    path = tmp_path / "new.db"
    EventLog.open(path).close()
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("UPDATE eventstate_meta SET value='99' WHERE key='schema_version'")
    result = serve_once("--database", str(path))
    assert 0 != result.returncode
    assert "schema version 99" in result.stderr


def test_short_api_key_refuses_to_start(tmp_path):
    """An API key under 16 characters stops the server at start-up, without echoing the key."""
    result = serve_once("--database", str(tmp_path / "a.db"), env={"EVENTSTATE_API_KEYS": "hunter2"})
    assert 0 != result.returncode
    assert "16" in result.stderr
    assert "hunter2" not in result.stderr


def test_api_keys_from_a_file(server_factory, tmp_path):
    """EVENTSTATE_API_KEYS_FILE supplies the keys (one per line)."""
    keys = tmp_path / "keys"
    keys.write_text("file-key-0123456789abc\nother-key-0123456789abc\n")
    server = server_factory(tmp_path / "k.db", env={"EVENTSTATE_API_KEYS_FILE": str(keys)}).start()
    assert 401 == httpx.post(f"{server.url}/update", json={"counter": 1}).status_code
    assert 200 == httpx.post(f"{server.url}/update", json={"counter": 1},
                             headers={"X-API-KEY": "other-key-0123456789abc"}).status_code
    assert "file-key" not in server.output()
