"""The audit commands as a user drives them: `eventstate ...` on real database files.

Tests about the process itself (exit status, standard streams, a terminal, concurrent writers) run
`eventstate` as a process. The many variants run the same command line through `cli.main` in this
process (same parsing, output and exit status, no interpreter start-up each) to keep the suite fast.
"""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import shutil
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from _audit_support import (
    KEY_TTL,
    append,
    build,
    delete,
    edit,
    insert,
    moment,
    row,
    run_cli,
    run_main,
    set_recorded_head,
    swap,
    tamper,
    updates,
)

from eventstate.commands import Command, apply_batch
from eventstate.domain import Head, State, Update, chain_hash, format_timestamp
from eventstate.eventlog import EventLog

N = 12  # events in the log most tests start from


@pytest.fixture
def log(tmp_path: Path) -> Path:
    """A log of N varied events, one event per commit, event n stamped `moment(n)`."""
    path = tmp_path / "events.db"
    append(path, updates(N))
    return path


def forged(path: Path, seq: int, new: State, timestamp: str | None = None) -> dict[str, Any]:
    """A row at `seq` that continues the chain from seq - 1 correctly, as a careful forger does."""
    before = Head() if seq == 1 else _head_at(path, seq - 1)
    stamp = timestamp or before.timestamp or format_timestamp(moment(seq))
    digest = chain_hash(seq, stamp, before.state, new, before.hash)
    return {
        "seq": seq,
        "timestamp": stamp,
        "old_counter": before.state.counter,
        "old_message": before.state.message,
        "new_counter": new.counter,
        "new_message": new.message,
        "hash": digest,
    }


def _head_at(path: Path, seq: int) -> Head:
    r = row(path, seq)
    return Head(seq, State(r["new_counter"], r["new_message"]), r["timestamp"], r["hash"])


def rewrite_from(path: Path, seq: int, new: State) -> None:
    """Rewrite event `seq` and re-hash every later event and the head record: a perfect forgery."""
    last = _head_at(path, N)
    for current in range(seq, last.version + 1):
        original = row(path, current)
        state = new if current == seq else State(original["new_counter"], original["new_message"])
        values = forged(path, current, state, original["timestamp"])
        edit(path, current, **{k: v for k, v in values.items() if k != "seq"})
    set_recorded_head(path, last.version, row(path, last.version)["hash"])


# ---- verify ----------------------------------------------------------------------------------


def test_verify_passes_on_an_intact_log(log: Path) -> None:
    """An untouched log verifies: exit 0, the event count and the head named."""
    head = _head_at(log, N)

    result = run_cli("verify", "--database", log)

    assert (0, "") == (result.code, result.err)
    assert f"{N} events" in result.out
    assert f"{N}:{head.hash}" in result.out


def test_verify_json_reports_the_head(log: Path) -> None:
    """`verify --json` prints a machine-readable verdict with the head an auditor can anchor to."""
    head = _head_at(log, N)

    result = run_main("verify", "--database", log, "--json")

    assert 0 == result.code
    assert {"ok": True, "events": N, "head_seq": N, "head_hash": head.hash} == result.json()


def test_verify_passes_on_an_empty_log(tmp_path: Path) -> None:
    """A log with no events yet is intact."""
    path = tmp_path / "empty.db"
    EventLog.open(path).close()

    result = run_main("verify", "--database", path, "--json")

    assert 0 == result.code
    assert 0 == result.json()["events"]


