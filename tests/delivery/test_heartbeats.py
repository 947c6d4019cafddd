"""Heartbeats: a crashed worker's batch is taken over within seconds, not at the end of its lease,
and `worker --until-idle` returns only when nothing is left that a worker could do (rows held by a
dead worker are taken over; rows held by a live one are waited for). Real worker processes, real
SIGKILL, a real SMTP server (aiosmtpd) that records what it received; SQLite and PostgreSQL."""

from __future__ import annotations

import signal
import time
from collections import Counter
from datetime import timedelta

from sqlalchemy import insert, select

from newsletter.db import session_scope, utcnow
from newsletter.delivery import outbox, stopping
from newsletter.delivery.models import WorkerHeartbeat
from newsletter.delivery.sender import FIRST_BATCH
from tests.fakes.smtp_server import start_server
from tests.delivery.test_workers import counts, finish, issue_state, popen, rows, setup_issue, wait_for, worker_cmd

BEAT = 0.5  # seconds; a worker is stale after 3 missed beats
LEASE = timedelta(seconds=300)


def _smtp_extra(port: int, batch_size: int) -> str:
    # The lease stays at its default, 300 s: only the heartbeat can explain a take-over in seconds.
    return f"""
        [mail.smtp]
        port = {port}
        timeout = 10
        pool_size = 1

        [delivery]
        batch_size = {batch_size}
        heartbeat_seconds = {BEAT}
        """


def test_a_killed_workers_batch_is_taken_over_and_until_idle_finishes_the_issue(tmp_path, db_url):
    readers, batch = 400, 50
    controller, handler = start_server(delay=0.01)
    try:
        settings, engine, issue_id = setup_issue(tmp_path, db_url, readers, _smtp_extra(controller.port, batch),
                                                 "smtp")
        config = tmp_path / "config.toml"
        victim = popen(worker_cmd(), config)
        # Killed in the middle of a batch: some of it accepted by the server, none of it recorded
        # (the first claim of a pass is FIRST_BATCH rows, the next ones `batch`).
        wait_for(lambda: len(handler.messages) >= FIRST_BATCH + batch + 20 or victim.poll() is not None,
                 timeout=120, what="the small first batch, a batch and a half received")
        victim.send_signal(signal.SIGKILL)
        finish(victim)
        in_flight = [r for r in rows(engine, issue_id) if r.state == "sending"]
        assert in_flight and len({r.claimed_by for r in in_flight}) == 1  # what used to end `--until-idle`
        code, output = finish(popen(worker_cmd("--until-idle"), config), timeout=150)
        assert code == 0, output
    finally:
        controller.stop()
    assert counts(engine, issue_id) == {"sent": readers} and issue_state(engine, issue_id) == "sent"
    taken_over = {r.id: r for r in rows(engine, issue_id) if r.id in {f.id for f in in_flight}}
    assert {r.claimed_by for r in taken_over.values()}.isdisjoint({in_flight[0].claimed_by})
    received = Counter(m.rcpt_tos[0] for m in handler.messages)
    assert set(received) == {r.email for r in rows(engine, issue_id)}  # every reader got it
    repeated = {email for email, n in received.items() if n > 1}
    assert max(received.values()) <= 2 and repeated <= {r.email for r in in_flight}  # only the killed batch
    with session_scope(engine) as session:  # the survivor removed its own beat on the way out
        assert len(session.execute(select(WorkerHeartbeat.worker_id)).all()) == 1  # the killed one's, stale
    engine.dispose()


