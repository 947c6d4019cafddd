"""A send starts at once (issue 18, point 2): what stood between `start_send` and the workers'
first claim, and between a worker's start and its first message.

Counted, not timed (a loaded machine stretches time, never these): the settings a statement runs
with, which modules a process imported.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text

from newsletter.db import session_scope, utcnow
from newsletter.delivery import outbox
from newsletter.delivery.sender import start_in
from tests.delivery.test_workers import setup_issue


def _jit(session) -> str:
    return session.execute(text("SELECT current_setting('jit')")).scalar_one()


@pytest.mark.postgres
def test_the_enqueue_and_its_count_run_without_jit(tmp_path, pg_url):
    """The eligibility query is priced far above jit_above_cost, and PostgreSQL's JIT compile of it
    was nearly half of a 20,000-reader enqueue's server CPU (outbox.without_jit). Only the
    transaction that enqueues goes without it (SET LOCAL)."""
    # JIT on for this test's connections whatever the server's default (never a server setting)
    settings, engine, issue_id = setup_issue(tmp_path, pg_url + "%20-cjit%3Don", 5, start=False)
    with session_scope(engine) as session:
        assert _jit(session) == "on"
        assert outbox.count_eligible(session, issue_id, utcnow()) == 5
        assert _jit(session) == "off"
    with session_scope(engine) as session:
        assert _jit(session) == "on"  # SET LOCAL: the next transaction is as configured
        assert start_in(session, issue_id, utcnow()).enqueued == 5
        assert _jit(session) == "off"
    with session_scope(engine) as session:
        assert _jit(session) == "on"
    engine.dispose()


@pytest.mark.postgres
def test_forked_workers_find_the_parents_engine_ready_and_hold_none_of_its_connections(tmp_path, pg_url):
    """What `worker --processes N` forks from (delivery/pool.py): the warmed-up parent closes
    every connection, but keeps its engine, so a child's first connection skips SQLAlchemy's
    first-connect checks and finds the warm-up's statements compiled. A fresh engine per child
    did both again on the way to its first claim."""
    from newsletter.db import get_engine
    from newsletter.delivery.pool import warm_parent

    settings, engine, issue_id = setup_issue(tmp_path, pg_url, 5)
    warmed = get_engine(settings.database.url)
    assert warm_parent(settings) == 1  # the sending issue compiled
    child = get_engine(settings.database.url)  # what a forked child's get_engine finds
    assert child is warmed
    assert child.pool.checkedout() == 0 and child.pool.checkedin() == 0  # nothing shared with a child
    assert child.dialect.server_version_info is not None  # the first-connect checks are done
    assert len(child._compiled_cache) > 0
    with child.connect() as connection:  # and it still connects, afresh
        assert connection.execute(text("SELECT 1")).scalar_one() == 1
    engine.dispose()


def test_the_worker_code_leaves_the_follow_up_machinery_until_a_pass_needs_it():
    """Everything `newsletter worker` imports before its first message is on the way to it (issue
    18: sending within 1 s of its start); the follow-ups (two SQLModel tables, their renderer) are
    first needed after the sending issues' batches (worker._followup_modules)."""
    import subprocess
    import sys

    loaded = subprocess.run([sys.executable, "-c", (
        "import sys, newsletter.cli\n"
        "from newsletter.config import load_settings\n"
        "import newsletter.delivery.pool, newsletter.delivery.transports.smtp\n"
        "print(sorted(m for m in sys.modules if m.startswith('newsletter.') and 'followup' in m))")],
        capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "['newsletter.cli.followup']", loaded  # the command's definition only
