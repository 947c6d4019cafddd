"""The console's issue pages: the list, an issue's page (the mail in phone and desktop frames,
light and dark; its content, comparisons and pre-send checks) and the editing forms.

Viewers read; editors (Permission.manage_issues) also change. Every POST checks the session's
CSRF token and answers with a redirect to the issue (so a reload repeats nothing) or, when
refused, the page again with the reason. The sending side is issues_send_pages.py.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Path, Query
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from newsletter.editors import audit
from newsletter.editors.roles import Permission, role_allows
from newsletter.editors.sessions import Signed
from newsletter.errors import UserError
from newsletter.issues.checks import ChecksFailed
from newsletter.issues.errors import IssueError
from newsletter.reports.listing import list_issues
from newsletter.schedule import zone_of
from newsletter.web.console.deps import Answer, Console, ConsoleContext
from newsletter.web.console.views import IssueEditor, Reader, check_csrf, console_router, message, page
from newsletter.workflow import editing, sending

router = console_router()
IssueId = Annotated[int, Path(ge=1, le=2**31 - 1)]
Text = Annotated[str, Form(max_length=20000)]
Short = Annotated[str, Form(max_length=2000)]
# Fixed notices after a redirect: the URL names one, never carries text that the page echoes.
NOTICES = {"saved": "Saved.", "comparisons": "The comparisons are updated.", "scheduled": "Scheduled.",
           "unscheduled": "Back to draft: it will not go out until scheduled or sent.", "drafted": "Drafted.",
           "paused": "Paused: workers stop within about a second; the rest stays queued.", "resumed": "Sending again.",
           "cancelled": "Cancelled: nobody else gets this issue."}
PREVIEW_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; script-src 'none'; "
               "base-uri 'none'; form-action 'none'; frame-ancestors 'self'")


def actor_of(me: Signed) -> audit.Actor:
    return audit.Actor(f"editor:{me.editor.email}", editor_id=me.editor.id)


def may_edit(me: Signed) -> bool:
    return role_allows(me.editor.role, Permission.manage_issues)


def refusal_text(exc: UserError) -> str:
    if isinstance(exc, ChecksFailed):
        return "Pre-send checks fail: " + "; ".join(f"{r.name}: {r.message}" for r in exc.failing)
    return str(exc)


def status_of(exc: UserError) -> int:
    if isinstance(exc, ChecksFailed):
        return 409
    return exc.status if isinstance(exc, IssueError) else 422


def issue_page(ctx: ConsoleContext, me: Signed, issue_id: int, status: int = 200, error: str = "",
               notice: str = "", **values) -> HTMLResponse:
    """An issue's page; `error` and `notice` say how the last action went."""
    try:
        found = editing.detail(ctx.engine, issue_id)
    except IssueError:
        raise Answer(message(ctx, "No such issue", f"There is no issue {issue_id}.", 404,
                             [("All issues", "/admin/issues")]))
    can_edit = may_edit(me)
    if found.scheduled_at and "schedule_at" not in values:  # a reschedule starts from the time set
        values["schedule_at"] = found.scheduled_at.astimezone(zone_of(ctx.settings)).strftime("%Y-%m-%dT%H:%M")
    return page(ctx, "issue_detail.html", status, me=me, title=f"Issue {found.week}", current="issues",
                issue=found, can_edit=can_edit, error=error, notice=notice,
                checks=sending.pre_send_checks(ctx.engine, ctx.settings, issue_id),
                candidates=editing.candidates(ctx.engine, issue_id) if can_edit and found.editable else [],
                zone=str(zone_of(ctx.settings)),
                scheduled_local=sending.local_time(ctx.settings, found.scheduled_at) if found.scheduled_at else "",
                **values)


def redirect_done(issue_id: int, notice: str) -> RedirectResponse:
    return RedirectResponse(f"/admin/issues/{issue_id}?done={notice}", status_code=303)


