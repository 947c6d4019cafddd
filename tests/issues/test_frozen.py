"""A sent issue is a record: whatever is edited after it started sending (reviews flipped,
taglines rewritten, files re-imported, votes cast, in any order), its web view, its feed entry
and the view every worker renders stay exactly as readers got them; a note names the verdicts
that changed; and every change to the content leaves its revision."""

from __future__ import annotations

import re
from itertools import count

from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st
from sqlmodel import select
from starlette.testclient import TestClient

from newsletter.content import publishing, revisions
from newsletter.content.importer import import_files, sample_files, upsert_comparison
from newsletter.content.models import Comparison, ComparisonTool, Review, Tool, Vote
from newsletter.content.revisions import Origin
from newsletter.content.schema import ComparisonIn
from newsletter.content.snapshot import snapshot
from newsletter.db import session_scope
from newsletter.delivery.sender import start_send
from newsletter.issues.archive import entry_views, sent_issues
from newsletter.issues.frozen import changed_since, freeze, issue_view
from newsletter.issues.models import Issue, IssueItem, IssueRecord
from newsletter.subscribers.models import Subscriber
from newsletter.text import has_control_chars
from newsletter.web.app import create_app
from tests.conftest import TEST_SECRET

NOTE = re.compile(r'<div role="note".*?</div>\n?', re.S)
WEEKS = count(1)


def new_issue(engine, settings, send: bool = True) -> int:
    """An issue of the first two comparisons, sent (and so frozen) now."""
    with session_scope(engine) as session:
        ids = list(session.exec(select(Comparison.id).order_by(Comparison.id)))[:2]
        issue = Issue(week=f"2031-W{next(WEEKS) % 52 + 1:02d}", subject="Frozen verdicts")
        session.add(issue)
        session.flush()
        for position, comparison_id in enumerate(ids):
            session.add(IssueItem(issue_id=issue.id, comparison_id=comparison_id, position=position))
        issue_id = issue.id
    if send:
        assert start_send(engine, issue_id, settings=settings).started
    return issue_id


def flip_every_review(engine) -> None:
    with session_scope(engine) as session:
        for review in session.exec(select(Review)):
            review.verdict = "pass" if review.verdict == "ship" else "ship"


def web_view(client, issue_id: int) -> str:
    answer = client.get(f"/issues/{issue_id}")
    assert answer.status_code == 200
    return answer.text


def test_the_web_view_stays_as_sent_and_notes_the_change(sample_engine, settings):
    client = TestClient(create_app(settings, engine=sample_engine, secret=TEST_SECRET, with_sender=False),
                        base_url="https://verdicts.example")
    issue_id = new_issue(sample_engine, settings)
    before = web_view(client, issue_id)
    assert 'role="note"' not in before
    flip_every_review(sample_engine)
    after = web_view(client, issue_id)
    assert NOTE.sub("", after) == before
    assert "Since this issue went out, some verdicts have changed." in after
    with session_scope(sample_engine) as session:
        changed = changed_since(session, settings, session.get(Issue, issue_id))
        titles = [comparison.title for comparison in issue_view(session, settings, session.get(Issue, issue_id))
                  .comparisons]
    assert [item.title for item in changed] == titles and all(item.was != item.now for item in changed)


def test_a_worker_that_joins_later_gets_the_first_record(sample_engine, settings):
    issue_id = new_issue(sample_engine, settings, send=False)
    with session_scope(sample_engine) as session:
        first = freeze(session, settings, session.get(Issue, issue_id))
    flip_every_review(sample_engine)
    with session_scope(sample_engine) as session:
        again = freeze(session, settings, session.get(Issue, issue_id))
        assert session.exec(select(IssueRecord).where(IssueRecord.issue_id == issue_id)).one()
    assert again == first


