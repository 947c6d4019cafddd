"""The streamed export (subscribers/exporting.py) pages through readers without losing or
repeating one, and writes exactly what the whole-list export wrote (a JSON array indented by two)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import Session, delete, select

from newsletter.subscribers import exporting
from newsletter.subscribers.models import Subscriber, SubscriberTopic
from newsletter.subscribers.importing import import_csv


def test_pages_and_formats(engine, monkeypatch):
    lines = "".join(f"r{i}@example.com,=Reader {i},Developer Tools\n" for i in range(7))
    import_csv(engine, "email,name,topics\n" + lines, categories=["Developer Tools"])
    whole = list(exporting.export_rows(engine))
    assert [row["email"] for row in exporting.export_rows(engine, page=2)] == [row["email"] for row in whole]
    assert len(whole) == 7 and whole[0]["topics"] == "Developer Tools"
    monkeypatch.setattr(exporting, "FLUSH", 10)  # many chunks
    assert "".join(exporting.export_chunks(engine, "json")) == json.dumps(whole, indent=2) + "\n"
    csv_text = "".join(exporting.export_chunks(engine, "csv"))
    assert csv_text.splitlines()[1].startswith("r0@example.com,'=Reader 0,active,Developer Tools,")
    assert len(csv_text.splitlines()) == 8


def test_an_empty_list_is_an_empty_array(engine):
    assert "".join(exporting.export_chunks(engine, "json")) == "[]\n"


# Names as service.clean_name lets them in: any character but control characters.
NAMES = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=30)
FORMULA = st.sampled_from(["=", "+", "-", "@", "", "'", '"', ","])
MOMENTS = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(readers=st.lists(st.tuples(FORMULA, NAMES, MOMENTS, st.none() | MOMENTS, st.booleans()), min_size=1,
                        max_size=12))
def test_the_fast_layout_writes_what_the_general_writers_write(engine, readers):
    """The CLI's export lays CSV rows out a page at a time and fills JSON elements from a fixed
    layout: the bytes must be what csv.DictWriter with the formula check on every cell and
    json.dumps(indent=2) write, for any name a reader can have (quotes, commas, formula starts,
    characters outside the BMP) and any moment (with and without microseconds), and a
    spreadsheet reading the CSV back sees each name, a formula start quoted."""
    with Session(engine) as session:
        session.execute(delete(SubscriberTopic))
        session.execute(delete(Subscriber))
        for i, (start, name, created, confirmed, topic) in enumerate(readers):
            session.add(Subscriber(email=f"{start}r{i}@example.com", name=start + name, status="active",
                                   created_at=created.replace(tzinfo=UTC),
                                   confirmed_at=confirmed and confirmed.replace(tzinfo=UTC)))
        session.flush()
        for subscriber in session.exec(select(Subscriber)):
            if subscriber.id % 2:
                session.add(SubscriberTopic(subscriber_id=subscriber.id, category="-Developer Tools"))
                session.add(SubscriberTopic(subscriber_id=subscriber.id, category="AI"))
        session.commit()
    rows = list(exporting.export_rows(engine, page=5))
    assert len(rows) == len(readers)
    assert "".join(exporting.export_chunks(engine, "json")) == json.dumps(rows, indent=2) + "\n"
    assert "".join(exporting.export_chunks(engine, "csv")) == "".join(exporting.csv_chunks(iter(rows)))
    parsed = list(csv.DictReader(io.StringIO("".join(exporting.export_chunks(engine, "csv")), newline="")))
    assert [row["name"] for row in parsed] == [
        ("'" if start + name and (start + name)[0] in "=+-@" else "") + start + name
        for start, name, *_ in readers]
