"""The benchmarks' common input: the largest sample issue (2026-W48) in a throw-away SQLite store."""

from __future__ import annotations

from pathlib import Path

from newsletter.config import Settings, load_settings
from newsletter.content.importer import import_files, sample_files
from newsletter.db import make_engine, session_scope
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
