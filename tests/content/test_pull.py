"""`newsletter content pull` (issue 17.6) against a real HTTP server on loopback: conditional
requests with the validators kept in the database, 304 writes nothing, a changed feed becomes
new revisions (source "pull"), a broken feed imports nothing and names the item and field,
--dry-run shows the diff and writes nothing, and the scheduler pulls before it drafts."""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlmodel import func, select

from newsletter.config import load_settings
from newsletter.content.models import Comparison, ContentRevision, FeedState
from newsletter.db import make_engine, session_scope
from newsletter.issues.models import IssueItem
from newsletter.schedule import weekly_draft
from tests.conftest import write_config
from tests.content.test_revisions import cli, doc
from tests.db_templates import migrate_fresh


class Feed:
    """What the server serves now, and the conditional headers each request carried."""

    def __init__(self) -> None:
        self.body, self.etag, self.modified = b"", "", ""
        self.status = 200
        self.length: str | None = None
        self.seen: list[tuple[str | None, str | None]] = []

    def serve(self, comparisons: list[dict] | bytes, etag: str, modified: str) -> None:
        self.body = comparisons if isinstance(comparisons, bytes) else json.dumps({"comparison": comparisons}).encode()
        self.etag, self.modified = etag, modified


@pytest.fixture
def feed():
    state = Feed()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            match, since = self.headers.get("If-None-Match"), self.headers.get("If-Modified-Since")
            state.seen.append((match, since))
            if match == state.etag or (match is None and since == state.modified):
                self.send_response(304)
                self.end_headers()
                return
            self.send_response(state.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("ETag", state.etag)
            self.send_header("Last-Modified", state.modified)
            self.send_header("Content-Length", state.length or str(len(state.body)))
            self.end_headers()
            self.wfile.write(state.body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/comparisons.json"
    yield state
    server.shutdown()
    server.server_close()


def counts(engine) -> tuple[int, int]:
    with session_scope(engine) as session:
        return (session.exec(select(func.count()).select_from(Comparison)).one(),
                session.exec(select(func.count()).select_from(ContentRevision)).one())


def validators(engine, url: str) -> tuple[str | None, str | None] | None:
    with session_scope(engine) as session:
        state = session.get(FeedState, url)
        return (state.etag, state.last_modified) if state else None


def test_pull_is_conditional_validated_whole_and_kept_as_revisions(tmp_path, db_url, feed):
    config = write_config(tmp_path, db_url, extra=f'[content]\nfeed_url = "{feed.url}"\n')
    engine = make_engine(load_settings(config).database.url)
    migrate_fresh(engine)
    monday = "Mon, 23 Nov 2026 09:00:00 GMT"
    feed.serve([doc("a-vs-b"), doc("b-vs-c", ("beta", "gamma"))], '"v1"', monday)

    dry = cli(config, "content", "pull", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "created: a-vs-b title (Alpha, Beta; 4 reviews)" in dry.stdout and "2 new" in dry.stdout
    assert counts(engine) == (0, 0) and validators(engine, feed.url) is None  # a dry run writes nothing

    first = cli(config, "content", "pull")
    assert first.returncode == 0 and "2 new, 0 updated, 0 unchanged" in first.stdout, first.stdout + first.stderr
    assert counts(engine) == (2, 2) and validators(engine, feed.url) == ('"v1"', monday)
    with session_scope(engine) as session:
        assert {(r.source, r.actor) for r in session.exec(select(ContentRevision))} == {("pull", "tess")}

    again = cli(config, "content", "pull")
    assert feed.seen[-1] == ('"v1"', monday)  # If-None-Match and If-Modified-Since from the database
    assert again.returncode == 0 and "not modified" in again.stdout and counts(engine) == (2, 2)

    changed = doc("a-vs-b")
    changed["reviews"][1]["verdict"] = "ship"
    feed.serve([changed, doc("b-vs-c", ("beta", "gamma"))], '"v2"', "Tue, 24 Nov 2026 09:00:00 GMT")
    line = "Review Ada/thesis on Alpha: verdict pass → ship"
    dry = cli(config, "content", "pull", "--dry-run")
    assert line in dry.stdout and counts(engine) == (2, 2) and validators(engine, feed.url)[0] == '"v1"'
    pulled = cli(config, "content", "pull")
    assert line in pulled.stdout and "0 new, 1 updated, 1 unchanged" in pulled.stdout
    assert counts(engine) == (2, 3) and validators(engine, feed.url)[0] == '"v2"'
    assert line in cli(config, "content", "history", "a-vs-b").stdout

    broken = doc("b-vs-c", ("beta", "gamma"))
    del broken["tools"][1]["entry_price"]
    changed["title"] = "Would be a change"
    feed.serve([changed, broken], '"v3"', "Wed, 25 Nov 2026 09:00:00 GMT")
    refused = cli(config, "content", "pull")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "nothing imported" in refused.stderr
    assert "comparison.1.tools.1.entry_price (comparison 'b-vs-c'): Field required" in refused.stderr
    assert counts(engine) == (2, 3) and validators(engine, feed.url)[0] == '"v2"'  # not even the good item

    feed.serve(b"{not json", '"v4"', "Thu, 26 Nov 2026 09:00:00 GMT")
    assert "not valid JSON" in cli(config, "content", "pull").stderr
    feed.length = str(50 * 1024 * 1024)
    assert "over the 5 MB limit" in cli(config, "content", "pull").stderr
    feed.length, feed.status = None, 500
    assert "answered HTTP 500" in cli(config, "content", "pull").stderr
    assert counts(engine) == (2, 3)
    engine.dispose()


def test_the_scheduler_pulls_before_the_draft_and_drafts_even_when_the_pull_fails(tmp_path, feed, caplog):
    settings = load_settings(write_config(tmp_path, extra=f'[content]\nfeed_url = "{feed.url}"\n'))
    engine = make_engine(settings.database.url)
    migrate_fresh(engine)
    feed.status = 503
    caplog.set_level(logging.INFO, logger="newsletter.schedule")
    monday = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    assert weekly_draft(engine, settings, monday) is None  # nothing to draft, but it tried after the pull
    assert "content pull before the weekly draft failed" in caplog.text and "HTTP 503" in caplog.text
    feed.status = 200
    feed.serve([doc("a-vs-b", published="2026-11-23T07:00:00Z")], '"w"', "Mon, 23 Nov 2026 07:00:00 GMT")
    issue = weekly_draft(engine, settings, monday)
    assert issue is not None
    with session_scope(engine) as session:
        assert session.exec(select(func.count()).select_from(IssueItem).where(IssueItem.issue_id == issue.id)).one() == 1
    engine.dispose()