TAMPERING: dict[str, tuple[Callable[[Path], None], int]] = {
    "edited message": (lambda p: edit(p, 7, new_message="paid in full"), 7),
    "edited old message": (lambda p: edit(p, 7, old_message="x"), 7),
    "edited counter": (lambda p: edit(p, 7, new_counter=10**6), 7),
    "edited old counter": (lambda p: edit(p, 7, old_counter=-1), 7),
    "edited timestamp": (lambda p: edit(p, 7, timestamp=format_timestamp(moment(7, 0.5))), 7),
    "timestamp moved back": (lambda p: edit(p, 7, timestamp=format_timestamp(moment(1))), 7),
    "edited hash": (lambda p: edit(p, 7, hash="f" * 64), 7),
    "deleted middle row": (lambda p: delete(p, 7), 7),
    "deleted first row": (lambda p: delete(p, 1), 1),
    "deleted last row": (lambda p: delete(p, N), N),
    "swapped rows": (lambda p: swap(p, 4, 9), 4),
    "swapped neighbours": (lambda p: swap(p, 9, 10), 9),
    "inserted copy of a row": (lambda p: insert(p, dict(row(p, 3), seq=7)), 7),
    "inserted forged row": (lambda p: insert(p, forged(p, 7, State(99, "forged"))), 8),
    "appended forged row": (
        lambda p: insert(p, forged(p, N + 1, State(1, "x")), shift=False),
        N + 1,
    ),
    "rewritten last event": (lambda p: edit(p, N, **_rehashed(p, N, State(5, "five"))), N),
    "row before seq 1": (lambda p: insert(p, dict(row(p, 3), seq=0), shift=False), 1),
    "row at the lowest seq": (lambda p: insert(p, dict(row(p, 3), seq=-(2**63)), shift=False), 1),
    "blob in a message": (lambda p: edit(p, 5, new_message=b"\x00binary"), 5),
    "text in a counter": (lambda p: edit(p, 5, new_counter="five"), 5),
}


def _rehashed(path: Path, seq: int, new: State) -> dict[str, Any]:
    values = forged(path, seq, new, row(path, seq)["timestamp"])
    del values["seq"]
    return values


@pytest.mark.parametrize("case", TAMPERING)
def test_verify_detects_and_locates_tampering(log: Path, case: str) -> None:
    """Every way of editing the file behind eventstate's back fails verify at the first bad seq."""
    change, broken = TAMPERING[case]
    change(log)

    result = run_main("verify", "--database", log, "--json")

    assert 1 == result.code
    assert f"FAILED at seq {broken}:" in result.err
    assert (False, broken) == (result.json()["ok"], result.json()["seq"])


def test_a_failed_verify_exits_non_zero(log: Path) -> None:
    """As a process, a verify that finds tampering exits 1 and says where on stderr."""
    delete(log, N)

    result = run_cli("verify", "--database", log)

    assert (1, "") == (result.code, result.out)
    assert f"eventstate: verify FAILED at seq {N}:" in result.err


def test_the_triggers_refuse_edits_until_dropped(log: Path) -> None:
    """Without dropping the triggers first, SQLite itself refuses to edit or delete an event."""
    with sqlite3.connect(log) as conn:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("UPDATE events SET new_message = 'x' WHERE seq = 3")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("DELETE FROM events WHERE seq = 3")
    conn.close()

    assert 0 == run_cli("verify", "--database", log).code


@pytest.mark.parametrize("table", ["events", "log_head"])
def test_verify_reports_a_dropped_table_in_one_line(log: Path, table: str) -> None:
    """A log whose events or head record table was dropped fails verify with one line, exit 2."""
    with tamper(log) as conn:
        conn.execute(f"DROP TABLE {table}")

    result = run_main("verify", "--database", log)

    assert 2 == result.code
    assert f"no such table: {table}" in result.err
    assert "Traceback" not in result.err


def test_expect_head_catches_a_perfect_forgery(log: Path) -> None:
    """A rewrite re-hashing every later event passes a bare verify, but not one anchored earlier."""
    anchor = f"8:{row(log, 8)['hash']}"
    assert 0 == run_main("verify", "--database", log, "--expect-head", anchor).code

    rewrite_from(log, 5, State(123, "rewritten history"))
    bare = run_main("verify", "--database", log)
    anchored = run_main("verify", "--database", log, "--expect-head", anchor)

    assert 0 == bare.code
    assert 1 == anchored.code
    assert "FAILED at seq 8:" in anchored.err


def test_verify_explains_a_file_that_is_not_a_log(tmp_path: Path) -> None:
    """A path that is not an eventstate log gets a one-line explanation and exit 2, no traceback."""
    missing = run_main("verify", "--database", tmp_path / "nope.db")
    (tmp_path / "text.db").write_text("hello")
    garbage = run_main("verify", "--database", tmp_path / "text.db")

    assert (2, 2) == (missing.code, garbage.code)
    assert "does not exist" in missing.err
    assert "Traceback" not in missing.err + garbage.err


# ---- replay ----------------------------------------------------------------------------------


def _status(path: Path, seq: int) -> dict[str, Any]:
    r = row(path, seq)
    return {
        "counter": r["new_counter"],
        "message": r["new_message"],
        "version": seq,
        "updated_at": r["timestamp"],
    }


