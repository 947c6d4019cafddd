"""Revisions from the console and the API (issue 17.1): the form, PUT and unpublish each leave a
revision with source and author; saving an unchanged form leaves none; the history page (linked
from the edit page) and GET /api/v1/comparisons/{slug}/revisions show the same diff lines."""

from __future__ import annotations

from html import unescape

from sqlmodel import select

from newsletter.content import publishing
from newsletter.content.models import ContentRevision
from newsletter.db import session_scope
from tests.console.conftest import csrf_in
from tests.console.test_comparisons_form import form_values

SLUG = "cursor-vs-windsurf"


def revisions(engine) -> list[tuple[int, str, str]]:
    with session_scope(engine) as session:
        comparison_id = publishing.find(session, SLUG).id
        return [(r.number, r.source, r.actor) for r in session.exec(
            select(ContentRevision).where(ContentRevision.comparison_id == comparison_id).order_by(ContentRevision.number))]


def test_console_and_api_changes_are_revisions_with_their_author_and_a_readable_history(console):
    assert revisions(console.engine)[-1][1] == "import"
    reviewer = console.login("reviewer")
    form = reviewer.get(f"/admin/comparisons/{SLUG}")
    assert f'href="/admin/comparisons/{SLUG}/history"' in form.text
    values = {**form_values(form.text), "csrf_token": csrf_in(form.text)}
    assert reviewer.post(f"/admin/comparisons/{SLUG}", data=values).status_code == 303
    assert len(revisions(console.engine)) == 1  # saved unchanged: no revision
    old = values["reviews-0-thesis-verdict"]
    new = "pass" if old == "ship" else "ship"
    reviewer.post(f"/admin/comparisons/{SLUG}", data={**values, "reviews-0-thesis-verdict": new})
    assert revisions(console.engine)[-1] == (2, "console", "reviewer@editors.example")

    body = console.client().get(f"/api/v1/comparisons/{SLUG}", headers=console.bearer("read")).json()
    put = {key: body[key] for key in ("slug", "title", "dek", "published", "category", "tools", "reviews")}
    put["tools"][1]["entry_price"] = "$99/month"
    answer = console.client().put(f"/api/v1/comparisons/{SLUG}", json=put, headers=console.bearer("comparisons"))
    assert answer.status_code == 200, answer.text
    assert revisions(console.engine)[-1] == (3, "api", "token-comparisons")
    console.client().post(f"/api/v1/comparisons/{SLUG}/unpublish", headers=console.bearer("all"))
    assert revisions(console.engine)[-1] == (4, "api", "token-all")

    viewer = console.login("viewer")
    page = viewer.get(f"/admin/comparisons/{SLUG}/history")
    assert page.status_code == 200
    text = unescape(page.text)
    tool_a, tool_b = body["tools"][0]["name"], body["tools"][1]["name"]
    reviewer_name = next(r["reviewer"] for r in body["reviews"] if r["tool"] == body["tools"][0]["slug"]
                         and r["lens"] == "thesis")
    assert f"Review {reviewer_name}/thesis on {tool_a}: verdict {old} → {new}" in text
    assert f"{tool_b}: entry price " in text and "→ $99/month" in text and "unpublished: (none) →" in text
    assert "Mark its facts checked today" not in text  # a viewer reads only
    history = reviewer.get(f"/admin/comparisons/{SLUG}/history")
    marked = reviewer.post(f"/admin/comparisons/{SLUG}/checked", data={"csrf_token": csrf_in(history.text)})
    assert marked.status_code == 303 and revisions(console.engine)[-1] == (5, "console", "reviewer@editors.example")

    pages, cursor = [], ""
    while True:
        answer = console.client().get(f"/api/v1/comparisons/{SLUG}/revisions?limit=2&cursor={cursor}",
                                      headers=console.bearer("read")).json()
        pages.append([item["number"] for item in answer["items"]])
        if not answer["next_cursor"]:
            break
        cursor = answer["next_cursor"]
    assert pages == [[5, 4], [3, 2], [1]]
    first = console.client().get(f"/api/v1/comparisons/{SLUG}/revisions", headers=console.bearer("read")).json()
    assert first["items"][3]["source"] == "console" and \
        f"Review {reviewer_name}/thesis on {tool_a}: verdict {old} → {new}" in first["items"][3]["changes"]
    assert first["items"][0]["snapshot"]["slug"] == SLUG
    assert console.client().get("/api/v1/comparisons/nope/revisions", headers=console.bearer("read")).status_code == 404
    bad = console.client().get(f"/api/v1/comparisons/{SLUG}/revisions?cursor=eyJuIjotMX0",
                               headers=console.bearer("read"))
    assert bad.status_code == 422 and bad.json()["error"]["fields"]["cursor"]


def test_a_slug_that_cannot_be_one_is_not_found_not_a_server_error(console):
    """A NUL byte or other non-slug from a URL never reaches the database (PostgreSQL refused it
    with an error, a 500): the history page, its API and the follow-up draft answer 404 (or 422/400 from the route's
    own limits), never 500."""
    editor = console.login("editor")
    for bad in ("%00", "a%00b", "UPPER", "x" * 300):
        answers = [editor.get(f"/admin/comparisons/{bad}/history").status_code,
                   console.client().get(f"/api/v1/comparisons/{bad}/revisions", headers=console.bearer("read")).status_code,
                   editor.get(f"/admin/followups/new?comparison={bad}").status_code]
        assert all(code in (400, 404, 422) for code in answers), (bad, answers)
