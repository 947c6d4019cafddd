"""Idle workers are woken by a NOTIFY on PostgreSQL (newsletter/delivery/wakeup.py), the poll stays
the fallback, and every delivery guarantee holds when several workers wake together.

The poll interval is set to 30 s in these tests: a message delivered within a few seconds of a
send can only have come through the wake-up.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import text, update

from newsletter.db import make_engine, session_scope, utcnow
from newsletter.delivery import outbox
from newsletter.delivery.control import pause_issue, resume_issue
from newsletter.delivery.sender import deliver, start_send
from newsletter.delivery.transports import make_transport
from newsletter.delivery.wakeup import Wakeup
from newsletter.issues.models import Issue
from newsletter.wake import announce
from tests.conftest import TEST_SECRET
from tests.delivery.test_workers import counts, finish, popen, rows, setup_issue, wait_for, worker_cmd

SLOW_POLL = "[delivery]\npoll_seconds = 30\nbatch_size = 5\n"


def listening(engine, pids: list[int]) -> int:
    """How many of these worker processes have their listening connection open (they wait on it)."""
    with engine.connect() as connection:
        names = connection.execute(text(
            "SELECT application_name FROM pg_stat_activity WHERE application_name LIKE 'newsletter listen %'"
        )).scalars().all()
    return sum(any(f":{pid}:" in name for name in names) for pid in pids)


@contextmanager
def running_worker(config, *args: str) -> Iterator:
    """`newsletter worker ARGS` for the block; stopped with SIGTERM after it, and it must exit 0."""
    process = popen(worker_cmd(*args), config)
    try:
        yield process
    finally:
        process.terminate()
        code, output = finish(process, timeout=60)
    assert code == 0, output


def delivered(settings) -> int:
    return len(list(settings.mail.file.dir.glob("*.eml")))


@pytest.mark.postgres
def test_a_notify_wakes_a_sleeping_worker_long_before_its_poll(tmp_path, pg_url):
    settings, engine, issue_id = setup_issue(tmp_path, pg_url, 20, SLOW_POLL, start=False)
    with running_worker(tmp_path / "config.toml") as process:
        wait_for(lambda: listening(engine, [process.pid]) == 1, what="the worker waiting on its connection")
        started = time.monotonic()
        assert start_send(engine, issue_id).enqueued == 20
        wait_for(lambda: delivered(settings) == 20, timeout=10, what="all 20 messages")
        assert time.monotonic() - started < 10  # the poll would have taken up to 30 s
        wait_for(lambda: counts(engine, issue_id) == {"sent": 20}, what="the results recorded")
    assert {r.attempts for r in rows(engine, issue_id)} == {1}


@pytest.mark.postgres
def test_a_resume_wakes_the_workers(tmp_path, pg_url):
    settings, engine, issue_id = setup_issue(tmp_path, pg_url, 10, SLOW_POLL, start=False)
    start_send(engine, issue_id)
    pause_issue(engine, issue_id)
    with running_worker(tmp_path / "config.toml") as process:
        wait_for(lambda: listening(engine, [process.pid]) == 1, what="the worker waiting on its connection")
        assert delivered(settings) == 0  # paused: nothing went
        resume_issue(engine, issue_id)
        wait_for(lambda: delivered(settings) == 10, timeout=10, what="the resumed send")


@pytest.mark.postgres
def test_the_poll_still_finds_work_whose_notify_was_missed(tmp_path, pg_url):
    """Work made without a NOTIFY (as if the notification was lost) is found by the poll."""
    settings, engine, issue_id = setup_issue(tmp_path, pg_url, 10, "[delivery]\npoll_seconds = 1\n", start=False)
    with running_worker(tmp_path / "config.toml") as process:
        wait_for(lambda: listening(engine, [process.pid]) == 1, what="the worker waiting on its connection")
        with session_scope(engine) as session:  # start_send without its announce
            session.execute(update(Issue).where(Issue.id == issue_id).values(state="sending", started_at=utcnow()))
            assert outbox.enqueue(session, issue_id, utcnow()) == 10
        wait_for(lambda: delivered(settings) == 10, timeout=20, what="the poll to find the send")


@pytest.mark.postgres
def test_a_worker_started_after_the_notify_sends_at_once(tmp_path, pg_url):
    settings, engine, issue_id = setup_issue(tmp_path, pg_url, 10, SLOW_POLL)  # notified to nobody
    with running_worker(tmp_path / "config.toml"):
        wait_for(lambda: delivered(settings) == 10, timeout=20, what="the first pass")


@pytest.mark.postgres
def test_two_workers_woken_together_send_every_delivery_exactly_once(tmp_path, pg_url):
    settings, engine, issue_id = setup_issue(tmp_path, pg_url, 200, SLOW_POLL, start=False)
    with running_worker(tmp_path / "config.toml", "--processes", "2") as process:
        wait_for(lambda: listening(engine, descendants(process.pid)) == 2, what="both workers waiting")
        start_send(engine, issue_id)
        wait_for(lambda: counts(engine, issue_id) == {"sent": 200}, timeout=25, what="all 200 sent")
    sent = rows(engine, issue_id)
    assert {r.attempts for r in sent} == {1}  # each row claimed once
    assert len(Counter(r.claimed_by for r in sent)) == 2  # both woke and shared the queue
    assert delivered(settings) == 200


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (the worker processes: children of the parent, or of a forkserver)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            found = [int(child) for child in handle.read().split()]
    except OSError:
        return []
    return found + [below for child in found for below in descendants(child)]


# --- the wait itself ------------------------------------------------------------------------------

@pytest.mark.postgres
def test_the_wait_ends_on_a_commit_not_before_and_comes_back_after_a_lost_connection(pg_url):
    engine = make_engine(pg_url)
    name = f"test:{os.getpid()}:{secrets.token_hex(3)}"
    wakeup, never = Wakeup(engine, name), threading.Event()
    try:
        assert wakeup.wait(0.5, never) is True  # the first LISTEN: look once more, now listening
        started = time.monotonic()
        assert wakeup.wait(0.5, never) is False and time.monotonic() - started >= 0.45  # the timeout
        with session_scope(engine) as session:
            announce(session)
            assert wakeup.wait(0.5, never) is False  # not committed yet: nobody is woken
        started = time.monotonic()
        assert wakeup.wait(10, never) is True and time.monotonic() - started < 2
        for _ in range(3):  # a burst of work, three transactions
            with session_scope(engine) as session:
                announce(session)
        time.sleep(0.2)
        assert wakeup.wait(10, never) is True  # one wake-up (one pass) for the whole burst
        assert wakeup.wait(0.3, never) is False
        with engine.begin() as connection:  # the database drops the listening session
            connection.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                    "WHERE application_name = :name"), {"name": f"newsletter listen {name}"})
        assert wakeup.wait(1, never) is False  # it notices, falls back to the poll
        assert wakeup.wait(1, never) is True  # reconnected: something may have been missed, look now
        stopping = threading.Event()
        threading.Timer(0.3, stopping.set).start()
        started = time.monotonic()
        assert wakeup.wait(30, stopping) is False and time.monotonic() - started < 2  # a stop ends it
    finally:
        wakeup.close()
        engine.dispose()


@pytest.mark.postgres
def test_work_announced_before_a_workers_first_listen_is_looked_for_at_once(pg_url):
    """A worker LISTENs at its first wait, after its first pass looked for work: a send committed in
    between was announced to nobody, and the worker slept out its poll (5 s) before sending it."""
    engine = make_engine(pg_url)
    wakeup, never = Wakeup(engine, f"test:{os.getpid()}:{secrets.token_hex(3)}"), threading.Event()
    try:
        with session_scope(engine) as session:  # after the first pass, before the first wait
            announce(session)
        assert wakeup.wait(3, never) is True  # look again: the send is found by that pass
        assert wakeup.wait(0.3, never) is False  # and from here on, the notifications
    finally:
        wakeup.close()
        engine.dispose()


@pytest.mark.postgres
def test_the_end_of_a_send_wakes_the_workers_waiting_on_its_last_rows(tmp_path, pg_url):
    """A worker that finds nothing to claim while another holds the send's last batch waits for
    those rows (`--until-idle`: a heartbeat at a time, 2 s). The send's end wakes it: it looks
    again and, with nothing left, exits then, not up to a heartbeat later (at 20,000 readers that
    wait was a tenth of the send's wall time in `bench scale`)."""
    settings, engine, issue_id = setup_issue(tmp_path, pg_url, 3)
    wakeup, never = Wakeup(engine, f"test:{os.getpid()}:{secrets.token_hex(3)}"), threading.Event()
    try:
        assert wakeup.wait(0.2, never) is True  # the first LISTEN (look once more); listening from here on
        assert wakeup.wait(0.2, never) is False  # the send's start was announced before: nothing new
        assert deliver(engine, settings, make_transport(settings), TEST_SECRET, issue_id).finished
        started = time.monotonic()
        assert wakeup.wait(5, never) is True and time.monotonic() - started < 2
    finally:
        wakeup.close()
        engine.dispose()


def test_on_sqlite_the_wait_is_the_poll(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    wakeup = Wakeup(engine)
    started = time.monotonic()
    assert wakeup.wait(0.3, threading.Event()) is False and time.monotonic() - started >= 0.25
    with session_scope(engine) as session:
        announce(session)  # a no-op, not an error


@pytest.mark.postgres
def test_work_in_another_schema_of_the_same_database_wakes_nobody(pg_server, pg_url):
    """NOTIFY is database-wide; the channel is per schema, so a publication (or a test run) in
    another schema of the same database does not wake this one's workers."""
    other = f"wv_test_{secrets.token_hex(6)}"
    admin = make_engine(pg_server)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{other}"'))
    here, there = make_engine(pg_url), make_engine(f"{pg_server}?options=-csearch_path%3D{other}")
    wakeup, never = Wakeup(here, f"test:{os.getpid()}:{secrets.token_hex(3)}"), threading.Event()
    try:
        assert wakeup.wait(0.2, never) is True  # the first LISTEN (look once more); listening from here on
        with session_scope(there) as session:
            announce(session)
        assert wakeup.wait(1.0, never) is False
        with session_scope(here) as session:
            announce(session)
        assert wakeup.wait(10, never) is True
    finally:
        wakeup.close()
        there.dispose()
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{other}" CASCADE'))
        admin.dispose()
