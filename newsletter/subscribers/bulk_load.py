"""A large first import "takes the tables": their secondary indexes and foreign keys are dropped
inside the import's transaction, the rows loaded, and the same indexes and keys built again.

Why: keeping six indexes on subscriber, two on consent_event and a foreign-key check per topic
and consent row up to date one row at a time is most of the database's work in a million-row
import; building an index once from sorted data, and checking a foreign key with one join, is
several times cheaper. Only when the import is large (TAKE_AT rows or more) and larger than what
the tables hold: re-indexing a big list for a small import would cost more than it saves.

What stays: primary keys and unique constraints (the import finds known addresses through
them, and they guard the data while it loads). What is rebuilt is read from the catalogue
before it is dropped, so it comes back with the same names and definitions, whatever migrations
made it; it all happens in the import's one transaction, so a failed import leaves the schema
as it was. The price: from the first drop to the commit the tables are locked (ACCESS
EXCLUSIVE on PostgreSQL, the write lock on SQLite): signups, sends and the web's reader pages
wait for the import. docs/operations.md says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Connection, text

TAKE_AT = 100_000  # rows an import needs before it may take the tables
TABLES = ("subscriber", "subscriber_topic", "consent_event")

_PG_INDEXES = text(
    "SELECT i.indexname, i.indexdef FROM pg_indexes i JOIN pg_class c ON c.relname = i.indexname "
    "JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = i.schemaname "
    "JOIN pg_index x ON x.indexrelid = c.oid "
    "WHERE i.schemaname = current_schema() AND i.tablename = ANY(:tables) AND NOT x.indisunique "
    "ORDER BY i.indexname")
_PG_KEYS = text(
    "SELECT k.conname, k.conrelid::regclass::text, pg_get_constraintdef(k.oid) FROM pg_constraint k "
    "JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = current_schema() AND k.contype = 'f' AND c.relname = ANY(:tables) ORDER BY k.conname")
_SQLITE_INDEXES = text(
    "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
    "AND tbl_name IN ('subscriber', 'subscriber_topic', 'consent_event') "
    "AND upper(sql) NOT LIKE 'CREATE UNIQUE%' ORDER BY name")


@dataclass
class Taken:
    """What was dropped, to be made again exactly: (name, CREATE statement) and (name, table, definition)."""

    indexes: list[tuple[str, str]] = field(default_factory=list)
    keys: list[tuple[str, str, str]] = field(default_factory=list)


def should_take(connection: Connection, incoming: int, take_at: int = TAKE_AT) -> bool:
    """Whether an import of `incoming` rows takes the tables: at least `take_at` rows, and more
    than the readers already there."""
    if incoming < take_at:
        return False
    present = connection.execute(text("SELECT count(*) FROM subscriber")).scalar_one()
    return incoming > present


def take(connection: Connection) -> Taken:
    """Lock the tables, drop their secondary indexes and (PostgreSQL) foreign keys; what was dropped."""
    if connection.dialect.name == "postgresql":
        connection.execute(text(f"LOCK TABLE {', '.join(TABLES)} IN ACCESS EXCLUSIVE MODE"))
        taken = Taken([tuple(row) for row in connection.execute(_PG_INDEXES, {"tables": list(TABLES)})],
                      [tuple(row) for row in connection.execute(_PG_KEYS, {"tables": list(TABLES)})])
        for name, table, _definition in taken.keys:
            connection.execute(text(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"'))
    else:
        # SQLite checks a foreign key with one primary-key lookup per row and cannot drop one
        # without rebuilding the table: only the indexes go.
        taken = Taken([tuple(row) for row in connection.execute(_SQLITE_INDEXES)])
    for name, _definition in taken.indexes:
        connection.execute(text(f'DROP INDEX "{name}"'))
    return taken


def give_back(connection: Connection, taken: Taken) -> None:
    """Build again what take() dropped, with its own statements; the foreign keys are checked
    against every row as they are added (one join each, not one lookup per row)."""
    if connection.dialect.name == "postgresql":
        # Sorting a million keys in memory rather than on disk; local to this transaction.
        connection.execute(text("SET LOCAL maintenance_work_mem = '256MB'"))
    for _name, definition in taken.indexes:
        connection.execute(text(definition))
    for name, table, definition in taken.keys:
        connection.execute(text(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}'))
