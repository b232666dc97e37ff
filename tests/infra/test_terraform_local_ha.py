"""The `local-ha` target for real: PostgreSQL, two eventstate containers and Caddy load balancing
over HTTPS. Clients drive If-Match increments through the load balancer while one instance is
stopped, started again, and the other killed; no acknowledged update is lost, the chain verifies;
destroy leaves nothing behind."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _docker import PREBUILT_IMAGE, build_image, docker, engine_unreachable_reason
from _terraform import REPO_ROOT, REQUIRE_DOCKER, free_port, terraform_executable, unavailable

from eventstate.deploy.session import POSTGRES_IMAGE, DeployError, Target, deploy, destroy, read_api_keys

pytestmark = [pytest.mark.terraform, pytest.mark.container, pytest.mark.slow]

CLIENTS = 8
STOP_AFTER = 20  # acknowledged updates before one instance is stopped
AFTER_STOP = 40  # acknowledged updates wanted after it
RUN_DEADLINE = 180.0


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The eventstate image, built once the way `nox -s image` builds it (or a prebuilt one)."""
    reason = engine_unreachable_reason()
    if reason is not None:
        unavailable(reason, REQUIRE_DOCKER)
    terraform_executable()
    postgres = os.environ.get("EVENTSTATE_POSTGRES_IMAGE") or POSTGRES_IMAGE
    if docker("image", "inspect", postgres, check=False).returncode != 0:
        unavailable(f"no image {postgres} (bash .ci/docker.sh builds it)", REQUIRE_DOCKER)
    prebuilt = os.environ.get(PREBUILT_IMAGE)
    tag = prebuilt or f"eventstate:pytest-ha-{uuid.uuid4().hex[:8]}"
    if not prebuilt:
        build_image(tag, tmp_path_factory.mktemp("image-context"))
    try:
        yield tag
    finally:
        if not prebuilt:
            docker("image", "rm", "--force", tag, check=False)


