"""The delivery engine under real concurrency: worker processes on PostgreSQL, leases, crashes,
signals, pause/resume/cancel and the shared rate limiter.

Process tests start `python -m newsletter worker` as an operator would; crashes and shutdowns are
real signals (SIGKILL, SIGTERM) to real processes talking to a real SMTP server.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from newsletter import tallies
from newsletter.config import load_settings
from newsletter.db import make_engine, session_scope, utcnow
from newsletter.delivery import outbox, stopping
from newsletter.delivery.control import cancel_issue, pause_issue, resume_issue
from newsletter.delivery.models import Delivery, SendWindow
from newsletter.delivery.ratelimit import SendRateLimiter
from newsletter.delivery.sender import deliver, start_send
from newsletter.delivery.transports import make_transport
from newsletter.delivery.transports.base import Outcome, SendResult
from newsletter.errors import UserError
from newsletter.issues.drafting import draft_issue
from newsletter.issues.models import Issue
from newsletter.subscribers.models import Subscriber
from tests.conftest import TEST_SECRET, write_config
from tests.db_templates import migrate_fresh, sample_content
from tests.fakes.smtp_server import start_server

WEEK = "2026-W48"
ROOT = Path(__file__).resolve().parents[2]


# --- helpers ------------------------------------------------------------------------------------

def setup_issue(tmp_path, db_url, readers: int, extra: str = "", transport: str = "file", start: bool = True):
    """A migrated store with sample content, `readers` active subscribers and the week's issue
    enqueued (sending). Returns (settings, engine, issue_id)."""
    config = write_config(tmp_path, db_url, extra)
    config.write_text(config.read_text().replace('transport = "file"', f'transport = "{transport}"'))
    settings = load_settings(config)
    engine = make_engine(settings.database.url)
    migrate_fresh(engine)
    sample_content(engine)
    with session_scope(engine) as session:
        session.execute(insert(Subscriber), [
            {"email": f"reader{n:04d}@example.com", "name": "", "status": "active", "created_at": utcnow()}
            for n in range(readers)
        ])
    issue = draft_issue(engine, settings, WEEK).issue
    if start:
        assert start_send(engine, issue.id).enqueued == readers
    return settings, engine, issue.id


def smtp_extra(port: int, batch_size: int = 5, lease: int = 10) -> str:
    return f"""
        [mail.smtp]
        port = {port}
        timeout = 5
        pool_size = 1

        [delivery]
        batch_size = {batch_size}
        lease_seconds = {lease}
        """


def worker_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "newsletter", "worker", *args]


def popen(cmd, config: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(NEWSLETTER_CONFIG=str(config), NEWSLETTER_SECRET_KEY=TEST_SECRET)
    return subprocess.Popen(cmd, cwd=config.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def finish(process: subprocess.Popen, timeout: float = 90) -> tuple[int, str]:
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        raise AssertionError(f"worker did not stop within {timeout}s:\n{out}\n{err}")
    return process.returncode, out + err


def wait_for(predicate, timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def rows(engine, issue_id):
    with session_scope(engine) as session:
        return session.execute(
            select(Delivery.id, Delivery.state, Delivery.attempts, Delivery.claimed_by, Subscriber.email)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Delivery.issue_id == issue_id).order_by(Delivery.id)
        ).all()


def counts(engine, issue_id):
    with session_scope(engine) as session:
        return outbox.counts(session, issue_id)


def issue_state(engine, issue_id):
    with session_scope(engine) as session:
        return session.get(Issue, issue_id).state


# --- several worker processes on PostgreSQL -----------------------------------------------------

@pytest.mark.postgres
def test_three_worker_processes_send_every_delivery_exactly_once(tmp_path, pg_url):
    settings, engine, issue_id = setup_issue(tmp_path, pg_url, 300, "[delivery]\nbatch_size = 5\n")
    code, output = finish(popen(worker_cmd("--processes", "3", "--until-idle"), tmp_path / "config.toml"))
    assert code == 0, output
    assert "3 worker processes started" in output
    delivered = rows(engine, issue_id)
    assert Counter(r.state for r in delivered) == {"sent": 300}
    assert {r.attempts for r in delivered} == {1}  # claimed once each: no delivery went out twice
    workers = Counter(r.claimed_by for r in delivered)
    assert len(workers) >= 2, workers  # the processes really shared the queue
    assert len({w.rsplit(":", 2)[1] for w in workers}) == len(workers)  # one pid per worker
    files = sorted(settings.mail.file.dir.glob("*.eml"))
    assert len(files) == 300 and not list(settings.mail.file.dir.glob(".tmp-*"))
    references = [message_from_bytes(f.read_bytes(), policy=policy.default)["X-Weekly-Verdicts-Delivery"]
                  for f in files]
    assert sorted(references) == sorted(f"i{issue_id}-d{r.id}" for r in delivered)
    assert issue_state(engine, issue_id) == "sent"
    engine.dispose()


@pytest.mark.postgres
def test_an_expired_lease_is_taken_over_by_another_worker(tmp_path, pg_url):
    settings, engine, issue_id = setup_issue(tmp_path, pg_url, 30, "[delivery]\nbatch_size = 10\n")
    now = utcnow()
    with session_scope(engine) as session:  # worker A claims a batch, then dies
        stuck = outbox.claim(session, issue_id, now, 10, timedelta(seconds=60), "host-a:1:dead")
    assert len(stuck) == 10
    transport = make_transport(settings)
    first = deliver(engine, settings, transport, TEST_SECRET, issue_id, worker="host-b:2:live")
    assert (first.sent, first.finished) == (20, False)  # A's lease still holds: its rows wait
    assert counts(engine, issue_id) == {"sent": 20, "sending": 10}
    later = deliver(engine, settings, transport, TEST_SECRET, issue_id, worker="host-b:2:live",
                    clock=lambda: now + timedelta(seconds=61))
    assert (later.sent, later.finished) == (10, True)
    taken_over = [r for r in rows(engine, issue_id) if r.id in stuck]
    assert {(r.state, r.attempts, r.claimed_by) for r in taken_over} == {("sent", 2, "host-b:2:live")}
    assert len(list(settings.mail.file.dir.glob("*.eml"))) == 30
    engine.dispose()


@pytest.mark.postgres
def test_a_killed_worker_loses_nothing_and_repeats_at_most_its_batch(tmp_path, pg_url):
    controller, handler = start_server(delay=0.1)
    try:
        settings, engine, issue_id = setup_issue(tmp_path, pg_url, 30, smtp_extra(controller.port, batch_size=5),
                                                 "smtp")
        process = popen(worker_cmd("--until-idle"), tmp_path / "config.toml")
        # Kill it in the middle of its second batch: 3 of that batch's 5 messages accepted, unrecorded.
        wait_for(lambda: len(handler.messages) >= 8 or process.poll() is not None, what="8 messages")
        process.send_signal(signal.SIGKILL)
        finish(process)
        in_flight = [r for r in rows(engine, issue_id) if r.state == "sending"]
        assert len(in_flight) == 5 and len({r.claimed_by for r in in_flight}) == 1
        assert counts(engine, issue_id)["sent"] % 5 == 0  # whole batches were recorded, the killed one not
        # Another worker, once the dead one's lease has run out.
        handler.delay = 0
        report = deliver(engine, settings, make_transport(settings), TEST_SECRET, issue_id,
                         clock=lambda: utcnow() + timedelta(seconds=11))
    finally:
        controller.stop()
    assert report.finished and counts(engine, issue_id) == {"sent": 30}
    received = Counter(m.rcpt_tos[0] for m in handler.messages)
    assert set(received) == {r.email for r in rows(engine, issue_id)}  # nobody lost
    repeated = [email for email, n in received.items() if n > 1]
    assert len(repeated) <= 5 and max(received.values()) <= 2  # only (part of) the in-flight batch
    assert set(repeated) <= {r.email for r in in_flight}
    for email in repeated:  # a repeat carries the same Message-ID, so receivers can drop it
        ids = {message_from_bytes(m.data, policy=policy.default)["Message-ID"]
               for m in handler.messages if m.rcpt_tos[0] == email}
        assert len(ids) == 1
    engine.dispose()


@pytest.mark.postgres
def test_a_killed_workers_batch_of_a_cancelled_issue_settles_as_skipped(tmp_path, pg_url):
    """Killed mid-batch, then the issue cancelled: nobody claims a cancelled issue's rows, so the dead
    worker's batch stayed `sending` for good and the issue's counts never settled (outside review).
    The next worker skips them once the dead one's beat is stale, and sends none of them."""
    controller, handler = start_server(delay=0.1)
    extra = smtp_extra(controller.port, batch_size=5) + "heartbeat_seconds = 0.3\n"
    try:
        settings, engine, issue_id = setup_issue(tmp_path, pg_url, 30, extra, "smtp")
        process = popen(worker_cmd("--until-idle"), tmp_path / "config.toml")
        wait_for(lambda: len(handler.messages) >= 8 or process.poll() is not None, what="8 messages")
        process.send_signal(signal.SIGKILL)
        finish(process)
        assert Counter(r.state for r in rows(engine, issue_id))["sending"] == 5
        cancel_issue(engine, issue_id)
        received = len(handler.messages)
        time.sleep(4 * settings.delivery.heartbeat_seconds)  # the dead worker's beat goes stale
        code, output = finish(popen(worker_cmd("--until-idle"), tmp_path / "config.toml"))
    finally:
        controller.stop()
    assert code == 0 and "5 rows of a stopped worker skipped" in output, output
    assert len(handler.messages) == received  # a cancelled issue's rows are never sent
    final = counts(engine, issue_id)
    assert "sending" not in final and final["skipped"] == 30 - final["sent"], final
    with session_scope(engine) as session:
        reasons = Counter(session.execute(select(Delivery.last_error).where(Delivery.issue_id == issue_id)).scalars())
        assert reasons[stopping.ABANDONED_REASON] == 5, reasons
        assert tallies.Deliveries.of(tallies.read(session, [issue_id])[issue_id]).pending == 0
    engine.dispose()


