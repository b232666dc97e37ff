"""Faults provoked for real against a real `eventstate serve`: a full disk, a read-only log, a corrupt
or truncated file, the file deleted or replaced under the server, SIGTERM under load with workers.

Nothing is monkeypatched: the kernel refuses the writes. The mounts need root (CI runs as root);
elsewhere those tests skip with the reason.
"""

from __future__ import annotations

import signal
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _faults import (
    assert_retryable_problem,
    cli,
    digest,
    events,
    ext4_image,
    fail_filesystem,
    fill,
    immutable,
    keep_output_off,
    poll,
    post_updates,
    remount_repaired,
    status_of,
    tmpfs,
)

pytestmark = pytest.mark.slow

MESSAGE = "m" * 1000  # about a page per event, so that a few hundred events span many pages


@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs: room for a fresh log, its -wal and -shm, and a ballast to fill the rest."""
    with tmpfs(tmp_path / "tiny", 2048) as mountpoint:
        yield mountpoint


@pytest.fixture
def small_ext4(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB ext4 filesystem on a loop device (it honours the immutable attribute)."""
    with ext4_image(tmp_path / "ext4", 8) as mountpoint:
        yield mountpoint


def start_on(server_factory: Any, database: Path, output: Path, **kwargs: Any) -> Any:
    server = server_factory(database, **kwargs)
    keep_output_off(server, output)
    return server.start()


def test_disk_full_refuses_updates_cleanly_and_recovers(tiny_tmpfs, server_factory, tmp_path):
    """With the disk full, updates get 503 problem+json with Retry-After and write nothing, reads
    still work, and once space is freed updates succeed and the log verifies."""
    database = tiny_tmpfs / "events.db"
    server = start_on(server_factory, database, tmp_path / "server.log")
    before = post_updates(server.url, 5, MESSAGE)
    ballast = fill(tiny_tmpfs)

    for i in range(3):
        response = httpx.post(
            f"{server.url}/update", json={"counter": 100 + i, "message": MESSAGE}, timeout=10
        )
        assert_retryable_problem(response, "full")
    status = httpx.get(f"{server.url}/status", timeout=5)
    assert (200, 5) == (status.status_code, status.json()["version"])
    assert before == events(server.url)

    ballast.unlink()
    after = post_updates(server.url, 3, MESSAGE)
    assert [6, 7, 8] == [e["seq"] for e in after]
    assert before[-1]["new"] == after[0]["old"]
    assert before + after == events(server.url)
    server.stop()
    result = cli("verify", "--database", str(database))
    assert 0 == result.returncode, result.stdout + result.stderr


def test_read_only_log_is_not_ready_refuses_writes_serves_reads_and_recovers(
    small_ext4, server_factory, tmp_path
):
    """With the log's file, its -wal and its directory made immutable, /health/ready and updates
    answer 503 while reads are served; once writable again, the server is ready and writes."""
    database = small_ext4 / "events.db"
    server = start_on(server_factory, database, tmp_path / "server.log")
    before = post_updates(server.url, 3)
    wal = database.with_name(database.name + "-wal")
    # A remount read-only is refused (EBUSY) while the server holds the files open for writing,
    # so the kernel's immutable attribute makes them read-only instead. The -shm index stays
    # writable: the kernel would answer writes to its shared mapping with SIGBUS.
    with immutable(database, wal, small_ext4):
        ready = httpx.get(f"{server.url}/health/ready", timeout=5)
        assert_retryable_problem(ready, "not writable")
        for i in range(2):
            response = httpx.post(f"{server.url}/update", json={"counter": 50 + i}, timeout=10)
            assert_retryable_problem(response)
        status = httpx.get(f"{server.url}/status", timeout=5)
        assert (200, 3) == (status.status_code, status.json()["version"])
        assert before == events(server.url)

    poll(lambda: status_of(f"{server.url}/health/ready") == 200, "ready again once writable")
    after = post_updates(server.url, 2)
    assert [4, 5] == [e["seq"] for e in after]
    server.stop()
    result = cli("verify", "--database", str(database))
    assert 0 == result.returncode, result.stdout + result.stderr


def test_filesystem_turned_read_only_by_an_error_is_not_ready_and_refuses_writes(
    small_ext4, server_factory, tmp_path
):
    """When the kernel remounts the log's filesystem read-only after an error, /health/ready and
    updates answer 503 while reads are served; after a repair and a restart the log verifies and
    takes writes again."""
    database = small_ext4 / "events.db"
    server = start_on(server_factory, database, tmp_path / "server.log")
    before = post_updates(server.url, 3)
    fail_filesystem(small_ext4)

    for i in range(2):
        response = httpx.post(f"{server.url}/update", json={"counter": 70 + i}, timeout=10)
        assert_retryable_problem(response)
    # Asked after writes failed: the server has had every chance to notice.
    assert_retryable_problem(httpx.get(f"{server.url}/health/ready", timeout=5))
    status = httpx.get(f"{server.url}/status", timeout=5)
    assert (200, 3) == (status.status_code, status.json()["version"])
    assert before == events(server.url)
    server.stop()

    remount_repaired(small_ext4)
    result = cli("verify", "--database", str(database))
    assert 0 == result.returncode, result.stdout + result.stderr
    again = start_on(server_factory, database, tmp_path / "again.log")
    assert before == events(again.url)
    assert [4] == [e["seq"] for e in post_updates(again.url, 1)]


