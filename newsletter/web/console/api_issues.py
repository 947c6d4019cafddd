"""The issues API: get, draft, edit, reorder, preview, check, test, schedule, send, pause, resume,
cancel and status, on the same domain layer as the console (newsletter/workflow/).

GETs need the `read` scope, every write `issues`. Refusals answer with a stable code:
not_found (404), issue_not_editable and invalid_transition (409), checks_failed (409, one
field per failing check), invalid_request (422, the field named).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import Path
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response

from newsletter.errors import UserError
from newsletter.issues.checks import ChecksFailed
from newsletter.issues.errors import IssueError
from newsletter.web.console.api_base import ManagingIssues, Reading, api_router, error
from newsletter.web.console.deps import Answer, Console
from newsletter.web.console.schemas import ErrorOut
from newsletter.web.console.schemas_issues import CheckOut, ComparisonsIn, ControlOut, DraftIn, IssueDetailOut, \
    IssuePatch, ScheduleIn, ScheduleOut, SendIn, SendOut, TestIn, TestOut, TestOutcome
from newsletter.workflow import editing, sending

router = api_router()
T = TypeVar("T")
IssueId = Annotated[int, Path(ge=1, le=2**31 - 1)]
REFUSALS = {404: {"model": ErrorOut}, 409: {"model": ErrorOut}}
# The mail preview is mail HTML: inline styles by design, nothing else runs or loads.
PREVIEW_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; script-src 'none'; "
               "base-uri 'none'; form-action 'none'; frame-ancestors 'self'")


def refusal(exc: UserError) -> JSONResponse:
    """A domain refusal in the API's error shape."""
    if isinstance(exc, ChecksFailed):
        return error(409, "checks_failed", "The issue fails pre-send checks; fix them or pass ignore_checks.",
                     {f"checks.{result.name}": result.message for result in exc.failing})
    if isinstance(exc, IssueError):
        return error(exc.status, exc.code, str(exc), {exc.field: str(exc)} if exc.field else None)
    return error(422, "invalid_request", str(exc))


def attempt(call: Callable[[], T]) -> T:
    try:
        return call()
    except UserError as exc:
        raise Answer(refusal(exc))


def issue_out(ctx, issue_id: int) -> IssueDetailOut:
    found = attempt(lambda: editing.detail(ctx.engine, issue_id))
    return IssueDetailOut(id=found.id, week=found.week, subject=found.subject, preheader=found.preheader,
                          state=found.state, created_at=found.created_at, scheduled_at=found.scheduled_at,
                          started_at=found.started_at, finished_at=found.finished_at, intro=found.intro,
                          comparisons=[ref.slug for ref in found.comparisons], editable=found.editable,
                          subject_follows_reader=found.subject_follows_reader)


@router.get("/issues/{issue_id}", response_model=IssueDetailOut, responses=REFUSALS)
def get_issue(ctx: Console, _actor: Reading, issue_id: IssueId) -> IssueDetailOut:
    """One issue with its note and its comparisons in order."""
    return issue_out(ctx, issue_id)


@router.post("/issues", response_model=IssueDetailOut, responses={201: {"model": IssueDetailOut}, **REFUSALS})
def create_issue(ctx: Console, actor: ManagingIssues, body: DraftIn) -> Response:
    """Draft the week's issue from the selection rule (201), or answer the existing one (200)."""
    issue_id, created = attempt(lambda: editing.create_draft(ctx.engine, ctx.settings, actor, body.week))
    return JSONResponse(issue_out(ctx, issue_id).model_dump(mode="json"), 201 if created else 200)


@router.patch("/issues/{issue_id}", response_model=IssueDetailOut, responses=REFUSALS)
def patch_issue(ctx: Console, actor: ManagingIssues, issue_id: IssueId, body: IssuePatch) -> IssueDetailOut:
    """Change the subject, preheader or note of a draft or scheduled issue."""
    attempt(lambda: editing.update(ctx.engine, actor, issue_id, body.subject, body.preheader, body.intro,
                                   body.subject_follows_reader))
    return issue_out(ctx, issue_id)


@router.put("/issues/{issue_id}/comparisons", response_model=IssueDetailOut, responses=REFUSALS)
def put_comparisons(ctx: Console, actor: ManagingIssues, issue_id: IssueId, body: ComparisonsIn) -> IssueDetailOut:
    """The issue's comparisons, exactly these and in this order (adds, removes and reorders at once)."""
    attempt(lambda: editing.set_comparisons(ctx.engine, actor, issue_id, body.comparisons))
    return issue_out(ctx, issue_id)


@router.get("/issues/{issue_id}/preview.html", response_class=HTMLResponse, responses={
    200: {"content": {"text/html": {}}, "description": "The mail's HTML part"}, **REFUSALS})
