"""The benchmarks' common input: the largest sample issue (2026-W48), in a throw-away SQLite store
or, for the outbox benchmarks, sent to N readers in a throw-away PostgreSQL schema."""

from __future__ import annotations

import os
import secrets
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, create_engine, make_url, text

from newsletter.config import Settings, load_settings
from newsletter.content.importer import import_files, sample_files
from newsletter.db import make_engine, session_scope
from newsletter.delivery.sender import start_send
from newsletter.issues.drafting import draft_issue
from newsletter.issues.view import IssueView, build_issue_view
from newsletter.migrate import upgrade

SECRET = "bench-secret-" + "b" * 40


def sample_issue_view(folder: Path, week: str = "2026-W48") -> tuple[Settings, IssueView]:
    config = folder / "config.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{folder}/bench.db"\n[site]\ntimezone = "Europe/Berlin"\n')
    settings = load_settings(config)
    engine = make_engine(settings.database.url)
    upgrade(engine)
    import_files(engine, sample_files())
    issue = draft_issue(engine, settings, week).issue
    with session_scope(engine) as session:
        view = build_issue_view(session, settings, issue)
    engine.dispose()
    return settings, view


PG = os.environ.get("NEWSLETTER_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@contextmanager
def pg_schema(pg: str, prefix: str, keep: bool = False) -> Iterator[str]:
    """A throw-away schema in the PostgreSQL database `pg`; yields a URL whose search_path is it."""
    schema = f"{prefix}_{secrets.token_hex(4)}"
    admin = create_engine(pg)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        url = make_url(pg).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        if not keep:
            with admin.begin() as connection:
                connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def write_config(folder: Path, url: str, extra: str = "") -> Settings:
    """A publication's config.toml in `folder` with the given database and extra sections (`[mail]`
    must be among them), loaded."""
    config = folder / "config.toml"
    config.write_text(textwrap.dedent(f"""
        [site]
        name = "Weekly Verdicts"
        base_url = "https://verdicts.example"
        postal_address = "Weekly Verdicts, 17 Sample Lane, 10115 Berlin, Germany"
        timezone = "Europe/Berlin"
        [database]
        url = "{url}"
        """) + textwrap.dedent(extra))
    return load_settings(config)


def smtp_mail(port: int) -> str:
    """The `[mail]` sections of a config that sends over SMTP to 127.0.0.1:`port` (a sink); more
    `[mail.smtp]` keys may follow it."""
    return textwrap.dedent(f"""
        [mail]
        transport = "smtp"
        from_address = "Weekly Verdicts <verdicts@weeklyverdicts.example>"
        [mail.smtp]
        host = "127.0.0.1"
        port = {port}
        """)


@dataclass
class QueuedIssue:
    engine: Engine
    issue_id: int
    insert_s: float  # inserting the subscribers (setup)
    enqueue_s: float  # start_send: the outbox filled in one INSERT … SELECT


@contextmanager
def queued_issue(settings: Settings, subscribers: int, start: bool = True) -> Iterator[QueuedIssue]:
    """The sample week drafted and started for `subscribers` active readers (PostgreSQL: the
    readers come from generate_series), every delivery queued; the engine is disposed on exit.
    `start=False`: drafted only (the caller starts the send and times it)."""
    engine = make_engine(settings.database.url)
    try:
        yield _queue(engine, settings, subscribers, start)
    finally:
        engine.dispose()


def _queue(engine: Engine, settings: Settings, subscribers: int, start: bool = True) -> QueuedIssue:
    upgrade(engine)
    import_files(engine, sample_files())
    started = time.perf_counter()
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO subscriber (email, name, status, created_at) "
            "SELECT 'reader' || g || '@example.com', '', 'active', now() FROM generate_series(1, :n) g"
        ), {"n": subscribers})
        connection.execute(text("ANALYZE subscriber"))
    insert_s = time.perf_counter() - started
    issue_id = draft_issue(engine, settings, "2026-W48").issue.id
    if not start:
        return QueuedIssue(engine, issue_id, insert_s, 0.0)
    started = time.perf_counter()
    enqueued = start_send(engine, issue_id).enqueued
    enqueue_s = time.perf_counter() - started
    assert enqueued == subscribers, (enqueued, subscribers)
    return QueuedIssue(engine, issue_id, insert_s, enqueue_s)
