"""The HTTP contract, driven through the real app on a real SQLite file and a real PostgreSQL database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from _stores import DATABASE_BACKENDS, database_for
from eventstate.domain import COUNTER_MAX, COUNTER_MIN
from tests_support import BAD_BODIES

PROBLEM = "application/problem+json"


@pytest.fixture(params=DATABASE_BACKENDS)
def db_path(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """Every test here runs on each backend: a SQLite file path, or a fresh PostgreSQL database URL."""
    database = database_for(request.param, request, tmp_path)
    return Path(database) if request.param == "sqlite" else database


def version(client) -> int:
    return client.get("/status").json()["version"]


def test_fresh_status_is_the_initial_state(client):
    """A new log serves counter 0, an empty message, version 0, no update time, and ETag "0"."""
    response = client.get("/status")
    assert 200 == response.status_code
    assert {"counter": 0, "message": "", "version": 0, "updated_at": None} == response.json()
    assert '"0"' == response.headers["etag"]


def test_update_returns_the_recorded_event_and_moves_the_status(client):
    """POST /update answers with the event; /status then shows the new state and version."""
    response = client.post("/update", json={"counter": 41, "message": "hello"})
    assert 200 == response.status_code
    event = response.json()
    assert {"seq", "timestamp", "old", "new", "hash"} == set(event)
    assert (1, {"counter": 0, "message": ""}, {"counter": 41, "message": "hello"}) == (
        event["seq"], event["old"], event["new"])
    assert '"1"' == response.headers["etag"]
    status = client.get("/status").json()
    assert (41, "hello", 1, event["timestamp"]) == (
        status["counter"], status["message"], status["version"], status["updated_at"])


def test_partial_updates_keep_the_other_field(client):
    """Updating only the message keeps the counter, and vice versa."""
    client.post("/update", json={"counter": 3, "message": "a"})
    client.post("/update", json={"message": "b"})
    client.post("/update", json={"counter": -4})
    assert (-4, "b") == tuple(client.get("/status").json()[k] for k in ("counter", "message"))


def test_each_event_old_is_the_previous_new(client):
    """The log chains: every event's old state equals the previous event's new state."""
    for i in range(5):
        client.post("/update", json={"counter": i * 10, "message": f"m{i}"})
    items = client.get("/logs").json()["items"]
    assert [1, 2, 3, 4, 5] == [e["seq"] for e in items]
    for previous, current in zip(items, items[1:], strict=False):
        assert previous["new"] == current["old"]


def test_extreme_values_round_trip(client):
    """The 64-bit limits and a 1,024-character Unicode message are stored exactly."""
    message = "é€𝄞\u0001\n\"" + "x" * 1018
    assert 1024 == len(message)
    assert 200 == client.post("/update", json={"counter": COUNTER_MIN, "message": message}).status_code
    assert 200 == client.post("/update", json={"counter": COUNTER_MAX}).status_code
    assert {"counter": COUNTER_MAX, "message": message} == {
        k: client.get("/status").json()[k] for k in ("counter", "message")}




@pytest.mark.parametrize(("body", "status", "why"), BAD_BODIES, ids=[b[2] for b in BAD_BODIES])
def test_bad_bodies_are_refused_with_a_problem_and_write_nothing(client, body, status, why):
    """Each malformed or unacceptable body gets its 4xx problem+json and no event is written."""
    response = client.post("/update", content=body, headers={"content-type": "application/json"})
    assert status == response.status_code, why
    assert response.headers["content-type"].startswith(PROBLEM)
    problem = response.json()
    assert status == problem["status"]
    assert all(problem[field] for field in ("title", "detail", "type"))
    assert 0 == version(client)


def test_lone_surrogate_escape_is_refused(client):
    """A message with an unpaired surrogate escape cannot be hashed as UTF-8 and is refused."""
    response = client.post("/update", content=b'{"message": "a\\ud800b"}',
                           headers={"content-type": "application/json"})
    assert response.status_code in (400, 422)
    assert 0 == version(client)


def test_body_over_64_kib_is_413(client):
    """A body larger than 64 KiB is refused with 413 before it is parsed."""
    body = json.dumps({"message": "x" * (70 * 1024)})
    response = client.post("/update", content=body, headers={"content-type": "application/json"})
    assert 413 == response.status_code
    assert response.headers["content-type"].startswith(PROBLEM)
    assert 0 == version(client)


def test_if_match_applies_only_at_the_named_version(client):
    """If-Match with the current version succeeds; a stale one gets 412 and the current ETag."""
    client.post("/update", json={"counter": 1})
    assert 200 == client.post("/update", json={"counter": 2}, headers={"If-Match": '"1"'}).status_code
    stale = client.post("/update", json={"counter": 3}, headers={"If-Match": '"1"'})
    assert 412 == stale.status_code
    assert '"2"' == stale.headers["etag"]
    assert stale.headers["content-type"].startswith(PROBLEM)
    assert 2 == version(client)


@pytest.mark.parametrize("header", ['W/"0"', '"7", "8"'])
def test_if_match_with_weak_or_other_tags_fails(client, header):
    """Weak tags never match (strong comparison); a list without the version fails."""
    assert 412 == client.post("/update", json={"counter": 1}, headers={"If-Match": header}).status_code


@pytest.mark.parametrize("header", ['"0"', '"5", "0"', "*"])
def test_if_match_lists_and_star_match(client, header):
    """A list naming the current version, or `*`, admits the update."""
    assert 200 == client.post("/update", json={"counter": 1}, headers={"If-Match": header}).status_code


def test_malformed_if_match_is_400(client):
    """An If-Match that is not an entity-tag list is a 400 and writes nothing."""
    assert 400 == client.post("/update", json={"counter": 1}, headers={"If-Match": "1"}).status_code
    assert 0 == version(client)


def test_if_none_match_on_status_gives_304(client):
    """A client holding the current ETag gets 304 Not Modified."""
    client.post("/update", json={"counter": 1})
    response = client.get("/status", headers={"If-None-Match": '"1"'})
    assert 304 == response.status_code
    assert 200 == client.get("/status", headers={"If-None-Match": '"0"'}).status_code


def test_idempotent_retry_returns_the_original_event_and_writes_nothing(client):
    """The same key and body returns the first event, marked replayed; the log does not grow."""
    headers = {"Idempotency-Key": '"order-42"'}
    first = client.post("/update", json={"counter": 5}, headers=headers)
    client.post("/update", json={"counter": 6})
    retry = client.post("/update", json={"counter": 5}, headers=headers)
    assert 200 == retry.status_code
    assert first.json() == retry.json()
    assert "true" == retry.headers["idempotent-replayed"]
    assert 2 == version(client)


def test_idempotency_key_with_another_body_is_422(client):
    """Reusing a key for a different request is refused and writes nothing."""
    client.post("/update", json={"counter": 5}, headers={"Idempotency-Key": "k1"})
    response = client.post("/update", json={"counter": 6}, headers={"Idempotency-Key": "k1"})
    assert 422 == response.status_code
    assert "Idempotency-Key" in response.json()["detail"]
    assert 1 == version(client)


def test_idempotency_keys_expire(make_client):
    """After the configured time a key can be used for a new request."""
    from datetime import timedelta

    client = make_client(idempotency_ttl=timedelta(microseconds=1))
    client.post("/update", json={"counter": 5}, headers={"Idempotency-Key": "k1"})
    again = client.post("/update", json={"counter": 6}, headers={"Idempotency-Key": "k1"})
    assert 200 == again.status_code
    assert 2 == again.json()["seq"]


@pytest.mark.parametrize("key", ['""', "a b", "x" * 256, "é".encode(), '"a', '"a"b"'])
def test_malformed_idempotency_key_is_400(client, key):
    """Empty, spaced, over-long or non-ASCII keys are refused."""
    response = client.post("/update", json={"counter": 1}, headers={"Idempotency-Key": key})
    assert 400 == response.status_code
    assert 0 == version(client)


def test_logs_paginate_by_keyset_with_next_and_link(client):
    """Pages follow `next` (and the Link header) through the whole log, oldest first."""
    for i in range(7):
        client.post("/update", json={"counter": i})
    seen, url = [], "/logs?limit=3"
    while url:
        response = client.get(url)
        page = response.json()
        seen += [e["seq"] for e in page["items"]]
        if page["next"]:
            assert f'<{page["next"]}>; rel="next"' == response.headers["link"]
        url = page["next"]
    assert list(range(1, 8)) == seen


def test_logs_after_and_descending_browsing(client):
    """`after` skips older events; `order=desc` with `before` walks newest first."""
    for i in range(5):
        client.post("/update", json={"counter": i})
    assert [4, 5] == [e["seq"] for e in client.get("/logs?after=3").json()["items"]]
    page = client.get("/logs?order=desc&limit=2").json()
    assert [5, 4] == [e["seq"] for e in page["items"]]
    assert [3, 2] == [e["seq"] for e in client.get(page["next"]).json()["items"]]
    assert [2, 1] == [e["seq"] for e in client.get("/logs?order=desc&before=3").json()["items"]]


def test_last_page_has_no_next(client):
    """The page that reaches the end of the log says next: null and has no Link header."""
    client.post("/update", json={"counter": 1})
    response = client.get("/logs")
    assert None is response.json()["next"]
    assert "link" not in response.headers


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=1001", "limit=abc", "after=-1", "after=x", "before=0", "order=sideways",
     "limit=1.5"],
)
def test_bad_log_parameters_are_400(client, query):
    """Out-of-range or malformed paging parameters are a 400 problem."""
    response = client.get(f"/logs?{query}")
    assert 400 == response.status_code
    assert response.headers["content-type"].startswith(PROBLEM)


def test_one_event_by_seq_or_404(client):
    """GET /logs/{seq} returns that event; an absent seq is a 404 problem."""
    event = client.post("/update", json={"counter": 1}).json()
    assert event == client.get("/logs/1").json()
    missing = client.get("/logs/2")
    assert 404 == missing.status_code
    assert missing.headers["content-type"].startswith(PROBLEM)


def test_unknown_route_and_method_are_problems(client):
    """404 and 405 are problem+json too."""
    assert client.get("/nope").headers["content-type"].startswith(PROBLEM)
    response = client.delete("/status")
    assert 405 == response.status_code
    assert response.headers["content-type"].startswith(PROBLEM)


def test_time_travel_by_seq_and_time(client):
    """/status?as_of=n and ?at=t show the state at that point; past the head is 404."""
    first = client.post("/update", json={"counter": 1, "message": "one"}).json()
    client.post("/update", json={"counter": 2})
    assert 1 == client.get("/status?as_of=1").json()["counter"]
    assert 0 == client.get("/status?as_of=0").json()["version"]
    assert 1 == client.get("/status", params={"at": first["timestamp"]}).json()["version"]
    assert 0 == client.get("/status?at=2000-01-01T00:00:00Z").json()["version"]
    assert 404 == client.get("/status?as_of=3").status_code
    assert 400 == client.get("/status?at=yesterday").status_code
    assert 400 == client.get("/status?as_of=-1").status_code


class TestApiKeys:
    """X-API-KEY protects writes (and reads when asked); keys rotate by listing several."""

    KEYS = ("first-key-0123456789", "second-key-0123456789")

    def test_writes_need_a_configured_key(self, make_client):
        """No key or a wrong key is 401 and writes nothing; either configured key works."""
        client = make_client(api_keys=self.KEYS)
        assert 401 == client.post("/update", json={"counter": 1}).status_code
        wrong = client.post("/update", json={"counter": 1}, headers={"X-API-KEY": "nope" * 5})
        assert 401 == wrong.status_code
        assert wrong.headers["content-type"].startswith(PROBLEM)
        assert "nope" not in wrong.text
        for key in self.KEYS:
            assert 200 == client.post("/update", json={"counter": 1},
                                      headers={"X-API-KEY": key}).status_code
        assert 2 == version(client)

    def test_reads_stay_open_unless_protected(self, make_client, tmp_path):
        """Reads need no key by default; with protect_reads they do."""
        assert 200 == make_client(api_keys=self.KEYS).get("/status").status_code
        protected = make_client(api_keys=self.KEYS, protect_reads=True, database=tmp_path / "p.db")
        assert 401 == protected.get("/status").status_code
        assert 401 == protected.get("/logs").status_code
        assert 200 == protected.get("/status", headers={"X-API-KEY": self.KEYS[0]}).status_code
        assert 200 == protected.get("/health/live").status_code


def test_health_endpoints(client):
    """Liveness and readiness answer 200 on a healthy log."""
    assert 200 == client.get("/health/live").status_code
    assert {"status": "ready", "version": 0} == client.get("/health/ready").json()


def test_openapi_document_describes_the_contract(client):
    """The served OpenAPI document names every operation and the strict update body."""
    doc = client.get("/schema/openapi.json").json()
    expected = {"/status", "/update", "/logs", "/logs/{seq}", "/logs/stream", "/metrics",
                "/health/live", "/health/ready"}
    assert expected <= set(doc["paths"])
    body = doc["paths"]["/update"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert False is body["additionalProperties"]
    responses = doc["paths"]["/update"]["post"]["responses"]
    assert "application/problem+json" in responses["422"]["content"]


def test_a_second_server_on_the_same_log_is_refused(make_client, db_path):
    """Two single-process servers on one SQLite file would not see each other's writes: the second is
    refused. (On PostgreSQL any number of instances serve one log: see the multi-instance tests.)"""
    from eventstate.ports import StoreError as LogError

    if not isinstance(db_path, Path):
        first, second = make_client(), make_client()
        assert 200 == first.post("/update", json={"counter": 4}).status_code
        assert (1, 4) == tuple(second.get("/status").json()[k] for k in ("version", "counter"))
        return
    make_client()
    with pytest.raises(BaseExceptionGroup) as info:  # the lifespan's error, as the test client relays it
        make_client()
    assert info.group_contains(LogError, match="already serving")


@pytest.mark.parametrize(
    "url", ["/logs/9223372036854775808", "/status?as_of=9223372036854775808",
            "/logs?after=9223372036854775808", "/logs/-1"],
)
def test_seqs_beyond_64_bits_are_400_not_500(client, url):
    """A seq past the signed 64-bit range is a client error, never a server error."""
    response = client.get(url)
    assert response.status_code in (400, 404)
    assert response.headers["content-type"].startswith(PROBLEM)


@pytest.mark.parametrize("value", ["99999999999999999999", "²", "-1", "1 2"])
def test_bad_last_event_id_is_400(client, value):
    """A Last-Event-ID that is not a 64-bit seq is refused before streaming starts."""
    response = client.get("/logs/stream", headers={"Last-Event-ID": value.encode()})
    assert 400 == response.status_code


@pytest.mark.parametrize(("header", "stored"), [('"abc"', "abc"), ("abc", '"abc"'), ("a'b", "a'b")])
def test_idempotency_key_forms(client, header, stored):
    """A quoted key and the same key bare are one key."""
    first = client.post("/update", json={"counter": 1}, headers={"Idempotency-Key": header})
    assert 200 == first.status_code
    again = client.post("/update", json={"counter": 1}, headers={"Idempotency-Key": stored})
    assert first.json() == again.json()


@pytest.mark.parametrize("message", ["\x00", "before\x00after"])
def test_nul_in_a_message_is_refused_with_422_and_writes_nothing(client, message):
    """U+0000 is refused on every backend alike (PostgreSQL text cannot hold it)."""
    response = client.post("/update", json={"message": message})
    assert (422, "application/problem+json") == (response.status_code,
                                                  response.headers["content-type"])
    assert "NUL" in response.json()["detail"]
    assert 0 == client.get("/status").json()["version"]
