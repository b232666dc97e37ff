"""Audit commands over a log, on any backend: verify, replay, export, import and backup.

Each reads the log through one consistent snapshot, so it is safe beside a running server, and
streams events in constant memory. Long work shows a progress bar on a terminal, nothing when piped.
"""

from __future__ import annotations

import argparse
import csv
import functools
import io
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from itertools import islice
from pathlib import Path
from typing import IO, Any

from eventstate.adapters import database_setting, init_store, open_store
from eventstate.domain import (
    ChainBroken,
    Event,
    Head,
    evolve,
    fold_rows,
    format_timestamp,
    parse_timestamp,
)
from eventstate.ports import (
    EventStore,
    ReadSnapshot,
    StoreCorrupt,
    StoreError,
    UnreadableValue,
    row_to_event,
)
from eventstate.serialization import (
    decode_event,
    encode,
    encode_events_jsonl,
    unstructure_status,
)

CSV_COLUMNS = (
    "seq",
    "timestamp",
    "old_counter",
    "old_message",
    "new_counter",
    "new_message",
    "hash",
)
# Audits read every row, not only seq > 0: a forged row at seq 0 or below must not hide from them.
LOWEST_SEQ = -(2**63)
CHUNK = 4096
SEQ_MAX = 2**63 - 1
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


class AuditFailed(Exception):
    """The log (or an export) does not verify; carries the first broken seq."""

    def __init__(self, error: ChainBroken) -> None:
        self.error = error
        super().__init__(str(error))


def _progress(total: int, label: str) -> AbstractContextManager[Callable[[int], None]]:
    """A progress bar on a terminal (stderr), a no-op otherwise."""
    if not sys.stderr.isatty() or total < 10_000:
        return nullcontext(lambda _n: None)
    # Imported only for a terminal: rich costs start-up time that piped runs need not pay.
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TimeRemainingColumn,
    )

    class _Bar(AbstractContextManager[Callable[[int], None]]):
        def __enter__(self) -> Callable[[int], None]:
            self._p = Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                # stderr, the terminal we checked: stdout may be a pipe carrying --json.
                console=Console(stderr=True),
                transient=True,
            )
            self._p.start()
            task = self._p.add_task(label, total=total)
            return lambda n: self._p.update(task, completed=n)

        def __exit__(self, *exc: object) -> None:
            self._p.stop()

    return _Bar()


def check_chain(
    events: Iterator[Event], tick: Callable[[int], None] | None = None, start: Head | None = None
) -> Head:
    """Fold `events`, checking every link; raise ChainBroken at the first bad one."""
    head = Head() if start is None else start
    for event in events:
        head = evolve(head, event)
        if tick is not None and not event.seq & 0x3FFF:
            tick(event.seq)
    return head


def _fold_snapshot(snap: ReadSnapshot, *, until: int | None, tick: Callable[[int], None]) -> Head:
    """Fold every row of `snap` up to `until` in chunks, checking the chain; raise ChainBroken."""
    rows = snap.rows(after=LOWEST_SEQ, until=until, batch=CHUNK)
    head = Head()
    while True:
        try:
            chunk = list(islice(rows, CHUNK))
            if not chunk:
                return head
            head = fold_rows(chunk, head)
        except (TypeError, AttributeError, ValueError):
            # A value no eventstate writes: a blob, a string where a counter belongs.
            raise _unreadable_row(snap, head) from None
        except UnreadableValue:
            raise _unreadable_row(snap, head) from None
        tick(head.version)


def _unreadable_row(snap: ReadSnapshot, head: Head) -> ChainBroken:
    """The first row after `head` holding a value of the wrong type or undecodable text."""
    for seq in range(head.version + 1, head.version + CHUNK + 2):
        try:
            event = snap.event(seq)
        except UnreadableValue as e:
            return ChainBroken(seq, str(e))
        if event is None or not _well_typed(event):
            break
    return ChainBroken(seq, "a column holds a value of the wrong type (edited outside eventstate)")


def _well_typed(event: Event) -> bool:
    fields = (
        event.old.counter,
        event.new.counter,
        event.timestamp,
        event.old.message,
        event.new.message,
        event.hash,
    )
    return [type(f) for f in fields] == [int, int, str, str, str, str]


