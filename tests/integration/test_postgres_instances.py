"""Real `eventstate serve` processes sharing one real PostgreSQL database: several instances."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from _postgres import Cluster, fresh_database

pytestmark = pytest.mark.slow


@pytest.fixture
def pg_url(postgres_cluster: Cluster) -> str:
    """A fresh, initialised log in the shared throwaway cluster."""
    return fresh_database(postgres_cluster)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "eventstate.cli", *args], capture_output=True,
                          text=True, timeout=120, check=False)


def _all_events(url: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    after = 0
    while True:
        page = httpx.get(f"{url}/logs", params={"after": after, "limit": 1000}, timeout=10).json()
        events += page["items"]
        if not page["next"]:
            return events
        after = events[-1]["seq"]


def test_three_instances_sixteen_clients_if_match_increments(server_factory, pg_url, tmp_path: Path):
    """16 clients over 3 instances doing If-Match increments: the counter equals the number of 200s,
    the log is one gapless verified chain, and no client ever reads a version older than one it saw."""
    servers = [server_factory(pg_url, log_dir=tmp_path).start() for _ in range(3)]
    accepted: list[dict[str, Any]] = []
    went_back: list[str] = []
    errors: list[str] = []
    lock = threading.Lock()
    attempts_per_client = 12

    def client(index: int) -> None:
        rng = random.Random(index)
        seen = 0
        with httpx.Client(timeout=30) as http:
            for _ in range(attempts_per_client):
                read_from, write_to = rng.choice(servers), rng.choice(servers)
                status = http.get(f"{read_from.url}/status").json()
                if status["version"] < seen:
                    went_back.append(f"client {index} saw {seen}, then read {status['version']}")
                seen = max(seen, status["version"])
                response = http.post(f"{write_to.url}/update", json={"counter": status["counter"] + 1},
                                     headers={"If-Match": f'"{status["version"]}"'})
                if response.status_code == 200:
                    event = response.json()
                    with lock:
                        accepted.append(event)
                    seen = max(seen, event["seq"])
                    # read-your-writes on another instance, at once
                    other = rng.choice([s for s in servers if s is not write_to])
                    if http.get(f"{other.url}/status").json()["version"] < event["seq"]:
                        went_back.append(f"client {index}: {other.url} behind its own write {event['seq']}")
                elif response.status_code != 412:
                    errors.append(f"{response.status_code}: {response.text}")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert ([], []) == (errors, went_back)
    final = httpx.get(f"{servers[0].url}/status").json()
    assert len(accepted) > 0
    assert (len(accepted), len(accepted)) == (final["counter"], final["version"])
    events = _all_events(servers[1].url)
    assert list(range(1, len(accepted) + 1)) == [e["seq"] for e in events]
    assert sorted(e["hash"] for e in accepted) == sorted(e["hash"] for e in events)
    verified = _cli("verify", "--database", pg_url)
    assert 0 == verified.returncode, verified.stderr


def _writers(servers: list[Any], stop: threading.Event, acknowledged: list[dict[str, Any]],
             statuses: list[int], count: int = 8) -> list[threading.Thread]:
    def work(index: int) -> None:
        with httpx.Client(timeout=40) as http:
            n = 0
            while not stop.is_set():
                server = servers[(index + n) % len(servers)]
                n += 1
                try:
                    response = http.post(f"{server.url}/update", json={"message": f"w{index}-{n}"})
                except httpx.TransportError:
                    statuses.append(-1)
                    continue
                statuses.append(response.status_code)
                if response.status_code == 200:
                    acknowledged.append(response.json())
                elif response.status_code == 503:
                    assert "retry-after" in response.headers

    threads = [threading.Thread(target=work, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    return threads


def _wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_kill_9_of_one_instance_mid_write_loses_no_acknowledged_update(server_factory, pg_url,
                                                                       tmp_path: Path):
    """SIGKILL of one of two instances under load: every update either instance acknowledged is in the log."""
    servers = [server_factory(pg_url, log_dir=tmp_path).start() for _ in range(2)]
    stop = threading.Event()
    acknowledged: list[dict[str, Any]] = []
    statuses: list[int] = []
    threads = _writers(servers, stop, acknowledged, statuses)
    _wait_for(lambda: len(acknowledged) >= 50, 60, "50 acknowledged updates")
    servers[0].signal(signal.SIGKILL)
    servers[0].wait(10)
    before = len(acknowledged)
    _wait_for(lambda: len(acknowledged) >= before + 50, 60, "50 more updates on the survivor")
    stop.set()
    for t in threads:
        t.join(timeout=60)
    logged = {e["seq"]: e["hash"] for e in _all_events(servers[1].url)}
    assert [] == [e["seq"] for e in acknowledged if logged.get(e["seq"]) != e["hash"]]
    assert 0 == _cli("verify", "--database", pg_url).returncode


def test_postgres_restart_mid_write_gives_503_then_recovers(server_factory, pg_url, tmp_path: Path,
                                                            postgres_cluster: Cluster):
    """PostgreSQL going away under load: 503 with Retry-After meanwhile, recovery without restarting
    eventstate, and every acknowledged update in the log."""
    servers = [server_factory(pg_url, log_dir=tmp_path).start() for _ in range(2)]
    stop = threading.Event()
    acknowledged: list[dict[str, Any]] = []
    statuses: list[int] = []
    threads = _writers(servers, stop, acknowledged, statuses)
    try:
        _wait_for(lambda: len(acknowledged) >= 30, 60, "30 acknowledged updates")
        postgres_cluster.stop("fast")
        outage_start = len(statuses)
        _wait_for(lambda: statuses[outage_start:].count(503) >= 5, 60, "503s during the outage")
        ready = [httpx.get(f"{s.url}/health/ready", timeout=10).status_code for s in servers]
        assert [503, 503] == ready
        postgres_cluster.start()
        after_restart = len(acknowledged)
        _wait_for(lambda: len(acknowledged) >= after_restart + 30, 90, "30 updates after the restart")
    finally:
        stop.set()
        if not postgres_cluster.running():  # leave the shared cluster up for the next test
            postgres_cluster.start()
        for t in threads:
            t.join(timeout=90)
    assert all(s.proc is not None and s.proc.poll() is None for s in servers)
    logged = {e["seq"]: e["hash"] for e in _all_events(servers[0].url)}
    assert [] == [e["seq"] for e in acknowledged if logged.get(e["seq"]) != e["hash"]]
    assert 0 == _cli("verify", "--database", pg_url).returncode


def test_serve_on_an_uninitialised_database_exits_2_naming_init(postgres_cluster: Cluster):
    """`serve` never creates a PostgreSQL schema: it exits 2 with one line that names `eventstate init`."""
    url = fresh_database(postgres_cluster, initialise=False)
    result = _cli("serve", "--database", url, "--port", "1")
    assert 2 == result.returncode
    assert 1 == len(result.stderr.strip().splitlines())
    assert "eventstate init" in result.stderr


def test_init_is_idempotent_and_safe_concurrently(postgres_cluster: Cluster):
    """Several `eventstate init` at once on one database all succeed, and leave one log_id."""
    url = fresh_database(postgres_cluster, initialise=False)
    procs = [subprocess.Popen([sys.executable, "-m", "eventstate.cli", "init", "--database", url],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    results = [(p.returncode, *p.communicate(timeout=120)) for p in procs]
    results = [(p.returncode, out, err) for p, (_, out, err) in zip(procs, results, strict=True)]
    assert [0, 0, 0, 0] == [r[0] for r in results], results
    assert 1 == sum("created" in r[1] and "already" not in r[1] for r in results)
    from _postgres import raw_sql

    assert [("1",)] == raw_sql(url)("SELECT count(*)::text FROM eventstate_meta WHERE key = 'log_id'")
    again = _cli("init", "--database", url)
    assert (0, True) == (again.returncode, "already initialised" in again.stdout)