def test_replay_json_is_the_state_after_the_last_event(log: Path) -> None:
    """A full replay prints the state left by the last event, in the status shape."""
    result = run_cli("replay", "--database", log, "--json")

    assert 0 == result.code
    assert _status(log, N) == result.json()


@pytest.mark.parametrize("seq", [1, 5])
def test_replay_until_seq_is_the_state_after_that_event(log: Path, seq: int) -> None:
    """`--until-seq n` gives the state, version and time of event n."""
    result = run_main("replay", "--database", log, "--until-seq", str(seq), "--json")

    assert 0 == result.code
    assert _status(log, seq) == result.json()


def test_replay_until_seq_zero_is_the_initial_state(log: Path) -> None:
    """Before the first event the state is the initial one, at version 0 with no time."""
    result = run_main("replay", "--database", log, "--until-seq", "0", "--json")

    assert {"counter": 0, "message": "", "version": 0, "updated_at": None} == result.json()


def test_replay_refuses_a_seq_past_the_head(log: Path) -> None:
    """Asking for an event the log does not have is an error naming the log's version."""
    result = run_main("replay", "--database", log, "--until-seq", str(N + 1))

    assert 2 == result.code
    assert f"version {N}" in result.err


@pytest.mark.parametrize(
    ("at", "seq"),
    [
        (moment(5), 5),  # exactly at event 5
        (moment(5, 0.999), 5),  # between events 5 and 6
        (moment(N + 100), N),  # after the last event
    ],
)
def test_replay_at_picks_the_last_event_at_or_before_that_time(log: Path, at: Any, seq: int) -> None:
    """`--at T` is the state after the last event stamped at or before T."""
    result = run_main("replay", "--database", log, "--at", at.isoformat(), "--json")

    assert 0 == result.code
    assert _status(log, seq) == result.json()


def test_replay_at_accepts_any_utc_offset(log: Path) -> None:
    """The same instant written with a +02:00 offset picks the same event as in UTC."""
    local = moment(6).astimezone(timezone(timedelta(hours=2)))

    result = run_main("replay", "--database", log, "--at", local.isoformat(), "--json")

    assert _status(log, 6) == result.json()


def test_replay_at_before_the_first_event_is_the_initial_state(log: Path) -> None:
    """A time before any event gives version 0."""
    result = run_main("replay", "--database", log, "--at", "2025-12-31T23:59:59Z", "--json")

    assert 0 == result.json()["version"]


@pytest.mark.parametrize("bad", ["yesterday", "2026-01-01T00:00:05", "2026-13-01T00:00:00Z"])
def test_replay_refuses_a_malformed_time(log: Path, bad: str) -> None:
    """A time that is not RFC 3339 with an offset is refused in one line, exit 2."""
    result = run_main("replay", "--database", log, "--at", bad)

    assert 2 == result.code
    assert "RFC 3339" in result.err


def test_replay_checks_the_chain_up_to_the_point_asked(log: Path) -> None:
    """Replaying past a tampered event fails there; replaying to just before it still works."""
    edit(log, 8, new_message="edited")

    before = run_cli("replay", "--database", log, "--until-seq", "7", "--json")
    past = run_cli("replay", "--database", log, "--until-seq", "9")

    assert _status(log, 7) == before.json()
    assert 1 == past.code
    assert "FAILED at seq 8:" in past.err


# ---- export and import -----------------------------------------------------------------------


def export(path: Path, out: Path, *extra: str) -> Path:
    """Run `eventstate export` into `out`; return `out`."""
    result = run_main("export", "--database", path, "--output", out, *extra)
    assert 0 == result.code
    assert result.err.startswith("exported ")
    assert 1 == len(result.err.splitlines())
    return out


def test_export_jsonl_has_one_event_object_per_line(log: Path, tmp_path: Path) -> None:
    """Each JSONL line is one event, in seq order, with exactly the fields of `GET /logs`."""
    lines = export(log, tmp_path / "log.jsonl").read_text(encoding="utf-8").splitlines()

    events = [json.loads(line) for line in lines]
    assert list(range(1, N + 1)) == [e["seq"] for e in events]
    assert {"seq", "timestamp", "old", "new", "hash"} == set(events[0])
    third = row(log, 3)
    assert {"counter": third["new_counter"], "message": third["new_message"]} == events[2]["new"]


