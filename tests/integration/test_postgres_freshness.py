"""Freshness across real instances on one PostgreSQL database: a write acknowledged by one instance
is never missed by a read made afterwards on another, even while concurrent reads share one head
check, and a stream on one instance hears of another's commit at once (LISTEN/NOTIFY)."""

from __future__ import annotations

import json
import queue
import re
import threading
import time
from pathlib import Path

import httpx
import pytest

from _postgres import Cluster, fresh_database

pytestmark = pytest.mark.slow


@pytest.fixture
def pg_url(postgres_cluster: Cluster) -> str:
    """A fresh, initialised log in the shared throwaway cluster."""
    return fresh_database(postgres_cluster)


def _gauge(url: str, name: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert found is not None, f"{name} missing from /metrics"
    return float(found.group(1))


def test_read_your_writes_across_two_instances_under_concurrent_reads(server_factory, pg_url,
                                                                     tmp_path: Path):
    """8 writers each write on one instance and at once read GET /status on the other, while 8
    readers keep that instance busy with plain reads: no read ever shows a version older than a
    write already acknowledged to its client, and the reads share head checks."""
    a, b = (server_factory(pg_url, log_dir=tmp_path).start() for _ in range(2))
    stop = threading.Event()
    behind: list[str] = []
    errors: list[str] = []
    writes = 0
    lock = threading.Lock()

    def writer(index: int) -> None:
        nonlocal writes
        with httpx.Client(timeout=30) as http:
            for n in range(25):
                to, other = (a, b) if (index + n) % 2 else (b, a)
                response = http.post(f"{to.url}/update", json={"message": f"c{index}-{n}"})
                if response.status_code != 200:
                    errors.append(f"{response.status_code}: {response.text}")
                    continue
                seq = response.json()["seq"]
                with lock:
                    writes += 1
                read = http.get(f"{other.url}/status")
                if read.status_code != 200 or read.json()["version"] < seq:
                    behind.append(f"client {index}: wrote {seq} on {to.url}, then read "
                                  f"{read.status_code} {read.text} on {other.url}")

    def reader() -> None:
        with httpx.Client(timeout=30) as http:
            while not stop.is_set():
                for server in (a, b):
                    response = http.get(f"{server.url}/status")
                    if response.status_code != 200:
                        errors.append(f"read {response.status_code}: {response.text}")

    readers = [threading.Thread(target=reader) for _ in range(8)]
    writers = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in readers + writers:
        t.start()
    for t in writers:
        t.join(timeout=240)
    stop.set()
    for t in readers:
        t.join(timeout=60)
    assert ([], []) == (errors, behind)
    assert 200 == writes
    final = httpx.get(f"{a.url}/status").json()
    assert 200 == final["version"]
    # Shared checks: fewer head checks than reads that waited for one, on each instance.
    for server in (a, b):
        checks = _gauge(server.url, "eventstate_head_checks_started")
        reads = _gauge(server.url, "eventstate_head_check_reads")
        assert 0 < checks <= reads


def test_a_stream_on_one_instance_receives_a_commit_made_on_another_promptly(server_factory, pg_url,
                                                                             tmp_path: Path):
    """An SSE client on B gets each event committed through A within 2 s of its acknowledgement,
    20 times in a row: only the NOTIFY can do that (the tail's own safety poll is every 5 s)."""
    a, b = (server_factory(pg_url, log_dir=tmp_path).start() for _ in range(2))
    received: queue.Queue[tuple[int, float]] = queue.Queue()
    opened = threading.Event()

    def listen() -> None:
        with httpx.stream("GET", f"{b.url}/logs/stream", timeout=30) as response:
            assert 200 == response.status_code
            opened.set()
            data = None
            for line in response.iter_lines():
                if line.startswith("data: "):
                    data = json.loads(line[len("data: "):])
                elif line == "" and data is not None:
                    received.put((data["seq"], time.monotonic()))
                    if data["seq"] >= 20:
                        return
                    data = None

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    assert opened.wait(20), "the stream did not open"
    with httpx.Client(timeout=30) as http:
        for n in range(1, 21):
            response = http.post(f"{a.url}/update", json={"counter": n})
            assert 200 == response.status_code
            try:
                seq, _ = received.get(timeout=2)  # a deadline, not a sleep
            except queue.Empty:
                pytest.fail(f"event {n}, committed on A, did not reach the stream on B within 2 s")
            assert n == seq
    thread.join(timeout=10)
