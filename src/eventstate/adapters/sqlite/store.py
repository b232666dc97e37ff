"""The SQLite adapter of the storage port, through SQLAlchemy Core: the embedded default.

Every SQLite specific (pragmas, `BEGIN IMMEDIATE`, triggers, `data_version`, file identity, the
server lock, probe writes, the backup API) stays in this package; the rest of eventstate sees only
`eventstate.ports`. Table definitions live in `schema.py` beside this module.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.pool import NullPool

from eventstate import merkle
from eventstate.adapters.sqlite import identity
from eventstate.adapters.sqlite.schema import (
    APPLICATION_ID,
    SCHEMA_VERSION,
    TRIGGERS,
    idempotency_table,
    merkle_nodes_table,
    meta_table,
    metadata,
)
from eventstate.domain import Event, Head, format_timestamp
from eventstate.ports import (
    StoreBusy,
    StoreConflict,
    StoreCorrupt,
    StoredKey,
    StoreError,
    StoreReplaced,
    StoreUnavailable,
    UnreadableValue,
    event_row,
    row_to_event,
)

SYNCHRONOUS_LEVELS = ("OFF", "NORMAL", "FULL", "EXTRA")
Synchronous = Literal["OFF", "NORMAL", "FULL", "EXTRA"]

_EVENT_COLUMNS = "seq, timestamp, old_counter, old_message, new_counter, new_message, hash"


# The names this module had before the storage port; kept for code written against them.
LogError = StoreError
LogUnavailable = StoreUnavailable
LogBusy = StoreBusy
LogReplaced = StoreReplaced


_INSERT_EVENTS = f"INSERT INTO events ({_EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"  # noqa: S608 - constant columns
_UPSERT_HEAD = (
    "INSERT INTO log_head (id, seq, hash) VALUES (1, ?, ?) "
    "ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash"
)


_UPSERT_KEY = (
    "INSERT INTO idempotency_keys (key, fingerprint, seq, created_at) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (key) DO UPDATE SET fingerprint = excluded.fingerprint, seq = excluded.seq, "
    "created_at = excluded.created_at"
)


_INSERT_NODES = "INSERT INTO merkle_nodes (level, idx, hash) VALUES (?, ?, ?)"
_SELECT_NODES = "SELECT level, idx, hash FROM merkle_nodes WHERE "
_NODES_PER_QUERY = 100
CHUNK_ROWS = 4096


def read_nodes(conn: sqlite3.Connection | sa.Connection,
               ids: Sequence[merkle.NodeId]) -> list[bytes]:
    """The hashes of these tree nodes, stored or recomputed from the events (`merkle.is_stored`),
    in order; StoreCorrupt if one is missing."""
    try:
        return list(merkle.combined_reader(lambda stored: _stored_nodes(conn, stored),
                                           lambda begin, end: _leaves(conn, begin, end))(ids))
    except LookupError as e:
        raise StoreCorrupt(f"{e}: the log was altered outside eventstate — run `eventstate verify`") from None


def _leaves(conn: sqlite3.Connection | sa.Connection, begin: int, end: int) -> list[bytes]:
    run = conn.exec_driver_sql if isinstance(conn, sa.Connection) else conn.execute
    rows = run("SELECT hash FROM events WHERE seq > ? AND seq <= ? ORDER BY seq", (begin, end))
    return [merkle.event_leaf(row[0]) for row in rows.fetchall()]


def _stored_nodes(conn: sqlite3.Connection | sa.Connection,
                  ids: Sequence[merkle.NodeId]) -> list[bytes]:
    run = conn.exec_driver_sql if isinstance(conn, sa.Connection) else conn.execute
    found: dict[tuple[int, int], bytes] = {}
    for first in range(0, len(ids), _NODES_PER_QUERY):
        chunk = ids[first:first + _NODES_PER_QUERY]
        # One statement per proof: SQLite answers an OR of primary-key lookups with one index
        # probe each (a row-value IN over VALUES would scan the table).
        sql = _SELECT_NODES + " OR ".join(["(level = ? AND idx = ?)"] * len(chunk))
        try:
            rows = run(sql, tuple(x for node in chunk for x in node)).fetchall()
        except (sqlite3.OperationalError, sa.exc.OperationalError) as e:
            if "no such table" not in str(e):
                raise
            raise StoreError("this log predates the Merkle tree (schema version 1); open it once "
                             "for writing (`eventstate serve`) to build the tree") from None
        found.update(((int(level), int(index)), bytes(value)) for level, index, value in rows)
    return [found[node] if node in found else _missing(node) for node in ids]


def _missing(node: merkle.NodeId) -> bytes:
    raise StoreCorrupt(f"the Merkle tree has no node {node}: the log was altered outside "
                       "eventstate — run `eventstate verify`")


def _describe(path: Path, error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error).splitlines()[0]
    if "not a database" in text or "malformed" in text:
        return f"{path} is not a valid SQLite database (corrupt or truncated): {text}"
    return f"cannot use database {path}: {text}"


class WriteTransaction:
    """One `BEGIN IMMEDIATE` transaction: the head as committed by anyone, and appends after it.

    It holds the log's write lock from `EventLog.begin` until `commit` or `rollback`, which may
    run on another thread than the one that began it (the group-commit writer flushes off-loop).
    """

    def __init__(self, conn: sa.Connection, trans: sa.RootTransaction,
                 release: Callable[[], None], edge: merkle.TreeEdge | None = None,
                 on_commit: Callable[[merkle.TreeEdge], None] | None = None) -> None:
        self._conn = conn
        self._trans = trans
        self._release = release
        self._tree = merkle.TreeGrowth(edge, lambda ids: read_nodes(conn, ids))
        self._on_commit = on_commit
        self._events: list[tuple[Any, ...]] = []
        self._appended: list[Event] = []
        self._pending_keys: dict[str, StoredKey] = {}
        row = conn.exec_driver_sql(
            f"SELECT {_EVENT_COLUMNS} FROM events ORDER BY seq DESC LIMIT 1"  # noqa: S608
        ).first()
        self.head = Head() if row is None else Head.after(row_to_event(row))
        self._base = self.head.version

    def decided(self, key: str, *, not_before: str = "") -> StoredKey | None:
        """The live record of `key`: appended in this transaction, or committed at or after `not_before`."""
        pending = self._pending_keys.get(key)
        if pending is not None:
            return pending
        row = self._conn.execute(
            sa.select(
                idempotency_table.c.fingerprint,
                idempotency_table.c.seq,
                idempotency_table.c.created_at,
            ).where(idempotency_table.c.key == key)
        ).first()
        if row is None or row[2] < not_before:
            return None
        return StoredKey(row[0], row[1], row[2])

    def event(self, seq: int) -> Event:
        """A committed or appended event by seq (for answering a replayed idempotent request)."""
        if seq > self._base:
            return self._appended[seq - self._base - 1]
        row = self._conn.exec_driver_sql(
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE seq = ?",  # noqa: S608
            (seq,),
        ).one()
        return row_to_event(row)

    def append(self, event: Event, key: str | None = None, fingerprint: str = "") -> None:
        """Queue `event` (and its idempotency key) for insertion when the transaction commits."""
        self._events.append(event_row(event))
        self._appended.append(event)
        self._tree.add(event.seq, event.hash)
        if key is not None:
            # An expired record of the same key is replaced at commit, never deleted beforehand.
            self._pending_keys[key] = StoredKey(fingerprint, event.seq, event.timestamp)
        self.head = Head.after(event)

    def expire_keys_older_than(self, cutoff: datetime) -> None:
        """Delete idempotency keys created before `cutoff`."""
        self._conn.execute(
            idempotency_table.delete().where(idempotency_table.c.created_at < format_timestamp(cutoff))
        )

    def commit(self) -> None:
        """Insert what was appended and commit (the flush `synchronous` asks for happens here)."""
        try:
            # The hot path of every commit: plain statements, no per-batch SQL construction.
            if self._events:
                self._conn.exec_driver_sql(_INSERT_EVENTS, self._events)
                if self._tree.rows:
                    self._conn.exec_driver_sql(_INSERT_NODES, self._tree.rows)
                self._conn.exec_driver_sql(_UPSERT_HEAD, (self.head.version, self.head.hash))
            if self._pending_keys:
                self._conn.exec_driver_sql(_UPSERT_KEY, [
                    (key, k.fingerprint, k.seq, k.created_at) for key, k in self._pending_keys.items()
                ])
            self._trans.commit()
        except sa.exc.IntegrityError as e:
            self._abandon()
            raise StoreConflict(f"the log refused the write: {e.orig}") from e
        except sa.exc.OperationalError as e:
            self._abandon()
            raise StoreUnavailable(_unavailable_reason(e)) from e
        except BaseException:
            self._abandon()
            raise
        if self._on_commit is not None and self._tree.edge is not None:
            self._on_commit(self._tree.edge)
        self._release()

    def rollback(self) -> None:
        """Write nothing of this transaction."""
        self._abandon()

    def _abandon(self) -> None:
        try:
            # After a failed COMMIT the transaction is inactive but still open on the connection;
            # rolling the connection back clears it, so the next begin() starts clean.
            _close_transaction(self._conn)
        finally:
            self._release()


class SQLiteStore:
    """An open event log: a writer connection and a reader connection on one SQLite file."""

    def __init__(self, path: Path, engine: sa.Engine, *, readonly: bool,
                 busy_timeout_ms: int = 5000) -> None:
        self.path = path
        self.description = str(path)
        self.remote = False
        self._busy_timeout_s = busy_timeout_ms / 1000
        self._engine = engine
        self._readonly = readonly
        self._reader = engine.connect()
        self._writer: sa.Connection | None = None
        self._write_lock = threading.Lock()
        self._reader_lock = threading.Lock()
        self._identity = self._file_identity()
        raw = self._reader.connection.driver_connection
        assert isinstance(raw, sqlite3.Connection)
        self._raw_reader: sqlite3.Connection = raw
        self._data_version = -1
        self._edge: merkle.TreeEdge | None = None  # the tree's right edge after our last commit

    # ---- opening -----------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        create: bool = True,
        readonly: bool = False,
        synchronous: Synchronous = "FULL",
        busy_timeout_ms: int = 5000,
        check_head: bool = True,
    ) -> SQLiteStore:
        """Open (and with `create`, initialise) the log at `path`; raise StoreError with a clear reason."""
        path = Path(path)
        if not path.parent.is_dir():
            raise StoreError(f"directory {path.parent} does not exist")
        if path.is_dir():
            raise StoreError(f"{path} is a directory, not a database file")
        identity.check_before_open(path)  # before SQLite can drop, misapply or touch anything
        exists = path.exists()
        if not exists and (readonly or not create):
            raise StoreError(f"database {path} does not exist")
        if exists and not os.access(path, os.R_OK):
            raise StoreError(f"database {path} is not readable by this user")
        if not readonly and not os.access(path.parent, os.W_OK):
            raise StoreError(
                f"directory {path.parent} is not writable by this user (uid {os.getuid()}); "
                "the log needs to create its -wal and -shm files there"
            )
        if not readonly and exists and not os.access(path, os.W_OK):
            raise StoreError(f"database {path} is not writable by this user (uid {os.getuid()})")
        if not exists:
            try:
                sqlite3.connect(path).close()  # the one place a log file is created
            except sqlite3.Error as e:
                raise StoreError(_describe(path, e)) from e
        engine = _make_engine(path, readonly=readonly, synchronous=synchronous,
                              busy_timeout_ms=busy_timeout_ms)
        log: SQLiteStore | None = None
        try:
            log = cls(path, engine, readonly=readonly, busy_timeout_ms=busy_timeout_ms)
            log._prepare(create=not readonly, check_head=check_head)
        except BaseException as e:
            if log is not None:
                log.close()  # closes the connections too, not only the engine
            else:
                engine.dispose()
            if isinstance(e, (sa.exc.DBAPIError, sqlite3.Error)):
                raise StoreError(_describe(path, e)) from e
            raise
        return log

    def _prepare(self, *, create: bool, check_head: bool) -> None:
        raw = self._raw_reader
        tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "eventstate_meta" not in tables:
            if tables:
                raise StoreError(f"{self.path} is a SQLite database but not an eventstate log")
            if not create:
                raise StoreError(f"{self.path} is empty: no eventstate log has been written to it")
            raw.execute("PRAGMA journal_mode=WAL")  # persistent; must run outside a transaction
            self._create_schema()
        else:
            version = self._check_version()
            if create:
                raw.execute("PRAGMA journal_mode=WAL")
                if version < SCHEMA_VERSION:
                    self._upgrade()
        if check_head:  # audits open a mismatched log anyway: reporting it is their job
            self._check_head()
        if create:
            self._record_identity()

    def _record_identity(self) -> None:
        """Tag the log (once) in its header, make sure the tag is in the file itself and not
        only in the WAL, and record which file the WAL that this process writes belongs to."""
        raw = self._raw_reader
        tag = int(raw.execute("PRAGMA user_version").fetchone()[0])
        if tag == 0:
            with self._write() as conn:  # under the write lock: two workers agree on one tag
                if not conn.exec_driver_sql("PRAGMA user_version").scalar_one():
                    conn.exec_driver_sql(f"PRAGMA user_version={identity.new_tag()}")
            tag = int(raw.execute("PRAGMA user_version").fetchone()[0])
        if identity.header_tag(identity.read_header(self.path)) != tag:
            raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        identity.record(self.path, tag)

    def _create_schema(self) -> None:
        with self._write() as conn:
            conn.exec_driver_sql(f"PRAGMA application_id={APPLICATION_ID}")
            metadata.create_all(conn)
            for ddl in TRIGGERS:
                conn.exec_driver_sql(ddl)
            conn.execute(
                sqlite_insert(meta_table)
                .values(key="schema_version", value=str(SCHEMA_VERSION))
                .on_conflict_do_nothing()
            )

    def _check_version(self) -> int:
        row = self._raw_reader.execute(
            "SELECT value FROM eventstate_meta WHERE key='schema_version'"
        ).fetchone()
        version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has schema version {version}, newer than this eventstate "
                f"understands ({SCHEMA_VERSION}); upgrade eventstate to open it"
            )
        if version < 1:
            raise StoreError(f"{self.path} has no valid eventstate schema version")
        return version

    def _upgrade(self) -> None:
        """Bring a version-1 log to version 2: build the Merkle tree over the events already there,
        in one transaction, so a log is never seen with half a tree."""
        with self._write() as conn:
            version = int(conn.exec_driver_sql(
                "SELECT value FROM eventstate_meta WHERE key='schema_version'").scalar_one())
            if version >= SCHEMA_VERSION:
                return  # another process upgraded it while we waited for the lock
            merkle_nodes_table.create(conn, checkfirst=True)
            for ddl in TRIGGERS:
                conn.exec_driver_sql(ddl)
            edge = merkle.TreeEdge(0, [])
            cursor = conn.exec_driver_sql("SELECT hash FROM events ORDER BY seq")
            while rows := cursor.fetchmany(CHUNK_ROWS):
                stored = [node for row in rows for node in edge.push(merkle.event_leaf(row[0]))
                          if merkle.is_stored(node[0])]
                if stored:
                    conn.exec_driver_sql(_INSERT_NODES, stored)
            conn.exec_driver_sql("UPDATE eventstate_meta SET value = ? WHERE key = 'schema_version'",
                                 (str(SCHEMA_VERSION),))

    def _check_head(self) -> None:
        with self._reader_lock:
            self._raw_reader.execute("BEGIN")
            try:
                row = self._raw_reader.execute(
                    f"SELECT {_EVENT_COLUMNS} FROM events ORDER BY seq DESC LIMIT 1"  # noqa: S608
                ).fetchone()
                recorded = self.recorded_head()
            finally:
                self._raw_reader.execute("COMMIT")
        last = Head() if row is None else Head.after(row_to_event(row))
        if recorded != (last.version, last.hash):
            raise StoreError(
                f"{self.path}: the recorded head (seq {recorded[0]}) does not match the last event "
                f"(seq {last.version}); the log was altered outside eventstate — run `eventstate verify`"
            )

    # ---- writing -----------------------------------------------------------------------------

    def _writer_connection(self) -> sa.Connection:
        if self._writer is None:
            self.ensure_same_file()  # never connect to whatever now sits at the path
            conn = self._engine.connect()
            conn.info["begin"] = "BEGIN IMMEDIATE"
            # The writer never sleeps inside SQLite: `begin` retries by itself, so that a caller
            # can first try without waiting (on an event loop) and only then wait (on a thread).
            raw = conn.connection.driver_connection
            assert raw is not None
            raw.execute("PRAGMA busy_timeout = 0")  # on the driver: no SQLAlchemy autobegin
            self._writer = conn
        return self._writer

    @contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        with self._write_lock:
            conn = self._writer_connection()
            with conn.begin():
                yield conn

    def begin(self, *, wait: bool = True) -> WriteTransaction:
        """Begin a write transaction. With `wait`, retry for up to the busy timeout while another
        process holds the write lock; without it, raise StoreBusy at once."""
        deadline = time.monotonic() + self._busy_timeout_s
        pause = 0.001
        while True:
            try:
                return self._begin_once(block=wait)
            except StoreBusy:
                left = deadline - time.monotonic()
                if not wait or left <= 0:
                    raise
                time.sleep(min(pause, left))
                pause = min(pause * 2, 0.05)

    def _begin_once(self, *, block: bool) -> WriteTransaction:
        if self._readonly:
            raise StoreError("this log was opened read-only")
        if not self._write_lock.acquire(blocking=block):
            raise StoreBusy("the writer connection is in use")
        conn: sa.Connection | None = None
        try:
            conn = self._writer_connection()
            self.ensure_same_file()
            return WriteTransaction(conn, conn.begin(), self._write_lock.release, self._edge,
                                    self._remember_edge)
        except BaseException as e:
            # A BEGIN that failed halfway still leaves SQLAlchemy's transaction open: clear it.
            if conn is not None:
                _close_transaction(conn)
            self._write_lock.release()
            if isinstance(e, sa.exc.OperationalError):
                if "locked" in str(e.orig) or "busy" in str(e.orig):
                    raise StoreBusy(_unavailable_reason(e)) from e
                raise StoreUnavailable(_unavailable_reason(e)) from e
            raise

    @contextmanager
    def transaction(self) -> Iterator[WriteTransaction]:
        """A write transaction; its appends commit (with one flush) when the block ends without error."""
        tx = self.begin()
        try:
            yield tx
        except BaseException:
            tx.rollback()
            raise
        tx.commit()

    def probe_write(self, stamp: str) -> None:
        """Commit a tiny write outside the event table, to learn whether the file takes writes
        (a filesystem the kernel turned read-only keeps its permission bits)."""
        try:
            with self._write() as conn:
                conn.exec_driver_sql(
                    "INSERT INTO eventstate_meta (key, value) VALUES ('write_probe', ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (stamp,)
                )
        except (sa.exc.DBAPIError, sqlite3.Error) as e:
            raise StoreUnavailable(_describe(self.path, e)) from e

    def import_events(self, events: Iterator[Event], batch: int = 5000) -> int:
        """Append already-recorded events verbatim (for `import`); the caller checks the chain."""
        count = 0
        chunk: list[Event] = []
        for event in events:
            chunk.append(event)
            if len(chunk) >= batch:
                count += self._append_verbatim(chunk)
                chunk = []
        if chunk:
            count += self._append_verbatim(chunk)
        return count

    def _append_verbatim(self, chunk: list[Event]) -> int:
        with self.transaction() as tx:
            for event in chunk:
                tx.append(event)
        return len(chunk)

    # ---- reading -----------------------------------------------------------------------------

    def data_version(self) -> int:
        """SQLite's `data_version`: changes whenever another connection (any process) commits."""
        with self._reader_lock:
            return int(self._raw_reader.execute("PRAGMA data_version").fetchone()[0])

    def changed(self) -> bool:
        """Whether anything was committed to the file since the last call (cheap; for freshness)."""
        version = self.data_version()
        if version == self._data_version:
            return False
        self._data_version = version
        return True

    def on_news(self, callback: Callable[[], None]) -> bool:
        """No pushed news here: callers poll `changed`."""
        del callback
        return False

    def head(self) -> Head:
        """The head of the log as committed now."""
        with self._reader_lock:
            row = self._raw_reader.execute(
                f"SELECT {_EVENT_COLUMNS} FROM events ORDER BY seq DESC LIMIT 1"  # noqa: S608
            ).fetchone()
        return Head() if row is None else Head.after(row_to_event(row))

    def event(self, seq: int) -> Event | None:
        """One event by seq, or None."""
        with self._reader_lock:
            row = self._raw_reader.execute(
                f"SELECT {_EVENT_COLUMNS} FROM events WHERE seq = ?", (seq,)  # noqa: S608
            ).fetchone()
        return None if row is None else row_to_event(row)

    def page(self, *, after: int = 0, before: int | None = None, limit: int = 50,
             descending: bool = False) -> list[Event]:
        """Up to `limit` events by keyset: seq > after (ascending) or seq < before (descending)."""
        if descending:
            bound = before if before is not None else 2**63 - 1
            sql = f"SELECT {_EVENT_COLUMNS} FROM events WHERE seq < ? AND seq > ? ORDER BY seq DESC LIMIT ?"  # noqa: S608
            args: tuple[int, ...] = (bound, after, limit)
        else:
            sql = f"SELECT {_EVENT_COLUMNS} FROM events WHERE seq > ? AND seq < ? ORDER BY seq LIMIT ?"  # noqa: S608
            args = (after, before if before is not None else 2**63 - 1, limit)
        with self._reader_lock:
            rows = self._raw_reader.execute(sql, args).fetchall()
        return [row_to_event(r) for r in rows]

    def seq_at(self, moment: str) -> int:
        """The seq of the last event stamped at or before `moment` (0 if none), by binary search:
        timestamps never decrease along seq, so no index on them is needed."""
        with self._reader_lock:
            raw = self._raw_reader
            raw.execute("BEGIN")
            try:
                lo, hi = 0, int(raw.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0])
                while lo < hi:  # invariant: events 1..lo are at or before `moment`, hi+1.. after it
                    mid = (lo + hi + 1) // 2
                    stamp = raw.execute("SELECT timestamp FROM events WHERE seq = ?", (mid,)).fetchone()[0]
                    if stamp <= moment:
                        lo = mid
                    else:
                        hi = mid - 1
            finally:
                raw.execute("COMMIT")
        return lo

    def _remember_edge(self, edge: merkle.TreeEdge) -> None:
        self._edge = edge

    def nodes(self, ids: Sequence[merkle.NodeId]) -> list[bytes]:
        """Merkle tree nodes (a `merkle.NodeReader`). A node never changes once written, so reads
        for a size up to any committed head need no common snapshot."""
        with self._reader_lock, _damage():
            return read_nodes(self._raw_reader, ids)

    def recorded_head(self, conn: sqlite3.Connection | None = None) -> tuple[int, str]:
        """The head as written beside the events (seq, hash); (0, genesis) for a fresh log."""
        raw = conn or self._raw_reader
        row = raw.execute("SELECT seq, hash FROM log_head WHERE id=1").fetchone()
        return (0, Head().hash) if row is None else (int(row[0]), str(row[1]))

    @contextmanager
    def snapshot(self) -> Iterator[Snapshot]:
        """A consistent read-only view of the whole log for audits, safe while a server writes."""
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, isolation_level=None,
                               check_same_thread=False)
        try:
            conn.execute("BEGIN")
            yield Snapshot(conn, self)
        finally:
            conn.close()

    def backup_to(self, dest: Path) -> None:
        """Copy the live database to `dest` with SQLite's online backup API, in one step: a copy
        made in several steps restarts whenever a writer commits, and may never finish."""
        try:
            with closing(sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)) as source, \
                    closing(sqlite3.connect(dest)) as target:
                source.backup(target, pages=-1)
                # One self-contained file: the copy's WAL folded in and rollback-journal mode, so
                # no -wal/-shm is left beside it (a server opening it switches back to WAL).
                target.execute("PRAGMA journal_mode=DELETE").fetchall()
        except sqlite3.Error as e:
            raise StoreError(f"cannot write the backup to {dest}: {e}") from None

    # ---- liveness ----------------------------------------------------------------------------

    def _file_identity(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_dev, st.st_ino)

    def ensure_same_file(self) -> None:
        """Raise StoreReplaced if the file at our path is gone or is no longer the one we opened."""
        if self._file_identity() != self._identity:
            raise StoreReplaced(
                f"database {self.path} was deleted or replaced while the server was running"
            )

    def check(self) -> None:
        """Raise StoreReplaced/StoreError unless the file is the one opened, readable and writable."""
        self.ensure_same_file()
        try:
            self.data_version()  # a real read of the file, even when reads need none
        except sqlite3.Error as e:
            raise StoreError(f"the log cannot be read: {e}") from e
        if not self.writable():
            raise StoreError("the database is not writable")

    def writable(self) -> bool:
        """Whether a write transaction could begin now (file and directory writable)."""
        return os.access(self.path, os.W_OK) and os.access(self.path.parent, os.W_OK)

    def close(self) -> None:
        """Close both connections and dispose of the engine."""
        with self._write_lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
        with self._reader_lock:
            self._reader.close()
        self._engine.dispose()


