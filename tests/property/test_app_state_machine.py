"""A Hypothesis state machine drives the real app against a simple model, restarting it on the way."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from litestar.testing import TestClient

from eventstate.app import create_app
from eventstate.domain import COUNTER_MAX, COUNTER_MIN
from eventstate.settings import Settings

counters = st.integers(COUNTER_MIN, COUNTER_MAX)
messages = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=40)


class EventstateMachine(RuleBasedStateMachine):
    """Model: the state, the version, the list of events and the idempotency keys used."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp())
        self.client: TestClient[Any] | None = None
        self.counter, self.message, self.version = 0, "", 0
        self.events: list[dict[str, Any]] = []
        self.keys: dict[str, tuple[Any, dict[str, Any]]] = {}
        self._start()

    def _start(self) -> None:
        self.client = TestClient(create_app(Settings(database=self.dir / "sm.db")))
        self.client.__enter__()

    def _stop(self) -> None:
        assert self.client is not None
        self.client.__exit__(None, None, None)

    def _accepted(self, event: dict[str, Any], body: dict[str, Any]) -> None:
        self.version += 1
        assert self.version == event["seq"]
        assert {"counter": self.counter, "message": self.message} == event["old"]
        self.counter = body.get("counter", self.counter)
        self.message = body.get("message", self.message)
        assert {"counter": self.counter, "message": self.message} == event["new"]
        self.events.append(event)

    @rule(counter=st.none() | counters, message=st.none() | messages)
    def update(self, counter: int | None, message: str | None) -> None:
        body = {k: v for k, v in (("counter", counter), ("message", message)) if v is not None}
        response = self.client.post("/update", json=body)
        if not body:
            assert 422 == response.status_code
            return
        assert 200 == response.status_code
        self._accepted(response.json(), body)

    @rule(counter=counters, stale=st.booleans())
    def conditional_update(self, counter: int, stale: bool) -> None:
        tag = f'"{self.version + 1 if stale else self.version}"'
        response = self.client.post("/update", json={"counter": counter}, headers={"If-Match": tag})
        if stale:
            assert 412 == response.status_code
        else:
            assert 200 == response.status_code
            self._accepted(response.json(), {"counter": counter})

    @rule(key=st.sampled_from(["a", "b", "c"]), counter=counters)
    def idempotent_update(self, key: str, counter: int) -> None:
        response = self.client.post("/update", json={"counter": counter},
                                    headers={"Idempotency-Key": key})
        if key not in self.keys:
            assert 200 == response.status_code
            self._accepted(response.json(), {"counter": counter})
            self.keys[key] = (counter, response.json())
        elif self.keys[key][0] == counter:
            assert 200 == response.status_code
            assert self.keys[key][1] == response.json()
        else:
            assert 422 == response.status_code

    @rule(body=st.sampled_from([b"{", b'{"counter": "1"}', b'{"counter": 1.5}', b'{"x": 1}',
                                b'{"counter": 9223372036854775808}']))
    def bad_update(self, body: bytes) -> None:
        assert self.client.post("/update", content=body,
                                headers={"content-type": "application/json"}).status_code in (400, 422)

    @rule()
    def restart(self) -> None:
        self._stop()
        self._start()

    @precondition(lambda self: self.version > 0)
    @rule(data=st.data())
    def time_travel(self, data: st.DataObject) -> None:
        seq = data.draw(st.integers(1, self.version))
        status = self.client.get(f"/status?as_of={seq}").json()
        assert self.events[seq - 1]["new"] == {"counter": status["counter"], "message": status["message"]}

    @invariant()
    def status_matches_the_model(self) -> None:
        status = self.client.get("/status").json()
        assert (self.counter, self.message, self.version) == (
            status["counter"], status["message"], status["version"])

    @invariant()
    def log_matches_the_model(self) -> None:
        items = self.client.get("/logs?limit=1000").json()["items"]
        assert self.events == items

    def teardown(self) -> None:
        self._stop()
        shutil.rmtree(self.dir, ignore_errors=True)


EventstateMachine.TestCase.settings = settings(max_examples=25, stateful_step_count=20,
                                               deadline=None)
TestEventstateMachine = EventstateMachine.TestCase


def test_the_state_machine_on_postgresql(postgres_cluster: Any) -> None:
    """The same model-based run, with the log in a fresh PostgreSQL database for every example."""
    from hypothesis.stateful import run_state_machine_as_test

    from _postgres import fresh_database

    class OnPostgres(EventstateMachine):
        def _start(self) -> None:
            if not hasattr(self, "url"):
                self.url = fresh_database(postgres_cluster)
            self.client = TestClient(create_app(Settings(database=self.url)))
            self.client.__enter__()

    run_state_machine_as_test(OnPostgres, settings=settings(
        max_examples=15, stateful_step_count=15, deadline=None))
