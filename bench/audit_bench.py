"""Benchmark `eventstate verify` and a full `eventstate replay` on a generated log.

    python bench/audit_bench.py [--events 1000000] [--database FILE] [--keep]

Generates a log of N events with a correct hash chain (rows inserted in large transactions, far
faster than the write path), then runs each command as a child process and prints its events/s and
the child's peak RSS. The issue's targets: at least 300,000 events/s, and memory that does not grow
with the log (compare the RSS figures for two sizes, e.g. --events 100000 and --events 1000000).
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

CHUNK = 50_000
MESSAGES = ("", "hello", "ünïcödé ✓", "deploy 42 finished", "a:b\nc")


def _rows(count: int) -> Iterator[tuple[int, str, int, str, int, str, str]]:
    from eventstate.domain import GENESIS_HASH, State, chain_hash, format_timestamp

    start = datetime(2026, 1, 1, tzinfo=UTC)
    state, previous = State(), GENESIS_HASH
    for seq in range(1, count + 1):
        new = State(seq * 31 - 1000, MESSAGES[seq % len(MESSAGES)] if seq % 2 else state.message)
        stamp = format_timestamp(start + timedelta(milliseconds=seq))
        previous = chain_hash(seq, stamp, state, new, previous)
        yield (seq, stamp, state.counter, state.message, new.counter, new.message, previous)
        state = new


def generate(path: Path, count: int) -> str:
    """Write a fresh log of `count` events to `path`; return the head hash."""
    # Imported here, in the generating child only: the measuring parent stays small (see main).
    from eventstate.domain import GENESIS_HASH
    from eventstate.eventlog import EventLog

    EventLog.open(path).close()  # the real schema, triggers included
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous=OFF")
        rows = _rows(count)
        head = GENESIS_HASH
        while True:
            chunk = [row for _, row in zip(range(CHUNK), rows, strict=False)]
            if not chunk:
                break
            conn.execute("BEGIN")
            conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)", chunk)
            head = chunk[-1][6]
            conn.execute(
                "INSERT INTO log_head (id, seq, hash) VALUES (1, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
                (chunk[-1][0], head),
            )
            conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return head


def measure(args: list[str]) -> tuple[float, float, int]:
    """Run `eventstate ARGS` in a child process: its wall time (s), CPU time (s), peak RSS (KiB)."""
    started = time.perf_counter()
    child = subprocess.Popen(  # noqa: S603 - our own interpreter and our own CLI
        [sys.executable, "-m", "eventstate.cli", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert child.stderr is not None
    errors = child.stderr.read()
    # wait4, not getrusage(RUSAGE_CHILDREN): the figures of this child alone, not the largest
    # of every child so far (the generator above must not count either).
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"eventstate {' '.join(args)} failed: {errors.decode().strip()}")
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss


def main() -> int:
    """Generate (or reuse) a log, time verify and replay on it, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--database", type=Path, help="reuse this log if it exists, else generate it there")
    parser.add_argument("--keep", action="store_true", help="keep a generated temporary log")
    parser.add_argument("--generate-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    workdir = None
    path = args.database
    if path is None:
        workdir = tempfile.mkdtemp(prefix="eventstate-bench-")
        path = Path(workdir) / "bench.db"
    if args.generate_only:
        generate(path, args.events)
        return 0
    if not path.exists():
        started = time.perf_counter()
        # In a child: a child's peak RSS starts from its parent's at fork, so this process
        # stays small for the measurements to be the commands' own.
        subprocess.run(  # noqa: S603 - this very script
            [
                sys.executable,
                __file__,
                "--generate-only",
                "--events",
                str(args.events),
                "--database",
                str(path),
            ],
            check=True,
        )
        print(f"generated {args.events:,} events in {time.perf_counter() - started:.1f} s")
    with closing(sqlite3.connect(path)) as conn:
        count = int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    try:
        # Interpreter start-up is included: it is part of what a user waits for.
        for name, command in (
            ("verify", ["verify", "--database", str(path)]),
            ("replay", ["replay", "--database", str(path), "--json"]),
        ):
            elapsed, cpu, rss_kib = measure(command)
            print(
                f"{name:7} {count:>10,} events  {elapsed:6.2f} s  "
                f"{count / elapsed:>9,.0f} events/s  (CPU {cpu:5.2f} s)  "
                f"peak RSS {rss_kib / 1024:.0f} MiB"
            )
    finally:
        if workdir is not None and not args.keep:
            for leftover in Path(workdir).iterdir():
                leftover.unlink()
            Path(workdir).rmdir()
        elif workdir is not None:
            print(f"kept {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
