"""The adapters of the storage port, and the one factory that picks one from the database setting.

A plain path or `sqlite:///path` opens the SQLite adapter; `postgresql://...` the PostgreSQL one
(installed with `pip install 'eventstate[postgresql]'`). Only composition code (the app factory and
the command line) calls `open_store`; everything else receives the store it returns.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from eventstate.ports import StoreError

if TYPE_CHECKING:
    from eventstate.ports import EventStore

POSTGRESQL_SCHEMES = ("postgresql://", "postgres://", "postgresql+psycopg://")


def is_postgresql(database: str | os.PathLike[str]) -> bool:
    """Whether the database setting names a PostgreSQL database."""
    return isinstance(database, str) and database.startswith(POSTGRESQL_SCHEMES)


def database_setting(value: str | os.PathLike[str]) -> Path | str:
    """The database setting normalised: a Path for SQLite, the URL as given for PostgreSQL."""
    if isinstance(value, Path):
        return value
    text = os.fspath(value)
    if is_postgresql(text):
        return text
    if text.startswith("sqlite:///"):
        return Path(text.removeprefix("sqlite:///"))
    if "://" in text:
        scheme = text.split("://", 1)[0]
        raise StoreError(f"unsupported database URL scheme {scheme!r}: use a file path, "
                         "sqlite:///PATH or postgresql://USER@HOST/DB")
    return Path(text)


def open_store(
    database: str | os.PathLike[str],
    *,
    create: bool = True,
    readonly: bool = False,
    synchronous: Literal["OFF", "NORMAL", "FULL", "EXTRA"] = "FULL",
    busy_timeout_ms: int = 5000,
    check_head: bool = True,
) -> EventStore:
    """Open the log named by `database`; raise StoreError (StoreNotInitialised) with a clear reason.

    `create` lets SQLite create its file; PostgreSQL never creates its schema here (`eventstate init`
    does). `check_head=False` opens a log whose recorded head disagrees with its events (for audits).
    """
    where = database_setting(database)
    if isinstance(where, str):
        from eventstate.adapters.postgresql import PostgresStore

        return PostgresStore.open(where, readonly=readonly, check_head=check_head)
    from eventstate.adapters.sqlite import SQLiteStore

    return SQLiteStore.open(where, create=create, readonly=readonly, synchronous=synchronous,
                            busy_timeout_ms=busy_timeout_ms, check_head=check_head)


def init_store(database: str | os.PathLike[str]) -> tuple[EventStore, bool]:
    """Create or upgrade the log's schema (idempotent); the open store and whether it was created."""
    where = database_setting(database)
    if isinstance(where, str):
        from eventstate.adapters.postgresql import PostgresStore

        return PostgresStore.init(where)
    from eventstate.adapters.sqlite import SQLiteStore

    existed = where.exists() and where.stat().st_size > 0
    return SQLiteStore.open(where), not existed