def act(ctx: ConsoleContext, me: Signed, issue_id: int, csrf_token: str, call, notice: str) -> Response:
    """Check the CSRF token, run the action, redirect; a refusal shows the page with the reason."""
    check_csrf(ctx, me, csrf_token)
    try:
        call(actor_of(me))
    except UserError as exc:
        return issue_page(ctx, me, issue_id, status_of(exc), refusal_text(exc))
    return redirect_done(issue_id, notice)


@router.get("/issues", response_class=HTMLResponse)
def issues(ctx: Console, me: Reader) -> HTMLResponse:
    rows = list_issues(ctx.engine)
    return page(ctx, "issues.html", me=me, title="Issues", current="issues", rows=rows, can_edit=may_edit(me),
                zone=zone_of(ctx.settings))


@router.post("/issues", response_class=HTMLResponse)
def draft(ctx: Console, me: IssueEditor, week: Short = "", csrf_token: Short = "") -> Response:
    check_csrf(ctx, me, csrf_token)
    try:
        issue_id, _created = editing.create_draft(ctx.engine, ctx.settings, actor_of(me), week or None)
    except UserError as exc:
        return page(ctx, "issues.html", status_of(exc), me=me, title="Issues", current="issues",
                    rows=list_issues(ctx.engine), can_edit=True, zone=zone_of(ctx.settings),
                    error=refusal_text(exc), week=week[:20])
    return redirect_done(issue_id, "drafted")


@router.get("/issues/{issue_id}", response_class=HTMLResponse)
def issue(ctx: Console, me: Reader, issue_id: IssueId, done: Annotated[str, Query(max_length=20)] = "") -> Response:
    return issue_page(ctx, me, issue_id, notice=NOTICES.get(done, ""))


@router.get("/issues/{issue_id}/preview", response_class=HTMLResponse)
def preview(ctx: Console, _me: Reader, issue_id: IssueId,
            scheme: Annotated[str, Query(pattern="^(light|dark)?$")] = "",
            format: Annotated[str, Query(pattern="^(html|text)?$")] = "") -> Response:
    """The mail as a reader gets it, for the issue page's frames: same-origin framing only, and
    a CSP of its own (mail HTML has inline styles; nothing may run)."""
    try:
        html, text = sending.preview(ctx.engine, ctx.settings, issue_id, scheme)
    except UserError as exc:
        html, text = f"<!doctype html><title>No preview</title><p>{_escape(str(exc))}</p>", str(exc)
    headers = {"Content-Security-Policy": PREVIEW_CSP, "X-Frame-Options": "SAMEORIGIN", "Cache-Control": "no-store"}
    if format == "text":
        return Response(text, media_type="text/plain; charset=utf-8", headers=headers)
    return HTMLResponse(html, headers=headers)


def _escape(text: str) -> str:
    import html

    return html.escape(text, quote=True)


@router.post("/issues/{issue_id}/edit", response_class=HTMLResponse)
def edit(ctx: Console, me: IssueEditor, issue_id: IssueId, subject: Short = "", preheader: Short = "",
         intro: Text = "", subject_follows_reader: Short = "", csrf_token: Short = "") -> Response:
    follow = subject_follows_reader == "on"  # an unticked checkbox sends nothing
    return act(ctx, me, issue_id, csrf_token,
               lambda actor: editing.update(ctx.engine, actor, issue_id, subject, preheader, intro, follow), "saved")


MOVES = {"up": -1, "down": 1}


@router.post("/issues/{issue_id}/comparisons", response_class=HTMLResponse)
def comparisons(ctx: Console, me: IssueEditor, issue_id: IssueId, action: Short = "", slug: Short = "",
                csrf_token: Short = "") -> Response:
    """One button per change: add (from the list offered), remove, move up, move down."""
    def call(actor: audit.Actor) -> None:
        if action == "add":
            editing.add_comparison(ctx.engine, actor, issue_id, slug)
        elif action == "remove":
            editing.remove_comparison(ctx.engine, actor, issue_id, slug)
        elif action in MOVES:
            editing.move_comparison(ctx.engine, actor, issue_id, slug, MOVES[action])
        else:
            raise IssueError("action: choose add, remove, up or down", "action")

    return act(ctx, me, issue_id, csrf_token, call, "comparisons")
