"""Shared fixtures: Hypothesis profiles, temporary logs, an in-process client and real server processes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests_support import ServerProcess

settings.register_profile("default", max_examples=40, deadline=None)
settings.register_profile(
    "ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "default"))


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A path for a new log in a fresh directory."""
    return tmp_path / "events.db"


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[type[ServerProcess]]:
    """Start real servers; every one is stopped at the end of the test."""
    started: list[ServerProcess] = []

    class Factory(ServerProcess):
        def start(self, timeout: float = 20.0) -> ServerProcess:
            started.append(self)
            return super().start(timeout)

    yield Factory
    for server in started:
        server.stop()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With EVENTSTATE_FORBID_SKIPS set (CI), a skipped test fails the run: CI must run everything."""
    if not os.environ.get("EVENTSTATE_FORBID_SKIPS"):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter is not None else 0
    if skipped:
        print(f"\nEVENTSTATE_FORBID_SKIPS: {skipped} test(s) skipped; every test must run in CI")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[object]:
    """A throwaway PostgreSQL cluster for the whole session (skips without the binaries, unless
    EVENTSTATE_REQUIRE_POSTGRES=1)."""
    from _postgres import start_cluster

    cluster = start_cluster()
    try:
        yield cluster
    finally:
        cluster.destroy()
