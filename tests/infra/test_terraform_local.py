"""The `local` target for real: deploy -> healthy service -> destroy -> nothing left running."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _docker import PREBUILT_IMAGE, build_image, docker, engine_unreachable_reason
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
    # The image under test, built the way `nox -s image` builds it (or a prebuilt one), under a tag
    # of its own so the operator's eventstate:latest is left alone.
    prebuilt = os.environ.get(PREBUILT_IMAGE)
    image = prebuilt or f"eventstate:pytest-deploy-{uuid.uuid4().hex[:8]}"
    if not prebuilt:
        build_image(image, tmp_path / "image-context")
    monkeypatch.setenv("EVENTSTATE_LOCAL_IMAGE", image)
    local = Target.named("local", REPO_ROOT)
    try:
        yield local
    finally:
        destroy(local, say=lambda _: None)
        if not prebuilt:
            docker("image", "rm", "--force", image, check=False)


def container_exists(name: str) -> bool:
    """Whether the Docker engine knows a container called NAME."""
    proc = subprocess.run(["docker", "inspect", name], capture_output=True, check=False)
    return proc.returncode == 0


def test_deploy_serves_then_destroy_removes_everything(target: Target) -> None:
    """deploy gives a working, key-protected API at its URL; destroy leaves no container."""
    said: list[str] = []
    url = deploy(target, say=said.append)
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
    deploy(target, say=said.append)
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
