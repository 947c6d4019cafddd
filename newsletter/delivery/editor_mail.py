"""The editors' mails of the transactional queue: the notice that an issue finished, and the
issue test (`issue test`). Built here from their queue row at send time; enqueued and reported by
notices.py and testsend.py, sent by mailqueue.py."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from email.utils import format_datetime

from sqlmodel import Session

from newsletter.config import Settings
from newsletter.delivery import outbox
from newsletter.issues.links import IssueRecipient, issue_message
from newsletter.issues.models import Issue
from newsletter.issues.states import IssueState
from newsletter.issues.render import compile_issue
from newsletter.issues.view import build_issue_view
from newsletter.mail.compose import assemble, build_template, common_headers
from newsletter.mail.dkim import signer_for
from newsletter.mail.headers import domain_of, encode_address, name_and_address
from newsletter.mail.message import OutgoingMessage
from newsletter.mail.mime import MessageTemplate, message_template
from newsletter.mail.slots import Slotted
from newsletter.subscribers.models import TransactionalMail
from newsletter.tokens import TEST_READER, issue_copy_key


def notice_text(issue: Issue, counts: dict[str, int]) -> tuple[str, str]:
    failed = counts.get("failed", 0)
    verdict = "finished with failures" if failed else "finished"
    subject = f"Issue {issue.id} ({issue.week}) {verdict}: {counts.get('sent', 0)} sent"
    lines = [f"Issue {issue.id} ({issue.week}) \"{issue.subject}\" has {verdict}.", ""]
    for state in ("sent", "failed", "skipped", "retry", "queued", "sending"):
        if counts.get(state):
            lines.append(f"  {state:8} {counts[state]}")
    return subject, "\r\n".join(lines) + "\r\n"


def _issue(session: Session, row: TransactionalMail) -> Issue:
    issue = session.get(Issue, row.issue_id) if row.issue_id is not None else None
    if issue is None:
        raise LookupError(f"{row.kind} mail {row.id} names issue {row.issue_id}, which does not exist")
    return issue


def _final_counts(session: Session, issue: Issue) -> dict[str, int]:
    """The deliveries by state, for the editors' notice (outbox.counts_of: of a sent issue from its
    counters; a million rows counted per notice was a scan of the whole issue at the send's end)."""
    return outbox.counts_of(session, issue.id, issue.state == IssueState.sent.value)


def build_notice(session: Session, settings: Settings, row: TransactionalMail, now: datetime) -> OutgoingMessage:
    """A short plain-text mail: a `notice` with the issue's final counts (read now, so a notice
    retried later says the same: the issue is finished); a `held` one with the text fixed when it
    was queued (the checks that failed then). Made by the composer every mail uses, so it is
    DKIM-signed and carries the fields the JSON providers take."""
    issue = _issue(session, row)
    if row.body is not None:
        subject, body = row.subject or f"Issue {issue.id} ({issue.week})", row.body
    else:
        subject, body = notice_text(issue, _final_counts(session, issue))
    reference = f"notice-i{issue.id}-t{row.id}"
    name, address = name_and_address(row.to_email)
    template = message_template(common_headers(settings, subject, list_headers=False), Slotted([body], []),
                                subject=subject)
    personal = [
        ("To", encode_address(row.to_email, "schedule.notify")),
        ("Date", format_datetime(now)),
        ("Message-ID", f"<{reference}@{domain_of(settings.mail.from_address)}>"),
        ("Auto-Submitted", "auto-generated"),
    ]
    return assemble(settings, template, name, address, personal, {}, reference, signer_for(settings))


def test_template(session: Session, settings: Settings, row: TransactionalMail) -> MessageTemplate:
    """The issue compiled as a real send compiles it, subject marked [TEST]."""
    compiled = compile_issue(build_issue_view(session, settings, _issue(session, row)))
    return build_template(settings, replace(compiled, subject=f"[TEST] {compiled.subject}"))


def build_test(settings: Settings, secret: str, template: MessageTemplate, row: TransactionalMail,
               now: datetime) -> OutgoingMessage:
    """One test copy; TEST_READER in its links (a test reader is nobody's subscription: the routes
    answer its links with what they do for a reader)."""
    recipient = IssueRecipient(row.to_email, "", TEST_READER, f"test-i{row.issue_id}-t{row.id}",
                               issue_copy_key(secret, row.issue_id))
    return issue_message(settings, secret, template, recipient, now)[0]