@pytest.mark.postgres
def test_sigterm_finishes_the_batch_and_leaves_nothing_sending(tmp_path, pg_url):
    controller, handler = start_server(delay=0.03)
    try:
        settings, engine, issue_id = setup_issue(tmp_path, pg_url, 200, smtp_extra(controller.port, batch_size=5),
                                                 "smtp")
        process = popen(worker_cmd("--processes", "2"), tmp_path / "config.toml")  # no --until-idle
        wait_for(lambda: len(handler.messages) >= 12 or process.poll() is not None, what="12 messages")
        process.send_signal(signal.SIGTERM)
        code, output = finish(process, timeout=30)
        assert code == 0, output
        state = counts(engine, issue_id)
    finally:
        controller.stop()
    assert "sending" not in state, state
    assert state["sent"] < 200 and state["sent"] + state["queued"] == 200, state  # stopped early, lost nothing
    sent = {r.email for r in rows(engine, issue_id) if r.state == "sent"}
    received = Counter(m.rcpt_tos[0] for m in handler.messages)
    assert set(received) == sent and max(received.values()) == 1  # every batch in hand was finished and recorded
    engine.dispose()


@pytest.mark.postgres
def test_a_second_signal_stops_sending_before_the_rows_are_given_back(tmp_path, pg_url):
    """A second SIGTERM stops at once: the rows of the batch in hand go back to the queue for
    another worker (what the batch had sent is not recorded: it is sent again, as after a crash).
    The SMTP sessions' threads went on sending the rest of that batch meanwhile, and each of those
    readers got a second copy from the next worker (132 of 180 here); now only the messages
    already on the wire (one per session) are sent after the signal."""
    controller, handler = start_server(delay=0.05)
    try:
        extra = smtp_extra(controller.port, batch_size=200, lease=60).replace("pool_size = 1", "pool_size = 3")
        settings, engine, issue_id = setup_issue(tmp_path, pg_url, 200, extra, "smtp")
        config = tmp_path / "config.toml"
        process = popen(worker_cmd(), config)
        # past the first batch (sender.FIRST_BATCH, 20 rows): into a batch of 180
        wait_for(lambda: len(handler.messages) >= 40 or process.poll() is not None, what="40 messages")
        process.send_signal(signal.SIGTERM)  # finish the batch in hand ...
        time.sleep(0.5)  # (two signals at once are one to Python)
        at_signal = len(handler.messages)
        process.send_signal(signal.SIGTERM)  # ... no: stop now
        finish(process, timeout=60)
        after = len(handler.messages) - at_signal
        code, output = finish(popen(worker_cmd("--until-idle"), config), timeout=60)
        assert code == 0, output
    finally:
        controller.stop()
    assert after <= 3 + 3, after  # the sessions' messages on the wire (and any that arrived meanwhile)
    received = Counter(m.rcpt_tos[0] for m in handler.messages)
    assert counts(engine, issue_id) == {"sent": 200} and len(received) == 200
    engine.dispose()


