"""The bulk import (bulk_import.py: staged rows, set-based writes) leaves the store exactly as the
row-by-row path does, on SQLite and PostgreSQL, for a file with every hard case: a duplicate
address, bad lines, a suppressed, a forgotten and an unsubscribed reader, a known reader whose
name and topics change, bounces and complaints from the file, an IDN domain and quoted names.
Both runs start from the same seeded store; everything but ids, token keys and "now" is compared."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlmodel import SQLModel

from newsletter.db import session_scope, utcnow
from newsletter.subscribers.import_plan import Tally, run_batch, run_chunk
from newsletter.subscribers.importing import import_csv
from newsletter.subscribers.mapping import mapped_rows, mapping_for, platform_for, read_upload
from newsletter.subscribers.models import ConsentEvent, Subscriber, SubscriberTopic, Suppression
from newsletter.subscribers.forgotten import forget
from newsletter.subscribers.service import suppress

CATEGORIES = ["Developer Tools", "Design & Media"]
TRICKY = '''email,name,topics,status,created_at,confirmed_at,unsubscribed_at
new.one@example.com,"Doe, Jane ""JD""",Developer Tools;design & media,,2021-03-01,2021-03-02T10:00:00+02:00,
NEW.ONE@example.com,Duplicate,,,,,
not-an-address,Bad,,,,,
left.here@example.com,Back Again,,active,,,
gone@example.com,Forgotten,,,,,
blocked@example.com,Blocked,,,,,
known@example.com,"Known, New Name",Design & Media,,,,
leaving@example.com,Leaving,,unsubscribed,2020-01-01,,2024-05-01
hard@example.com,,,bounced,,,
complainer@example.com,,,complained,,,
turned.bad@example.com,,,bounced,,,
anna@xn--bcher-kva.example,Anna Ümlaut,Developer Tools|Developer Tools,,,,
josé@example.com,Non-ASCII local part,,,,,
topic@example.com,,Knitting,,,,
future@example.com,,,,2999-01-01,,
plain@example.com,,,,,,
slash@example.com,Back\\Slash \\N,,,,,
'''


def _seed(engine) -> None:
    import_csv(engine, "email,name,topics,status\nleft.here@example.com,Left,,unsubscribed\n"
               "known@example.com,Known,Developer Tools,active\nturned.bad@example.com,Turned,,active\n"
               "gone@example.com,Gone,,active\n", categories=CATEGORIES, bulk=False)
    forget(engine, "gone@example.com")
    with session_scope(engine) as session:
        suppress(session, "blocked@example.com", "hard_bounce", "editor", "seeded")


def _wipe(engine) -> None:
    with session_scope(engine) as session:
        for model in (ConsentEvent, SubscriberTopic, Subscriber, Suppression):
            session.execute(delete(model))
        for name in ("outgoing_event", "webhook_delivery"):
            if name in SQLModel.metadata.tables:
                session.execute(delete(SQLModel.metadata.tables[name]))


def _state(engine, since: datetime) -> dict:
    """The store by address, with any time written since the seeding began read as "now"."""
    def when(value):
        return "now" if value is not None and value >= since else value

    with session_scope(engine) as session:
        email = {s.id: s.email for s in session.exec(select(Subscriber)).scalars()}
        readers = {s.email: (s.name, s.status, when(s.created_at), when(s.confirmed_at), when(s.unsubscribed_at),
                             s.paused_until, len(s.token_key)) for s in session.exec(select(Subscriber)).scalars()}
        topics = sorted((email[t.subscriber_id], t.category) for t in session.exec(select(SubscriberTopic)).scalars())
        events = Counter((email[e.subscriber_id], e.kind, e.source, e.detail, when(e.created_at), e.ip, e.user_agent,
                          e.consent_version) for e in session.exec(select(ConsentEvent)).scalars())
        suppressed = sorted((s.email, s.reason) for s in session.exec(select(Suppression)).scalars())
        sizes = {name: session.execute(select(func.count()).select_from(table)).scalar_one()
                 for name, table in SQLModel.metadata.tables.items() if name != "import_job"}
    return {"readers": readers, "topics": topics, "events": events, "suppressed": suppressed, "sizes": sizes}


def _run(engine, bulk: bool):
    _wipe(engine)
    since = utcnow()
    _seed(engine)
    report = import_csv(engine, TRICKY, categories=CATEGORIES, skip_bad_rows=True, bulk=bulk)
    return report, _state(engine, since)


def test_bulk_and_row_paths_leave_the_same_store(engine):
    row_report, row_state = _run(engine, bulk=False)
    bulk_report, bulk_state = _run(engine, bulk=True)
    assert bulk_state == row_state
    assert (bulk_report.created, bulk_report.updated, sorted(bulk_report.skipped), bulk_report.bad_rows) == \
        (row_report.created, row_report.updated, sorted(row_report.skipped), row_report.bad_rows)
    readers = bulk_state["readers"]
    assert readers["new.one@example.com"][0] == 'Doe, Jane "JD"'
    assert readers["anna@bücher.example"][1] == "active"
    assert readers["left.here@example.com"][1] == "unsubscribed"  # never re-activated
    assert readers["turned.bad@example.com"][1] == "bounced"
    assert "gone@example.com" not in readers and "blocked@example.com" not in readers
    assert ("new.one@example.com", "Design & Media") in bulk_state["topics"]
    assert ("hard@example.com", "hard_bounce") in bulk_state["suppressed"]
    assert [line.split(":")[0] for line in bulk_report.bad_rows] == \
        ["line 3", "line 4", "line 14", "line 15", "line 16"]


MAILCHIMP = b"""Email Address,First Name,Last Name,MEMBER_RATING,OPTIN_TIME,OPTIN_IP,CONFIRM_TIME,CONFIRM_IP,LEID
ada@example.com,Ada,"L\xc3\xb6vqvist, Jr.",2,2021-03-14 09:26:53,198.51.100.23,2021-03-14 09:31:02,198.51.100.23,1
left.here@example.com,Left,Again,2,2021-03-14 09:26:53,,,,2
known@example.com,Known,,2,,,2022-01-01 00:00:00,203.0.113.9,3
gone@example.com,Gone,,2,,,,,4
"""


def test_mapped_chunks_and_row_batches_leave_the_same_store(engine):
    """The console's and `--from`'s path: run_chunk (staged) against run_batch (row by row)."""
    upload = read_upload(MAILCHIMP)
    platform = platform_for(upload)
    mapping = mapping_for(upload, platform)
    states, tallies = [], []
    for judge in (run_batch, run_chunk):
        _wipe(engine)
        since, tally = utcnow(), Tally(notes=[])
        _seed(engine)
        rows = [row for _, row, _ in mapped_rows(upload, platform, mapping, CATEGORIES) if row is not None]
        with session_scope(engine) as session:
            judge(session, rows, tally, f"import:{platform.key}", write=True, keep_topics=True)
        states.append(_state(engine, since))
        tallies.append((tally.counts, tally.notes))
    assert states[0] == states[1]
    assert tallies[0] == tallies[1]
    assert tallies[1][0]["new"] == 1 and tallies[1][0]["refused"] == 2
