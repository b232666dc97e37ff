"""The contract suite's one fixture: an open, empty store of every backend in turn."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from _stores import BACKENDS, DATABASE_BACKENDS, Backend, open_backend
from eventstate.ports import EventStore


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """A fresh, empty log on one backend, and how to reach its database around the adapter."""
    with open_backend(request.param, request, tmp_path) as b:
        yield b


@pytest.fixture
def store(backend: Backend) -> EventStore:
    """The open store of `backend`."""
    return backend.store


@pytest.fixture
def reopen(backend: Backend) -> Callable[[], EventStore]:
    """Open a second store on the same log (another process's view)."""
    return backend.reopen


@pytest.fixture(params=DATABASE_BACKENDS)
def db_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """A fresh, empty log on each real database (not the in-memory fake)."""
    with open_backend(request.param, request, tmp_path) as b:
        yield b
