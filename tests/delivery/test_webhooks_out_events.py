"""Each outgoing webhook event is emitted once, at the one place its change happens, in that
change's transaction: confirmation, unsubscribe, bounce and complaint (through the feedback
rules), a vote, and an issue's schedule, start and finish (a pause and resume is no new start)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlmodel import select

from newsletter.content.votes import record_vote, resolve_choice
from newsletter.db import session_scope, utcnow
from newsletter.delivery import control, webhook_endpoints
from newsletter.delivery.sender import deliver, start_send
from newsletter.delivery.transports import make_transport
from newsletter.editors import audit
from newsletter.feedback.events import EventKind, NormalizedEvent
from newsletter.feedback.rules import apply_event
from newsletter.issues import editing
from newsletter.issues.drafting import draft_issue
from newsletter.outgoing import EVENTS, WebhookDelivery
from newsletter.subscribers.models import Subscriber, TransactionalMail
from newsletter.subscribers.service import UpsertResult, upsert_active
from newsletter.subscribers.signup import confirm, new_confirmation_token, request_signup, unsubscribe
from tests.conftest import TEST_SECRET


@pytest.fixture
def listening(sample_engine, settings):
    with session_scope(sample_engine) as session:
        webhook_endpoints.register(session, "https://hooks.example.com/in", list(EVENTS), "", settings.outgoing_webhooks,
                                   audit.Actor.cli())
    return sample_engine


def emitted(engine, event: str) -> list[dict]:
    with session_scope(engine) as session:
        bodies = session.exec(select(WebhookDelivery.body).where(WebhookDelivery.event == event)).all()
    return [json.loads(body)["data"] for body in bodies]


def active_reader(engine, email: str) -> int:
    with session_scope(engine) as session:
        upsert_active(session, email, "Ada", [], "import", UpsertResult())
        return session.exec(select(Subscriber.id).where(Subscriber.email == email)).one()


def test_confirmation_is_announced_once(listening, settings):
    now = utcnow()
    with session_scope(listening) as session:
        request_signup(session, settings.web, "new@example.com", "New Reader", [], now)
        token, digest = new_confirmation_token(TEST_SECRET)
        row = session.exec(select(TransactionalMail).where(TransactionalMail.to_email == "new@example.com")).one()
        row.token_hash, row.expires_at = digest, now + timedelta(hours=1)
        session.add(row)
    assert emitted(listening, "reader.confirmed") == []  # a signup request is no confirmation
    with session_scope(listening) as session:
        confirm(session, TEST_SECRET, token, now)
    [data] = emitted(listening, "reader.confirmed")
    assert data["email"] == "new@example.com" and data["status"] == "active" and data["name"] == "New Reader"


def test_unsubscribe_is_announced_once(listening):
    reader = active_reader(listening, "leaving@example.com")
    for _ in range(2):
        with session_scope(listening) as session:
            unsubscribe(session, reader, "link", utcnow(), goodbye=False)
    [data] = emitted(listening, "reader.unsubscribed")
    assert data["reader_id"] == reader and data["status"] == "unsubscribed" and data["source"] == "link"


@pytest.mark.parametrize("kind,event", [(EventKind.bounced_hard, "reader.bounced"),
                                        (EventKind.complained, "reader.complained")])
def test_bounce_and_complaint_are_announced_once(listening, settings, kind, event):
    active_reader(listening, "trouble@example.com")
    for number in range(2):  # a second report changes nothing and announces nothing
        with session_scope(listening) as session:
            apply_event(session, settings, NormalizedEvent(kind, "trouble@example.com", "postmark", f"ev-{number}"))
    [data] = emitted(listening, event)
    assert data["email"] == "trouble@example.com" and data["status"] == event.split(".")[1]
    other = "reader.complained" if event == "reader.bounced" else "reader.bounced"
    assert emitted(listening, other) == []


def test_a_vote_is_announced_each_time_it_is_recorded(listening):
    reader = active_reader(listening, "voter@example.com")
    with session_scope(listening) as session:
        from newsletter.content.models import Comparison

        slug = session.exec(select(Comparison.slug)).first()
        comparison, tool = resolve_choice(session, slug, "a")
        record_vote(session, comparison.id, reader, tool.id)
    [data] = emitted(listening, "vote.recorded")
    assert data == {"comparison": slug, "tool": tool.slug, "reader_id": reader}


def test_an_issue_announces_schedule_start_and_finish_once_each(listening, settings):
    active_reader(listening, "reader@example.com")
    issue = draft_issue(listening, settings, "2026-W48").issue
    editing.schedule(listening, issue.id, utcnow() + timedelta(days=1))
    assert [d["state"] for d in emitted(listening, "issue.scheduled")] == ["scheduled"]
    start_send(listening, issue.id)
    control.pause_issue(listening, issue.id)
    control.resume_issue(listening, issue.id)  # a resume is not a second start
    [started] = emitted(listening, "issue.started")
    assert started["issue_id"] == issue.id and started["week"] == "2026-W48" and started["started_at"]
    assert emitted(listening, "issue.finished") == []
    transport = make_transport(settings)
    report = deliver(listening, settings, transport, TEST_SECRET, issue.id)
    transport.close()
    assert report.finished
    [finished] = emitted(listening, "issue.finished")
    assert finished["state"] == "sent" and finished["finished_at"]
    assert len(emitted(listening, "issue.scheduled")) == 1 and len(emitted(listening, "issue.started")) == 1
