"""Golden file of the compiled issue HTML: any change to the email's markup shows up here.

The file was reviewed by eye (screenshots in light and dark, phone and desktop) when
written. When a change to templates or sample content is intended, regenerate it with
`UPDATE_GOLDEN=1 make test` (or pytest tests/issues/test_golden.py), look at the diff, commit.
"""

import os
import re
from datetime import UTC, datetime
from pathlib import Path

from newsletter.config import load_settings
from newsletter.db import make_engine, session_scope
from newsletter.issues.drafting import draft_issue
from newsletter.issues.render import compile_issue
from newsletter.issues.view import build_issue_view
from tests.conftest import write_config
from tests.db_templates import migrate_fresh, sample_content

GOLDEN = Path(__file__).resolve().parent / "golden" / "issue-2026-W48.html"
VALUES = {"email": "reader@example.com", "unsubscribe_url": "https://verdicts.example/unsubscribe/TOKEN",
          "preferences_url": "https://verdicts.example/preferences/TOKEN", "vote_token": "VOTE", "track_token": ""}


def normalise(html: str) -> str:
    """One tag per line, so a diff points at the element that changed."""
    return re.sub(r">\s*<", ">\n<", html).strip() + "\n"


def test_compiled_issue_matches_the_reviewed_golden_file(tmp_path):
    settings = load_settings(write_config(tmp_path))
    engine = make_engine(settings.database.url)
    migrate_fresh(engine)
    sample_content(engine)
    issue = draft_issue(engine, settings, "2026-W48").issue
    # Scheduled for its week's Thursday: the masthead's date is fixed, whatever today is (an
    # unscheduled draft whose week has passed is dated today: issues/dateline.py).
    issue.scheduled_at = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)
    with session_scope(engine) as session:
        html = compile_issue(build_issue_view(session, settings, issue)).html.fill(VALUES)
    engine.dispose()
    actual = normalise(html)
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(actual, encoding="utf-8")
    expected = GOLDEN.read_text(encoding="utf-8")
    diff = ""
    if actual != expected:
        (tmp_path / "actual.html").write_text(actual, encoding="utf-8")
        import difflib

        diff = "".join(list(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True),
                                                 "golden", "actual"))[:60])
    assert actual == expected, (f"compiled HTML differs from {GOLDEN.name}; if intended, rerun with "
                                f"UPDATE_GOLDEN=1 and review the diff:\n{diff}")