def test_export_and_replay_agree_with_the_http_api(client: Any, db_path: Path) -> None:
    """Against a running app: export lines are `GET /logs` items, replay is `GET /status?as_of=`."""
    for update in ({"counter": 5}, {"message": "ünï\ncode"}, {"counter": -1, "message": ""}):
        assert 200 == client.post("/update", json=update).status_code
    items = client.get("/logs").json()["items"]

    exported = run_cli("export", "--database", db_path)
    replays = [
        run_cli("replay", "--database", db_path, "--until-seq", str(seq), "--json").json()
        for seq in (1, 2, 3)
    ]

    assert items == [json.loads(line) for line in exported.out.splitlines()]
    assert [client.get(f"/status?as_of={seq}").json() for seq in (1, 2, 3)] == replays


def test_export_to_standard_output(log: Path, tmp_path: Path) -> None:
    """Without --output the export goes to standard output, byte for byte the same."""
    to_file = export(log, tmp_path / "log.jsonl").read_text(encoding="utf-8")

    result = run_cli("export", "--database", log)

    assert to_file == result.out


def test_export_csv_has_a_header_and_a_row_per_event(log: Path, tmp_path: Path) -> None:
    """CSV export: a header, then one row per event, messages with newlines and commas intact."""
    text = export(log, tmp_path / "log.csv", "--format", "csv").read_text(encoding="utf-8")

    records = list(csv.reader(io.StringIO(text, newline="")))
    assert [
        "seq",
        "timestamp",
        "old_counter",
        "old_message",
        "new_counter",
        "new_message",
        "hash",
    ] == records[0]
    assert N == len(records) - 1
    for record in records[1:]:
        stored = row(log, int(record[0]))
        assert [str(v) for v in stored.values()] == record


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_export_after_skips_earlier_events(log: Path, tmp_path: Path, fmt: str) -> None:
    """`--after N` exports only the events after seq N."""
    text = export(log, tmp_path / f"log.{fmt}", "--format", fmt, "--after", "9").read_text("utf-8")

    if fmt == "jsonl":
        seqs = [json.loads(line)["seq"] for line in text.splitlines()]
    else:
        seqs = [int(r[0]) for r in list(csv.reader(io.StringIO(text, newline="")))[1:]]
    assert list(range(10, N + 1)) == seqs


def test_export_will_not_overwrite_a_file(log: Path, tmp_path: Path) -> None:
    """An export never clobbers an existing file: exit 2 and the file is untouched."""
    target = tmp_path / "precious.txt"
    target.write_text("keep me")

    result = run_main("export", "--database", log, "--output", target)

    assert 2 == result.code
    assert "already exists" in result.err
    assert "keep me" == target.read_text()


def test_export_import_export_is_byte_identical(log: Path, tmp_path: Path) -> None:
    """Importing an export and exporting again gives the same bytes, every hash included."""
    first = export(log, tmp_path / "first.jsonl")
    rebuilt = tmp_path / "rebuilt.db"

    imported = run_cli("import", "--database", rebuilt, first)
    second = export(rebuilt, tmp_path / "second.jsonl")

    assert 0 == imported.code
    assert f"imported {N} events" in imported.out
    assert first.read_bytes() == second.read_bytes()
    assert [row(log, s)["hash"] for s in range(1, N + 1)] == [
        row(rebuilt, s)["hash"] for s in range(1, N + 1)
    ]
    assert 0 == run_cli("verify", "--database", rebuilt).code


def test_imported_log_accepts_new_events(log: Path, tmp_path: Path) -> None:
    """A database rebuilt by import is a working log: the chain continues from the imported head."""
    rebuilt = tmp_path / "rebuilt.db"
    run_main("import", "--database", rebuilt, export(log, tmp_path / "log.jsonl"))

    head = append(rebuilt, [Update(counter=1)])

    assert N + 1 == head.version
    assert 0 == run_main("verify", "--database", rebuilt).code


