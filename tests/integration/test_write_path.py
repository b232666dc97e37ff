"""The write path under contention, against a real server: in-flight idempotency keys, back pressure,
failed commits, and the malformed-request table over a real socket."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests_support import BAD_BODIES, ServerProcess

pytestmark = pytest.mark.slow


@contextmanager
def write_lock_held(database: Path) -> Iterator[None]:
    """Hold SQLite's write lock from another connection, as a second writer process would."""
    conn = sqlite3.connect(database, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


def post_in_background(url: str, results: list[httpx.Response], **kwargs) -> threading.Thread:
    thread = threading.Thread(target=lambda: results.append(httpx.post(url, timeout=30, **kwargs)))
    thread.start()
    return thread


def wait_for_pending(url: str, count: int) -> None:
    """Poll /metrics until `count` updates are waiting for the writer."""
    import time

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        text = httpx.get(f"{url}/metrics").text
        if f"eventstate_writer_pending {float(count)}" in text:
            return
        time.sleep(0.02)
    raise TimeoutError(f"never saw {count} pending updates")


def test_duplicate_idempotency_key_in_flight_is_409(server_factory, db_path):
    """While a keyed update waits for the writer, the same key gets 409; the first then succeeds once."""
    server = server_factory(db_path, env={"EVENTSTATE_BUSY_TIMEOUT_MS": "20000"}).start()
    first: list[httpx.Response] = []
    with write_lock_held(db_path):
        thread = post_in_background(f"{server.url}/update", first, json={"counter": 1},
                                    headers={"Idempotency-Key": "k-409"})
        wait_for_pending(server.url, 1)
        duplicate = httpx.post(f"{server.url}/update", json={"counter": 1},
                               headers={"Idempotency-Key": "k-409"})
        assert 409 == duplicate.status_code
        assert duplicate.headers["content-type"].startswith("application/problem+json")
    thread.join()
    assert 200 == first[0].status_code
    retry = httpx.post(f"{server.url}/update", json={"counter": 1}, headers={"Idempotency-Key": "k-409"})
    assert first[0].json() == retry.json()
    assert 1 == httpx.get(f"{server.url}/status").json()["version"]


def test_queue_beyond_its_bound_gets_503_with_retry_after(server_factory, db_path):
    """With the writer stuck and the queue full, further updates get 503 + Retry-After, not memory growth."""
    server = server_factory(db_path, env={"EVENTSTATE_MAX_PENDING": "2",
                                          "EVENTSTATE_BUSY_TIMEOUT_MS": "20000"}).start()
    waiting: list[httpx.Response] = []
    with write_lock_held(db_path):
        threads = [post_in_background(f"{server.url}/update", waiting, json={"counter": i})
                   for i in range(2)]
        wait_for_pending(server.url, 2)
        refused = httpx.post(f"{server.url}/update", json={"counter": 99})
        assert 503 == refused.status_code
        assert "retry-after" in refused.headers
    for t in threads:
        t.join()
    assert [200, 200] == [r.status_code for r in waiting]
    assert 2 == httpx.get(f"{server.url}/status").json()["version"]


def test_failed_commit_fails_the_batch_with_503_and_writes_nothing(server_factory, db_path):
    """When the log stays locked past the busy timeout, every waiting update gets 503; nothing is written."""
    server = server_factory(db_path, env={"EVENTSTATE_BUSY_TIMEOUT_MS": "300"}).start()
    results: list[httpx.Response] = []
    with write_lock_held(db_path):
        threads = [post_in_background(f"{server.url}/update", results, json={"counter": i})
                   for i in range(4)]
        for t in threads:
            t.join()
    assert [503] * 4 == [r.status_code for r in results]
    assert all("locked" in r.json()["detail"] for r in results)
    assert 0 == httpx.get(f"{server.url}/status").json()["version"]
    assert 200 == httpx.post(f"{server.url}/update", json={"counter": 7}).status_code


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = ServerProcess(tmp_path_factory.mktemp("malformed") / "m.db").start()
    yield server.url
    server.stop()


@pytest.mark.parametrize(("body", "status", "why"), BAD_BODIES, ids=[b[2] for b in BAD_BODIES])
def test_malformed_requests_over_a_real_socket(live_server, body, status, why):
    """Each malformed body, sent to a real server, gets its 4xx problem and leaves the log unchanged."""
    response = httpx.post(f"{live_server}/update", content=body,
                          headers={"content-type": "application/json"})
    assert status == response.status_code, why
    assert response.headers["content-type"].startswith("application/problem+json")
    assert 0 == httpx.get(f"{live_server}/status").json()["version"]


@pytest.mark.parametrize(
    ("headers", "status"),
    [({"If-Match": "seven"}, 400), ({"If-Match": '"3"'}, 412), ({"Idempotency-Key": "has space"}, 400),
     ({"X-Body": "70 KiB"}, 413)],
)
def test_malformed_headers_over_a_real_socket(live_server, headers, status):
    """Bad or failing headers, or a body over 64 KiB, get their 4xx and write nothing."""
    body = b'{"message": "' + b"x" * 70_000 + b'"}' if "X-Body" in headers else b'{"counter": 1}'
    response = httpx.post(f"{live_server}/update", content=body,
                          headers={"content-type": "application/json", **headers})
    assert status == response.status_code
    assert 0 == httpx.get(f"{live_server}/status").json()["version"]
