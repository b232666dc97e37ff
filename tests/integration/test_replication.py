"""Continuous replication with the real Litestream binary to a real S3 emulator, and restore from it."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from eventstate.audit import verify
from eventstate.eventlog import EventLog
from replica_support import (
    litestream_pid,
    metric,
    moto_s3,
    replica_env,
    require_litestream,
    restore_cli,
    s3,
)
from tests_support import ServerProcess

pytestmark = pytest.mark.slow  # real server processes, Litestream and an S3 emulator

SYNC_INTERVAL = 1.0  # seconds: EVENTSTATE_REPLICA_SYNC_INTERVAL_MS below
CAPTURE = 0.1  # Litestream's monitor interval as eventstate configures it
# Scheduling and the upload itself on a loaded two-core machine, on top of the two intervals.
ALLOWANCE = 1.0


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    """A moto S3 server for this module."""
    require_litestream()
    with moto_s3() as url:
        yield url


@pytest.fixture
def replica(endpoint: str) -> str:
    """A fresh bucket and prefix on the emulator; the replica URL."""
    bucket = f"replica-{uuid.uuid4().hex[:12]}"
    s3(endpoint).create_bucket(Bucket=bucket)
    return f"s3://{bucket}/eventstate/prod"


def _serve(server_factory: type[ServerProcess], db: Path, endpoint: str, replica: str,
           **extra: str) -> ServerProcess:
    env = replica_env(endpoint, replica, EVENTSTATE_REPLICA_SYNC_INTERVAL_MS=str(int(SYNC_INTERVAL * 1000)),
                      EVENTSTATE_REPLICA_ANCHOR_INTERVAL_SECONDS="1", **extra)
    env.pop("AWS_CA_BUNDLE", None)
    return server_factory(db, env=env).start(timeout=30)


def _wait(what: str, check: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout}s")
        time.sleep(0.05)


def _metrics(server: ServerProcess) -> str:
    return httpx.get(f"{server.url}/metrics", timeout=5).text


def _caught_up(server: ServerProcess, seq: int) -> Callable[[], bool]:
    def check() -> bool:
        text = _metrics(server)
        return metric(text, "eventstate_replica_lag_seconds") == 0 and (
            metric(text, "eventstate_replica_anchored_seq") or 0) >= seq
    return check


def _remove_local(db: Path) -> None:
    for leftover in db.parent.glob(db.name + "*"):
        leftover.unlink()
    for meta in db.parent.glob(f".{db.name}-litestream"):
        import shutil

        shutil.rmtree(meta)


def _events(db: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT seq, timestamp, new_counter, new_message, hash FROM events "
                            "ORDER BY seq").fetchall()


def _verified_head(db: Path) -> int:
    log = EventLog.open(db, readonly=True)
    try:
        return verify(log).version
    finally:
        log.close()


def test_kill_9_then_restore_keeps_every_update_older_than_a_sync_interval(
        server_factory: type[ServerProcess], tmp_path: Path, endpoint: str, replica: str) -> None:
    """After kill -9 and the loss of the disk, the restored log holds every update acknowledged
    more than one sync interval (plus capture and upload) before the kill, and its chain verifies."""
    db = tmp_path / "events.db"
    server = _serve(server_factory, db, endpoint, replica)
    acked: list[tuple[int, float]] = []  # (seq, monotonic time of the acknowledgement)
    stop = threading.Event()

    def write() -> None:
        with httpx.Client(base_url=server.url, timeout=5) as http:
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    r = http.post("/update", json={"counter": n, "message": f"m{n}"})
                except httpx.TransportError:
                    return
                if r.status_code == 200:
                    acked.append((int(r.headers["ETag"].strip('"')), time.monotonic()))

    writer = threading.Thread(target=write)
    writer.start()
    _wait("4 seconds of acknowledged writes", lambda: len(acked) > 10 and acked[-1][1] - acked[0][1] > 4)
    assert server.proc is not None
    sidecar = litestream_pid(server.proc.pid)
    assert sidecar is not None
    # The host is lost: Litestream and the server die together, with no chance of a last sync.
    os.kill(sidecar, signal.SIGKILL)
    server.signal(signal.SIGKILL)
    killed_at = time.monotonic()
    stop.set()
    writer.join(10)
    server.wait(10)
    _remove_local(db)

    started = time.monotonic()
    done = restore_cli(endpoint, replica, db)
    restore_seconds = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    head = _verified_head(db)
    lost = [(seq, at) for seq, at in acked if seq > head]
    bound = killed_at - (SYNC_INTERVAL + CAPTURE + ALLOWANCE)
    assert [seq for seq, at in lost if at < bound] == []
    assert head == len(_events(db))
    assert " 0 anchors matched" not in done.stdout  # heads were anchored even under steady writes
    rpo_s = killed_at - min((at for _, at in lost), default=killed_at)
    print(f"\nRPO measured: {len(acked)} acknowledged, {len(lost)} lost "
          f"(at most {rpo_s:.2f}s before the kill); restore {restore_seconds:.2f}s; {done.stdout.strip()}")


def test_sigterm_makes_a_final_sync(
        server_factory: type[ServerProcess], tmp_path: Path, endpoint: str, replica: str) -> None:
    """A graceful stop replicates everything acknowledged, even the updates of the last instant."""
    db = tmp_path / "events.db"
    server = _serve(server_factory, db, endpoint, replica)
    with httpx.Client(base_url=server.url, timeout=5) as http:
        for n in range(1, 51):
            assert http.post("/update", json={"counter": n}).status_code == 200
    server.signal(signal.SIGTERM)
    assert server.wait(30) == 0
    expected = _events(db)
    _remove_local(db)
    done = restore_cli(endpoint, replica, db)
    assert done.returncode == 0, done.stderr
    assert expected == _events(db)
    assert "50 events, chain verified" in done.stdout


def _post_until_later(http: httpx.Client, start: int, count: int) -> list[str]:
    stamps = []
    for n in range(start, start + count):
        r = http.post("/update", json={"counter": n})
        assert r.status_code == 200
        stamps.append(http.get(f"/logs/{r.headers['ETag'].strip(chr(34))}").json()["timestamp"])
    return stamps


def test_point_in_time_restore_returns_exactly_the_log_at_that_moment(
        server_factory: type[ServerProcess], tmp_path: Path, endpoint: str, replica: str) -> None:
    """`--at T` gives the events stamped at or before T, byte for byte, and nothing later."""
    db = tmp_path / "events.db"
    server = _serve(server_factory, db, endpoint, replica)
    with httpx.Client(base_url=server.url, timeout=5) as http:
        first = _post_until_later(http, 1, 20)
        mark = time.monotonic()
        _wait("1.5 s of quiet", lambda: time.monotonic() - mark > 1.5)
        second = _post_until_later(http, 21, 20)
    _wait("the replica caught up", _caught_up(server, 40))
    server.stop()
    everything = _events(db)
    # The moment between the two bursts, in RFC 3339 as an auditor would type it.
    t = first[-1]
    assert t < second[0]
    out = tmp_path / "at.db"
    done = restore_cli(endpoint, replica, out, "--at", t)
    assert done.returncode == 0, done.stderr
    assert everything[:20] == _events(out)
    assert _verified_head(out) == 20
    before_all = restore_cli(endpoint, replica, tmp_path / "none.db", "--at", "2000-01-01T00:00:00Z")
    assert before_all.returncode == 2
    assert before_all.stderr.count("\n") == 1


def test_litestream_dying_is_noticed_counted_and_restarted(
        server_factory: type[ServerProcess], tmp_path: Path, endpoint: str, replica: str) -> None:
    """kill -9 of Litestream shows in /metrics and the log; a new Litestream resumes, and later
    updates reach the replica."""
    db = tmp_path / "events.db"
    server = _serve(server_factory, db, endpoint, replica)
    assert server.proc is not None
    first = litestream_pid(server.proc.pid)
    assert first is not None
    assert metric(_metrics(server), "eventstate_replica_up") == 1
    os.kill(first, signal.SIGKILL)

    def restarted() -> bool:
        pid = litestream_pid(server.proc.pid) if server.proc else None
        return pid is not None and pid != first
    _wait("a new litestream", restarted)
    text = _metrics(server)
    assert 'eventstate_replica_failures_total{reason="exited"} 1.0' in text
    assert "litestream exited" in server.output()
    with httpx.Client(base_url=server.url, timeout=5) as http:
        for n in range(1, 6):
            assert http.post("/update", json={"counter": n}).status_code == 200
    _wait("the replica caught up", _caught_up(server, 5))
    server.stop()
    expected = _events(db)
    _remove_local(db)
    done = restore_cli(endpoint, replica, db)
    assert done.returncode == 0, done.stderr
    assert expected == _events(db)


def test_restored_log_serves_again_with_replication_on(
        server_factory: type[ServerProcess], tmp_path: Path, endpoint: str, replica: str) -> None:
    """A log restored from the replica (with Litestream's own tables in it) is served again and
    keeps replicating to the same place."""
    db = tmp_path / "events.db"
    server = _serve(server_factory, db, endpoint, replica)
    with httpx.Client(base_url=server.url, timeout=5) as http:
        assert http.post("/update", json={"counter": 7}).status_code == 200
    server.stop()
    _remove_local(db)
    assert restore_cli(endpoint, replica, db).returncode == 0
    again = _serve(server_factory, db, endpoint, replica)
    with httpx.Client(base_url=again.url, timeout=5) as http:
        assert http.get("/status").json()["counter"] == 7
        assert http.post("/update", json={"counter": 8}).status_code == 200
    _wait("the replica caught up", _caught_up(again, 2))
    again.stop()
    out = tmp_path / "second.db"
    assert restore_cli(endpoint, replica, out).returncode == 0
    assert [8] == [row[2] for row in _events(out)][-1:]


def test_failing_replication_is_logged_counted_and_fails_readiness(
        server_factory: type[ServerProcess], tmp_path: Path, endpoint: str) -> None:
    """When the store refuses the replica (here: its bucket does not exist), the log says so at
    once, the failure is counted, and /health/ready turns 503 once the replica is further behind
    than EVENTSTATE_REPLICA_MAX_LAG_SECONDS; reads and writes keep working."""
    db = tmp_path / "events.db"
    server = _serve(server_factory, db, endpoint, "s3://no-such-bucket-here/log",
                    EVENTSTATE_REPLICA_MAX_LAG_SECONDS="2")
    with httpx.Client(base_url=server.url, timeout=5) as http:
        assert http.post("/update", json={"counter": 1}).status_code == 200

        def not_ready() -> bool:
            return http.get("/health/ready").status_code == 503
        _wait("readiness to fail", not_ready)
        problem = http.get("/health/ready").json()
        assert "replication is failing" in problem["detail"]
        assert "no-such-bucket-here does not exist" in problem["detail"]
        assert http.post("/update", json={"counter": 2}).status_code == 200
        text = _metrics(server)
    assert 'eventstate_replica_failures_total{reason="store"} 1.0' in text
    assert (metric(text, "eventstate_replica_lag_seconds") or 0) > 2
    assert '"replication failing"' in server.output()


def test_a_forged_anchor_makes_restore_refuse(
        server_factory: type[ServerProcess], tmp_path: Path, endpoint: str, replica: str) -> None:
    """An anchor beside the replica that the restored history contradicts fails the restore."""
    db = tmp_path / "events.db"
    server = _serve(server_factory, db, endpoint, replica)
    with httpx.Client(base_url=server.url, timeout=5) as http:
        assert http.post("/update", json={"counter": 1}).status_code == 200
    _wait("the replica caught up", _caught_up(server, 1))
    server.stop()
    bucket, _, prefix = replica.removeprefix("s3://").partition("/")
    forged = f"{prefix}/eventstate-anchors/{1:020d}-{'0' * 64}.json"
    s3(endpoint).put_object(Bucket=bucket, Key=forged, Body=json.dumps({"seq": 1}).encode())
    done = restore_cli(endpoint, replica, tmp_path / "new.db")
    assert done.returncode == 1
    assert "different anchors" in done.stderr
    assert not (tmp_path / "new.db").exists()


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing", "no replica at"),
        ("no-bucket", "does not exist"),
        ("wrong-endpoint", "cannot reach the replica store"),
        ("no-credentials", "no AWS credentials"),
        ("bad-credentials", "refused the credentials"),
        ("bad-url", "must look like s3://BUCKET/PREFIX"),
        ("bad-at", "--at must be an RFC 3339 timestamp"),
        ("exists", "already exists"),
    ],
)
def test_restore_errors_are_one_line(tmp_path: Path, endpoint: str, replica: str, case: str,
                                     expected: str) -> None:
    """Each way a restore cannot start is one line on stderr, exit 2, and no file is left."""
    db = tmp_path / "new.db"
    url, ep, args, env = replica, endpoint, [], {}
    if case == "no-bucket":
        url = "s3://no-such-bucket-here/x"
    elif case == "wrong-endpoint":
        from tests_support import free_port

        ep = f"http://127.0.0.1:{free_port()}"
    elif case == "no-credentials":
        env = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "",
               "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent", "AWS_CONFIG_FILE": "/nonexistent",
               "AWS_EC2_METADATA_DISABLED": "true"}
    elif case == "bad-credentials":
        with moto_s3(check_credentials=True) as strict:
            done = restore_cli(strict, url, db)
        assert (2, 1) == (done.returncode, done.stderr.count("\n")), done.stderr
        assert expected in done.stderr
        assert not db.exists()
        return
    elif case == "bad-url":
        url = "https://bucket/prefix"
    elif case == "bad-at":
        args = ["--at", "yesterday"]
    elif case == "exists":
        db.write_bytes(b"")
    done = restore_cli(ep, url, db, *args, env=env)
    assert (2, 1) == (done.returncode, done.stderr.count("\n")), done.stderr
    assert expected in done.stderr
    assert db.exists() == (case == "exists")
