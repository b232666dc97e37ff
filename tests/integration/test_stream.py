"""The live tail: every event appended during a stream arrives exactly once, in order, across reconnects."""

from __future__ import annotations

import threading

import httpx
import pytest

pytestmark = pytest.mark.slow


def read_events(url: str, headers: dict[str, str], until_seq: int) -> list[dict]:
    """Read SSE messages until the event with `until_seq` has arrived; return their payloads."""
    import json

    seen: list[dict] = []
    with httpx.stream("GET", url, headers=headers, timeout=20) as response:
        assert 200 == response.status_code
        assert response.headers["content-type"].startswith("text/event-stream")
        message: dict[str, str] = {}
        for line in response.iter_lines():
            if line == "":
                if "data" in message:
                    event = json.loads(message["data"])
                    assert str(event["seq"]) == message["id"]
                    seen.append(event)
                    if event["seq"] >= until_seq:
                        return seen
                message = {}
            elif not line.startswith(":"):
                field, _, value = line.partition(": ")
                message[field] = value
    return seen


def test_stream_delivers_each_event_once_in_order_and_resumes(server_factory, db_path):
    """Events appended by 4 writers while a client streams arrive once each, in seq order; a
    reconnect with Last-Event-ID resumes right after the last one seen."""
    server = server_factory(db_path).start()
    for i in range(5):
        httpx.post(f"{server.url}/update", json={"counter": i}).raise_for_status()

    def write(n: int) -> None:
        with httpx.Client(base_url=server.url) as client:
            for i in range(25):
                client.post("/update", json={"counter": n * 100 + i}).raise_for_status()

    writers = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in writers:
        t.start()
    first = read_events(f"{server.url}/logs/stream?after=2", {}, until_seq=60)
    for t in writers:
        t.join()
    rest = read_events(f"{server.url}/logs/stream", {"Last-Event-ID": str(first[-1]["seq"])},
                       until_seq=105)
    seqs = [e["seq"] for e in first + rest]
    assert list(range(3, 106)) == seqs
    log = httpx.get(f"{server.url}/logs?after=2&limit=1000").json()["items"]
    assert log == first + rest


def test_bad_cursor_is_400(server_factory, db_path):
    """A Last-Event-ID that is not a seq is refused before streaming starts."""
    server = server_factory(db_path).start()
    response = httpx.get(f"{server.url}/logs/stream", headers={"Last-Event-ID": "abc"})
    assert 400 == response.status_code
    assert response.headers["content-type"].startswith("application/problem+json")