def _edit_line(path: Path, index: int, change: Callable[[dict[str, Any]], None]) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    event = json.loads(lines[index])
    change(event)
    lines[index] = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.mark.parametrize(
    ("case", "broken"),
    [("edited message", 6), ("dropped line", 6), ("swapped lines", 4), ("edited hash", 6)],
)
def test_import_refuses_an_export_that_does_not_verify(
    log: Path, tmp_path: Path, case: str, broken: int
) -> None:
    """A tampered export is refused, naming the first broken seq, and leaves no database behind."""
    dump = export(log, tmp_path / "log.jsonl")
    lines = dump.read_text(encoding="utf-8").splitlines(keepends=True)
    if case == "edited message":
        _edit_line(dump, 5, lambda e: e["new"].update(message="edited"))
    elif case == "dropped line":
        dump.write_text("".join(lines[:5] + lines[6:]), encoding="utf-8")
    elif case == "swapped lines":
        lines[3], lines[7] = lines[7], lines[3]
        dump.write_text("".join(lines), encoding="utf-8")
    else:
        _edit_line(dump, 5, lambda e: e.update(hash="0" * 64))
    target = tmp_path / "rebuilt.db"

    result = run_main("import", "--database", target, dump)

    assert 1 == result.code
    assert f"REFUSED at seq {broken}:" in result.err
    assert not target.exists()


def test_import_refuses_a_partial_export(log: Path, tmp_path: Path) -> None:
    """An export made with --after cannot stand alone as a log: import refuses it at seq 1."""
    dump = export(log, tmp_path / "tail.jsonl", "--after", "4")

    result = run_main("import", "--database", tmp_path / "rebuilt.db", dump)

    assert 1 == result.code
    assert "REFUSED at seq 1:" in result.err


def test_import_refuses_an_existing_database(log: Path, tmp_path: Path) -> None:
    """Import only creates new databases; an existing one is left as it was."""
    dump = export(log, tmp_path / "log.jsonl")
    before = log.read_bytes()

    result = run_main("import", "--database", log, dump)

    assert 2 == result.code
    assert "already exists" in result.err
    assert before == log.read_bytes()


def test_import_names_the_line_of_a_malformed_export(log: Path, tmp_path: Path) -> None:
    """A line that is not an event is refused by line number, without a traceback."""
    dump = export(log, tmp_path / "log.jsonl")
    lines = dump.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[2] = '{"seq": 3}\n'
    dump.write_text("".join(lines), encoding="utf-8")

    result = run_main("import", "--database", tmp_path / "rebuilt.db", dump)

    assert 2 == result.code
    assert "line 3" in result.err
    assert "Traceback" not in result.err


def test_import_of_a_missing_file_is_one_line(tmp_path: Path) -> None:
    """Importing a file that is not there says so in one line, exit 2, and creates nothing."""
    target = tmp_path / "rebuilt.db"

    result = run_main("import", "--database", target, tmp_path / "missing.jsonl")

    assert 2 == result.code
    assert "cannot read" in result.err
    assert "Traceback" not in result.err
    assert [] == list(tmp_path.iterdir())


# ---- live databases: backup and verify beside a writer ---------------------------------------


class Writer:
    """A thread appending events to a log, one commit each, until stopped."""

    def __init__(self, path: Path) -> None:
        self._log = EventLog.open(path)
        self._stop = threading.Event()
        self.committed = 0
        self._first = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            i += 1
            with self._log.transaction() as tx:
                apply_batch(
                    tx,
                    [Command(Update(counter=i, message=f"live {i}"))],
                    moment(tx.head.version + 1),
                    KEY_TTL,
                )
            self.committed += 1
            self._first.set()

    def __enter__(self) -> Writer:
        self._thread.start()
        assert self._first.wait(30), "the writer never committed"
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)
        self._log.close()


@pytest.fixture
def big_log(tmp_path: Path) -> Path:
    """A log of 12,000 events: big enough for a progress bar on a terminal, and to take a while."""
    path = tmp_path / "big.db"
    build(path, 12_000)
    return path


def test_backup_while_a_writer_appends_is_a_verified_copy(big_log: Path, tmp_path: Path) -> None:
    """A backup taken while events keep arriving is a consistent, verifiable log."""
    dest = tmp_path / "backup.db"
    with Writer(big_log) as writer:
        before = writer.committed
        result = run_cli("backup", "--database", big_log, dest)
        during = writer.committed - before

    assert (0, "") == (result.code, result.err)
    assert "verified" in result.out
    assert during > 0, "the writer was not writing during the backup"
    copy = run_cli("verify", "--database", dest, "--json").json()
    assert copy["ok"]
    assert 12_000 <= copy["events"] <= 12_000 + before + during
    # The copy is a working log of its own, not tied to the original's -wal file.
    shutil.move(dest, tmp_path / "moved.db")
    assert 0 == run_cli("verify", "--database", tmp_path / "moved.db").code


