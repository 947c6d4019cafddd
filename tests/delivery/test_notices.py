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


def test_a_notice_is_made_by_the_common_composer_signed_and_with_json_fields(sample_engine, tmp_path, db_url):
    """Notices go through newsletter.mail.compose like every mail: DKIM-signed when [mail.dkim] is
    on (verified by dkimpy against the published key) and carrying the fields the JSON APIs send."""
    import dkim
    from sqlmodel import select

    from newsletter.db import utcnow
    from newsletter.delivery.editor_mail import build_notice
    from newsletter.subscribers.models import TransactionalMail
    from tests.mail.test_dkim import SELECTOR, dns_stub, rsa_key

    key, record = rsa_key(tmp_path)
    extra = ('\n[schedule]\nnotify = ["Ed Itor <editor@example.com>"]\n'
             f'\n[mail.dkim]\nenabled = true\nselector = "{SELECTOR}"\nprivate_key_file = "{key.name}"\n'
             'algorithm = "rsa-sha256"\n')
    settings = load_settings(write_config(tmp_path, db_url, extra=extra))
    with session_scope(sample_engine) as session:
        upsert_active(session, "n0@example.com", "", [], "import", UpsertResult())
    issue = draft_issue(sample_engine, settings, "2026-W48").issue
    start_send(sample_engine, issue.id)
    deliver(sample_engine, settings, make_transport(settings), TEST_SECRET, issue.id)
    [sent] = settings.mail.file.dir.glob("notice-*.eml")
    assert dkim.verify(sent.read_bytes(), dnsfunc=dns_stub(record))
    with session_scope(sample_engine) as session:
        row = session.exec(select(TransactionalMail).where(TransactionalMail.kind == "notice")).one()
        message = build_notice(session, settings, row, utcnow())
    content = message.content
    assert (content.recipient_name, content.recipient) == ("Ed Itor", "editor@example.com")
    assert content.subject == f"Issue {issue.id} (2026-W48) finished: 1 sent" and content.html is None
    assert f'Issue {issue.id} (2026-W48) "{issue.subject}" has finished.' in content.text.text
    assert content.headers["Auto-Submitted"] == "auto-generated"
    parsed = message_from_bytes(message.data, policy=policy.default)
    assert parsed.get_content_type() == "text/plain" and parsed["To"] == "Ed Itor <editor@example.com>"


def test_a_notice_reads_the_counters_not_the_issues_rows(sample_engine, tmp_path, db_url):
    """The final counts of a sent issue come from its counters (newsletter/tallies.py): the same
    figures as a count over the rows, and on PostgreSQL not one delivery row read for them (a
    scan of the whole issue for each editor's notice at a million readers)."""
    from sqlalchemy import text
    from sqlmodel import select

    from newsletter.db import utcnow
    from newsletter.delivery import outbox
    from newsletter.delivery.editor_mail import build_notice
    from newsletter.subscribers.models import TransactionalMail

    settings = load_settings(write_config(tmp_path, db_url, extra='\n[schedule]\nnotify = ["editor@example.com"]\n'))
    with session_scope(sample_engine) as session:
        for n in range(4):
            upsert_active(session, f"c{n}@example.com", "", [], "import", UpsertResult())
        upsert_active(session, "gone@example.com", "", [], "import", UpsertResult())
    issue = draft_issue(sample_engine, settings, "2026-W48").issue
    start_send(sample_engine, issue.id)
    with session_scope(sample_engine) as session:  # left before the send reached them: skipped
        session.execute(text("UPDATE subscriber SET status = 'unsubscribed' WHERE email = 'gone@example.com'"))
    deliver(sample_engine, settings, make_transport(settings), TEST_SECRET, issue.id)
    with session_scope(sample_engine) as session:
        row = session.exec(select(TransactionalMail).where(TransactionalMail.kind == "notice")).one()
        expected = outbox.counts(session, issue.id)
    assert expected == {"sent": 4, "skipped": 1}
    read = "SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) FROM pg_stat_xact_user_tables " \
           "WHERE relid = 'delivery'::regclass"  # this backend's counts not yet flushed: a difference
    with session_scope(sample_engine) as session:
        postgres = db_url.startswith("postgresql")
        before = session.execute(text(read)).scalar_one() if postgres else 0
        message = build_notice(session, settings, row, utcnow())
        assert (session.execute(text(read)).scalar_one() if postgres else 0) == before
    body = message.content.text.text
    assert "sent     4" in body and "skipped  1" in body and message.content.subject.endswith("finished: 4 sent")
