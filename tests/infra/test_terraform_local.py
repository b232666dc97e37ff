"""The `local` target for real: deploy -> HTTPS with the printed CA -> upgrade in place -> automatic
rollback of an image that never gets healthy -> rollback command -> destroy -> nothing left."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _docker import PREBUILT_IMAGE, build_image, docker, engine_unreachable_reason
from _terraform import REPO_ROOT, REQUIRE_DOCKER, free_port, terraform_executable, unavailable

from eventstate.deploy.session import (
    DeployError,
    Target,
    deploy,
    destroy,
    local_image_id,
    read_api_keys,
    releases,
    rollback,
)

pytestmark = [pytest.mark.terraform, pytest.mark.container, pytest.mark.slow]


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The image under test, built once for the module the way `nox -s image` builds it (or a
    prebuilt one)."""
    reason = engine_unreachable_reason()
    if reason is not None:
        unavailable(reason, REQUIRE_DOCKER)
    terraform_executable()
    prebuilt = os.environ.get(PREBUILT_IMAGE)
    tag = prebuilt or f"eventstate:pytest-deploy-{uuid.uuid4().hex[:8]}"
    if not prebuilt:
        build_image(tag, tmp_path_factory.mktemp("image-context"))
    try:
        yield tag
    finally:
        if not prebuilt:
            docker("image", "rm", "--force", tag, check=False)


