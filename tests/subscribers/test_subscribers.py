import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from newsletter.db import session_scope
from newsletter.subscribers.models import ConsentEvent, Subscriber, SubscriberTopic, Suppression
from newsletter.subscribers.importing import import_csv
from newsletter.subscribers.service import InvalidInput, export, normalize_email

CATEGORIES = ["Developer Tools", "Design & Media"]  # topics must be categories of the publication


def test_normalize_email():
    assert normalize_email("  Reader@Example.COM ") == "reader@example.com"
    for bad, reason in [("", "required"), ("no-at-sign", "@"), ("a@b\r\nBcc: x@y.example", "control"),
                        ("a" * 250 + "@example.com", "254")]:
        with pytest.raises(InvalidInput, match=reason):
            normalize_email(bad)


def test_csv_import_records_consent_and_round_trips_through_export(engine):
    data = "email,name,topics\nReader@Example.com,Ada,Developer Tools;Design & Media\nb@example.com,,\n"
    result = import_csv(engine, data, "active", categories=CATEGORIES)
    assert (result.created, result.updated) == (2, 0)
    again = import_csv(engine, data, "active", categories=CATEGORIES)
    # The same list again changes nothing: nothing is written, not even a consent event.
    assert (again.created, again.updated, again.unchanged) == (0, 0, 2)
    with session_scope(engine) as session:
        ada = session.exec(select(Subscriber).where(Subscriber.email == "reader@example.com")).one()
        assert ada.status == "active" and ada.name == "Ada"
        topics = session.exec(select(SubscriberTopic.category).where(SubscriberTopic.subscriber_id == ada.id)).all()
        assert sorted(topics) == ["Design & Media", "Developer Tools"]
        events = session.exec(select(ConsentEvent).where(ConsentEvent.subscriber_id == ada.id)).all()
        assert [(e.kind, e.source) for e in events] == [("subscribed", "import")]
    rows = list(csv.DictReader(io.StringIO(export(engine, "csv"))))
    assert [(r["email"], r["status"], r["topics"]) for r in rows] == [
        ("reader@example.com", "active", "Design & Media;Developer Tools"), ("b@example.com", "active", "")]
    assert json.loads(export(engine, "json"))[0]["email"] == "reader@example.com"
    with pytest.raises(InvalidInput, match="--format"):
        export(engine, "xml")


def test_bad_rows_name_line_and_field_and_import_nothing(engine):
    data = "email,name\ngood@example.com,Good\nnot-an-address,Bad\nok@example.com,\"Bad\rName\"\n"
    with pytest.raises(InvalidInput) as caught:
        import_csv(engine, data, "active", categories=CATEGORIES)
    assert "line 3: email" in str(caught.value) and "line 4: name" in str(caught.value)
    with session_scope(engine) as session:
        assert session.exec(select(Subscriber)).all() == []
    with pytest.raises(InvalidInput, match="'email' column"):
        import_csv(engine, "name\nx\n", "active", categories=CATEGORIES)


def test_import_never_reactivates_a_suppressed_address(engine):
    with session_scope(engine) as session:
        session.add(Suppression(email="complainer@example.com", reason="complaint"))
    result = import_csv(engine, "email\ncomplainer@example.com\n", "active", categories=CATEGORIES)
    assert result.created == 0 and result.skipped == ["complainer@example.com: suppressed"]


@pytest.mark.parametrize("name", ['=HYPERLINK("http://x")', "+1 555", "-dash", "@handle", "'quoted already",
                                  "Doe, Jane", "O'Brien", "Zoë ä 😀"])
def test_an_export_imported_again_gives_the_same_names(engine, name):
    """The export quotes a name a spreadsheet would run as a formula ("'=…"); `subscribers import` of
    that export kept the quote, so the name changed and went into To: (an outside trial). Both the
    fast path (a plain address) and the general one (an address needing the validator) read it back."""
    from newsletter.subscribers.exporting import export_chunks

    for email in ("plain@example.com", "reader@bücher.de"):
        import_csv(engine, f"email,name\n{email},\"{name.replace(chr(34), chr(34) * 2)}\"\n", "active",
                   categories=CATEGORIES)
    exported = "".join(export_chunks(engine, "csv"))
    again = import_csv(engine, exported, "active", categories=CATEGORIES)
    assert (again.created, again.updated) == (0, 0), exported
    with session_scope(engine) as session:
        assert set(session.exec(select(Subscriber.name)).all()) == {name}


def test_a_reader_already_active_changed_by_an_import_has_not_joined_again(engine):
    """Re-importing a list with a corrected name wrote a second "subscribed" event per reader, and the
    console's "joined" per week (consent events) counted 22 joins for 15 readers (outside trial)."""
    from newsletter.reports.audience import growth
    from zoneinfo import ZoneInfo

    import_csv(engine, "email,name\na@example.com,Ann\nb@example.com,Bo\n", "active", categories=CATEGORIES)
    again = import_csv(engine, "email,name\na@example.com,Anne\nb@example.com,Bo\nc@example.com,Cy\n", "active",
                       categories=CATEGORIES)
    assert (again.created, again.updated, again.unchanged) == (1, 1, 1)
    with session_scope(engine) as session:
        kinds = sorted(session.exec(select(ConsentEvent.kind)).all())
    assert kinds == ["preferences_changed", "subscribed", "subscribed", "subscribed"]
    assert growth(engine, ZoneInfo("UTC"))[-1].joined == 3


