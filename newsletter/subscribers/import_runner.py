"""Runs import jobs in the background (import_jobs.py says how they are claimed and resumed).

`ImportRunner` is a thread of the web process (`newsletter serve` / `run`), woken at once when a
job is queued and otherwise looking every few seconds, also for jobs a dead process left
running. `run_next` runs one job to its end in the calling thread (the CLI and tests use it).

A real import without skip_bad_rows first reads the whole file: one bad row fails the job with
every bad line listed and nothing written, as `newsletter subscribers import` does. Then rows go
in batches of BATCH, each batch and the job's progress committed together.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice

from sqlalchemy import Engine
from sqlmodel import Session

from newsletter.wakeable import WakeableThread
from newsletter.db import session_scope, utcnow
from newsletter.subscribers.import_jobs import MAX_ATTEMPTS, ImportJob, JobState, LostJob, beat, claim_next, \
    drop_old_files
from newsletter.subscribers.import_plan import MAX_NOTES, Tally, run_chunk
from newsletter.subscribers.importing import Row
from newsletter.subscribers.service import InvalidInput
from newsletter.subscribers.mapping import Upload, mapped_rows, mapping_for, parse_text, platform_for, read_upload
from newsletter.subscribers.platforms import PLATFORMS
from newsletter.text import counted

log = logging.getLogger(__name__)
BATCH = 5000  # records per committed step of a job: its progress, and what a restart may redo
Categories = Callable[[], list[str]]
Finished = Callable[[Session, ImportJob], None]


def runner_id() -> str:
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{threading.get_ident() % 100000}"


@dataclass(frozen=True)
class Claim:
    """A job held by this runner, and what finishing it involves."""

    engine: Engine
    job_id: int
    worker: str
    stop: threading.Event
    on_finish: Finished | None  # e.g. the console's audit entry, in the finishing transaction


def run_next(engine: Engine, categories: Categories, worker: str | None = None, stop: threading.Event | None = None,
             on_finish: Finished | None = None) -> int | None:
    """Claim one job and run it; the job's id, or None when there was nothing to do. `on_finish`
    is called with the session and the job in the transaction that ends it (the web layer writes
    the audit log entry there: this package stays below editors)."""
    worker = worker or runner_id()
    with session_scope(engine) as session:
        job_id = claim_next(session, worker)
    if job_id is None:
        return None
    claim = Claim(engine, job_id, worker, stop or threading.Event(), on_finish)
    try:
        _run(claim, categories())
    except LostJob:
        log.warning("import job %s was taken over by another runner", job_id)
    except Exception as exc:  # a bug or a lost database: say so on the job, never half-silent
        log.exception("import job %s failed", job_id)
        _finish(claim, JobState.failed, f"stopped by an error: {type(exc).__name__}: {exc}"[:500])
    return job_id


def _load(engine: Engine, job_id: int) -> ImportJob:
    with session_scope(engine) as session:
        job = session.get(ImportJob, job_id)
        session.expunge(job)
    return job


def _run(claim: Claim, categories: list[str]) -> None:
    engine, job_id, worker = claim.engine, claim.job_id, claim.worker
    job = _load(engine, job_id)
    if job.attempts > MAX_ATTEMPTS:
        _finish(claim, JobState.failed, f"stopped {MAX_ATTEMPTS} times while running; rows 1 to "
                f"{job.processed} were imported, the rest were not. Upload the rest again.")
        return
    upload = parse_text(job.data or "", job.encoding, job.delimiter)
    platform, mapping = PLATFORMS[job.platform], dict(job.column_targets())
    records = lambda: mapped_rows(upload, platform, mapping, categories)  # noqa: E731
    with session_scope(engine) as session:
        beat(session, job_id, worker, started_at=job.started_at or utcnow(),
             total_rows=job.total_rows or sum(1 for _ in _count(upload)))
    if not job.dry_run and not job.skip_bad_rows and job.processed == 0:
        bad = [error for _, row, error in records() if row is None]
        if bad:
            _finish(claim, JobState.failed, f"{counted(len(bad), 'bad row')}, nothing imported; fix them or "
                    "import with \"leave bad rows out\"", refused=len(bad), errors=json.dumps(bad[:MAX_NOTES]))
            return
    if _batches(claim, job, records(), mapping):
        done = ("nothing was written; start the import to make these changes" if job.dry_run else
                "every row read: the figures say how many were added, updated, left as they were or refused")
        if job.attempts > 1:
            done += f" (resumed {job.attempts - 1} times after its runner stopped; no row was imported twice)"
        _finish(claim, JobState.done, done, data=job.data if job.dry_run else None)


def _count(upload: Upload) -> Iterator[None]:
    import csv
    import io

    reader = csv.reader(io.StringIO(upload.text), delimiter=upload.delimiter)
    next(reader, None)
    try:
        for record in reader:
            if any(value.strip() for value in record):
                yield None
    except csv.Error:
        return


def _batches(claim: Claim, job: ImportJob, records: Iterator, mapping: dict[str, str]) -> bool:
    """Every batch after the job's `processed`; False when asked to stop (the job goes back to the queue)."""
    engine, worker, stop = claim.engine, claim.worker, claim.stop
    source, keep_topics = f"import:{job.platform}", "topics" not in mapping.values()
    records = islice(records, job.processed, None)
    processed, errors = job.processed, job.error_lines()
    while batch := list(islice(records, BATCH)):
        if stop.is_set():
            with session_scope(engine) as session:
                beat(session, job.id, worker, state=JobState.queued.value, worker=None)
            return False
        tally = Tally(notes=[])
        rows: list[Row] = [row for _, row, _ in batch if row is not None]
        for _, row, error in batch:
            if row is None:
                tally.refuse(error)
        with session_scope(engine) as session:
            run_chunk(session, rows, tally, source, write=not job.dry_run, keep_topics=keep_topics)
            processed += len(batch)
            errors = (errors + tally.notes)[:MAX_NOTES]
            counts = tally.counts
            beat(session, job.id, worker, processed=processed, errors=json.dumps(errors),
                 added=ImportJob.added + counts["new"], updated=ImportJob.updated + counts["updated"],
                 unchanged=ImportJob.unchanged + counts["unchanged"],
                 suppressed=ImportJob.suppressed + counts["suppressed"], refused=ImportJob.refused + counts["refused"])
    return True


