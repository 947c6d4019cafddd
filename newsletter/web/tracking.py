"""Open and click tracking, off by default (`[tracking] opens`, `clicks`).

Opens: a per-recipient 1x1 GIF. Clicks: `/c/{token}/{issue}/{n}` redirects to
the n-th comparison link of that issue, looked up in the database, so the
redirect can only ever lead to the issue's own links (no open redirect).
Both record an event row, unique per (issue, subscriber, kind, link), which
the stats count; they never change a subscriber's state.
"""

from __future__ import annotations

import base64
from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session

from newsletter import tallies
from newsletter.db import insert_for, session_scope, utcnow
from newsletter.issues.models import Issue
from newsletter.issues.states import IssueState
from newsletter.issues.frozen import issue_view
from newsletter.feedback.models import TrackingEvent
from newsletter.subscribers.service import link_holder
from newsletter.tokens import InvalidToken, LinkSubject, Purpose, is_issue_copy, read_token
from newsletter.web.deps import Ctx, WebContext

# Ids beyond a 32-bit integer are no rows of ours (and an error on PostgreSQL): 422 before any query.
IssueId = Annotated[int, Path(ge=1, le=2**31 - 1)]
LinkIndex = Annotated[int, Path(ge=0, le=10_000)]
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


def record(session: Session, issue_id: int, subscriber_id: int, kind: str, link: int = -1) -> None:
    """One open or click, once per (issue, reader, kind, link); the issue's opens or clicks counter
    goes up with a reader's first of the kind, in the same transaction (newsletter/tallies.py)."""
    insert = insert_for(session, TrackingEvent.__table__)
    table = TrackingEvent.__table__
    inserted = session.execute(insert.values(issue_id=issue_id, subscriber_id=subscriber_id, kind=kind, link=link,
                                             created_at=utcnow()).on_conflict_do_nothing()
                               .returning(table.c.id)).scalar()
    if inserted is not None:
        tallies.count_first_tracking(session, issue_id, subscriber_id, kind, link)


router = APIRouter()
_SHOWN = (IssueState.sending.value, IssueState.sent.value)
_TEST_COPY_SHOWN = (IssueState.draft.value, IssueState.scheduled.value, *_SHOWN)


def _subject(ctx: WebContext, token: str) -> LinkSubject | None:
    try:
        return read_token(ctx.secret, Purpose.track, token)
    except InvalidToken:
        return None


def tracked_reader(ctx: WebContext, token: str) -> int | None:
    """The reader a tracking token names, only while that very reader exists (token_key)."""
    subject = _subject(ctx, token)
    if subject is None:
        return None
    with session_scope(ctx.engine) as session:
        return subject.subscriber_id if link_holder(session, subject) is not None else None


@router.get("/o/{token}/{issue_id}.gif")
def opened(token: str, issue_id: IssueId, ctx: Ctx) -> Response:
    subscriber_id = tracked_reader(ctx, token)
    if subscriber_id is not None and ctx.settings.tracking.opens:
        with session_scope(ctx.engine) as session:
            if session.get(Issue, issue_id) is not None:
                record(session, issue_id, subscriber_id, "open")
    return Response(PIXEL, media_type="image/gif", headers={"Cache-Control": "no-store"})


@router.get("/c/{token}/{issue_id}/{index}")
def clicked(token: str, issue_id: IssueId, index: LinkIndex, ctx: Ctx) -> Response:
    """Readers' links work once the issue goes out; a test copy's (tokens.TEST_READER) of this very
    issue work before that too, unless it was cancelled, and count nothing."""
    subject = _subject(ctx, token)
    shown = _TEST_COPY_SHOWN if subject is not None and is_issue_copy(ctx.secret, subject, issue_id) else _SHOWN
    with session_scope(ctx.engine) as session:
        issue = session.get(Issue, issue_id)
        if issue is None or issue.state not in shown:
            return Response("unknown link", status_code=404, media_type="text/plain")
        links = [c.url for c in issue_view(session, ctx.settings, issue).comparisons]
        if not 0 <= index < len(links):
            return Response("unknown link", status_code=404, media_type="text/plain")
        if subject is not None and link_holder(session, subject) is not None:
            record(session, issue_id, subject.subscriber_id, "click", index)
    # The target comes from the issue in the database, never from the request.
    return RedirectResponse(links[index], status_code=303)
