"""Revisions (issue 17.1): every change to a comparison, a tool's facts or a review is kept with
its time, source and author; a re-import that changes nothing writes nothing; `content history`
reads them back as a diff; the pre-send checks warn about facts checked too long ago."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlmodel import select

from newsletter.config import load_settings
from newsletter.content import publishing
from newsletter.content.models import Comparison, ContentRevision, Review
from newsletter.content.revisions import Origin
from newsletter.content.snapshot import snapshot
from newsletter.db import make_engine, session_scope
from newsletter.issues.checks import run_checks
from newsletter.issues.drafting import draft_issue
from newsletter.weeks import week_of
from tests.cli_runner import run_cli
from tests.conftest import TEST_SECRET, write_config
from tests.content_files import comparison
from tests.db_templates import migrate_fresh


def doc(slug: str, tools: tuple[str, str] = ("alpha", "beta"), **overrides) -> dict:
    names = {"alpha": "Alpha", "beta": "Beta", "gamma": "Gamma"}
    data = {
        "slug": slug, "title": f"{slug} title", "dek": "Which one?", "published": "2026-11-24T09:00:00Z",
        "tools": [{"slug": t, "name": names[t], "category": "Testing", "tagline": f"{names[t]} tagline",
                   "description": "Does things.", "entry_price": "Free"} for t in tools],
        "reviews": [{"tool": t, "lens": lens, "reviewer": "Ada", "verdict": "pass", "quote": "Holds up."}
                    for t in tools for lens in ("developer_experience", "thesis")],
    }
    data.update(overrides)
    return data


def cli(config: Path, *args: str):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(COLUMNS="200", NEWSLETTER_SECRET_KEY=TEST_SECRET, USER="tess")
    return run_cli(["--config", str(config), *args], Path.cwd(), env)


def revisions_of(engine, slug: str) -> list[ContentRevision]:
    with session_scope(engine) as session:
        comparison_id = publishing.find(session, slug).id
        return list(session.exec(select(ContentRevision).where(ContentRevision.comparison_id == comparison_id)
                                 .order_by(ContentRevision.number)))


def test_imports_write_revisions_only_for_changes_and_history_shows_the_diff(tmp_path, db_url):
    config = write_config(tmp_path, db_url)
    engine = make_engine(load_settings(config).database.url)
    migrate_fresh(engine)
    path = tmp_path / "content.json"
    path.write_text(json.dumps([doc("a-vs-b"), doc("a-vs-c", ("alpha", "gamma"))]))
    assert cli(config, "content", "import", str(path)).returncode == 0
    with session_scope(engine) as session:
        review_ids = sorted(session.exec(select(Review.id)))

    again = cli(config, "content", "import", str(path))  # the same file: nothing changed, nothing written
    assert "0 new, 0 updated, 2 unchanged" in again.stdout, again.stdout + again.stderr
    assert [r.number for r in revisions_of(engine, "a-vs-b")] == [1]

    changed = doc("a-vs-b")
    changed["reviews"][2]["verdict"] = "ship"  # Beta, developer experience
    changed["tools"][0]["tagline"] = "Alpha, faster"  # a tool both comparisons show
    path.write_text(json.dumps([changed]))
    assert "1 updated" in cli(config, "content", "import", str(path)).stdout
    with session_scope(engine) as session:
        assert sorted(session.exec(select(Review.id))) == review_ids  # upserted in place, not re-inserted
    latest = revisions_of(engine, "a-vs-b")[-1]
    assert (latest.number, latest.source, latest.actor) == (2, "import", "tess")
    shared = revisions_of(engine, "a-vs-c")  # the other comparison showing Alpha has its own revision
    assert [r.number for r in shared] == [1, 2] and shared[-1].snapshot["tools"][0]["tagline"] == "Alpha, faster"

    history = cli(config, "content", "history", "a-vs-b")
    assert history.returncode == 0, history.stderr
    text = history.stdout
    assert text.index("#2") < text.index("#1")  # newest first
    assert "import  by tess" in text
    assert "Review Ada/developer_experience on Beta: verdict pass → ship" in text
    assert "Alpha: tagline Alpha tagline → Alpha, faster" in text
    assert "created: a-vs-b title (Alpha, Beta; 4 reviews)" in text

    marked = cli(config, "content", "checked", "a-vs-b", "--at", "2026-12-01")
    assert marked.returncode == 0, marked.stderr
    latest = revisions_of(engine, "a-vs-b")[-1]
    assert (latest.number, latest.source, latest.actor) == (3, "cli", "tess")
    assert "checked: " in cli(config, "content", "history", "a-vs-b").stdout
    future = cli(config, "content", "checked", "a-vs-b", "--at", "2999-01-01")  # would pass the stale check for years
    assert future.returncode == 1 and "is in the future" in future.stderr and revisions_of(engine, "a-vs-b")[-1].number == 3

    unknown = cli(config, "content", "history", "no-such-thing")
    assert unknown.returncode == 1 and "there is no comparison 'no-such-thing'" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    engine.dispose()


def test_the_stale_check_warns_about_facts_checked_too_long_ago(tmp_path):
    settings = load_settings(write_config(tmp_path, extra="[content]\nstale_after_days = 30\n"))
    engine = make_engine(settings.database.url)
    migrate_fresh(engine)
    now = datetime.now(UTC)
    with session_scope(engine) as session:
        for slug, checked in (("fresh-one", now - timedelta(days=2)), ("old-one", now - timedelta(days=45))):
            data = publishing.ComparisonIn.model_validate({**comparison(slug, now), "checked": checked.isoformat()})
            publishing.save(session, data, True, Origin("cli", "test"))
    issue = draft_issue(engine, settings, week_of(now, settings.site.zone)).issue
    stale = {r.name: r for r in run_checks(engine, settings, issue.id)}["stale"]
    assert stale.level == "warning" and "old-one (checked" in stale.message and "fresh-one" not in stale.message
    assert "45 days ago" in stale.message
    with session_scope(engine) as session:
        publishing.mark_checked(session, "old-one", Origin("console", "ada@example.com"))
        assert snapshot(session, publishing.find(session, "old-one"))["checked_at"] >= now.isoformat()[:10]
    assert {r.name: r for r in run_checks(engine, settings, issue.id)}["stale"].level == "ok"
    engine.dispose()


def test_the_upgrade_gives_each_existing_comparison_its_first_revision(settings, db_url):
    """A store from before revisions: upgrading writes revision 1 of each comparison in the very
    shape the code snapshots, so re-importing the same content afterwards writes nothing."""
    from newsletter.content.importer import import_files, sample_files
    from newsletter.content.revisions import latest
    from newsletter.migrate import downgrade, upgrade

    engine = make_engine(settings.database.url)
    migrate_fresh(engine)
    import_files(engine, sample_files())
    downgrade(engine, "0020")  # as the store was before this revision
    upgrade(engine)
    results = import_files(engine, sample_files())
    assert sum(result.unchanged for result in results) == sum(
        result.created + result.updated + result.unchanged for result in results) > 0
    with session_scope(engine) as session:
        rows = list(session.exec(select(ContentRevision)))
        assert rows and {(r.number, r.source) for r in rows} == {(1, "migration")}
        for row in rows:
            comparison = session.get(Comparison, row.comparison_id)
            assert latest(session, row.comparison_id).snapshot == snapshot(session, comparison)
    engine.dispose()


def test_two_writers_at_once_make_two_revisions_not_an_error(tmp_path, pg_url):
    """PostgreSQL (SQLite serialises writers on its own): a second writer saving the same
    comparison while the first's transaction is open waits for it and numbers its revision after
    it, instead of colliding on (comparison, number) and failing the request."""
    import threading

    from newsletter.content.importer import upsert_comparison
    from newsletter.content.schema import ComparisonIn

    engine = make_engine(pg_url)
    migrate_fresh(engine)
    with session_scope(engine) as session:
        upsert_comparison(session, ComparisonIn.model_validate(doc("a-vs-b")), Origin("import", "setup"))
    from sqlmodel import Session

    first = Session(engine, expire_on_commit=False)
    upsert_comparison(first, ComparisonIn.model_validate(doc("a-vs-b", dek="First writer.")), Origin("api", "one"))
    outcome: list = []

    def second() -> None:
        try:
            with session_scope(engine) as session:
                changed = doc("a-vs-b")  # a review only: nothing else locks the comparison's row
                changed["reviews"][0]["verdict"] = "ship"
                data = ComparisonIn.model_validate(changed)
                upsert_comparison(session, data, Origin("console", "two"))
            outcome.append("ok")
        except Exception as exc:  # the failure this test is about
            outcome.append(exc)

    thread = threading.Thread(target=second)
    thread.start()
    thread.join(1.0)  # it waits on the first writer's lock
    first.commit()
    first.close()
    thread.join(30)
    assert outcome == ["ok"]
    revisions = revisions_of(engine, "a-vs-b")
    assert [(r.number, r.source) for r in revisions] == [(1, "import"), (2, "api"), (3, "console")]
    assert revisions[-1].snapshot["dek"] == "First writer."  # the second revision saw the first's change
    assert "ship" in json.dumps(revisions[-1].snapshot["reviews"])
