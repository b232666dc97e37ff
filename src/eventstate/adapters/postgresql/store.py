"""The PostgreSQL adapter of the storage port (SQLAlchemy Core over psycopg 3): one log, many instances.

- One global gapless `seq` without sequences: every append transaction first locks the single
  `log_head` row (`SELECT ... FOR UPDATE`, READ COMMITTED), so appends are serialised, commit in seq
  order, and a reader tailing by seq can never skip an event that commits late.
- The database refuses UPDATE, DELETE, TRUNCATE and gapped inserts itself (triggers in `schema.py`).
- A batch costs a few round trips: the head lock, one lookup per idempotency key, then the inserts
  (psycopg's pipelined `executemany`), the head update, NOTIFY and COMMIT.
- A connection lost during COMMIT leaves the outcome unknown to us: we reconnect and read back
  whether our last event is there before answering, and never guess.
- Freshness: every commit sends `NOTIFY eventstate_head`; a listener thread wakes waiters at once.
  A read that must be fresh (`changed`) still asks the database, because a notification can arrive
  after a client, acknowledged by another instance, asks this one.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from eventstate import merkle
from eventstate.adapters.postgresql.schema import (
    INIT_LOCK_KEY,
    NOTIFY_CHANNEL,
    SCHEMA_VERSION,
    TRIGGERS,
    head_table,
    meta_table,
    metadata,
)
from eventstate.domain import GENESIS_HASH, Event, Head, format_timestamp
from eventstate.ports import (
    EVENT_COLUMNS,
    StoreBusy,
    StoreConflict,
    StoreCorrupt,
    StoredKey,
    StoreError,
    StoreNotInitialised,
    StoreUnavailable,
    event_row,
    row_to_event,
)

log = logging.getLogger(__name__)

_COLUMNS = ", ".join(EVENT_COLUMNS)
_E_COLUMNS = ", ".join(f"e.{c}" for c in EVENT_COLUMNS)
_HEAD_SQL = f"SELECT {_E_COLUMNS} FROM log_head h JOIN events e ON e.seq = h.seq WHERE h.id = 1"  # noqa: S608
_INSERT_EVENTS = (
    f"INSERT INTO events ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s)"  # noqa: S608
)
_UPSERT_KEY = (
    "INSERT INTO idempotency_keys (key, fingerprint, seq, created_at) VALUES (%s, %s, %s, %s) "
    "ON CONFLICT (key) DO UPDATE SET fingerprint = excluded.fingerprint, seq = excluded.seq, "
    "created_at = excluded.created_at"
)
_INSERT_NODES = "INSERT INTO merkle_nodes (level, idx, hash) VALUES (%s, %s, %s)"


def tree_reader(fetch: Callable[[str, tuple[Any, ...]], Sequence[Any]]) -> merkle.NodeReader:
    """Tree nodes through `fetch(sql, params) -> rows`: stored levels from merkle_nodes in one
    statement, the lower ones recomputed from the events' hashes."""

    def stored(ids: Sequence[merkle.NodeId]) -> list[bytes]:
        rows = fetch("SELECT level, idx, hash FROM merkle_nodes WHERE (level, idx) IN "
                     "(SELECT * FROM unnest(%s::integer[], %s::bigint[]))",
                     ([level for level, _ in ids], [index for _, index in ids]))
        found = {(int(level), int(index)): bytes(value) for level, index, value in rows}
        missing = [node for node in ids if node not in found]
        if missing:
            raise StoreCorrupt(f"the Merkle tree has no node {missing[0]}: the log was altered "
                               "outside eventstate — run `eventstate verify`")
        return [found[node] for node in ids]

    def leaves(begin: int, end: int) -> list[bytes]:
        rows = fetch("SELECT hash FROM events WHERE seq > %s AND seq <= %s ORDER BY seq", (begin, end))
        return [merkle.event_leaf(row[0]) for row in rows]

    def read(ids: Sequence[merkle.NodeId]) -> list[bytes]:
        try:
            return list(merkle.combined_reader(stored, leaves)(ids))
        except LookupError as e:
            raise StoreCorrupt(f"{e}: the log was altered outside eventstate") from None

    return read


