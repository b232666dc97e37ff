"""The application service: what the HTTP edge can ask of eventstate, one method per use case."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import attrs

from eventstate.commands import Command, Outcome, Recorded
from eventstate.domain import DomainError, Event, Head, format_timestamp
from eventstate.eventlog import EventLog, LogError, LogReplaced, LogUnavailable
from eventstate.projection import Projection
from eventstate.writer import BatchStats, GroupCommitWriter


class NotFound(LookupError):
    """The requested event or version does not exist."""


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
        log: EventLog,
        *,
        max_batch: int,
        max_pending: int,
        key_ttl: timedelta,
        shared: bool = True,
        on_batch: Callable[[BatchStats], None] | None = None,
    ) -> None:
        self.log = log
        #: Further conditions for readiness (e.g. replication); each returns why not, or None.
        self.readiness_checks: list[Callable[[], str | None]] = []
        self.projection = Projection(log, shared=shared)
        self._shared = shared
        self._changed = asyncio.Event()
        self.writer = GroupCommitWriter(
            log, self._committed, max_batch=max_batch, max_pending=max_pending,
            key_ttl=key_ttl, on_batch=on_batch,
        )

    def _committed(self, head: Head) -> None:
        self.projection.advance(head)
        self._changed.set()  # wake every tail waiting for news, then arm a fresh event
        self._changed = asyncio.Event()

    async def wait_past(self, version: int, timeout: float) -> bool:  # noqa: ASYNC109 - a poll with a deadline
        """Wait until the log is past `version` or `timeout` passes; whether it moved on.

        Our own commits wake waiters at once; other workers' commits are noticed by polling the
        log's `data_version` a few times a second.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.projection.current().version <= version:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(),
                                       min(remaining, 0.25) if self._shared else remaining)
        return True

    def lag(self) -> int:
        """Events in the log that this process's projection has not seen yet."""
        return self.log.head().version - self.projection.cached().version

    def start(self) -> None:
        """Start the writer (inside the running event loop)."""
        self.writer.start()

    async def stop(self) -> None:
        """Write what is queued, stop the writer and close the log."""
        await self.writer.stop()
        self.log.close()

    def status(self) -> Head:
        """The current head, fresh with respect to every commit acknowledged before this call."""
        return self.projection.current()

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

    def event(self, seq: int) -> Event:
        """One event; NotFound if there is none at `seq`."""
        event = self.log.event(seq)
        if event is None:
            raise NotFound(f"there is no event {seq}")
        return event

    def readiness(self) -> Readiness:  # noqa: PLR0911 - one early answer per way of not being ready
        """Ready when the log file is the one we opened, readable, writable and the projection current."""
        try:
            self.log.ensure_same_file()
            self.log.data_version()  # a real read of the file, even when reads need none
            head = self.projection.current()
            if head.version != self.log.head().version:
                return Readiness(False, "the projection is behind the log", head.version)
        except LogReplaced as e:
            return Readiness(False, str(e), self.projection.cached().version)
        except (LogError, OSError) as e:
            return Readiness(False, f"the log cannot be read: {e}", self.projection.cached().version)
        except Exception as e:
            return Readiness(False, f"the log cannot be read: {type(e).__name__}",
                             self.projection.cached().version)
        if not self.log.writable():
            return Readiness(False, "the database is not writable", head.version)
        if self.writer.last_failure is not None:
            # The last commit failed: only a write that goes through shows the log is back.
            try:
                self.log.probe_write(format_timestamp(datetime.now(UTC)))
            except LogUnavailable:
                return Readiness(False, f"the last commit failed: {self.writer.last_failure}",
                                 head.version)
            self.writer.last_failure = None
        for check in self.readiness_checks:
            if (reason := check()) is not None:
                return Readiness(False, reason, head.version)
        return Readiness(True, "ready", head.version)
