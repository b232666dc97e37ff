"""In-process clients: the real app, a real SQLite file, Litestar's test client."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from eventstate.app import create_app
from eventstate.settings import Settings

Client = TestClient[Any]


@pytest.fixture
def make_client(db_path: Path) -> Iterator[Callable[..., Client]]:
    """Build clients for `create_app(Settings(database=db_path, **overrides))`; all closed at the end."""
    clients: list[Client] = []

    def make(**overrides: Any) -> Client:
        client = TestClient(create_app(Settings(**{"database": db_path, **overrides})))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in reversed(clients):
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., Client]) -> Client:
    """A client for an app on a fresh log with default settings."""
    return make_client()
