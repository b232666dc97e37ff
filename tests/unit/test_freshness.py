"""The single-flight head check: concurrent reads share one check, and no read is served by a check
that started before it arrived."""

from __future__ import annotations

import asyncio

import pytest

from eventstate.freshness import SharedCheck


class Gate:
    """A check that records when it starts and finishes only when the test lets it."""

    def __init__(self) -> None:
        self.started: list[asyncio.Event] = []
        self.release: list[asyncio.Event] = []
        self.fail: list[Exception | None] = []
        self._moved = asyncio.Condition()

    async def __call__(self) -> None:
        index = len(self.started)
        self.started.append(asyncio.Event())
        self.release.append(asyncio.Event())
        self.started[index].set()
        async with self._moved:
            self._moved.notify_all()
        await self.release[index].wait()
        if index < len(self.fail) and self.fail[index] is not None:
            raise self.fail[index]  # type: ignore[misc]


    async def until_started(self, count: int) -> None:
        """Wait (with a deadline) until `count` checks have started."""
        async with asyncio.timeout(5), self._moved:
            await self._moved.wait_for(lambda: len(self.started) >= count)
        assert count == len(self.started)


def test_concurrent_reads_share_one_check_and_late_reads_wait_for_the_next():
    async def scenario() -> None:
        gate = Gate()
        check = SharedCheck(gate)
        first = [asyncio.create_task(check.wait())]
        await gate.until_started(1)
        # Reads arriving while check 0 runs must not be served by it.
        late = [asyncio.create_task(check.wait()) for _ in range(7)]
        await asyncio.sleep(0)
        gate.release[0].set()
        async with asyncio.timeout(5):
            await asyncio.gather(*first)
        assert not any(t.done() for t in late), "a read was served by a check that began before it"
        await gate.until_started(2)
        gate.release[1].set()
        async with asyncio.timeout(5):
            await asyncio.gather(*late)
        assert (2, 8) == (check.started, check.waits)  # seven concurrent reads, one check

    asyncio.run(scenario())


def test_an_idle_check_starts_for_the_next_read():
    async def scenario() -> None:
        gate = Gate()
        check = SharedCheck(gate)
        for n in range(3):
            waiting = asyncio.create_task(check.wait())
            await gate.until_started(n + 1)
            gate.release[n].set()
            await waiting
        assert check.started == 3

    asyncio.run(scenario())


def test_a_failed_check_fails_the_reads_it_serves_and_the_next_check_still_runs():
    async def scenario() -> None:
        gate = Gate()
        gate.fail = [RuntimeError("database away"), None]
        check = SharedCheck(gate)
        first = asyncio.create_task(check.wait())
        await gate.until_started(1)
        late = asyncio.create_task(check.wait())
        await asyncio.sleep(0)
        gate.release[0].set()
        with pytest.raises(RuntimeError, match="database away"):
            await first
        await gate.until_started(2)
        gate.release[1].set()
        await late  # served by the check that went through

    asyncio.run(scenario())


def test_a_reader_that_goes_away_does_not_cancel_the_check_of_the_others():
    async def scenario() -> None:
        gate = Gate()
        check = SharedCheck(gate)
        first = asyncio.create_task(check.wait())
        await gate.until_started(1)
        leaving = asyncio.create_task(check.wait())
        staying = asyncio.create_task(check.wait())
        await asyncio.sleep(0)
        gate.release[0].set()
        await gate.until_started(2)  # the check both wait for is in flight
        leaving.cancel()
        with pytest.raises(asyncio.CancelledError):
            await leaving
        gate.release[1].set()
        async with asyncio.timeout(5):
            await asyncio.gather(first, staying)
        assert 2 == check.started

    asyncio.run(scenario())
