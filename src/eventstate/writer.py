"""Group commit: concurrent updates become one transaction and one flush.

Requests queue commands and await a future. One drain task on the event loop takes everything
queued (up to `max_batch`), applies it in arrival order inside one `BEGIN IMMEDIATE` transaction,
and commits once. The Python work (deciding, hashing) stays on the event loop; only the calls that
block in the database, BEGIN (which may wait for another writer) and COMMIT (which flushes), run
on one helper thread, with the GIL released. A request cancelled before its batch is taken (the
client went away) is dropped, never applied. Updates that arrive during a commit form the
next batch. The projection advances before any response is sent, so a client never reads a
version older than one it was acknowledged.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import attrs

from eventstate.commands import Command, IdempotencyKeyInFlight, Outcome, Recorded, apply_batch
from eventstate.domain import Head
from eventstate.ports import EventStore, StoreBusy, StoreError, StoreUnavailable

log = logging.getLogger(__name__)

EXPIRE_KEYS_EVERY_SECONDS = 60.0
# A lone update commits on the event loop while flushes take less than this (a disk with a write
# cache); slower flushes always run on the helper thread, so reads are never held up behind them.
INLINE_FLUSH_SECONDS = 0.0002


class Overloaded(Exception):
    """Too many updates are waiting for the writer; the client should retry shortly."""


@attrs.frozen
class BatchStats:
    """What one commit did, for metrics."""

    size: int
    appended: int
    seconds: float
    ok: bool


Waiting = tuple[Command, "asyncio.Future[Outcome]"]


class GroupCommitWriter:
    """The single writer of one process; use it from the event loop only."""

    def __init__(
        self,
        log: EventStore,
        on_commit: Callable[[Head], None],
        *,
        max_batch: int = 256,
        max_pending: int = 4096,
        key_ttl: timedelta = timedelta(hours=24),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_batch: Callable[[BatchStats], None] | None = None,
    ) -> None:
        self._log = log
        self._on_commit = on_commit
        self._max_batch = max_batch
        self._max_pending = max_pending
        self._key_ttl = key_ttl
        self._clock = clock
        self._on_batch = on_batch
        self._waiting: collections.deque[Waiting] = collections.deque()
        self._pending = 0
        self._in_flight_keys: set[str] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._blocking: ThreadPoolExecutor | None = None
        self._drain_task: asyncio.Task[None] | None = None
        self._last_expiry = 0.0
        self._flush_seconds = 0.0  # smoothed COMMIT duration
        self.last_failure: str | None = None  # why the latest commit failed; None once one succeeds

    @property
    def pending(self) -> int:
        """Updates queued or being written."""
        return self._pending

    def start(self) -> None:
        """Bind to the running event loop and start the helper thread for blocking database calls."""
        self._loop = asyncio.get_running_loop()
        self._blocking = ThreadPoolExecutor(1, thread_name_prefix="eventstate-writer")

    async def submit(self, command: Command) -> Outcome:
        """Queue `command` and wait for its outcome (a Recorded event or a DomainError)."""
        if self._pending >= self._max_pending:
            raise Overloaded(f"{self._pending} updates are already waiting to be written")
        key = command.idempotency_key
        if key is not None:
            if key in self._in_flight_keys:
                raise IdempotencyKeyInFlight("a request with this Idempotency-Key is still in progress")
            self._in_flight_keys.add(key)
        assert self._loop is not None, "writer not started"
        future: asyncio.Future[Outcome] = self._loop.create_future()
        self._pending += 1
        self._waiting.append((command, future))
        if self._drain_task is None:
            self._drain_task = self._loop.create_task(self._drain())
        try:
            # A cancelled request (client gone) cancels only its future: a batch not yet taken
            # drops it; one already being written keeps it (a retry with its key finds it).
            return await future
        finally:
            if key is not None:
                self._in_flight_keys.discard(key)

    async def stop(self) -> None:
        """Finish what is queued, then stop the helper thread."""
        if self._drain_task is not None:
            await self._drain_task
        if self._blocking is not None:
            self._blocking.shutdown(wait=True)
            self._blocking = None

    async def _drain(self) -> None:
        try:
            while self._waiting:
                count = min(len(self._waiting), self._max_batch)
                await self._commit([self._waiting.popleft() for _ in range(count)])
        finally:
            self._drain_task = None

    async def _commit(self, taken: list[Waiting]) -> None:
        assert self._loop is not None
        batch = [w for w in taken if not w[1].cancelled()]
        self._pending -= len(taken) - len(batch)
        if not batch:
            return
        started = time.perf_counter()
        results: list[Outcome] | BaseException
        head: Head | None = None
        try:
            try:  # nearly always free at once; waiting for another process happens off the loop
                tx = self._log.begin(wait=False)
            except StoreBusy:
                tx = await self._loop.run_in_executor(self._blocking, self._log.begin)
            try:
                results = apply_batch(tx, [command for command, _ in batch], self._clock(),
                                      self._key_ttl)
                if started - self._last_expiry > EXPIRE_KEYS_EVERY_SECONDS:
                    tx.expire_keys_older_than(self._clock() - self._key_ttl)
                    self._last_expiry = started
            except BaseException:
                tx.rollback()
                raise
            if len(batch) == 1 and not self._waiting and self._flush_seconds < INLINE_FLUSH_SECONDS:
                # A lone update on a disk that flushes in microseconds: handing the COMMIT to
                # the helper thread and back costs more than the flush, and nobody is waiting.
                flush_started = time.perf_counter()
                tx.commit()
            else:
                flush_started = time.perf_counter()
                await self._loop.run_in_executor(self._blocking, tx.commit)
            # How long flushes take here, smoothed: a slow disk keeps its flushes off the loop.
            self._flush_seconds += (time.perf_counter() - flush_started - self._flush_seconds) / 8
            head = tx.head
        except (StoreUnavailable, StoreError) as e:
            results = e
        except Exception as e:  # never leave a request hanging on an unexpected failure
            log.exception("commit failed")
            results = StoreUnavailable(f"the update was not recorded: {type(e).__name__}")
        failed = isinstance(results, BaseException)
        self.last_failure = str(results) if failed else None
        if self._on_batch is not None:
            appended = 0 if isinstance(results, BaseException) else sum(
                1 for r in results if isinstance(r, Recorded) and not r.replayed)
            self._on_batch(BatchStats(len(batch), appended, time.perf_counter() - started, not failed))
        self._deliver(batch, results, head)

    def _deliver(self, batch: list[Waiting], results: list[Outcome] | BaseException,
                 head: Head | None) -> None:
        if head is not None:
            self._on_commit(head)  # before any response goes out: read-your-writes
        self._pending -= len(batch)
        for index, (_, future) in enumerate(batch):
            if future.cancelled():
                continue
            if isinstance(results, BaseException):
                future.set_exception(results)
            else:
                future.set_result(results[index])
