"""Each reader's issue (issue 17 points 3 and 4): a reader with topics gets exactly the issue's
comparisons in their categories, in the issue's order; one compile per distinct variant; a reader
with nothing that week is skipped; the "Verdicts that changed" block reaches the readers who were
sent the earlier verdict and nobody else. Read from the delivered mails (the file outbox)."""

from __future__ import annotations

import re
from email import message_from_bytes, policy

from sqlmodel import select

from newsletter.content.models import Comparison, ComparisonTool, Tool
from newsletter.db import session_scope
from newsletter.delivery.models import Delivery
from newsletter.delivery.received import was_sent
from newsletter.delivery.sender import deliver, start_send
from newsletter.delivery.transports import make_transport
from newsletter.issues import render
from newsletter.issues.drafting import draft_issue
from newsletter.issues.frozen import issue_view
from newsletter.issues.models import Issue, IssueRecord
from newsletter.subscribers.models import Subscriber
from newsletter.subscribers.service import UpsertResult, upsert_active
from tests.conftest import TEST_SECRET


def add_readers(engine, readers):
    with session_scope(engine) as session:
        for email, topics in readers:
            upsert_active(session, email, "", topics, "import", UpsertResult())


def send_week(engine, settings, week, follow_reader=False):
    issue = draft_issue(engine, settings, week).issue
    with session_scope(engine) as session:
        session.get(Issue, issue.id).subject_follows_reader = follow_reader
    start_send(engine, issue.id, settings=settings)
    for old in settings.mail.file.dir.glob("*.eml"):
        old.unlink()
    before = render.compiles
    transport = make_transport(settings)
    report = deliver(engine, settings, transport, TEST_SECRET, issue.id)
    transport.close()
    with session_scope(engine) as session:
        view = issue_view(session, settings, session.get(Issue, issue.id))
    return issue.id, view, report, render.compiles - before


def delivered(settings) -> dict[str, tuple]:
    """{recipient: (subject, text part)} of every mail in the file outbox."""
    found = {}
    for path in settings.mail.file.dir.glob("*.eml"):
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        found[str(message["To"])] = (str(message["Subject"]), message.get_body(("plain",)).get_content())
    return found


def slugs_in(text: str) -> list[str]:
    """The comparisons a mail carries, in the order it shows them (each comparison's vote links)."""
    seen = []
    for slug in re.findall(r"/vote/[^/\s]+/([a-z0-9-]+)/pass", text):
        if slug not in seen:
            seen.append(slug)
    return seen


def test_each_reader_gets_their_categories_in_order_compiled_once_per_variant(sample_engine, settings):
    engine = sample_engine
    topics = {"all@example.com": [], "dev@example.com": ["Developer Tools"], "dev2@example.com": ["Developer Tools"],
              "media@example.com": ["Design & Media"], "both@example.com": ["Design & Media", "Developer Tools"],
              "none@example.com": ["Nothing This Week"]}
    add_readers(engine, topics.items())
    issue_id, view, report, compiles = send_week(engine, settings, "2026-W48", follow_reader=True)
    assert {c.category for c in view.comparisons} >= {"Developer Tools", "Design & Media"}
    mails = delivered(settings)
    assert "none@example.com" not in mails and report.sent == 5  # nothing for them: skipped
    variants = set()
    for email, (subject, text) in mails.items():
        wanted = [c.slug for c in view.comparisons if not topics[email] or c.category in topics[email]]
        assert slugs_in(text) == wanted, email
        variants.add(tuple(wanted))
        first = next(c for c in view.comparisons if c.slug == wanted[0])
        # the subject follows the reader only when their issue does not lead with the editor's lead
        assert subject == (view.subject if wanted[0] == view.comparisons[0].slug else
                           f"{first.title} + {len(wanted) - 1} more" if len(wanted) > 1 else first.title)
    assert compiles == len(variants)
    with session_scope(engine) as session:  # the ledger says which verdicts each reader got
        media = session.exec(select(Subscriber).where(Subscriber.email == "media@example.com")).one()
        ids = {c.slug: c.id for c in session.exec(select(Comparison)).all()}
        for comparison in view.comparisons:
            assert was_sent(session, media.id, ids[comparison.slug]) == (comparison.category == "Design & Media")


def test_verdicts_that_changed_reach_exactly_the_readers_who_were_sent_them(sample_engine, settings):
    engine = sample_engine
    add_readers(engine, [("old@example.com", []), ("media@example.com", ["Design & Media"]),
                         ("data@example.com", ["Data & Analytics"])])
    send_week(engine, settings, "2026-W47")  # carries Midjourney vs Ideogram (Design & Media)
    with session_scope(engine) as session:  # a material change: Midjourney's entry price
        tool = session.exec(select(Tool).where(Tool.slug == "midjourney")).one()
        was, tool.entry_price = tool.entry_price, "$99 per month"
    add_readers(engine, [("new@example.com", [])])
    issue_id, view, report, compiles = send_week(engine, settings, "2026-W48")
    mails = delivered(settings)
    assert report.sent == 4 and compiles == 4  # whole + block, whole, media + block, data only
    for reader in ("old@example.com", "media@example.com"):  # both were sent Midjourney's verdict
        text = mails[reader][1]
        assert "VERDICTS THAT CHANGED" in text, reader
        block = text.split("VERDICTS THAT CHANGED", 1)[1]
        assert f"Midjourney: entry price {was} → $99 per month" in " ".join(block.split())
        assert "https://verdicts.example/compare/midjourney-vs-ideogram" in block
        assert block.count("* ") == 1  # one line: nothing else moved
    for other in ("new@example.com", "data@example.com"):  # never sent Midjourney's verdict
        assert "VERDICTS THAT CHANGED" not in mails[other][1] and "midjourney" not in mails[other][1]
    html = message_from_bytes(next(p for p in settings.mail.file.dir.glob("*.eml")
                                   if "old@example.com" in p.read_text(errors="replace")).read_bytes(),
                              policy=policy.default).get_body(("html",)).get_content()
    assert "Verdicts that changed" in html
    with session_scope(engine) as session:  # the block is frozen: a later edit does not move it
        frozen = session.get(IssueRecord, issue_id).changed
        assert [entry["slug"] for entry in frozen["entries"]] == ["midjourney-vs-ideogram"]
    # The next issue out (the older sample week, sent later) does not announce the same change again.
    send_week(engine, settings, "2026-W46")
    assert not any("VERDICTS THAT CHANGED" in text for _subject, text in delivered(settings).values())
    with session_scope(engine) as session:
        assert session.get(IssueRecord, issue_id).changed == frozen
