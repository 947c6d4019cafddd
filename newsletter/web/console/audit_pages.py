"""The audit log in the console (/admin/audit) and the API (/api/v1/audit): who changed what,
when, and for edits the fields that changed with their old and new values.

Keyset pages (`before` = the oldest id shown), filters by actor and action; read by every role
and by tokens with the read scope.
"""

from typing import Annotated

from fastapi import Query
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

from newsletter.db import session_scope
from newsletter.editors import audit
from newsletter.editors.models import AuditEntry
from newsletter.web.console.api_base import Limit_, Reading, api_router
from newsletter.web.console.deps import Console, ConsoleContext
from newsletter.web.console.views import Reader, console_router, page

router = console_router()
api = api_router()
PAGE_SIZE = 50
Filter = Annotated[str, Query(max_length=100, pattern=r"^[^\x00-\x1f\x7f]*$")]
Before = Annotated[int | None, Query(ge=1, le=2**31 - 1, description="Entries older than this id")]  # an INTEGER column


class ChangeOut(BaseModel):
    field: str
    before: object = None
    after: object = None


class AuditOut(BaseModel):
    id: int
    at: str
    actor: str
    action: str
    target: str
    detail: str
    changes: list[ChangeOut]


class AuditPage(BaseModel):
    items: list[AuditOut]
    next_before: int | None  # pass as `before` for the next (older) page


def entries(ctx: ConsoleContext, before: int | None, actor: str, action: str, limit: int) -> AuditPage:
    with session_scope(ctx.engine) as session:
        rows = audit.recent(session, limit + 1, before, actor.strip(), action.strip())
        items = [_out(entry) for entry in rows[:limit]]
    return AuditPage(items=items, next_before=items[-1].id if len(rows) > limit else None)


def _out(entry: AuditEntry) -> AuditOut:
    found = audit.changes(entry.before, entry.after) if (entry.before or entry.after) else []
    return AuditOut(id=entry.id, at=entry.at.strftime("%Y-%m-%d %H:%M:%S"), actor=entry.actor,
                    action=entry.action, target=entry.target, detail=entry.detail,
                    changes=[ChangeOut(field=c.field, before=c.before, after=c.after) for c in found])


@router.get("/audit", response_class=HTMLResponse)
def audit_log(ctx: Console, me: Reader, before: Before = None, actor: Filter = "",
              action: Filter = "") -> HTMLResponse:
    """The newest changes first; a form narrows them to one actor or kind of action."""
    found = entries(ctx, before, actor, action, PAGE_SIZE)
    return page(ctx, "audit.html", me=me, title="Audit log", current="audit", entries=found.items,
                next_before=found.next_before, actor=actor, action=action)


@api.get("/audit", response_model=AuditPage)
def audit_api(ctx: Console, _actor: Reading, before: Before = None, actor: Filter = "", action: Filter = "",
              limit: Limit_ = 50) -> AuditPage:
    """The audit log, newest first: each entry with the fields an edit changed."""
    return entries(ctx, before, actor, action, limit)