def _fetcher(conn: sa.Connection) -> Callable[[str, tuple[Any, ...]], Sequence[Any]]:
    return lambda sql, params: conn.exec_driver_sql(sql, params).fetchall()


# How long a writer waits for another instance's append (the head row lock) before giving up.
LOCK_TIMEOUT_MS = 5000
# How long a commit whose outcome was lost keeps trying to reconnect and read it back.
READ_BACK_SECONDS = 30.0


def _reason(error: BaseException) -> str:
    orig = getattr(error, "orig", None) or error
    text = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    return text


def _unavailable(error: BaseException) -> StoreUnavailable:
    text = _reason(error)
    if "lock timeout" in text or "could not obtain lock" in text:
        return StoreBusy("another instance held the log's write lock too long; the update was not recorded")
    return StoreUnavailable(f"the database is unavailable ({text}); the update was not recorded")


class PostgresTransaction:
    """One append transaction: holds the head row lock from `begin` until `commit` or `rollback`.

    It speaks to psycopg directly (on a connection from SQLAlchemy's pool) so that a batch can be
    pipelined: the lock and the head read go in one round trip, the inserts in another.
    """

    def __init__(self, store: PostgresStore, conn: sa.Connection) -> None:
        self._store = store
        self._conn = conn
        raw = conn.connection.driver_connection
        assert raw is not None
        self._raw: Any = raw
        self._appended: list[Event] = []
        self._pending_keys: dict[str, StoredKey] = {}
        self._expire_before: str | None = None
        # One round trip (a pipeline): lock the head row, then read the last event in a statement
        # of its own, whose snapshot (READ COMMITTED) is taken after the lock was granted. A join in
        # the locking statement would see the event row as it was before waiting for the lock, and
        # continue a stale head.
        with raw.pipeline(), raw.cursor() as lock, raw.cursor() as read:
            lock.execute(f"SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}")
            lock.execute("SELECT seq, hash FROM log_head WHERE id = 1 FOR UPDATE")
            read.execute(f"SELECT {_COLUMNS} FROM events WHERE seq = "  # noqa: S608
                         "(SELECT seq FROM log_head WHERE id = 1)")
            locked = lock.fetchone()
            last = read.fetchone()
        if locked is None:
            raise StoreNotInitialised(store.not_initialised())
        self.head = Head() if last is None else Head.after(row_to_event(last))
        if self.head.version != int(locked[0]):
            raise StoreError(f"{store.description}: the head row says seq {locked[0]} but the last "
                             f"event is seq {self.head.version}; run `eventstate verify`")
        self._base = self.head.version
        self._tree = merkle.TreeGrowth(store._edge, tree_reader(self._fetch))

    def _fetch(self, sql: str, params: tuple[Any, ...]) -> Sequence[Any]:
        with _translated():
            rows: Sequence[Any] = self._raw.execute(sql, params).fetchall()
        return rows

    def decided(self, key: str, *, not_before: str = "") -> StoredKey | None:
        """The live record of `key`: appended in this transaction, or committed at or after `not_before`."""
        pending = self._pending_keys.get(key)
        if pending is not None:
            return pending
        with _translated():
            row = self._raw.execute(
                "SELECT fingerprint, seq, created_at FROM idempotency_keys WHERE key = %s", (key,)
            ).fetchone()
        if row is None or row[2] < not_before:
            return None
        return StoredKey(row[0], int(row[1]), row[2])

    def event(self, seq: int) -> Event:
        """A committed or appended event by seq."""
        if seq > self._base:
            return self._appended[seq - self._base - 1]
        with _translated():
            row = self._raw.execute(
                f"SELECT {_COLUMNS} FROM events WHERE seq = %s", (seq,)  # noqa: S608
            ).fetchone()
        return row_to_event(row)

    def append(self, event: Event, key: str | None = None, fingerprint: str = "") -> None:
        """Queue `event` (and its key) for the commit."""
        self._appended.append(event)
        self._tree.add(event.seq, event.hash)
        if key is not None:
            self._pending_keys[key] = StoredKey(fingerprint, event.seq, event.timestamp)
        self.head = Head.after(event)

    def expire_keys_older_than(self, cutoff: datetime) -> None:
        """Forget keys created before `cutoff`, in this transaction."""
        self._expire_before = format_timestamp(cutoff)

    def commit(self) -> None:
        """Write everything in one pipeline and commit; find out the outcome of a lost COMMIT."""
        import psycopg

        try:
            with _translated():
                self._write()
            try:
                self._raw.commit()
            except psycopg.Error as e:
                if not self._appended:
                    raise _unavailable(e) from e
                # The COMMIT may or may not have happened: find out, never guess.
                if not self._store.committed(self._appended[-1]):
                    raise StoreUnavailable(
                        f"the database connection was lost during COMMIT ({_reason(e)}); "
                        "read back: the update was not recorded"
                    ) from e
                log.warning("connection lost during COMMIT; read back: the batch was recorded")
        except BaseException:
            self._abandon()
            raise
        if self._tree.edge is not None:
            self._store._edge = self._tree.edge
        self._close()

    def _write(self) -> None:
        raw = self._raw
        with raw.pipeline(), raw.cursor() as cur:
            if self._appended:
                cur.executemany(_INSERT_EVENTS, [event_row(e) for e in self._appended])
                if self._tree.rows:
                    cur.executemany(_INSERT_NODES, self._tree.rows)
                cur.execute("UPDATE log_head SET seq = %s, hash = %s WHERE id = 1",
                            (self.head.version, self.head.hash))
                cur.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, str(self.head.version)))
            if self._pending_keys:
                cur.executemany(_UPSERT_KEY, [
                    (key, k.fingerprint, k.seq, k.created_at) for key, k in self._pending_keys.items()
                ])
            if self._expire_before is not None:
                cur.execute("DELETE FROM idempotency_keys WHERE created_at < %s", (self._expire_before,))

    def rollback(self) -> None:
        """Write nothing."""
        self._abandon()

    def _abandon(self) -> None:
        with contextlib.suppress(Exception):
            self._raw.rollback()
        self._close()

    def _close(self) -> None:
        with contextlib.suppress(Exception):
            self._conn.close()