def _head_mismatch(head: Head, recorded: tuple[int, str]) -> ChainBroken:
    """Where a log whose chain verifies contradicts the head recorded beside it."""
    recorded_seq, recorded_hash = recorded
    if recorded_seq > head.version:
        return ChainBroken(
            head.version + 1,
            f"event missing: the log ends at seq {head.version} but "
            f"its recorded head is seq {recorded_seq} (events removed from the end)",
        )
    if recorded_seq < head.version:
        return ChainBroken(
            recorded_seq + 1,
            f"the log goes on to seq {head.version} past its "
            f"recorded head, seq {recorded_seq} (events added, or the head record edited)",
        )
    return ChainBroken(
        head.version,
        f"hash differs from the recorded head {recorded_hash} "
        "(the last event was rewritten, or the head record edited)",
    )


def verify(log: EventStore, *, expect_head: tuple[int, str] | None = None) -> Head:
    """Check the whole log in one snapshot; return its head or raise AuditFailed."""
    with log.snapshot() as snap:
        total = snap.max_seq()
        with _progress(total, "verifying") as tick:
            try:
                head = _fold_snapshot(snap, until=None, tick=tick)
            except ChainBroken as e:
                raise AuditFailed(e) from None
            # The fold read every row above LOWEST_SEQ; only that one seq remains to look at.
            stray = snap.event(LOWEST_SEQ) is not None
        recorded = snap.recorded_head()
        anchored = None if expect_head is None else snap.event(expect_head[0])
    if stray:
        raise AuditFailed(ChainBroken(1, f"expected seq 1, found seq {LOWEST_SEQ} (an event inserted)"))
    if recorded != (head.version, head.hash):
        raise AuditFailed(_head_mismatch(head, recorded))
    if expect_head is not None:
        seq, digest = expect_head
        if anchored is None:
            raise AuditFailed(ChainBroken(seq, f"the log ends at seq {head.version}, before the anchor"))
        if anchored.hash != digest:
            raise AuditFailed(ChainBroken(seq, "hash differs from the anchor: history was rewritten"))
    return head


def replay(log: EventStore, *, until_seq: int | None = None, at: str | None = None) -> Head:
    """The state at a point in history, computed by folding (and checking) events from the start."""
    with log.snapshot() as snap:
        until = until_seq
        if at is not None:
            until = snap.seq_at(at)
        if until is not None and until > snap.max_seq():
            raise StoreError(f"there is no event {until}; the log is at version {snap.max_seq()}")
        if until is not None and until < 0:
            raise StoreError(f"--until-seq must be 0 or more, not {until}")
        total = snap.max_seq() if until is None else until
        with _progress(total, "replaying") as tick:
            try:
                return _fold_snapshot(snap, until=until, tick=tick)
            except ChainBroken as e:
                raise AuditFailed(e) from None


def _anchor(text: str) -> tuple[int, str]:
    seq, _, digest = text.partition(":")
    try:
        number = int(seq)
    except ValueError:
        number = 0
    if not 1 <= number <= SEQ_MAX or not _HEX64.fullmatch(digest):
        raise argparse.ArgumentTypeError(
            f"expected SEQ:HASH with 1 <= SEQ <= {SEQ_MAX} and 64 hex digits, not {text!r}")
    return number, digest.lower()


def _seq_arg(text: str) -> int:
    """A seq given on the command line: 0 to 2**63 - 1."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= SEQ_MAX:
        raise argparse.ArgumentTypeError(f"must be a seq from 0 to {SEQ_MAX}, not {text!r}")
    return value


def _reporting_damage(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """`command`, with the store's complaints about a damaged or altered log turned into one line."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        args.database = _database(args)
        try:
            return command(args)
        except StoreCorrupt as e:
            raise StoreError(f"cannot use {_shown(args.database)}: {e}") from None

    return run


def _database(args: argparse.Namespace) -> str:
    """The database named by --database, else by EVENTSTATE_DATABASE."""
    value = args.database or os.environ.get("EVENTSTATE_DATABASE")
    if not value:
        raise StoreError("no database given: pass --database PATH_OR_URL or set EVENTSTATE_DATABASE")
    return str(value)


