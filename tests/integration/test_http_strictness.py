"""HTTP strictness: every surface refuses what the contract refuses, with a 4xx and never a 500."""

from __future__ import annotations

import contextlib
import json
import socket
import time

import httpx
import pytest

from tests_support import ServerProcess

KEY = "k" * 32
JSON = {"content-type": "application/json"}


@pytest.mark.parametrize("path", ["/status", "/status?as_of=0", "/logs", "/logs/1",
                                  "/health/live", "/health/ready", "/metrics", "/schema/openapi.json",
                                  "/schema/swagger"])
def test_head_works_wherever_get_does(client, path):
    """HEAD answers like GET, with the same status and headers and no body."""
    client.post("/update", json={"counter": 1})
    get, head = client.get(path), client.head(path)
    assert (200, 200) == (get.status_code, head.status_code)
    assert b"" == head.content
    assert get.headers["content-type"] == head.headers["content-type"]
    assert get.headers.get("etag") == head.headers.get("etag")


def test_head_on_a_post_only_route_is_405(client):
    """HEAD is GET without a body, so it is refused where GET is: POST /update."""
    assert 405 == client.head("/update").status_code


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "application/jsonx", "multipart/form-data; boundary=x"])
def test_update_with_a_body_that_is_not_json_is_415(client, content_type):
    """POST /update declared as anything but application/json: 415 problem, nothing written."""
    headers = {} if content_type is None else {"content-type": content_type}
    response = client.post("/update", content=b'{"counter": 1}', headers=headers)
    assert 415 == response.status_code
    assert "urn:eventstate:problem:unsupported-media-type" == response.json()["type"]
    assert 0 == client.get("/status").json()["version"]


def test_json_with_a_charset_is_accepted(client):
    """application/json; charset=utf-8 is JSON."""
    response = client.post("/update", content=b'{"counter": 1}',
                           headers={"content-type": "Application/JSON; charset=utf-8"})
    assert 200 == response.status_code


@pytest.mark.parametrize("body", [b'{"counter": 1, "counter": 2}', b'{"message": "a", "message": "b"}',
                                  b'{"counter": 1, "c\\u006funter": 2}'])
def test_duplicate_keys_are_refused(client, body):
    """A JSON object naming a field twice is a 4xx, not "the last one wins"."""
    response = client.post("/update", content=body, headers=JSON)
    assert 422 == response.status_code
    assert 0 == client.get("/status").json()["version"]


@pytest.mark.parametrize("depth", [10, 1_000, 100_000, 1_000_000])
@pytest.mark.parametrize("shape", ["array", "object", "in-field"])
def test_nesting_of_any_depth_is_a_4xx(client, depth, shape):
    """Deeply nested JSON (up to a million levels, within the body limit) is a 4xx, never a 500."""
    if shape == "array":
        body = b"[" * depth + b"]" * depth
    elif shape == "object":
        body = b'{"a":' * depth + b"1" + b"}" * depth
    else:
        body = b'{"counter":' + b"[" * depth + b"]" * depth + b"}"
    response = client.post("/update", content=body[: 64 * 1024], headers=JSON)
    assert 400 <= response.status_code < 500
    assert 0 == client.get("/status").json()["version"]


def test_at_compares_moments_for_years_before_1000(client):
    """?at= a moment in the year 999 is before every event: version 0, not the latest state."""
    client.post("/update", json={"counter": 1})
    response = client.get("/status", params={"at": "0999-06-01T00:00:00Z"})
    assert 200 == response.status_code
    assert 0 == response.json()["version"]
    later = client.get("/status", params={"at": "9999-12-31T23:59:59Z"})
    assert 1 == later.json()["version"]


@pytest.mark.parametrize("at", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-00:01",
                                "2026-02-30T00:00:00Z", "2026-01-01T24:00:00Z", "2026-01-01T00:00:60Z"])
def test_at_outside_the_calendar_is_400(client, at):
    """A time that leaves the calendar once converted to UTC (or never was in it) is a 400."""
    response = client.get("/status", params={"at": at})
    assert 400 == response.status_code
    assert response.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize("at", ["2026-01-01T10:00:00+02:00", "2026-01-01T08:00:00Z",
                                "2026-01-01t08:00:00.000000z", "2026-01-01T03:00:00-05:00"])
def test_at_accepts_every_rfc_3339_form_of_one_moment(client, at):
    """Offsets, a lower-case t/z and fractions name the same moment: the same answer."""
    client.post("/update", json={"counter": 1})
    assert 200 == client.get("/status", params={"at": at}).status_code


@pytest.mark.parametrize("path", ["/update", "/status", "/logs"])
def test_two_api_keys_are_refused_alike_on_every_route(make_client, path):
    """Two X-API-KEY headers (even one right, one wrong) get 401 on every route, whatever the order."""
    client = make_client(api_keys=(KEY,), protect_reads=True)
    for pair in ([KEY, "w" * 32], ["w" * 32, KEY], [KEY, KEY]):
        headers = [("x-api-key", k) for k in pair] + [("content-type", "application/json")]
        method = "POST" if path == "/update" else "GET"
        response = client.request(method, path, content=b'{"counter": 1}', headers=headers)
        assert 401 == response.status_code, pair
    assert 0 == client.get("/status", headers={"x-api-key": KEY}).json()["version"]


