"""The streamed export (subscribers/exporting.py) pages through readers without losing or
repeating one, and writes exactly what the whole-list export wrote (a JSON array indented by two)."""

from __future__ import annotations

import json

from newsletter.subscribers import exporting
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
