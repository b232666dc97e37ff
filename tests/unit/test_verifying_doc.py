"""The verification script in ARCHITECTURE.md works on real exports, so the text cannot rot."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from eventstate.commands import Command, apply_batch
from eventstate.domain import State, Update, canonical_bytes
from eventstate.eventlog import EventLog

DOC = Path(__file__).parents[2] / "ARCHITECTURE.md"
UPDATES = [
    Update(counter=-7),
    Update(message="héllo 🙂"),
    Update(counter=2**63 - 1, message="two\nlines: and a colon"),
    Update(message=""),
    Update(counter=0),
    Update(counter=-(2**63), message="x" * 300),
]


def _script(tmp_path: Path) -> Path:
    blocks = re.findall(r"^```python\n(.*?)^```", DOC.read_text(encoding="utf-8"), re.S | re.M)
    chain = [b for b in blocks if b.startswith('"""Recompute the eventstate hash chain')]
    assert 1 == len(chain), "ARCHITECTURE.md should hold exactly one chain-checking script"
    script = tmp_path / "verify_export.py"
    script.write_text(chain[0], encoding="utf-8")
    return script


@pytest.fixture
def export(tmp_path: Path) -> Path:
    """A JSONL export, made by `eventstate export`, of a log with awkward counters and messages."""
    database = tmp_path / "events.db"
    log = EventLog.open(database)
    try:
        start = datetime(2026, 11, 21, tzinfo=UTC)
        for i, update in enumerate(UPDATES):
            with log.transaction() as tx:
                apply_batch(
                    tx, [Command(update)], start + timedelta(microseconds=i // 2), timedelta(days=1)
                )
    finally:
        log.close()
    out = tmp_path / "log.jsonl"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "eventstate.cli",
            "export",
            "--database",
            str(database),
            "--output",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    return out


def run_doc_script(script: Path, export: Path) -> subprocess.CompletedProcess[str]:
    """Run the script with the standard library only: isolated mode, no site-packages."""
    return subprocess.run(
        [sys.executable, "-I", "-S", str(script), str(export)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_doc_script_accepts_an_intact_export(tmp_path: Path, export: Path) -> None:
    """On an untouched export the script prints OK with the same head hash eventstate recorded."""
    last = json.loads(export.read_text(encoding="utf-8").splitlines()[-1])

    result = run_doc_script(_script(tmp_path), export)

    assert (0, "") == (result.returncode, result.stderr)
    assert f"OK: {len(UPDATES)} events, head {len(UPDATES)}:{last['hash']}\n" == result.stdout


@pytest.mark.parametrize(
    ("case", "broken"),
    [
        ("message edited", 3),
        ("counter edited", 5),
        ("line removed", 2),
        ("lines swapped", 2),
        ("hash edited", 6),
        ("timestamp moved back", 4),
    ],
)
def test_the_doc_script_names_the_first_broken_seq(
    tmp_path: Path, export: Path, case: str, broken: int
) -> None:
    """On a tampered export the script exits 1 naming the first broken seq."""
    events = [json.loads(line) for line in export.read_text(encoding="utf-8").splitlines()]
    match case:
        case "message edited":
            events[2]["new"]["message"] = "two\nlines: and a colon!"
        case "counter edited":
            events[4]["new"]["counter"] = 1
        case "line removed":
            del events[1]
        case "lines swapped":
            events[1], events[3] = events[3], events[1]
        case "hash edited":
            events[5]["hash"] = "0" * 64
        case _:
            events[3]["timestamp"] = "2026-11-20T00:00:00.000000Z"
    export.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")

    result = run_doc_script(_script(tmp_path), export)

    assert 1 == result.returncode
    assert result.stdout.startswith(f"BROKEN at seq {broken}:")


def test_the_documented_expression_is_the_canonical_encoding() -> None:
    """The one-line encoding in the text gives the same bytes as `domain.canonical_bytes`."""
    text = DOC.read_text(encoding="utf-8")
    assert 'b"eventstate/1\\n%d\\n%s\\n%d\\n%d:%s\\n%d\\n%d:%s\\n%s"' in text
    old, new = State(-3, "a\n:é"), State(2**63 - 1, "")
    old_utf8, new_utf8 = old.message.encode(), new.message.encode()
    documented = b"eventstate/1\n%d\n%s\n%d\n%d:%s\n%d\n%d:%s\n%s" % (
        9,
        b"2026-11-21T00:00:00.000000Z",
        old.counter,
        len(old_utf8),
        old_utf8,
        new.counter,
        len(new_utf8),
        new_utf8,
        b"ab" * 32,
    )

    assert canonical_bytes(9, "2026-11-21T00:00:00.000000Z", old, new, "ab" * 32) == documented
