import json
from collections import Counter
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import func, select

from newsletter.content.importer import ImportError_, import_files, parse_file, sample_files
from newsletter.content.models import Comparison, ComparisonTool, Review, Tool, Vote
from newsletter.content.scores import community, format_percent, panel_ship, percent
from newsletter.db import session_scope
from newsletter.weeks import week_of
from newsletter.subscribers.models import Subscriber

HAIKU = "claude-haiku-open-weights-vs-hugging-face-inference-providers-v2"


def comparison_doc(slug="a-vs-b", **overrides):
    doc = {
        "slug": slug,
        "title": "Alpha vs Beta",
        "dek": "Which one should you ship with? A test pair.",
        "published": "2026-11-24T09:00:00Z",
        "tools": [
            {"slug": "alpha", "name": "Alpha", "category": "Testing", "tagline": "First",
             "description": "Alpha does things.", "entry_price": "Free"},
            {"slug": "beta", "name": "Beta", "category": "Testing", "tagline": "Second",
             "description": "Beta does other things.", "entry_price": "$5/mo"},
        ],
        "reviews": [
            {"tool": tool, "lens": lens, "reviewer": "R", "verdict": verdict, "quote": "Q."}
            for tool, verdicts in (("alpha", ["ship", "ship", "pass", "ship"]), ("beta", ["pass"] * 4))
            for lens, verdict in zip(["developer_experience", "competition", "thesis", "buyer"], verdicts)
        ],
    }
    doc.update(overrides)
    return doc


def test_sample_content_is_complete():
    comparisons = [c for path in sample_files() for c in parse_file(path)]
    assert len(comparisons) >= 6
    weeks = Counter(week_of(c.published, ZoneInfo("Europe/Berlin")) for c in comparisons)
    assert len(weeks) >= 3
    assert max(weeks.values()) >= 5  # the largest sample issue exercises Gmail's size limit
    assert len({c.category for c in comparisons}) >= 3
    for c in comparisons:
        assert len(c.tools) == 2
        lenses = Counter((r.tool, r.lens.value) for r in c.reviews)
        assert len(lenses) == 8 and set(lenses.values()) == {1}, c.slug


def test_import_derives_panel_ship_and_community(sample_engine):
    with session_scope(sample_engine) as session:
        comparison = session.exec(select(Comparison).where(Comparison.slug == HAIKU)).one()
        tools = {t.slug: t for t in session.exec(select(Tool)).all()}
        ships = panel_ship(session, [comparison.id])
        assert ships[(comparison.id, tools["claude-haiku-open-weights"].id)] == 50
        assert ships[(comparison.id, tools["hugging-face-inference-providers-v2"].id)] == 100
        votes = community(session, [comparison.id])
        assert votes.share(comparison.id, tools["claude-haiku-open-weights"].id) is None
        assert format_percent(None) == "—"
        readers = [Subscriber(email=f"r{i}@example.com") for i in range(3)]
        session.add_all(readers)
        session.flush()
        session.add(Vote(comparison_id=comparison.id, subscriber_id=readers[0].id,
                         tool_id=tools["claude-haiku-open-weights"].id))
        session.add(Vote(comparison_id=comparison.id, subscriber_id=readers[1].id,
                         tool_id=tools["hugging-face-inference-providers-v2"].id))
        session.add(Vote(comparison_id=comparison.id, subscriber_id=readers[2].id, tool_id=None))
        session.flush()
        votes = community(session, [comparison.id])
        assert votes.share(comparison.id, tools["claude-haiku-open-weights"].id) == 33
        assert votes.share(comparison.id, tools["hugging-face-inference-providers-v2"].id) == 33


def test_percent_rounds_half_up():
    assert percent(1, 8) == 13
    assert percent(1, 3) == 33
    assert percent(2, 3) == 67
    assert percent(0, 0) is None


def test_reimport_updates_instead_of_duplicating(engine, tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps(comparison_doc()))
    assert import_files(engine, [path])[0].created == 1
    changed = comparison_doc(title="Alpha vs Beta, revisited")
    changed["reviews"][3]["verdict"] = "pass"
    path.write_text(json.dumps({"comparison": [changed]}))
    result = import_files(engine, [path])[0]
    assert (result.created, result.updated) == (0, 1)
    with session_scope(engine) as session:
        assert session.exec(select(func.count()).select_from(Comparison)).one() == 1
        assert session.exec(select(func.count()).select_from(Review)).one() == 8
        assert session.exec(select(func.count()).select_from(ComparisonTool)).one() == 2
        comparison = session.exec(select(Comparison)).one()
        assert comparison.title == "Alpha vs Beta, revisited"
        alpha = session.exec(select(Tool).where(Tool.slug == "alpha")).one()
        assert panel_ship(session, [comparison.id])[(comparison.id, alpha.id)] == 50


def test_toml_and_date_only_published(engine, tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('''
[[comparison]]
slug = "x-vs-y"
title = "X vs Y"
dek = "Dek."
published = 2026-11-20
[[comparison.tools]]
slug = "x"
name = "X"
category = "Cat"
tagline = "t"
description = "d"
entry_price = "Free"
[[comparison.tools]]
slug = "y"
name = "Y"
category = "Cat"
tagline = "t"
description = "d"
entry_price = "Free"
''')
    import_files(engine, [path])
    with session_scope(engine) as session:
        comparison = session.exec(select(Comparison)).one()
        assert comparison.published_at == datetime(2026, 11, 20, tzinfo=UTC)
        assert comparison.category == "Cat"


@pytest.mark.parametrize(
    "mutate, field, reason",
    [
        (lambda d: d.pop("title"), "comparison.1.title", "Field required"),
        (lambda d: d["tools"][1].update(name=""), "comparison.1.tools.1.name", "must not be empty"),
        (lambda d: d["reviews"][0].update(lens="vibes"), "comparison.1.reviews.0.lens", "developer_experience"),
        (lambda d: d["reviews"][0].update(verdict="maybe"), "comparison.1.reviews.0.verdict", "ship"),
        (lambda d: d.update(published="2026-11-24T09:00:00"), "comparison.1.published", "time zone"),
        (lambda d: d.update(slug="Bad Slug"), "comparison.1.slug", "lowercase"),
        (lambda d: d.update(title="A\r\nBcc: x@y"), "comparison.1.title", "control character"),
        (lambda d: d.update(dek="Breaks MJML\ufffe"), "comparison.1.dek", "noncharacter"),
        (lambda d: d["reviews"][0].update(tool="gamma"), "reviews.0.tool", "not one of"),
        (lambda d: d.update(colour="red"), "comparison.1.colour", "Extra inputs"),
    ],
)
def test_bad_files_name_file_field_and_reason_and_import_nothing(engine, tmp_path, mutate, field, reason):
    good = comparison_doc("good-one")
    bad = comparison_doc("bad-one")
    mutate(bad)
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps([good, bad]))
    with pytest.raises(ImportError_) as caught:
        import_files(engine, [path])
    message = str(caught.value)
    assert str(path) in message and field in message and reason in message, message
    with session_scope(engine) as session:
        assert session.exec(select(func.count()).select_from(Comparison)).one() == 0


def test_unreadable_and_unknown_files(engine, tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ImportError_, match="broken.json: not valid JSON"):
        import_files(engine, [broken])
    other = tmp_path / "c.yaml"
    other.write_text("x: 1")
    with pytest.raises(ImportError_, match="unknown file type"):
        import_files(engine, [other])
    with pytest.raises(ImportError_, match="cannot read"):
        import_files(engine, [tmp_path / "missing.toml"])
