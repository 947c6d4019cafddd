"""Engine and sessions. SQLite is the embedded default, PostgreSQL (psycopg 3) scales out."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.sql.dml import Insert
from sqlmodel import Session, SQLModel

from newsletter.errors import ConfigError

# Named constraints, so Alembic migrations (batch mode on SQLite) can address them.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite reuses the highest rowid after a delete unless a table says AUTOINCREMENT; ids that
# links, Message-IDs or references name must never come back for someone else (docs/addresses.md).
# PostgreSQL sequences never hand out a value twice, so this only changes SQLite's DDL.
NEVER_REUSE_IDS = {"sqlite_autoincrement": True}

_engines: dict[str, Engine] = {}


def utcnow() -> datetime:
    """Aware UTC: SQLModel's UTCDateTime columns refuse naive datetimes."""
    return datetime.now(UTC)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_engine(url: str) -> Engine:
    """Create an engine; SQLite gets WAL and foreign keys on every connection."""
    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy raises ArgumentError with a terse text
        raise ConfigError(f"config error: database.url {url!r} is not a valid database URL ({exc})")
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_backend_name() == "postgresql":
        if parsed.drivername != "postgresql+psycopg":
            raise ConfigError(
                f"config error: database.url uses driver {parsed.drivername!r}; use postgresql+psycopg://"
            )
        # 10 stay open: `serve` runs its routes in as many threads (web/app.py size_threadpool), so
        # a request thread always finds one; up to 30 more for other threads at once (the serve
        # process's sender and import runner, a CLI command's helpers), closed when idle. Workers
        # use 2-3.
        return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=30)
    raise ConfigError(f"config error: database.url: unsupported database {parsed.get_backend_name()!r}")


def get_engine(url: str) -> Engine:
    """One engine per URL and process (engines hold the connection pool)."""
    engine = _engines.get(url)
    if engine is None:
        engine = _engines[url] = make_engine(url)
    return engine


def dispose_engines() -> None:
    for engine in _engines.values():
        engine.dispose()
    _engines.clear()


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
