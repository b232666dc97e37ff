"""The log file's identity across restarts, with real files and real `eventstate serve` processes.

A restart never discards a WAL's acknowledged events, never applies a WAL to a file it was not
written for, and never touches a SQLite file of another application: it refuses with one line
that says what it found and how to recover (see README "Recovering the log file").
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from _faults import cli, digest, events, post_updates

from tests_support import ServerProcess, free_port

pytestmark = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc (Linux)")


def wal(db: Path) -> Path:
    return db.with_name(db.name + "-wal")


def shm(db: Path) -> Path:
    return db.with_name(db.name + "-shm")


def id_file(db: Path) -> Path:
    return db.with_name(db.name + ".id")


def refused_start(db: Path) -> str:
    """Start `eventstate serve` on `db`; it must exit 2 with exactly one line. That line."""
    result = cli("serve", "--port", str(free_port()), "--database", str(db))
    assert 2 == result.returncode, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert 1 == len(lines), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def assert_mentions(line: str, *words: str) -> None:
    """`line` names every one of `words`."""
    assert [w for w in words if w not in line] == [], line


def files_of(directory: Path) -> dict[str, str]:
    """Every file in `directory` (server logs aside) with its digest."""
    return {p.name: digest(p) for p in sorted(directory.iterdir())
            if p.is_file() and not p.name.startswith("server-")}


def open_file_of(server: ServerProcess, db: Path) -> Path:
    """The server's descriptor of the database file it opened, even once that file is deleted."""
    assert server.proc is not None
    fds = Path(f"/proc/{server.proc.pid}/fd")
    for fd in fds.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target in (str(db), f"{db} (deleted)"):
            return fd
    raise AssertionError(f"the server holds no descriptor of {db}")


def served(db: Path) -> list[dict[str, Any]]:
    server = ServerProcess(db).start()
    try:
        return events(server.url)
    finally:
        server.stop()


def test_a_restart_refuses_a_wal_whose_database_was_deleted_and_the_events_come_back(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    server = ServerProcess(db).start()
    try:
        acknowledged = post_updates(server.url, 5)
        os.remove(db)
        held = open_file_of(server, db)
        # The running server's copy is how the database comes back: copied now, before it exits.
        rescue = tmp_path / "rescued.db"
        shutil.copyfile(held, rescue)
    finally:
        server.stop()
    assert wal(db).stat().st_size > 32, "SQLite kept the WAL of a database deleted under it"
    before = files_of(tmp_path)

    line = refused_start(db)

    assert_mentions(line, str(wal(db)), "missing", "Nothing was changed")
    assert_mentions(line, "copy it to", str(id_file(db)))  # how to recover
    assert before == files_of(tmp_path), "the refusal wrote nothing"
    assert not db.exists()

    # The recovery the line describes: the database back beside its -wal, the record removed.
    shutil.copyfile(rescue, db)
    id_file(db).unlink()
    assert [e["seq"] for e in acknowledged] == [e["seq"] for e in served(db)][: len(acknowledged)]
    assert [e["hash"] for e in acknowledged] == [e["hash"] for e in served(db)]


def test_a_restart_refuses_a_wal_beside_an_emptied_database(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    server = ServerProcess(db).start()
    try:
        post_updates(server.url, 3)
        with db.open("r+b") as f:
            f.truncate(0)
    finally:
        server.signal(signal.SIGKILL)
        server.wait()
    before = files_of(tmp_path)

    line = refused_start(db)

    assert_mentions(line, "is empty", str(wal(db)))
    assert before == files_of(tmp_path)


@pytest.mark.parametrize("how", ["moved over", "copied over"])
def test_a_restart_refuses_to_apply_a_wal_to_another_log_put_in_place(tmp_path: Path, how: str) -> None:
    db = tmp_path / "events.db"
    other = tmp_path / "other" / "events.db"
    other.parent.mkdir()
    assert 0 == cli("init", "--database", str(other)).returncode
    first = ServerProcess(other).start()
    try:
        post_updates(first.url, 2, message="other log")
    finally:
        first.stop()
    assert not wal(other).exists()

    server = ServerProcess(db).start()
    try:
        post_updates(server.url, 4, message="this log")
        if how == "moved over":
            os.replace(other, db)
        else:
            shutil.copyfile(other, db)  # same inode, other bytes
    finally:
        server.signal(signal.SIGKILL)
        server.wait()
    assert wal(db).stat().st_size > 32
    before = files_of(tmp_path)

    line = refused_start(db)

    assert_mentions(line, "another eventstate log", "would corrupt", "move", str(wal(db)))
    assert before == files_of(tmp_path), "the refusal wrote nothing, WAL and replacement untouched"
    # And an audit does not read the two mixed either.
    assert 2 == cli("verify", "--database", str(db)).returncode


def test_a_restart_refuses_an_older_copy_of_the_same_log_beside_a_newer_wal(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    server = ServerProcess(db).start()
    try:
        post_updates(server.url, 2)
        old_copy = tmp_path / "old-copy.db"
        shutil.copyfile(db, old_copy)  # a file-level copy of a live WAL-mode log: stale
        post_updates(server.url, 3)
        os.replace(old_copy, db)
    finally:
        server.signal(signal.SIGKILL)
        server.wait()
    before = files_of(tmp_path)

    line = refused_start(db)

    assert_mentions(line, "another file", "older backup")
    assert before == files_of(tmp_path)


def test_a_foreign_sqlite_file_without_tables_is_refused_untouched(tmp_path: Path) -> None:
    db = tmp_path / "theirs.db"
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA application_id = 0x12345678")
    conn.close()
    before = files_of(tmp_path)

    line = refused_start(db)

    assert_mentions(line, "another application", "0x12345678", "untouched")
    assert before == files_of(tmp_path), "no byte changed and no -wal, -shm or .id created"
    for command in (["verify"], ["export"], ["init"]):
        result = cli(*command, "--database", str(db))
        assert 2 == result.returncode, result
        assert "another application" in result.stderr
    assert before == files_of(tmp_path)


def test_a_foreign_wal_mode_file_is_refused_without_checkpointing_its_wal(tmp_path: Path) -> None:
    db = tmp_path / "theirs.db"
    maker = ("import os, sqlite3, sys\n"
             "c = sqlite3.connect(sys.argv[1]); c.execute('PRAGMA journal_mode=WAL')\n"
             "c.execute('CREATE TABLE t(x)'); c.execute('INSERT INTO t VALUES (1)'); c.commit()\n"
             "os._exit(0)  # the WAL stays, never checkpointed\n")
    subprocess.run([sys.executable, "-c", maker, str(db)], check=True, timeout=30)
    assert wal(db).stat().st_size > 32
    before = {p: digest(p) for p in (db, wal(db))}

    line = refused_start(db)

    assert before == {p: digest(p) for p in (db, wal(db))}, "the foreign WAL was not checkpointed"
    assert_mentions(line, "not an eventstate log", "untouched")
    assert not id_file(db).exists()


def test_a_normal_restart_and_a_crash_lose_no_acknowledged_event(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    server = ServerProcess(db).start()
    try:
        acknowledged = post_updates(server.url, 4)
    finally:
        server.stop()
    assert id_file(db).exists()

    server = ServerProcess(db).start()
    try:
        assert [e["hash"] for e in acknowledged] == [e["hash"] for e in events(server.url)]
        acknowledged += post_updates(server.url, 6)
    finally:
        server.signal(signal.SIGKILL)  # a crash: the WAL is left as it is
        server.wait()
    assert wal(db).stat().st_size > 32

    assert [e["hash"] for e in acknowledged] == [e["hash"] for e in served(db)]
