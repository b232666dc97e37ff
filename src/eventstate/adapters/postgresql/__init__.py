"""The PostgreSQL adapter: one log in one database, served by any number of instances."""

from eventstate.adapters.postgresql.store import PostgresSnapshot, PostgresStore, PostgresTransaction

__all__ = ["PostgresSnapshot", "PostgresStore", "PostgresTransaction"]
