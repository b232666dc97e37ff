"""What the cross-instance freshness promise costs a read: GET /status latency and head checks per read.

Starts `eventstate serve` instances on the database given (a PostgreSQL URL of an initialised log,
or a SQLite path for the comparison without any check), runs CONCURRENCY clients doing plain
`GET /status` against the first instance for DURATION seconds while one client keeps writing
through the last instance, and prints reads/s, p50 and p99 latency, and, from /metrics, how many
head checks the reads cost. Prints figures; asserts nothing.

    python bench/freshness_bench.py --database postgresql://postgres@127.0.0.1:5432/es --instances 2
    python bench/freshness_bench.py --database /tmp/es.db
"""

from __future__ import annotations

import argparse
import asyncio
import re
import socket
import subprocess
import sys
import time

import httpx


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(database: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    proc = subprocess.Popen(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "eventstate.cli", "serve", "--port", str(port), "--database", database],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health/ready", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.1)  # polling a starting server, bounded by the deadline
    proc.kill()
    raise SystemExit(f"eventstate did not become ready on {url}")


def _gauge(url: str, name: str) -> float:
    found = re.search(rf"^{name} (\S+)$", httpx.get(f"{url}/metrics").text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def _load(read_url: str, write_url: str, concurrency: int, duration: float) -> list[float]:
    latencies: list[float] = []
    end = time.monotonic() + duration
    limits = httpx.Limits(max_connections=concurrency + 1)
    async with httpx.AsyncClient(limits=limits, timeout=30) as http:

        async def reader() -> None:
            while time.monotonic() < end:
                started = time.perf_counter()
                response = await http.get(f"{read_url}/status")
                latencies.append(time.perf_counter() - started)
                response.raise_for_status()

        async def writer() -> None:
            n = 0
            while time.monotonic() < end:
                n += 1
                (await http.post(f"{write_url}/update", json={"counter": n})).raise_for_status()

        await asyncio.gather(writer(), *(reader() for _ in range(concurrency)))
    return latencies


def _wrk(read_url: str, write_url: str, concurrency: int, duration: float) -> str:
    """Reads by wrk (much lighter than a Python client), while one Python client keeps writing."""
    import threading

    stop = threading.Event()

    def writer() -> None:
        with httpx.Client(timeout=30) as http:
            n = 0
            while not stop.is_set():
                n += 1
                http.post(f"{write_url}/update", json={"counter": n}).raise_for_status()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        out = subprocess.run(  # noqa: S603 - wrk from PATH
            ["wrk", "-t1", f"-c{concurrency}", f"-d{int(duration)}s", "--latency", f"{read_url}/status"],  # noqa: S607
            capture_output=True, text=True, check=True).stdout
    finally:
        stop.set()
        thread.join(timeout=30)
    rps = re.search(r"Requests/sec:\s+(\S+)", out)
    p50 = re.search(r"50%\s+(\S+)", out)
    p99 = re.search(r"99%\s+(\S+)", out)
    return (f"GET /status (wrk): {rps.group(1) if rps else '?'} req/s, p50 {p50.group(1) if p50 else '?'}, "
            f"p99 {p99.group(1) if p99 else '?'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", required=True)
    parser.add_argument("--instances", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--wrk", action="store_true", help="read with wrk instead of Python clients")
    args = parser.parse_args()
    servers = [_start(args.database) for _ in range(args.instances)]
    try:
        read_url, write_url = servers[0][1], servers[-1][1]
        checks_before = _gauge(read_url, "eventstate_head_checks_started")
        reads_before = _gauge(read_url, "eventstate_head_check_reads")
        if args.wrk:
            line = _wrk(read_url, write_url, args.concurrency, args.duration)
        else:
            latencies = sorted(asyncio.run(_load(read_url, write_url, args.concurrency, args.duration)))
            n = len(latencies)
            line = (f"GET /status: {n / args.duration:,.0f} req/s, p50 {latencies[n // 2] * 1000:.2f} ms, "
                    f"p99 {latencies[int(n * 0.99)] * 1000:.2f} ms ({n} reads)")
        checks = _gauge(read_url, "eventstate_head_checks_started") - checks_before
        waited = _gauge(read_url, "eventstate_head_check_reads") - reads_before
        print(f"database: {'postgresql' if '://' in args.database else 'sqlite'}, "
              f"instances: {args.instances}, clients: {args.concurrency} reading + 1 writing")
        print(line)
        print(f"head checks: {checks:.0f} for {waited:.0f} fresh reads "
              f"({checks / waited if waited else 0:.3f} per read)")
    finally:
        for proc, _ in servers:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
