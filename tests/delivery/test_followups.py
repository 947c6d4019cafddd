"""Follow-ups reach exactly the readers the delivery ledger says were sent the old verdict and who
are still active, once each, through the delivery engine; also when a worker is killed (SIGKILL)
in the middle of the send. Real SQLite and PostgreSQL, the real CLI entry point, real worker
processes and a real SMTP server for the kill."""

from __future__ import annotations

import re
import signal
import time
from collections import defaultdict
from contextlib import contextmanager
from datetime import timedelta
from email import message_from_bytes, policy

import pytest
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from newsletter.config import load_settings
from newsletter.content.models import ComparisonTool, Review
from newsletter.db import session_scope, utcnow
from newsletter.delivery import followup_outbox
from newsletter.delivery.followup_models import FollowupDelivery
from newsletter.delivery.followup_sender import deliver_all
from newsletter.delivery.models import Delivery
from newsletter.delivery.transports import make_transport
from newsletter.issues.followup_models import Followup
from newsletter.issues.frozen import freeze
from newsletter.issues.models import Issue, IssueItem
from newsletter.subscribers.models import Subscriber, Suppression
from tests.cli_runner import run_cli
from tests.conftest import TEST_SECRET
from tests.delivery.test_workers import finish, popen, setup_issue, wait_for, worker_cmd
from tests.fakes.smtp_server import start_server


def _sent_issue(tmp_path, db_url, readers: int, extra: str = "", transport: str = "file"):
    """An issue sent to `readers` readers (every delivery `sent`, its view frozen): the ledger.
    Returns (settings, engine, issue id, slug of its first comparison, reader ids by email)."""
    settings, engine, issue_id = setup_issue(tmp_path, db_url, readers, extra, transport)
    with session_scope(engine) as session:
        session.execute(update(Delivery).values(state="sent", sent_at=utcnow()))
        issue = session.get(Issue, issue_id)
        issue.state = "sent"
        slug = freeze(session, settings, issue).comparisons[0].slug
        ids = dict(session.execute(select(Subscriber.email, Subscriber.id)).all())
    return settings, engine, issue_id, slug, ids


def _flip_verdict(engine, issue_id: int) -> None:
    """The panel turns on the first comparison's first tool: every review of it the other way."""
    with session_scope(engine) as session:
        comparison_id = session.execute(select(IssueItem.comparison_id).where(IssueItem.issue_id == issue_id)
                                        .order_by(IssueItem.position)).scalars().first()
        tool_id = session.execute(select(ComparisonTool.tool_id).where(ComparisonTool.comparison_id == comparison_id)
                                  .order_by(ComparisonTool.position)).scalars().first()
        verdicts = session.execute(select(Review.verdict).where(Review.comparison_id == comparison_id,
                                                                Review.tool_id == tool_id)).scalars().all()
        flipped = "pass" if sum(v == "ship" for v in verdicts) * 2 >= len(verdicts) else "ship"
        session.execute(update(Review).where(Review.comparison_id == comparison_id, Review.tool_id == tool_id)
                        .values(verdict=flipped))


def _cli(tmp_path, *args):
    env = {"NEWSLETTER_CONFIG": str(tmp_path / "config.toml"), "NEWSLETTER_SECRET_KEY": TEST_SECRET}
    return run_cli(list(args), tmp_path, env)


def _set_up_the_ledger(engine, issue_id: int, ids: dict[str, int]) -> dict[str, int]:
    """Ten readers of issue 1, each with a story; returns {role: reader id}. `other_variant` was
    sent issue 1 as a topic variant without its first comparison (delivery.variant_mask)."""
    role = {name: ids[f"reader{n:04d}@example.com"] for n, name in enumerate(
        ["kept", "unsubscribed", "suppressed", "paused", "failed", "other_issue", "never", "late_leaver", "kept2",
         "other_variant"])}
    with session_scope(engine) as session:
        session.execute(update(Subscriber).where(Subscriber.id == role["unsubscribed"]).values(status="unsubscribed"))
        session.add(Suppression(email="reader0002@example.com", reason="hard_bounce"))
        session.execute(update(Subscriber).where(Subscriber.id == role["paused"])
                        .values(paused_until=utcnow() + timedelta(days=14)))
        session.execute(update(Delivery).where(Delivery.subscriber_id == role["failed"]).values(state="failed"))
        session.execute(update(Delivery).where(Delivery.subscriber_id == role["other_variant"])
                        .values(variant_mask=0b10))  # the second comparison only
        session.execute(delete(Delivery).where(Delivery.subscriber_id.in_([role["other_issue"], role["never"]])))
        other = Issue(week="2026-W47", subject="Another week", state="sent")
        session.add(other)
        session.flush()
        carried = session.execute(select(IssueItem.comparison_id).where(IssueItem.issue_id == issue_id)).scalars()
        from newsletter.content.models import Comparison

        elsewhere = session.execute(select(Comparison.id).where(Comparison.id.not_in(list(carried)))).scalars().first()
        session.execute(insert(IssueItem).values(issue_id=other.id, comparison_id=elsewhere, position=0))
        session.execute(insert(Delivery).values(issue_id=other.id, subscriber_id=role["other_issue"], state="sent",
                                                attempts=1, created_at=utcnow()))
    return role


