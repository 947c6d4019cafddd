"""The console's follow-ups: the list, drafting one about a comparison (what changed and who would
get it, shown before anything is saved), a follow-up's page (the mail in frames, its deliveries),
the send confirmation that states the recipient count, and cancel.

Editors and owners only (Permission.manage_issues): a follow-up mails readers, as a send does.
Every POST checks the session's CSRF token and answers with a redirect (a reload repeats
nothing) or the form again with the reason. GETs change nothing.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Path, Query
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from newsletter.errors import UserError
from newsletter.issues.followups import FollowupError, NothingChanged
from newsletter.web.console.deps import Answer, Console, ConsoleContext
from newsletter.web.console.issues_pages import PREVIEW_CSP, actor_of
from newsletter.web.console.views import IssueEditor, check_csrf, console_router, message, page
from newsletter.workflow import followups
from newsletter.workflow.sending import DARK_QUERY

router = console_router()
FollowupId = Annotated[int, Path(ge=1, le=2**31 - 1)]
Short = Annotated[str, Form(max_length=2000)]
Text = Annotated[str, Form(max_length=20000)]
NOTICES = {"sending": "Sending: workers deliver it to each reader once.",
           "cancelled": "Cancelled: nobody else gets this follow-up.", "drafted": "Drafted. Check the mail below."}


def _not_found(ctx: ConsoleContext, followup_id: int) -> Answer:
    return Answer(message(ctx, "No such follow-up", f"There is no follow-up {followup_id}.", 404,
                          [("All follow-ups", "/admin/followups")]))


def _detail(ctx: ConsoleContext, followup_id: int) -> followups.FollowupInfo:
    try:
        return followups.detail(ctx.engine, followup_id)
    except FollowupError:
        raise _not_found(ctx, followup_id)


@router.get("/followups", response_class=HTMLResponse)
def followups_list(ctx: Console, me: IssueEditor) -> HTMLResponse:
    return page(ctx, "followups.html", me=me, title="Follow-ups", current="followups",
                rows=followups.list_followups(ctx.engine), comparisons=followups.sent_comparisons(ctx.engine))


def new_page(ctx: ConsoleContext, me, slug: str, status: int = 200, error: str = "", subject: str | None = None,
             note: str = "") -> HTMLResponse:
    try:
        proposal = followups.propose(ctx.engine, ctx.settings, slug)
    except FollowupError as exc:
        raise Answer(message(ctx, "No follow-up possible", str(exc), 404, [("All follow-ups", "/admin/followups")]))
    return page(ctx, "followup_new.html", status, me=me, title=f"Follow-up: {proposal.title}",
                current="followups", proposal=proposal, error=error,
                subject=proposal.subject if subject is None else subject, note=note)


@router.get("/followups/new", response_class=HTMLResponse)
def new_form(ctx: Console, me: IssueEditor, comparison: Annotated[str, Query(max_length=160)] = "") -> HTMLResponse:
    """What a follow-up about the comparison would say and who would get it; nothing is saved."""
    return new_page(ctx, me, comparison)


@router.post("/followups", response_class=HTMLResponse)
def create(ctx: Console, me: IssueEditor, comparison: Short = "", subject: Short = "", note: Text = "",
           force: Short = "", csrf_token: Short = "") -> Response:
    check_csrf(ctx, me, csrf_token)
    try:
        info = followups.create(ctx.engine, ctx.settings, actor_of(me), comparison, subject, note, force == "yes")
    except NothingChanged as exc:
        return new_page(ctx, me, comparison, 409, str(exc).replace("--force", "the box below"), subject, note)
    except FollowupError as exc:
        if exc.field == "comparison":
            raise Answer(message(ctx, "No follow-up possible", str(exc), 404,
                                 [("All follow-ups", "/admin/followups")]))
        return new_page(ctx, me, comparison, 422, str(exc), subject, note)
    return RedirectResponse(f"/admin/followups/{info.id}?done=drafted", status_code=303)


@router.get("/followups/{followup_id}", response_class=HTMLResponse)
def followup(ctx: Console, me: IssueEditor, followup_id: FollowupId,
             done: Annotated[str, Query(max_length=20)] = "") -> HTMLResponse:
    return page(ctx, "followup.html", me=me, title=f"Follow-up {followup_id}", current="followups",
                followup=_detail(ctx, followup_id), notice=NOTICES.get(done, ""))


@router.get("/followups/{followup_id}/preview", response_class=HTMLResponse)
def preview(ctx: Console, _me: IssueEditor, followup_id: FollowupId,
            scheme: Annotated[str, Query(pattern="^(light|dark)?$")] = "",
            format: Annotated[str, Query(pattern="^(html|text)?$")] = "") -> Response:
    """The mail a reader gets, for the frames of the follow-up's page (CSP: nothing may run)."""
    try:
        html, text, _data = followups.preview(ctx.engine, ctx.settings, followup_id)
    except FollowupError:
        raise _not_found(ctx, followup_id)
    if scheme:  # the mail's own dark-mode rules forced on or off, as on an issue's page
        html = DARK_QUERY.sub("@media all" if scheme == "dark" else "@media not all", html)
    headers = {"Content-Security-Policy": PREVIEW_CSP, "X-Frame-Options": "SAMEORIGIN", "Cache-Control": "no-store"}
    if format == "text":
        return Response(text, media_type="text/plain; charset=utf-8", headers=headers)
    return HTMLResponse(html, headers=headers)


def confirm_page(ctx: ConsoleContext, me, followup_id: int, status: int = 200, error: str = "") -> HTMLResponse:
    return page(ctx, "followup_send.html", status, me=me, title=f"Send follow-up {followup_id}",
                current="followups", followup=_detail(ctx, followup_id), error=error)


@router.get("/followups/{followup_id}/send", response_class=HTMLResponse)
def send_confirm(ctx: Console, me: IssueEditor, followup_id: FollowupId) -> HTMLResponse:
    """How many readers a send now reaches, and the button that sends (GET changes nothing)."""
    return confirm_page(ctx, me, followup_id)


@router.post("/followups/{followup_id}/send", response_class=HTMLResponse)
def send(ctx: Console, me: IssueEditor, followup_id: FollowupId, csrf_token: Short = "") -> Response:
    check_csrf(ctx, me, csrf_token)
    _detail(ctx, followup_id)
    try:
        followups.send(ctx.engine, actor_of(me), followup_id)
    except UserError as exc:
        return confirm_page(ctx, me, followup_id, 409, str(exc))
    return RedirectResponse(f"/admin/followups/{followup_id}?done=sending", status_code=303)


@router.post("/followups/{followup_id}/cancel", response_class=HTMLResponse)
def cancel(ctx: Console, me: IssueEditor, followup_id: FollowupId, csrf_token: Short = "") -> Response:
    check_csrf(ctx, me, csrf_token)
    _detail(ctx, followup_id)
    try:
        followups.cancel(ctx.engine, actor_of(me), followup_id)
    except UserError as exc:
        return page(ctx, "followup.html", 409, me=me, title=f"Follow-up {followup_id}", current="followups",
                    followup=_detail(ctx, followup_id), error=str(exc))
    return RedirectResponse(f"/admin/followups/{followup_id}?done=cancelled", status_code=303)
