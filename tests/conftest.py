"""Shared fixtures: real SQLite files and a real PostgreSQL schema per test run.

PostgreSQL tests skip only outside CI when no server answers; with CI=true a
missing server is a failure, never a silent skip.
"""

from __future__ import annotations

import os
import secrets
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from newsletter import PROJECT_ROOT
from newsletter.config import load_settings
from newsletter.db import dispose_engines, make_engine
from tests import pg_schemas
from tests.db_templates import migrate_fresh, sample_content

PG_BASE = os.environ.get("NEWSLETTER_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
TEST_SECRET = "test-secret-key-" + "x" * 40


# Under pytest-xdist (`make test` runs `-n 2 --dist loadfile`) each worker is its own process with
# its own session fixtures (tests/db_templates.py's templates too); a test file runs whole on one
# worker, so module-scoped fixtures (a built wheel) and the e2e corpus are built once per file.


@pytest.fixture(scope="session", autouse=True)
def shipped_password_hasher():
    """Argon2id with its lightest parameters while the suite runs; yields the shipped hasher.

    The shipped one (RFC 9106's second profile: 64 MiB, 3 passes, 4 lanes) costs 0.2 s of CPU per
    hash or check on purpose, and the suite signs editors in several hundred times: a tenth of its
    CPU went into memory-hard hashing that proves nothing a light hash does not. Every sign-in
    still runs argon2-cffi's real hash and verification (a hash records its own parameters); the
    shipped parameters are held by tests/console/test_sessions.py. `newsletter` subprocesses
    hash with the shipped ones."""
    from argon2 import PasswordHasher

    from newsletter.editors import passwords

    shipped, dummy = passwords._hasher, passwords._DUMMY
    light = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    passwords._hasher, passwords._DUMMY = light, light.hash("not a password of anyone: equalises timing")
    yield shipped
    passwords._hasher, passwords._DUMMY = shipped, dummy


@pytest.fixture(autouse=True)
def _secret(monkeypatch):
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", TEST_SECRET)
    for name in list(os.environ):
        if name.startswith("NEWSLETTER_") and name not in ("NEWSLETTER_SECRET_KEY", "NEWSLETTER_TEST_PG"):
            monkeypatch.delenv(name)
    yield
    dispose_engines()


def _pg_available() -> str | None:
    try:
        engine = create_engine(PG_BASE, connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.execute(text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:  # any connection problem
        return str(exc).splitlines()[0]


@pytest.fixture(scope="session")
def pg_server() -> str:
    problem = _pg_available()
    if problem:
        if IN_CI:
            pytest.fail(f"PostgreSQL at {PG_BASE} is required under CI=true: {problem}")
        pytest.skip(f"PostgreSQL not reachable ({problem}); set CI=true to make this a failure")
    return PG_BASE


@pytest.fixture
def pg_url(pg_server):
    """A schema of its own per test, selected through search_path; afterwards dropped, or emptied and
    reused under another test's name if it is still exactly the migrated template (tests/pg_schemas.py)."""
    schema = f"wv_test_{secrets.token_hex(6)}"
    with pg_schemas.admin(pg_server).begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    yield f"{pg_server}?options=-csearch_path%3D{schema}"
    dispose_engines()
    pg_schemas.release(pg_server, schema)  # emptied for the next test if still the template, else dropped


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    return request.getfixturevalue("pg_url")


def write_config(folder: Path, db_url: str | None = None, extra: str = "") -> Path:
    db_url = db_url or f"sqlite:///{folder / 'newsletter.db'}"
    path = folder / "config.toml"
    path.write_text(textwrap.dedent(f"""
        [site]
        name = "Weekly Verdicts"
        base_url = "https://verdicts.example"
        postal_address = "Weekly Verdicts, 17 Sample Lane, 10115 Berlin, Germany"
        timezone = "Europe/Berlin"

        [database]
        url = "{db_url}"

        [mail]
        transport = "file"
        from_address = "Weekly Verdicts <verdicts@weeklyverdicts.example>"

        [mail.file]
        dir = "outbox"
        """) + textwrap.dedent(extra))
    return path


@pytest.fixture
def settings(tmp_path, db_url):
    return load_settings(write_config(tmp_path, db_url))


@pytest.fixture
def engine(settings):
    engine = make_engine(settings.database.url)
    migrate_fresh(engine)  # a copy of a migrated template: tests/db_templates.py
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def spamassassin() -> str:
    """Debian's spamassassin (offline checks of our mail and of the rule copy in newsletter.text):
    a local run without the package skips, CI (which installs it) fails."""
    import shutil

    path = shutil.which("spamassassin")
    if path is None:
        if IN_CI:
            pytest.fail("spamassassin is required under CI=true (.ci/run installs the Debian package)")
        pytest.skip("Debian's spamassassin is not installed (apt-get install spamassassin)")
    return path


@pytest.fixture
def sample_engine(engine):
    sample_content(engine)  # import_files(engine, sample_files()), replayed after the first: tests/db_templates.py
    return engine


__all__ = ["PROJECT_ROOT", "TEST_SECRET", "write_config"]


def link_token(engine, purpose, subscriber_id: int, secret: str = TEST_SECRET) -> str:
    """A link token for a stored reader, made as the sender makes it (with their token_key)."""
    from newsletter.subscribers.models import Subscriber
    from newsletter.tokens import make_token

    with engine.connect() as connection:
        key = connection.execute(Subscriber.__table__.select().with_only_columns(Subscriber.__table__.c.token_key)
                                 .where(Subscriber.__table__.c.id == subscriber_id)).scalar_one()
    return make_token(secret, purpose, subscriber_id, key)
