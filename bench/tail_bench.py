"""Measure how open live-tail clients slow updates down.

    python bench/tail_bench.py [--clients 200] [--updates 300]

Starts `eventstate serve` on a fresh log, measures the p50/p99 latency of sequential `POST /update`
with no live-tail client, then opens N `GET /logs/stream` clients (each reading every event) and
measures again. The target: with 200 clients, an update's p50 at most 2x the p50 without. Prints
figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _updates(url: str, count: int) -> list[float]:
    latencies = []
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        for i in range(count):
            started = time.perf_counter()
            response = await client.post("/update", json={"counter": i})
            latencies.append(time.perf_counter() - started)
            response.raise_for_status()
    return latencies


async def _tail(port: int, seen: list[int], ready: asyncio.Event, opened: list[int],
                total: int) -> None:
    # A raw socket that only counts events: the client's own cost must not hide the server's.
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /logs/stream?after=0 HTTP/1.1\r\nhost: bench\r\n\r\n")
    await writer.drain()
    opened[0] += 1
    if opened[0] == total:
        ready.set()
    try:
        while chunk := await reader.read(65536):
            seen[0] += chunk.count(b"\nid: ") + chunk.startswith(b"id: ")
    finally:
        writer.close()


def _figures(label: str, latencies: list[float]) -> float:
    ms = sorted(x * 1000 for x in latencies)
    p50, p99 = statistics.median(ms), ms[int(len(ms) * 0.99) - 1]
    print(f"{label:<28} p50 {p50:7.2f} ms   p99 {p99:7.2f} ms   ({len(ms)} updates)")
    return p50


async def _run(url: str, clients: int, updates: int) -> None:
    alone = _figures("updates, no tail", await _updates(url, updates))
    seen, opened, ready = [0], [0], asyncio.Event()
    port = int(url.rsplit(":", 1)[1])
    tails = [asyncio.create_task(_tail(port, seen, ready, opened, clients)) for _ in range(clients)]
    await asyncio.wait_for(ready.wait(), 60)
    tailed = _figures(f"updates, {clients} tail clients", await _updates(url, updates))
    deadline = time.monotonic() + 30
    while seen[0] < clients * updates * 2 and time.monotonic() < deadline:  # noqa: ASYNC110 - bounded wait on a counter other tasks bump
        await asyncio.sleep(0.1)
    print(f"events delivered to tails: {seen[0]} of {clients * updates * 2}")
    print(f"slowdown of the p50: {tailed / alone:.2f}x (target: at most 2x)")
    for task in tails:
        task.cancel()
    await asyncio.gather(*tails, return_exceptions=True)


def main() -> None:
    """Run the measurement and print it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--updates", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        port = _free_port()
        server = subprocess.Popen(  # noqa: S603 - our own CLI with fixed arguments
            [sys.executable, "-m", "eventstate.cli", "serve", "--port", str(port), "--database",
             str(Path(tmp) / "events.db")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, env={**os.environ, "EVENTSTATE_LOG_LEVEL": "WARNING"})
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{url}/health/ready", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            asyncio.run(_run(url, args.clients, args.updates))
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(30)


if __name__ == "__main__":
    main()