class ServerLock:
    """An exclusive advisory lock on `<database>.lock`, held by the one server serving a log.

    A single-process server that holds it knows no other process appends, so its projection can
    trust its own commits without asking SQLite for news on every read.
    """

    def __init__(self, database: Path) -> None:
        import fcntl

        self.path = database.with_name(database.name + ".lock")
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise StoreError(
                f"another eventstate server is already serving {database}; "
                "use --workers to serve one log from several processes"
            ) from None

    def release(self) -> None:
        """Let another server take the log."""
        os.close(self._fd)


class Snapshot:
    """One read transaction over the log: every read sees the same committed state.

    SQLite's complaints about a damaged file come out as StoreCorrupt (UnreadableValue for text
    that does not decode), so that audits can report them without knowing SQLite."""

    def __init__(self, conn: sqlite3.Connection, log: SQLiteStore) -> None:
        self._conn = conn
        self._log = log

    def rows(self, *, after: int = 0, until: int | None = None,
             batch: int = 4096) -> Iterator[tuple[Any, ...]]:
        """Raw event rows in seq order, streamed in constant memory."""
        with _damage():
            cursor = self._conn.execute(
                f"SELECT {_EVENT_COLUMNS} FROM events WHERE seq > ? AND seq <= ? ORDER BY seq",  # noqa: S608
                (after, 2**63 - 1 if until is None else until),
            )
        while True:
            with _damage():
                chunk = cursor.fetchmany(batch)
            if not chunk:
                return
            yield from chunk

    def events(self, *, after: int = 0, until: int | None = None) -> Iterator[Event]:
        """Events in seq order, streamed in constant memory."""
        return map(row_to_event, self.rows(after=after, until=until))

    def event(self, seq: int) -> Event | None:
        """One event by seq in this snapshot."""
        with _damage():
            row = self._conn.execute(
                f"SELECT {_EVENT_COLUMNS} FROM events WHERE seq = ?", (seq,)  # noqa: S608
            ).fetchone()
        return None if row is None else row_to_event(row)

    def max_seq(self) -> int:
        """The highest seq present (0 when empty)."""
        with _damage():
            return int(self._conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0])

    def nodes(self, ids: Sequence[merkle.NodeId]) -> list[bytes]:
        """Merkle tree nodes in this snapshot (a `merkle.NodeReader`)."""
        with _damage():
            return read_nodes(self._conn, ids)

    def recorded_head(self) -> tuple[int, str]:
        """The head written beside the events in this snapshot."""
        with _damage():
            return self._log.recorded_head(self._conn)

    def seq_at(self, moment: str) -> int:
        """The seq of the last event whose timestamp is at or before `moment` (0 if none).

        Unlike `EventLog.seq_at` (a binary search for the server), this scans: an audit must not
        assume the timestamps are in order, since that is one of the things it checks."""
        with _damage():
            row = self._conn.execute(
                "SELECT COALESCE(MAX(seq), 0) FROM events WHERE timestamp <= ?", (moment,)
            ).fetchone()
        return int(row[0])


