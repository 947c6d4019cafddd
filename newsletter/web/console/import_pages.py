"""The console's reader import: upload a CSV, check the column mapping, dry run, then import.

/admin/readers/import          upload form and the recent jobs
/admin/readers/import/{job}    one job: the mapping step (a draft), its progress (queued, running:
                               a refresh link, no JavaScript), or its result (a finished dry run
                               offers the import itself)
The work runs in the background (newsletter/subscribers/import_runner.py); these pages only
create and queue jobs. Editors and owners (ReaderManager); every POST checks the CSRF token and
every change is audited with the job it made.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session, select

from newsletter.db import session_scope
from newsletter.editors import audit
from newsletter.editors.sessions import Signed
from newsletter.subscribers import import_jobs
from newsletter.subscribers.import_jobs import ImportJob, JobState
from newsletter.subscribers.mapping import MAX_UPLOAD, check_mapping, parse_text, samples
from newsletter.subscribers.platforms import PLATFORMS, TARGETS
from newsletter.subscribers.service import InvalidInput
from newsletter.web.console.deps import Answer, ConsoleContext
from newsletter.web.console.views import Console, ReaderManager, check_csrf, console_router, message, page

router = console_router()
JobId = Annotated[int, Path(ge=1, le=2**31 - 1)]
FormText = Annotated[str, Form(max_length=2000)]
MAX_BODY = MAX_UPLOAD + 64 * 1024  # the file plus the form's other fields


def sentence(text: str) -> str:
    """An error from the domain as the start of a sentence (str.capitalize would lower "CSV")."""
    return text[:1].upper() + text[1:]


def actor_of(me: Signed) -> audit.Actor:
    return audit.Actor(f"editor:{me.editor.email}", me.editor.id)


def record_job_end(session: Session, job: ImportJob) -> None:
    """The import runner's on_finish: the job's end in the audit log, under whoever started it."""
    action = "readers.import." + ("dry_run" if job.dry_run else "import") + (
        "_failed" if job.state == JobState.failed.value else "_done")
    audit.record(session, audit.Actor(job.created_by), action, f"import_job:{job.id}", after=import_jobs.summary(job))


def wake_runner(request: Request) -> None:
    """Start a queued job at once if this process runs the import runner (`newsletter serve`)."""
    runner = getattr(request.app.state, "import_runner", None)
    if runner is not None:
        runner.wake.set()


def upload_page(ctx: ConsoleContext, me: Signed, status: int = 200, error: str = "") -> HTMLResponse:
    with session_scope(ctx.engine) as session:
        jobs = list(session.exec(select(ImportJob).where(ImportJob.state != JobState.draft.value)
                                 .order_by(ImportJob.id.desc()).limit(20)))
    return page(ctx, "import.html", status, me=me, title="Import readers", current="readers", jobs=jobs,
                platforms=PLATFORMS, max_mib=MAX_UPLOAD // (1024 * 1024), error=error)


@router.get("/readers/import", response_class=HTMLResponse)
def import_form(ctx: Console, me: ReaderManager) -> HTMLResponse:
    return upload_page(ctx, me)


@router.post("/readers/import", response_class=HTMLResponse)
async def upload(request: Request, ctx: Console, me: ReaderManager) -> Response:
    """Multipart: `file`, `platform` (auto or a key), `csrf_token`. The size is checked from the
    Content-Length before the body is read, so an oversized file is refused without storing it."""
    size = request.headers.get("content-length", "")
    if not size.isdigit():
        return upload_page(ctx, me, 411, "The upload did not say its size; send it from the form.")
    if int(size) > MAX_BODY:
        return upload_page(ctx, me, 413, f"The file is larger than {MAX_UPLOAD // (1024 * 1024)} MiB. "
                                         "Split it into parts and import each.")
    try:
        form = await request.form(max_files=1, max_fields=10)
    except Exception:  # a malformed multipart body (python-multipart's errors vary): the user's to fix
        return upload_page(ctx, me, 400, "The upload could not be read. Choose the file again and retry.")
    check_csrf(ctx, me, str(form.get("csrf_token", "")))
    file = form.get("file")
    if file is None or isinstance(file, str) or not file.filename:
        return upload_page(ctx, me, 422, "Choose a CSV file to upload.")
    data = await file.read(MAX_UPLOAD + 1)
    platform = str(form.get("platform", "auto"))[:20]
    return await run_in_threadpool(_store_upload, ctx, me, data, file.filename, platform)


def _store_upload(ctx: ConsoleContext, me: Signed, data: bytes, filename: str, platform: str) -> Response:
    try:
        with session_scope(ctx.engine) as session:
            job = import_jobs.create_from_upload(session, data, filename=filename, created_by=actor_of(me).label,
                                                 platform=platform)
            audit.record(session, actor_of(me), "readers.import.upload", f"import_job:{job.id}",
                         after=import_jobs.summary(job))
            job_id = job.id
    except InvalidInput as exc:
        return upload_page(ctx, me, 422, sentence(str(exc)))
    return RedirectResponse(f"/admin/readers/import/{job_id}", status_code=303)


def _load(ctx: ConsoleContext, job_id: int) -> ImportJob:
    with session_scope(ctx.engine) as session:
        job = session.get(ImportJob, job_id)
        if job is not None:
            session.expunge(job)
    if job is None:
        raise Answer(message(ctx, "No such import", "There is no import with this number.", 404,
                             [("Imports", "/admin/readers/import")]))
    return job


def job_page(ctx: ConsoleContext, me: Signed, job: ImportJob, status: int = 200, error: str = "",
             chosen: dict[str, str] | None = None) -> HTMLResponse:
    columns = []
    if job.state == JobState.draft.value and job.data is not None:
        upload = parse_text(job.data, job.encoding, job.delimiter)
        found, mapping = samples(upload), chosen or dict(job.column_targets())
        columns = [(index, name, mapping.get(name, "ignore"), found.get(name, []))
                   for index, name in enumerate(upload.header)]
    return page(ctx, "import_job.html", status, me=me, title=f"Import {job.id}", current="readers", job=job,
                platform=PLATFORMS[job.platform], columns=columns, targets=TARGETS,
                can_queue=import_jobs.can_queue(job), error=error)


@router.get("/readers/import/{job_id}", response_class=HTMLResponse)
def show_job(ctx: Console, me: ReaderManager, job_id: JobId) -> HTMLResponse:
    return job_page(ctx, me, _load(ctx, job_id))


@router.post("/readers/import/{job_id}/dry-run", response_class=HTMLResponse)
async def dry_run(request: Request, ctx: Console, me: ReaderManager, job_id: JobId) -> Response:
    """The mapping step's form: `column_N` = target for the file's N-th column."""
    form = await request.form(max_files=0, max_fields=500)
    check_csrf(ctx, me, str(form.get("csrf_token", "")))
    return await run_in_threadpool(_queue_dry_run, request, ctx, me, job_id, form)


def _queue_dry_run(request: Request, ctx: ConsoleContext, me: Signed, job_id: int, form) -> Response:
    job = _load(ctx, job_id)
    if job.state != JobState.draft.value or job.data is None:
        return job_page(ctx, me, job, 409, "This import has left the mapping step already.")
    upload = parse_text(job.data, job.encoding, job.delimiter)
    chosen = {name: str(form.get(f"column_{index}", "ignore"))[:32] for index, name in enumerate(upload.header)}
    try:
        mapping = check_mapping(upload, chosen)
    except InvalidInput as exc:
        return job_page(ctx, me, job, 422, sentence(str(exc)), chosen)
    if not _queue(ctx, me, job_id, "readers.import.dry_run", dry_run=True, mapping=mapping):
        return job_page(ctx, me, _load(ctx, job_id), 409, "This import has left the mapping step already.")
    wake_runner(request)
    return RedirectResponse(f"/admin/readers/import/{job_id}", status_code=303)


@router.post("/readers/import/{job_id}/start", response_class=HTMLResponse)
def start(request: Request, ctx: Console, me: ReaderManager, job_id: JobId, csrf_token: FormText = "",
          skip_bad_rows: FormText = "") -> Response:
    """The import itself, after a dry run (or again after a failure)."""
    check_csrf(ctx, me, csrf_token)
    job = _load(ctx, job_id)
    if job.state == JobState.draft.value or not _queue(ctx, me, job_id, "readers.import.start", dry_run=False,
                                                        skip_bad_rows=bool(skip_bad_rows)):
        return job_page(ctx, me, job, 409, "This import cannot start from here: run the dry run first, "
                                           "or wait until the running one ends.")
    wake_runner(request)
    return RedirectResponse(f"/admin/readers/import/{job_id}", status_code=303)


def _queue(ctx: ConsoleContext, me: Signed, job_id: int, action: str, **options) -> bool:
    """Queue the job if it may be (checked again here, in the transaction that queues it)."""
    with session_scope(ctx.engine) as session:
        job = session.get(ImportJob, job_id)
        if job is None or not import_jobs.can_queue(job):
            return False
        before = import_jobs.summary(job)
        import_jobs.queue(session, job, **options)
        audit.record(session, actor_of(me), action, f"import_job:{job_id}", before, import_jobs.summary(job))
    return True

