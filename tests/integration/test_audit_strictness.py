"""The audit commands refuse bad input in one line with exit 2 and write nothing; import and verify
check the domain's rules about values, not only the hashes."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from _audit_support import append, insert, run_cli, run_main, set_recorded_head, updates

from eventstate.domain import GENESIS_HASH, State, chain_hash

HASH = "a" * 64


def chain(*steps: tuple[str, State]) -> list[dict[str, object]]:
    """Correctly hashed events (timestamp, new state) from the empty log: what a careful forger writes."""
    events, old, previous = [], State(), GENESIS_HASH
    for seq, (stamp, new) in enumerate(steps, 1):
        digest = chain_hash(seq, stamp, old, new, previous)
        events.append({"seq": seq, "timestamp": stamp,
                       "old": {"counter": old.counter, "message": old.message},
                       "new": {"counter": new.counter, "message": new.message}, "hash": digest})
        old, previous = new, digest
    return events


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def event_line(**changes: object) -> str:
    event = chain(("2026-01-01T00:00:00.000000Z", State(1, "a")))[0]
    event.update(changes)
    return json.dumps(event, ensure_ascii=False)


def refused_in_one_line(result, tmp_path: Path, expected_code: int = 2) -> str:
    assert expected_code == result.code, result.err
    lines = result.err.strip().splitlines()
    assert 1 == len(lines), result.err
    assert "Traceback" not in result.err
    assert not (tmp_path / "new.db").exists()
    return lines[0]


@pytest.mark.parametrize(("line", "why"), [
    ("[1]", "an array"), ('"event"', "a string"), ("42", "a number"), ("null", "null"),
    (event_line(new={"counter": 2**64, "message": "a"}), "a counter past 64 bits"),
    (event_line(new={"counter": -(2**63) - 1, "message": "a"}), "a counter below 64 bits"),
    (event_line(timestamp="\uff12\uff10\uff12\uff16-01-01T00:00:00.000000Z"), "fullwidth digits"),
    (event_line(timestamp="2026-01-01T00:00:00.000000Zé"), "non-ASCII after the timestamp"),
    (event_line(seq=2**63), "a seq past 64 bits"),
    (event_line(hash="ÿ" * 64), "a non-ASCII hash"),
    ('{"seq": 1, "seq": 1}', "an incomplete object"),
])
def test_import_refuses_a_malformed_line_in_one_line(tmp_path: Path, line: str, why: str) -> None:
    """Each line that is not an eventstate event: one line naming the file and line, exit 2."""
    export = write_lines(tmp_path / "bad.jsonl", [line])
    message = refused_in_one_line(run_main("import", "--database", tmp_path / "new.db", export),
                                  tmp_path)
    assert "bad.jsonl line 1" in message, why


@pytest.mark.parametrize(("steps", "words"), [
    ((("2026-01-01T00:00:00.000000Z", State(1, "x" * 1025)),), "message"),
    ((("2026-01-01T00:00:00.000000Z", State(1, "a")), ("2025-12-31T23:59:59.000000Z", State(2, "b"))),
     "earlier"),
    ((("0000-01-01T00:00:00.000000Z", State(1, "a")),), "timestamp"),
    ((("2026-02-30T00:00:00.000000Z", State(1, "a")),), "timestamp"),
])
def test_import_checks_the_domain_rules_not_only_the_hashes(tmp_path: Path, steps, words) -> None:
    """A correctly hashed chain that breaks a rule (message length, time order, calendar) is refused."""
    export = write_lines(tmp_path / "forged.jsonl", [json.dumps(e) for e in chain(*steps)])
    result = run_main("import", "--database", tmp_path / "new.db", export)
    assert result.code in (1, 2)
    assert words in result.err
    assert not (tmp_path / "new.db").exists()


def test_verify_checks_the_domain_rules_on_the_database(tmp_path: Path) -> None:
    """An appended, correctly hashed event with an over-long message fails verify at its seq."""
    path = tmp_path / "events.db"
    head = append(path, updates(3))
    new = State(7, "x" * 50_000)
    digest = chain_hash(4, head.timestamp, head.state, new, head.hash)
    insert(path, {"seq": 4, "timestamp": head.timestamp, "old_counter": head.state.counter,
                  "old_message": head.state.message, "new_counter": 7, "new_message": new.message,
                  "hash": digest}, shift=False)
    set_recorded_head(path, 4, digest)
    result = run_main("verify", "--database", path)
    assert 1 == result.code
    assert "seq 4" in result.err
    assert "message" in result.err


def test_import_of_a_csv_export_says_csv_is_not_accepted(tmp_path: Path) -> None:
    """Importing a CSV export: one line saying only JSONL is accepted."""
    path = tmp_path / "events.db"
    append(path, updates(2))
    assert 0 == run_main("export", "--database", path, "--format", "csv", "--output",
                         tmp_path / "log.csv").code
    message = refused_in_one_line(run_main("import", "--database", tmp_path / "new.db",
                                           tmp_path / "log.csv"), tmp_path)
    assert "CSV" in message


@pytest.mark.parametrize("args", [
    ("export", "--after", str(2**63)), ("export", "--after", "-1"),
    ("verify", "--expect-head", f"{2**63}:{HASH}"), ("verify", "--expect-head", "0:" + HASH),
    ("verify", "--expect-head", "1:xyz"),
    ("replay", "--until-seq", str(2**64)),
    ("replay", "--at", "0001-01-01T00:00:00+01:00"), ("replay", "--at", "9999-12-31T23:59:59-01:00"),
    ("replay", "--at", "2026-01-01T00:00:60Z"),
])
def test_out_of_range_arguments_are_one_line_exit_2(tmp_path: Path, args) -> None:
    """Values past 64 bits or outside the calendar: one line naming the flag and the value, exit 2."""
    path = tmp_path / "events.db"
    append(path, updates(2))
    message = refused_in_one_line(run_cli(args[0], "--database", path, *args[1:]), tmp_path)
    assert args[1] in message
    assert args[2] in message or "--at" == args[1]


def test_replay_at_compares_moments_before_the_year_1000(tmp_path: Path) -> None:
    """A time in the year 999 is before every event: the initial state, not the latest one."""
    path = tmp_path / "events.db"
    append(path, updates(3))
    result = run_main("replay", "--database", path, "--at", "0999-06-01T00:00:00Z", "--json")
    assert 0 == result.code
    assert 0 == json.loads(result.out)["version"]


def test_audit_commands_honour_eventstate_database(tmp_path: Path, monkeypatch) -> None:
    """Without --database, verify/replay/export/backup use EVENTSTATE_DATABASE like the server."""
    path = tmp_path / "events.db"
    append(path, updates(2))
    monkeypatch.setenv("EVENTSTATE_DATABASE", str(path))
    assert 0 == run_cli("verify").code
    assert 2 == json.loads(run_cli("replay", "--json").out)["version"]


def test_export_reports_what_it_wrote(tmp_path: Path) -> None:
    """export says how many events, which seqs and where, on stderr (stdout may be the export)."""
    path = tmp_path / "events.db"
    append(path, updates(5))
    result = run_main("export", "--database", path, "--after", "2", "--output", tmp_path / "e.jsonl")
    assert 0 == result.code
    assert "exported 3 events (seq 3 to 5)" in result.err
    assert str(tmp_path / "e.jsonl") in result.err


def test_verify_says_the_expected_head_matched(tmp_path: Path) -> None:
    """With --expect-head, a passing verify says the anchor matched."""
    path = tmp_path / "events.db"
    head = append(path, updates(3))
    result = run_main("verify", "--database", path, "--expect-head", f"2:{_hash_at(path, 2)}")
    assert 0 == result.code
    assert f"expected head 2:{_hash_at(path, 2)} matched" in result.out
    assert head.version == 3


def test_backup_leaves_one_self_contained_file(tmp_path: Path) -> None:
    """The backup is one file: no -wal or -shm beside it, and it verifies on its own."""
    path = tmp_path / "events.db"
    append(path, updates(3))
    out = tmp_path / "out"
    out.mkdir()
    assert 0 == run_cli("backup", "--database", path, out / "copy.db").code
    assert ["copy.db"] == sorted(p.name for p in out.iterdir())
    assert 0 == run_main("verify", "--database", out / "copy.db").code


def _hash_at(path: Path, seq: int) -> str:
    with sqlite3.connect(path) as conn:
        return str(conn.execute("SELECT hash FROM events WHERE seq = ?", (seq,)).fetchone()[0])
