"""Schema migrations through Alembic, driven from code (no alembic.ini to keep in sync).

Every command that touches the database first checks the schema is current (`is_current`). That
check reads the head revision from the migration files' `revision`/`down_revision` lines and the
database's from `alembic_version`, without importing Alembic: Alembic's script directory costs
~0.3 s of CPU per command start, a third of what `issue send` took before the first message could
leave. Anything unusual (several heads, a file the lines cannot be read from) asks Alembic.
"""

from __future__ import annotations

import ast
import re
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(engine: Engine) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return config


def _with_connection(engine: Engine, action) -> None:
    """Run `action` in one transaction. On SQLite foreign keys are off meanwhile (SQLite's own
    procedure for rebuilding a table: with them on, dropping the old copy of a parent table
    cascades into its children) and checked before the commit."""
    config = alembic_config(engine)
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as connection:
        if sqlite:  # before BEGIN: inside a transaction SQLite ignores this pragma
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()  # ends SQLAlchemy's autobegun transaction (the driver began none)
        try:
            with connection.begin():
                config.attributes["connection"] = connection
                action(config)
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise RuntimeError(f"migration left rows with broken references: {broken[:5]}")
        finally:
            if sqlite:
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()


def upgrade(engine: Engine, revision: str = "head") -> None:
    from alembic import command

    _with_connection(engine, lambda config: command.upgrade(config, revision))


def downgrade(engine: Engine, revision: str) -> None:
    from alembic import command

    _with_connection(engine, lambda config: command.downgrade(config, revision))


def current_revision(engine: Engine) -> str | None:
    """The database's revision (None: not migrated at all); the table Alembic keeps it in, read
    directly. One query: asking first whether the table exists (SQLAlchemy's inspector) cost a
    catalogue query and its compilation on every command's start (issue 18)."""
    with engine.connect() as connection:
        try:
            versions = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        except DBAPIError as exc:
            if _no_table(exc):
                return None
            raise
    if len(versions) > 1:
        raise RuntimeError(f"the database is at several revisions at once: {', '.join(sorted(versions))}")
    return versions[0] if versions else None


def _no_table(exc: DBAPIError) -> bool:
    """Whether the statement failed because the table does not exist (and not, say, a lock)."""
    sqlstate = getattr(exc.orig, "sqlstate", None)  # psycopg: undefined_table
    return sqlstate == "42P01" or (sqlstate is None and "no such table" in str(exc.orig))


def head_revision(engine: Engine) -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()


_ASSIGNED = re.compile(r"^(down_revision|revision)\s*(?::[^=]*)?=\s*(.+?)\s*$", re.MULTILINE)


@lru_cache(maxsize=1)
def _head_from_files() -> str | None:
    """The one revision no migration names as its down_revision; None when that is not clear."""
    revisions, parents = set(), set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        found = dict(match.groups() for match in _ASSIGNED.finditer(path.read_text()))
        try:
            revision, parent = ast.literal_eval(found["revision"]), ast.literal_eval(found["down_revision"])
        except (KeyError, ValueError, SyntaxError):
            return None
        if not isinstance(revision, str):
            return None
        revisions.add(revision)
        parents.update(parent if isinstance(parent, (tuple, list)) else [parent] if parent else [])
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def is_current(engine: Engine) -> bool:
    return current_revision(engine) == (_head_from_files() or head_revision(engine))
