"""Unpublishing: the comparison leaves the public page and every new issue, issues already sent
keep it, republishing brings it back; both are audited. And the API's read side: one
comparison in the import schema with its figures, and the Community % for the site."""

from __future__ import annotations

from sqlalchemy import select

from newsletter.content.votes import record_vote
from newsletter.content.models import Comparison, ComparisonTool
from newsletter.db import session_scope
from newsletter.delivery.sender import start_send
from newsletter.editors.models import AuditEntry
from newsletter.errors import UserError
from newsletter.issues import editing
from newsletter.issues.drafting import draft_issue
from newsletter.issues.models import IssueItem
from newsletter.issues.selection import select_for_week
from newsletter.subscribers.models import Subscriber
from tests.console.conftest import csrf_in

W48 = "groqcloud-vs-together-ai"  # published in 2026-W48
W47 = "midjourney-vs-ideogram"    # published in 2026-W47


def selected(console, week: str) -> list[str]:
    with session_scope(console.engine) as session:
        return [c.slug for c in select_for_week(session, week, console.settings.site.zone, 10)]


def click(client, slug: str, action: str):
    token = csrf_in(client.get(f"/admin/comparisons/{slug}").text)
    return client.post(f"/admin/comparisons/{slug}/{action}", data={"csrf_token": token})


def test_unpublished_leaves_the_page_and_the_selection_and_comes_back(console):
    reviewer, public = console.login("reviewer"), console.client()
    assert W48 in selected(console, "2026-W48") and public.get(f"/compare/{W48}").status_code == 200
    answer = click(reviewer, W48, "unpublish")
    assert answer.status_code == 303 and answer.headers["location"] == f"/admin/comparisons/{W48}"
    assert W48 not in selected(console, "2026-W48") and selected(console, "2026-W48")
    assert public.get(f"/compare/{W48}").status_code == 404
    issue = draft_issue(console.engine, console.settings, "2026-W48").issue
    with session_scope(console.engine) as session:
        items = session.execute(select(Comparison.slug).join(IssueItem, IssueItem.comparison_id == Comparison.id)
                                .where(IssueItem.issue_id == issue.id)).scalars().all()
    assert items and W48 not in items
    try:
        editing.add(console.engine, issue.id, W48)
        raise AssertionError("an unpublished comparison was added to an issue")
    except UserError as exc:
        assert "unpublished" in str(exc)
    page = reviewer.get(f"/admin/comparisons/{W48}").text
    assert "unpublished" in page and "Republish this comparison" in page
    assert "unpublished" in reviewer.get("/admin/comparisons", params={"status": "unpublished"}).text
    assert click(reviewer, W48, "publish").status_code == 303
    assert W48 in selected(console, "2026-W48") and public.get(f"/compare/{W48}").status_code == 200
    with session_scope(console.engine) as session:
        entries = session.execute(select(AuditEntry).where(AuditEntry.target == f"comparison:{W48}")
                                  .order_by(AuditEntry.id)).scalars().all()
    assert [e.action for e in entries] == ["comparison.unpublish", "comparison.publish"]
    assert entries[0].before["unpublished_at"] is None and entries[0].after["unpublished_at"]
    assert entries[0].actor == "editor:reviewer@editors.example"


def test_an_issue_already_sent_keeps_what_it_carried(console):
    issue = draft_issue(console.engine, console.settings, "2026-W47").issue
    start_send(console.engine, issue.id)
    reviewer = console.login("reviewer")
    assert click(reviewer, W47, "unpublish").status_code == 303
    with session_scope(console.engine) as session:
        comparison = session.execute(select(Comparison).where(Comparison.slug == W47)).scalar_one()
        kept = session.execute(select(IssueItem).where(IssueItem.issue_id == issue.id,
                                                       IssueItem.comparison_id == comparison.id)).first()
    assert kept is not None and comparison.unpublished_at is not None
    web_view = console.client().get(f"/issues/{issue.id}")
    assert web_view.status_code == 200 and "Midjourney" in web_view.text
    detail = console.client().get(f"/api/v1/comparisons/{W47}", headers=console.bearer("read")).json()
    assert detail["is_published"] is False and detail["issues"] == [{"id": issue.id, "week": "2026-W47",
                                                                     "state": "sending"}]


