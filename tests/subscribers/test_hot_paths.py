"""The web's one-statement signup and link unsubscribe (newsletter/subscribers/hot_paths.py) leave
the rows the ORM functions they stand for leave: on PostgreSQL one statement each, on SQLite the
ORM functions themselves; the same expectations for both."""

from __future__ import annotations

import json

from sqlmodel import select

from newsletter.config import WebSettings
from newsletter.db import session_scope, utcnow
from newsletter.delivery import webhook_endpoints
from newsletter.editors import audit
from newsletter.outgoing import EVENTS, WebhookDelivery
from newsletter.subscribers import hot_paths
from newsletter.subscribers.consent import CONSENT_VERSION, Origin, Source
from newsletter.subscribers.models import ConsentEvent, Subscriber, SubscriberTopic, TransactionalMail
from newsletter.subscribers.service import suppress
from newsletter.tokens import LinkSubject

ORIGIN = Origin("192.0.2.7", "Mail client")


def rows(engine, email: str) -> tuple[Subscriber | None, list[str], list[tuple[str, str]], list[str]]:
    """The reader with `email`, their topics, their consent events (kind, source) and queued mails' kinds."""
    with session_scope(engine) as session:
        reader = session.exec(select(Subscriber).where(Subscriber.email == email)).first()
        if reader is None:
            return None, [], [], []
        topics = sorted(session.exec(select(SubscriberTopic.category)
                                     .where(SubscriberTopic.subscriber_id == reader.id)).all())
        events = [(e.kind, e.source) for e in session.exec(select(ConsentEvent).where(
            ConsentEvent.subscriber_id == reader.id).order_by(ConsentEvent.id)).all()]
        mails = list(session.exec(select(TransactionalMail.kind).where(TransactionalMail.subscriber_id == reader.id)
                                  .order_by(TransactionalMail.id)).all())
        return reader, topics, events, mails


def signup(engine, email: str, name: str = "", topics: tuple[str, ...] = ()) -> None:
    hot_paths.signup(engine, WebSettings(), email, name, list(topics), utcnow(), ORIGIN, Source.form)


def set_status(engine, email: str, status: str) -> None:
    with session_scope(engine) as session:
        reader = session.exec(select(Subscriber).where(Subscriber.email == email)).one()
        reader.status = status
        session.add(reader)


def test_a_new_address_is_pending_with_its_consent_topics_and_confirmation(engine):
    signup(engine, "new@example.com", "New", ("Books", "Tools"))
    reader, topics, events, mails = rows(engine, "new@example.com")
    assert (reader.status, reader.name, len(reader.token_key)) == ("pending", "New", 16)
    assert topics == ["Books", "Tools"] and events == [("signup_requested", "form")] and mails == ["confirm"]
    with session_scope(engine) as session:
        event = session.exec(select(ConsentEvent)).one()
    assert (event.ip, event.user_agent, event.consent_version) == ("192.0.2.7", "Mail client", CONSENT_VERSION)


def test_a_returning_reader_gets_the_new_topics_keeps_a_name_and_is_throttled(engine):
    signup(engine, "back@example.com", "Back", ("Books", "Tools"))
    set_status(engine, "back@example.com", "unsubscribed")
    signup(engine, "back@example.com", "", ("Tools", "Games"))
    reader, topics, events, mails = rows(engine, "back@example.com")
    assert (reader.status, reader.name) == ("unsubscribed", "Back")  # active only once confirmed
    assert topics == ["Games", "Tools"]
    assert events == [("signup_requested", "form")] * 2
    assert mails == ["confirm"]  # one confirmation per address per interval


def test_an_active_bounced_or_suppressed_address_is_left_alone(engine):
    for email, status in (("active@example.com", "active"), ("bounced@example.com", "bounced")):
        signup(engine, email, "Before", ("Books",))
        set_status(engine, email, status)
    with session_scope(engine) as session:
        suppress(session, "blocked@example.com", "manual", "cli")
    before = {email: rows(engine, email) for email in ("active@example.com", "bounced@example.com")}
    for email in ("active@example.com", "bounced@example.com", "blocked@example.com"):
        signup(engine, email, "Stranger", ("Games",))
    for email, (reader, topics, events, mails) in before.items():
        after = rows(engine, email)
        assert (after[0].name, after[0].status, after[1:]) == (reader.name, reader.status, (topics, events, mails))
    assert rows(engine, "blocked@example.com")[0] is None
    with session_scope(engine) as session:  # the throwaway writes were rolled back
        assert not session.exec(select(Subscriber).where(Subscriber.email.like("decoy-%"))).all()


def test_a_link_unsubscribes_its_reader_once_and_announces_it_once(engine, settings):
    with session_scope(engine) as session:
        webhook_endpoints.register(session, "https://hooks.example.com/in", list(EVENTS), "",
                                   settings.outgoing_webhooks, audit.Actor.cli())
    signup(engine, "leaving@example.com", "Leaving")
    set_status(engine, "leaving@example.com", "active")
    reader = rows(engine, "leaving@example.com")[0]
    assert not hot_paths.unsubscribe_link(engine, LinkSubject(reader.id, "0" * 16), utcnow(), True, "x", ORIGIN)
    assert rows(engine, "leaving@example.com")[0].status == "active"  # a link made for someone else
    for goodbye in (True, True):
        assert hot_paths.unsubscribe_link(engine, LinkSubject(reader.id, reader.token_key), utcnow(), goodbye,
                                          "unsubscribe link, page", ORIGIN)
    after, _topics, events, mails = rows(engine, "leaving@example.com")
    assert after.status == "unsubscribed" and after.unsubscribed_at is not None
    assert events == [("signup_requested", "form"), ("unsubscribed", "link")] and mails == ["confirm", "goodbye"]
    with session_scope(engine) as session:
        bodies = session.exec(select(WebhookDelivery.body).where(WebhookDelivery.event == "reader.unsubscribed")).all()
    assert [json.loads(body)["data"] for body in bodies] == [
        {"reader_id": reader.id, "email": "leaving@example.com", "name": "Leaving", "status": "unsubscribed",
         "source": "link"}]
