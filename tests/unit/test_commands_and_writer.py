"""The write use case and the group-commit writer on the in-memory store: idempotency, refusals, cancels."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from eventstate.adapters.memory import MemoryStore
from eventstate.commands import Command, IdempotencyKeyReused, Recorded, apply_batch
from eventstate.domain import PreconditionFailed, State, Update, record
from eventstate.ports import StoreUnavailable
from eventstate.writer import GroupCommitWriter

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
TTL = timedelta(hours=24)


def _batch(store: MemoryStore, commands: list[Command], now: datetime = NOW) -> list[object]:
    with store.transaction() as tx:
        return list(apply_batch(tx, commands, now, TTL))


def test_a_key_used_twice_in_one_batch_is_a_replay_not_a_failure() -> None:
    """The second request with a key already appended in the same batch gets the first's event."""
    store = MemoryStore()
    same = Command(Update(counter=5), idempotency_key="k")
    first, second = _batch(store, [same, same])
    assert isinstance(first, Recorded)
    assert isinstance(second, Recorded)
    assert (False, True, first.event) == (first.replayed, second.replayed, second.event)
    assert 1 == store.head().version


def test_a_key_reused_in_one_batch_with_another_body_is_refused() -> None:
    """A different body under a key decided earlier in the batch is refused; the first stands."""
    store = MemoryStore()
    outcomes = _batch(store, [Command(Update(counter=1), idempotency_key="k"),
                              Command(Update(counter=2), idempotency_key="k")])
    assert isinstance(outcomes[1], IdempotencyKeyReused)
    assert State(1, "") == store.head().state


def test_a_refused_request_does_not_touch_an_expired_key() -> None:
    """A 412 with an expired key writes nothing: the old key record is not deleted."""
    store = MemoryStore()
    _batch(store, [Command(Update(counter=1), idempotency_key="k")], now=NOW - 2 * TTL)
    outcomes = _batch(store, [Command(Update(counter=2), if_match=frozenset({7}), idempotency_key="k")])
    assert isinstance(outcomes[0], PreconditionFailed)
    with store.transaction() as tx:
        kept = tx.decided("k")
    assert kept is not None
    assert 1 == kept.seq
    assert 1 == store.head().version


def test_an_accepted_request_reuses_an_expired_key() -> None:
    """After the TTL a key names a new request: it is applied and the record now points at it."""
    store = MemoryStore()
    _batch(store, [Command(Update(counter=1), idempotency_key="k")], now=NOW - 2 * TTL)
    (outcome,) = _batch(store, [Command(Update(counter=2), idempotency_key="k")])
    assert isinstance(outcome, Recorded)
    assert (2, False) == (outcome.event.seq, outcome.replayed)
    with store.transaction() as tx:
        stored = tx.decided("k")
    assert stored is not None
    assert 2 == stored.seq


def test_a_request_cancelled_while_queued_is_dropped() -> None:
    """A client gone before its batch is taken never has its update applied."""
    store = MemoryStore()

    async def run() -> None:
        writer = GroupCommitWriter(store, lambda _h: None)
        writer.start()
        kept = asyncio.create_task(writer.submit(Command(Update(counter=1))))
        gone = asyncio.create_task(writer.submit(Command(Update(counter=2), idempotency_key="k")))
        await asyncio.sleep(0)  # both are queued; the drain task is scheduled but has not run
        gone.cancel()
        outcome = await kept
        with pytest.raises(asyncio.CancelledError):
            await gone
        await writer.stop()
        assert isinstance(outcome, Recorded)
        assert 0 == writer.pending

    asyncio.run(run())
    assert (1, State(1, "")) == (store.head().version, store.head().state)


def test_a_cancelled_request_retried_with_its_key_is_applied_once() -> None:
    """A keyed request cancelled in the queue and retried at once is written exactly once."""
    store = MemoryStore()

    async def run() -> None:
        writer = GroupCommitWriter(store, lambda _h: None)
        writer.start()
        command = Command(Update(counter=3), idempotency_key="k")
        first = asyncio.create_task(writer.submit(command))
        await asyncio.sleep(0)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        retry = await writer.submit(command)
        await writer.stop()
        assert isinstance(retry, Recorded)

    asyncio.run(run())
    assert 1 == store.head().version


def test_a_failed_commit_fails_every_request_of_the_batch_and_writes_nothing() -> None:
    """When the store refuses the commit, every waiting request gets the error and no event exists."""
    store = MemoryStore()
    store.fail_next_commit()

    async def run() -> list[object]:
        writer = GroupCommitWriter(store, lambda _h: None)
        writer.start()
        results = await asyncio.gather(*(writer.submit(Command(Update(counter=i))) for i in range(3)),
                                       return_exceptions=True)
        await writer.stop()
        return list(results)

    results = asyncio.run(run())
    assert [StoreUnavailable] * 3 == [type(r) for r in results]
    assert 0 == store.head().version


def test_the_memory_store_refuses_an_append_that_does_not_continue_the_log() -> None:
    """Even the fake refuses a gapped append."""
    store = MemoryStore()
    with store.transaction() as tx:
        event = record(tx.head, State(1, ""), NOW)
    from eventstate.ports import StoreConflict

    with store.transaction() as tx:
        tx.append(event)
        with pytest.raises(StoreConflict):
            tx.append(event)
