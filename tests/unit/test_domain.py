"""The pure domain: decisions, recording, the hash chain and the fold."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from eventstate.domain import (
    COUNTER_MAX,
    COUNTER_MIN,
    GENESIS_HASH,
    ChainBroken,
    Head,
    InvalidUpdate,
    PreconditionFailed,
    State,
    Update,
    check_precondition,
    decide,
    evolve,
    fold,
    record,
)

T0 = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def test_update_changes_only_the_fields_it_names():
    """A partial update keeps the other field."""
    assert State(7, "kept") == decide(State(1, "kept"), Update(counter=7))
    assert State(1, "new") == decide(State(1, "old"), Update(message="new"))


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"counter": COUNTER_MAX + 1}, {"counter": COUNTER_MIN - 1}, {"message": "x" * 1025},
     {"counter": True}, {"message": "\ud800"}],
)
def test_invalid_updates_are_refused(kwargs):
    """Empty, out-of-range, over-long, boolean or non-Unicode updates are refused by the domain."""
    with pytest.raises(InvalidUpdate):
        Update(**kwargs)


def test_limits_themselves_are_accepted():
    """The extreme counters and a 1,024-character message are valid."""
    Update(counter=COUNTER_MAX, message="x" * 1024)
    Update(counter=COUNTER_MIN)


def test_record_links_to_the_head_and_hashes_the_documented_bytes():
    """The first event's hash is SHA-256 of the canonical encoding with the genesis hash."""
    event = record(Head(), State(5, "hé"), T0)
    expected = hashlib.sha256(
        b"eventstate/1\n1\n2026-01-02T03:04:05.678901Z\n0\n0:\n5\n3:h\xc3\xa9\n" + b"0" * 64
    ).hexdigest()
    assert (1, State(0, ""), expected) == (event.seq, event.old, event.hash)


def test_timestamps_never_go_back_when_the_clock_does():
    """An event recorded with an earlier wall clock keeps its predecessor's timestamp."""
    first = record(Head(), State(1, ""), T0)
    second = record(Head.after(first), State(2, ""), T0 - timedelta(hours=1))
    assert first.timestamp == second.timestamp
    assert "2026-01-02T03:04:05.678901Z" == second.timestamp


def test_if_match_admits_only_the_current_version():
    """A precondition naming another version fails; naming the current one passes."""
    head = Head.after(record(Head(), State(1, ""), T0))
    check_precondition(head, frozenset({1}))
    check_precondition(head, None)
    with pytest.raises(PreconditionFailed):
        check_precondition(head, frozenset({0, 2}))


def _chain(n: int) -> list:
    head, events = Head(), []
    for i in range(n):
        event = record(head, State(i, f"m{i}"), T0 + timedelta(seconds=i))
        events.append(event)
        head = Head.after(event)
    return events


def test_fold_of_a_valid_chain_reaches_the_last_state():
    """Folding a chain yields the last event's state and version."""
    events = _chain(5)
    assert Head.after(events[-1]) == fold(events)


@pytest.mark.parametrize(
    ("mutate", "seq", "words"),
    [
        (lambda ev: [ev[0], ev[2], ev[1], *ev[3:]], 2, "found seq 3"),
        (lambda ev: [ev[0], *ev[2:]], 2, "missing"),
        (lambda ev: [ev[0], ev[1].__class__(2, ev[1].timestamp, ev[1].old, State(9, "x"), ev[1].hash),
                     *ev[2:]], 2, "hash"),
        (lambda ev: [*ev[:3], ev[3].__class__(4, ev[3].timestamp, State(0, "forged"), ev[3].new,
                                              ev[3].hash), *ev[4:]], 4, "old state"),
    ],
)
def test_fold_names_the_first_broken_seq(mutate, seq, words):
    """Reordered, missing, edited or relinked events are reported at the first bad seq."""
    with pytest.raises(ChainBroken) as info:
        fold(mutate(_chain(5)))
    assert seq == info.value.seq
    assert words in info.value.reason


def test_evolve_rejects_a_timestamp_that_goes_back():
    """A recomputed hash does not hide a timestamp earlier than its predecessor's."""
    first = record(Head(), State(1, ""), T0)
    forged = record(Head.after(first), State(2, ""), T0)
    earlier = "2025-01-01T00:00:00.000000Z"
    from eventstate.domain import Event, chain_hash

    bad = Event(2, earlier, forged.old, forged.new,
                chain_hash(2, earlier, forged.old, forged.new, first.hash))
    with pytest.raises(ChainBroken, match="earlier"):
        evolve(Head.after(first), bad)


def test_genesis_hash_is_sixty_four_zeros():
    """The chain starts from 64 zeros, as documented."""
    assert "0" * 64 == GENESIS_HASH == Head().hash


def test_domain_does_no_io_and_knows_no_framework():
    """Importing the domain loads neither litestar, sqlalchemy, cattrs nor sqlite3."""
    code = ("import sys, eventstate.domain; "
            "print(sorted(m for m in ('litestar','sqlalchemy','cattrs','sqlite3','msgspec') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "[]" == out.stdout.strip()
