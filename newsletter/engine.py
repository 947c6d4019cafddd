"""Engines: SQLite is the embedded default, PostgreSQL (psycopg 3) scales out.

Why apart from newsletter/db.py: that module also names the SQLModel metadata's constraints and
opens ORM sessions, so importing it loads SQLModel, pydantic's model machinery and SQLAlchemy's
ORM (~0.3 s of CPU). A command that only runs a few SQL statements (`newsletter stats`, the
schema check every database command makes first) needs an engine and nothing of that (issue 18:
`newsletter stats` under 1 s). newsletter/db.py re-exports everything here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url

from newsletter.errors import ConfigError

# SQLite reuses the highest rowid after a delete unless a table says AUTOINCREMENT; ids that
# links, Message-IDs or references name must never come back for someone else (docs/addresses.md).
# PostgreSQL sequences never hand out a value twice, so this only changes SQLite's DDL.
NEVER_REUSE_IDS = {"sqlite_autoincrement": True}

_engines: dict[str, Engine] = {}


def utcnow() -> datetime:
    """Aware UTC: SQLModel's UTCDateTime columns refuse naive datetimes."""
    return datetime.now(UTC)


def as_utc(value: datetime | str | None) -> datetime | None:
    """A timestamp read with plain SQL (no UTCDateTime column type) as an aware UTC datetime:
    SQLite hands back its stored text, naive and in UTC; PostgreSQL an aware datetime."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.utcoffset() is None else value.astimezone(UTC)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


# No transaction of ours waits on its client for long (a worker's claim, record or rate-limit
# window is a few statements in a row; the import, the one long transaction, says so for itself).
# A client that vanishes between a statement and its COMMIT (a worker host whose link is cut)
# leaves its backend idle in that transaction, holding its row locks: the rows it claimed, which
# the other workers' claims then skip (FOR UPDATE SKIP LOCKED) however stale its heartbeat, and
# the shared rate-limit window, on which every other worker then waits. PostgreSQL only notices a
# vanished client through TCP keepalives (two hours by default; never through a proxy that keeps
# its side open). So every session ends such a transaction after this long, unless the server's
# config, the role or database (ALTER ROLE … SET) or the URL (`?options=-c …`) sets the limit,
# 0 included: an operator's choice is kept.
IDLE_IN_TRANSACTION = "60s"
# And both ends probe a silent connection after a minute, so that a vanished peer's connection is
# closed in about two (PostgreSQL's and Linux's default: two hours); data a peer has not
# acknowledged for two minutes closes it too (keepalives only probe an idle connection). On the
# server that frees the backends of a host that rebooted or was cut for good (each held a slot of
# max_connections, and a host that comes back reconnects beside them); in a worker, a query whose
# server vanished fails within minutes, not hours. Through a proxy (PgBouncer, HAProxy) the
# server's probes reach the proxy: set its own. Kept where the server, role or URL sets them.
KEEPALIVES = {"idle": 60, "interval": 10, "count": 6}
TCP_USER_TIMEOUT_MS = 120_000


def client_keepalives(cparams: dict) -> None:
    """libpq's keepalive parameters for a new connection, where the URL names none (the engine's
    connections, and the workers' listening one: delivery/wakeup.py)."""
    import psycopg

    cparams.setdefault("keepalives", 1)
    for name, value in KEEPALIVES.items():
        cparams.setdefault(f"keepalives_{name}", value)
    if psycopg.pq.version() >= 120000:  # libpq 12 brought tcp_user_timeout
        cparams.setdefault("tcp_user_timeout", TCP_USER_TIMEOUT_MS)


def session_defaults(dbapi_connection) -> None:
    """The idle-in-transaction limit and the server's side of the keepalives on a psycopg
    connection, where PostgreSQL's default is in force (one round trip; pg_settings.source says
    where a value came from; a setting this server lacks matches no row). In a transaction unless
    the connection is in autocommit: the caller commits (a SET rolled back is undone)."""
    wanted = {"idle_in_transaction_session_timeout": IDLE_IN_TRANSACTION, "tcp_user_timeout": str(TCP_USER_TIMEOUT_MS),
              **{f"tcp_keepalives_{name}": str(value) for name, value in KEEPALIVES.items()}}
    with dbapi_connection.cursor() as cursor:
        cursor.execute("SELECT set_config(s.name, w.value, false) FROM pg_settings AS s "
                       "JOIN unnest(%s::text[], %s::text[]) AS w(name, value) ON w.name = s.name "
                       "WHERE s.source = 'default'", (list(wanted), list(wanted.values())))


def long_transaction(connection: Connection, idle: str) -> None:
    """This transaction may wait on its client up to `idle` between two statements (PostgreSQL;
    the import: one transaction for a whole file), still a limit: a vanished client's transaction
    would hold its locks for hours. An operator's own limit (not the default, not ours) is kept."""
    connection.execute(text("SELECT set_config(name, :idle, true) FROM pg_settings WHERE name = "
                            "'idle_in_transaction_session_timeout' AND source IN ('default', 'session')"),
                       {"idle": idle})


def _pg_client_keepalives(_dialect, _record, _cargs, cparams: dict) -> None:
    client_keepalives(cparams)


def _pg_session_defaults(dbapi_connection, _record) -> None:
    """Per new connection of an engine: `session_defaults`, committed."""
    session_defaults(dbapi_connection)
    dbapi_connection.commit()


def make_engine(url: str) -> Engine:
    """Create an engine; SQLite gets WAL and foreign keys on every connection, PostgreSQL the
    idle-in-transaction limit and keepalives on both ends (`session_defaults`, `client_keepalives`)."""
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
        engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=30)
        event.listen(engine, "do_connect", _pg_client_keepalives)
        event.listen(engine, "connect", _pg_session_defaults)
        return engine
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


def close_connections() -> None:
    """Close every pooled connection of this process's engines but keep the engines.

    Before a fork (delivery/pool.py): the children then hold no connection of the parent's, yet
    find the parent's engine for the URL, whose dialect already met the server (SQLAlchemy runs
    its first-connect checks once per engine, a few round trips and their parsing) and whose cache
    of compiled statements is warm from the parent's warm-up (the sending issues, its frozen view).
    A fresh engine per child did both again on the way to its first claim (issue 18: a worker
    sending within 1 s of its start). Only checked-in connections exist here: every session of
    the parent is closed."""
    for engine in _engines.values():
        engine.dispose()