@pytest.mark.slow
def test_backup_and_verify_beside_a_serving_server(server_factory: Any, db_path: Path) -> None:
    """While a real server acknowledges updates, backup gives a verified copy and verify passes."""
    build(db_path, 3_000)
    server = server_factory(db_path).start()
    stop, first = threading.Event(), threading.Event()
    acknowledged: list[int] = []

    def post() -> None:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            while not stop.is_set():
                response = http.post("/update", json={"message": f"served {len(acknowledged)}"})
                response.raise_for_status()
                acknowledged.append(response.json()["seq"])
                first.set()

    poster = threading.Thread(target=post, daemon=True)
    poster.start()
    try:
        assert first.wait(30), "the server acknowledged nothing"
        backup = run_cli("backup", "--database", db_path, db_path.with_name("backup.db"))
        live = run_cli("verify", "--database", db_path, "--json")
    finally:
        stop.set()
        poster.join(30)

    assert (0, 0) == (backup.code, live.code)
    copy = run_cli("verify", "--database", db_path.with_name("backup.db"), "--json").json()
    assert 3_000 < copy["events"] <= live.json()["events"] <= acknowledged[-1]


def test_backup_will_not_overwrite_a_file(log: Path, tmp_path: Path) -> None:
    """A backup never clobbers an existing file."""
    dest = tmp_path / "precious.db"
    dest.write_text("keep me")

    result = run_main("backup", "--database", log, dest)

    assert 2 == result.code
    assert "keep me" == dest.read_text()


def test_backup_into_a_missing_directory_is_one_line(log: Path, tmp_path: Path) -> None:
    """A backup destination that cannot be created is reported in one line, exit 2."""
    result = run_main("backup", "--database", log, tmp_path / "no" / "such" / "backup.db")

    assert 2 == result.code
    assert "cannot write the backup" in result.err
    assert "Traceback" not in result.err


def test_backup_of_a_tampered_log_is_reported(log: Path, tmp_path: Path) -> None:
    """Backing up a log that does not verify reports failure with the broken seq."""
    edit(log, 4, new_counter=4444)

    result = run_cli("backup", "--database", log, tmp_path / "backup.db")

    assert 1 == result.code
    assert "seq 4" in result.err


def test_verify_beside_a_writer_sees_a_consistent_snapshot(big_log: Path) -> None:
    """Verify on a log that is being appended to succeeds: it reads one consistent snapshot."""
    with Writer(big_log) as writer:
        before = writer.committed
        results = [run_cli("verify", "--database", big_log, "--json") for _ in range(3)]
        during = writer.committed - before

    assert [0, 0, 0] == [r.code for r in results]
    assert during > 0, "the writer was not writing during verify"
    counts = [r.json()["events"] for r in results]
    assert counts == sorted(counts)
    assert counts[0] >= 12_000


def test_long_work_stays_quiet_when_piped(big_log: Path) -> None:
    """With stderr piped, verifying 12,000 events prints no progress bar, only the result."""
    result = run_cli("verify", "--database", big_log)

    assert (0, "") == (result.code, result.err)
    assert 1 == len(result.out.splitlines())


def test_progress_shows_on_the_terminal_and_keeps_piped_output_clean(big_log: Path) -> None:
    """With stderr on a terminal and stdout piped: the bar on the terminal, only the JSON piped."""
    master, terminal = pty.openpty()
    shown: list[bytes] = []

    def watch() -> None:
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # the terminal side closed
                return
            if not data:
                return
            shown.append(data)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "eventstate.cli",
                "verify",
                "--database",
                str(big_log),
                "--json",
            ],
            stdout=subprocess.PIPE,
            stderr=terminal,
            check=False,
            timeout=60,
        )
    finally:
        os.close(terminal)
        watcher.join(10)
        os.close(master)

    assert 0 == proc.returncode
    assert 1 == len(proc.stdout.splitlines())
    assert json.loads(proc.stdout)["ok"]
    assert b"verifying" in b"".join(shown)