@contextmanager
def _damage() -> Iterator[None]:
    """Turn SQLite's errors about a damaged or altered file into the port's StoreCorrupt."""
    try:
        yield
    except sqlite3.OperationalError as e:
        if "decode" in str(e):
            raise UnreadableValue(f"a column is not valid text ({e})") from e
        raise StoreCorrupt(f"{e} (a damaged file, or tables altered outside eventstate)") from e
    except sqlite3.DatabaseError as e:
        raise StoreCorrupt(f"{e} (a damaged file, or tables altered outside eventstate)") from e


def _close_transaction(conn: sa.Connection) -> None:
    """Roll back whatever transaction the connection holds, also one a failed COMMIT left
    inactive but open (which `in_transaction()` does not report)."""
    trans = conn.get_transaction()
    if trans is not None:
        trans.rollback()


def _unavailable_reason(error: sa.exc.OperationalError) -> str:
    text = str(error.orig)
    if "full" in text:
        return "the disk is full; the update was not recorded"
    if "readonly" in text or "read-only" in text:
        return "the database is read-only; the update was not recorded"
    if "locked" in text or "busy" in text:
        return "the database stayed locked by another writer; the update was not recorded"
    return f"the database refused the write ({text}); the update was not recorded"


def _make_engine(path: Path, *, readonly: bool, synchronous: Synchronous,
                 busy_timeout_ms: int) -> sa.Engine:
    if synchronous not in SYNCHRONOUS_LEVELS:
        raise StoreError(f"synchronous must be one of {', '.join(SYNCHRONOUS_LEVELS)}")
    # mode=rw, never rwc: a connection opened later (after the file was deleted or moved away)
    # fails instead of silently creating a new, empty log at the path.
    url = f"sqlite:///file:{path}?mode={'ro' if readonly else 'rw'}&uri=true"
    engine = sa.create_engine(
        url,
        poolclass=NullPool,
        connect_args={"check_same_thread": False, "timeout": busy_timeout_ms / 1000},
    )

    @sa_event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        # Leave transaction control to us (the driver's implicit BEGIN is not IMMEDIATE).
        dbapi_connection.isolation_level = None
        dbapi_connection.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        if not readonly:
            dbapi_connection.execute(f"PRAGMA synchronous={synchronous}")

    @sa_event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql(conn.info.get("begin", "BEGIN"))

    return engine



EventLog = SQLiteStore  # the name before the storage port