def test_the_api_unpublishes_and_republishes_idempotently_with_the_comparisons_scope(console):
    client, headers = console.client(), console.bearer("comparisons")
    first = client.post(f"/api/v1/comparisons/{W48}/unpublish", headers=headers)
    again = client.post(f"/api/v1/comparisons/{W48}/unpublish", headers=headers)
    assert first.status_code == again.status_code == 200
    assert first.json()["changed"] is True and again.json()["changed"] is False
    assert first.json()["is_published"] is False and first.json()["unpublished_at"]
    assert client.get(f"/compare/{W48}").status_code == 404
    listed = client.get("/api/v1/comparisons", params={"status": "unpublished"}, headers=console.bearer("read"))
    assert [item["slug"] for item in listed.json()["items"]] == [W48]
    back = client.post(f"/api/v1/comparisons/{W48}/publish", headers=console.bearer("all"))
    assert back.json() == {"slug": W48, "is_published": True, "unpublished_at": None, "changed": True}
    with session_scope(console.engine) as session:
        actors = session.execute(select(AuditEntry.actor, AuditEntry.action).where(
            AuditEntry.target == f"comparison:{W48}").order_by(AuditEntry.id)).all()
    assert [tuple(a) for a in actors] == [("token:token-comparisons", "comparison.unpublish"),
                                          ("token:token-all", "comparison.publish")]
    missing = client.post("/api/v1/comparisons/no-such/unpublish", headers=headers)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_a_put_keeps_an_unpublished_comparison_unpublished(console):
    client = console.client()
    client.post(f"/api/v1/comparisons/{W48}/unpublish", headers=console.bearer("comparisons"))
    body = client.get(f"/api/v1/comparisons/{W48}", headers=console.bearer("read")).json()
    put = {key: body[key] for key in ("slug", "title", "dek", "published", "category", "tools", "reviews")}
    put["title"] = "GroqCloud vs Together AI, updated"
    answer = client.put(f"/api/v1/comparisons/{W48}", json=put, headers=console.bearer("comparisons"))
    assert answer.status_code == 200, answer.text
    after = client.get(f"/api/v1/comparisons/{W48}", headers=console.bearer("read")).json()
    assert after["title"] == put["title"] and after["is_published"] is False
    assert {k: after[k] for k in ("tools", "reviews", "dek")} == {k: body[k] for k in ("tools", "reviews", "dek")}


def test_community_counts_and_percentages_for_the_site(console):
    with session_scope(console.engine) as session:
        comparison = session.execute(select(Comparison).where(Comparison.slug == W48)).scalar_one()
        tools = session.execute(select(ComparisonTool.tool_id).where(ComparisonTool.comparison_id == comparison.id)
                                .order_by(ComparisonTool.position)).scalars().all()
        readers = [Subscriber(email=f"v{i}@example.com", name="", status="active") for i in range(8)]
        session.add_all(readers)
        session.flush()
        for reader, tool in zip(readers, [tools[0]] * 5 + [tools[1]] * 2 + [None]):
            record_vote(session, comparison.id, reader.id, tool)
    client = console.client()
    empty = client.get("/api/v1/comparisons/cursor-vs-windsurf/community", headers=console.bearer("read")).json()
    assert empty["votes_total"] == 0 and all(t["community_percent"] is None for t in empty["tools"])
    answer = client.get(f"/api/v1/comparisons/{W48}/community", headers=console.bearer("read"))
    assert answer.status_code == 200
    body = answer.json()
    assert body["votes_total"] == 8 and body["votes_pass"] == 1
    assert [(t["votes"], t["community_percent"]) for t in body["tools"]] == [(5, 63), (2, 25)]  # 62.5 rounds up
    assert all(isinstance(t["panel_ship_percent"], int) for t in body["tools"])
    page = console.login("viewer").get(f"/admin/comparisons/{W48}").text
    assert "Reader votes: 8 (1 passed on every tool)" in page and "63%" in page
    assert client.get("/api/v1/comparisons/nope/community", headers=console.bearer("read")).status_code == 404
    assert client.get("/api/v1/comparisons/nope", headers=console.bearer("read")).json()["error"]["code"] == \
        "not_found"
