"""The container image, built and run by a real Docker engine the way the deploy host runs it."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _docker import (
    CONTAINER_PORT,
    DATABASE,
    PREBUILT_IMAGE,
    REQUIRE_DOCKER,
    SERVICE_UID,
    TEST_IMAGE_TAG,
    Container,
    build_image,
    docker,
    engine_unreachable_reason,
    log_items,
    run_container,
    wait_for,
)

pytestmark = pytest.mark.container

API_KEY = "container-test-key-0123456789"
SERVICE_ENV = {"EVENTSTATE_API_KEYS": API_KEY}
STOP_GRACE_SECONDS = 10

RunContainer = Callable[[str], Container]


@pytest.fixture(scope="session")
def engine() -> None:
    """A reachable Docker engine: skip without one, unless CI demands it."""
    reason = engine_unreachable_reason()
    if reason is None:
        return
    if os.environ.get(REQUIRE_DOCKER) == "1":
        pytest.fail(f"{REQUIRE_DOCKER}=1 but {reason}", pytrace=False)
    pytest.skip(f"{reason} (set {REQUIRE_DOCKER}=1 to make this a failure)")


@pytest.fixture(scope="session")
def image(engine: None, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The image under test: $EVENTSTATE_IMAGE when given, else built once per session."""
    prebuilt = os.environ.get(PREBUILT_IMAGE)
    if prebuilt:
        docker("image", "inspect", prebuilt)
        return prebuilt
    started = time.monotonic()
    build_image(TEST_IMAGE_TAG, tmp_path_factory.mktemp("image-context"))
    print(f"built {TEST_IMAGE_TAG} in {time.monotonic() - started:.1f} s")
    return TEST_IMAGE_TAG


@pytest.fixture
def volume(engine: None) -> Iterator[str]:
    """A fresh named volume, removed after the test (after its containers)."""
    name = f"eventstate-test-{uuid.uuid4().hex[:12]}"
    docker("volume", "create", name)
    yield name
    # Containers still using it (this fixture's teardown may run before `run`'s) go first.
    users = docker("ps", "--all", "--quiet", "--filter", f"volume={name}").stdout.split()
    if users:
        docker("rm", "--force", *users, check=False)
    docker("volume", "rm", "--force", name)


@pytest.fixture
def run(image: str) -> Iterator[RunContainer]:
    """Start containers of the image; every one is removed when the test ends."""
    started: list[Container] = []

    def start(data: str) -> Container:
        container = run_container(image, data=data, env=SERVICE_ENV)
        started.append(container)
        return container

    yield start
    for container in started:
        docker("rm", "--force", container.id, check=False)


def post_updates(container: Container, count: int) -> list[dict[str, Any]]:
    """POST COUNT updates and return the events the API acknowledged."""
    with container.client(API_KEY) as http:
        responses = [
            http.post("/update", json={"counter": i, "message": f"update {i}"})
            for i in range(count)
        ]
    assert [200] * count == [r.status_code for r in responses]
    return [r.json() for r in responses]


def snapshot(container: Container) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The API's current status and its whole event log."""
    with container.client() as http:
        status = http.get("/status")
        status.raise_for_status()
        return status.json(), log_items(http)


def test_state_survives_restart_and_replacement(run: RunContainer, volume: str) -> None:
    """Status and the whole log on a named volume outlive a restart and a replaced container."""
    first = run(volume).wait_ready()
    acknowledged = post_updates(first, 5)
    before = snapshot(first)
    assert acknowledged == before[1]
    assert {"counter": 4, "message": "update 4"}.items() <= before[0].items()

    docker("restart", "--time", str(STOP_GRACE_SECONDS), first.id, timeout=60)
    assert before == snapshot(first.wait_ready())

    docker("stop", "--time", str(STOP_GRACE_SECONDS), first.id, timeout=60)
    docker("rm", first.id)
    second = run(volume).wait_ready()
    assert before == snapshot(second)

    verify = second.exec("eventstate", "verify", "--database", DATABASE)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_server_runs_as_a_numeric_non_root_user(run: RunContainer, volume: str) -> None:
    """The image names a numeric user, and the server process (PID 1) really runs as it."""
    container = run(volume).wait_ready()
    assert f"{SERVICE_UID}:{SERVICE_UID}" == container.inspect()["Config"]["User"]

    status = container.exec("cat", "/proc/1/status").stdout
    uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    assert [str(SERVICE_UID)] * 4 == uid_line.split()[1:]


def test_health_status_becomes_healthy(run: RunContainer, volume: str) -> None:
    """Docker's own health check (the image's HEALTHCHECK) reports the service healthy."""
    started = time.monotonic()
    container = run(volume)

    def health() -> str | None:
        state = container.inspect()["State"]
        assert state["Running"], container.logs()
        status: str = state["Health"]["Status"]
        assert status != "unhealthy", state["Health"]["Log"]
        return status if status == "healthy" else None

    assert wait_for("the health status to become healthy", health, timeout=90) == "healthy"
    print(f"healthy {time.monotonic() - started:.1f} s after docker run")


