"""Benchmark `eventstate serve` over HTTP with wrk, and its start-up time and memory on a large log.

Prints figures; asserts nothing. Every scenario runs against a server started on a fresh database:

    scenario       what wrk does
    status_c1      GET /status, 1 connection
    status_c32     GET /status, 32 connections
    logs50_c32     GET /logs?limit=50, 32 connections, after 1,000 events were posted one by one
    update_c1      POST /update, 1 connection
    update_c32     POST /update, 32 connections

then the time from starting the server to its first ready answer (`GET /health/ready`) and its
resident memory, on an empty log and on a log of 1,000,000 events.

With two or more CPUs the server is pinned to one CPU and wrk to another, so that they do not take
turns on the same core. Set EVENTSTATE_BENCH_HELPERS to a directory holding `cpu_probe.py` to print
a CPU speed probe beside the figures (shared machines change speed from minute to minute).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import attrs

from eventstate.domain import GENESIS_HASH, State, chain_hash
from eventstate.eventlog import EventLog

HERE = Path(__file__).resolve().parent
WRK_SCRIPTS = HERE / "wrk"
READY_TIMEOUT_S = 60.0


@attrs.frozen
class Result:
    """What wrk measured in one scenario."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    non2xx: int
    socket_errors: int

    @property
    def rps(self) -> float:
        """Requests per second over the timed run."""
        return self.requests / self.seconds if self.seconds else 0.0


@attrs.frozen
class Pinning:
    """Which CPU the server runs on and which the load generator runs on (None: not pinned)."""

    server: int | None
    loadgen: int | None

    @classmethod
    def choose(cls, enabled: bool) -> Pinning:
        """Server and wrk on two different CPUs this process may use, if there are two."""
        cpus = sorted(os.sched_getaffinity(0))
        if not enabled or len(cpus) < 2:
            return cls(None, None)
        return cls(cpus[1], cpus[0])


def _pin_to(cpu: int | None) -> Callable[[], None] | None:
    """A `preexec_fn` that keeps a child process on `cpu` (and its threads, which inherit it)."""
    if cpu is None:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


