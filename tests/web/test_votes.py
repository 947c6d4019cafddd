import re
from datetime import UTC, datetime

import pytest
from sqlmodel import select

from newsletter.content.models import Comparison, ComparisonTool, Tool, Vote
from newsletter.db import session_scope
from newsletter.delivery.sender import deliver, start_send
from newsletter.delivery.transports import make_transport
from newsletter.issues.drafting import draft_issue
from newsletter.issues.render import compile_issue
from newsletter.issues.view import build_issue_view
from newsletter.subscribers.models import Subscriber
from newsletter.tokens import Purpose
from tests.conftest import TEST_SECRET, link_token

HAIKU = "claude-haiku-open-weights-vs-hugging-face-inference-providers-v2"


def reader(live, email="voter@example.com", status="active"):
    with session_scope(live.engine) as session:
        row = Subscriber(email=email, status=status, confirmed_at=datetime.now(UTC))
        session.add(row)
        session.flush()
        return row.id


def votes(live):
    with session_scope(live.engine) as session:
        return [(v.subscriber_id, v.tool_id) for v in session.exec(select(Vote)).all()]


def test_the_sent_issue_carries_personal_vote_links_that_count_only_on_post(live):
    voter = reader(live)
    issue = draft_issue(live.engine, live.settings, "2026-W48").issue
    start_send(live.engine, issue.id)
    deliver(live.engine, live.settings, make_transport(live.settings), TEST_SECRET, issue.id)
    eml = next(live.settings.mail.file.dir.glob("i*.eml")).read_bytes().decode()
    from email import message_from_string, policy

    text = message_from_string(eml, policy=policy.default).get_body(("plain",)).get_content()
    links = re.findall(rf"(http://\S+/vote/\S+/{HAIKU}/[a-z0-9-]+)", text)
    assert [link.rsplit("/", 1)[1] for link in links] == [*tool_slugs(live), "pass"]  # tools by slug
    ship_b = links[1]
    page = live.http.get(ship_b)
    assert page.status_code == 200 and "Ship Hugging Face Inference Providers v2" in page.text
    assert votes(live) == []  # GET never counts
    assert live.http.post(ship_b).status_code == 200
    assert live.http.post(ship_b).status_code == 200  # a double click is still one vote
    assert len(votes(live)) == 1
    live.http.post(next(link for link in links if link.endswith("/pass")))
    assert votes(live) == [(voter, None)]  # changed, not added


def tool_slugs(live) -> list[str]:
    with session_scope(live.engine) as session:
        return list(session.exec(select(Tool.slug).join(ComparisonTool, ComparisonTool.tool_id == Tool.id)
                                 .join(Comparison, Comparison.id == ComparisonTool.comparison_id)
                                 .where(Comparison.slug == HAIKU).order_by(ComparisonTool.position)))


def send_issue(live):
    """Draft this week's issue (it carries HAIKU) and deliver it to every active reader."""
    issue = draft_issue(live.engine, live.settings, "2026-W48").issue
    start_send(live.engine, issue.id, settings=live.settings)
    deliver(live.engine, live.settings, make_transport(live.settings), TEST_SECRET, issue.id)
    return issue


def test_votes_feed_community_percent_in_the_next_rendering(live):
    voters = [reader(live, f"v{n}@example.com") for n in range(3)]
    issue = send_issue(live)
    first, second = tool_slugs(live)
    for voter, choice in zip(voters, [first, second, second]):
        token = link_token(live.engine, Purpose.vote, voter)
        assert live.http.post(f"{live.url}/vote/{token}/{HAIKU}/{choice}").status_code == 200
    with session_scope(live.engine) as session:
        view = build_issue_view(session, live.settings, issue)
    haiku = next(c for c in view.comparisons if c.slug == HAIKU)
    assert [t.community for t in haiku.tools] == [33, 67] and haiku.community_votes == 3
    # Below [content] community_min_votes (5) a reader sees the count, not "67%" of three votes.
    assert [t.community_text for t in haiku.tools] == ["3 votes so far"] * 2 and not haiku.community_shown
    others = [c for c in view.comparisons if c.slug != HAIKU]
    assert all(t.community_text == "no votes yet" for c in others for t in c.tools)
    html = compile_issue(view).html.fill({"email": "x@example.com", "unsubscribe_url": "u", "preferences_url": "p",
                                          "vote_token": "t"})
    assert "3 votes so far" in html and "67%" not in html
    page = live.http.get(f"{live.url}/compare/{HAIKU}")  # below [content] community_min_votes (5): a count
    assert page.text.count("3 votes so far") == 2 and "67%" not in page.text


def test_a_vote_counts_only_from_a_reader_who_was_sent_the_comparison(live):
    receiver = reader(live, "got-it@example.com")
    send_issue(live)
    latecomer = reader(live, "joined-later@example.com")  # never sent the issue
    first = tool_slugs(live)[0]
    for voter, status in ((latecomer, 400), (receiver, 200)):
        token = link_token(live.engine, Purpose.vote, voter)
        assert live.http.get(f"{live.url}/vote/{token}/{HAIKU}/{first}").status_code == status
        assert live.http.post(f"{live.url}/vote/{token}/{HAIKU}/{first}").status_code == status
    assert [voter for voter, _tool in votes(live)] == [receiver]


def test_reordering_the_tools_never_moves_a_delivered_vote(live):
    voter = reader(live)
    send_issue(live)
    first = tool_slugs(live)[0]
    with session_scope(live.engine) as session:  # the editor swaps the two tools' positions
        links = list(session.exec(select(ComparisonTool).join(Comparison, Comparison.id == ComparisonTool.comparison_id)
                                  .where(Comparison.slug == HAIKU).order_by(ComparisonTool.position)))
        positions = [link.position for link in links]
        links[0].position, links[1].position = -1, positions[0]
        session.flush()
        links[0].position = positions[1]
    assert tool_slugs(live)[1] == first
    token = link_token(live.engine, Purpose.vote, voter)
    page = live.http.get(f"{live.url}/vote/{token}/{HAIKU}/{first}")
    assert live.http.post(f"{live.url}/vote/{token}/{HAIKU}/{first}").status_code == 200
    with session_scope(live.engine) as session:
        chosen = session.exec(select(Tool).where(Tool.id == votes(live)[0][1])).one()
    assert chosen.slug == first and f"Ship {chosen.name}" in page.text


@pytest.mark.parametrize("case", ["wrong-purpose", "bad-choice", "unknown-comparison", "unsubscribed"])
def test_bad_vote_links_count_nothing(live, case):
    voter = reader(live)
    send_issue(live)  # the reader got the comparison: only the case itself can refuse the vote
    if case == "unsubscribed":
        with session_scope(live.engine) as session:
            session.get(Subscriber, voter).status = "unsubscribed"
    purpose = Purpose.unsubscribe if case == "wrong-purpose" else Purpose.vote
    token = link_token(live.engine, purpose, voter)
    slug = "no-such-comparison" if case == "unknown-comparison" else HAIKU
    choice = "z" if case == "bad-choice" else "a"
    url = f"{live.url}/vote/{token}/{slug}/{choice}"
    assert live.http.get(url).status_code == 400
    assert live.http.post(url).status_code == 400
    assert votes(live) == []
    with session_scope(live.engine) as session:
        assert session.exec(select(Comparison).where(Comparison.slug == HAIKU)).one()
    good = url.replace(f"/{slug}/{choice}", f"/{HAIKU}/a").replace(token, link_token(live.engine, Purpose.vote, voter))
    assert live.http.post(good).status_code == (400 if case == "unsubscribed" else 200)  # the control
