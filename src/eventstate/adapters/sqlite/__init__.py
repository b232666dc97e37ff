"""The SQLite adapter: one file on one host, the embedded default."""

from eventstate.adapters.sqlite.store import (
    SYNCHRONOUS_LEVELS,
    ServerLock,
    Snapshot,
    SQLiteStore,
    Synchronous,
    WriteTransaction,
)

__all__ = ["SYNCHRONOUS_LEVELS", "SQLiteStore", "ServerLock", "Snapshot", "Synchronous", "WriteTransaction"]
