"""Operational behaviour a user notices: request ids, security headers, limits, metrics."""

from __future__ import annotations

import re

import pytest

PROBLEM = "application/problem+json"


def test_every_response_carries_a_request_id_and_security_headers(client):
    """Responses, errors included, carry X-Request-ID, nosniff and a deny-all CSP for the API."""
    for response in (client.get("/status"), client.get("/nope"), client.post("/update", content=b"{")):
        assert re.fullmatch(r"[0-9a-f]{16}", response.headers["x-request-id"])
        assert "nosniff" == response.headers["x-content-type-options"]
        assert "DENY" == response.headers["x-frame-options"]
        assert "default-src 'none'" in response.headers["content-security-policy"]


def test_a_sane_incoming_request_id_is_echoed(client):
    """A caller's X-Request-ID is echoed so logs on both sides line up; a hostile one is replaced."""
    assert "trace-42" == client.get("/status", headers={"X-Request-ID": "trace-42"}).headers["x-request-id"]
    replaced = client.get("/status", headers={"X-Request-ID": "a b<script>"}).headers["x-request-id"]
    assert "a b<script>" != replaced


def test_oversized_headers_are_431(make_client):
    """Request headers over the configured size get 431 problem+json and write nothing."""
    client = make_client(max_header_bytes=2048)
    response = client.post("/update", json={"counter": 1}, headers={"X-Padding": "x" * 4096})
    assert 431 == response.status_code
    assert response.headers["content-type"].startswith(PROBLEM)
    assert 0 == client.get("/status").json()["version"]


def test_write_rate_limit_answers_429_with_retry_after(make_client):
    """Past the per-client write limit, updates get 429 with Retry-After; reads are not limited."""
    client = make_client(write_rate_limit=("minute", 2))
    codes = [client.post("/update", json={"counter": i}).status_code for i in range(3)]
    assert [200, 200, 429] == codes
    limited = client.post("/update", json={"counter": 9})
    assert limited.headers["content-type"].startswith(PROBLEM)
    assert int(limited.headers["retry-after"]) >= 1
    assert 2 == client.get("/status").json()["version"]
    assert all(200 == client.get("/status").status_code for _ in range(5))


def test_metrics_count_requests_events_and_commits(client):
    """/metrics reports requests by route and status, appended events and commit batches."""
    client.post("/update", json={"counter": 1})
    client.post("/update", json={"counter": "x"})
    client.get("/logs/99")
    text = client.get("/metrics").text
    assert 'eventstate_http_requests_total{method="POST",route="/update",status="200"} 1.0' in text
    assert 'eventstate_http_requests_total{method="POST",route="/update",status="422"} 1.0' in text
    assert 'route="/logs/{seq}",status="404"' in text
    assert "eventstate_events_appended_total 1.0" in text
    assert "eventstate_commit_batch_size_count 1.0" in text
    assert "eventstate_projection_lag_events 0.0" in text
    assert "eventstate_log_version 1.0" in text


@pytest.mark.parametrize("key", ["hunter2", "0123456789abcde"])
def test_short_api_keys_are_refused(key):
    """Settings refuse an API key under 16 characters and do not echo it."""
    from eventstate.settings import Settings, SettingsError

    with pytest.raises(SettingsError) as info:
        Settings(api_keys=(key,))
    assert key not in str(info.value)


def test_settings_repr_hides_keys():
    """The settings' repr (as it might be logged) never shows the keys."""
    from eventstate.settings import Settings

    assert "secret-key-0123456789" not in repr(Settings(api_keys=("secret-key-0123456789",)))


@pytest.mark.parametrize(
    ("name", "value"),
    [("EVENTSTATE_PORT", "http"), ("EVENTSTATE_WORKERS", "0"), ("EVENTSTATE_SYNCHRONOUS", "SOMETIMES"),
     ("EVENTSTATE_WRITE_RATE_LIMIT", "fast"), ("EVENTSTATE_PROTECT_READS", "maybe")],
)
def test_bad_environment_values_are_named(name, value):
    """A bad EVENTSTATE_* value is refused with a message naming the setting."""
    from eventstate.settings import Settings, SettingsError

    with pytest.raises(SettingsError, match=name.removeprefix("EVENTSTATE_").lower() + "|" + name):
        Settings.from_env({name: value})


def test_plain_status_is_counted_and_equal_to_the_routed_answer(client):
    """The plain GET /status answers exactly like the routed one (with ?as_of) and is counted."""
    client.post("/update", json={"counter": 3, "message": "x"})
    plain = client.get("/status")
    routed = client.get("/status?as_of=1")
    assert (plain.json(), plain.headers["etag"]) == (routed.json(), routed.headers["etag"])
    assert plain.headers["content-type"] == routed.headers["content-type"]
    assert 'eventstate_http_requests_total{method="GET",route="/status",status="200"} 2.0' in (
        client.get("/metrics").text)
