"""Import jobs: an uploaded CSV kept in the database until a background runner has imported it.

A job is `draft` (uploaded, mapping not yet confirmed), `queued`, `running`, `done` or `failed`.
The file lives in the row (`data`), so the job does not depend on the request that uploaded it or
on the web process that took it: any runner on any host can claim it. A runner claims a job with
one conditional UPDATE and beats `heartbeat_at` with every batch it commits; each batch commits
its rows and the job's progress in one transaction, so `processed` is exactly what is in the
store. A job whose runner went silent (killed, host lost) for STALE_SECONDS is claimed again and
resumes after `processed`; after MAX_ATTEMPTS claims it is marked failed, saying where it stopped.
A finished real import drops the file (personal data does not linger); a dry run keeps it for the
import that follows.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import Column, Text, delete, or_, update
from sqlmodel import Field, Session, SQLModel, select

from newsletter.db import NEVER_REUSE_IDS, utcnow
from newsletter.subscribers.mapping import mapping_for, platform_for, read_upload

STALE_SECONDS = 60
MAX_ATTEMPTS = 3
KEEP_FILES = timedelta(days=7)  # an unfinished upload's file (a draft, a dry run not followed up, a failure)


class JobState(StrEnum):
    draft = "draft"
    queued = "queued"
    running = "running"
    done = "done"
    failed = "failed"


class ImportJob(SQLModel, table=True):
    __tablename__ = "import_job"
    __table_args__ = (NEVER_REUSE_IDS,)

    id: int | None = Field(default=None, primary_key=True)
    state: str = Field(default=JobState.draft.value, max_length=16, index=True)
    dry_run: bool = True
    skip_bad_rows: bool = False
    platform: str = Field(max_length=16)  # newsletter.subscribers.platforms key
    mapping: str = Field(sa_column=Column(Text, nullable=False))  # JSON [[column, target], ...] in file order
    filename: str = Field(default="", max_length=200)
    encoding: str = Field(default="UTF-8", max_length=40)
    delimiter: str = Field(default=",", max_length=4)
    data: str | None = Field(default=None, sa_column=Column(Text, nullable=True))  # the decoded CSV
    total_rows: int = 0
    processed: int = 0  # data records handled (committed) so far, good or bad
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    suppressed: int = 0
    refused: int = 0
    errors: str = Field(default="[]", sa_column=Column(Text, nullable=False))  # JSON ["line N: reason", ...], capped
    message: str = Field(default="", sa_column=Column(Text, nullable=False))  # why it failed, or how it ended
    created_by: str = Field(max_length=300)  # the audit actor's label
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    heartbeat_at: datetime | None = None
    worker: str | None = Field(default=None, max_length=100)
    attempts: int = 0

    def column_targets(self) -> list[tuple[str, str]]:
        return [(name, target) for name, target in json.loads(self.mapping)]

    def error_lines(self) -> list[str]:
        return list(json.loads(self.errors or "[]"))

    def counts(self) -> dict[str, int]:
        return {"new": self.added, "updated": self.updated, "unchanged": self.unchanged,
                "suppressed": self.suppressed, "refused": self.refused}

    @property
    def percent(self) -> int:
        return min(100, self.processed * 100 // self.total_rows) if self.total_rows else 0


def summary(job: ImportJob) -> dict:
    """The job without its file: for the audit log and the API."""
    return {"id": job.id, "state": job.state, "dry_run": job.dry_run, "platform": job.platform,
            "filename": job.filename, "total_rows": job.total_rows, "processed": job.processed,
            **job.counts(), "message": job.message}


def create(session: Session, *, text: str, platform: str, mapping: dict[str, str], filename: str, encoding: str,
           delimiter: str, created_by: str, state: JobState = JobState.draft, dry_run: bool = True,
           skip_bad_rows: bool = False) -> ImportJob:
    job = ImportJob(state=state.value, dry_run=dry_run, skip_bad_rows=skip_bad_rows, platform=platform,
                    mapping=json.dumps(list(mapping.items())), filename=filename[:200], encoding=encoding,
                    delimiter=delimiter, data=text, created_by=created_by)
    session.add(job)
    session.flush()
    return job


def queue(session: Session, job: ImportJob, *, dry_run: bool, mapping: dict[str, str] | None = None,
          skip_bad_rows: bool | None = None) -> None:
    """(Re)start a draft or finished dry run as a dry run or the real import, from the first row."""
    if mapping is not None:
        job.mapping = json.dumps(list(mapping.items()))
    if skip_bad_rows is not None:
        job.skip_bad_rows = skip_bad_rows
    job.state, job.dry_run, job.processed, job.attempts = JobState.queued.value, dry_run, 0, 0
    job.added = job.updated = job.unchanged = job.suppressed = job.refused = 0
    job.errors, job.message, job.started_at, job.finished_at = "[]", "", None, None
    session.add(job)


def can_queue(job: ImportJob) -> bool:
    """A draft, a failed job or a dry run that finished, with its file still here."""
    return job.data is not None and (job.state in (JobState.draft.value, JobState.failed.value) or
                                     (job.state == JobState.done.value and job.dry_run))


def _claimable(now: datetime):
    stale = now - timedelta(seconds=STALE_SECONDS)
    return or_(ImportJob.state == JobState.queued.value,
               (ImportJob.state == JobState.running.value) & (ImportJob.heartbeat_at < stale))


def claim_next(session: Session, worker: str) -> int | None:
    """The oldest queued job, or one whose runner went silent, now held by `worker`; None if none."""
    now = utcnow()
    for job_id in session.exec(select(ImportJob.id).where(_claimable(now)).order_by(ImportJob.id).limit(5)):
        taken = session.execute(update(ImportJob).where(ImportJob.id == job_id, _claimable(now)).values(
            state=JobState.running.value, worker=worker[:100], heartbeat_at=now,
            attempts=ImportJob.attempts + 1)).rowcount
        if taken:
            return job_id
    return None


def beat(session: Session, job_id: int, worker: str, **values) -> None:
    """Progress and heartbeat in the batch's own transaction; raises LostJob when another runner
    holds the job now (this one was thought dead), so the batch rolls back."""
    done = session.execute(update(ImportJob).where(
        ImportJob.id == job_id, ImportJob.worker == worker, ImportJob.state == JobState.running.value
    ).values(heartbeat_at=utcnow(), **values)).rowcount
    if not done:
        raise LostJob(job_id)


def drop_old_files(session: Session) -> int:
    """Uploads nobody finished are personal data without a purpose after KEEP_FILES: drafts go,
    dry runs and failed jobs keep their counts but lose the file. The number of jobs touched."""
    cutoff = utcnow() - KEEP_FILES
    idle = (ImportJob.created_at < cutoff) & ImportJob.state.in_([JobState.done.value, JobState.failed.value])
    touched = session.execute(delete(ImportJob).where(ImportJob.state == JobState.draft.value,
                                                      ImportJob.created_at < cutoff)).rowcount
    return touched + session.execute(update(ImportJob).where(idle, ImportJob.data.is_not(None))
                                     .values(data=None)).rowcount


class LostJob(Exception):
    """The job is no longer this runner's."""


def create_from_upload(session: Session, data: bytes, *, filename: str, created_by: str, platform: str = "auto",
                       mapping: dict[str, str] | None = None, state: JobState = JobState.draft, dry_run: bool = True,
                       skip_bad_rows: bool = False) -> ImportJob:
    """A job for an uploaded file: decoded, its platform detected (or the one named), its mapping
    checked; InvalidInput (naming the file, platform or mapping) when any of it does not hold."""
    upload = read_upload(data)
    chosen = platform_for(upload, platform)
    return create(session, text=upload.text, platform=chosen.key, mapping=mapping_for(upload, chosen, mapping),
                  filename=filename, encoding=upload.encoding, delimiter=upload.delimiter, created_by=created_by,
                  state=state, dry_run=dry_run, skip_bad_rows=skip_bad_rows)
