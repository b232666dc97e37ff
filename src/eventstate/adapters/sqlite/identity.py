"""Which file a log is, checked from the bytes on disk before SQLite opens anything.

SQLite ties a `-wal` file to its database by name only: the WAL header (magic, format, page size,
checkpoint sequence, salt-1, salt-2, checksum; https://www.sqlite.org/fileformat2.html#walformat)
says nothing about which database it was written for. So if the database is deleted while a
server runs, opening the path again creates an empty database and drops the WAL that still holds
acknowledged events; if it is replaced by another file, SQLite applies the old WAL's pages to the
new file. Both are refused here, before the first connection:

- a `-wal` with content and no database file (or an empty one) is an orphan: refused;
- a log records which file its WAL belongs to in `<database>.id` (device, inode and the log's
  random tag, which is also the `user_version` in the database header): a WAL with content beside
  a file that is not that one is refused;
- a SQLite file whose header carries another `application_id` belongs to another application:
  refused with its bytes untouched.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
from contextlib import closing
from pathlib import Path

from eventstate.adapters.sqlite.schema import APPLICATION_ID
from eventstate.ports import StoreError, StoreReplaced

SQLITE_MAGIC = b"SQLite format 3\x00"
HEADER_BYTES = 100
WAL_HEADER_BYTES = 32
_USER_VERSION = slice(60, 64)  # the log's tag (see `new_tag`)
_APPLICATION_ID = slice(68, 72)


def wal_path(path: Path) -> Path:
    """The WAL file SQLite uses beside `path`."""
    return path.with_name(path.name + "-wal")


def shm_path(path: Path) -> Path:
    """The shared-memory index SQLite uses beside `path`."""
    return path.with_name(path.name + "-shm")


def id_path(path: Path) -> Path:
    """Where a log records which file its WAL belongs to."""
    return path.with_name(path.name + ".id")


def new_tag() -> int:
    """A random, non-zero tag for a new log, stored as the header's 32-bit signed `user_version`."""
    return secrets.randbelow(2**31 - 1) + 1


def read_header(path: Path) -> bytes:
    """The first bytes of the database file as they are on disk (fewer if it is shorter)."""
    with path.open("rb") as f:
        return f.read(HEADER_BYTES)


def header_tag(header: bytes) -> int:
    """The log tag in a database header (0: none recorded, or not yet checkpointed)."""
    return int.from_bytes(header[_USER_VERSION], "big", signed=True)


def _wal_size(path: Path) -> int:
    try:
        return wal_path(path).stat().st_size
    except FileNotFoundError:
        return -1


def _recorded(path: Path) -> dict[str, int] | None:
    try:
        data = json.loads(id_path(path).read_text(encoding="utf-8"))
        return {key: int(data[key]) for key in ("device", "inode", "tag")}
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError, OSError):
        raise StoreError(f"{id_path(path)} is damaged; it records which database file "
                         f"{wal_path(path)} belongs to. Stop every server of this log, check that "
                         f"{path} is the right file, then remove {id_path(path)}") from None


def check_before_open(path: Path) -> None:
    """Refuse, naming what was found and how to recover, unless opening `path` with SQLite can
    neither drop a WAL's events, apply a WAL to a file it was not written for, nor touch a file of
    another application. Reads only (SQLite may build its `-shm` index)."""
    check_files(path)
    if path.is_file() and path.stat().st_size > 0:
        check_contents(path)


