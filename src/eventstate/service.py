"""The application service: what the HTTP edge can ask of eventstate, one method per use case."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import attrs

from eventstate import merkle
from eventstate.checkpoints import HOW_TO_ENABLE, CheckpointLog, CheckpointsDisabled
from eventstate.commands import Command, Outcome, Recorded
from eventstate.domain import DomainError, Event, Head, format_timestamp
from eventstate.freshness import SharedCheck
from eventstate.ports import EventStore, StoreError, StoreUnavailable
from eventstate.projection import Projection
from eventstate.writer import BatchStats, GroupCommitWriter


class NotFound(LookupError):
    """The requested event or version does not exist."""


class InvalidProofRequest(ValueError):
    """The sizes or seq asked of a proof contradict each other (e.g. from > to)."""


class NotReady(Exception):
    """This process cannot serve right now (the reason says why)."""


@attrs.frozen
class Readiness:
    """Whether this process can serve: the log reachable and writable, the projection current."""

    ready: bool
    reason: str
    version: int


class EventService:
    """The running service of one process: the log, its projection and the group-commit writer."""

    def __init__(
        self,
        log: EventStore,
        *,
        max_batch: int,
        max_pending: int,
        key_ttl: timedelta,
        shared: bool = True,
        on_batch: Callable[[BatchStats], None] | None = None,
        checkpoints: CheckpointLog | None = None,
    ) -> None:
        self.log = log
        self.checkpoints = checkpoints
        #: Further conditions for readiness (e.g. replication); each returns why not, or None.
        self.readiness_checks: list[Callable[[], str | None]] = []
        self.projection = Projection(log, shared=shared)
        self._shared = shared
        self._changed = asyncio.Event()
        self._tail_version = -1
        self._tail_pages: dict[tuple[int, int], list[Event]] = {}
        self._pushed = False  # whether the store wakes us when another process commits
        self._stopped = False
        self._seen = 0
        # A remote store's head is asked off the event loop, one check for the reads that arrive
        # together (see freshness.py); a local store answers `changed` cheaply in place.
        self._remote = shared and log.remote
        self.head_check = SharedCheck(self._check_head)
        self._tasks: set[asyncio.Task[None]] = set()
        self.writer = GroupCommitWriter(
            log, self._committed, max_batch=max_batch, max_pending=max_pending,
            key_ttl=key_ttl, on_batch=on_batch,
        )

    def _committed(self, head: Head) -> None:
        self.projection.advance(head)
        self._seen = head.version
        # Wake the live tails only after the updates' own responses are on their way: the
        # callbacks that resume the updating requests are queued before this one runs.
        asyncio.get_running_loop().call_soon(self._wake_tails)

    def _wake_tails(self) -> None:
        self._changed.set()  # wake every tail waiting for news, then arm a fresh event
        self._changed = asyncio.Event()

    async def wait_past(self, version: int, timeout: float) -> bool:  # noqa: ASYNC109 - a poll with a deadline
        """Wait until the log is past `version` or `timeout` passes; whether it moved on.

        Our own commits wake waiters at once; other processes' commits are noticed by asking the
        store for news a few times a second (or at once, when the store pushes news: `notify`).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (await self.fresh_status()).version <= version:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, self._poll_seconds()))
        return True

    def _poll_seconds(self) -> float:
        """How long a tail waits before looking for other processes' commits itself: a few times a
        second when nothing pushes news; when the store pushes (LISTEN/NOTIFY), only a slow safety
        net, since every commit wakes the tails at once."""
        if not self._shared:
            return float("inf")
        return 5.0 if self._pushed else 0.25

    def lag(self) -> int:
        """Events in the log that this process's projection has not seen yet."""
        return self.log.head().version - self.projection.cached().version

    def start(self) -> None:
        """Start the writer (inside the running event loop) and listen for other instances' commits."""
        self.writer.start()
        loop = asyncio.get_running_loop()

        def news() -> None:
            if not self._stopped and not loop.is_closed():
                loop.call_soon_threadsafe(self._news)

        self._pushed = self.log.on_news(news)

    def _news(self) -> None:
        if self._stopped:
            return
        if self._remote:  # the head is asked in a worker thread; the loop goes on meanwhile
            task = asyncio.get_running_loop().create_task(self._remote_news())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        try:
            self.projection.current()
        except (StoreError, StoreUnavailable):
            return  # the database is away: readers get 503 themselves, streams keep waiting
        self._announce()

    async def _remote_news(self) -> None:
        try:
            await self.fresh_status()
        except (StoreError, StoreUnavailable):
            return  # the database is away: readers get 503 themselves, streams keep waiting
        self._announce()

    def _announce(self) -> None:
        """Wake every tail if the projection moved past what they were last told."""
        if self.projection.cached().version > self._seen:
            self._seen = self.projection.cached().version
            self._changed.set()
            self._changed = asyncio.Event()

    async def stop(self) -> None:
        """Write what is queued, stop the writer and close the log."""
        await self.writer.stop()
        self._stopped = True
        self.log.close()

    def status(self) -> Head:
        """The current head, fresh with respect to every commit acknowledged before this call."""
        return self.projection.current()

    async def fresh_status(self) -> Head:
        """`status`, without holding up the event loop on a remote store: the head is asked in a
        worker thread by a check that started after this call, shared with every read that
        arrived meanwhile (freshness.SharedCheck)."""
        if not self._remote:
            return self.projection.current()
        await self.head_check.wait()
        return self.projection.cached()

    async def _check_head(self) -> None:
        self.projection.advance(await asyncio.to_thread(self.log.head))

    def status_as_of(self, seq: int) -> Head:
        """The head as it was right after event `seq` (0: the empty log)."""
        if seq == 0:
            return Head()
        event = self.log.event(seq)
        if event is None:
            raise NotFound(f"there is no event {seq}; the log is at version {self.status().version}")
        return Head.after(event)

    def status_at(self, moment: datetime) -> Head:
        """The head as it was at `moment`: after the last event stamped at or before it."""
        return self.status_as_of(self.log.seq_at(format_timestamp(moment)))

    async def update(self, command: Command) -> Recorded:
        """Record `command` (group-committed); raise the DomainError that refused it."""
        outcome: Outcome = await self.writer.submit(command)
        if isinstance(outcome, DomainError):
            raise outcome
        return outcome

    def page(self, *, after: int, before: int | None, limit: int, descending: bool) -> list[Event]:
        """A page of events by keyset."""
        return self.log.page(after=after, before=before, limit=limit, descending=descending)

    def events_after(self, after: int, limit: int) -> list[Event]:
        """Up to `limit` events after `after`, for live tails: every tail woken by one commit asks
        the same question, so the answer is read once per version and shared."""
        version = self.projection.current().version
        if version != self._tail_version:
            self._tail_pages.clear()
            self._tail_version = version
        key = (after, limit)
        events = self._tail_pages.get(key)
        if events is None:
            events = self._tail_pages[key] = self.page(after=after, before=None, limit=limit,
                                                       descending=False)
        return events

    def event(self, seq: int) -> Event:
        """One event; NotFound if there is none at `seq`."""
        event = self.log.event(seq)
        if event is None:
            raise NotFound(f"there is no event {seq}")
        return event

    def readiness(self) -> Readiness:  # noqa: PLR0911 - one early answer per way of not being ready
        """Ready when the log is the one we opened, readable, writable and the projection current."""
        try:
            self.log.check()  # a real round trip, even when reads need none
            head = self.projection.current()
            if head.version != self.log.head().version:
                return Readiness(False, "the projection is behind the log", head.version)
        except (StoreError, StoreUnavailable) as e:  # the store's own words say what is wrong
            return Readiness(False, str(e), self.projection.cached().version)
        except OSError as e:
            return Readiness(False, f"the log cannot be read: {e}", self.projection.cached().version)
        except Exception as e:
            return Readiness(False, f"the log cannot be read: {type(e).__name__}",
                             self.projection.cached().version)
        if self.writer.last_failure is not None:
            # The last commit failed: only a write that goes through shows the log is back.
            try:
                self.log.probe_write(format_timestamp(datetime.now(UTC)))
            except StoreUnavailable:
                return Readiness(False, f"the last commit failed: {self.writer.last_failure}",
                                 head.version)
            self.writer.last_failure = None
        for check in self.readiness_checks:
            if (reason := check()) is not None:
                return Readiness(False, reason, head.version)
        return Readiness(True, "ready", head.version)

    # ---- the verifiable log: checkpoints and proofs (RFC 9162, C2SP) ------------------------------

    def checkpoint(self) -> str:
        """The current tree head as a signed C2SP checkpoint note (signed once per head)."""
        if self.checkpoints is None:
            raise CheckpointsDisabled(HOW_TO_ENABLE)
        return self.checkpoints.checkpoint(self.status().version, self.log.nodes)

    def _tree_size(self, size: int | None) -> int:
        current = self.status().version
        if size is None:
            return current
        if size > current:
            raise NotFound(f"there is no tree of size {size}: the log has {current} events")
        return size

    def inclusion_proof(self, seq: int, tree_size: int | None) -> tuple[int, list[bytes]]:
        """The tree size used and the RFC 9162 audit path of event `seq` in it."""
        size = self._tree_size(tree_size)
        if seq > size:
            if tree_size is None:
                raise NotFound(f"there is no event {seq}; the log has {size} events")
            raise InvalidProofRequest(f"event {seq} is not in the tree of size {size}")
        return size, merkle.inclusion_proof(seq - 1, size, self.log.nodes)

    def consistency_proof(self, first: int, second: int) -> list[bytes]:
        """The RFC 9162 proof that the tree of `first` events is a prefix of the tree of `second`."""
        if first > second:
            raise InvalidProofRequest(f"from ({first}) must not be larger than to ({second})")
        return merkle.consistency_proof(first, self._tree_size(second), self.log.nodes)
