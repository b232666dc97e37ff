"""Properties of the log: folding it reproduces the live state, and serialisation round-trips."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventstate.adapters import open_store
from eventstate.commands import Command, Recorded, apply_batch
from eventstate.domain import COUNTER_MAX, COUNTER_MIN, Event, Head, State, Update, fold
from eventstate.serialization import decode_event, decode_json, encode, event_body, structure_event, to_event

counters = st.integers(COUNTER_MIN, COUNTER_MAX)
messages = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=1024)
updates = st.one_of(
    st.builds(Update, counter=counters),
    st.builds(Update, message=messages),
    st.builds(Update, counter=counters, message=messages),
)
states = st.builds(State, counters, messages)
events = st.builds(
    Event, st.integers(1, 2**62), st.just("2026-01-01T00:00:00.000001Z"), states, states,
    st.text("0123456789abcdef", min_size=64, max_size=64),
)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_folding_the_log_equals_the_live_state(backend: str, request: pytest.FixtureRequest) -> None:
    """After any sequence of (batched) updates, folding the stored log gives the live head, on
    every database backend (a fresh log per example; fewer examples on PostgreSQL)."""
    cluster = request.getfixturevalue("postgres_cluster") if backend == "postgresql" else None

    @settings(max_examples=100 if cluster is None else 15, deadline=None)
    @given(st.lists(st.lists(updates, min_size=1, max_size=5), max_size=8))
    def check(batches: list[list[Update]]) -> None:
        _fold_equals_live(batches, cluster)

    check()


def _fold_equals_live(batches: list[list[Update]], cluster: object) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        if cluster is None:
            database = str(Path(tmp) / "p.db")
        else:
            from _postgres import fresh_database

            database = fresh_database(cluster)  # type: ignore[arg-type]
        log = open_store(database)
        try:
            now = datetime(2026, 1, 1, tzinfo=UTC)
            for i, batch in enumerate(batches):
                with log.transaction() as tx:
                    outcomes = apply_batch(tx, [Command(u) for u in batch], now + timedelta(seconds=i),
                                           timedelta(hours=1))
                assert all(isinstance(o, Recorded) for o in outcomes)
            live = log.head()
            with log.snapshot() as snap:
                stored = list(snap.events())
        finally:
            log.close()
    assert live == fold(stored)
    expected = State()
    for batch in batches:
        for u in batch:
            expected = State(expected.counter if u.counter is None else u.counter,
                             expected.message if u.message is None else u.message)
    assert expected == live.state
    assert sum(map(len, batches)) == live.version
    for previous, current in zip(stored, stored[1:], strict=False):
        assert previous.new == current.old


@given(events)
def test_event_serialisation_round_trips(event):
    """to_event(event_body(e)) == e, through JSON bytes and a decoded JSON value too."""
    assert event == to_event(event_body(event))
    assert event == decode_event(encode(event_body(event)))
    assert event == structure_event(decode_json(encode(event_body(event))))


@given(st.lists(updates, min_size=1, max_size=20))
def test_fold_of_recorded_events_reaches_the_recorded_head(batch):
    """Events recorded by the domain always fold back to the head they produced."""
    from eventstate.domain import decide, record

    head, recorded = Head(), []
    for i, u in enumerate(batch):
        event = record(head, decide(head.state, u), datetime(2026, 1, 1, tzinfo=UTC) + timedelta(i))
        recorded.append(event)
        head = Head.after(event)
    assert head == fold(recorded)
