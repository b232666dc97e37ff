"""Helpers shared by the test packages: a real server process and the malformed-request table."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

BAD_BODIES = [
    (b"", 400, "empty body"),
    (b"{", 400, "truncated JSON"),
    (b'{"counter": 1,}', 400, "trailing comma"),
    (b'{"message": "\xff"}', 400, "invalid UTF-8"),
    (b'{"counter": 1} {"counter": 2}', 400, "two documents"),
    (b"{}", 422, "no field"),
    (b"[]", 422, "array"),
    (b'"counter"', 422, "string document"),
    (b"null", 422, "null document"),
    (b'{"counter": "5"}', 422, "string counter"),
    (b'{"counter": true}', 422, "boolean counter"),
    (b'{"counter": 1.0}', 422, "float counter"),
    (b'{"counter": 1e3}', 422, "exponent counter"),
    (b'{"counter": 9223372036854775808}', 422, "2**63"),
    (b'{"counter": -9223372036854775809}', 422, "-2**63-1"),
    (b'{"counter": 100000000000000000000000000000}', 422, "huge"),
    (b'{"counter": null}', 422, "null counter"),
    (b'{"message": 5}', 422, "number message"),
    (b'{"message": null}', 422, "null message"),
    (b'{"message": ["a"]}', 422, "array message"),
    (('{"message": "' + "x" * 1025 + '"}').encode(), 422, "1025 characters"),
    (b'{"counter": 1, "extra": 2}', 422, "unknown field"),
    (b'{"Counter": 1}', 422, "wrong case"),
]


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """A real `eventstate serve` process on a free port."""

    def __init__(self, database: Path | str, *, workers: int = 1, env: dict[str, str] | None = None,
                 extra_args: tuple[str, ...] = (), log_dir: Path | None = None) -> None:
        self.database = database
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.env = {**os.environ, **(env or {})}
        self.extra_args = extra_args
        self.proc: subprocess.Popen[bytes] | None = None
        # A database URL has no directory of its own: its servers log into `log_dir`.
        directory = log_dir if log_dir is not None else Path(database).parent
        self.log = directory / f"server-{self.port}.log"

    def start(self, timeout: float = 20.0) -> ServerProcess:
        """Start the server and wait until /health/ready answers 200."""
        cmd = [sys.executable, "-m", "eventstate.cli", "serve", "--port", str(self.port),
               "--database", str(self.database), "--workers", str(self.workers), *self.extra_args]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(cmd, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.output()}")
            try:
                if httpx.get(f"{self.url}/health/ready", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"server not ready within {timeout}s: {self.output()}")

    def output(self) -> str:
        """What the server printed so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def signal(self, sig: signal.Signals) -> None:
        """Send `sig` to the server's whole process group (workers included)."""
        assert self.proc is not None
        os.killpg(self.proc.pid, sig)

    def wait(self, timeout: float = 30.0) -> int:
        """Wait for the server to exit; its exit status."""
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self) -> None:
        """SIGTERM and wait; SIGKILL if it does not go."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.proc.wait(10)
