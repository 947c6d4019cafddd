"""Migrated PostgreSQL schemas reused within a test process, emptied between tests.

Why: creating a test's schema at the current revision (about 240 statements of DDL: 34 tables,
their indexes, sequences and TOAST tables) and dropping it afterwards cost PostgreSQL 0.4-0.8 s
of wall time per test, so the PostgreSQL half of the suite took twice as long as its SQLite twin
(928 s against 439 s of test time in one run). Emptying a schema's tables costs ~0.05 s.

Isolation stays: every test still gets its own schema *name* (conftest.pg_url), an empty one,
and migrate_fresh then swaps in a pooled schema under that name (DROP the empty one, RENAME the
pooled one): one transaction of catalog updates. A schema goes back to the pool only if it is
exactly the migrated template (a fingerprint of its tables, columns, defaults, indexes,
constraints, triggers, functions, types and alembic revision) and no other session holds a lock
in it; its rows are deleted, its sequences restarted and its statistics counters reset (tests
read pg_stat_user_tables). Anything else, e.g. a test that altered a table or migrated down, is
dropped as before. A renamed schema is also out of reach of a connection a finished test left
behind: that connection's search_path names a schema that no longer exists.
"""

from __future__ import annotations

import atexit
import secrets
import threading

from sqlalchemy import Engine, create_engine, text

FINGERPRINT = """
SELECT md5(string_agg(replace(item, current_schema() || '.', ''), E'\\n' ORDER BY item)) FROM (
  SELECT 'rel ' || c.relname || ' ' || c.relkind::text || ' ' || coalesce(array_to_string(c.reloptions, ','), '')
         || ' ' || CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) ELSE '' END AS item
    FROM pg_class c WHERE c.relnamespace = current_schema()::regnamespace
  UNION ALL
  SELECT 'col ' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || ' '
         || a.attnotnull::text || ' ' || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
   WHERE c.relnamespace = current_schema()::regnamespace AND a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
  SELECT 'idx ' || pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
   WHERE c.relnamespace = current_schema()::regnamespace
  UNION ALL
  SELECT 'con ' || conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint
   WHERE connamespace = current_schema()::regnamespace
  UNION ALL
  SELECT 'trg ' || pg_get_triggerdef(t.oid) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
   WHERE c.relnamespace = current_schema()::regnamespace AND NOT t.tgisinternal
  UNION ALL
  SELECT 'fn ' || p.proname || ' ' || md5(p.prosrc) FROM pg_proc p WHERE p.pronamespace = current_schema()::regnamespace
  UNION ALL
  SELECT 'typ ' || t.typname || ' ' || t.typtype::text FROM pg_type t WHERE t.typnamespace = current_schema()::regnamespace
  UNION ALL
  SELECT 'ver ' || version_num FROM alembic_version
) items
"""

# Rows of every table but alembic_version deleted (foreign keys not checked: everything goes),
# sequences back at their start, per-table statistics counters zeroed.
EMPTY = """
DO $$ DECLARE r record; BEGIN
  FOR r IN SELECT c.relname FROM pg_class c WHERE c.relnamespace = current_schema()::regnamespace
            AND c.relkind IN ('r', 'p') AND c.relname <> 'alembic_version' LOOP
    EXECUTE format('DELETE FROM %I', r.relname);
  END LOOP;
  FOR r IN SELECT s.sequencename, s.start_value FROM pg_sequences s WHERE s.schemaname = current_schema() LOOP
    PERFORM setval(format('%I', r.sequencename), r.start_value, false);
  END LOOP;
  PERFORM pg_stat_reset_single_table_counters(c.oid) FROM pg_class c
    WHERE c.relnamespace = current_schema()::regnamespace;
END $$
"""

_lock = threading.Lock()
_admins: dict[str, Engine] = {}
_templates: dict[str, str] = {}  # server URL -> fingerprint of a freshly migrated schema
_pool: dict[str, list[str]] = {}  # server URL -> schemas ready for reuse
reused = 0  # schemas this process handed out again (tests/test_pg_schemas.py reads it)


def admin(server: str) -> Engine:
    with _lock:
        if server not in _admins:
            _admins[server] = create_engine(server, pool_size=1)
            atexit.register(_drop_pool, server)
        return _admins[server]


def fingerprint(server: str, schema: str) -> str | None:
    """The schema's structure as one digest (None if it has no alembic_version table)."""
    with admin(server).begin() as connection:
        connection.execute(text("SELECT set_config('search_path', :s, true)"), {"s": schema})
        if connection.execute(text("SELECT to_regclass('alembic_version')")).scalar_one() is None:
            return None
        return connection.execute(text(FINGERPRINT)).scalar_one()


def remember_template(server: str, schema: str) -> None:
    """`schema` was just migrated from empty: what a reusable schema must look like."""
    if server not in _templates:
        _templates[server] = fingerprint(server, schema)


def take(server: str, schema: str) -> bool:
    """Put a pooled migrated schema in place of the new, empty `schema`; False if none is pooled
    (or the empty one turned out not to be empty: DROP SCHEMA without CASCADE refuses)."""
    global reused
    with _lock:
        pooled = _pool.get(server, [])
        if not pooled:
            return False
        candidate = pooled.pop()
    try:
        with admin(server).begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}"'))
            connection.execute(text(f'ALTER SCHEMA "{candidate}" RENAME TO "{schema}"'))
    except Exception:
        _drop(server, candidate)
        return False
    reused += 1
    return True


def release(server: str, schema: str) -> None:
    """A finished test's schema: emptied and pooled if it is still the template, else dropped."""
    if _reusable(server, schema):
        pooled = f"wv_test_pool_{secrets.token_hex(6)}"
        try:
            with admin(server).begin() as connection:
                connection.execute(text("SET LOCAL lock_timeout = '2s'"))
                connection.execute(text("SET LOCAL session_replication_role = replica"))
                connection.execute(text("SELECT set_config('search_path', :s, true)"), {"s": schema})
                connection.execute(text(EMPTY))
                connection.execute(text(f'ALTER SCHEMA "{schema}" RENAME TO "{pooled}"'))
        except Exception:
            _drop(server, schema)
            return
        with _lock:
            _pool.setdefault(server, []).append(pooled)
        return
    _drop(server, schema)


def _reusable(server: str, schema: str) -> bool:
    template = _templates.get(server)
    if template is None:
        return False
    with admin(server).connect() as connection:
        held = connection.execute(text(
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
            "WHERE c.relnamespace = to_regnamespace(:s) AND l.pid <> pg_backend_pid()"), {"s": schema}).scalar_one()
    return not held and fingerprint(server, schema) == template


def _drop(server: str, schema: str) -> None:
    with admin(server).begin() as connection:
        connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


def _drop_pool(server: str) -> None:
    """At the process's exit: the pooled schemas go, as every test's schema used to."""
    for schema in _pool.pop(server, []):
        try:
            _drop(server, schema)
        except Exception:
            pass
    _admins.pop(server).dispose()
