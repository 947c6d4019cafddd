"""The test databases' shortcuts (tests/db_templates.py, tests/pg_schemas.py) give what the real
path gives: a shortcut that drifted would make every test after it test something else."""

from __future__ import annotations

import json
import re
import secrets

from sqlalchemy import text

from newsletter.content.importer import import_files, sample_files
from newsletter.db import make_engine
from tests import pg_schemas
from tests.db_templates import migrate_fresh, sample_content

CONTENT = ("comparison", "tool", "comparison_tool", "review", "content_revision")
IGNORED = {"created_at", "updated_at", "checked_at", "at"}  # the real import stamps its own time
STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00")  # ... in snapshots too


def _content(engine) -> dict[str, list[tuple]]:
    with engine.connect() as connection:
        found = {}
        for table in CONTENT:
            result = connection.execute(text(f"select * from {table} order by 1"))
            keep = [i for i, name in enumerate(result.keys()) if name not in IGNORED]
            found[table] = [tuple(_stamps_out(row[i]) for i in keep) for row in result]
        return found


def _stamps_out(value):
    if isinstance(value, (dict, list)):  # a JSON snapshot on PostgreSQL, its text on SQLite
        value = json.dumps(value, sort_keys=True)
    elif isinstance(value, str) and value.startswith("{"):
        value = json.dumps(json.loads(value), sort_keys=True)
    return STAMP.sub("<time>", value) if isinstance(value, str) else value


def _fresh(url: str):
    engine = make_engine(url)
    migrate_fresh(engine)
    return engine


def test_the_replayed_sample_is_the_imported_sample(tmp_path, db_url):
    """Three databases: the real import, the recorded one, a replay; all three hold the same rows."""
    schemas, engines = [], []  # PostgreSQL: (server, schema) of the three
    for n in range(3):
        if db_url.startswith("sqlite"):
            engines.append(_fresh(f"sqlite:///{tmp_path / f'{n}.db'}"))
        else:
            schema = f"wv_test_{secrets.token_hex(6)}"
            server = db_url.split("?")[0]
            with pg_schemas.admin(server).begin() as connection:
                connection.execute(text(f'CREATE SCHEMA "{schema}"'))
            schemas.append((server, schema))
            engines.append(_fresh(f"{server}?options=-csearch_path%3D{schema}"))
    try:
        import_files(engines[0], sample_files())
        sample_content(engines[1])
        sample_content(engines[2])
        real = _content(engines[0])
        assert real["comparison"] and real["content_revision"]
        assert _content(engines[1]) == real
        assert _content(engines[2]) == real
        # content already there: the real import (which changes nothing), never a replay on top
        sample_content(engines[2])
        assert _content(engines[2]) == real
    finally:
        for engine in engines:
            engine.dispose()
        for server, schema in schemas:
            pg_schemas.release(server, schema)


def test_a_reused_schema_is_empty_and_counts_from_one(pg_url):
    """A schema a test wrote into, reused: no row left, ids from 1 again, the same structure."""
    server, schema = pg_url.split("?")[0], pg_url.split("%3D")[1]
    engine = _fresh(pg_url)
    sample_content(engine)
    with engine.begin() as connection:
        connection.execute(text("insert into subscriber (email, name, status, created_at, token_key) "
                                "values ('a@example.com', '', 'active', now(), 'k')"))
    engine.dispose()
    before = pg_schemas.reused
    pg_schemas.release(server, schema)  # what the fixture does after a test
    other = f"wv_test_{secrets.token_hex(6)}"
    with pg_schemas.admin(server).begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{other}"'))
    engine = _fresh(f"{server}?options=-csearch_path%3D{other}")
    try:
        assert pg_schemas.reused == before + 1
        with engine.begin() as connection:
            tables = connection.execute(text(
                "select tablename from pg_tables where schemaname = current_schema()")).scalars().all()
            assert len(tables) > 30
            for table in tables:
                rows = connection.execute(text(f'select count(*) from "{table}"')).scalar_one()
                assert rows == (1 if table == "alembic_version" else 0), table
            new_id = connection.execute(text(
                "insert into subscriber (email, name, status, created_at, token_key) "
                "values ('b@example.com', '', 'active', now(), 'k') returning id")).scalar_one()
        assert new_id == 1
        assert pg_schemas.fingerprint(server, other) == pg_schemas._templates[server]
    finally:
        engine.dispose()
        pg_schemas.release(server, other)
    with pg_schemas.admin(server).begin() as connection:  # the fixture's own schema: recreated empty for its teardown
        connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))


def test_a_changed_schema_is_dropped_not_reused(pg_url):
    server, schema = pg_url.split("?")[0], pg_url.split("%3D")[1]
    engine = _fresh(pg_url)
    with engine.begin() as connection:
        connection.execute(text("create index ix_extra on subscriber (name)"))
    engine.dispose()
    pooled = len(pg_schemas._pool.get(server, []))
    pg_schemas.release(server, schema)
    assert len(pg_schemas._pool.get(server, [])) == pooled
    with pg_schemas.admin(server).connect() as connection:
        assert connection.execute(text("select to_regnamespace(:s)"), {"s": schema}).scalar_one() is None
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        connection.commit()
