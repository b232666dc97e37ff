"""A connection lost during COMMIT: the adapter reads the outcome back, and never guesses."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from _postgres import Cluster, fresh_database, raw_sql
from eventstate.adapters.postgresql import PostgresStore
from eventstate.domain import State, record
from eventstate.ports import StoreUnavailable

NOW = datetime(2026, 5, 1, tzinfo=UTC)

# A deferred constraint trigger runs inside COMMIT: terminating its own backend there drops the
# connection in the middle of the COMMIT, the failure this is about, with the server really running.
_KILL_AT_COMMIT = """
CREATE OR REPLACE FUNCTION test_die_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.new_message = 'die' THEN PERFORM pg_terminate_backend(pg_backend_pid()); END IF;
  RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER test_die_at_commit AFTER INSERT ON events
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION test_die_at_commit();
"""


def test_a_commit_whose_connection_dies_is_read_back_as_not_recorded(postgres_cluster: Cluster) -> None:
    """The connection drops inside COMMIT and the batch did not commit: the caller is told so
    (after a read back), nothing is in the log, and the store goes on working."""
    url = fresh_database(postgres_cluster)
    raw_sql(url)(_KILL_AT_COMMIT)
    store = PostgresStore.open(url)
    try:
        with store.transaction() as tx:
            tx.append(record(tx.head, State(1, "fine"), NOW))
        tx = store.begin()
        tx.append(record(tx.head, State(2, "die"), NOW))
        with pytest.raises(StoreUnavailable, match="read back: the update was not recorded"):
            tx.commit()
        assert 1 == store.head().version
        with store.transaction() as tx:
            tx.append(record(tx.head, State(3, "after"), NOW))
        assert (2, State(3, "after")) == (store.head().version, store.head().state)
    finally:
        store.close()


def test_a_commit_that_happened_before_the_connection_died_is_reported_as_recorded(
        postgres_cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    """The COMMIT reached the server but its answer was lost: the read back finds the batch, so the
    commit returns normally (the requests are acknowledged), and nothing is written twice."""
    import psycopg

    url = fresh_database(postgres_cluster)
    store = PostgresStore.open(url)
    try:
        tx = store.begin()
        tx.append(record(tx.head, State(7, "x"), NOW))
        connection = tx._raw  # the transaction's own psycopg connection
        real_commit = connection.commit

        def commit_then_lose_the_answer() -> None:
            real_commit()
            raise psycopg.OperationalError("server closed the connection unexpectedly")

        monkeypatch.setattr(connection, "commit", commit_then_lose_the_answer)
        tx.commit()
        assert (1, State(7, "x")) == (store.head().version, store.head().state)
    finally:
        store.close()
