"""The README's GRANTs: the service runs as a role that owns nothing and cannot rewrite the log."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
import pytest
from litestar.testing import TestClient

from _postgres import Cluster, fresh_database, raw_sql
from eventstate.app import create_app
from eventstate.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def _readme_grants() -> list[str]:
    """The GRANT statements of the README's PostgreSQL section, as written there."""
    block = README.read_text(encoding="utf-8").split("CREATE ROLE app", 1)[1].split("```", 1)[0]
    return [s.strip() for s in re.findall(r"(GRANT [^;]+);", block)]


def test_the_service_works_as_a_role_that_owns_nothing(postgres_cluster: Cluster) -> None:
    """With exactly the README's GRANTs the app serves reads and writes, and cannot UPDATE, DELETE,
    TRUNCATE or disable the triggers."""
    url = fresh_database(postgres_cluster)
    database = url.rsplit("/", 1)[1]
    sql = raw_sql(url)
    sql("DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app') "
        "THEN CREATE ROLE app LOGIN; END IF; END $$")
    grants = _readme_grants()
    assert len(grants) >= 5
    for grant in grants:
        sql(grant.replace("DATABASE eventstate", f"DATABASE {database}"))
    app_url = postgres_cluster.url(database, user="app")
    with TestClient(create_app(Settings(database=app_url))) as client:
        assert 200 == client.post("/update", json={"counter": 1}).status_code
        keyed = client.post("/update", json={"counter": 2}, headers={"Idempotency-Key": "k1"})
        assert 200 == keyed.status_code
        assert 200 == client.get("/health/ready").status_code
        assert 2 == client.get("/status").json()["version"]
    as_app = raw_sql(app_url)
    for statement in ("UPDATE events SET new_counter = 9", "DELETE FROM events", "TRUNCATE events",
                      "ALTER TABLE events DISABLE TRIGGER USER", "DROP TRIGGER events_gapless ON events"):
        with pytest.raises(psycopg.Error):
            as_app(statement)
    assert [("2",)] == sql("SELECT count(*)::text FROM events")
