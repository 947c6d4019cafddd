"""Crash safety on PostgreSQL (issue 6.6): four worker processes share one queue, two `issue send`
calls race, and the database restarts under a sending worker (a throwaway cluster of the test's
own: the machine's server is never stopped). Every subscriber gets the issue
exactly once (counted on a real SMTP server's log, not on files a repeat would overwrite)."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from sqlalchemy import func, select

from newsletter.db import dispose_engines
from newsletter.delivery.models import Delivery
from newsletter.delivery.sender import deliver, start_send
from newsletter.delivery.transports import make_transport
from tests import pg_cluster
from tests.conftest import IN_CI, TEST_SECRET
from tests.pg_cluster import ThrowawayCluster
from tests.fakes.smtp_server import start_server
from tests.delivery.test_workers import counts, finish, issue_state, popen, rows, setup_issue, smtp_extra, wait_for, \
    worker_cmd

pytestmark = pytest.mark.postgres


@pytest.fixture
def smtp():
    controller, handler = start_server(delay=0.02)
    yield controller, handler
    controller.stop()


def test_four_worker_processes_each_send_a_share_and_every_reader_gets_one(tmp_path, pg_url, smtp):
    controller, handler = smtp
    extra = smtp_extra(controller.port, batch_size=4).replace("pool_size = 1", "pool_size = 2")
    settings, engine, issue_id = setup_issue(tmp_path, pg_url, 400, extra, "smtp")
    code, output = finish(popen(worker_cmd("--processes", "4", "--until-idle"), tmp_path / "config.toml"))
    assert code == 0, output
    assert "4 worker processes started" in output
    delivered = rows(engine, issue_id)
    assert Counter(r.state for r in delivered) == {"sent": 400}
    assert {r.attempts for r in delivered} == {1}
    workers = Counter(r.claimed_by for r in delivered)
    assert len(workers) == 4, workers  # every process claimed a share of the queue
    assert len({w.rsplit(":", 2)[1] for w in workers}) == 4  # four pids
    received = Counter(m.rcpt_tos[0] for m in handler.messages)
    assert received == {r.email: 1 for r in delivered}  # each reader exactly one message
    assert issue_state(engine, issue_id) == "sent"
    engine.dispose()


def test_two_sends_at_once_enqueue_each_reader_once(tmp_path, pg_url):
    settings, engine, issue_id = setup_issue(tmp_path, pg_url, 3000, "[delivery]\nbatch_size = 500\n", start=False)
    barrier = threading.Barrier(2)
    results, errors = [], []

    def send():
        try:
            barrier.wait(timeout=10)
            results.append(start_send(engine, issue_id))
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert sorted(r.started for r in results) == [False, True]  # exactly one of them started it
    assert sorted(r.enqueued for r in results) == [0, 3000]
    with engine.connect() as connection:
        per_reader = connection.execute(
            select(func.count(), func.count(func.distinct(Delivery.subscriber_id))).where(Delivery.issue_id == issue_id)
        ).one()
    assert tuple(per_reader) == (3000, 3000)
    report = deliver(engine, settings, make_transport(settings), TEST_SECRET, issue_id)
    assert report.sent == 3000 and report.finished
    assert len(list(settings.mail.file.dir.glob("*.eml"))) == 3000
    assert counts(engine, issue_id) == {"sent": 3000}
    engine.dispose()


# --- a PostgreSQL restart under a sending worker ----------------------------------------------------

@pytest.fixture
def restartable_pg():
    """A throwaway cluster of this test's own (tests/pg_cluster.py): restarting it touches nothing
    else on the machine. Removed afterwards."""
    problem = pg_cluster.unavailable()
    if problem:
        if IN_CI:
            pytest.fail(f"a throwaway PostgreSQL cluster is required under CI=true: {problem}")
        pytest.skip(problem)
    cluster = ThrowawayCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        dispose_engines()
        cluster.remove()


def test_a_worker_survives_a_postgresql_restart_and_finishes(tmp_path, restartable_pg, smtp):
    cluster = restartable_pg
    controller, handler = smtp
    settings, engine, issue_id = setup_issue(tmp_path, cluster.url, 300, smtp_extra(controller.port, batch_size=5), "smtp")
    process = popen(worker_cmd("--until-idle"), tmp_path / "config.toml")
    try:
        wait_for(lambda: len(handler.messages) >= 40 or process.poll() is not None, what="40 messages")
        assert process.poll() is None, "the worker finished before the restart"
        cluster.restart()
        during = len(handler.messages)
        cluster.wait_accepting()
        code, output = finish(process, timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert code == 0, output
    assert during < 300, "the restart came too late to test anything"
    engine.dispose()  # its pooled connections died with the server
    assert counts(engine, issue_id) == {"sent": 300}, output
    assert issue_state(engine, issue_id) == "sent"
    received = Counter(m.rcpt_tos[0] for m in handler.messages)
    assert set(received) == {r.email for r in rows(engine, issue_id)}  # nobody lost
    repeated = [email for email, n in received.items() if n > 1]
    assert len(repeated) <= 5 and max(received.values()) <= 2, repeated  # at most the batch in flight
    engine.dispose()

