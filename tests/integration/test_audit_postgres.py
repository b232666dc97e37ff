"""Audit commands on a PostgreSQL log (by URL or EVENTSTATE_DATABASE); moving logs between backends."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from _audit_support import build, run_cli

from _postgres import Cluster, fresh_database, raw_sql


def _cli_env(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "eventstate.cli", *args], capture_output=True,
                          text=True, timeout=120, check=False, env={**os.environ, **env})


def test_sqlite_to_postgresql_to_sqlite_keeps_every_event_and_hash(postgres_cluster: Cluster,
                                                                   tmp_path: Path) -> None:
    """export → import into an empty PostgreSQL database → backup to SQLite: the same bytes, verified."""
    source = tmp_path / "source.db"
    head = build(source, 40)
    exported = tmp_path / "source.jsonl"
    assert 0 == run_cli("export", "--database", source, "--output", exported).code
    url = fresh_database(postgres_cluster, initialise=False)  # import brings the schema itself
    imported = run_cli("import", "--database", url, exported)
    assert 0 == imported.code, imported.err
    verified = run_cli("verify", "--database", url, "--json").json()
    assert (head.version, head.hash) == (verified["head_seq"], verified["head_hash"])
    copy = tmp_path / "copy.db"
    backed_up = run_cli("backup", "--database", url, copy)
    assert 0 == backed_up.code, backed_up.err
    assert "verified" in backed_up.out
    again = tmp_path / "copy.jsonl"
    assert 0 == run_cli("export", "--database", copy, "--output", again).code
    assert exported.read_bytes() == again.read_bytes()


def test_audit_commands_honour_eventstate_database(postgres_cluster: Cluster, tmp_path: Path) -> None:
    """verify, replay and export read EVENTSTATE_DATABASE when --database is not given."""
    source = tmp_path / "s.db"
    head = build(source, 8)
    exported = tmp_path / "s.jsonl"
    assert 0 == run_cli("export", "--database", source, "--output", exported).code
    url = fresh_database(postgres_cluster)
    assert 0 == run_cli("import", "--database", url, exported).code
    env = {"EVENTSTATE_DATABASE": url}
    assert 0 == _cli_env(env, "verify").returncode
    replayed = _cli_env(env, "replay", "--until-seq", "3", "--json")
    assert 0 == replayed.returncode
    assert exported.read_text().splitlines()[:2] == _cli_env(env, "export").stdout.splitlines()[:2]
    assert head.version == json.loads(_cli_env(env, "verify", "--json").stdout)["head_seq"]


def test_import_refuses_a_postgresql_log_that_holds_events(postgres_cluster: Cluster,
                                                           tmp_path: Path) -> None:
    """Import fills only an empty log: one line, exit 2, nothing written."""
    source = tmp_path / "s.db"
    build(source, 5)
    exported = tmp_path / "s.jsonl"
    assert 0 == run_cli("export", "--database", source, "--output", exported).code
    url = fresh_database(postgres_cluster)
    assert 0 == run_cli("import", "--database", url, exported).code
    refused = run_cli("import", "--database", url, exported)
    assert (2, 1) == (refused.code, len(refused.err.strip().splitlines()))
    assert "already holds events" in refused.err
    assert [("5",)] == raw_sql(url)("SELECT count(*)::text FROM events")


def test_verify_on_postgresql_locates_a_rewritten_event(postgres_cluster: Cluster,
                                                       tmp_path: Path) -> None:
    """With the triggers dropped by the owner, a rewritten event is found at its seq."""
    source = tmp_path / "s.db"
    build(source, 10)
    exported = tmp_path / "s.jsonl"
    assert 0 == run_cli("export", "--database", source, "--output", exported).code
    url = fresh_database(postgres_cluster)
    assert 0 == run_cli("import", "--database", url, exported).code
    sql = raw_sql(url)
    sql("ALTER TABLE events DISABLE TRIGGER USER")
    sql("UPDATE events SET new_counter = 999 WHERE seq = 6")
    result = run_cli("verify", "--database", url)
    assert 1 == result.code
    assert "seq 6" in result.err
