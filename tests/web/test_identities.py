"""Identities never recur (issue 14.3): a forgotten reader's links do nothing to the next reader.

A reader signs up, confirms, gets an issue and asks for a new address; every link from those
mails is kept. The reader is forgotten (`subscribers forget`) and someone else signs up. Each old
link (unsubscribe, preferences, pause, change of address, vote, confirm) is then used and the new
reader is unchanged, on SQLite and PostgreSQL: their id is a new one, and even a reader who did get
the old id (a database from before AUTOINCREMENT) is not the one the links name (token_key).
"""

from __future__ import annotations

import re
import subprocess
import sys
from email import message_from_string, policy

from sqlalchemy import func, insert, text
from sqlmodel import select

from newsletter.content.models import Vote
from newsletter.db import session_scope
from newsletter.delivery.sender import deliver, start_send
from newsletter.delivery.transports import make_transport
from newsletter.issues.drafting import draft_issue
from newsletter.subscribers.models import ConsentEvent, Subscriber, SubscriberTopic, TransactionalMail
from newsletter.subscribers.forgotten import forget
from tests.conftest import TEST_SECRET

OLD, NEW = "first.reader@example.com", "second.reader@example.com"


def text_of(raw: bytes) -> str:
    return message_from_string(raw.decode(), policy=policy.default).get_body(("plain",)).get_content()


def confirm_by_mail(live, email: str) -> None:
    assert live.subscribe(email, name="Reader", topics=["Developer Tools"]).status_code == 200
    live.deliver_mail()
    assert live.http.post(live.link_in(live.mails()[-1], "confirm")).status_code == 200


def old_links(live) -> dict[str, str]:
    """Every personal link the first reader's mails carried."""
    confirm_by_mail(live, OLD)
    issue = draft_issue(live.engine, live.settings, "2026-W48").issue
    start_send(live.engine, issue.id)
    deliver(live.engine, live.settings, make_transport(live.settings), TEST_SECRET, issue.id)
    body = text_of(next(live.settings.mail.file.dir.glob("i*.eml")).read_bytes())
    links = {name: re.search(rf"(https?://\S+/{name}/\S+)", body).group(1) for name in ("unsubscribe", "preferences")}
    links["vote"] = re.search(r"(https?://\S+/vote/\S+/(?!pass\s)[a-z0-9-]+)\s", body).group(1)
    live.http.post(links["preferences"], data={"action": "change_email", "new_email": "moved@example.com"})
    live.deliver_mail()
    links["confirm"] = live.link_in(live.mails()[-1], "confirm")  # the unused change-of-address link
    return links


def state_of(live, email: str) -> tuple:
    with session_scope(live.engine) as session:
        reader = session.exec(select(Subscriber).where(Subscriber.email == email)).one()
        topics = session.exec(select(SubscriberTopic.category).where(SubscriberTopic.subscriber_id == reader.id)).all()
        votes = session.exec(select(func.count()).select_from(Vote).where(Vote.subscriber_id == reader.id)).one()
        mails = session.exec(select(TransactionalMail.kind).where(TransactionalMail.subscriber_id == reader.id)).all()
        return (reader.id, reader.email, reader.status, reader.paused_until, sorted(topics), votes, sorted(mails))


def use_every_link(live, links: dict[str, str]) -> None:
    """Everything a holder of the old links could try; each answer is "this link does not work"."""
    attempts = [
        (links["unsubscribe"], {"List-Unsubscribe": "One-Click"}),
        (links["unsubscribe"], {"source": "page"}),
        (links["preferences"], {"action": "save", "pause_weeks": "4", "topics": "Design & Media"}),
        (links["preferences"], {"action": "change_email", "new_email": "thief@example.com"}),
        (links["preferences"], {"action": "unsubscribe"}),
        (links["vote"], {}),
        (links["confirm"], {}),
    ]
    for url, data in attempts:
        assert live.http.get(url).status_code == 400, url
        assert live.http.post(url, data=data).status_code == 400, (url, data)


