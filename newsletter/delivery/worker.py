"""`newsletter worker`: deliver every issue that is sending, until idle or forever.

This is the single-process worker for SQLite and small deployments; it claims
batches through the same outbox statements a multi-process worker uses.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import Engine, select

from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.delivery.sender import deliver
from newsletter.delivery.transports import make_transport
from newsletter.issues.models import Issue, IssueState
from newsletter.secret_key import load_secret_key


def sending_issues(engine: Engine) -> list[int]:
    with session_scope(engine) as session:
        return list(session.execute(
            select(Issue.id).where(Issue.state == IssueState.sending.value).order_by(Issue.id)
        ).scalars())


def run_worker(
    engine: Engine, settings: Settings, until_idle: bool = False, poll_seconds: float = 5.0,
    echo: Callable[[str], None] = print,
) -> None:
    secret = load_secret_key(settings)
    transport = make_transport(settings)
    try:
        while True:
            worked = False
            for issue_id in sending_issues(engine):
                report = deliver(engine, settings, transport, secret, issue_id)
                if report.sent or report.failed or report.retry or report.skipped:
                    worked = True
                    echo(f"issue {issue_id}: {report.sent} sent, {report.retry} to retry, "
                         f"{report.failed} failed, {report.skipped} skipped"
                         f"{' - finished' if report.finished else ''}")
            if until_idle and not worked:
                return
            if not worked:
                time.sleep(poll_seconds)
    finally:
        transport.close()