@pytest.fixture
def target(tmp_path: Path, image: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Target]:
    """A local target with its own state directory, port and container name; destroyed after."""
    monkeypatch.setenv("EVENTSTATE_DEPLOY_STATE", str(tmp_path / "state"))
    monkeypatch.setenv("EVENTSTATE_LOCAL_PORT", str(free_port()))
    monkeypatch.setenv("EVENTSTATE_LOCAL_CONTAINER", f"eventstate-pytest-{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("EVENTSTATE_LOCAL_IMAGE", image)
    local = Target.named("local", REPO_ROOT)
    try:
        yield local
    finally:
        destroy(local, say=lambda _: None)


def derived_image(base: str, tmp_path: Path, dockerfile_tail: str) -> str:
    """A new image FROM BASE with DOCKERFILE_TAIL appended, under a unique tag (removed by caller)."""
    tag = f"eventstate:pytest-derived-{uuid.uuid4().hex[:8]}"
    context = tmp_path / tag.replace(":", "-")
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {base}\n{dockerfile_tail}\n")
    docker("build", "--force-rm", "--tag", tag, str(context), timeout=300)
    return tag


def exists(kind: str, name: str) -> bool:
    """Whether the Docker engine knows a container or network called NAME."""
    proc = subprocess.run(["docker", kind, "inspect", name], capture_output=True, check=False)
    return proc.returncode == 0


def running_image(container: str) -> str:
    """The image id the container runs."""
    return docker("inspect", "--format", "{{.Image}}", container).stdout.strip()


def published_ports(container: str) -> dict[str, object]:
    """The container's published ports, as `docker inspect` reports them."""
    ports = json.loads(docker("inspect", "--format", "{{json .HostConfig.PortBindings}}", container).stdout)
    return dict(ports or {})


def test_deploy_serves_https_with_printed_ca_then_destroy_removes_everything(target: Target) -> None:
    """deploy gives a key-protected API over HTTPS, trusted with the CA it prints and by no other
    client; the app port is not published; destroy leaves no container and no network."""
    said: list[str] = []
    url = deploy(target, say=said.append)
    key = read_api_keys(target.api_keys_file)[0]
    name = target_container(target)

    assert url.startswith("https://127.0.0.1:")
    assert f"url: {url}" in said
    assert f"ca: {target.ca_file}" in said
    assert f"try: curl --cacert {target.ca_file} {url}/status" in said
    trusting_ca = ssl.create_default_context(cafile=target.ca_file)
    with httpx.Client(base_url=url, verify=trusting_ca, timeout=10) as http:
        status = http.get("/status").json()
        accepted = http.post("/update", json={"message": "deployed"}, headers={"X-API-KEY": key})
        refused = http.post("/update", json={"message": "intruder"})
    assert {"counter", "message", "version", "updated_at"} <= set(status)
    assert accepted.is_success
    assert refused.status_code == 401
    # A client that trusts only the system's roots refuses the certificate; plain HTTP gets nowhere.
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{url}/status", timeout=10)
    plain = httpx.get(url.replace("https:", "http:") + "/status", timeout=10)
    assert plain.status_code == 400  # Caddy: "Client sent an HTTP request to an HTTPS server."
    assert published_ports(name) == {}
    assert list(published_ports(f"{name}-tls")) == ["443/tcp"]
    access_log = docker("logs", f"{name}-tls")
    assert '"uri":"/update"' in access_log.stdout
    assert key not in access_log.stdout + access_log.stderr  # the API key stays out of the logs

    said.clear()
    deploy(target, say=said.append)
    assert "plan: no changes" in said
    verify = ssl.create_default_context(cafile=target.ca_file)
    assert httpx.get(f"{url}/status", verify=verify, timeout=10).json()["message"] == "deployed"

    destroy(target, say=said.append)
    assert not exists("container", name)
    assert not exists("container", f"{name}-tls")
    assert not exists("network", f"{name}-net")
    destroy(target, say=said.append)
    assert said[-1] == "nothing deployed on local"


def test_upgrade_replaces_container_keeps_data_and_rolls_back_a_broken_image(
    target: Target, image: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new image replaces only the container (the log survives); an image that never becomes
    healthy is rolled back automatically to the one that ran; `rollback` returns to the one before."""
    url = deploy(target, say=lambda _: None)
    name = target_container(target)
    key = read_api_keys(target.api_keys_file)[0]
    verify = ssl.create_default_context(cafile=target.ca_file)
    with httpx.Client(base_url=url, verify=verify, timeout=10) as http:
        assert http.post("/update", json={"counter": 41}, headers={"X-API-KEY": key}).is_success
    first = local_image_id(image)
    upgraded = derived_image(image, tmp_path, 'LABEL org.opencontainers.image.version="upgrade"')
    broken = derived_image(image, tmp_path, 'ENTRYPOINT ["false"]')
    try:
        monkeypatch.setenv("EVENTSTATE_LOCAL_IMAGE", upgraded)
        started = time.monotonic()
        deploy(target, say=lambda _: None)
        print(f"local upgrade: {time.monotonic() - started:.1f}s")
        second = local_image_id(upgraded)
        assert running_image(name) == second
        assert httpx.get(f"{url}/status", verify=verify, timeout=10).json()["counter"] == 41

        monkeypatch.setenv("EVENTSTATE_LOCAL_IMAGE", broken)
        started = time.monotonic()
        with pytest.raises(DeployError, match=f"never became healthy; rolled back to {second}"):
            deploy(target, say=lambda _: None)
        print(f"local automatic rollback: {time.monotonic() - started:.1f}s")
        assert running_image(name) == second
        assert httpx.get(f"{url}/status", verify=verify, timeout=10).json()["counter"] == 41
        assert [i for i, _ in releases(target)] == [first, second]

        said: list[str] = []
        started = time.monotonic()
        rollback(target, say=said.append)
        print(f"local rollback command: {time.monotonic() - started:.1f}s")
        assert running_image(name) == first
        assert httpx.get(f"{url}/status", verify=verify, timeout=10).json()["counter"] == 41
        assert said[0] == f"rolling back from {second[:19]} to {first[:19]}"
    finally:
        destroy(target, say=lambda _: None)
        docker("image", "rm", "--force", upgraded, broken, check=False)


def target_container(target: Target) -> str:
    """The container name the target was deployed with."""
    return str(json.loads(target.inputs_file.read_text())["container_name"])
