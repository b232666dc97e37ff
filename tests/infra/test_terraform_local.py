"""The `local` target for real: deploy -> healthy service -> destroy -> nothing left running."""

from __future__ import annotations

import importlib.util
import json
import shlex
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _docker import engine_unreachable_reason
from _terraform import REPO_ROOT, REQUIRE_DOCKER, free_port, terraform_executable, unavailable

from eventstate.deploy.session import Target, deploy, destroy, read_api_keys

pytestmark = [pytest.mark.terraform, pytest.mark.container, pytest.mark.slow]


@pytest.fixture
def target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Target]:
    """A local target with its own state directory, port and container name; destroyed after."""
    reason = engine_unreachable_reason()
    if reason is not None:
        unavailable(reason, REQUIRE_DOCKER)
    terraform_executable()
    monkeypatch.setenv("EVENTSTATE_DEPLOY_STATE", str(tmp_path / "state"))
    monkeypatch.setenv("EVENTSTATE_LOCAL_PORT", str(free_port()))
    monkeypatch.setenv("EVENTSTATE_LOCAL_CONTAINER", f"eventstate-pytest-{uuid.uuid4().hex[:8]}")
    local = Target.named("local", REPO_ROOT)
    try:
        yield local
    finally:
        destroy(local, say=lambda _: None)


def build_command() -> str:
    """How the test builds eventstate:latest when it is missing or stale: `nox -s image`."""
    if importlib.util.find_spec("nox") is None:
        unavailable("nox is not installed here to build the image", REQUIRE_DOCKER)
    return f"{shlex.quote(sys.executable)} -m nox -s image"


def container_exists(name: str) -> bool:
    """Whether the Docker engine knows a container called NAME."""
    proc = subprocess.run(["docker", "inspect", name], capture_output=True, check=False)
    return proc.returncode == 0


def test_deploy_serves_then_destroy_removes_everything(target: Target) -> None:
    """deploy gives a working, key-protected API at its URL; destroy leaves no container."""
    said: list[str] = []
    url = deploy(target, build_command=build_command(), say=said.append)
    key = read_api_keys(target.api_keys_file)[0]

    status = httpx.get(f"{url}/status", timeout=10).json()
    accepted = httpx.post(
        f"{url}/update", json={"message": "deployed"}, headers={"X-API-KEY": key}, timeout=10
    )
    refused = httpx.post(f"{url}/update", json={"message": "intruder"}, timeout=10)

    assert {"counter", "message", "version", "updated_at"} <= set(status)
    assert accepted.is_success
    assert refused.status_code == 401
    assert f"eventstate is up at {url}" in said

    said.clear()
    deploy(target, build_command=build_command(), say=said.append)
    assert "plan: no changes" in said
    assert httpx.get(f"{url}/status", timeout=10).json()["message"] == "deployed"

    name = target_container(target)
    destroy(target, say=said.append)
    assert not container_exists(name)
    destroy(target, say=said.append)
    assert said[-1] == "nothing deployed on local"


def target_container(target: Target) -> str:
    """The container name the target was deployed with."""
    return str(json.loads(target.inputs_file.read_text())["container_name"])
