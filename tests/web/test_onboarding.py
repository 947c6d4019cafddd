"""Onboarding (issue 17 point 8): a reader who confirms gets, after the welcome mail, the latest
sent issue as it went out (its frozen record), in their topics' variant, marked as such, once:
confirming again or running the workers again sends nothing more. Nothing when no issue was sent."""

from __future__ import annotations

from sqlmodel import select

from newsletter import tallies
from newsletter.content.models import Comparison, Tool
from newsletter.db import session_scope
from newsletter.delivery.models import Delivery
from newsletter.delivery.onboarding import queue_latest
from newsletter.delivery.received import was_sent
from newsletter.delivery.sender import deliver, start_send
from newsletter.delivery.transports import make_transport
from newsletter.issues.drafting import draft_issue
from newsletter.subscribers.models import Subscriber, TransactionalMail
from tests.conftest import TEST_SECRET
from tests.delivery.test_reader_variants import slugs_in


def confirm(live, email, topics):
    live.subscribe(email, topics=topics)
    live.deliver_mail()
    link = live.link_in(live.mails()[-1], "confirm")
    assert "You are in" in live.http.post(link).text
    return link


def reader(session, email):
    return session.exec(select(Subscriber).where(Subscriber.email == email)).one()


def test_a_new_reader_gets_the_latest_issue_once_after_the_welcome(live):
    confirm(live, "early@example.com", [])
    assert live.deliver_mail() == 1 and "Welcome" in live.mails()[-1]["Subject"]  # no issue sent yet: nothing
    issue = draft_issue(live.engine, live.settings, "2026-W48").issue
    start_send(live.engine, issue.id, settings=live.settings)
    transport = make_transport(live.settings)
    assert deliver(live.engine, live.settings, transport, TEST_SECRET, issue.id).finished
    transport.close()
    with session_scope(live.engine) as session:  # edited after it went out: the new reader gets it as it was
        tool = session.exec(select(Tool).where(Tool.slug == "elevenlabs")).one()
        price, tool.entry_price = tool.entry_price, "$1,000 a seat"

    link = confirm(live, "nia@example.com", ["Design & Media"])
    assert live.deliver_mail() == 2
    welcome, latest = live.mails()[-2:]
    assert "Welcome" in welcome["Subject"] and latest["To"] == "nia@example.com"
    text = latest.get_body(("plain",)).get_content()
    flat = " ".join(text.split())
    assert "You just subscribed — this is our latest issue, sent on" in flat
    assert slugs_in(text) == ["elevenlabs-vs-descript"]  # their topics only
    assert f"Entry price {price}" in flat and "$1,000 a seat" not in flat
    assert "You just subscribed" in latest.get_body(("html",)).get_content()

    assert live.http.post(link).status_code == 400  # a confirmation is single use
    with session_scope(live.engine) as session:
        nia = reader(session, "nia@example.com")
        assert not queue_latest(session, live.settings, nia)  # a second confirmation: still once
        assert not queue_latest(session, live.settings, reader(session, "early@example.com"))  # had it
    assert live.deliver_mail() == 0  # the workers again: nothing more
    with session_scope(live.engine) as session:  # the ledger knows what she got: her votes count
        nia = reader(session, "nia@example.com")
        rows = session.exec(select(Delivery).where(Delivery.subscriber_id == nia.id)).all()
        assert [(row.issue_id, row.state) for row in rows] == [(issue.id, "sent")]
        counted = tallies.read(session, [issue.id])[issue.id]  # the counters follow the ledger
        raw = tallies.raw_counts(session, issue.id)
        assert {k: counted.get(k, 0) for k in ("recipients", "sent")} == {k: raw[k] for k in ("recipients", "sent")}
        ids = dict(session.exec(select(Comparison.slug, Comparison.id)).all())
        assert was_sent(session, nia.id, ids["elevenlabs-vs-descript"])
        assert not was_sent(session, nia.id, ids["groqcloud-vs-together-ai"])
    off = live.settings.model_copy(update={"issue": live.settings.issue.model_copy(
        update={"latest_to_new_readers": False})})
    confirm(live, "quiet@example.com", [])
    with session_scope(live.engine) as session:
        assert not queue_latest(session, off, reader(session, "quiet@example.com"))


def test_a_reader_who_leaves_before_the_worker_runs_gets_no_latest_issue(live):
    """Confirmed, then unsubscribed before the queue's turn: the welcome may go, the latest issue
    is skipped (never sent, never retried) and the ledger gets no row for it."""
    issue = draft_issue(live.engine, live.settings, "2026-W48").issue
    start_send(live.engine, issue.id, settings=live.settings)
    transport = make_transport(live.settings)
    assert deliver(live.engine, live.settings, transport, TEST_SECRET, issue.id).finished
    transport.close()
    confirm(live, "brief@example.com", [])
    with session_scope(live.engine) as session:
        gone = reader(session, "brief@example.com")
        gone.status = "unsubscribed"
        session.add(gone)
    before = len(live.mails())
    live.deliver_mail()
    subjects = [mail["Subject"] for mail in live.mails()[before:] if mail["To"] == "brief@example.com"]
    assert not any("You just subscribed" in mail.get_body(("plain",)).get_content()
                   for mail in live.mails()[before:] if mail["To"] == "brief@example.com"), subjects
    with session_scope(live.engine) as session:
        gone = reader(session, "brief@example.com")
        latest = session.exec(select(TransactionalMail).where(TransactionalMail.subscriber_id == gone.id,
                                                              TransactionalMail.kind == "latest")).one()
        assert latest.state == "skipped"
        assert not session.exec(select(Delivery).where(Delivery.subscriber_id == gone.id)).all()
