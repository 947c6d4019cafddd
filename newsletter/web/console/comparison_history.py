"""A comparison's revisions in the console (/admin/comparisons/{slug}/history, linked from its
edit page), "mark its facts checked" (a POST, reviewers and up), and the same history in the
API (GET /api/v1/comparisons/{slug}/revisions, cursor pages, `read` scope).

The diff lines are content/diff.py's, the same as `newsletter content history` prints.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from newsletter.content import publishing, revisions
from newsletter.db import session_scope
from newsletter.editors.roles import Permission, role_allows
from newsletter.web.console.api_base import Cursor, Limit_, Reading, api_router, decode_cursor, encode_cursor
from newsletter.web.console.api_comparisons import NOT_FOUND, no_such
from newsletter.web.console.comparisons_common import MAX_INT, origin_of
from newsletter.web.console.comparisons_pages import Posted, actor_of, not_found
from newsletter.web.console.deps import Console
from newsletter.web.console.schemas_comparisons import RevisionOut, RevisionPage
from newsletter.web.console.views import Reader, Reviewer, check_csrf, console_router, page

router = console_router()
api = api_router()
SlugPath = Annotated[str, Path(max_length=160, description="The comparison's slug")]
PAGE_SIZE = 50


@router.get("/comparisons/{slug}/history", response_class=HTMLResponse)
def history_page(ctx: Console, me: Reader, slug: SlugPath, before: str = "") -> HTMLResponse:
    """Newest first, PAGE_SIZE a page; `before` a revision number (the "older" link)."""
    with session_scope(ctx.engine) as session:
        comparison = publishing.find(session, slug)
        if comparison is None:
            return not_found(ctx, slug)
        assert comparison.id is not None
        number = int(before) if before.isascii() and before.isdigit() and len(before) < 11 else 0
        start = number if 0 < number <= MAX_INT else None  # a damaged link starts from the newest
        entries = revisions.entries(session, comparison.id, start, PAGE_SIZE)
        total = revisions.count(session, comparison.id)
        session.expunge(comparison)
    older = entries[-1].number if entries and entries[-1].number > 1 and len(entries) == PAGE_SIZE else None
    return page(ctx, "comparison_history.html", me=me, title=f"History of {comparison.title}",
                current="comparisons", comparison=comparison, entries=entries, total=total, older=older,
                zone=ctx.settings.site.zone, stale_days=ctx.settings.content.stale_after_days,
                can_edit=role_allows(me.editor.role, Permission.edit_comparisons))


@router.post("/comparisons/{slug}/checked", response_class=HTMLResponse)
def mark_checked(ctx: Console, me: Reviewer, slug: SlugPath, fields: Posted) -> Response:
    """Its facts were checked today: a revision (source console) and no stale-verdict warning."""
    check_csrf(ctx, me, fields.get("csrf_token", ""))
    with session_scope(ctx.engine) as session:
        try:
            publishing.mark_checked(session, slug, origin_of(actor_of(me), "console"))
        except publishing.NoSuchComparison:
            return not_found(ctx, slug)
    return RedirectResponse(f"/admin/comparisons/{slug}/history", status_code=303)


@api.get("/comparisons/{slug}/revisions", response_model=RevisionPage, responses=NOT_FOUND)
def list_revisions(ctx: Console, _actor: Reading, slug: SlugPath, cursor: Cursor = "",
                   limit: Limit_ = 50) -> Response | RevisionPage:
    """The comparison's revisions, newest first, each with its diff against the one before."""
    before = decode_cursor(cursor, "n", int) if cursor else None
    if before is not None and not 1 <= int(before) <= MAX_INT:  # type: ignore[call-overload]
        decode_cursor("", "n", int)  # the API's invalid-cursor answer
    with session_scope(ctx.engine) as session:
        comparison = publishing.find(session, slug)
        if comparison is None:
            return no_such(slug)
        assert comparison.id is not None
        found = revisions.entries(session, comparison.id, before, limit)  # type: ignore[arg-type]
    items = [RevisionOut(number=e.number, created_at=e.created_at, source=e.source, actor=e.actor,
                         changes=e.changes, snapshot=e.snapshot) for e in found]
    more = len(found) == limit and found[-1].number > 1
    return RevisionPage(items=items, next_cursor=encode_cursor({"n": found[-1].number}) if more else None)
