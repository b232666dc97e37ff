"""The write path's cost per event in process: commits of 1 and of 32 updates, wall and on-CPU time.

    python bench/append_bench.py [--commits 3000] [--synchronous FULL]

Runs the real `EventLog.transaction` + `commands.apply_batch` loop (what the group-commit writer
does, without HTTP) on a fresh log and prints per-event figures. Run it from two source trees
(e.g. `PYTHONPATH=<other checkout>/src python bench/append_bench.py`) to compare their write paths
on the same machine minutes apart; on-CPU time is far less disturbed by a busy machine than HTTP
throughput is. `eventstate` is a namespace package, so PYTHONPATH mixes in any module the other
tree lacks from the installed one: check the printed path and schema version, or use a separate
virtualenv per tree. Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from eventstate import commands
from eventstate.commands import Command, apply_batch
from eventstate.domain import Update

try:  # the storage port's SQLite adapter, or the single module that came before it
    from eventstate.adapters.sqlite.schema import SCHEMA_VERSION
    from eventstate.adapters.sqlite.store import SQLiteStore as EventLog
except ImportError:
    from eventstate.eventlog import SCHEMA_VERSION, EventLog  # type: ignore[no-redef]


def run(commits: int, batch: int, synchronous: str) -> tuple[float, float]:
    """Median wall and on-CPU microseconds per event over `commits` commits of `batch` updates."""
    with tempfile.TemporaryDirectory() as tmp:
        log = EventLog.open(Path(tmp) / "bench.db", synchronous=synchronous)  # type: ignore[arg-type]
        try:
            now = datetime(2026, 1, 1, tzinfo=UTC)
            wall, cpu = [], []
            for i in range(commits):
                commands = [Command(Update(counter=i * batch + j, message="bench")) for j in range(batch)]
                started, on_cpu = time.perf_counter(), time.thread_time()
                with log.transaction() as tx:
                    apply_batch(tx, commands, now + timedelta(microseconds=i), timedelta(hours=1))
                cpu.append((time.thread_time() - on_cpu) / batch)
                wall.append((time.perf_counter() - started) / batch)
        finally:
            log.close()
    return statistics.median(wall) * 1e6, statistics.median(cpu) * 1e6


def main() -> None:
    """Print the per-event cost for single and grouped commits."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=3000)
    parser.add_argument("--synchronous", default="FULL")
    args = parser.parse_args()
    print(f"eventstate from {Path(commands.__file__).parent}, schema version "
          f"{SCHEMA_VERSION}, synchronous={args.synchronous}")
    for batch in (1, 32):
        commits = args.commits if batch == 1 else max(1, args.commits // 8)
        wall, cpu = run(commits, batch, args.synchronous)
        print(f"  commits of {batch:2d}: median {wall:7.1f} µs wall, {cpu:7.1f} µs on CPU per event")


if __name__ == "__main__":
    main()
