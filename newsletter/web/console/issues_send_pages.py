"""The console's sending side of an issue: test send, schedule at a local time, send now (after
a confirmation page that states the recipient count), and a live progress page with pause,
resume and cancel.

The progress page shows the figures rendered on the server (and a refresh link), so it works
without JavaScript; with it, one small same-origin script follows /events, a server-sent
event stream of the same figures, and updates them in place.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path as FilePath
from typing import Annotated

from fastapi import Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from newsletter.errors import UserError
from newsletter.issues.errors import IssueError
from newsletter.templating import TEMPLATES
from newsletter.web.console.deps import Answer, Console, ConsoleContext
from newsletter.web.console.issues_pages import NOTICES, IssueId, Short, actor_of, issue_page, may_edit, redirect_done, \
    refusal_text, status_of
from newsletter.web.console.views import IssueEditor, Reader, check_csrf, console_router, message, page
from newsletter.workflow import editing, sending

router = console_router()
SCRIPT = FilePath(TEMPLATES) / "web" / "admin" / "issue-progress.js"
EVENT_SECONDS = 1.0
MAX_EVENTS = 600  # then the stream ends; EventSource reconnects by itself


@router.post("/issues/{issue_id}/test", response_class=HTMLResponse)
def test(ctx: Console, me: IssueEditor, issue_id: IssueId, to: Short = "", csrf_token: Short = "") -> Response:
    check_csrf(ctx, me, csrf_token)
    try:
        results = sending.test_send(ctx.engine, ctx.settings, ctx.secret, actor_of(me), issue_id, [to])
    except UserError as exc:
        return issue_page(ctx, me, issue_id, status_of(exc), refusal_text(exc), test_to=to[:2000])
    return issue_page(ctx, me, issue_id, notice="Test copies: " + "; ".join(f"{a}: {o}" for a, o in results),
                      test_to=to[:2000])


@router.post("/issues/{issue_id}/schedule", response_class=HTMLResponse)
def schedule(ctx: Console, me: IssueEditor, issue_id: IssueId, at: Short = "", ignore_checks: Short = "",
             csrf_token: Short = "") -> Response:
    check_csrf(ctx, me, csrf_token)
    try:
        sending.schedule(ctx.engine, ctx.settings, actor_of(me), issue_id, at, ignore_checks == "yes")
    except UserError as exc:
        return issue_page(ctx, me, issue_id, status_of(exc), refusal_text(exc), schedule_at=at[:40])
    return redirect_done(issue_id, "scheduled")


@router.post("/issues/{issue_id}/unschedule", response_class=HTMLResponse)
def unschedule(ctx: Console, me: IssueEditor, issue_id: IssueId, csrf_token: Short = "") -> Response:
    check_csrf(ctx, me, csrf_token)
    try:
        sending.unschedule(ctx.engine, actor_of(me), issue_id)
    except UserError as exc:
        return issue_page(ctx, me, issue_id, status_of(exc), refusal_text(exc))
    return redirect_done(issue_id, "unscheduled")


def confirm_page(ctx: ConsoleContext, me, issue_id: int, status: int = 200, error: str = "") -> HTMLResponse:
    try:
        found = editing.detail(ctx.engine, issue_id)
        recipients = sending.recipient_count(ctx.engine, issue_id)
    except IssueError:
        raise Answer(message(ctx, "No such issue", f"There is no issue {issue_id}.", 404,
                             [("All issues", "/admin/issues")]))
    failing = [r for r in sending.pre_send_checks(ctx.engine, ctx.settings, issue_id) if r.level == "fail"]
    return page(ctx, "issue_send.html", status, me=me, title=f"Send issue {found.week}", current="issues",
                issue=found, recipients=recipients, failing=failing, error=error)


@router.get("/issues/{issue_id}/send", response_class=HTMLResponse)
def send_confirm(ctx: Console, me: IssueEditor, issue_id: IssueId) -> Response:
    """What a send now would do, and the button that does it (GET changes nothing)."""
    return confirm_page(ctx, me, issue_id)


@router.post("/issues/{issue_id}/send", response_class=HTMLResponse)
def send(ctx: Console, me: IssueEditor, issue_id: IssueId, ignore_checks: Short = "",
         csrf_token: Short = "") -> Response:
    check_csrf(ctx, me, csrf_token)
    try:
        sending.send_now(ctx.engine, ctx.settings, actor_of(me), issue_id, ignore_checks == "yes")
    except UserError as exc:
        return confirm_page(ctx, me, issue_id, status_of(exc), refusal_text(exc))
    return RedirectResponse(f"/admin/issues/{issue_id}/progress", status_code=303)


@router.get("/issues/{issue_id}/progress", response_class=HTMLResponse)
def progress(ctx: Console, me: Reader, issue_id: IssueId,
             done: Annotated[str, Query(max_length=20)] = "") -> Response:
    try:
        found = editing.detail(ctx.engine, issue_id)
    except IssueError:
        raise Answer(message(ctx, "No such issue", f"There is no issue {issue_id}.", 404,
                             [("All issues", "/admin/issues")]))
    figures = sending.status(ctx.engine, issue_id)
    # A notice says what an action did while it is still true: "Sending again." reloaded (the URL
    # keeps ?done=) after the send ended, or after someone else paused it, would say the opposite.
    holds = NOTICE_STATES.get(done) == figures.state
    return page(ctx, "issue_progress.html", me=me, title=f"Sending issue {found.week}", current="issues",
                issue=found, figures=figures, can_edit=may_edit(me),
                notice=NOTICES.get(done, "") if holds else "", notice_state=figures.state)


# The state each progress notice describes (control's `notice` names).
NOTICE_STATES = {"paused": "paused", "resumed": "sending", "cancelled": "cancelled"}


def figures(ctx: ConsoleContext, issue_id: int) -> dict:
    found = sending.status(ctx.engine, issue_id)
    return {"state": found.state, "sent": found.sent, "failed": found.failed, "pending": found.pending,
            "skipped": found.skipped, "total": found.total, "rate_per_minute": found.rate_per_minute,
            "eta_seconds": found.eta_seconds, "done": found.done}


async def event_stream(ctx: ConsoleContext, issue_id: int, limit: int) -> AsyncIterator[str]:
    """One `progress` event per second until the send is over (sent or cancelled) or `limit`."""
    yield "retry: 3000\n\n"
    for number in range(limit):
        values = await run_in_threadpool(figures, ctx, issue_id)
        yield f"id: {number}\nevent: progress\ndata: {json.dumps(values)}\n\n"
        if values["done"]:
            break
        await asyncio.sleep(EVENT_SECONDS)


@router.get("/issues/{issue_id}/events")
def events(ctx: Console, _me: Reader, issue_id: IssueId,
           limit: Annotated[int, Query(ge=1, le=MAX_EVENTS)] = MAX_EVENTS) -> Response:
    """Server-sent events: the send's figures (sent, failed, pending, rate, ETA) every second."""
    try:
        sending.status(ctx.engine, issue_id)
    except IssueError:
        return Response("no such issue", 404, media_type="text/plain")
    return StreamingResponse(event_stream(ctx, issue_id, limit), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


def control(ctx: ConsoleContext, me, issue_id: int, csrf_token: str, action: str, notice: str) -> Response:
    check_csrf(ctx, me, csrf_token)
    try:
        sending.control_send(ctx.engine, actor_of(me), issue_id, action)
    except UserError as exc:
        return issue_page(ctx, me, issue_id, status_of(exc), refusal_text(exc))
    return RedirectResponse(f"/admin/issues/{issue_id}/progress?done={notice}", status_code=303)


@router.post("/issues/{issue_id}/pause", response_class=HTMLResponse)
def pause(ctx: Console, me: IssueEditor, issue_id: IssueId, csrf_token: Short = "") -> Response:
    return control(ctx, me, issue_id, csrf_token, "pause", "paused")


@router.post("/issues/{issue_id}/resume", response_class=HTMLResponse)
def resume(ctx: Console, me: IssueEditor, issue_id: IssueId, csrf_token: Short = "") -> Response:
    return control(ctx, me, issue_id, csrf_token, "resume", "resumed")


@router.post("/issues/{issue_id}/cancel", response_class=HTMLResponse)
def cancel(ctx: Console, me: IssueEditor, issue_id: IssueId, csrf_token: Short = "") -> Response:
    return control(ctx, me, issue_id, csrf_token, "cancel", "cancelled")


@router.get("/static/issue-progress.js")
def progress_script() -> Response:
    """The one script of the console: follows /events on the progress page (CSP script-src 'self')."""
    return Response(SCRIPT.read_text(encoding="utf-8"), media_type="text/javascript",
                    headers={"Cache-Control": "public, max-age=300"})