def test_a_followup_reaches_exactly_the_readers_the_ledger_names_once(tmp_path, db_url):
    settings, engine, issue_id, slug, ids = _sent_issue(tmp_path, db_url, 10)
    role = _set_up_the_ledger(engine, issue_id, ids)

    nothing = _cli(tmp_path, "followup", "create", slug)
    assert nothing.returncode == 1 and "nothing changed materially" in nothing.stderr, nothing
    for args in (("followup", "create", "no-such-comparison"), ("followup", "send", "999", "--yes"),
                 ("followup", "preview", "999")):
        unknown = _cli(tmp_path, *args)
        assert unknown.returncode == 1 and "does not exist" in unknown.stderr, unknown
        assert "Traceback" not in unknown.stderr + unknown.stdout

    _flip_verdict(engine, issue_id)
    created = _cli(tmp_path, "followup", "create", slug, "--note", "We *re-ran* the [tests](https://x.example/t).")
    assert created.returncode == 0, created
    followup_id = int(created.stdout.strip().splitlines()[-1])  # the fixed interface: the id alone, last
    assert "the panel now says" in created.stdout

    asked = _cli(tmp_path, "followup", "send", str(followup_id))  # not a terminal: refuses, states the count
    assert asked.returncode == 1 and "would go to 3 readers" in asked.stderr and "--yes" in asked.stderr, asked
    started = _cli(tmp_path, "followup", "send", str(followup_id), "--yes")
    assert started.returncode == 0 and "sending to 3 readers" in started.stdout, started
    with session_scope(engine) as session:  # leaves between the start and the send: skipped at claim
        session.execute(update(Subscriber).where(Subscriber.id == role["late_leaver"]).values(status="unsubscribed"))
        assert followup_outbox.start_in(session, followup_id, utcnow()) == (False, 0)  # never twice

    transport = make_transport(settings)
    report = deliver_all(engine, settings, transport, TEST_SECRET)
    assert (report.sent, report.skipped, report.failed) == (2, 1, 0)
    with session_scope(engine) as session:
        rows = session.execute(select(FollowupDelivery.subscriber_id, FollowupDelivery.state)
                               .where(FollowupDelivery.followup_id == followup_id)).all()
        assert session.get(Followup, followup_id).state == "sent"
    assert sorted(rows) == sorted([(role["kept"], "sent"), (role["kept2"], "sent"), (role["late_leaver"], "skipped")])
    mails = sorted(settings.mail.file.dir.glob(f"f{followup_id}-d*.eml"))
    received = [message_from_bytes(path.read_bytes(), policy=policy.default) for path in mails]
    assert sorted(m["To"].addresses[0].addr_spec for m in received) == ["reader0000@example.com",
                                                                       "reader0008@example.com"]
    for mail in received:
        assert mail["List-Unsubscribe"].startswith("<https://verdicts.example/unsubscribe/")
        assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        text = mail.get_body(("plain",)).get_content()
        assert "https://verdicts.example/unsubscribe/" in text and "re-ran" in text and "What changed" in text
        assert '<em>re-ran</em>' in mail.get_body(("html",)).get_content()
    again = _cli(tmp_path, "followup", "send", str(followup_id), "--yes")
    assert again.returncode == 1 and "nobody gets a follow-up twice" in again.stderr
    with session_scope(engine) as session:  # the key itself: one row per follow-up and reader
        with pytest.raises(IntegrityError):
            session.execute(insert(FollowupDelivery).values(followup_id=followup_id, subscriber_id=role["kept"],
                                                            state="queued", attempts=0, created_at=utcnow()))
    listed, status = _cli(tmp_path, "followup", "list").stdout, _cli(tmp_path, "followup", "status", str(followup_id))
    assert slug in listed and "sent" in listed and re.search(r"sent\s+2\b", status.stdout), (listed, status)
    text, html = (_cli(tmp_path, "followup", "preview", str(followup_id), *extra).stdout for extra in ((), ("--html",)))
    assert "What changed" in text and "re-ran" in text and html.lstrip().startswith("<!doctype html")

    # A second follow-up, cancelled while its rows wait: nobody gets it, and it cannot start again.
    repeated = _cli(tmp_path, "followup", "create", slug)  # the same news, already sent: refused
    assert repeated.returncode == 1 and f"follow-up {followup_id} already told" in repeated.stderr, repeated
    second = int(_cli(tmp_path, "followup", "create", slug, "--force").stdout.strip().splitlines()[-1])
    assert _cli(tmp_path, "followup", "send", str(second), "--yes").returncode == 0
    with session_scope(engine) as session:  # a worker holds one of its rows when the cancel lands ...
        held = followup_outbox.claim(session, utcnow(), 1, timedelta(minutes=5), "stopping-worker", None)
    assert "cancelled, 1 " in _cli(tmp_path, "followup", "cancel", str(second)).stdout  # the held row is not skipped yet
    with session_scope(engine) as session:  # ... and stops before sending it: skipped, not queued for good
        assert followup_outbox.release(session, "stopping-worker", held) == 1
    assert deliver_all(engine, settings, transport, TEST_SECRET).sent == 0
    assert not list(settings.mail.file.dir.glob(f"f{second}-d*.eml"))
    with session_scope(engine) as session:
        assert followup_outbox.counts(session, second) == {"skipped": 2}
    assert _cli(tmp_path, "followup", "send", str(second), "--yes").returncode == 1