# --- pause, resume, cancel ------------------------------------------------------------------------

class ActingTransport:
    """Sends to the file outbox and, on its first batch, does something to the issue mid-send."""

    def __init__(self, settings, action=None, retry_first=False):
        self.inner = make_transport(settings)
        self.name = self.inner.name
        self.action = action
        self.retry_first = retry_first
        self.batches = 0

    def send(self, messages):
        self.batches += 1
        if self.action and self.batches == 1:
            self.action()
        if not self.retry_first:
            return self.inner.send(messages)
        return [SendResult(Outcome.retry, error="451 4.3.0 later")] + self.inner.send(messages[1:])

    def close(self):
        self.inner.close()


def test_pause_stops_claims_resume_continues_cancel_skips_the_rest(tmp_path, db_url):
    settings, engine, issue_id = setup_issue(tmp_path, db_url, 20, "[delivery]\nbatch_size = 5\n")
    paused = deliver(engine, settings, ActingTransport(settings, lambda: pause_issue(engine, issue_id)),
                     TEST_SECRET, issue_id)
    assert paused.sent == 5 and paused.batches == 1  # the batch in hand finished, then no more claims
    assert issue_state(engine, issue_id) == "paused" and counts(engine, issue_id) == {"sent": 5, "queued": 15}
    assert deliver(engine, settings, make_transport(settings), TEST_SECRET, issue_id).sent == 0
    with session_scope(engine) as session:  # the claim itself refuses a paused issue
        assert outbox.claim(session, issue_id, utcnow(), 50, timedelta(seconds=60), "w") == []
    with pytest.raises(UserError, match="is paused"):
        pause_issue(engine, issue_id)

    assert resume_issue(engine, issue_id).state == "sending"
    with pytest.raises(UserError, match="is sending"):
        resume_issue(engine, issue_id)
    # Cancelled during the next batch, in which one message is answered "retry later".
    cancelled = {}
    transport = ActingTransport(settings, lambda: cancelled.update(r=cancel_issue(engine, issue_id)),
                                retry_first=True)
    report = deliver(engine, settings, transport, TEST_SECRET, issue_id)
    assert cancelled["r"].skipped == 10 and cancelled["r"].state == "cancelled"
    assert report.sent == 4 and transport.batches == 1
    assert counts(engine, issue_id) == {"sent": 9, "skipped": 11}  # the retry is skipped too
    with session_scope(engine) as session:
        reasons = set(session.execute(
            select(Delivery.last_error).where(Delivery.issue_id == issue_id, Delivery.state == "skipped")).scalars())
    assert reasons == {stopping.CANCELLED_REASON}
    assert issue_state(engine, issue_id) == "cancelled"
    with pytest.raises(UserError, match="cancelled"):
        start_send(engine, issue_id)
    assert len(list(settings.mail.file.dir.glob("*.eml"))) == 9
    engine.dispose()