@contextmanager
def _translated() -> Iterator[None]:
    """psycopg's errors as the port's: a refused row is a conflict, anything else unavailability."""
    import psycopg

    try:
        yield
    except psycopg.IntegrityError as e:
        raise StoreConflict(f"the log refused the write: {_reason(e)}") from e
    except psycopg.Error as e:
        raise _unavailable(e) from e


class PostgresSnapshot:
    """One REPEATABLE READ, read-only transaction: every read sees the same committed state."""

    def __init__(self, conn: sa.Connection) -> None:
        self._conn = conn

    def rows(self, *, after: int = 0, until: int | None = None,
             batch: int = 4096) -> Iterator[tuple[Any, ...]]:
        """Rows in seq order, streamed with a server-side cursor."""
        result = self._conn.execution_options(stream_results=True, max_row_buffer=batch).execute(
            sa.text(f"SELECT {_COLUMNS} FROM events WHERE seq > :a AND seq <= :u ORDER BY seq"),  # noqa: S608
            {"a": after, "u": 2**63 - 1 if until is None else until},
        )
        for row in result:
            yield tuple(row)

    def events(self, *, after: int = 0, until: int | None = None) -> Iterator[Event]:
        """Events in seq order."""
        return map(row_to_event, self.rows(after=after, until=until))

    def event(self, seq: int) -> Event | None:
        """One event by seq."""
        row = self._conn.execute(
            sa.text(f"SELECT {_COLUMNS} FROM events WHERE seq = :s"), {"s": seq}  # noqa: S608
        ).first()
        return None if row is None else row_to_event(row)

    def max_seq(self) -> int:
        """The highest seq present."""
        return int(self._conn.execute(sa.text("SELECT COALESCE(MAX(seq), 0) FROM events")).scalar_one())

    def recorded_head(self) -> tuple[int, str]:
        """The head row."""
        row = self._conn.execute(sa.text("SELECT seq, hash FROM log_head WHERE id = 1")).first()
        return (0, GENESIS_HASH) if row is None else (int(row[0]), str(row[1]))

    def nodes(self, ids: Sequence[merkle.NodeId]) -> list[bytes]:
        """Merkle tree nodes of this snapshot's tree."""
        return list(tree_reader(_fetcher(self._conn))(ids))

    def seq_at(self, moment: str) -> int:
        """The last seq stamped at or before `moment`, by scanning."""
        return int(self._conn.execute(
            sa.text("SELECT COALESCE(MAX(seq), 0) FROM events WHERE timestamp <= :m"), {"m": moment}
        ).scalar_one())


