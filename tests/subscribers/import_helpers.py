"""Shared by the import tests: the sample export files and running a job to its end."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func
from sqlmodel import select

from newsletter.content.categories import publication_categories
from newsletter.db import session_scope
from newsletter.subscribers import import_jobs
from newsletter.subscribers.import_jobs import ImportJob, JobState
from newsletter.subscribers.import_runner import run_next
from newsletter.subscribers.models import ConsentEvent, Subscriber, SubscriberTopic, Suppression

DATA = Path(__file__).resolve().parents[1] / "data" / "imports"


def categories_of(engine):
    def read() -> list[str]:
        with session_scope(engine) as session:
            return publication_categories(session)
    return read


def queue_file(engine, data: bytes, *, dry_run: bool = False, skip_bad_rows: bool = True, platform: str = "auto",
               mapping: dict | None = None, filename: str = "test.csv") -> int:
    with session_scope(engine) as session:
        job = import_jobs.create_from_upload(session, data, filename=filename, created_by="test", platform=platform,
                                             mapping=mapping, state=JobState.queued, dry_run=dry_run,
                                             skip_bad_rows=skip_bad_rows)
        return job.id


def run_all(engine) -> None:
    """Every queued job to its end, as the web process's runner does it (with its audit entry)."""
    from newsletter.web.console.import_pages import record_job_end

    while run_next(engine, categories_of(engine), on_finish=record_job_end):
        pass


def job(engine, job_id: int) -> ImportJob:
    with session_scope(engine) as session:
        found = session.get(ImportJob, job_id)
        session.expunge(found)
        return found


def import_file(engine, name: str, **options) -> ImportJob:
    job_id = queue_file(engine, (DATA / name).read_bytes(), filename=name, **options)
    run_all(engine)
    return job(engine, job_id)


def reader(engine, email: str) -> Subscriber | None:
    with session_scope(engine) as session:
        found = session.exec(select(Subscriber).where(Subscriber.email == email)).first()
        if found is not None:
            session.expunge(found)
        return found


def events(engine, email: str) -> list[tuple]:
    with session_scope(engine) as session:
        rows = session.exec(select(ConsentEvent).join(Subscriber, Subscriber.id == ConsentEvent.subscriber_id)
                            .where(Subscriber.email == email).order_by(ConsentEvent.id))
        return [(e.kind, e.source, e.created_at, e.ip, e.detail) for e in rows]


def row_counts(engine) -> dict[str, int]:
    """Rows of every table an import may write (and the jobs' own rows aside)."""
    with session_scope(engine) as session:
        return {model.__name__: session.exec(select(func.count()).select_from(model)).one()
                for model in (Subscriber, SubscriberTopic, ConsentEvent, Suppression)}
