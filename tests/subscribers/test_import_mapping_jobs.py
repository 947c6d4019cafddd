"""Import jobs in the background, on SQLite and PostgreSQL: 50,000 rows through the runner thread
with visible progress, a runner killed with SIGKILL mid-import whose job is resumed (nothing twice,
nothing lost), and a job that keeps dying is marked failed with where it stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

from sqlalchemy import update

from newsletter.db import session_scope, utcnow
from newsletter.subscribers.import_jobs import MAX_ATTEMPTS, ImportJob
from newsletter.subscribers.import_runner import ImportRunner, run_next
from tests.conftest import PROJECT_ROOT
from tests.subscribers.import_helpers import categories_of, job, queue_file, row_counts

HEADER = "Email Address,First Name,Last Name,MEMBER_RATING,OPTIN_TIME,OPTIN_IP,CONFIRM_TIME,CONFIRM_IP,TAGS\n"


def mailchimp_export(rows: int) -> bytes:
    lines = [f"reader{n:06d}@example.com,Reader,No {n},2,2022-01-01 10:00:00,192.0.2.{n % 250 + 1},"
             f"2022-01-01 10:05:00,192.0.2.{n % 250 + 1},\n" for n in range(rows)]
    return (HEADER + "".join(lines)).encode()


def wait_for(condition, timeout: float, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"not within {timeout} s")


def test_fifty_thousand_rows_run_in_the_background_with_progress(sample_engine, db_url):
    rows = 50_000
    job_id = queue_file(sample_engine, mailchimp_export(rows), filename="big.csv")
    runner = ImportRunner(sample_engine, categories_of(sample_engine), interval=0.5)
    started = time.monotonic()
    runner.start()
    seen: list[int] = []
    try:
        def finished():
            current = job(sample_engine, job_id)
            seen.append(current.processed)
            return current if current.state in ("done", "failed") else None
        done = wait_for(finished, timeout=900, step=0.5)
    finally:
        runner.shutdown()
    elapsed = time.monotonic() - started
    print(f"\n50,000-row import on {db_url.split(':')[0]}: {elapsed:.1f} s ({rows / elapsed:.0f} rows/s)")
    assert done.state == "done", done.message
    assert (done.total_rows, done.processed, done.added) == (rows, rows, rows)
    assert any(0 < value < rows for value in seen), "no progress was visible while it ran"
    assert row_counts(sample_engine)["Subscriber"] == rows


KILLABLE = """
import sys
from newsletter.db import make_engine
from newsletter.subscribers.import_runner import run_next
from tests.subscribers.import_helpers import categories_of
engine = make_engine(sys.argv[1])
run_next(engine, categories_of(engine), "doomed-runner")
"""


def test_a_killed_runners_job_is_resumed_without_doing_any_row_twice(sample_engine, db_url):
    rows = 6_000
    job_id = queue_file(sample_engine, mailchimp_export(rows), filename="resume.csv")
    doomed = subprocess.Popen([sys.executable, "-c", KILLABLE, db_url], cwd=PROJECT_ROOT)
    try:
        wait_for(lambda: job(sample_engine, job_id).processed >= 1000, timeout=120)
    finally:
        os.kill(doomed.pid, signal.SIGKILL)
        doomed.wait()
    stopped = job(sample_engine, job_id)
    assert stopped.state == "running" and 0 < stopped.processed < rows
    assert row_counts(sample_engine)["Subscriber"] == stopped.processed  # each batch committed whole
    assert run_next(sample_engine, categories_of(sample_engine)) is None  # its heartbeat is still fresh
    with session_scope(sample_engine) as session:  # the clock moves past the stale limit
        session.execute(update(ImportJob).where(ImportJob.id == job_id)
                        .values(heartbeat_at=utcnow() - timedelta(minutes=5)))
    assert run_next(sample_engine, categories_of(sample_engine)) == job_id
    resumed = job(sample_engine, job_id)
    assert resumed.state == "done" and resumed.attempts == 2 and "resumed 1 times" in resumed.message
    assert (resumed.processed, resumed.added, resumed.refused) == (rows, rows, 0)
    assert row_counts(sample_engine)["Subscriber"] == rows


def test_a_job_that_keeps_dying_is_marked_failed_not_left_running(sample_engine):
    job_id = queue_file(sample_engine, mailchimp_export(10), filename="cursed.csv")
    with session_scope(sample_engine) as session:
        session.execute(update(ImportJob).where(ImportJob.id == job_id).values(
            state="running", worker="gone", attempts=MAX_ATTEMPTS, processed=4,
            heartbeat_at=utcnow() - timedelta(minutes=5)))
    assert run_next(sample_engine, categories_of(sample_engine)) == job_id
    failed = job(sample_engine, job_id)
    assert failed.state == "failed"
    assert failed.message.startswith(f"stopped {MAX_ATTEMPTS} times while running; rows 1 to 4 were imported")


def test_files_of_uploads_nobody_finished_do_not_stay(sample_engine):
    from newsletter.subscribers.import_jobs import drop_old_files

    old = utcnow() - timedelta(days=8)
    draft, dry, fresh = (queue_file(sample_engine, mailchimp_export(2)) for _ in range(3))
    with session_scope(sample_engine) as session:
        session.execute(update(ImportJob).where(ImportJob.id == draft).values(state="draft", created_at=old))
        session.execute(update(ImportJob).where(ImportJob.id == dry).values(state="done", created_at=old))
        session.execute(update(ImportJob).where(ImportJob.id == fresh).values(state="done"))
        assert drop_old_files(session) == 2
    with session_scope(sample_engine) as session:
        assert session.get(ImportJob, draft) is None
        assert session.get(ImportJob, dry).data is None and session.get(ImportJob, fresh).data is not None
