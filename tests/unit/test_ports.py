"""The storage port's boundary: use cases and the HTTP edge know the port, never an adapter."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import eventstate.domain

SRC = Path(eventstate.domain.__file__).parent
PORT_USERS = ["commands.py", "writer.py", "projection.py", "service.py", "audit.py",
              *(f"http/{p.name}" for p in sorted((SRC / "http").glob("*.py")))]
FORBIDDEN = ("sqlite3", "sqlalchemy", "psycopg", "eventstate.eventlog", "eventstate.adapters.")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("module", PORT_USERS)
def test_use_cases_and_http_import_only_the_port(module: str) -> None:
    """No use case or HTTP module imports a database driver or an adapter module."""
    assert [] == sorted(n for n in _imports(SRC / module) if n.startswith(FORBIDDEN))


def test_only_audit_opens_stores_itself_through_the_factory() -> None:
    """Of the port's users only `audit` (a command line entry) names `eventstate.adapters`, its factory."""
    users = [m for m in PORT_USERS if "eventstate.adapters" in _imports(SRC / m)]
    assert ["audit.py"] == users