Edit = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 30)),
    # any tagline the import schema admits (no control characters or noncharacters)
    st.tuples(st.just("tagline"), st.integers(0, 30),
              st.text(min_size=1, max_size=40).filter(lambda t: t.strip() and not has_control_chars(t))),
    st.tuples(st.just("vote"), st.integers(0, 30), st.booleans()),
    st.tuples(st.just("send"), st.just(0)),
    st.tuples(st.just("import"), st.just(0)),  # the sample files again: undoes edits to them
)


def edit_through_the_writers(session, comparison: Comparison, change, origin: Origin) -> None:
    """Change a comparison as an editor would: its import shape, edited, saved back."""
    data = publishing.as_import(session, comparison)
    change(data)
    upsert_comparison(session, ComparisonIn.model_validate(data), origin)


def apply(engine, settings, edit, voters=count()) -> None:
    """One edit, made the way the product makes it (console form, API, import), so each leaves
    its revision; votes are not content and leave none."""
    kind, n = edit[0], edit[1]
    if kind == "send":
        new_issue(engine, settings)
        return
    if kind == "import":
        import_files(engine, sample_files(), Origin("import", "property"))
        return
    with session_scope(engine) as session:
        if kind == "flip":
            reviews = list(session.exec(select(Review).order_by(Review.id)))
            review = reviews[n % len(reviews)]
            tool_slug = session.get(Tool, review.tool_id).slug

            def flip(data):
                for item in data["reviews"]:
                    if (item["tool"], item["lens"]) == (tool_slug, review.lens):
                        item["verdict"] = "pass" if item["verdict"] == "ship" else "ship"
            edit_through_the_writers(session, session.get(Comparison, review.comparison_id), flip,
                                     Origin("console", "editor@verdicts.example"))
        elif kind == "tagline":
            links = list(session.exec(select(ComparisonTool).order_by(ComparisonTool.tool_id, ComparisonTool.comparison_id)))
            link = links[n % len(links)]

            def retag(data):
                data["tools"][link.position]["tagline"] = edit[2]
            edit_through_the_writers(session, session.get(Comparison, link.comparison_id), retag,
                                     Origin("api", "token-site"))
        else:
            comparison_id = list(session.exec(select(Comparison.id).order_by(Comparison.id)))[n % 2]
            reader = Subscriber(email=f"voter{next(voters)}@example.com", status="active")
            session.add(reader)
            session.flush()
            tool_id = session.exec(select(Tool.id).order_by(Tool.id)).first() if edit[2] else None  # or a pass
            session.add(Vote(comparison_id=comparison_id, subscriber_id=reader.id, tool_id=tool_id))


def every_change_has_its_revision(engine) -> None:
    """Each comparison's latest revision is exactly what the store holds now."""
    with session_scope(engine) as session:
        for comparison in session.exec(select(Comparison)):
            latest = revisions.latest(session, comparison.id)
            assert latest is not None and latest.snapshot == snapshot(session, comparison), comparison.slug


@hypothesis_settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(Edit, min_size=1, max_size=8))
def test_any_history_of_edits_leaves_every_sent_issue_as_frozen(sample_engine, settings, edits):
    client = TestClient(create_app(settings, engine=sample_engine, secret=TEST_SECRET, with_sender=False),
                        base_url="https://verdicts.example")
    first = new_issue(sample_engine, settings)
    seen = {first: NOTE.sub("", web_view(client, first))}
    for edit in edits:
        apply(sample_engine, settings, edit)
        every_change_has_its_revision(sample_engine)
        with session_scope(sample_engine) as session:
            ids = [issue_id for (issue_id,) in session.execute(select(IssueRecord.issue_id))]
        for issue_id in ids:
            view = NOTE.sub("", web_view(client, issue_id))  # one read per issue and edit
            assert view == seen.setdefault(issue_id, view)
    with session_scope(sample_engine) as session:  # the feeds read the same records
        entries = sent_issues(session, settings, 100)
        views = {entry.id: view for entry, view in zip(entries, entry_views(session, settings, entries))}
        for issue_id in seen:
            assert views[issue_id] == issue_view(session, settings, session.get(Issue, issue_id))