def free_port() -> int:
    """A TCP port that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Server:
    """One `eventstate serve` process on a database file, stopped when the block ends."""

    def __init__(self, database: Path, port: int, pinning: Pinning, log: Path) -> None:
        self.database = database
        self.port = port
        self._pinning = pinning
        self._log_path = log
        self._process: subprocess.Popen[bytes] | None = None
        self.startup_s = float("nan")

    def __enter__(self) -> Server:
        command = [
            sys.executable,
            "-m",
            "eventstate.cli",
            "serve",
            "--port",
            str(self.port),
            "--database",
            str(self.database),
        ]
        env = {**os.environ, "EVENTSTATE_LOG_LEVEL": "WARNING"}
        with self._log_path.open("ab") as log:
            started = time.perf_counter()
            self._process = subprocess.Popen(  # noqa: S603 - our own interpreter, our own arguments
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                preexec_fn=_pin_to(self._pinning.server),  # noqa: PLW1509 - no threads here
            )
        try:
            self._wait_ready(started)
        except BaseException:
            self.__exit__()
            raise
        return self

    def _wait_ready(self, started: float) -> None:
        assert self._process is not None
        while time.perf_counter() - started < READY_TIMEOUT_S:
            if self._process.poll() is not None:
                tail = self._log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"eventstate serve exited with {self._process.returncode}:\n{tail}")
            with contextlib.suppress(OSError):
                if request(self.port, "GET", "/health/ready")[0] == 200:
                    self.startup_s = time.perf_counter() - started
                    return
            time.sleep(0.005)
        raise RuntimeError(f"eventstate serve was not ready within {READY_TIMEOUT_S:.0f} s")

    def __exit__(self, *_exc: object) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    @property
    def url(self) -> str:
        """The base URL the server answers on."""
        return f"http://127.0.0.1:{self.port}"

    def memory_kib(self) -> tuple[int, int]:
        """Resident memory now and at its peak (VmRSS, VmHWM) of the server process, in KiB."""
        assert self._process is not None
        text = Path(f"/proc/{self._process.pid}/status").read_text()
        fields = dict(re.findall(r"^(VmRSS|VmHWM):\s+(\d+) kB", text, re.MULTILINE))
        return int(fields["VmRSS"]), int(fields["VmHWM"])


def request(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    """One HTTP request on a new connection: (status, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def post_sequentially(port: int, count: int) -> None:
    """POST `count` updates one after another on one keep-alive connection, like a single client."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        for i in range(count):
            body = b'{"counter": %d}' % i if i % 2 else b'{"message": "seed %d"}' % i
            conn.request("POST", "/update", body=body, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"seeding: POST /update answered {response.status}")
    finally:
        conn.close()


def run_wrk(url: str, script: str, connections: int, seconds: float, pinning: Pinning) -> Result:
    """Drive `url` with wrk for `seconds` and parse the line our Lua scripts print."""
    command = [
        "wrk",
        f"-t{min(connections, 2 if pinning.loadgen is None else 1)}",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--timeout",
        "10s",
        "-s",
        str(WRK_SCRIPTS / script),
        url,
    ]
    out = subprocess.run(  # noqa: S603 - wrk from PATH with our own arguments
        command,
        capture_output=True,
        text=True,
        check=True,
        preexec_fn=_pin_to(pinning.loadgen),
    ).stdout
    match = re.search(r"^BENCH (.*)$", out, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"no result line from wrk:\n{out}")
    v = dict(part.split("=") for part in match.group(1).split())
    return Result(
        int(v["requests"]),
        float(v["seconds"]),
        int(v["p50_us"]) / 1000,
        int(v["p99_us"]) / 1000,
        int(v["non2xx"]),
        int(v["socket_errors"]),
    )


def timestamp(i: int) -> str:
    """A fixed-width RFC 3339 UTC timestamp `i` milliseconds into 2026 (a day holds 86.4M)."""
    ms = i % 1000
    s = i // 1000
    day, s = divmod(s, 86_400)
    return f"2026-01-{day + 1:02d}T{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}.{ms:03d}000Z"


def generate_events(count: int) -> Iterator[tuple[int, str, int, str, int, str, str]]:
    """Rows of a valid hash chain (alternating counter and message updates), in column order."""
    old = State()
    previous = GENESIS_HASH
    for seq in range(1, count + 1):
        new = State(old.counter, f"event {seq}") if seq % 2 else State(seq, old.message)
        stamp = timestamp(seq)
        previous = chain_hash(seq, stamp, old, new, previous)
        yield (seq, stamp, old.counter, old.message, new.counter, new.message, previous)
        old = new


def build_large_log(path: Path, count: int, chunk: int = 200_000) -> None:
    """Create a log of `count` valid events directly in SQLite (far faster than through the API)."""
    # The schema, triggers and metadata exactly as eventstate makes them.
    EventLog.open(path).close()
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous=OFF")  # a scratch file: durability does not matter here
        rows = generate_events(count)
        last: tuple[int, str, int, str, int, str, str] | None = None
        while batch := [row for _, row in zip(range(chunk), rows, strict=False)]:
            conn.execute("BEGIN")
            conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)", batch)
            conn.execute("COMMIT")
            last = batch[-1]
        if last is not None:
            conn.execute(
                "INSERT OR REPLACE INTO log_head (id, seq, hash) VALUES (1, ?, ?)",
                (last[0], last[-1]),
            )
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def cpu_probe(pinning: Pinning) -> str:
    """The output of the shared CPU speed probe, or why there is none."""
    helpers = os.environ.get("EVENTSTATE_BENCH_HELPERS")
    if not helpers:
        return "not run (set EVENTSTATE_BENCH_HELPERS to the directory holding cpu_probe.py)"
    probe = Path(helpers) / "cpu_probe.py"
    if not probe.is_file():
        return f"not run: EVENTSTATE_BENCH_HELPERS has no cpu_probe.py ({helpers})"
    out = subprocess.run(  # noqa: S603 - the helper named by the operator
        [sys.executable, str(probe), "1", "--short"],
        capture_output=True,
        text=True,
        check=False,
        preexec_fn=_pin_to(pinning.server),
    )
    return f"{out.stdout.strip() or out.stderr.strip()} ms/loop (lower is faster)"


def format_line(name: str, r: Result) -> str:
    """One scenario as a table row."""
    return (
        f"{name:<12} {r.rps:>10.1f} {r.p50_ms:>9.3f} {r.p99_ms:>9.3f} {r.non2xx:>7d} "
        f"{r.socket_errors:>8d} {r.requests:>9d}"
    )


def http_scenarios(args: argparse.Namespace, work: Path, pinning: Pinning) -> None:
    """Every load scenario, each on a fresh log and a fresh server."""
    c = args.connections
    scenarios = [
        ("status_c1", "get.lua", "/status", 1, 0),
        (f"status_c{c}", "get.lua", "/status", c, 0),
        (f"logs50_c{c}", "get.lua", "/logs?limit=50", c, args.seed_events),
        ("update_c1", "post_update.lua", "/update", 1, 0),
        (f"update_c{c}", "post_update.lua", "/update", c, 0),
    ]
    selected = [s for s in scenarios if not args.only or s[0] in args.only]
    if not selected:
        return
    print(
        f"# {'scenario':<10} {'req/s':>10} {'p50_ms':>9} {'p99_ms':>9} {'non2xx':>7} "
        f"{'sock_err':>8} {'requests':>9}",
        flush=True,
    )
    for n, (name, script, path, connections, seed) in enumerate(selected):
        database = work / f"http-{n}.db"
        with Server(database, free_port(), pinning, work / "server.log") as server:
            if seed:
                post_sequentially(server.port, seed)
            if args.warmup > 0:
                run_wrk(server.url + path, script, connections, args.warmup, pinning)
            result = run_wrk(server.url + path, script, connections, args.duration, pinning)
        print(format_line(name, result), flush=True)


def startup_and_memory(args: argparse.Namespace, work: Path, pinning: Pinning) -> None:
    """Start-up to ready and resident memory on an empty log and on a large one."""
    large = work / "large.db"
    started = time.perf_counter()
    build_large_log(large, args.events)
    built_s = time.perf_counter() - started
    size_mib = large.stat().st_size / 2**20
    print(
        f"# built a log of {args.events:,} events ({size_mib:.0f} MiB) in {built_s:.1f} s",
        flush=True,
    )
    print(
        f"# {'log':<10} {'events':>10} {'ready_s':>9} {'rss_MiB':>9} {'after_MiB':>9} {'peak_MiB':>9}",
        flush=True,
    )
    for name, database, events in (("empty", work / "empty.db", 0), ("large", large, args.events)):
        ready: list[float] = []
        for _ in range(args.startups):
            with Server(database, free_port(), pinning, work / "server.log") as server:
                ready.append(server.startup_s)
                rss_ready, _ = server.memory_kib()
                # Touch what a client would: the head, the first and the last pages, some writes.
                for path in (
                    "/status",
                    "/logs?limit=1000",
                    f"/logs?after={max(events - 50, 0)}",
                    "/logs?order=desc&limit=1000",
                ):
                    request(server.port, "GET", path)
                run_wrk(server.url + "/update", "post_update.lua", args.connections, 2, pinning)
                rss_after, peak = server.memory_kib()
        print(
            f"{name:<12} {events:>10d} {sorted(ready)[len(ready) // 2]:>9.3f} "
            f"{rss_ready / 1024:>9.1f} {rss_after / 1024:>9.1f} {peak / 1024:>9.1f}",
            flush=True,
        )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line (see --help)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10, help="seconds per scenario (10)")
    parser.add_argument("--warmup", type=float, default=2, help="untimed seconds first (2)")
    parser.add_argument("--connections", type=int, default=32, help="the many-clients case (32)")
    parser.add_argument("--seed-events", type=int, default=1000, help="events posted before GET /logs (1000)")
    parser.add_argument(
        "--events",
        type=int,
        default=1_000_000,
        help="events in the large log for start-up and memory (1000000)",
    )
    parser.add_argument("--startups", type=int, default=3, help="start-ups per log; the median is shown (3)")
    parser.add_argument(
        "--only",
        nargs="*",
        metavar="NAME",
        help="run only these scenarios (as printed; 'startup': start-up and memory)",
    )
    parser.add_argument("--no-pin", action="store_true", help="let the server and wrk share every CPU")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print("http_bench: wrk is not on PATH (Debian, Ubuntu: apt-get install wrk)", file=sys.stderr)
        return 3
    pinning = Pinning.choose(not args.no_pin)
    print(
        f"# eventstate HTTP benchmark: {args.duration:g} s per scenario after {args.warmup:g} s "
        f"warm-up; server on CPU {pinning.server}, wrk on CPU {pinning.loadgen}",
        flush=True,
    )
    print(f"# cpu probe: {cpu_probe(pinning)}", flush=True)
    with tempfile.TemporaryDirectory(prefix="eventstate-bench-") as tmp:
        work = Path(tmp)
        try:
            http_scenarios(args, work, pinning)
            if not args.only or "startup" in args.only:
                startup_and_memory(args, work, pinning)
        except (RuntimeError, subprocess.CalledProcessError) as e:
            log = work / "server.log"
            if log.exists():
                sys.stderr.write(log.read_text(errors="replace")[-3000:])
            print(f"http_bench: {e}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
