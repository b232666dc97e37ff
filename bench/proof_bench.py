"""Benchmark Merkle proofs and checkpoints on a large log; prints figures, asserts nothing.

    python bench/proof_bench.py [--events 1000000] [--database FILE] [--requests 20000] [--keep]

Builds a log of N events through the real write path (`EventLog.import_events`, which appends the
tree nodes exactly as the server's commits do) unless `--database` names an existing one. Then:

- server time of a proof: `merkle.inclusion_proof` / `consistency_proof` over the stored nodes plus
  the JSON body, for random seqs and tree sizes, measured in process: p50, p99, max;
- the same requests over HTTP against `eventstate serve` (client-observed latency, one connection,
  so it includes the HTTP stack and the loopback round trip);
- `GET /checkpoint`: the cost of signing a new head (root, consistency with the last checkpoint,
  Ed25519) against answering an already-signed head.

The issue's target: proofs at 1M events in under 1 ms of server time at p99.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from eventstate import merkle
from eventstate.adapters.sqlite.store import SQLiteStore as EventLog
from eventstate.checkpoints import CheckpointLog
from eventstate.domain import GENESIS_HASH, Event, State, chain_hash, format_timestamp
from eventstate.note import Signer
from eventstate.serialization import encode


def _events(count: int) -> Iterator[Event]:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    state, previous = State(), GENESIS_HASH
    for seq in range(1, count + 1):
        new = State(seq, "deploy finished" if seq % 3 else state.message)
        stamp = format_timestamp(start + timedelta(milliseconds=seq))
        previous = chain_hash(seq, stamp, state, new, previous)
        yield Event(seq, stamp, state, new, previous)
        state = new


def build(path: Path, count: int) -> None:
    """A log of `count` events at `path`, written through the real append path."""
    started = time.perf_counter()
    log = EventLog.open(path, synchronous="OFF")
    try:
        log.import_events(_events(count), batch=20_000)
    finally:
        log.close()
    print(f"built {count:,} events in {time.perf_counter() - started:.1f} s "
          f"({os.path.getsize(path) / 2**20:.0f} MiB)")


def _percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e6

    return f"p50 {at(0.50):7.1f} µs   p99 {at(0.99):7.1f} µs   max {ordered[-1] * 1e6:8.1f} µs"


def _time(requests: int, work: Callable[[random.Random], object]) -> list[float]:
    rng = random.Random(7)  # noqa: S311 - reproducible request mix, not a secret
    samples = []
    for _ in range(requests):
        started = time.perf_counter()
        work(rng)
        samples.append(time.perf_counter() - started)
    return samples


def _cpu_time(requests: int, work: Callable[[random.Random], object]) -> str:
    """Wall-clock and on-CPU percentiles: on a shared, overloaded machine the scheduler's time
    slices dominate wall-clock p99 (a pure-Python loop shows the same tail); CPU time is the
    server's own work."""
    rng = random.Random(7)  # noqa: S311 - reproducible request mix, not a secret
    wall, cpu = [], []
    for _ in range(requests):
        started, on_cpu = time.perf_counter(), time.thread_time()
        work(rng)
        cpu.append(time.thread_time() - on_cpu)
        wall.append(time.perf_counter() - started)
    return f"wall {_percentiles(wall)}\n{'':21}on CPU {_percentiles(cpu)}"


def in_process(path: Path, requests: int) -> None:
    """Server time of the proof handlers' work, without the HTTP stack."""
    log = EventLog.open(path, readonly=True)
    try:
        size = log.head().version

        def inclusion(rng: random.Random) -> bytes:
            tree = rng.randint(1, size)
            seq = rng.randint(1, tree)
            hashes = merkle.inclusion_proof(seq - 1, tree, log.nodes)
            return encode({"seq": seq, "tree_size": tree, "hashes": [base64.b64encode(h).decode()
                                                                      for h in hashes]})

        def consistency(rng: random.Random) -> bytes:
            second = rng.randint(1, size)
            first = rng.randint(1, second)
            hashes = merkle.consistency_proof(first, second, log.nodes)
            return encode({"from": first, "to": second, "hashes": [base64.b64encode(h).decode()
                                                                   for h in hashes]})

        print(f"in process, {size:,} events, {requests:,} random requests each:")
        print(f"  inclusion proof    {_cpu_time(requests, inclusion)}")
        print(f"  consistency proof  {_cpu_time(requests, consistency)}")
        print(f"  (pure-Python loop  {_cpu_time(requests, lambda _r: sum(range(2000)))})")
        signer = Signer.generate("bench.example/log")
        checkpoints = CheckpointLog(signer)
        checkpoints.checkpoint(size - 1000, log.nodes)
        started = time.perf_counter()
        checkpoints.checkpoint(size, log.nodes)
        fresh = time.perf_counter() - started
        cached = _time(requests, lambda _rng: checkpoints.checkpoint(size, log.nodes))
        print(f"  checkpoint, new head (root + consistency check + Ed25519): {fresh * 1e6:.0f} µs")
        print(f"  checkpoint, same head again                 {_percentiles(cached)}")
        print(f"  signatures made: {checkpoints.signed} for {requests + 2:,} checkpoint requests")
    finally:
        log.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def over_http(path: Path, requests: int) -> None:
    """Client-observed latency of the proof endpoints against a real server, one connection."""
    port = _free_port()
    server = subprocess.Popen(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "eventstate.cli", "serve", "--port", str(port), "--database", str(path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        deadline = time.monotonic() + 60
        while True:
            try:
                conn.request("GET", "/health/ready")
                ready = conn.getresponse()
                ready.read()
                if ready.status == 200:
                    break
            except OSError:
                conn.close()
            if time.monotonic() > deadline:
                raise TimeoutError("the server did not become ready within 60 s")
            time.sleep(0.1)
        conn.request("GET", "/status")
        size = int(json.loads(conn.getresponse().read())["version"])

        def get(target: str) -> None:
            conn.request("GET", target)
            response = conn.getresponse()
            response.read()
            assert response.status == 200, response.status

        def inclusion(rng: random.Random) -> None:
            tree = rng.randint(1, size)
            get(f"/proofs/inclusion/{rng.randint(1, tree)}?tree_size={tree}")

        def consistency(rng: random.Random) -> None:
            second = rng.randint(1, size)
            get(f"/proofs/consistency?from={rng.randint(1, second)}&to={second}")

        _time(200, inclusion)  # warm up
        print(f"over HTTP (client-observed, one connection), {requests:,} requests each:")
        print(f"  inclusion proof    {_percentiles(_time(requests, inclusion))}")
        print(f"  consistency proof  {_percentiles(_time(requests, consistency))}")
        print(f"  GET /status        {_percentiles(_time(requests, lambda _r: get('/status')))}")
        conn.close()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)


def main() -> None:
    """Parse arguments, build or reuse the log, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--database", type=Path, help="reuse (or create) this log")
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--keep", action="store_true", help="keep the generated log")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="proof-bench-")
    path = args.database or Path(tmp) / "events.db"
    try:
        if not path.exists():
            build(path, args.events)
        in_process(path, args.requests)
        over_http(path, args.requests)
    finally:
        if not args.keep and args.database is None:
            for name in os.listdir(tmp):
                os.unlink(os.path.join(tmp, name))
            os.rmdir(tmp)


if __name__ == "__main__":
    main()
