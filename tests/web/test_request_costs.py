"""What one signup and one one-click unsubscribe cost the database (issue 18 point 4).

At 200 requests/s every statement is a round trip that holds a pooled connection and a thread;
these counts (from SQLAlchemy's cursor and transaction events, on the live server) fail the test
when a change adds one, so a regression shows here and not only in the load benchmark. The
counts are those of the first request of a kind too: nothing is warmed up but the categories
the signup page itself read.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

import pytest
from sqlalchemy import event

from newsletter.tokens import Purpose
from tests.conftest import link_token
from tests.web.test_unsubscribe_preferences import add_active, status_of

# PostgreSQL: one statement each (subscribers/hot_paths.py); SQLite, through the ORM: request_signup's
# state, reader, topics (delete, insert), consent and mail; the reader, its UPDATE, the consent
# event and the outgoing-webhook check.
SIGNUP_STATEMENTS = {"postgresql": 1, "sqlite": 6}
UNSUBSCRIBE_STATEMENTS = {"postgresql": 1, "sqlite": 4}


class Costs:
    def __init__(self) -> None:
        self.statements: list[str] = []
        self.transactions = 0
        self.lock = threading.Lock()


@contextmanager
def counted(engine):
    """Every statement and transaction the engine runs inside the block (any thread)."""
    costs = Costs()

    def statement(_conn, _cursor, sql, *_args):
        with costs.lock:
            costs.statements.append(sql.split()[0].upper() + " " + " ".join(sql.split()[1:4]))

    def begin(_conn):
        with costs.lock:
            costs.transactions += 1

    event.listen(engine, "before_cursor_execute", statement)
    event.listen(engine, "begin", begin)
    try:
        yield costs
    finally:
        event.remove(engine, "before_cursor_execute", statement)
        event.remove(engine, "begin", begin)


@pytest.mark.parametrize("known", [False, True], ids=["new address", "known address"])
def test_a_signup_is_one_transaction_of_few_statements(live, known):
    if known:
        add_active(live, "known@example.com")
    token = live.form_token()  # the page reads (and caches) the categories
    with counted(live.engine) as costs:
        response = live.http.post(live.url + "/subscribe", data={
            "form_token": token, "email": "known@example.com" if known else "new@example.com",
            "topics": ["Developer Tools"]}, allow_redirects=False)
    assert response.status_code == 200 and "Check your inbox" in response.text
    assert costs.transactions == 1, "\n".join(costs.statements)
    assert len(costs.statements) <= SIGNUP_STATEMENTS[live.engine.dialect.name], costs.statements


def test_a_one_click_unsubscribe_is_one_transaction(live):
    reader = add_active(live)
    url = f"{live.url}/unsubscribe/{link_token(live.engine, Purpose.unsubscribe, reader)}"
    with counted(live.engine) as costs:
        response = live.http.post(url, data={"List-Unsubscribe": "One-Click"}, allow_redirects=False)
    assert response.status_code == 200 and status_of(live, reader) == "unsubscribed"
    assert costs.transactions == 1, "\n".join(costs.statements)
    assert len(costs.statements) <= UNSUBSCRIBE_STATEMENTS[live.engine.dialect.name], costs.statements