def real_log(server_factory: Any, database: Path) -> None:
    """Write a log of many pages through a real server, then stop it (checkpointed, no -wal)."""
    server = server_factory(database).start()
    post_updates(server.url, 120, MESSAGE)
    server.stop()
    assert not database.with_name(database.name + "-wal").exists()


def events_root_page(database: Path) -> tuple[int, int]:
    """The byte offset and size of the events table's root page."""
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        (root,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'events'").fetchone()
        (page_size,) = conn.execute("PRAGMA page_size").fetchone()
    finally:
        conn.close()
    return (int(root) - 1) * int(page_size), int(page_size)


def truncate_mid_file(database: Path) -> None:
    with database.open("r+b") as f:
        f.truncate(database.stat().st_size // 2 + 1000)


def garble_events_root(database: Path) -> None:
    offset, page_size = events_root_page(database)
    with database.open("r+b") as f:
        f.seek(offset)
        f.write(bytes(range(251)) * (page_size // 251) + b"\xff" * (page_size % 251))


@pytest.mark.parametrize(
    "damage", [truncate_mid_file, garble_events_root], ids=["truncated-mid-file", "events-root-page-garbage"]
)
def test_damaged_real_log_is_refused_at_start_up_and_left_untouched(server_factory, db_path, damage):
    """A real log cut in the middle, or with its events root page overwritten: serve prints one
    error line, exits non-zero, and the file's bytes are unchanged."""
    real_log(server_factory, db_path)
    damage(db_path)
    before = digest(db_path)
    result = cli("serve", "--port", "0", "--database", str(db_path))
    assert 0 != result.returncode
    assert ["eventstate: error:"] == [line[:18] for line in result.stderr.strip().splitlines()], result.stderr
    assert "corrupt or truncated" in result.stderr
    assert before == digest(db_path)
    assert not db_path.with_name(db_path.name + "-wal").exists()


def another_log(path: Path) -> None:
    from eventstate.eventlog import EventLog

    EventLog.open(path).close()


def beside(database: Path) -> list[str]:
    """The names of the files at the log's path and beside it (-wal, -shm, .lock)."""
    return sorted(p.name for p in database.parent.glob(database.name + "*"))


@pytest.mark.parametrize("fault", ["deleted", "replaced"])
def test_log_deleted_or_replaced_under_the_server_is_detected_not_recreated(
    server_factory, db_path, tmp_path, fault
):
    """The log file deleted, or another log renamed over it: /health/ready and updates answer 503
    naming the cause, and nothing is written at the path (no empty log is created)."""
    server = server_factory(db_path).start()
    post_updates(server.url, 3)
    server.stop()
    server = server_factory(db_path).start()  # a restarted server, which has not written yet
    if fault == "deleted":
        db_path.unlink()
        left = beside(db_path)  # the -wal and -shm stay while the server holds them open
    else:
        other = tmp_path / "other.db"
        another_log(other)
        other.replace(db_path)
        replaced = digest(db_path)

    ready = httpx.get(f"{server.url}/health/ready", timeout=5)
    assert_retryable_problem(ready, "deleted or replaced")
    response = httpx.post(f"{server.url}/update", json={"counter": 9}, timeout=10)
    assert_retryable_problem(response, "deleted or replaced")
    status = httpx.get(f"{server.url}/status", timeout=5)
    assert (200, 3) == (status.status_code, status.json()["version"])
    if fault == "deleted":
        assert not db_path.exists(), "the server created a new, empty log at the path"
        assert left == beside(db_path)
    else:
        assert replaced == digest(db_path), "the server wrote into the file renamed over its log"
    assert_retryable_problem(httpx.get(f"{server.url}/health/ready", timeout=5), "deleted or replaced")


def test_sigterm_with_two_workers_loses_no_acknowledged_update(server_factory, db_path):
    """SIGTERM to a two-worker server under load: it exits 0, each request either succeeded or
    failed cleanly, and every acknowledged update is in the log, which verifies."""
    server = server_factory(db_path, workers=2).start()
    acked: list[dict[str, Any]] = []
    unexpected: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def write(n: int) -> None:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for i in range(100_000):
                if stop.is_set():
                    return
                try:
                    response = client.post("/update", json={"counter": n * 1_000_000 + i})
                except httpx.TransportError:
                    return  # the server went away: not acknowledged
                with lock:
                    if response.status_code == 200:
                        acked.append(response.json())
                    elif response.status_code != 503:
                        unexpected.append(f"{response.status_code} {response.text}")

    threads = [threading.Thread(target=write, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    try:
        poll(lambda: len(acked) >= 200, "200 updates acknowledged before SIGTERM", timeout=30)
        server.signal(signal.SIGTERM)
        assert 0 == server.wait(30)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert [] == unexpected
    with sqlite3.connect(db_path) as conn:
        logged = dict(conn.execute("SELECT seq, hash FROM events").fetchall())
    conn.close()
    assert [] == [e["seq"] for e in acked if logged.get(e["seq"]) != e["hash"]]
    assert list(range(1, len(logged) + 1)) == sorted(logged)
    result = cli("verify", "--database", str(db_path))
    assert 0 == result.returncode, result.stdout + result.stderr
