"""Helpers for the container tests: the Docker CLI, the image build, and a running container."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
# Set in CI: there a missing engine is a failure, not a reason to skip.
REQUIRE_DOCKER = "EVENTSTATE_REQUIRE_DOCKER"
# A prebuilt image to test instead of building one (e.g. what `nox -s image` tagged).
PREBUILT_IMAGE = "EVENTSTATE_IMAGE"
TEST_IMAGE_TAG = "eventstate:pytest"
DEFAULT_BASE_IMAGE = "python:3.11-slim-bookworm"
CONTAINER_PORT = 5000
DATABASE = "/data/eventstate.db"
SERVICE_UID = 10001

# Run inside the base image; prints what pip needs to choose its wheels, e.g. "3 11 x86_64 2.36".
_PROBE_BASE_IMAGE = (
    "import os, platform, sys; "
    "print(*sys.version_info[:2], platform.machine(), os.confstr('CS_GNU_LIBC_VERSION').split()[1])"
)

T = TypeVar("T")


class DockerError(RuntimeError):
    """A docker command failed; the message carries its stderr."""


def docker(
    *args: str, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run `docker ARGS` with the legacy builder and return the finished process."""
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}
    proc = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, env=env, check=False
    )
    if check and proc.returncode != 0:
        raise DockerError(
            f"docker {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}"
        )
    return proc


def engine_unreachable_reason() -> str | None:
    """Why no Docker engine can be used here, or None when one answers."""
    if shutil.which("docker") is None:
        return "the docker CLI is not installed"
    try:
        proc = docker("info", "--format", "{{.ServerVersion}}", timeout=30, check=False)
    except subprocess.TimeoutExpired:
        return "the Docker engine did not answer `docker info` within 30 s"
    if proc.returncode != 0:
        detail = (proc.stderr.strip().splitlines() or [f"docker info exited {proc.returncode}"])[-1]
        return f"no Docker engine is reachable: {detail}"
    return None


def wait_for(what: str, check: Callable[[], T | None], timeout: float = 60) -> T:
    """Poll CHECK until it returns something truthy, failing after TIMEOUT seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


def _wheel_platforms(machine: str, glibc: str) -> list[str]:
    """Every manylinux tag a base image with this glibc runs, newest first."""
    major, minor = (int(part) for part in glibc.split(".")[:2])
    tags = [f"manylinux_{major}_{m}_{machine}" for m in range(minor, 16, -1)]
    return [*tags, *(f"{legacy}_{machine}" for legacy in ("manylinux2014", "manylinux2010"))]


def build_image(tag: str, context: Path) -> None:
    """Build the repository's Dockerfile as TAG, the way `nox -s image` does, in CONTEXT."""
    base_image = os.environ.get("EVENTSTATE_BASE_IMAGE") or DEFAULT_BASE_IMAGE
    probe = docker("run", "--rm", "--entrypoint", "python3", base_image, "-c", _PROBE_BASE_IMAGE)
    py_major, py_minor, machine, glibc = probe.stdout.split()
    wheelhouse = context / "wheelhouse"
    pip = [sys.executable, "-m", "pip", "--quiet"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--wheel-dir", str(wheelhouse), str(REPO_ROOT)], check=True
    )
    (own_wheel,) = wheelhouse.glob("eventstate-*.whl")
    subprocess.run(
        [
            *pip,
            *("download", "--dest", str(wheelhouse), "--only-binary=:all:"),
            *("--python-version", f"{py_major}.{py_minor}", "--implementation", "cp"),
            *("--abi", f"cp{py_major}{py_minor}"),
            *(f"--platform={p}" for p in _wheel_platforms(machine, glibc)),
            # Litestream and boto3; Caddy, which the deploy targets run; psycopg for PostgreSQL.
            f"{own_wheel}[postgresql,replica,tls]",
        ],
        check=True,
    )
    docker(
        *("build", "--force-rm", "--file", str(REPO_ROOT / "Dockerfile"), "--tag", tag),
        *("--build-arg", f"BASE_IMAGE={base_image}", str(context)),
        timeout=600,
    )


class Container:
    """A container of the image, known by id, with the published API port on 127.0.0.1."""

    def __init__(self, container_id: str) -> None:
        self.id = container_id

    def inspect(self) -> dict[str, Any]:
        """The container's `docker inspect` document."""
        return json.loads(docker("inspect", self.id).stdout)[0]  # type: ignore[no-any-return]

    @property
    def base_url(self) -> str:
        """Where the API answers on the host (the port changes on each start)."""
        binding = self.inspect()["NetworkSettings"]["Ports"][f"{CONTAINER_PORT}/tcp"][0]
        return f"http://127.0.0.1:{binding['HostPort']}"

    def client(self, api_key: str | None = None) -> httpx.Client:
        """An HTTP client for the API, sending API_KEY with each request when given."""
        headers = {"X-API-KEY": api_key} if api_key else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=10)

    def is_ready(self) -> bool:
        """Whether the API answers 200 on /health/ready right now."""
        try:
            with self.client() as http:
                return http.get("/health/ready").status_code == 200
        except (httpx.HTTPError, LookupError, TypeError):
            return False

    def wait_ready(self, timeout: float = 60) -> Container:
        """Wait until the API is ready, failing with the container's output if it exits first."""

        def check() -> bool:
            if not self.inspect()["State"]["Running"]:
                raise AssertionError(f"container exited before it was ready:\n{self.logs()}")
            return self.is_ready()

        wait_for("the API to become ready", check, timeout)
        return self

    def wait_exited(self, timeout: float = 60) -> dict[str, Any]:
        """Wait until the container has stopped; return its final State."""
        return wait_for(
            "the container to exit",
            lambda: (state := self.inspect()["State"])["Status"] == "exited" and state,
            timeout,
        )

    def logs(self) -> str:
        """Everything the container wrote to stdout and stderr."""
        proc = docker("logs", self.id)
        return proc.stdout + proc.stderr

    def exec(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ARGS inside the running container (as its user) and return the finished process."""
        return docker("exec", self.id, *args, check=False)


def run_container(
    image: str,
    *,
    data: str,
    env: dict[str, str] | None = None,
) -> Container:
    """Start IMAGE detached with DATA (a volume name or host path) mounted on /data."""
    env_args = [arg for name, value in (env or {}).items() for arg in ("--env", f"{name}={value}")]
    proc = docker(
        *("run", "--detach", "--publish", f"127.0.0.1::{CONTAINER_PORT}"),
        *("--volume", f"{data}:/data", *env_args, image),
    )
    return Container(proc.stdout.strip())


def log_items(http: httpx.Client) -> list[dict[str, Any]]:
    """The whole event log, following the `next` links page by page."""
    items: list[dict[str, Any]] = []
    url: str | None = "/logs"
    while url is not None:
        response = http.get(url)
        response.raise_for_status()
        page = response.json()
        items.extend(page["items"])
        url = page["next"]
    return items