def _finish(claim: Claim, state: JobState, message: str, **values) -> None:
    """The end of a job; `on_finish` sees it in the same transaction."""
    with session_scope(claim.engine) as session:
        beat(session, claim.job_id, claim.worker, state=state.value, message=message, finished_at=utcnow(), **values)
        if claim.on_finish is not None:
            job = session.get(ImportJob, claim.job_id)
            session.refresh(job)
            claim.on_finish(session, job)


def import_now(engine: Engine, data: bytes, categories: list[str], *, platform: str = "auto",
               dry_run: bool = False, skip_bad_rows: bool = False,
               progress: Callable[[int, int], None] | None = None) -> Tally:
    """The mapped import in the calling process, without a job (`subscribers import --from`): the
    same judgement and writes as a job, batch by batch; one bad row writes nothing unless skipped.
    `progress(records done, lines in the file)` after each batch."""
    upload = read_upload(data)
    chosen = platform_for(upload, platform)
    mapping = mapping_for(upload, chosen)
    tally = Tally(notes=[])
    if not dry_run and not skip_bad_rows:
        bad = [error for _, row, error in mapped_rows(upload, chosen, mapping, categories) if row is None]
        if bad:
            raise InvalidInput(f"CSV rejected, nothing imported ({counted(len(bad), 'bad row')}; --skip-bad-rows imports the "
                               "others):\n  " + "\n  ".join(bad[:MAX_NOTES]))
    keep_topics, records = "topics" not in mapping.values(), mapped_rows(upload, chosen, mapping, categories)
    done, lines = 0, upload.text.count("\n")
    while batch := list(islice(records, BATCH)):
        for _, row, error in batch:
            if row is None:
                tally.refuse(error)
        with session_scope(engine) as session:
            run_chunk(session, [row for _, row, _ in batch if row is not None], tally, f"import:{chosen.key}",
                      write=not dry_run, keep_topics=keep_topics)
        done += len(batch)
        if progress is not None:
            progress(done, lines)
    return tally


class ImportRunner(WakeableThread):
    """A background thread that runs queued import jobs; `wake` when one is queued."""

    def __init__(self, engine: Engine, categories: Categories, interval: float = 5.0,
                 on_finish: Finished | None = None) -> None:
        self.engine, self.categories, self.interval, self.on_finish = engine, categories, interval, on_finish
        super().__init__("import-runner", self._loop)

    def _loop(self) -> None:
        worker = runner_id()
        while not self.stop.is_set():
            self.wake.wait(self.interval)
            self.wake.clear()
            try:
                with session_scope(self.engine) as session:
                    drop_old_files(session)
                while not self.stop.is_set() and run_next(self.engine, self.categories, worker, self.stop,
                                                                   self.on_finish):
                    pass
            except Exception:  # the database went away: look again at the next tick
                log.exception("import runner: could not look for jobs; will retry")
