"""Every table, index and trigger of the SQLite log, in one place.

Whatever else is stored beside the events (tree nodes, checkpoints) is declared here on `metadata`
and written by `store.WriteTransaction.commit`, in the same transaction as the events it belongs to.
"""

from __future__ import annotations

import sqlalchemy as sa

SCHEMA_VERSION = 2  # 2: the Merkle tree (merkle_nodes); a version-1 log is upgraded on open
APPLICATION_ID = 0x45565354  # "EVST": marks a SQLite file as an eventstate log

metadata = sa.MetaData()

events_table = sa.Table(
    "events",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
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

# The head as last committed, kept beside the events so that `verify` notices a truncated tail.
head_table = sa.Table(
    "log_head",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("hash", sa.Text, nullable=False),
    sa.CheckConstraint("id = 1", name="single_row"),
)

idempotency_table = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("fingerprint", sa.Text, nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
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
    sqlite_with_rowid=False,
)

TRIGGERS = (
    """CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events
       BEGIN SELECT RAISE(ABORT, 'eventstate: the event log is append-only'); END""",
    """CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events
       BEGIN SELECT RAISE(ABORT, 'eventstate: the event log is append-only'); END""",
    """CREATE TRIGGER IF NOT EXISTS events_gapless BEFORE INSERT ON events
       WHEN NEW.seq IS NOT (SELECT COALESCE(MAX(seq), 0) + 1 FROM events)
       BEGIN SELECT RAISE(ABORT, 'eventstate: seq must continue the log without gaps'); END""",
    """CREATE TRIGGER IF NOT EXISTS merkle_nodes_no_update BEFORE UPDATE ON merkle_nodes
       BEGIN SELECT RAISE(ABORT, 'eventstate: the Merkle tree is append-only'); END""",
    """CREATE TRIGGER IF NOT EXISTS merkle_nodes_no_delete BEFORE DELETE ON merkle_nodes
       BEGIN SELECT RAISE(ABORT, 'eventstate: the Merkle tree is append-only'); END""",
)
