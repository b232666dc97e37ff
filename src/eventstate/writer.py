"""Group commit: one writer thread turns concurrent updates into one transaction and one flush.

Requests enqueue commands and await a future. The writer thread takes everything queued (up to
`max_batch`), applies it in arrival order inside one `BEGIN IMMEDIATE` transaction, commits once,
then hands the outcomes back to the event loop, advancing the projection before any response is
sent so that a client never reads a version older than one it was acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import attrs

from eventstate.commands import Command, IdempotencyKeyInFlight, Outcome, Recorded, apply_batch
from eventstate.domain import Head
from eventstate.eventlog import EventLog, LogError, LogUnavailable

log = logging.getLogger(__name__)


class Overloaded(Exception):
    """Too many updates are waiting for the writer; the client should retry shortly."""


@attrs.frozen
class BatchStats:
    """What one commit did, for metrics."""

    size: int
    appended: int
    seconds: float
    ok: bool


_STOP = object()


class GroupCommitWriter:
    """The single writer of one process; `submit` is safe to call from the event loop only."""

    def __init__(
        self,
        log: EventLog,
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
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._pending = 0
        self._in_flight_keys: set[str] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._last_expiry = 0.0
        self.last_failure: str | None = None  # why the latest commit failed; None once one succeeds

    @property
    def pending(self) -> int:
        """Updates queued or being written."""
        return self._pending

    def start(self) -> None:
        """Start the writer thread, bound to the running event loop."""
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name="eventstate-writer", daemon=True)
        self._thread.start()

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
        self._queue.put((command, future))
        try:
            # A cancelled request (client gone) cancels only its future: the writer skips it, and
            # the update, if already committed, stays committed (a retry with its key finds it).
            return await future
        finally:
            if key is not None:
                self._in_flight_keys.discard(key)

    def stop(self) -> None:
        """Write everything already queued, then stop the thread."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        stopping = False
        while not stopping:
            item = self._queue.get()
            if item is _STOP:
                break
            batch = [item]
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                batch.append(item)
            self._commit(batch)  # type: ignore[arg-type]

    def _commit(self, batch: list[tuple[Command, asyncio.Future[Outcome]]]) -> None:
        started = time.perf_counter()
        commands = [command for command, _ in batch]
        results: list[Outcome] | BaseException
        head: Head | None = None
        try:
            with self._log.transaction() as tx:
                results = apply_batch(tx, commands, self._clock(), self._key_ttl)
                if started - self._last_expiry > 60:
                    tx.expire_keys_older_than(self._clock() - self._key_ttl)
                    self._last_expiry = started
            head = tx.head
        except (LogUnavailable, LogError) as e:
            results = e
        except Exception as e:  # never leave a request hanging on an unexpected failure
            log.exception("commit failed")
            results = LogUnavailable(f"the update was not recorded: {type(e).__name__}")
        self.last_failure = str(results) if isinstance(results, BaseException) else None
        if self._on_batch is not None:
            appended = 0
            if not isinstance(results, BaseException):
                appended = sum(1 for r in results if isinstance(r, Recorded) and not r.replayed)
            self._on_batch(BatchStats(len(batch), appended, time.perf_counter() - started,
                                      not isinstance(results, BaseException)))
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._deliver, batch, results, head)

    def _deliver(
        self,
        batch: list[tuple[Command, asyncio.Future[Outcome]]],
        results: list[Outcome] | BaseException,
        head: Head | None,
    ) -> None:
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
