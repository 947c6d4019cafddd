"""A POST waiting on the database does not hold up other requests (issue 18 point 4).

The form POSTs used to run their database round trips on the event loop: one that waited (a lock,
a slow disk) stopped every other request of the process. Here a reader's row is locked by another
transaction, so their unsubscribe (RFC 8058 one-click, or from the preferences page) waits for it;
meanwhile /healthz must answer at once. On the old code the health check waited for the lock.
"""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import text

from newsletter.tokens import Purpose
from tests.conftest import link_token
from tests.web.test_unsubscribe_preferences import add_active, status_of


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # row locks: PostgreSQL only, no skip
@pytest.mark.parametrize("route", ["unsubscribe", "preferences"])
def test_a_post_waiting_for_a_lock_does_not_stop_other_requests(live, route):
    assert live.engine.dialect.name == "postgresql"
    reader = add_active(live)
    purpose = Purpose.unsubscribe if route == "unsubscribe" else Purpose.preferences
    url = f"{live.url}/{route}/{link_token(live.engine, purpose, reader)}"
    form = {"List-Unsubscribe": "One-Click"} if route == "unsubscribe" else {"action": "unsubscribe"}
    answers = []
    with live.engine.connect() as blocker:
        blocker.execute(text("SELECT id FROM subscriber WHERE id = :id FOR UPDATE"), {"id": reader})
        holder = blocker.execute(text("SELECT pg_backend_pid()")).scalar_one()
        waiting = threading.Thread(target=lambda: answers.append(live.http.post(url, data=form, timeout=60)))
        waiting.start()
        deadline = time.monotonic() + 20
        while not _waits_for(live.engine, holder) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _waits_for(live.engine, holder), "the unsubscribe never reached the locked row"
        started = time.monotonic()
        assert live.http.get(f"{live.url}/healthz", timeout=30).text == "ok"
        assert time.monotonic() - started < 5  # on the event loop it would wait for the lock (forever)
        blocker.rollback()
    waiting.join(timeout=30)
    assert answers and answers[0].status_code == 200
    assert status_of(live, reader) == "unsubscribed"


def _waits_for(engine, holder: int) -> bool:
    """Some session waits for a lock `holder` (the blocker's backend) holds: the unsubscribe's
    UPDATE, not another test's session in the same database."""
    with engine.connect() as connection:
        return bool(connection.execute(text(
            "SELECT count(*) FROM pg_stat_activity WHERE :holder = ANY(pg_blocking_pids(pid))"
        ), {"holder": holder}).scalar_one())
