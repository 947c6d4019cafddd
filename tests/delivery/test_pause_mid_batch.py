"""A pause or a cancel stops a batch mid-send, within about a second (stopping.Halt), not after the
whole batch: with the default batch of 500, a list of up to 500 readers could not be stopped at all
once its worker had claimed it (outside trial: `issue pause` said "paused" while all 151 mails went
out). A real worker process, a real SMTP server answering each message after 0.2 s, the shipped
batch size; the messages not started go back to the queue (pause) or are skipped (cancel), and after
a resume every reader has the issue exactly once."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from newsletter.delivery.control import cancel_issue, pause_issue, resume_issue
from tests.delivery.test_workers import counts, finish, popen, setup_issue, smtp_extra, wait_for, worker_cmd
from tests.fakes.smtp_server import start_server

READERS = 40


@pytest.mark.parametrize("action", ["pause", "cancel"])
def test_a_pause_or_cancel_stops_the_batch_in_hand(tmp_path, db_url, action):
    controller, handler = start_server(delay=0.2)
    try:
        settings, engine, issue_id = setup_issue(tmp_path, db_url, READERS, smtp_extra(controller.port, 500, 300),
                                                 "smtp")
        assert settings.delivery.batch_size >= READERS  # one claim holds every reader
        worker = popen(worker_cmd(), tmp_path / "config.toml")
        wait_for(lambda: len(handler.messages) >= 3 or worker.poll() is not None, timeout=60, what="3 messages")
        (pause_issue if action == "pause" else cancel_issue)(engine, issue_id)
        time.sleep(3)  # the halt is asked before each message, the issue read at most once a second
        stopped_at = len(handler.messages)
        time.sleep(1)
        assert len(handler.messages) == stopped_at  # nothing more goes out
        assert stopped_at <= 3 + 12, stopped_at  # ~1 s of 0.2 s messages after the move, and slack
        wait_for(lambda: "sending" not in counts(engine, issue_id), timeout=30, what="the batch recorded")
        left = counts(engine, issue_id)
        assert left.get("sent") == stopped_at, left
        if action == "pause":
            assert left.get("queued") == READERS - stopped_at, left  # back in the queue, not retries
            resume_issue(engine, issue_id)
            wait_for(lambda: counts(engine, issue_id) == {"sent": READERS}, timeout=60, what="all sent")
        else:
            assert left.get("skipped") == READERS - stopped_at, left
    finally:
        worker.terminate()
        finish(worker)
        controller.stop()
    received = Counter(message.rcpt_tos[0] for message in handler.messages)
    assert set(received.values()) == {1}
    assert len(received) == (READERS if action == "pause" else stopped_at)
    engine.dispose()