def preview_html(ctx: Console, _actor: Reading, issue_id: IssueId) -> Response:
    """The HTML a sample reader gets (sample personal links)."""
    html, _text = attempt(lambda: sending.preview(ctx.engine, ctx.settings, issue_id))
    return HTMLResponse(html, headers={"Content-Security-Policy": PREVIEW_CSP, "Cache-Control": "no-store"})


@router.get("/issues/{issue_id}/preview.txt", response_class=PlainTextResponse, responses={
    200: {"content": {"text/plain": {}}, "description": "The mail's plain-text part"}, **REFUSALS})
def preview_text(ctx: Console, _actor: Reading, issue_id: IssueId) -> Response:
    """The plain-text part a sample reader gets."""
    _html, text = attempt(lambda: sending.preview(ctx.engine, ctx.settings, issue_id))
    return PlainTextResponse(text, headers={"Cache-Control": "no-store"})


@router.get("/issues/{issue_id}/checks", response_model=list[CheckOut], responses=REFUSALS)
def get_checks(ctx: Console, _actor: Reading, issue_id: IssueId) -> list[CheckOut]:
    """The pre-send checks (size, https, postal address, week, links, DKIM) as they stand now."""
    results = attempt(lambda: sending.pre_send_checks(ctx.engine, ctx.settings, issue_id))
    return [CheckOut(name=r.name, level=r.level, message=r.message) for r in results]


@router.post("/issues/{issue_id}/test", response_model=TestOut, responses=REFUSALS)
def post_test(ctx: Console, actor: ManagingIssues, issue_id: IssueId, body: TestIn) -> TestOut:
    """Send [TEST] copies to these addresses now; not a send, nobody's ledger changes."""
    results = attempt(lambda: sending.test_send(ctx.engine, ctx.settings, ctx.secret, actor, issue_id, body.to))
    return TestOut(results=[TestOutcome(address=a, outcome=o) for a, o in results])


@router.post("/issues/{issue_id}/schedule", response_model=ScheduleOut, responses=REFUSALS)
def post_schedule(ctx: Console, actor: ManagingIssues, issue_id: IssueId, body: ScheduleIn) -> ScheduleOut:
    """Schedule (or reschedule) at a local time; the scheduler sends it then, once."""
    when = attempt(lambda: sending.schedule(ctx.engine, ctx.settings, actor, issue_id, body.at, body.ignore_checks))
    return ScheduleOut(scheduled_at=when, local=sending.local_time(ctx.settings, when))


@router.post("/issues/{issue_id}/unschedule", response_model=ControlOut, responses=REFUSALS)
def post_unschedule(ctx: Console, actor: ManagingIssues, issue_id: IssueId) -> ControlOut:
    """Back to draft."""
    attempt(lambda: sending.unschedule(ctx.engine, actor, issue_id))
    return ControlOut(state="draft")


@router.post("/issues/{issue_id}/send", response_model=SendOut, responses=REFUSALS)
def post_send(ctx: Console, actor: ManagingIssues, issue_id: IssueId, body: SendIn | None = None) -> SendOut:
    """Start sending now: one delivery per eligible reader is queued; workers deliver them."""
    ignore = bool(body and body.ignore_checks)
    result = attempt(lambda: sending.send_now(ctx.engine, ctx.settings, actor, issue_id, ignore))
    return SendOut(state=result.issue.state, recipients=result.enqueued)


def _control(ctx, actor, issue_id: int, action: str) -> ControlOut:
    result = attempt(lambda: sending.control_send(ctx.engine, actor, issue_id, action))
    return ControlOut(state=result.state, skipped=result.skipped)


@router.post("/issues/{issue_id}/pause", response_model=ControlOut, responses=REFUSALS)
def post_pause(ctx: Console, actor: ManagingIssues, issue_id: IssueId) -> ControlOut:
    """Pause a send: workers stop within about a second, mid-batch; deliveries stay queued."""
    return _control(ctx, actor, issue_id, "pause")


@router.post("/issues/{issue_id}/resume", response_model=ControlOut, responses=REFUSALS)
def post_resume(ctx: Console, actor: ManagingIssues, issue_id: IssueId) -> ControlOut:
    """Resume a paused send."""
    return _control(ctx, actor, issue_id, "resume")


@router.post("/issues/{issue_id}/cancel", response_model=ControlOut, responses=REFUSALS)
def post_cancel(ctx: Console, actor: ManagingIssues, issue_id: IssueId) -> ControlOut:
    """Cancel: nobody else gets it; queued deliveries become skipped."""
    return _control(ctx, actor, issue_id, "cancel")


@router.get("/issues/{issue_id}/status", response_model=sending.SendStatus, responses=REFUSALS)
def get_status(ctx: Console, _actor: Reading, issue_id: IssueId) -> sending.SendStatus:
    """The send's figures: sent, failed, pending, skipped, rate per minute, ETA in seconds."""
    return attempt(lambda: sending.status(ctx.engine, issue_id))
