"""Export columns, and `subscribers forget` (issue 5.6): erase the person, keep a hashed suppression."""

import csv
import io
import json
import os
from pathlib import Path
from datetime import UTC, datetime

import pytest

from sqlalchemy import func
from sqlmodel import select

from newsletter.content.models import Comparison, Vote
from newsletter.db import session_scope
from newsletter.delivery.models import Delivery
from newsletter.delivery.sender import start_send
from newsletter.issues.drafting import draft_issue
from newsletter.feedback.models import WebhookEvent
from newsletter.subscribers.models import ConsentEvent, Subscriber, SubscriberTopic, Suppression, TransactionalMail
from newsletter.subscribers.importing import import_csv
from newsletter.subscribers.service import InvalidInput, export, forget, hashed_email, is_suppressed
from newsletter.subscribers.signup import request_signup, unsubscribe
from tests.cli_runner import run_cli
from tests.conftest import write_config

CATEGORIES = ["Developer Tools", "Design & Media"]  # topics must be categories of the publication

COLUMNS = ["email", "status", "created_at", "confirmed_at", "unsubscribed_at", "topics"]


def test_export_has_dates_status_and_topics(engine):
    import_csv(engine, "email,topics\nstays@example.com,Developer Tools\nleaves@example.com,\n", "active",
               categories=CATEGORIES)
    with session_scope(engine) as session:
        leaver = session.exec(select(Subscriber).where(Subscriber.email == "leaves@example.com")).one()
        unsubscribe(session, leaver.id, "link", datetime.now(UTC), goodbye=False, detail="test")
    rows = list(csv.DictReader(io.StringIO(export(engine, "csv"))))
    assert set(COLUMNS) <= set(rows[0])
    stays, leaves = rows
    assert (stays["email"], stays["status"], stays["topics"], stays["unsubscribed_at"]) == (
        "stays@example.com", "active", "Developer Tools", "")
    assert leaves["status"] == "unsubscribed" and datetime.fromisoformat(leaves["unsubscribed_at"])
    assert datetime.fromisoformat(stays["created_at"]) and datetime.fromisoformat(stays["confirmed_at"])
    as_json = json.loads(export(engine, "json"))
    assert set(COLUMNS) <= set(as_json[1]) and as_json[1]["unsubscribed_at"] == leaves["unsubscribed_at"]


def count(session, model, *where):
    return session.exec(select(func.count()).select_from(model).where(*where)).one()


def test_forget_erases_everything_and_the_address_is_never_mailed_again(sample_engine, settings):
    engine = sample_engine
    import_csv(engine, "email,name,topics\nForget.Me@Example.com,Fo,Developer Tools\nkeep@example.com,,\n", "active",
               categories=CATEGORIES)
    issue = draft_issue(engine, settings, "2026-W48").issue
    start_send(engine, issue.id)
    with session_scope(engine) as session:
        me = session.exec(select(Subscriber).where(Subscriber.email == "forget.me@example.com")).one()
        comparison = session.exec(select(Comparison)).first()
        session.add(Vote(comparison_id=comparison.id, subscriber_id=me.id))
        session.add(TransactionalMail(subscriber_id=me.id, kind="goodbye", to_email=me.email))
        session.add(Suppression(email="forget.me@example.com", reason="complaint"))
        session.add(WebhookEvent(provider="postmark", provider_event_id="e1", kind="complained",
                                 email="forget.me@example.com", message_key="k1"))
        me_id = me.id
        assert count(session, Delivery, Delivery.subscriber_id == me_id) == 1

    result = forget(engine, " Forget.Me@EXAMPLE.com ")
    assert result.email == "forget.me@example.com"
    assert result.counts["subscriber"] == 1 and result.counts["deliveries"] == 1 and result.counts["votes"] == 1
    assert result.counts["topics"] == 1 and result.counts["consent events"] == 1
    assert result.counts["suppression rows with the address"] == 1
    with session_scope(engine) as session:
        for model in (Subscriber, SubscriberTopic, ConsentEvent, Delivery, Vote, TransactionalMail):
            assert count(session, model, model.subscriber_id == me_id if model is not Subscriber
                         else Subscriber.id == me_id) == 0, model
        assert session.exec(select(Subscriber.email)).all() == ["keep@example.com"]
        # The address itself is nowhere any more; its hash is.
        assert session.exec(select(Suppression.email, Suppression.reason)).all() == [
            (hashed_email("forget.me@example.com"), "forgotten")]
        assert session.exec(select(WebhookEvent.email)).all() == [hashed_email("forget.me@example.com")]
        assert is_suppressed(session, "forget.me@example.com")

    # Signing up or being imported again never mails them.
    with session_scope(engine) as session:
        request_signup(session, settings.web, "forget.me@example.com", "", [], datetime.now(UTC))
    assert import_csv(engine, "email\nforget.me@example.com\n", "active",
                      categories=CATEGORIES).skipped == ["forget.me@example.com: suppressed"]
    with session_scope(engine) as session:
        assert count(session, Subscriber, Subscriber.email == "forget.me@example.com") == 0
        assert count(session, TransactionalMail, TransactionalMail.to_email == "forget.me@example.com") == 0
    with pytest.raises(InvalidInput, match="already forgotten"):
        forget(engine, "forget.me@example.com")
    with pytest.raises(InvalidInput, match="no subscriber"):
        forget(engine, "stranger@example.com")


def test_forget_on_the_command_line(tmp_path, db_url):
    config = write_config(tmp_path, db_url)

    def cli(*args):
        return run_cli(["--config", str(config), *args], Path.cwd(), dict(os.environ))  # tests/cli_runner.py

    assert cli("db", "upgrade").returncode == 0
    (tmp_path / "in.csv").write_text("email\ngone@example.com\n")
    assert cli("subscribers", "import", str(tmp_path / "in.csv")).returncode == 0
    done = cli("subscribers", "forget", "gone@example.com")
    assert done.returncode == 0, done.stderr
    assert "forgot gone@example.com" in done.stdout and "1 subscriber" in done.stdout
    assert "1 consent events" in done.stdout and "hashed" not in done.stderr
    assert "gone@example.com" not in cli("subscribers", "export").stdout
    unknown = cli("subscribers", "forget", "nobody@example.com")
    assert unknown.returncode == 1 and "no subscriber" in unknown.stderr and "Traceback" not in unknown.stderr
