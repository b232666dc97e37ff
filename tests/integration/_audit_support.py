"""Helpers for the audit tests: build a real log, run the CLI, tamper with the file behind its back.

Logs are written through the real adapter (`EventLog` + `apply_batch`), so the rows, the recorded
head and the triggers are exactly what a server leaves behind. Tampering uses plain `sqlite3`, the
way an attacker with write access to the file would, after dropping the append-only triggers.
"""

from __future__ import annotations

import contextlib
import io
import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs

from eventstate import cli
from eventstate.commands import Command, apply_batch
from eventstate.domain import Head, Update
from eventstate.eventlog import EventLog

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
KEY_TTL = timedelta(hours=24)
TRIGGERS = ("events_no_update", "events_no_delete", "events_gapless")
EVENT_COLUMNS = (
    "seq",
    "timestamp",
    "old_counter",
    "old_message",
    "new_counter",
    "new_message",
    "hash",
)


@attrs.frozen
class Result:
    """What a CLI run left behind: its exit status and both output streams."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        """Standard output parsed as one JSON document."""
        return json.loads(self.out)


def updates(count: int) -> list[Update]:
    """`count` varied updates: counters, messages (non-ASCII, with separators), or both."""
    samples = ["", "hello", "ünïcödé ✓", "a\nb:c", "12:34", "🙂" * 3]
    result = []
    for i in range(count):
        match i % 3:
            case 0:
                result.append(Update(counter=i * 7 - 20))
            case 1:
                result.append(Update(message=samples[i % len(samples)] + str(i)))
            case _:
                result.append(Update(counter=-i, message=samples[(i * 5) % len(samples)]))
    return result


def moment(seq: int, fraction: float = 0.0) -> datetime:
    """The time at which the test logs record event `seq` (one second apart), plus `fraction` s."""
    return EPOCH + timedelta(seconds=seq + fraction)


def append(path: Path, items: Iterable[Update], *, per_batch: int = 1) -> Head:
    """Append `items` to the log at `path` (creating it) through the real write path; the new head.

    A batch whose first event is n is stamped `moment(n)`, so a test knows when each event happened.
    """
    log = EventLog.open(path)
    try:
        batch: list[Command] = []
        for item in items:
            batch.append(Command(item))
            if len(batch) >= per_batch:
                _commit(log, batch)
                batch = []
        if batch:
            _commit(log, batch)
        return log.head()
    finally:
        log.close()


def _commit(log: EventLog, batch: Sequence[Command]) -> None:
    with log.transaction() as tx:
        outcomes = apply_batch(tx, batch, moment(tx.head.version + 1), KEY_TTL)
    assert not [o for o in outcomes if isinstance(o, Exception)]


def build(path: Path, count: int) -> Head:
    """A fresh log of `count` varied events at `path`; its head."""
    return append(path, updates(count), per_batch=max(1, count // 4))


def run_cli(*args: str | Path) -> Result:
    """Run `eventstate ARGS...` as a separate process from this virtualenv."""
    proc = subprocess.run(
        [sys.executable, "-m", "eventstate.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def run_main(*args: str | Path) -> Result:
    """Run the same command line in this process (for Hypothesis: a process per example is slow)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([str(a) for a in args])
    return Result(code, out.getvalue(), err.getvalue())


# ---- tampering -------------------------------------------------------------------------------


@contextlib.contextmanager
def tamper(path: Path) -> Any:
    """A plain sqlite3 connection to the log, append-only triggers dropped; commits on exit."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        for name in TRIGGERS:
            conn.execute(f"DROP TRIGGER IF EXISTS {name}")
        yield conn
        conn.execute("COMMIT")
    finally:
        conn.close()


def row(path: Path, seq: int) -> dict[str, Any]:
    """One event row as stored, by column name."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        found = conn.execute(
            f"SELECT {', '.join(EVENT_COLUMNS)} FROM events WHERE seq = ?", (seq,)
        ).fetchone()
    assert found is not None, f"no row {seq}"
    return dict(zip(EVENT_COLUMNS, found, strict=True))


def edit(path: Path, seq: int, **values: Any) -> None:
    """Overwrite columns of the row at `seq`."""
    assignments = ", ".join(f"{column} = ?" for column in values)
    with tamper(path) as conn:
        conn.execute(f"UPDATE events SET {assignments} WHERE seq = ?", (*values.values(), seq))


def delete(path: Path, seq: int) -> None:
    """Remove the row at `seq` (the recorded head is left as it was)."""
    with tamper(path) as conn:
        conn.execute("DELETE FROM events WHERE seq = ?", (seq,))


def swap(path: Path, i: int, j: int) -> None:
    """Exchange every column but `seq` between the rows at `i` and `j`."""
    first, second = row(path, i), row(path, j)
    columns = EVENT_COLUMNS[1:]
    for seq, source in ((i, second), (j, first)):
        edit(path, seq, **{c: source[c] for c in columns})


def insert(path: Path, values: dict[str, Any], *, shift: bool = True) -> None:
    """Insert a row at `values["seq"]`; with `shift`, first move that row and later ones up one."""
    with tamper(path) as conn:
        if shift:
            # Two steps, so that the primary key never sees two rows with the same seq.
            conn.execute("UPDATE events SET seq = -seq WHERE seq >= ?", (values["seq"],))
            conn.execute("UPDATE events SET seq = 1 - seq WHERE seq < 0")
        conn.execute(
            f"INSERT INTO events ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",
            tuple(values.values()),
        )


def set_recorded_head(path: Path, seq: int, digest: str) -> None:
    """Overwrite the head record kept beside the events."""
    with tamper(path) as conn:
        conn.execute("UPDATE log_head SET seq = ?, hash = ? WHERE id = 1", (seq, digest))