class PostgresStore:
    """An event log in a PostgreSQL database, shared by any number of eventstate instances."""

    def __init__(self, url: str, engine: sa.Engine, *, readonly: bool) -> None:
        self.url = url
        self.description = sa.make_url(url).render_as_string(hide_password=True)
        self.remote = True
        self._engine = engine
        self._readonly = readonly
        self._listeners: list[Callable[[], None]] = []
        self._notified = 0
        self._stop = threading.Event()
        self._listener: threading.Thread | None = None
        self._closed = False
        self._edge: merkle.TreeEdge | None = None  # the tree's right edge after our last commit
        self._fresh: Any = None  # the connection `changed` asks on (psycopg, autocommit)
        self._fresh_lock = threading.Lock()
        self._seen_seq = -1

    # ---- opening -----------------------------------------------------------------------------

    @classmethod
    def open(cls, url: str, *, readonly: bool = False, check_head: bool = True) -> PostgresStore:
        """Open the log in the database at `url`; StoreNotInitialised if `eventstate init` never ran."""
        store = cls(url, _make_engine(url), readonly=readonly)
        try:
            store._check_schema(check_head=check_head)
        except BaseException:
            store.close()
            raise
        return store

    @classmethod
    def init(cls, url: str) -> tuple[PostgresStore, bool]:
        """Create or upgrade the schema, safely when several run at once; the store and whether it was new."""
        engine = _make_engine(url)
        try:
            with engine.begin() as conn:
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": INIT_LOCK_KEY})
                existed = sa.inspect(conn).has_table("eventstate_meta")
                if existed:
                    version = conn.execute(sa.text(
                        "SELECT value FROM eventstate_meta WHERE key = 'schema_version'")).scalar()
                    _check_not_newer(version)
                metadata.create_all(conn)
                for ddl in TRIGGERS:
                    conn.execute(sa.text(ddl))
                if existed and version is not None and int(version) < 2:
                    _build_tree(conn)
                import uuid

                conn.execute(pg_insert(meta_table).values(
                    [{"key": "schema_version", "value": str(SCHEMA_VERSION)},
                     {"key": "log_id", "value": str(uuid.uuid4())}]).on_conflict_do_nothing())
                conn.execute(sa.text(
                    "UPDATE eventstate_meta SET value = :v WHERE key = 'schema_version'"),
                    {"v": str(SCHEMA_VERSION)})
                conn.execute(pg_insert(head_table).values(id=1, seq=0, hash=GENESIS_HASH)
                             .on_conflict_do_nothing())
        except sa.exc.DBAPIError as e:
            engine.dispose()
            raise StoreError(f"cannot initialise {_hide(url)}: {_reason(e)}") from e
        except BaseException:
            engine.dispose()
            raise
        engine.dispose()
        return cls.open(url), not existed

    def not_initialised(self) -> str:
        """The one line that tells an operator what to do about a database without the log."""
        return (f"{self.description} holds no eventstate log; "
                f"run `eventstate init --database URL` first")

    def _check_schema(self, *, check_head: bool) -> None:
        try:
            with self._engine.connect() as conn:
                if not sa.inspect(conn).has_table("eventstate_meta"):
                    raise StoreNotInitialised(self.not_initialised())
                rows = conn.execute(sa.text("SELECT key, value FROM eventstate_meta"))
                meta: dict[str, str] = {str(k): str(v) for k, v in rows}
                recorded = conn.execute(sa.text("SELECT seq, hash FROM log_head WHERE id = 1")).first()
                last = conn.execute(sa.text(
                    f"SELECT {_COLUMNS} FROM events ORDER BY seq DESC LIMIT 1")).first()  # noqa: S608
        except sa.exc.DBAPIError as e:
            raise StoreError(f"cannot use database {self.description}: {_reason(e)}") from e
        version = int(meta.get("schema_version", "0"))
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.description} has schema version {version}, newer than this "
                             f"eventstate understands ({SCHEMA_VERSION}); upgrade eventstate")
        if version < SCHEMA_VERSION or recorded is None:
            raise StoreNotInitialised(self.not_initialised())
        self.log_id = meta.get("log_id", "")
        head = Head() if last is None else Head.after(row_to_event(last))
        if check_head and (int(recorded[0]), str(recorded[1])) != (head.version, head.hash):
            raise StoreError(
                f"{self.description}: the recorded head (seq {recorded[0]}) does not match the last "
                f"event (seq {head.version}); the log was altered outside eventstate "
                "— run `eventstate verify`"
            )

    # ---- writing -----------------------------------------------------------------------------

    def begin(self, *, wait: bool = True) -> PostgresTransaction:
        """Begin an append transaction (locks the head row). Without `wait`, raise StoreBusy at once:
        reaching a server database can always block, so callers on an event loop go to a thread."""
        if not wait:
            raise StoreBusy("a server database is only reached from a worker thread")
        if self._closed:
            raise StoreError(f"the log {self.description} is closed")
        if self._readonly:
            raise StoreError("this log was opened read-only")
        try:
            conn = self._engine.connect()
        except sa.exc.DBAPIError as e:
            raise _unavailable(e) from e
        try:
            with _translated():
                return PostgresTransaction(self, conn)
        except BaseException:
            with contextlib.suppress(Exception):
                conn.connection.driver_connection.rollback()  # type: ignore[union-attr]
            with contextlib.suppress(Exception):
                conn.close()
            raise

    @contextmanager
    def transaction(self) -> Iterator[PostgresTransaction]:
        """A transaction committed when the block ends without error."""
        tx = self.begin()
        try:
            yield tx
        except BaseException:
            tx.rollback()
            raise
        tx.commit()

    def committed(self, last: Event) -> bool:
        """Whether `last` is in the log: reconnect (for up to READ_BACK_SECONDS) and read it back.

        Raises StoreUnavailable, saying the outcome is unknown, if the database stays out of reach."""
        deadline = time.monotonic() + READ_BACK_SECONDS
        pause = 0.05
        while True:
            try:
                with self._engine.connect() as conn:
                    found = conn.execute(sa.text("SELECT hash FROM events WHERE seq = :s"),
                                         {"s": last.seq}).scalar()
            except sa.exc.DBAPIError as e:
                if time.monotonic() + pause > deadline:
                    raise StoreUnavailable(
                        "the database connection was lost during COMMIT and the database stayed "
                        f"unreachable ({_reason(e)}): the update may or may not have been recorded; "
                        "retry with the same Idempotency-Key to find out"
                    ) from e
                time.sleep(pause)
                pause = min(pause * 2, 1.0)
            else:
                return found == last.hash

    def probe_write(self, stamp: str) -> None:
        """Commit a tiny write to the meta table."""
        try:
            with self._engine.begin() as conn:
                conn.execute(pg_insert(meta_table).values(key="write_probe", value=stamp)
                             .on_conflict_do_update(index_elements=["key"], set_={"value": stamp}))
        except sa.exc.DBAPIError as e:
            raise _unavailable(e) from e

    def import_events(self, events: Iterator[Event]) -> int:
        """Append recorded events verbatim, all in one transaction (an empty log or nothing)."""
        count = 0
        with self.transaction() as tx:
            for event in events:
                tx.append(event)
                count += 1
        return count

    # ---- reading -----------------------------------------------------------------------------

    @contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        if self._closed:  # a disposed engine would quietly open a new pool: never after close
            raise StoreError(f"the log {self.description} is closed")
        try:
            with self._engine.connect() as conn:
                yield conn
        except sa.exc.DBAPIError as e:
            raise _unavailable(e) from e

    def changed(self) -> bool:
        """Whether the committed head moved since the last call: one round trip, always, because only
        a read made after the question was asked is sure to be fresh (a NOTIFY may still be on its
        way when a client acknowledged by another instance asks this one). It uses a connection held
        for this alone (autocommit, no pool checkout or pre-ping), so a fresh read costs one
        indexed single-row SELECT."""
        seq = self._committed_seq()
        if seq == self._seen_seq:
            return False
        self._seen_seq = seq
        return True

    def _committed_seq(self) -> int:
        row = self._on_held("SELECT seq FROM log_head WHERE id = 1")
        if row is None:
            raise StoreError(self.not_initialised())
        return int(row[0])

    def _on_held(self, sql: str) -> Any:
        """One row of `sql`, asked on the held autocommit connection: one round trip, reconnecting
        after a failure (reported as StoreUnavailable)."""
        import psycopg

        if self._closed:
            raise StoreError(f"the log {self.description} is closed")
        with self._fresh_lock:
            try:
                if self._fresh is None or self._fresh.closed:
                    self._fresh = psycopg.connect(self._conninfo(), autocommit=True, connect_timeout=5)
                return self._fresh.execute(sql).fetchone()
            except psycopg.Error as e:
                if self._fresh is not None:
                    with contextlib.suppress(Exception):
                        self._fresh.close()
                self._fresh = None
                raise _unavailable(e) from e

    def _conninfo(self) -> str:
        return sa.make_url(self.url).set(drivername="postgresql").render_as_string(hide_password=False)

    def head(self) -> Head:
        """The committed head (one indexed read, one round trip on the held connection)."""
        row = self._on_held(_HEAD_SQL)
        return Head() if row is None else Head.after(row_to_event(row))

    def event(self, seq: int) -> Event | None:
        """One committed event."""
        with self._read() as conn:
            row = conn.execute(
                sa.text(f"SELECT {_COLUMNS} FROM events WHERE seq = :s"), {"s": seq}  # noqa: S608
            ).first()
        return None if row is None else row_to_event(row)

    def page(self, *, after: int = 0, before: int | None = None, limit: int = 50,
             descending: bool = False) -> list[Event]:
        """Up to `limit` events by keyset."""
        order = "DESC" if descending else "ASC"
        with self._read() as conn:
            rows = conn.execute(sa.text(
                f"SELECT {_COLUMNS} FROM events WHERE seq > :a AND seq < :b "  # noqa: S608
                f"ORDER BY seq {order} LIMIT :n"),
                {"a": after, "b": 2**63 - 1 if before is None else before, "n": limit},
            ).all()
        return [row_to_event(r) for r in rows]

    def seq_at(self, moment: str) -> int:
        """The last seq stamped at or before `moment`; timestamps never decrease along seq, so the
        answer is the first event after `moment`, minus one (one indexed scan)."""
        with self._read() as conn:
            found = conn.execute(sa.text(
                "SELECT COALESCE(MAX(seq), 0) FROM events WHERE timestamp <= :m"), {"m": moment}
            ).scalar_one()
        return int(found)

    def nodes(self, ids: Sequence[merkle.NodeId]) -> list[bytes]:
        """Merkle tree nodes (immutable once written, so no snapshot is needed)."""
        with self._read() as conn:
            return list(tree_reader(_fetcher(conn))(ids))

    @contextmanager
    def snapshot(self) -> Iterator[PostgresSnapshot]:
        """A REPEATABLE READ, read-only view of the whole log."""
        with self._read() as conn:
            conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            yield PostgresSnapshot(conn)
            conn.rollback()

    def backup_to(self, dest: Path) -> None:
        """Copy the log, from one snapshot, into a new SQLite file at `dest`."""
        from eventstate.adapters.sqlite import SQLiteStore

        with self.snapshot() as snap:
            copy = SQLiteStore.open(dest)
            try:
                copy.import_events(snap.events())
            finally:
                copy.close()

    # ---- liveness and news -------------------------------------------------------------------

    def check(self) -> None:
        """One round trip; StoreError unless the log is reachable and still initialised."""
        try:
            with self._engine.connect() as conn:
                ok = conn.execute(sa.text("SELECT 1 FROM log_head WHERE id = 1")).scalar()
        except sa.exc.DBAPIError as e:
            raise StoreError(f"the database is unreachable: {_reason(e)}") from e
        if ok is None:
            raise StoreError(self.not_initialised())

    def on_news(self, callback: Callable[[], None]) -> bool:
        """Call `callback` (from a listener thread) whenever any instance commits (LISTEN/NOTIFY)."""
        self._listeners.append(callback)
        if self._listener is None:
            self._listener = threading.Thread(target=self._listen, name="eventstate-listen", daemon=True)
            self._listener.start()
        return True

    def _listen(self) -> None:
        import psycopg

        conninfo = self._conninfo()
        while not self._stop.is_set():
            try:
                with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    self._wake()  # whatever happened while we were not listening
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=0.5):
                            self._notified += 1
                            self._wake()
            except psycopg.Error:
                log.debug("listener lost its connection; reconnecting")
                self._stop.wait(0.5)

    def _wake(self) -> None:
        for callback in self._listeners:
            callback()

    def close(self) -> None:
        """Stop the listener and dispose of every pooled connection."""
        self._closed = True
        self._stop.set()
        if self._listener is not None:
            self._listener.join(timeout=5)
        with self._fresh_lock:
            if self._fresh is not None:
                self._fresh.close()
                self._fresh = None
        self._engine.dispose()


