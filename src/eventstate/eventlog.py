"""The names of the SQLite log before the storage port, for code written against them.

New code types against `eventstate.ports` and opens a store with `eventstate.adapters.open_store`.
"""

from eventstate.adapters.sqlite.store import (
    SYNCHRONOUS_LEVELS,
    EventLog,
    LogBusy,
    LogError,
    LogReplaced,
    LogUnavailable,
    ServerLock,
    Snapshot,
    Synchronous,
    WriteTransaction,
)
from eventstate.ports import StoredKey, row_to_event

__all__ = [
    "SYNCHRONOUS_LEVELS", "EventLog", "LogBusy", "LogError", "LogReplaced", "LogUnavailable",
    "ServerLock", "Snapshot", "StoredKey", "Synchronous", "WriteTransaction", "row_to_event",
]
