"""Every table, trigger and function of the PostgreSQL log, in one place, and how `init` applies them.

Whatever else is stored beside the events (tree nodes, checkpoints) is declared here on `metadata`
and written by `store.PostgresTransaction.commit`, in the same transaction as its events.
"""

from __future__ import annotations

import sqlalchemy as sa

SCHEMA_VERSION = 2  # 2: the Merkle tree (merkle_nodes); `init` builds it for a version-1 log
NOTIFY_CHANNEL = "eventstate_head"
# pg_advisory_xact_lock key for `eventstate init`: "EVST" as an integer, so concurrent inits queue.
INIT_LOCK_KEY = 0x45565354

metadata = sa.MetaData()

events_table = sa.Table(
    "events",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("timestamp", sa.Text, nullable=False),
    sa.Column("old_counter", sa.BigInteger, nullable=False),
    sa.Column("old_message", sa.Text, nullable=False),
    sa.Column("new_counter", sa.BigInteger, nullable=False),
    sa.Column("new_message", sa.Text, nullable=False),
    sa.Column("hash", sa.Text, nullable=False),
)

meta_table = sa.Table(
    "eventstate_meta",
    metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

# The head as last committed: the one row every append locks (SELECT ... FOR UPDATE), so appends
# are serialised and commit in seq order; also what `verify` compares the events against.
head_table = sa.Table(
    "log_head",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.Text, nullable=False),
    sa.CheckConstraint("id = 1", name="single_row"),
)

idempotency_table = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("fingerprint", sa.Text, nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.Text, nullable=False),
)

# The RFC 9162 tree over the events: complete subtrees of level `merkle.STORED_FROM_LEVEL` and up,
# keyed (level, idx) as in `merkle.NodeId`, inserted in the same transaction as the events.
merkle_nodes_table = sa.Table(
    "merkle_nodes",
    metadata,
    sa.Column("level", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("hash", sa.LargeBinary, nullable=False),
)

# Functions and triggers: CREATE OR REPLACE / DROP IF EXISTS + CREATE, so `init` can rerun them.
TRIGGERS = (
    """CREATE OR REPLACE FUNCTION eventstate_append_only() RETURNS trigger
       LANGUAGE plpgsql AS $$
       BEGIN
         RAISE EXCEPTION 'eventstate: the event log is append-only' USING ERRCODE = 'restrict_violation';
       END $$""",
    """CREATE OR REPLACE FUNCTION eventstate_gapless() RETURNS trigger
       LANGUAGE plpgsql AS $$
       BEGIN
         IF NEW.seq IS DISTINCT FROM (SELECT COALESCE(MAX(seq), 0) + 1 FROM events) THEN
           RAISE EXCEPTION 'eventstate: seq must continue the log without gaps (got %)', NEW.seq
             USING ERRCODE = 'check_violation';
         END IF;
         RETURN NEW;
       END $$""",
    "DROP TRIGGER IF EXISTS events_no_update_or_delete ON events",
    """CREATE TRIGGER events_no_update_or_delete BEFORE UPDATE OR DELETE ON events
       FOR EACH ROW EXECUTE FUNCTION eventstate_append_only()""",
    "DROP TRIGGER IF EXISTS events_no_truncate ON events",
    """CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
       FOR EACH STATEMENT EXECUTE FUNCTION eventstate_append_only()""",
    "DROP TRIGGER IF EXISTS events_gapless ON events",
    """CREATE TRIGGER events_gapless BEFORE INSERT ON events
       FOR EACH ROW EXECUTE FUNCTION eventstate_gapless()""",
    "DROP TRIGGER IF EXISTS merkle_nodes_no_update_or_delete ON merkle_nodes",
    """CREATE TRIGGER merkle_nodes_no_update_or_delete BEFORE UPDATE OR DELETE ON merkle_nodes
       FOR EACH ROW EXECUTE FUNCTION eventstate_append_only()""",
)
