"""Every storage backend a test can run against, opened the same way.

`memory` and `sqlite` always run; `postgresql` needs a throwaway cluster (see `_postgres.py`) and
skips without the binaries unless EVENTSTATE_REQUIRE_POSTGRES=1.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
import pytest

from eventstate.adapters import open_store
from eventstate.adapters.memory import MemoryStore
from eventstate.ports import EventStore

BACKENDS = ["memory", "sqlite", "postgresql"]
DATABASE_BACKENDS = ["sqlite", "postgresql"]


@attrs.define
class Backend:
    """An open store, how to open another on the same log, and raw SQL around the adapter."""

    name: str
    database: str
    store: EventStore
    reopen: Callable[[], EventStore]
    raw: Callable[[str], Any] | None  # runs SQL directly on the database (None for memory)
    opened: list[EventStore] = attrs.Factory(list)


def _sqlite_raw(path: Path) -> Callable[[str], Any]:
    def run(sql: str) -> Any:
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()
    return run


def database_for(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database setting for a fresh, initialised, empty log on backend `name`."""
    if name == "sqlite":
        return str(tmp_path / "events.db")
    if name == "postgresql":
        from _postgres import fresh_database

        cluster = request.getfixturevalue("postgres_cluster")
        return fresh_database(cluster)
    raise ValueError(name)


@contextmanager
def open_backend(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Open a fresh log on backend `name`; everything opened is closed afterwards."""
    if name == "memory":
        store = MemoryStore()
        yield Backend(name, "memory", store, lambda: store, None)
        return
    database = database_for(name, request, tmp_path)
    opened: list[EventStore] = []

    def reopen() -> EventStore:
        s = open_store(database)
        opened.append(s)
        return s

    store = reopen()
    if name == "sqlite":
        raw: Callable[[str], Any] = _sqlite_raw(Path(database))
    else:
        from _postgres import raw_sql

        raw = raw_sql(database)
    try:
        yield Backend(name, database, store, reopen, raw, opened)
    finally:
        for s in opened:
            s.close()