def test_pause_resume_cancel_from_the_command_line(tmp_path):
    settings, engine, issue_id = setup_issue(tmp_path, None, 6)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(NEWSLETTER_CONFIG=str(tmp_path / "config.toml"), NEWSLETTER_SECRET_KEY=TEST_SECRET)

    def cli(*args, ok=True):
        result = subprocess.run([sys.executable, "-m", "newsletter", *args], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=60)
        assert (result.returncode == 0) == ok, result.stdout + result.stderr
        return result.stdout + result.stderr

    assert "paused" in cli("issue", "pause", str(issue_id))
    cli("worker", "--until-idle")
    assert counts(engine, issue_id) == {"queued": 6}  # a paused issue is not delivered
    assert "sending again" in cli("issue", "resume", str(issue_id))
    assert "6 deliveries skipped" in cli("issue", "cancel", str(issue_id))
    assert counts(engine, issue_id) == {"skipped": 6} and issue_state(engine, issue_id) == "cancelled"
    assert "issue 1 is cancelled" in cli("issue", "resume", str(issue_id), ok=False)
    engine.dispose()


def test_send_wait_delivers_with_a_progress_bar(tmp_path):
    settings, engine, issue_id = setup_issue(tmp_path, None, 12, "[delivery]\nbatch_size = 5\n", start=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(NEWSLETTER_CONFIG=str(tmp_path / "config.toml"), NEWSLETTER_SECRET_KEY=TEST_SECRET)
    result = subprocess.run([sys.executable, "-m", "newsletter", "issue", "send", str(issue_id), "--wait",
                             "--ignore-checks"],  # the sample content's week is fixed; the checks have their tests
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "sending to 12 subscribers" in result.stdout
    assert "100%" in result.stdout and "12 sent" in result.stdout and "0 failed" in result.stdout
    assert f"issue {issue_id}: 12 sent, 0 to retry, 0 failed, 0 skipped - finished" in result.stdout
    assert counts(engine, issue_id) == {"sent": 12} and issue_state(engine, issue_id) == "sent"
    assert len(list(settings.mail.file.dir.glob("*.eml"))) == 12
    engine.dispose()


# --- the shared rate limiter ----------------------------------------------------------------------

def test_the_limiter_grants_what_the_windows_allow(tmp_path, db_url):
    engine = make_engine(db_url)
    migrate_fresh(engine)
    limiter = SendRateLimiter(engine, "smtp", per_second=10, per_hour=25)
    other = SendRateLimiter(engine, "smtp", per_second=10, per_hour=25)  # a second worker, same transport
    assert limiter.acquire(8, now=1000.2).count == 8
    assert other.acquire(8, now=1000.5).count == 2  # the second is shared: 10 in all
    full = limiter.acquire(5, now=1000.9)
    assert full.count == 0 and 0 < full.wait_seconds <= 0.11
    grant = other.acquire(8, now=1001.1)
    assert grant.count == 8
    other.refund(grant, 3)  # only 5 rows were due
    assert limiter.acquire(50, now=1002.0).count == 10  # 25 an hour: 10 + 5 used before
    assert limiter.acquire(1, now=1003.0).count == 0
    assert SendRateLimiter(engine, "postmark", per_second=10).acquire(4, now=1003.0).count == 4  # per transport
    assert SendRateLimiter(engine, "smtp").acquire(10_000).count == 10_000  # no limit, no query
    with session_scope(engine) as session:
        windows = {(w.window_seconds, w.window_start): w.used
                   for w in session.execute(select(SendWindow).where(SendWindow.transport == "smtp")).scalars()}
    assert windows == {(1, 1000): 10, (1, 1001): 5, (1, 1002): 10, (3600, 0): 25}
    engine.dispose()


@pytest.mark.postgres
def test_two_processes_share_one_rate_limit(tmp_path, pg_url):
    # 120 readers at 20 a second: six windows. With three (60 readers) one process, faster to wake
    # at each window's start on a loaded machine, once took every permit and the other none.
    settings, engine, issue_id = setup_issue(
        tmp_path, pg_url, 120, "[delivery]\nbatch_size = 10\nrate_per_second = 20\n")
    started = time.monotonic()
    code, output = finish(popen(worker_cmd("--processes", "2", "--until-idle"), tmp_path / "config.toml"))
    elapsed = time.monotonic() - started
    assert code == 0, output
    delivered = rows(engine, issue_id)
    assert Counter(r.state for r in delivered) == {"sent": 120} and {r.attempts for r in delivered} == {1}
    assert len({r.claimed_by for r in delivered}) == 2
    with session_scope(engine) as session:
        windows = session.execute(
            select(SendWindow.window_start, SendWindow.used)
            .where(SendWindow.transport == "file", SendWindow.window_seconds == 1, SendWindow.used > 0)
            .order_by(SendWindow.window_start)).all()
    used = [w.used for w in windows]
    assert sum(used) == 120, windows  # every message went through the limiter, and only once
    assert max(used) <= 20, windows  # no second saw more than the limit, across both processes
    assert len(windows) >= 6 and elapsed >= 5, (windows, elapsed)  # 120 at 20/s span 6 windows at least
    engine.dispose()