def _shown(database: str) -> str:
    """`database` for messages: a URL's password is never printed."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", database)


def _open_ro(database: str) -> EventStore:
    # A log whose recorded head disagrees with its events opens anyway: reporting it, with the
    # seq where it begins, is what the audit commands are for.
    return open_store(database, readonly=True, check_head=False)


def _print_head(head: Head, as_json: bool, out: IO[str]) -> None:
    if as_json:
        out.write(encode(unstructure_status(head)).decode() + "\n")
    else:
        out.write(
            f"version {head.version}  counter {head.state.counter}  "
            f"message {head.state.message!r}  updated_at {head.timestamp or '-'}\n"
        )


def _cmd_verify(args: argparse.Namespace) -> int:
    if args.checkpoint is not None and args.url is not None:  # a server: no database here
        from eventstate.transparency import verify_checkpoint

        return verify_checkpoint(args, _open_ro)
    return _cmd_verify_database(args)


@_reporting_damage
def _cmd_verify_database(args: argparse.Namespace) -> int:
    if args.checkpoint is not None:
        from eventstate.transparency import verify_checkpoint

        return verify_checkpoint(args, _open_ro)
    if args.url is not None or args.vkey is not None:
        raise StoreError("--url and --vkey go with --checkpoint")
    log = _open_ro(args.database)
    try:
        head = verify(log, expect_head=args.expect_head)
    except AuditFailed as e:
        if args.json:
            print(encode({"ok": False, "seq": e.error.seq, "reason": e.error.reason}).decode())
        print(f"eventstate: verify FAILED at seq {e.error.seq}: {e.error.reason}", file=sys.stderr)
        return 1
    finally:
        log.close()
    if args.json:
        print(
            encode(
                {
                    "ok": True,
                    "events": head.version,
                    "head_seq": head.version,
                    "head_hash": head.hash,
                }
            ).decode()
        )
    else:
        print(f"ok: {head.version} events, chain intact; head {head.version}:{head.hash}")
        if args.expect_head is not None:
            print(f"ok: the expected head {args.expect_head[0]}:{args.expect_head[1]} matched")
    return 0


@_reporting_damage
def _cmd_replay(args: argparse.Namespace) -> int:
    at = None
    if args.at is not None:
        try:
            at = format_timestamp(parse_timestamp(args.at))
        except ValueError as e:
            raise StoreError(f"--at: {e}") from None
    log = _open_ro(args.database)
    try:
        head = replay(log, until_seq=args.until_seq, at=at)
    except AuditFailed as e:
        print(f"eventstate: replay FAILED at seq {e.error.seq}: {e.error.reason}", file=sys.stderr)
        return 1
    finally:
        log.close()
    _print_head(head, args.json, sys.stdout)
    return 0


def _output(path: str | None) -> AbstractContextManager[IO[bytes]]:
    if path is None or path == "-":
        return nullcontext(sys.stdout.buffer)
    try:
        return open(path, "xb")
    except FileExistsError:
        raise StoreError(f"{path} already exists; choose a new file for the export") from None
    except OSError as e:
        raise StoreError(f"cannot create {path}: {e.strerror}") from None


@_reporting_damage
def _cmd_export(args: argparse.Namespace) -> int:
    log = _open_ro(args.database)
    try:
        with log.snapshot() as snap, _output(args.output) as out:
            written: list[Event] = []
            events = _noting_last(snap.events(after=args.after), written)
            if args.format == "jsonl":
                for line in encode_events_jsonl(events):
                    out.write(line)
            else:
                text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
                writer = csv.writer(text, lineterminator="\n")
                writer.writerow(CSV_COLUMNS)
                for e in events:
                    writer.writerow(
                        (
                            e.seq,
                            e.timestamp,
                            e.old.counter,
                            e.old.message,
                            e.new.counter,
                            e.new.message,
                            e.hash,
                        )
                    )
                text.detach()
            out.flush()
    finally:
        log.close()
    count, last = (written[0].seq - args.after, written[0].seq) if written else (0, args.after)
    where = args.output or "standard output"
    # On stderr: standard output may be the export itself.
    print(f"exported {count} events (seq {args.after + 1 if count else '-'} to "
          f"{last if count else '-'}) as {args.format} to {where}", file=sys.stderr)
    return 0


def _noting_last(events: Iterator[Event], last: list[Event]) -> Iterator[Event]:
    """`events`, remembering the latest one in `last`."""
    for event in events:
        last[:] = [event]
        yield event


def _read_export(path: Path) -> Iterator[Event]:
    try:
        source = path.open("rb")
    except OSError as e:
        raise StoreError(f"cannot read {path}: {e.strerror}") from None
    with source:
        for number, line in enumerate(source, 1):
            if not line.strip():
                continue
            if number == 1 and line.startswith(b"seq,"):
                raise StoreError(f"{path} is a CSV export; import accepts only JSONL "
                               "(export with --format jsonl)")
            try:
                yield decode_event(line)
            except ValueError as e:
                raise StoreError(f"{path} line {number}: {e}") from None


@_reporting_damage
def _cmd_import(args: argparse.Namespace) -> int:
    source = Path(args.file)
    target = database_setting(args.database)
    if isinstance(target, Path) and target.exists() and target.stat().st_size > 0:
        raise StoreError(f"{target} already exists; import only into a new database")
    # First pass: the whole export must verify before anything is written.
    try:
        head = check_chain(_read_export(source))
    except ChainBroken as e:
        print(f"eventstate: import REFUSED at seq {e.seq}: {e.reason}", file=sys.stderr)
        return 1
    # Second pass: checked again as it is written, in case the file changed in between; on any
    # failure a new SQLite file is removed rather than left half-built (a server log imports in
    # one transaction, so it is left empty).
    # A server database gets the log's schema first if it has none (as `eventstate init` would).
    log = open_store(target, create=True) if isinstance(target, Path) else init_store(target)[0]
    if not isinstance(target, Path) and log.head().version != 0:
        log.close()
        raise StoreError(f"{_shown(args.database)} already holds events; import only into an empty log")
    try:
        count = log.import_events(_checked(_read_export(source)))
    except BaseException as e:
        log.close()
        if isinstance(target, Path):
            _remove_database(target)
        if isinstance(e, ChainBroken):
            print(f"eventstate: import REFUSED at seq {e.seq}: {e.reason}", file=sys.stderr)
            return 1
        raise
    log.close()
    print(f"imported {count} events; head {head.version}:{head.hash}")
    return 0


def _checked(events: Iterator[Event]) -> Iterator[Event]:
    """`events`, each checked against the chain before it is passed on."""
    head = Head()
    for event in events:
        head = evolve(head, event)
        yield event


def _remove_database(path: Path) -> None:
    for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        leftover.unlink(missing_ok=True)


@_reporting_damage
def _cmd_backup(args: argparse.Namespace) -> int:
    dest = Path(args.dest)
    if dest.exists():
        raise StoreError(f"{dest} already exists; choose a new file for the backup")
    log = _open_ro(args.database)
    try:
        # In one step: a step-wise copy restarts whenever a writer commits, so under steady
        # writes it might never finish; one step reads a single consistent snapshot.
        log.backup_to(dest)
    except StoreError:
        _remove_database(dest)
        raise
    finally:
        log.close()
    copy = _open_ro(str(dest))
    try:
        head = verify(copy)
    except AuditFailed as e:
        print(
            f"eventstate: backup FAILED verification at seq {e.error.seq}: {e.error.reason}",
            file=sys.stderr,
        )
        return 1
    finally:
        copy.close()
    print(f"backup {dest}: {head.version} events, verified; head {head.version}:{head.hash}")
    return 0


_DATABASE_HELP = "a SQLite file or a postgresql:// URL (default: EVENTSTATE_DATABASE)"


def add_commands(sub: Any) -> None:
    """Register the audit subcommands on the CLI's subparsers."""
    p = sub.add_parser("verify", help="check the whole log's hash chain, or that it extends a checkpoint")
    p.add_argument("--database", help=_DATABASE_HELP)
    p.add_argument("--json", action="store_true", help="print a JSON result")
    p.add_argument("--checkpoint", metavar="FILE",
                   help="a signed checkpoint saved earlier: check the log extends it (with --vkey)")
    p.add_argument("--vkey", help="the verifier key that keygen printed (text, or a file holding it)")
    p.add_argument("--url", help="with --checkpoint: check a running server instead of a database")
    p.add_argument(
        "--expect-head",
        type=_anchor,
        metavar="SEQ:HASH",
        help="also require the event at SEQ to carry HASH (an anchor you recorded earlier)",
    )
    p.set_defaults(run=_cmd_verify)

    p = sub.add_parser("replay", help="fold the log to the state at a point in history")
    p.add_argument("--database", help=_DATABASE_HELP)
    group = p.add_mutually_exclusive_group()
    group.add_argument("--until-seq", type=_seq_arg, metavar="N")
    group.add_argument("--at", metavar="RFC3339")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=_cmd_replay)

    p = sub.add_parser("export", help="write the ordered log as JSONL or CSV")
    p.add_argument("--database", help=_DATABASE_HELP)
    p.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    p.add_argument("--output", help="file to create (default: standard output)")
    p.add_argument("--after", type=_seq_arg, default=0, metavar="N", help="only events after seq N")
    p.set_defaults(run=_cmd_export)

    p = sub.add_parser("import", help="build a new database from a JSONL export (verified first)")
    p.add_argument("--database", help="the new SQLite file to create, or an empty PostgreSQL log "
                   "(URL); default EVENTSTATE_DATABASE")
    p.add_argument("file", help="a JSONL export")
    p.set_defaults(run=_cmd_import)

    p = sub.add_parser("backup", help="copy a live database consistently, then verify the copy")
    p.add_argument("--database", help=_DATABASE_HELP)
    p.add_argument("dest")
    p.set_defaults(run=_cmd_backup)


__all__ = ["AuditFailed", "add_commands", "check_chain", "replay", "row_to_event", "verify"]