def test_problem_types_follow_one_scheme(client):
    """Every problem type is urn:eventstate:problem:<kind>, from the router's 404/405 to the body's 422."""
    responses = [client.get("/nope"), client.delete("/status"), client.post("/update", content=b"{}",
                 headers=JSON), client.post("/update", content=b"{", headers=JSON),
                 client.get("/logs?limit=0"), client.post("/update", content=b"1")]
    for response in responses:
        assert response.json()["type"].startswith("urn:eventstate:problem:"), response.json()


# ---- over a real socket -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = ServerProcess(tmp_path_factory.mktemp("strict") / "s.db",
                           env={"EVENTSTATE_BODY_TIMEOUT_SECONDS": "1"}).start()
    yield server
    server.stop()


def _raw(server: ServerProcess, data: bytes, timeout: float = 10.0) -> bytes:
    """Send `data` on a fresh connection; everything the server answers until it closes or times out."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as conn:
        conn.sendall(data)
        received = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = conn.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            received += chunk
            if b"\r\n\r\n" in received and _complete(received):
                break
        return received


def _complete(response: bytes) -> bool:
    head, _, body = response.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


def test_huge_headers_are_refused_before_they_are_buffered(server):
    """A 50 MB header block is answered 431 after a bounded amount of it: the rest is never read."""
    sent = 0
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
        conn.sendall(b"GET /status HTTP/1.1\r\nhost: x\r\nx-big: ")
        chunk = b"a" * 65536
        deadline = time.monotonic() + 30
        try:
            while sent < 50 * 1024 * 1024 and time.monotonic() < deadline:
                conn.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = b""
        with contextlib.suppress(ConnectionResetError, TimeoutError):
            answer = conn.recv(65536)
    assert sent < 8 * 1024 * 1024, f"the server read {sent} bytes of headers"
    assert answer == b"" or answer.startswith(b"HTTP/1.1 431"), answer[:80]
    assert 200 == httpx.get(f"{server.url}/status").status_code


def test_a_body_that_never_arrives_is_timed_out(server):
    """A Content-Length longer than the body sent: 408 after the body deadline, nothing written."""
    started = time.monotonic()
    answer = _raw(server, b"POST /update HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                          b"content-length: 100\r\n\r\n{\"counter\": 1", timeout=15)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
    assert time.monotonic() - started < 10
    assert 0 == httpx.get(f"{server.url}/status").json()["version"]


@pytest.mark.parametrize("request_bytes", [
    b"GARBAGE\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"GET /status HTTP/1.1\r\nbad header\r\n\r\n",
    b"POST /update HTTP/1.1\r\nhost: x\r\ncontent-length: -5\r\n\r\n",
    b"POST /update HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nab",
    b"GET /status HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
    b"\x00\xff\xfe" * 100, b"GET /%ff%fe HTTP/1.1\r\nhost: x\r\n\r\n",
    b"GET /logs?after=%00 HTTP/1.1\r\nhost: x\r\n\r\n",
])
def test_malformed_http_never_produces_a_stack_trace(server, request_bytes):
    """Malformed requests get a 4xx (or a closed connection), and no traceback reaches the log."""
    answer = _raw(server, request_bytes, timeout=5)
    if answer:
        status = int(answer.split(b" ", 2)[1])
        assert 400 <= status < 500, answer[:200]
    assert "Traceback" not in server.output()
    assert 200 == httpx.get(f"{server.url}/health/live").status_code


def test_head_of_the_live_tail_answers_without_streaming(server):
    """HEAD /logs/stream answers the stream's status and type and ends, over a real socket."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as conn:
        conn.sendall(b"HEAD /logs/stream HTTP/1.1\r\nhost: x\r\n\r\n")
        answer = conn.recv(65536)
        conn.sendall(b"GET /health/live HTTP/1.1\r\nhost: x\r\n\r\n")  # the connection goes on
        after = conn.recv(65536)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:80]
    assert b"text/event-stream" in answer
    assert after.startswith(b"HTTP/1.1 200"), after[:80]
    assert time.monotonic() - started < 4


def test_problems_are_json_documents(server):
    """A problem body is one JSON object with type, title, status and detail."""
    response = httpx.post(f"{server.url}/update", content=b"{", headers=JSON)
    assert {"type", "title", "status", "detail"} == set(json.loads(response.content))


def test_a_request_in_one_write_is_not_mistaken_for_a_huge_head(server):
    """Headers and a 60 KB body arriving in one read are a normal request, not an oversized head."""
    body = b'{"message": "' + b"x" * 1000 + b'"}' + b" " * 60_000
    answer = _raw(server, b"POST /update HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                          b"content-length: %d\r\n\r\n%s" % (len(body), body))
    assert answer.startswith(b"HTTP/1.1 200"), answer[:120]
