"""Issue 14.5 (last sentence): signups never confirmed lose their personal data once the link expired."""

import os
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, inspect, text
from sqlmodel import select

from newsletter.config import load_settings
from newsletter.db import make_engine, session_scope, utcnow
from newsletter.subscribers.models import ConsentEvent, ExpiredSignup, Subscriber, SubscriberTopic, TransactionalMail
from newsletter.subscribers.purge import purge_unconfirmed
from newsletter.subscribers.service import hashed_email
from newsletter.subscribers.signup import request_signup
from tests.cli_runner import run_cli
from tests.db_templates import migrate_fresh
from tests.conftest import TEST_SECRET, write_config


def every_text_value(engine) -> str:
    """Every value in every table, as one string: where an address could hide."""
    values = []
    with engine.connect() as connection:
        for table in inspect(engine).get_table_names():
            if table == "alembic_version":
                continue
            values += [str(v) for row in connection.execute(text(f'SELECT * FROM "{table}"')) for v in row]
    return "\n".join(values)


def count(engine, model) -> int:
    with session_scope(engine) as session:
        return session.exec(select(func.count()).select_from(model)).one()


def test_expired_signups_are_purged_and_only_their_hash_stays(live_factory, db_url):
    # Links shorter-lived than a day: the purged mail still counts for the daily limit, so its
    # hash stays (with the default 48 h the mail is older than any limit's window: no trace).
    live = live_factory(db_url, WEB__CONFIRM_TTL_HOURS="2")
    for email in ("gone@example.com", "fresh@example.com", "confirmed@example.com"):
        assert live.subscribe(email, name="Nameless Person", topics=["Developer Tools"]).status_code == 200
    assert live.deliver_mail() == 3
    live.http.post(live.link_in(live.mails()[2], "confirm"))  # confirmed@ confirms in time
    ttl = timedelta(hours=live.settings.web.confirm_ttl_hours)
    # Nothing is purged while a link can still work.
    assert purge_unconfirmed(live.engine, live.settings).purged == 0
    # fresh@ asks again just before gone@'s link runs out (throttled: no new mail, but a new request).
    later = utcnow() + ttl + timedelta(minutes=1)
    with session_scope(live.engine) as session:
        fresh = session.exec(select(Subscriber).where(Subscriber.email == "fresh@example.com")).one()
        session.add(ConsentEvent(subscriber_id=fresh.id, kind="signup_requested", source="form",
                                 created_at=later - timedelta(hours=1)))
    report = purge_unconfirmed(live.engine, live.settings, now=later)
    assert (report.purged, report.traces_kept) == (1, 1)
    with session_scope(live.engine) as session:
        left = sorted(session.exec(select(Subscriber.email)).all())
        trace = session.exec(select(ExpiredSignup)).one()
    assert left == ["confirmed@example.com", "fresh@example.com"]
    assert trace.email_hash == hashed_email("gone@example.com")
    stored = every_text_value(live.engine)
    assert "gone@example.com" not in stored and "gone@" not in stored
    assert stored.count("Nameless Person") == 2  # fresh@ and confirmed@ keep theirs
    # The old link does nothing now; the confirmation limit still remembers the purged mail.
    assert live.http.post(live.link_in(live.mails()[0], "confirm")).status_code == 400
    assert count(live.engine, TransactionalMail) == 3  # fresh@'s, confirmed@'s and its welcome; none of gone@
    # A day later the traces have served every limit and go too.
    assert purge_unconfirmed(live.engine, live.settings, now=later + timedelta(days=1)).traces_dropped == 1
    assert count(live.engine, ExpiredSignup) == 0


def test_purged_signups_still_count_for_the_confirmation_limit(live_factory, db_url):
    live = live_factory(db_url, WEB__CONFIRM_TTL_HOURS="0.01", WEB__CONFIRMATION_INTERVAL_MINUTES="0",
                        WEB__CONFIRMATIONS_PER_ADDRESS_PER_DAY="2")
    sent = []
    for round_ in range(3):  # sign a victim up, let it expire, purge, again
        assert live.subscribe("victim@example.com").status_code == 200
        sent.append(live.deliver_mail())
        assert purge_unconfirmed(live.engine, live.settings, now=utcnow() + timedelta(minutes=2 + round_)).purged == 1
    assert sent == [1, 1, 0]  # the third signup got the same answer but no mail
    with session_scope(live.engine) as session:
        assert session.exec(select(SubscriberTopic)).all() == []
        assert len(session.exec(select(ExpiredSignup)).all()) == 2


def stale_store(tmp_path, db_url):
    """A migrated store holding one signup made three days ago whose link expired unused."""
    path = write_config(tmp_path, db_url)
    settings = load_settings(path)
    engine = make_engine(settings.database.url)
    migrate_fresh(engine)
    long_ago = utcnow() - timedelta(days=3)
    with session_scope(engine) as session:
        request_signup(session, settings.web, "stale@example.com", "Stale", [], long_ago)
        session.exec(select(Subscriber)).one().created_at = long_ago
        for event in session.exec(select(ConsentEvent)).all():
            event.created_at = long_ago
        for mail in session.exec(select(TransactionalMail)).all():
            mail.state, mail.expires_at = "sent", long_ago
    return path, engine


def test_the_command_line_purges(tmp_path, db_url):
    path, engine = stale_store(tmp_path, db_url)
    env = {**os.environ, "NEWSLETTER_SECRET_KEY": TEST_SECRET}
    done = run_cli(["--config", str(path), "subscribers", "purge-unconfirmed"], Path.cwd(), env)
    assert done.returncode == 0, done.stderr
    assert "purged 1 unconfirmed signups" in done.stdout
    assert count(engine, Subscriber) == 0
    engine.dispose()


def test_serve_alone_purges_in_its_background_sender(live_factory, tmp_path):
    """`newsletter serve` without a scheduler is a whole deployment: its sender thread purges too."""
    db_url = f"sqlite:///{tmp_path / 'stale.db'}"
    (tmp_path / "pre").mkdir()  # its own config file; live_factory writes one in tmp_path
    _, engine = stale_store(tmp_path / "pre", db_url)
    live = live_factory(db_url, with_sender=True)
    deadline = time.time() + 20
    while count(live.engine, Subscriber) and time.time() < deadline:
        time.sleep(0.2)
    assert count(live.engine, Subscriber) == 0
    engine.dispose()
