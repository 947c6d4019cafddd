"""Shared steps of the issue tests: readers to send to, the week's draft, the in-process worker."""

from __future__ import annotations

from email import message_from_bytes, policy

from sqlmodel import select

from newsletter.db import session_scope
from newsletter.delivery.sender import deliver
from newsletter.delivery.transports import make_transport
from newsletter.editors.models import AuditEntry
from newsletter.issues.drafting import draft_issue
from newsletter.subscribers.service import UpsertResult, upsert_active
from tests.conftest import TEST_SECRET

WEEK = "2026-W48"


def add_readers(engine, count: int) -> None:
    with session_scope(engine) as session:
        for number in range(count):
            upsert_active(session, f"reader{number}@example.com", "", [], "import", UpsertResult())


def drafted(console) -> int:
    return draft_issue(console.engine, console.settings, WEEK).issue.id


def run_worker(console, issue_id: int):
    """A worker's delivery pass in this process, through the file transport."""
    transport = make_transport(console.settings)
    try:
        return deliver(console.engine, console.settings, transport, TEST_SECRET, issue_id)
    finally:
        transport.close()


def outbox_mails(console) -> list:
    folder = console.settings.mail.file.dir
    return [message_from_bytes(path.read_bytes(), policy=policy.default) for path in sorted(folder.glob("*.eml"))]


def audit_entries(console, action: str) -> list[AuditEntry]:
    with session_scope(console.engine) as session:
        return list(session.exec(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)))
