"""Telling the editors when an issue has gone out: a log line, and a short mail if configured.

Called by whichever worker's conditional UPDATE moved the issue to `sent`, so
the notice goes out once however many workers there are. The mails are rows of
the transactional queue (kind `notice`, built by editor_mail.build_notice): sent
at once by the finishing worker, and like any queued mail retried with backoff
if that fails, so a refused or unbuildable notice never blocks anything.
"""

from __future__ import annotations

import logging

from sqlalchemy import Engine

from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.delivery import mailqueue
from newsletter.delivery.editor_mail import notice_text
from newsletter.delivery.transports import make_transport
from newsletter.delivery.transports.base import Transport
from newsletter.issues.models import Issue
from newsletter.secret_key import load_secret_key

log = logging.getLogger("newsletter.notices")

__all__ = ["notice_text", "notify_finished"]


def notify_finished(engine: Engine, settings: Settings, issue_id: int, counts: dict[str, int],
                    transport: Transport | None = None, secret: str | None = None) -> int:
    """Log the outcome; queue and send a mail to each `[schedule] notify` address. Returns how many
    notices were accepted now (the rest stay queued for the workers)."""
    with session_scope(engine) as session:
        issue = session.get(Issue, issue_id)
    subject, _body = notice_text(issue, counts)
    (log.warning if counts.get("failed") else log.info)(subject)
    if not settings.schedule.notify:
        return 0
    ids = mailqueue.enqueue(engine, "notice", list(settings.schedule.notify), issue_id)
    own = transport is None
    transport = transport or make_transport(settings)
    try:
        return mailqueue.send_queued(engine, settings, transport, secret or load_secret_key(settings), ids=ids).sent
    finally:
        if own:
            transport.close()
