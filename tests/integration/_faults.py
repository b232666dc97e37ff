"""Helpers for the fault tests: tiny filesystems, immutable files, ballast, polling with deadlines."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import pytest

PROBLEM_JSON = "application/problem+json"


def require_mounts(*tools: str) -> None:
    """Skip (with the reason) unless this process may mount filesystems and has `tools`."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tiny filesystem needs root (CI runs as root)")
    missing = [tool for tool in ("mount", "umount", *tools) if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"missing {', '.join(missing)}, needed to build the faulty filesystem")


def _run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=30)


def _unmount(mountpoint: Path) -> None:
    try:
        _run("umount", str(mountpoint))
    except subprocess.CalledProcessError:
        # Still busy (a process we could not stop): detach it now; the kernel frees it later.
        _run("umount", "--lazy", str(mountpoint))


@contextmanager
def tmpfs(mountpoint: Path, size_kib: int) -> Iterator[Path]:
    """A tmpfs of `size_kib` KiB mounted at `mountpoint` (created), always unmounted afterwards."""
    require_mounts()
    mountpoint.mkdir()
    try:
        _run("mount", "-t", "tmpfs", "-o", f"size={size_kib}k,mode=0755", "tmpfs", str(mountpoint))
    except subprocess.CalledProcessError as e:
        pytest.skip(f"cannot mount a tmpfs here: {e.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        _unmount(mountpoint)


@contextmanager
def ext4_image(mountpoint: Path, size_mib: int) -> Iterator[Path]:
    """A loop-mounted ext4 image of `size_mib` MiB at `mountpoint`; unmounted (and its loop device
    released) afterwards."""
    require_mounts("mkfs.ext4", "e2fsck", "findmnt", "losetup", "chattr")
    image = mountpoint.with_name(mountpoint.name + ".img")
    with image.open("wb") as f:
        f.truncate(size_mib * 1024 * 1024)
    _run("mkfs.ext4", "-q", "-F", "-m", "0", str(image))
    mountpoint.mkdir()
    try:
        # `-o loop` sets autoclear: unmounting releases the loop device.
        _run("mount", "-o", "loop,errors=remount-ro", str(image), str(mountpoint))
    except subprocess.CalledProcessError as e:
        pytest.skip(f"cannot loop-mount an ext4 image here: {e.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        with suppress(subprocess.CalledProcessError):
            _run("chattr", "-R", "-i", str(mountpoint))
        _unmount(mountpoint)
        image.unlink()


def fail_filesystem(mountpoint: Path) -> None:
    """Report an error on the ext4 filesystem at `mountpoint`, as a failing disk would: with
    errors=remount-ro the kernel turns it read-only at once, under open files, until unmounted."""
    device = subprocess.run(["findmnt", "-n", "-o", "SOURCE", str(mountpoint)], check=True,
                            capture_output=True, text=True).stdout.strip()
    trigger = Path("/sys/fs/ext4") / Path(device).name / "trigger_fs_error"
    if not trigger.exists():
        pytest.skip(f"this kernel has no {trigger} to report an ext4 error with")
    trigger.write_text("eventstate fault test")


def remount_repaired(mountpoint: Path) -> None:
    """Unmount the ext4 image at `mountpoint`, repair it with e2fsck and mount it read-write again."""
    image = mountpoint.with_name(mountpoint.name + ".img")
    _unmount(mountpoint)
    repaired = subprocess.run(["e2fsck", "-f", "-y", str(image)], capture_output=True, text=True,
                              timeout=60, check=False)
    assert repaired.returncode in (0, 1), repaired.stdout + repaired.stderr  # 1: errors fixed
    _run("mount", "-o", "loop,errors=remount-ro", str(image), str(mountpoint))


@contextmanager
def immutable(*paths: Path) -> Iterator[None]:
    """Set the immutable attribute on `paths`: the kernel then refuses every write, root's too."""
    _run("chattr", "+i", *map(str, paths))
    try:
        yield
    finally:
        _run("chattr", "-i", *map(str, paths))


def fill(directory: Path) -> Path:
    """Write a ballast file in `directory` until its filesystem has no byte left; the ballast."""
    ballast = directory / "ballast"
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for chunk in (1 << 16, 1 << 12, 1 << 9, 1):
            block = b"\0" * chunk
            while True:
                try:
                    os.write(fd, block)
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    return ballast


def keep_output_off(server: Any, elsewhere: Path) -> None:
    """Send the server's output to `elsewhere` instead of the database's (tiny) filesystem.

    The server writes its output beside the database; a symlink there keeps a full or read-only
    filesystem from also breaking the server's stdout, which a real deployment keeps elsewhere.
    """
    Path(server.log).symlink_to(elsewhere)


def poll(check: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    """Wait until `check()` is true; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout}s: {what}")
        time.sleep(0.05)


def status_of(url: str) -> int:
    """The status code of GET `url` (0 when nothing answers)."""
    try:
        return httpx.get(url, timeout=5).status_code
    except httpx.TransportError:
        return 0


def assert_retryable_problem(response: httpx.Response, *words: str) -> dict[str, Any]:
    """A 503 problem+json with Retry-After whose detail names `words`; its body."""
    assert (503, PROBLEM_JSON) == (
        response.status_code,
        response.headers.get("content-type", "").split(";")[0],
    ), response.text
    assert response.headers.get("retry-after", "").isdigit(), response.headers
    body: dict[str, Any] = response.json()
    assert 503 == body["status"]
    assert [w for w in words if w in body["detail"]] == list(words), body["detail"]
    return body


def events(url: str) -> list[dict[str, Any]]:
    """The whole log as served by GET /logs."""
    items: list[dict[str, Any]] = []
    next_url: str | None = "/logs?limit=1000"
    while next_url:
        response = httpx.get(url + next_url, timeout=10)
        assert 200 == response.status_code, response.text
        page = response.json()
        items += page["items"]
        next_url = page["next"]
    return items


def post_updates(url: str, count: int, message: str = "") -> list[dict[str, Any]]:
    """POST `count` updates, each of which must be acknowledged; the recorded events."""
    recorded = []
    with httpx.Client(base_url=url, timeout=10) as client:
        for i in range(count):
            response = client.post("/update", json={"counter": i, "message": message})
            assert 200 == response.status_code, response.text
            recorded.append(response.json())
    return recorded


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the `eventstate` command."""
    return subprocess.run(
        [sys.executable, "-m", "eventstate.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def digest(path: Path) -> str:
    """The SHA-256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()