def check_files(path: Path) -> None:
    """Refuse, naming what was found and how to recover, unless opening `path` with SQLite can
    neither drop a WAL's events, apply a WAL to a file it was not written for, nor touch a file of
    another application. Reads only."""
    wal, shm = wal_path(path), shm_path(path)
    wal_size = _wal_size(path)
    aside = f"to start a new, empty log there instead, move {wal} and {shm} aside first"
    if not path.exists():
        if wal_size >= 0:
            raise StoreReplaced(
                f"{wal} ({wal_size} bytes) is there but its database {path} is missing (deleted while "
                f"a server ran?); opening would discard the events in the WAL. Nothing was changed. "
                f"Put the database file back beside its -wal (while the old server still runs, its "
                f"open file is /proc/PID/fd/N: copy it to {path}), remove {id_path(path)} and "
                f"restart; {aside}"
            )
        return
    header = read_header(path)
    if not header:
        if wal_size > WAL_HEADER_BYTES:
            raise StoreReplaced(
                f"{path} is empty but {wal} ({wal_size} bytes) holds committed pages of a log "
                f"(the database was truncated or replaced); opening would discard them. Nothing was "
                f"changed. Put the original database file back beside its -wal and restart; {aside}"
            )
        return
    if len(header) < HEADER_BYTES or not header.startswith(SQLITE_MAGIC):
        raise StoreError(f"{path} is not a valid SQLite database (corrupt or truncated): "
                         "file is not a database")
    application_id = int.from_bytes(header[_APPLICATION_ID], "big")
    if application_id not in (0, APPLICATION_ID):
        raise StoreError(
            f"{path} is a SQLite database of another application (application_id "
            f"{application_id:#010x}, an eventstate log has {APPLICATION_ID:#010x}); it was left "
            "untouched: point --database at an eventstate log or at a new file"
        )
    if wal_size <= WAL_HEADER_BYTES:
        return  # no WAL pages to apply: whatever the file is, SQLite will not mix two files
    recorded = _recorded(path)
    if recorded is None:
        return  # a log written before identities were recorded: nothing to compare with
    st = path.stat()
    tag = header_tag(header)
    same_file = (st.st_dev, st.st_ino) == (recorded["device"], recorded["inode"])
    same_log = tag in (0, recorded["tag"])
    if not same_log:
        raise StoreReplaced(
            f"{wal} ({wal_size} bytes) was written for the log tagged {recorded['tag']} that was at "
            f"{path}, but {path} is now another eventstate log (tag {tag}); applying the WAL would "
            f"corrupt it. Nothing was changed. Put the original database file back beside its -wal "
            f"and restart; to serve {path} as it is, move {wal} and {shm} aside (the events of the "
            f"other log stay in them) and remove {id_path(path)}"
        )
    if not same_file:
        raise StoreReplaced(
            f"{wal} ({wal_size} bytes) was written for another file at {path} (inode "
            f"{recorded['inode']}, now {st.st_ino}) of the same log; applying it to an older copy "
            f"would corrupt the log. Nothing was changed. If {path} is a copy of that very file made "
            f"after its server stopped writing (e.g. from /proc/PID/fd/N), remove {id_path(path)} "
            f"and restart; if it is an older backup, move {wal} and {shm} aside first"
        )


def check_contents(path: Path) -> None:
    """Refuse a SQLite file of another application whose header alone does not show it (its
    `application_id` or its tables still in its WAL), through a read-only connection: a read-write
    one would checkpoint that WAL into the file when it closes."""
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as conn:
            application_id = int(conn.execute("PRAGMA application_id").fetchone()[0]) & 0xFFFFFFFF
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.Error:
        return  # not readable as a database: opening reports why, and writes nothing either
    if application_id not in (0, APPLICATION_ID):
        raise StoreError(
            f"{path} is a SQLite database of another application (application_id "
            f"{application_id:#010x}, an eventstate log has {APPLICATION_ID:#010x}); it was left "
            "untouched: point --database at an eventstate log or at a new file"
        )
    if tables and "eventstate_meta" not in tables:
        raise StoreError(f"{path} is a SQLite database but not an eventstate log; it was left untouched")


def record(path: Path, tag: int) -> None:
    """Record (atomically, durably) that the WAL beside `path` belongs to this file and log."""
    st = path.stat()
    data = {"device": st.st_dev, "inode": st.st_ino, "tag": tag}
    try:
        if _recorded(path) == data:
            return
    except StoreError:
        pass  # a damaged record of the file being opened now is simply rewritten
    target = id_path(path)
    temporary = target.with_name(target.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, (json.dumps(data) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, target)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