@contextmanager
def _followup_killed_mid_send(tmp_path, db_url, readers: int, batch: int, delay: float, heartbeat: float,
                              received: int):
    """A follow-up of an issue sent to `readers` readers, sent by a worker process that is killed
    (SIGKILL) once the SMTP server (answering each message after `delay` s) has `received`
    messages. Yields (settings, engine, follow-up id, the server's handler); stops the server after."""
    controller, handler = start_server(delay=delay)
    extra = f"""
        [mail.smtp]
        port = {controller.port}
        timeout = 10
        pool_size = 1

        [delivery]
        batch_size = {batch}
        heartbeat_seconds = {heartbeat}
        """
    try:
        settings, engine, issue_id, slug, _ids = _sent_issue(tmp_path, db_url, readers, extra, "smtp")
        _flip_verdict(engine, issue_id)
        followup_id = int(_cli(tmp_path, "followup", "create", slug).stdout.strip().splitlines()[-1])
        assert _cli(tmp_path, "followup", "send", str(followup_id), "--yes").returncode == 0
        victim = popen(worker_cmd(), tmp_path / "config.toml")
        wait_for(lambda: len(handler.messages) >= received or victim.poll() is not None, timeout=120,
                 what=f"{received} messages received")
        victim.send_signal(signal.SIGKILL)
        finish(victim)
        yield settings, engine, followup_id, handler
    finally:
        controller.stop()


def test_a_worker_killed_mid_send_leaves_every_reader_one_followup(tmp_path, db_url):
    readers, batch = 150, 30
    with _followup_killed_mid_send(tmp_path, db_url, readers, batch, 0.01, 0.5, batch + 10) as (
            _settings, engine, followup_id, handler):
        with session_scope(engine) as session:
            assert followup_outbox.counts(session, followup_id).get("sending")  # killed with a batch in hand
        code, output = finish(popen(worker_cmd("--until-idle"), tmp_path / "config.toml"), timeout=150)
        assert code == 0, output
    with session_scope(engine) as session:
        assert followup_outbox.counts(session, followup_id) == {"sent": readers}
        assert session.get(Followup, followup_id).state == "sent"
    by_reader = defaultdict(set)
    for message in handler.messages:
        parsed = message_from_bytes(message.data, policy=policy.default)
        if parsed["X-Weekly-Verdicts-Delivery"].startswith(f"f{followup_id}-"):
            by_reader[message.rcpt_tos[0]].add(parsed["Message-ID"])
    # Every reader got the follow-up, and only ever one message: a copy the killed worker handed
    # over but never recorded is sent again under the same Message-ID (receivers drop the repeat).
    assert len(by_reader) == readers and all(len(ids) == 1 for ids in by_reader.values())
    engine.dispose()


def test_a_killed_workers_batch_of_a_cancelled_followup_settles_as_skipped(tmp_path, db_url):
    """Killed mid-batch, then the follow-up cancelled: nobody claims a cancelled follow-up's rows, so
    the dead worker's batch stayed `sending` for good (outside review, as for issues). The next
    worker skips them once the dead one's beat is stale, and sends none of them."""
    readers, batch = 60, 20
    with _followup_killed_mid_send(tmp_path, db_url, readers, batch, 0.05, 0.3, batch + 5) as (
            settings, engine, followup_id, handler):
        assert _cli(tmp_path, "followup", "cancel", str(followup_id)).returncode == 0
        with session_scope(engine) as session:
            assert followup_outbox.counts(session, followup_id).get("sending") == batch
        received = len(handler.messages)
        time.sleep(4 * settings.delivery.heartbeat_seconds)  # the dead worker's beat goes stale
        code, output = finish(popen(worker_cmd("--until-idle"), tmp_path / "config.toml"), timeout=150)
    assert code == 0 and f"cancelled follow-ups: {batch} rows of a stopped worker skipped" in output, output
    assert len(handler.messages) == received
    with session_scope(engine) as session:
        counts = followup_outbox.counts(session, followup_id)
    assert "sending" not in counts and counts.get("sent", 0) + counts["skipped"] == readers, counts
    engine.dispose()