@pytest.fixture
def target(tmp_path: Path, image: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Target]:
    """A local-ha target with its own state directory, port and name prefix; destroyed after."""
    monkeypatch.setenv("EVENTSTATE_DEPLOY_STATE", str(tmp_path / "state"))
    monkeypatch.setenv("EVENTSTATE_LOCAL_PORT", str(free_port()))
    monkeypatch.setenv("EVENTSTATE_LOCAL_CONTAINER", f"es-ha-pytest-{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("EVENTSTATE_LOCAL_IMAGE", image)
    local_ha = Target.named("local-ha", REPO_ROOT)
    try:
        yield local_ha
    finally:
        destroy(local_ha, say=lambda _: None)


def prefix(target: Target) -> str:
    """The name prefix the target was deployed with."""
    return str(json.loads(target.inputs_file.read_text())["name"])


def leftovers(name: str) -> list[str]:
    """Containers, networks and volumes on the engine whose name starts with NAME."""
    listings = {
        "container": ("container", "ls", "--all", "--format", "{{.Names}}"),
        "network": ("network", "ls", "--format", "{{.Name}}"),
        "volume": ("volume", "ls", "--format", "{{.Name}}"),
    }
    return [f"{kind} {found}" for kind, args in listings.items()
            for found in docker(*args).stdout.split() if found.startswith(name)]


class Driver:
    """CLIENTS threads doing If-Match increments through the load balancer. Each update carries an
    Idempotency-Key and is retried with it after a 5xx or a broken connection until it is decided,
    so a 200 means "applied exactly once" and anything else means "not applied"."""

    def __init__(self, url: str, ca: Path, key: str) -> None:
        self.url, self.key = url, key
        self.verify = ssl.create_default_context(cafile=ca)
        self.lock = threading.Lock()
        self.acknowledged: list[dict[str, Any]] = []
        self.answered_by: list[str] = []  # the instance behind each acknowledged update
        self.transient: list[str] = []  # 5xx and connection errors seen (then retried)
        self.refused = 0  # 412: someone else incremented first
        self.done = threading.Event()
        self.errors: list[BaseException] = []

    def count(self) -> int:
        with self.lock:
            return len(self.acknowledged)

    def _note(self, what: str) -> None:
        with self.lock:
            self.transient.append(what)

    def _until_decided(
        self, http: httpx.Client, method: str, path: str, **kwargs: Any
    ) -> httpx.Response:
        deadline = time.monotonic() + 60
        while True:
            try:
                response = http.request(method, path, **kwargs)
                if response.status_code < 500 and response.status_code != 409:
                    return response
                self._note(f"{method} {path}: {response.status_code}")
            except httpx.TransportError as e:
                self._note(f"{method} {path}: {type(e).__name__}")
            if time.monotonic() >= deadline:
                raise AssertionError(f"{method} {path} was not decided within 60 s")
            time.sleep(0.05)

    def client(self) -> None:
        try:
            with httpx.Client(base_url=self.url, verify=self.verify, timeout=15) as http:
                while not self.done.is_set():
                    status = self._until_decided(http, "GET", "/status").json()
                    response = self._until_decided(
                        http, "POST", "/update", json={"counter": status["counter"] + 1},
                        headers={"X-API-KEY": self.key, "If-Match": f'"{status["version"]}"',
                                 "Idempotency-Key": uuid.uuid4().hex})
                    if response.status_code == 200:
                        with self.lock:
                            self.acknowledged.append(response.json())
                            self.answered_by.append(response.headers["eventstate-instance"])
                    elif response.status_code == 412:
                        with self.lock:
                            self.refused += 1
                    else:
                        raise AssertionError(f"unexpected {response.status_code}: {response.text}")
        except BaseException as e:  # reported by the test thread
            self.errors.append(e)
            self.done.set()


def wait_until(what: str, check: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def all_events(http: httpx.Client) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    while True:
        after = events[-1]["seq"] if events else 0
        page = http.get("/logs", params={"after": after, "limit": 500}).json()
        events += page["items"]
        if not page["next"]:
            return events


def test_two_instances_behind_the_load_balancer_survive_one_stopping(target: Target, image: str) -> None:
    """deploy prints a healthy HTTPS URL; clients drive If-Match increments through the load balancer
    while one instance is stopped (then started again) and the other is killed; every acknowledged
    update is in the log, the counter equals the number of 200s, `eventstate verify` accepts the
    chain on PostgreSQL; destroy removes it all."""
    said: list[str] = []
    started = time.monotonic()
    url = deploy(target, say=said.append)
    print(f"local-ha deploy: {time.monotonic() - started:.1f}s")
    name = prefix(target)
    instances = [f"{name}-1", f"{name}-2"]
    assert url.startswith("https://127.0.0.1:")
    assert f"url: {url}" in said
    assert f"ca: {target.ca_file}" in said
    assert f"instances behind the load balancer: {', '.join(instances)}" in said
    # Only the load balancer publishes a port; PostgreSQL and the instances are on the private network.
    for container in [f"{name}-db", *instances]:
        ports = docker("inspect", "--format", "{{json .HostConfig.PortBindings}}", container).stdout
        assert json.loads(ports) in (None, {})

    key = read_api_keys(target.api_keys_file)[0]
    driver = Driver(url, target.ca_file, key)
    threads = [threading.Thread(target=driver.client, daemon=True) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    try:
        wait_until(f"{STOP_AFTER} acknowledged updates",
                   lambda: driver.count() >= STOP_AFTER or driver.errors, RUN_DEADLINE)
        # SIGTERM: uvicorn drains what it has in flight; Caddy's health checks take it out of the pool.
        docker("stop", "--time", "10", instances[0])
        # The instance has exited; each client may still be handling one answer it already had.
        stopped_at = driver.count() + CLIENTS
        wait_until(f"{AFTER_STOP} more acknowledged updates with {instances[0]} stopped",
                   lambda: driver.count() >= stopped_at + AFTER_STOP or driver.errors, RUN_DEADLINE)
        # The stopped instance comes back and the balancer sends it work again; then the other one
        # dies hard (SIGKILL, requests in flight): those are retried by the clients with their keys.
        docker("start", instances[0])
        restarted_at = driver.count()
        wait_until(f"{instances[0]} answering again",
                   lambda: "app-1" in driver.answered_by[restarted_at:] or driver.errors, RUN_DEADLINE)
        docker("kill", "--signal", "KILL", instances[1])
        killed_at = driver.count() + CLIENTS
        wait_until(f"{AFTER_STOP} more acknowledged updates with {instances[1]} killed",
                   lambda: driver.count() >= killed_at + AFTER_STOP or driver.errors, RUN_DEADLINE)
    finally:
        driver.done.set()
        for thread in threads:
            thread.join(90)
    assert not driver.errors, driver.errors
    # The load balancer used both instances, and only the running one once the other had stopped.
    assert set(driver.answered_by[:STOP_AFTER]) == {"app-1", "app-2"}
    assert set(driver.answered_by[stopped_at:restarted_at]) == {"app-2"}
    assert set(driver.answered_by[killed_at:]) == {"app-1"}
    assert docker("inspect", "--format", "{{.State.Running}}", instances[1]).stdout.strip() == "false"
    print(f"local-ha drive: {len(driver.acknowledged)} acknowledged, {driver.refused} refused (412), "
          f"{len(driver.transient)} retried after 5xx/connection errors: {sorted(set(driver.transient))}")

    verify = ssl.create_default_context(cafile=target.ca_file)
    with httpx.Client(base_url=url, verify=verify, timeout=15) as http:
        status = http.get("/status").json()
        events = all_events(http)
    acknowledged_seqs = [event["seq"] for event in driver.acknowledged]
    assert len(set(acknowledged_seqs)) == len(acknowledged_seqs)
    assert status["counter"] == len(driver.acknowledged)
    assert [event["seq"] for event in events] == list(range(1, len(events) + 1))
    by_seq = {event["seq"]: event for event in events}
    for event in driver.acknowledged:
        assert by_seq[event["seq"]] == event

    access_log = docker("logs", f"{name}-lb")
    assert '"uri":"/update"' in access_log.stdout
    assert key not in access_log.stdout + access_log.stderr  # the API key stays out of the logs

    # The auditor's check, on the database itself (reached over the target's private network).
    password = (target.state_dir / "db-password").read_text().strip()
    audit = subprocess.run(
        ["docker", "run", "--rm", "--network", f"{name}-net", image, "verify", "--database",
         f"postgresql://eventstate:{password}@db:5432/eventstate"],
        capture_output=True, text=True, timeout=120, check=False)
    assert audit.returncode == 0, audit.stdout + audit.stderr

    started = time.monotonic()
    destroy(target, say=said.append)
    print(f"local-ha destroy: {time.monotonic() - started:.1f}s")
    assert leftovers(name) == []
    destroy(target, say=said.append)
    assert said[-1] == "nothing deployed on local-ha"


def test_deploy_without_the_postgres_image_fails_naming_how_to_build_it(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A missing PostgreSQL image stops deploy before anything is created, saying what builds it."""
    monkeypatch.setenv("EVENTSTATE_POSTGRES_IMAGE", f"eventstate-postgres:missing-{uuid.uuid4().hex[:8]}")
    name = os.environ["EVENTSTATE_LOCAL_CONTAINER"]
    missing = r"is not on this machine's Docker engine: bash \.ci/docker\.sh builds it"
    with pytest.raises(DeployError, match=missing):
        deploy(target, say=lambda _: None)
    assert leftovers(name) == []
