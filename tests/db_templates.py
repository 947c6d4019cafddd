"""Migrated databases for tests, made once per test process instead of once per test.

A test that needs a database at the current schema used to run every Alembic migration itself
(about 0.3 s of CPU and 1-3 s of wall time each, on SQLite and PostgreSQL alike, hundreds of
times a run). The isolation stays as it was, one database per test; only the way it reaches the
current schema is cheaper:

- SQLite: the migrations run once into a template file; each test gets a byte copy of it (the
  same pages Alembic wrote, WAL mode and the alembic_version row included).
- PostgreSQL: a schema cannot be cloned, so the migrations run once into a template schema while
  every statement they send is recorded; a test's fresh schema (its own, chosen through
  search_path as before) gets the same statements replayed in one transaction, or, once a test
  has finished with one, an emptied migrated schema renamed to its name (tests/pg_schemas.py).
  The statements name no schema (the migrations rely on search_path), which `record` checks.

Tests about migrations themselves (tests/test_migrations.py, `newsletter db upgrade`) still run
Alembic on an empty database: they never call `migrate_fresh`.
"""

from __future__ import annotations

import atexit
import secrets
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text

from newsletter.db import make_engine
from newsletter.migrate import upgrade
from tests import pg_schemas


@dataclass
class Recording:
    """The statements one Alembic upgrade sent to PostgreSQL, in order, with their parameters."""

    statements: list[tuple[str, object, bool]] = field(default_factory=list)


_lock = threading.Lock()
_made: dict[str, object] = {}  # "sqlite" -> the template file; a PostgreSQL server's URL -> its Recording


def _folder() -> Path:
    """This process's folder for templates (each xdist worker has its own), removed at exit."""
    if "folder" not in _made:
        folder = Path(tempfile.mkdtemp(prefix="wv-templates-"))
        atexit.register(shutil.rmtree, folder, True)
        _made["folder"] = folder
    return _made["folder"]


def sqlite_template() -> Path:
    """A SQLite file at the current schema, migrated on first use in this process."""
    with _lock:
        if "sqlite" not in _made:
            path = _folder() / "migrated.db"
            engine = make_engine(f"sqlite:///{path}")
            upgrade(engine)
            engine.dispose()  # the last connection closing checkpoints the WAL into the file
            assert not Path(f"{path}-wal").exists(), "the template's WAL was not checkpointed"
            _made["sqlite"] = path
        return _made["sqlite"]


def pg_recording(server: str) -> Recording:
    """The statements that migrate an empty PostgreSQL schema on `server`, recorded on first use."""
    with _lock:
        if server not in _made:
            _made[server] = record_pg_upgrade(server)
        return _made[server]


def record_pg_upgrade(pg_base: str) -> Recording:
    """Run the migrations into a throwaway schema, recording every statement sent; drop the schema."""
    schema = f"wv_template_{secrets.token_hex(6)}"
    admin = create_engine(pg_base)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    recording = Recording()
    engine = make_engine(f"{pg_base}?options=-csearch_path%3D{schema}")

    def record(_conn, _cursor, statement, parameters, _context, executemany) -> None:
        assert schema not in statement, f"a migration names its schema; it cannot be replayed: {statement}"
        recording.statements.append((statement, parameters, executemany))

    event.listen(engine, "before_cursor_execute", record)
    try:
        upgrade(engine)
    finally:
        event.remove(engine, "before_cursor_execute", record)
        engine.dispose()
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
    return recording


def replay(engine: Engine, recording: Recording) -> None:
    """Send the recorded statements to `engine`'s (empty) schema, in one transaction."""
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        for statement, parameters, executemany in recording.statements:
            # insertmanyvalues batches come with executemany set but one flat set of parameters
            if executemany and isinstance(parameters, (list, tuple)) and parameters \
                    and isinstance(parameters[0], (dict, list, tuple)):
                cursor.executemany(statement, parameters)
            elif parameters:
                cursor.execute(statement, parameters)
            else:
                cursor.execute(statement)
        cursor.close()
        raw.commit()
    finally:
        raw.close()


def migrate_fresh(engine: Engine) -> None:
    """Bring `engine`'s new, empty database to the current schema, as `upgrade(engine)` would;
    for a database that is not new and empty, it is `upgrade(engine)`."""
    url = engine.url
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        target = Path(url.database)
        if not target.exists() or target.stat().st_size == 0:
            engine.dispose()
            shutil.copyfile(sqlite_template(), target)
            return
    elif url.get_backend_name() == "postgresql" and (schema := _empty_pg_schema(engine)):
        server = url.difference_update_query(["options"]).render_as_string(hide_password=False)
        if pg_schemas.take(server, schema):  # a finished test's schema, emptied (tests/pg_schemas.py)
            return
        replay(engine, pg_recording(server))
        pg_schemas.remember_template(server, schema)
        return
    upgrade(engine)  # not a fresh database (or one the templates cannot stand for): the real thing


def _empty_pg_schema(engine: Engine) -> str | None:
    """The name of `engine`'s schema if it has no table yet."""
    with engine.connect() as connection:
        schema, tables = connection.execute(text(
            "select current_schema(), (select count(*) from pg_tables where schemaname = current_schema())")).one()
    return None if tables or schema is None else schema


# --- the sample content, imported once per process and backend --------------------------------------

_SAMPLE_TABLES = ("comparison", "tool", "comparison_tool", "review", "content_revision")


def sample_content(engine: Engine) -> None:
    """`import_files(engine, sample_files())` on a database with no content yet, for a fraction of
    its cost: the first import in this process (per backend and server) runs for real while its
    statements are recorded; later ones replay them (parsing, validation and the ORM were ~0.2 s
    of a test that only needs the sample week in the store). A database that already holds
    content, or whose content ids do not start at 1, gets the real import."""
    from newsletter.content.importer import import_files, sample_files

    key = f"sample:{engine.url.get_backend_name()}:" + engine.url.difference_update_query(["options"]).render_as_string(
        hide_password=False)
    if not _content_is_new(engine):
        import_files(engine, sample_files())
        return
    with _lock:
        recording = _made.get(key)
    if recording is not None:
        replay(engine, recording)
        return
    recording = Recording()

    def record(_conn, _cursor, statement, parameters, _context, executemany) -> None:
        recording.statements.append((statement, parameters, executemany))

    event.listen(engine, "before_cursor_execute", record)
    try:
        import_files(engine, sample_files())
    finally:
        event.remove(engine, "before_cursor_execute", record)
    with _lock:
        _made.setdefault(key, recording)


def _content_is_new(engine: Engine) -> bool:
    """No content row, and (PostgreSQL) no content id ever handed out: a replay then gets the
    same ids the recorded statements name."""
    with engine.connect() as connection:
        if any(connection.execute(text(f"select exists (select 1 from {table})")).scalar_one()
               for table in _SAMPLE_TABLES):
            return False
        if engine.dialect.name == "postgresql":
            return not connection.execute(text(
                "select count(*) from pg_sequences where schemaname = current_schema() and last_value is not null "
                "and sequencename in ('comparison_id_seq', 'tool_id_seq', 'review_id_seq', "
                "'content_revision_id_seq')")).scalar_one()
        return not connection.execute(text(
            "select count(*) from sqlite_master where name = 'sqlite_sequence'")).scalar_one() or \
            not connection.execute(text(
                "select count(*) from sqlite_sequence where name in ('comparison', 'tool', 'review', "
                "'content_revision')")).scalar_one()
