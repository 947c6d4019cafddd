"""Sessions and the schema's constraint names on top of newsletter/engine.py (engines), which it
re-exports: code that needs sessions or the models imports this module; code that runs plain SQL
only imports newsletter/engine.py and skips SQLModel's import (issue 18)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert
from sqlmodel import Session, SQLModel

from newsletter.engine import (NEVER_REUSE_IDS, _engines, as_utc, close_connections, dispose_engines, get_engine,
                               make_engine, utcnow)  # noqa: F401  (re-exported)

# Named constraints, so Alembic migrations (batch mode on SQLite) can address them.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def insert_for(session: Session, table: Any) -> Insert:
    """INSERT for `table` in the session's dialect: the PostgreSQL or SQLite construct, which has
    `on_conflict_do_nothing/do_update` (the generic insert has neither)."""
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