def test_a_semicolon_separated_file_is_told_what_its_separator_is(engine):
    """A spreadsheet saved with semicolons (the default in much of Europe) got only "the header row
    needs an 'email' column" (outside trial)."""
    with pytest.raises(InvalidInput, match="separated by ';', not commas.*--from csv"):
        import_csv(engine, "email;name\na@example.com;A\n", "active", categories=CATEGORIES)
    with pytest.raises(InvalidInput) as plain:
        import_csv(engine, "mail,name\na@example.com,A\n", "active", categories=CATEGORIES)
    assert "separated" not in str(plain.value)
    # Mailchimp's own export without --from: told that --from auto reads it (outside trial).
    with pytest.raises(InvalidInput, match="--from auto"):
        import_csv(engine, "Email Address,First Name\na@example.com,A\n", "active", categories=CATEGORIES)


def test_a_reader_added_at_once_is_confirmed_when_created_not_before(engine):
    """`subscribers add`, the demo and the row path's imports gave confirmed_at a few microseconds
    before created_at (outside trial): the reader seemed confirmed before they existed."""
    from newsletter.subscribers.service import UpsertResult, upsert_active

    with session_scope(engine) as session:
        reader = upsert_active(session, "new@example.com", "New", [], "import", UpsertResult())
        assert reader.confirmed_at == reader.created_at


def _wipe_readers(engine) -> None:
    from sqlalchemy import text

    with session_scope(engine) as session:
        for table in ("consent_event", "subscriber_topic", "subscriber"):
            session.execute(text(f"DELETE FROM {table}"))


@pytest.mark.parametrize("path", ["bulk", "rows", "taken"])
def test_a_readers_pause_survives_export_and_import(engine, path):
    """A reader who paused the newsletter is still paused after the list moves to another store
    (export, then import): the export carried no pause and the import refused the column. A pause
    already over imports as none; each import path (set-based, row by row, tables taken) keeps it."""
    from datetime import timedelta

    from newsletter.db import utcnow

    import_csv(engine, "email,name\npaused@example.com,P\nover@example.com,O\nplain@example.com,\n", "active",
               categories=CATEGORIES)
    until = (utcnow() + timedelta(days=20)).replace(microsecond=0)
    with session_scope(engine) as session:
        for reader in session.exec(select(Subscriber)).all():
            reader.paused_until = {"paused@example.com": until,
                                   "over@example.com": utcnow() - timedelta(days=2)}.get(reader.email)
            session.add(reader)
    exported = export(engine, "csv")
    assert next(csv.DictReader(io.StringIO(exported)))["paused_until"] == until.isoformat()
    _wipe_readers(engine)
    report = import_csv(engine, exported, "active", categories=CATEGORIES, bulk=path != "rows",
                        take_at=1 if path == "taken" else None)
    assert report.created == 3
    with session_scope(engine) as session:
        pauses = {r.email: r.paused_until for r in session.exec(select(Subscriber)).all()}
    assert pauses == {"paused@example.com": until, "over@example.com": None, "plain@example.com": None}


def test_the_consoles_export_imports_again_and_a_bad_pause_names_its_line(engine):
    """The console's export (GET /api/v1/readers/export) has an id column, which means nothing in
    another store: the import reads past it instead of refusing the file."""
    from newsletter.subscribers.exporting import csv_chunks
    from newsletter.subscribers.search import walk_readers
    from newsletter.web.console.api_readers import EXPORT_COLUMNS

    import_csv(engine, "email,name,topics\nada@example.com,Ada,Developer Tools\n", "active", categories=CATEGORIES)
    exported = "".join(csv_chunks(walk_readers(engine), EXPORT_COLUMNS))
    assert exported.startswith("id,email,")
    _wipe_readers(engine)
    assert import_csv(engine, exported, "active", categories=CATEGORIES).created == 1
    with pytest.raises(InvalidInput, match=r"line 3: paused_until: 'soon' is not a date"):
        import_csv(engine, "email,paused_until\nb@example.com,\nc@example.com,soon\n", "active",
                   categories=CATEGORIES)
    later = (datetime.now(UTC) + timedelta(days=9)).isoformat()
    import_csv(engine, f"email,status,paused_until\nleft@example.com,unsubscribed,{later}\n", "active",
               categories=CATEGORIES)
    with session_scope(engine) as session:  # only an active reader keeps a pause
        assert session.exec(select(Subscriber.paused_until).where(Subscriber.email == "left@example.com")).one() is None
    with pytest.raises(InvalidInput, match=r"line 2: paused_until: 9026-01-01 is more than 52 weeks away"):
        import_csv(engine, "email,paused_until\nb@example.com,9026-01-01\n", "active", categories=CATEGORIES)
