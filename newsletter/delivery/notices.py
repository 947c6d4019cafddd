"""Telling the editors about an issue: when it has gone out, and when the scheduler held it back
because pre-send checks fail. A log line, and a short mail if configured.

`notify_finished` is called by whichever worker's conditional UPDATE moved the issue to `sent`,
so the notice goes out once however many workers there are; `notify_held` by the scheduler whose
conditional UPDATE held the issue. The mails are rows of the transactional queue (kinds `notice`
and `held`, built by editor_mail.build_notice): sent at once, and like any queued mail retried
with backoff if that fails, so a refused or unbuildable notice never blocks anything.
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

__all__ = ["notice_text", "notify_finished", "notify_held"]


def notify_finished(engine: Engine, settings: Settings, issue_id: int, counts: dict[str, int],
                    transport: Transport | None = None, secret: str | None = None) -> int:
    """Log the outcome; queue and send a mail to each `[schedule] notify` address. Returns how many
    notices were accepted now (the rest stay queued for the workers)."""
    with session_scope(engine) as session:
        issue = session.get(Issue, issue_id)
    subject, _body = notice_text(issue, counts)
    (log.warning if counts.get("failed") else log.info)(subject)
    return _queue_and_send(engine, settings, "notice", issue_id, transport, secret)


def notify_held(engine: Engine, settings: Settings, issue_id: int, week: str, failing: list, reason: str) -> int:
    """The scheduler did not send (or schedule) an issue because pre-send checks fail: say which."""
    subject = f"Issue {issue_id} ({week}) was not sent: pre-send checks fail"
    lines = [f"Issue {issue_id} ({week}) {reason}, because these checks fail:", ""]
    lines += [f"  {result.name}: {result.message}" for result in failing]
    lines += ["", f"Fix them and schedule it again (`newsletter issue check {issue_id}` shows every check)."]
    log.warning("%s: %s", subject, "; ".join(f"{r.name}: {r.message}" for r in failing))
    try:
        return _queue_and_send(engine, settings, "held", issue_id, None, None, subject, "\r\n".join(lines) + "\r\n")
    except Exception:  # the issue is held either way; a notice that cannot go out must not stop the scheduler
        log.exception("issue %s: the notice to the editors could not be sent", issue_id)
        return 0


def _queue_and_send(engine: Engine, settings: Settings, kind: str, issue_id: int, transport: Transport | None,
                    secret: str | None, subject: str | None = None, body: str | None = None) -> int:
    if not settings.schedule.notify:
        return 0
    ids = mailqueue.enqueue(engine, kind, list(settings.schedule.notify), issue_id, subject, body)
    own = transport is None
    transport = transport or make_transport(settings)
    try:
        return mailqueue.send_queued(engine, settings, transport, secret or load_secret_key(settings), ids=ids).sent
    finally:
        if own:
            transport.close()