def test_stop_is_graceful_and_loses_no_acknowledged_update(run: RunContainer, volume: str) -> None:
    """`docker stop` under write load exits 0 in time and loses no acknowledged update."""
    container = run(volume).wait_ready()
    acknowledged: list[dict[str, Any]] = []
    stop_writing = threading.Event()

    def write() -> None:
        with container.client(API_KEY) as http:
            for i in range(10_000):
                if stop_writing.is_set():
                    return
                try:
                    response = http.post("/update", json={"counter": i})
                except httpx.HTTPError:
                    return
                if response.status_code != 200:
                    return
                acknowledged.append(response.json())

    writers = [threading.Thread(target=write) for _ in range(2)]
    for writer in writers:
        writer.start()
    try:
        wait_for("some updates to be acknowledged", lambda: len(acknowledged) >= 20, timeout=60)
        started = time.monotonic()
        docker("stop", "--time", str(STOP_GRACE_SECONDS), container.id, timeout=60)
        stopped_after = time.monotonic() - started
    finally:
        stop_writing.set()
        for writer in writers:
            writer.join(timeout=30)

    state = container.inspect()["State"]
    assert (state["ExitCode"], state["OOMKilled"]) == (0, False), container.logs()
    assert stopped_after < STOP_GRACE_SECONDS
    print(f"docker stop took {stopped_after:.2f} s with {len(acknowledged)} updates acknowledged")

    _, log = snapshot(run(volume).wait_ready())
    by_seq = {event["seq"]: event for event in log}
    assert acknowledged == [by_seq.get(event["seq"]) for event in acknowledged]
    assert list(range(log[0]["seq"], log[0]["seq"] + len(log))) == [e["seq"] for e in log]


def test_root_owned_bind_mount_is_a_clear_start_up_error(run: RunContainer, tmp_path: Path) -> None:
    """A host directory the service user cannot write stops it at start-up with one clear line."""
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    assert data.stat().st_uid != SERVICE_UID

    container = run(str(data))
    state = container.wait_exited(timeout=60)
    output = container.logs()
    assert state["ExitCode"] != 0, output
    assert "eventstate: error:" in output
    assert "/data" in output
    assert "Traceback" not in output


def test_runtime_image_holds_no_build_tools(image: str) -> None:
    """The runtime stage has no pip, compilers, wheelhouse or pip cache."""
    probe = (
        "import importlib.util, os, shutil; "
        "print(sorted(t for t in ('pip', 'pip3', 'gcc', 'cc', 'make') if shutil.which(t)), "
        "importlib.util.find_spec('pip') is not None, "
        "sorted(p for p in ('/wheelhouse', '/root/.cache', '/tmp/pip') if os.path.exists(p)))"
    )
    proc = docker("run", "--rm", "--entrypoint", "python3", image, "-c", probe)
    assert proc.stdout.strip() == "[] False []"


# ---- replication (Litestream in the image, a moto S3 server on this machine) -----------------


def _bridge_gateway() -> str:
    """This machine's address on Docker's default bridge (its gateway, else the subnet's first host)."""
    import ipaddress
    import json

    (config,) = json.loads(docker("network", "inspect", "bridge").stdout)[0]["IPAM"]["Config"][:1]
    return str(config.get("Gateway") or next(ipaddress.ip_network(config["Subnet"]).hosts()))


def test_container_replicates_and_a_new_volume_is_restored_from_the_replica(
    run: RunContainer, volume: str, engine: None, image: str, tmp_path: Path
) -> None:
    """With EVENTSTATE_REPLICA_URL the container streams its log to S3; `docker stop` makes the
    final sync; `eventstate restore` in the image fills an empty volume (as the boot script does),
    and a container on it serves the same log."""
    from replica_support import moto_s3, require_litestream, restore_cli, s3

    require_litestream()
    # The container reaches this machine at the bridge's gateway address; moto listens only there.
    gateway = _bridge_gateway()
    with moto_s3(host=gateway) as endpoint:
        bucket = f"replica-{uuid.uuid4().hex[:12]}"
        s3(endpoint).create_bucket(Bucket=bucket)
        url = f"s3://{bucket}/container"
        replica_env = {"EVENTSTATE_REPLICA_URL": url, "EVENTSTATE_REPLICA_ENDPOINT": endpoint,
                       "EVENTSTATE_REPLICA_SYNC_INTERVAL_MS": "200",
                       "EVENTSTATE_REPLICA_ANCHOR_INTERVAL_SECONDS": "1",
                       "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_REGION": "us-east-1"}
        env_args = [a for k, v in replica_env.items() for a in ("--env", f"{k}={v}")]
        proc = docker("run", "--detach", "--publish", f"127.0.0.1::{CONTAINER_PORT}",
                      "--volume", f"{volume}:/data", *env_args,
                      "--env", f"EVENTSTATE_API_KEYS={API_KEY}", image)
        first = Container(proc.stdout.strip())
        try:
            first.wait_ready()
            acknowledged = post_updates(first, 10)

            def anchored() -> bool:
                with first.client(API_KEY) as http:
                    text = http.get("/metrics").text
                return f"eventstate_replica_anchored_seq {float(acknowledged[-1]['seq'])}" in text
            wait_for("the head anchored beside the replica", anchored, timeout=60)
            _, log = snapshot(first)
            docker("stop", "--time", str(STOP_GRACE_SECONDS), first.id, timeout=60)
            assert "replication stopped" in first.logs()
        finally:
            docker("rm", "--force", first.id, check=False)

        # On the host, as an auditor would.
        restored = restore_cli(endpoint, url, tmp_path / "restored.db")
        assert restored.returncode == 0, restored.stderr
        assert f"{len(log)} events, chain verified" in restored.stdout

        # In the image, onto an empty volume, as the boot script does on a replaced instance.
        fresh = f"eventstate-test-{uuid.uuid4().hex[:12]}"
        docker("volume", "create", fresh)
        try:
            done = docker("run", "--rm", "--volume", f"{fresh}:/data", *env_args, image, "restore",
                          "--replica", url, "--database", DATABASE, check=False, timeout=120)
            assert done.returncode == 0, done.stderr
            second = run(fresh)
            second.wait_ready()
            _, again = snapshot(second)
            assert log == again
        finally:
            users = docker("ps", "--all", "--quiet", "--filter", f"volume={fresh}").stdout.split()
            if users:
                docker("rm", "--force", *users, check=False)
            docker("volume", "rm", "--force", fresh, check=False)
