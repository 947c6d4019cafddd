"""GET /community/{slug}.json, the readers' verdict for the publication's site: votes per tool
slug, a percentage only from the configured minimum of votes, CORS for any origin."""

from __future__ import annotations

import pytest
from sqlmodel import select
from starlette.testclient import TestClient

from newsletter.content.models import Comparison, ComparisonTool, Tool, Vote
from newsletter.db import session_scope
from newsletter.subscribers.models import Subscriber
from newsletter.web.app import create_app
from tests.conftest import TEST_SECRET


@pytest.fixture
def client(sample_engine, settings):
    app = create_app(settings, engine=sample_engine, secret=TEST_SECRET, with_sender=False)
    return TestClient(app, base_url="https://verdicts.example")


def cast(engine, picks: list[int | None]) -> tuple[str, list[str]]:
    """One reader per pick (a tool position, or None for "pass on both") on the first comparison."""
    with session_scope(engine) as session:
        comparison = session.exec(select(Comparison).order_by(Comparison.id)).first()
        tools = session.exec(select(Tool).join(ComparisonTool, ComparisonTool.tool_id == Tool.id)
                             .where(ComparisonTool.comparison_id == comparison.id)
                             .order_by(ComparisonTool.position)).all()
        for n, pick in enumerate(picks):
            reader = Subscriber(email=f"voter{n}@example.com", status="active")
            session.add(reader)
            session.flush()
            session.add(Vote(comparison_id=comparison.id, subscriber_id=reader.id,
                             tool_id=None if pick is None else tools[pick].id))
        return comparison.slug, [tool.slug for tool in tools]


def test_below_the_minimum_the_votes_show_but_no_percentage(client, sample_engine):
    slug, tools = cast(sample_engine, [0, 0, 1])
    answer = client.get(f"/community/{slug}.json", headers={"Origin": "https://publication.example"})
    assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] == "*"
    body = answer.json()
    assert body["votes"] == 3 and body["min_votes"] == 5
    assert body["tools"] == {tools[0]: {"votes": 2, "percent": None}, tools[1]: {"votes": 1, "percent": None}}


def test_from_the_minimum_each_tool_has_its_share(client, sample_engine):
    slug, tools = cast(sample_engine, [0, 0, 0, 1, None, 1, 0, 0])
    body = client.get(f"/community/{slug}.json").json()
    assert body["votes"] == 8
    assert body["tools"][tools[0]] == {"votes": 5, "percent": 63}  # 5 of 8, rounded half up
    assert body["tools"][tools[1]] == {"votes": 2, "percent": 25}  # a pass counts in the total only


def test_no_votes_and_unknown_comparisons(client, sample_engine):
    slug, tools = cast(sample_engine, [])
    assert client.get(f"/community/{slug}.json").json()["tools"] == {t: {"votes": 0, "percent": None} for t in tools}
    missing = client.get("/community/no-such-thing.json")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert client.get("/community/a%00b.json").status_code == 404  # a NUL reached PostgreSQL as a 500
