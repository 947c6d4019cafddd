import logging
from email import message_from_bytes, policy

from newsletter.config import load_settings
from newsletter.db import session_scope
from newsletter.delivery.sender import deliver, start_send
from newsletter.delivery.transports import make_transport
from newsletter.issues.drafting import draft_issue
from newsletter.subscribers.service import UpsertResult, upsert_active
from tests.conftest import TEST_SECRET, write_config


def test_editors_get_one_notice_when_an_issue_finishes(sample_engine, tmp_path, db_url, caplog):
    settings = load_settings(write_config(tmp_path, db_url, extra='\n[schedule]\nnotify = ["editor@example.com"]\n'))
    with session_scope(sample_engine) as session:
        for n in range(3):
            upsert_active(session, f"n{n}@example.com", "", [], "import", UpsertResult())
    issue = draft_issue(sample_engine, settings, "2026-W48").issue
    start_send(sample_engine, issue.id)
    with caplog.at_level(logging.INFO, logger="newsletter.notices"):
        deliver(sample_engine, settings, make_transport(settings), TEST_SECRET, issue.id)
        deliver(sample_engine, settings, make_transport(settings), TEST_SECRET, issue.id)  # already finished
    notices = list(settings.mail.file.dir.glob("notice-*.eml"))
    assert len(notices) == 1
    notice = message_from_bytes(notices[0].read_bytes(), policy=policy.default)
    assert notice["To"] == "editor@example.com"
    assert notice["Subject"] == f"Issue {issue.id} (2026-W48) finished: 3 sent"
    assert "sent" in notice.get_content() and notice["Auto-Submitted"] == "auto-generated"
    assert [r.message for r in caplog.records] == [f"Issue {issue.id} (2026-W48) finished: 3 sent"]
