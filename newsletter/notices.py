"""Telling the editors when an issue has gone out: a log line, and a short mail if configured.

Called by whichever worker's conditional UPDATE moved the issue to `sent`, so
the notice goes out once however many workers there are.
"""

from __future__ import annotations

import logging
import secrets
from email.utils import format_datetime

from sqlalchemy import Engine

from newsletter.config import Settings
from newsletter.db import session_scope, utcnow
from newsletter.delivery.transports import make_transport
from newsletter.delivery.transports.base import OutgoingMessage
from newsletter.issues.models import Issue
from newsletter.mail.headers import address_of, domain_of, encode_address, encode_text, header_line

log = logging.getLogger("newsletter.notices")


def notice_text(issue: Issue, counts: dict[str, int]) -> tuple[str, str]:
    failed = counts.get("failed", 0)
    verdict = "finished with failures" if failed else "finished"
    subject = f"Issue {issue.id} ({issue.week}) {verdict}: {counts.get('sent', 0)} sent"
    lines = [f"Issue {issue.id} ({issue.week}) \"{issue.subject}\" has {verdict}.", ""]
    for state in ("sent", "failed", "skipped", "retry", "queued", "sending"):
        if counts.get(state):
            lines.append(f"  {state:8} {counts[state]}")
    return subject, "\r\n".join(lines) + "\r\n"


def notify_finished(engine: Engine, settings: Settings, issue_id: int, counts: dict[str, int]) -> int:
    """Log the outcome; mail `[schedule] notify` addresses. Returns how many notices were accepted."""
    with session_scope(engine) as session:
        issue = session.get(Issue, issue_id)
    subject, body = notice_text(issue, counts)
    (log.warning if counts.get("failed") else log.info)(subject)
    return mail_editors(settings, f"notice-i{issue_id}", subject, body)


def notify_held(settings: Settings, issue_id: int, week: str, failing: list, reason: str) -> int:
    """The scheduler did not send (or schedule) an issue because pre-send checks fail: say which."""
    subject = f"Issue {issue_id} ({week}) was not sent: pre-send checks fail"
    lines = [f"Issue {issue_id} ({week}) {reason}, because these checks fail:", ""]
    lines += [f"  {result.name}: {result.message}" for result in failing]
    lines += ["", f"Fix them and schedule it again (`newsletter issue check {issue_id}` shows every check)."]
    log.warning("%s: %s", subject, "; ".join(f"{r.name}: {r.message}" for r in failing))
    try:
        return mail_editors(settings, f"notice-i{issue_id}", subject, "\r\n".join(lines) + "\r\n")
    except Exception:  # the issue is held either way; a notice that cannot go out must not stop the scheduler
        log.exception("issue %s: the notice to the editors could not be sent", issue_id)
        return 0


def mail_editors(settings: Settings, reference_prefix: str, subject: str, body: str) -> int:
    """A plain-text notice to each `[schedule] notify` address; returns how many were accepted."""
    if not settings.schedule.notify:
        return 0
    now = utcnow()
    domain = domain_of(settings.mail.from_address)
    messages = []
    for address in settings.schedule.notify:
        reference = f"{reference_prefix}-{secrets.token_hex(4)}"
        headers = [
            header_line("From", encode_address(settings.mail.from_address, "mail.from_address")),
            header_line("To", encode_address(address, "schedule.notify")),
            header_line("Subject", encode_text("Subject", subject)),
            header_line("Date", format_datetime(now)),
            header_line("Message-ID", f"<{reference}@{domain}>"),
            header_line("Auto-Submitted", "auto-generated"),
            "MIME-Version: 1.0",
            'Content-Type: text/plain; charset="utf-8"',
            "Content-Transfer-Encoding: 8bit",
        ]
        data = ("\r\n".join(headers) + "\r\n\r\n" + body).encode("utf-8")
        messages.append(OutgoingMessage(address_of(settings.mail.from_address), address_of(address), data, reference))
    transport = make_transport(settings)
    try:
        results = transport.send(messages)
    finally:
        transport.close()
    return sum(1 for result in results if result.outcome.value == "sent")