def test_old_links_do_nothing_to_the_next_reader(live, tmp_path):
    links = old_links(live)
    with session_scope(live.engine) as session:
        old_id = session.exec(select(Subscriber.id).where(Subscriber.email == OLD)).one()
    done = subprocess.run([sys.executable, "-m", "newsletter", "--config", str(tmp_path / "config.toml"),
                           "subscribers", "forget", OLD], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and f"forgot {OLD}" in done.stdout, done.stderr
    confirm_by_mail(live, NEW)
    before = state_of(live, NEW)
    assert before[0] > old_id  # never the forgotten reader's id, on SQLite too
    use_every_link(live, links)
    assert state_of(live, NEW) == before


def test_a_reader_who_got_the_old_id_does_not_inherit_its_links(live):
    """A database from before migration 0009 may already have handed an id out twice: the links
    still name the person (token_key), not the id."""
    links = old_links(live)
    with session_scope(live.engine) as session:
        old_id = session.exec(select(Subscriber.id).where(Subscriber.email == OLD)).one()
    forget(live.engine, OLD)
    with session_scope(live.engine) as session:
        session.execute(insert(Subscriber).values(id=old_id, email=NEW, name="New", status="active",
                                                  created_at=func.now(), token_key="0123456789abcdef"))
        session.add(SubscriberTopic(subscriber_id=old_id, category="Developer Tools"))
    before = state_of(live, NEW)
    assert before[0] == old_id
    use_every_link(live, links)
    assert state_of(live, NEW) == before
    with session_scope(live.engine) as session:
        kinds = session.exec(select(ConsentEvent.kind).where(ConsentEvent.subscriber_id == old_id)).all()
    assert kinds == []  # not even a consent event was written for the new reader


def test_an_old_sqlite_database_migrates_with_every_row_and_stops_reusing_ids(tmp_path):
    """Migration 0009 rebuilds the tables with AUTOINCREMENT: rows that hang off a reader survive
    (foreign keys are off during the rebuild), and a deleted highest id is not handed out again."""
    from newsletter.db import make_engine
    from newsletter.migrate import upgrade

    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    upgrade(engine, "0007")
    with engine.begin() as connection:
        for n in (1, 2):
            connection.execute(text("INSERT INTO subscriber (email, name, status, created_at) "
                                    "VALUES (:e, '', 'active', '2026-01-01')"), {"e": f"r{n}@example.com"})
            connection.execute(text("INSERT INTO consent_event (subscriber_id, kind, source, detail, created_at) "
                                    "VALUES (:n, 'subscribed', 'import', '', '2026-01-01')"), {"n": n})
    upgrade(engine)
    with engine.begin() as connection:
        assert connection.execute(text("SELECT count(*) FROM consent_event")).scalar() == 2
        assert connection.execute(text("SELECT token_key FROM subscriber")).scalars().all() == ["", ""]
        ddl = dict(connection.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'table'")).all())
        for table in ("subscriber", "consent_event", "suppression", "transactional_mail", "issue", "delivery",
                      "vote", "tracking_event", "webhook_event"):
            assert "AUTOINCREMENT" in ddl[table], table
        index = connection.execute(text("SELECT sql FROM sqlite_master WHERE name = 'ix_delivery_issue_id'")).scalar()
        assert "issue_id, id" in index  # the claims' index survived the rebuilds
        connection.execute(text("DELETE FROM subscriber WHERE id = 2"))
        assert connection.execute(text("SELECT count(*) FROM consent_event")).scalar() == 1  # cascades work again
        connection.execute(text("INSERT INTO subscriber (email, name, status, created_at) "
                                "VALUES ('r3@example.com', '', 'active', '2026-01-02')"))
        assert connection.execute(text("SELECT max(id) FROM subscriber")).scalar() == 3
    engine.dispose()
