"""The in-memory state, kept in step with the log.

The projection is the head of the log: the last event's new state, its version and timestamp. It is
read from the log at start-up (never from a second source of truth) and caught up whenever the store
says that anyone, in this process or another, may have committed since the last look (`changed`).
"""

from __future__ import annotations

from eventstate.domain import Head
from eventstate.ports import EventStore


class Projection:
    """The current head, refreshed from the log on demand and advanced by our own commits."""

    def __init__(self, log: EventStore, *, shared: bool = True) -> None:
        self._log = log
        self._shared = shared
        log.changed()  # prime: only commits after this point count as news
        self._head = log.head()

    def current(self) -> Head:
        """The head, caught up with every commit made to the log before this call.

        When this process is the log's only writer (`shared=False`), its own commits advance the
        head and there is nothing else to catch up with.
        """
        if self._shared and self._log.changed():
            self.advance(self._log.head())
        return self._head

    def cached(self) -> Head:
        """The head as last seen, without asking the log (for metrics and logs, not for answers)."""
        return self._head

    def advance(self, head: Head) -> None:
        """Move to `head` if it is newer; never back."""
        if head.version > self._head.version:
            self._head = head
