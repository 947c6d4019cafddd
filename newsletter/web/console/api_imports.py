"""POST /api/v1/readers/imports (a CSV, as the body or a multipart `file`) starts a background
import job and answers 202 with its id; GET /api/v1/readers/imports/{id} says how far it got.

Options are query parameters, so the body can be the file as it is: `platform` (auto or a
platform key), `dry_run`, `skip_bad_rows`, and `mapping` (a JSON object: column -> target) when
the detected mapping is not the one wanted. The job runs in the web process's import runner
(newsletter/subscribers/import_runner.py); writes need the `readers` scope, reading `read`.
"""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from newsletter.db import session_scope
from newsletter.editors import audit
from newsletter.subscribers import import_jobs
from newsletter.subscribers.import_jobs import ImportJob, JobState
from newsletter.subscribers.mapping import MAX_UPLOAD
from newsletter.subscribers.platforms import CHOICES
from newsletter.subscribers.service import InvalidInput
from newsletter.web.console.api_base import ManagingReaders, Reading, api_router, error
from newsletter.web.console.deps import Console
from newsletter.web.console.import_pages import wake_runner
from newsletter.web.console.schemas import ErrorOut
from newsletter.web.console.schemas_imports import ImportCounts, ImportJobOut

router = api_router()
CSV_BODY = {"requestBody": {"required": True, "content": {
    "text/csv": {"schema": {"type": "string", "format": "binary"}},
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                       "properties": {"file": {"type": "string", "format": "binary"}}}}}}}
MIB = 1024 * 1024


def job_out(job: ImportJob) -> ImportJobOut:
    return ImportJobOut(id=job.id, state=job.state, dry_run=job.dry_run, skip_bad_rows=job.skip_bad_rows,
                        platform=job.platform, mapping=dict(job.column_targets()), encoding=job.encoding,
                        total_rows=job.total_rows, processed=job.processed, counts=ImportCounts(**job.counts()),
                        errors=job.error_lines(), message=job.message, created_at=job.created_at,
                        started_at=job.started_at, finished_at=job.finished_at)


async def _read_file(request: Request) -> tuple[bytes, str] | Response:
    """The CSV bytes and a file name, or the error answer; never more than MAX_UPLOAD is read."""
    too_big = error(413, "too_large", f"The file is larger than {MAX_UPLOAD // MIB} MiB; split it into parts.",
                    {"body": f"at most {MAX_UPLOAD // MIB} MiB"})
    size = request.headers.get("content-length", "")
    if size.isdigit() and int(size) > MAX_UPLOAD + 64 * 1024:
        return too_big
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        try:
            form = await request.form(max_files=1, max_fields=5)
        except Exception:  # python-multipart's errors vary; a broken body is the client's to fix
            return error(422, "invalid_request", "The multipart body could not be read.", {"file": "unreadable"})
        file = form.get("file")
        if file is None or isinstance(file, str):
            return error(422, "invalid_request", "The multipart body needs a `file` part.", {"file": "is required"})
        data, name = await file.read(MAX_UPLOAD + 1), file.filename or "upload.csv"
    elif kind in ("text/csv", "text/plain", "application/octet-stream", "application/csv"):
        chunks, total = [], 0
        async for chunk in request.stream():
            total += len(chunk)
            if total > MAX_UPLOAD:
                return too_big
            chunks.append(chunk)
        data, name = b"".join(chunks), "api.csv"
    else:
        return error(415, "unsupported_media_type", "Send the CSV as text/csv or as multipart/form-data `file`.",
                     {"content-type": f"{kind or 'none'} is not text/csv or multipart/form-data"})
    return (data, name) if len(data) <= MAX_UPLOAD else too_big


def _mapping(raw: str) -> dict[str, str] | None:
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise InvalidInput('mapping: must be a JSON object of column -> target, like {"E-mail": "email"}')
    return value


@router.post("/readers/imports", status_code=202, response_model=ImportJobOut, openapi_extra=CSV_BODY,
             responses={413: {"model": ErrorOut}, 415: {"model": ErrorOut}}, summary="Import readers from a CSV")
async def create_import(request: Request, ctx: Console, actor: ManagingReaders,
                        platform: Annotated[str, Query(pattern="^(" + "|".join(CHOICES) + ")$")] = "auto",
                        dry_run: bool = False, skip_bad_rows: bool = False,
                        mapping: Annotated[str, Query(max_length=20000, description="JSON: column -> target")] = ""
                        ) -> Response:
    """Queue a background import (or dry run) of a CSV export; 202 with the job to poll."""
    read = await _read_file(request)
    if isinstance(read, Response):
        return read
    return await run_in_threadpool(_start, request, ctx, actor, read, platform, dry_run, skip_bad_rows, mapping)


def _start(request: Request, ctx, actor: audit.Actor, read: tuple[bytes, str], platform: str, dry_run: bool,
           skip_bad_rows: bool, mapping: str) -> Response:
    data, name = read
    try:
        with session_scope(ctx.engine) as session:
            job = import_jobs.create_from_upload(session, data, filename=name, created_by=actor.label,
                                                 platform=platform, mapping=_mapping(mapping),
                                                 state=JobState.queued, dry_run=dry_run, skip_bad_rows=skip_bad_rows)
            audit.record(session, actor, "readers.import.start", f"import_job:{job.id}", after=import_jobs.summary(job))
            out = job_out(job)
    except InvalidInput as exc:
        field, _, reason = str(exc).partition(": ")
        return error(422, "invalid_request", str(exc), {field if reason else "body": reason or str(exc)})
    wake_runner(request)
    return JSONResponse(out.model_dump(mode="json"), 202, headers={"Location": f"/api/v1/readers/imports/{out.id}"})


@router.get("/readers/imports/{job_id}", response_model=ImportJobOut, responses={404: {"model": ErrorOut}})
def get_import(ctx: Console, _actor: Reading, job_id: Annotated[int, Path(ge=1, le=2**31 - 1)]) -> Response:
    """An import job's state, progress and counts."""
    with session_scope(ctx.engine) as session:
        job = session.get(ImportJob, job_id)
        if job is None:
            return error(404, "not_found", "There is no import job with this id.", {"id": "unknown"})
        return JSONResponse(job_out(job).model_dump(mode="json"))