def _build_tree(conn: sa.Connection) -> None:
    """Store the Merkle tree of a log written before it existed (inside `init`'s transaction)."""
    edge = merkle.TreeEdge(0, [])
    result = conn.execution_options(stream_results=True).execute(
        sa.text("SELECT hash FROM events ORDER BY seq"))
    for rows in result.partitions(4096):
        stored = [node for row in rows for node in edge.push(merkle.event_leaf(row[0]))
                  if merkle.is_stored(node[0])]
        if stored:
            conn.exec_driver_sql(_INSERT_NODES, stored)


def _check_not_newer(version: str | None) -> None:
    if version is not None and int(version) > SCHEMA_VERSION:
        raise StoreError(f"the database has schema version {version}, newer than this "
                         f"eventstate understands ({SCHEMA_VERSION}); upgrade eventstate")


def _hide(url: str) -> str:
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "the database URL"


def _make_engine(url: str) -> sa.Engine:
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError as e:
        raise StoreError(f"not a database URL: {e}") from None
    parsed = parsed.set(drivername="postgresql+psycopg")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise StoreError(
            "PostgreSQL support is not installed: pip install 'eventstate[postgresql]'"
        ) from None
    return sa.create_engine(
        parsed,
        pool_size=4,
        max_overflow=8,
        pool_pre_ping=True,  # a connection from before a database restart is replaced, not used
        pool_timeout=5,
        connect_args={"connect_timeout": 5, "application_name": "eventstate"},
    )
