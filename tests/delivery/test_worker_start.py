"""Worker processes start from a parent that did the start-up work once (delivery/pool.py).

A worker process's start-up was a quarter of a 20,000-reader send (issue 18): the forkserver
imported the worker a second time and every process compiled the issue on its own. What is counted
here is the compiles, per send and across processes (each process says how many it made), not
time: a loaded machine stretches time, never the count. And what a reader gets must not change:
readers of a topic variant still get their variant from processes that inherited the whole issue.
"""

from __future__ import annotations

import re
from collections import Counter
from email import message_from_bytes, policy

import pytest
from sqlalchemy import select, update

from newsletter.db import session_scope
from newsletter.delivery.models import Delivery
from newsletter.issues.frozen import freeze
from newsletter.issues.models import Issue
from tests.delivery.test_workers import finish, popen, rows, setup_issue, worker_cmd

COMPILED_HERE = re.compile(r"\[worker (\d)\] stopped; issue templates compiled in this process: (\d+)")


def compiles_per_worker(output: str) -> dict[int, int]:
    return {int(worker): int(count) for worker, count in COMPILED_HERE.findall(output)}


@pytest.mark.postgres
def test_the_issue_is_compiled_once_for_every_worker_process(tmp_path, pg_url):
    settings, engine, issue_id = setup_issue(tmp_path, pg_url, 60, "[delivery]\nbatch_size = 5\n")
    code, output = finish(popen(worker_cmd("--processes", "2", "--until-idle"), tmp_path / "config.toml"))
    assert code == 0, output
    assert "compiled 1 sending issue(s) once for every worker process" in output, output
    # both inherited it; neither compiled again (a process that sent nothing compiles nothing
    # either, but every delivery was sent by one of them: see test_workers for the sharing)
    assert compiles_per_worker(output) == {1: 0, 2: 0}, output
    delivered = rows(engine, issue_id)
    assert Counter(r.state for r in delivered) == {"sent": 60}
    engine.dispose()


@pytest.mark.postgres
def test_topic_variants_still_reach_their_readers_from_forked_workers(tmp_path, pg_url):
    settings, engine, issue_id = setup_issue(tmp_path, pg_url, 20, "[delivery]\nbatch_size = 3\n")
    with session_scope(engine) as session:
        titles = [c.title for c in freeze(session, settings, session.get(Issue, issue_id)).comparisons]
        ids = list(session.execute(select(Delivery.id).where(Delivery.issue_id == issue_id)
                                   .order_by(Delivery.id)).scalars())
        # every other reader chose the first comparison's topic only
        session.execute(update(Delivery).where(Delivery.id.in_(ids[::2])).values(variant_mask=0b1))
    assert len(titles) >= 2
    code, output = finish(popen(worker_cmd("--processes", "2", "--until-idle"), tmp_path / "config.toml"))
    assert code == 0, output
    counts = compiles_per_worker(output)
    assert set(counts) == {1, 2} and all(count <= 1 for count in counts.values()), output  # the variant only
    variant = {f"i{issue_id}-d{delivery_id}" for delivery_id in ids[::2]}
    seen = Counter()
    for path in settings.mail.file.dir.glob("*.eml"):
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        text = message.get_body(("plain",)).get_content()
        narrowed = message["X-Weekly-Verdicts-Delivery"] in variant
        assert titles[0] in text
        assert all((title in text) != narrowed for title in titles[1:]), message["X-Weekly-Verdicts-Delivery"]
        seen[narrowed] += 1
    assert seen == {True: 10, False: 10}
    engine.dispose()
