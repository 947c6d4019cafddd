"""`newsletter run` as a process: a scheduled issue goes out once, and a restart sends nothing again."""

import os
import signal
import subprocess
import sys
import time

import requests
from datetime import UTC, datetime, timedelta

from newsletter.config import load_settings
from newsletter.db import make_engine, session_scope
from newsletter.issues import editing
from newsletter.issues.drafting import draft_issue
from newsletter.issues.models import Issue
from newsletter.content.importer import import_files
from newsletter.weeks import week_of
from tests.conftest import write_config
from tests.content_files import comparison, write_content
from tests.fakes.smtp_server import free_port


def start(tmp_path, env):
    """Start `newsletter run` and wait until its web server answers (start-up is slow on a busy machine)."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "newsletter", "run", "--port", str(port)], cwd=tmp_path,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).text == "ok":
                return process
        except (requests.ConnectionError, requests.Timeout):  # a busy machine answers late: ask again
            time.sleep(0.2)
    process.kill()
    raise AssertionError("newsletter run did not start: " + process.communicate()[0].decode())


def stop(process) -> str:
    process.send_signal(signal.SIGTERM)
    output = process.communicate(timeout=60)[0].decode()
    assert process.returncode == 0, output
    assert "Traceback" not in output, output
    return output


def test_scheduled_issue_is_sent_once_across_a_restart(tmp_path):
    path = write_config(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(NEWSLETTER_SECRET_KEY="s" * 40, NEWSLETTER_SCHEDULE__TICK_SECONDS="0.5")
    subprocess.run([sys.executable, "-m", "newsletter", "demo"], cwd=tmp_path, env=env, check=True,
                   capture_output=True)  # migrated store, sample content and readers, issue 1 sent
    settings = load_settings(path)
    engine = make_engine(settings.database.url)
    outbox = settings.mail.file.dir
    before = len(list(outbox.glob("*.eml")))
    # This week's issue (the scheduler's pre-send checks hold an issue for a week long past).
    now = datetime.now(UTC)
    import_files(engine, [write_content(tmp_path / "fresh.json", [comparison("fresh-pick", now)])])
    issue = draft_issue(engine, settings, week_of(now, settings.site.zone)).issue
    editing.schedule(engine, issue.id, datetime.now(UTC) + timedelta(seconds=3))

    process = start(tmp_path, env)
    try:
        deadline = time.time() + 40
        while time.time() < deadline:
            with session_scope(engine) as session:
                if session.get(Issue, issue.id).state == "sent":
                    break
            time.sleep(0.3)
    finally:
        output = stop(process)
    with session_scope(engine) as session:
        assert session.get(Issue, issue.id).state == "sent", output
    sent = sorted(p.name for p in outbox.glob(f"i{issue.id}-*.eml"))
    assert len(sent) >= 1
    # The file outbox rewrites a re-sent delivery's file in place, so compare write times too.
    stamps = {p.name: p.stat().st_mtime_ns for p in outbox.glob("*.eml")}

    again = start(tmp_path, env)
    time.sleep(4)  # several scheduler ticks and worker polls
    stop(again)
    assert sorted(p.name for p in outbox.glob(f"i{issue.id}-*.eml")) == sent
    assert len(list(outbox.glob("*.eml"))) == before + len(sent)
    assert {p.name: p.stat().st_mtime_ns for p in outbox.glob("*.eml")} == stamps
    engine.dispose()