def test_until_idle_waits_for_rows_a_live_worker_holds(tmp_path, db_url):
    settings, engine, issue_id = setup_issue(tmp_path, db_url, 30, f"[delivery]\nheartbeat_seconds = {BEAT}\n")
    now = utcnow()
    with session_scope(engine) as session:  # a live worker (its beat is fresh for an hour) holds 10 rows
        session.add(WorkerHeartbeat(worker_id="host-a:1:alive", beat_at=now + timedelta(hours=1), started_at=now))
    with session_scope(engine) as session:
        held = outbox.claim(session, issue_id, now, 10, LEASE, "host-a:1:alive")
    process = popen(worker_cmd("--until-idle"), tmp_path / "config.toml")
    try:
        wait_for(lambda: counts(engine, issue_id).get("sent") == 20 or process.poll() is not None, timeout=120,
                 what="the 20 free rows sent")
        # Several beats later it is still there, waiting for the live worker's rows (it used to exit 0).
        time.sleep(6 * BEAT)
        assert process.poll() is None, finish(process)[1]
        with session_scope(engine) as session:  # the live worker gives its rows back
            assert stopping.release(session, "host-a:1:alive", held) == 10
        code, output = finish(process, timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert code == 0, output
    assert counts(engine, issue_id) == {"sent": 30} and issue_state(engine, issue_id) == "sent"
    engine.dispose()


def test_a_claim_takes_rows_of_stale_workers_only(tmp_path, db_url):
    settings, engine, issue_id = setup_issue(tmp_path, db_url, 6)
    now = utcnow()
    stale_before = now - timedelta(seconds=3 * BEAT)
    with session_scope(engine) as session:
        for worker in ("live", "dead", "unknown"):  # "unknown": never beat (e.g. an old version)
            assert len(outbox.claim(session, issue_id, now, 2, LEASE, worker)) == 2
        # The beats as they stand later (a claim moves its worker's beat to the claim's time, so
        # they are written after the claims): "dead" has missed three since.
        session.execute(insert(WorkerHeartbeat), [
            {"worker_id": "live", "beat_at": now - timedelta(seconds=BEAT), "started_at": now},
            {"worker_id": "dead", "beat_at": now - timedelta(seconds=4 * BEAT), "started_at": now},
        ])
    with session_scope(engine) as session:
        taken = outbox.claim(session, issue_id, now, 10, LEASE, "claimer", stale=stale_before)
    claimed = {r.id: r.claimed_by for r in rows(engine, issue_id)}
    assert sorted(taken) == sorted(i for i, who in claimed.items() if who == "claimer") and len(taken) == 2
    assert Counter(claimed.values()) == {"live": 2, "unknown": 2, "claimer": 2}  # the dead one's rows moved
    with session_scope(engine) as session:  # without heartbeats only the lease frees rows
        assert outbox.claim(session, issue_id, now + LEASE + timedelta(seconds=1), 10, LEASE, "late") != []
    engine.dispose()


def test_every_queues_claim_moves_its_workers_beat_forward_never_back(tmp_path, db_url):
    """queue.claim (under every queue: issues, follow-ups, transactional mail, webhooks) refreshes
    the claiming worker's beat in its own transaction: rows claimed right after a cut link returns
    are never under a stale beat. A claim dated earlier than the beat leaves it where it is."""
    settings, engine, issue_id = setup_issue(tmp_path, db_url, 4)
    now = utcnow()
    with session_scope(engine) as session:
        session.execute(insert(WorkerHeartbeat), [
            {"worker_id": "back", "beat_at": now - timedelta(seconds=10 * BEAT), "started_at": now}])
        assert len(outbox.claim(session, issue_id, now, 2, LEASE, "back")) == 2
    with session_scope(engine) as session:
        beat = session.get(WorkerHeartbeat, "back").beat_at
        assert abs((beat.replace(tzinfo=None) - now.replace(tzinfo=None)).total_seconds()) < 1
        outbox.claim(session, issue_id, now - timedelta(seconds=30), 2, LEASE, "back")
    with session_scope(engine) as session:
        later = session.get(WorkerHeartbeat, "back").beat_at
        assert abs((later.replace(tzinfo=None) - now.replace(tzinfo=None)).total_seconds()) < 1
    engine.dispose()
