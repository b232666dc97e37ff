"""`eventstate restore --replica s3://… --database PATH [--at RFC3339]`: a log back from its replica.

Litestream restores the replica into a scratch file beside the destination; eventstate then checks
the whole chain and every head anchor written beside the replica, and only then puts the log at
`--database` (which must not exist). With `--at`, the result is the log as it was at that moment:
the events stamped at or before it, taken from the replica as it stood shortly after it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

from eventstate.adapters import open_store
from eventstate.audit import AuditFailed, verify
from eventstate.domain import Head, format_timestamp, parse_timestamp
from eventstate.ports import EventStore, StoreError
from eventstate.replication import (
    Anchor,
    ReplicaError,
    ReplicaTarget,
    describe_store_error,
    list_anchors,
    litestream_env,
    litestream_executable,
    render_config,
)

#: How long after `--at` the replica is read: Litestream captures a commit within its monitor
#: interval (0.1 s), so a replica state this much later holds every event stamped before `--at`.
_CAPTURE_SLACK = timedelta(seconds=10)


class RestoreRefused(Exception):
    """The restored log failed its checks (chain or anchors); nothing was left at --database."""


def _check_destination(dest: Path) -> None:
    if dest.exists() or dest.with_name(dest.name + "-wal").exists():
        raise ReplicaError(f"{dest} already exists; restore only into a new file")
    if not dest.parent.is_dir():
        raise ReplicaError(f"directory {dest.parent} does not exist")
    if not os.access(dest.parent, os.W_OK):
        raise ReplicaError(f"directory {dest.parent} is not writable by this user")


def _check_store(client: Any, target: ReplicaTarget) -> None:
    """Fail with one line unless the store answers and holds a replica under the prefix."""
    try:
        found = client.list_objects_v2(Bucket=target.bucket, Prefix=target.level_prefix(0), MaxKeys=1)
    except Exception as e:  # every store failure becomes one line
        raise ReplicaError(describe_store_error(target, e)) from None
    if not found.get("KeyCount"):
        raise ReplicaError(f"no replica at {target.url}"
                           + (f" on {target.endpoint}" if target.endpoint else ""))


def _litestream_restore(target: ReplicaTarget, scratch: Path, out: Path, at: str | None) -> None:
    config = scratch / "litestream.yml"
    config.write_text(render_config(scratch / "source.db", target, sync_interval=1.0))
    command = [litestream_executable(), "restore", "-config", str(config), "-no-expand-env",
               "-o", str(out)]
    if at is not None:
        later = parse_timestamp(at) + _CAPTURE_SLACK
        command += ["-timestamp", later.strftime("%Y-%m-%dT%H:%M:%SZ")]
    command.append(str((scratch / "source.db").resolve()))
    done = subprocess.run(command, env=litestream_env(), capture_output=True, text=True,  # noqa: S603
                          timeout=3600, check=False)
    if done.returncode != 0 or not out.exists():
        lines = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
        last = lines[-1].removeprefix("Error: ") if lines else f"exit status {done.returncode}"
        if at is not None and "no matching backup" in last:
            raise ReplicaError(f"the replica {target.url} holds nothing at or before {at}")
        raise ReplicaError(f"litestream could not restore {target.url}: {last}")


def _check_anchors(log: EventStore, head: Head, anchors: list[Anchor], *, whole: bool) -> int:
    """Every anchor the restored log reaches must match it; return how many did."""
    by_seq: dict[int, set[str]] = {}
    for anchor in anchors:
        by_seq.setdefault(anchor.seq, set()).add(anchor.hash)
    matched = 0
    with log.snapshot() as snap:
        for seq, hashes in sorted(by_seq.items()):
            if len(hashes) > 1:
                raise RestoreRefused(f"seq {seq} has {len(hashes)} different anchors beside the replica "
                                     "(one was forged)")
            if seq > head.version:
                if whole:
                    raise RestoreRefused(
                        f"the replica ends at seq {head.version} but seq {seq} was anchored: "
                        "events acknowledged and replicated earlier are missing from the replica")
                continue
            event = snap.event(seq)
            if event is None or event.hash not in hashes:
                raise RestoreRefused(
                    f"seq {seq} differs from its anchor: the replicated history was rewritten")
            matched += 1
    return matched


def _remove(path: Path) -> None:
    for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        leftover.unlink(missing_ok=True)


def restore(target: ReplicaTarget, dest: Path, *, at: str | None = None) -> tuple[Head, int]:
    """Restore the replica (as of `at`) into the new file `dest`, checked; return its head and
    the number of anchors it matched."""
    _check_destination(dest)
    client = target.client()
    _check_store(client, target)
    try:
        anchors = list_anchors(client, target)
    except Exception as e:
        raise ReplicaError(describe_store_error(target, e)) from None
    scratch = Path(tempfile.mkdtemp(prefix=f".{dest.name}-restore-", dir=dest.parent))
    try:
        restored = scratch / "restored.db"
        _litestream_restore(target, scratch, restored, at)
        log = open_store(restored, readonly=True, check_head=False)
        try:
            try:
                head = verify(log)
            except AuditFailed as e:
                raise RestoreRefused(
                    f"the restored chain breaks at seq {e.error.seq}: {e.error.reason}") from None
            matched = _check_anchors(log, head, anchors, whole=at is None)
            if at is not None:
                with log.snapshot() as snap:
                    until = snap.seq_at(at)
                    if until == 0:
                        raise ReplicaError(f"the log held no events at or before {at}")
                    copy = open_store(dest)
                    try:
                        copy.import_events(snap.events(until=until))
                        head = copy.head()
                    except BaseException:
                        copy.close()
                        _remove(dest)
                        raise
                    copy.close()
        finally:
            log.close()
        if at is None:
            for suffix in ("", "-wal"):
                part = restored.with_name(restored.name + suffix)
                if part.exists():
                    part.rename(dest.with_name(dest.name + suffix))
        fd = os.open(dest.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return head, matched
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _cmd_restore(args: argparse.Namespace) -> int:
    at = None
    if args.at is not None:
        try:
            at = format_timestamp(parse_timestamp(args.at))
        except ValueError:
            raise ReplicaError(
                f"--at must be an RFC 3339 timestamp with an offset, not {args.at!r}") from None
    target = ReplicaTarget.parse(args.replica, os.environ.get("EVENTSTATE_REPLICA_ENDPOINT"))
    dest = Path(args.database)
    try:
        head, matched = restore(target, dest, at=at)
    except RestoreRefused as e:
        print(f"eventstate: restore REFUSED: {e}", file=sys.stderr)
        return 1
    except StoreError as e:
        raise ReplicaError(str(e)) from None
    when = f" as of {at}" if at else ""
    print(f"restored {dest}{when}: {head.version} events, chain verified, {matched} anchors matched; "
          f"head {head.version}:{head.hash}")
    return 0


def add_command(sub: Any) -> None:
    """Register `eventstate restore` on the CLI's subparsers."""
    p = sub.add_parser("restore", help="restore the log from its off-host replica into a new file")
    p.add_argument("--replica", required=True, metavar="s3://BUCKET/PREFIX",
                   help="the replica (EVENTSTATE_REPLICA_ENDPOINT for S3-compatible stores)")
    p.add_argument("--database", required=True, help="the new database file to create")
    p.add_argument("--at", metavar="RFC3339", help="restore the log as it was at this moment")
    p.set_defaults(run=_cmd_restore)
