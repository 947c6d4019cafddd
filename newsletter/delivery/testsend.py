"""`issue test`: the issue to a few editors' addresses, subject marked [TEST].

The copies are rows of the transactional queue (kind `test`): built from the same compile and
assembly as a real send, each in isolation, and sent at once; one that is refused for now stays
queued for the workers' retries. No delivery row is made: a test is not a send and does not stop
the issue from going to those addresses later.
"""

from __future__ import annotations

from email.utils import getaddresses

from sqlalchemy import Engine, select
from sqlmodel import Session

from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.delivery import mailqueue
from newsletter.delivery.models import DeliveryState
from newsletter.delivery.transports import make_transport
from newsletter.issues.errors import IssueError, IssueNotFound
from newsletter.issues.models import Issue
from newsletter.subscribers.models import TransactionalMail
from newsletter.subscribers.service import InvalidInput, normalize_email
from newsletter.text import has_control_chars

MAX_TEST_RECIPIENTS = 20


def _outcome(state: str, error: str | None) -> str:
    if state == DeliveryState.sent.value:
        return "sent"
    if state == DeliveryState.retry.value:
        return f"retry: {error} (queued: a worker tries again)"
    return f"{state}: {error}" if error else state


def clean_addresses(addresses: list[str], field: str = "--to") -> list[str]:
    """1 to MAX_TEST_RECIPIENTS addresses, given one per value or comma-separated, normalised. Each
    value is read as an address list (RFC 5322, email.utils.getaddresses), so a pasted
    '"Doe, Jane" <jane@example.org>' is one address, not two halves; the display name is not used."""
    if any(has_control_chars(value) for value in addresses):  # never parsed into more addresses
        raise IssueError(f"{field}: contains a line break or another control character", field.lstrip("-"))
    addresses = [address.strip() for _name, address in getaddresses(addresses) if address.strip()]
    if not addresses or len(addresses) > MAX_TEST_RECIPIENTS:
        raise IssueError(f"{field}: give 1 to {MAX_TEST_RECIPIENTS} addresses", field.lstrip("-"))
    cleaned = []
    for address in addresses:
        try:
            cleaned.append(normalize_email(address, field))
        except InvalidInput as exc:  # which piece, and the likely cause of a piece with no @
            reason = str(exc).removeprefix(f"{field}: ")
            hint = (' A name with a comma needs quotes: "Doe, Jane" <jane@example.org>.'
                    if "@" not in address else "")
            raise IssueError(f"{field}: {address!r}: {reason}{hint}", field.lstrip("-"))
    return cleaned


def queue_tests(session: Session, issue_id: int, emails: list[str]) -> list[int]:
    """One `test` row per address in the caller's transaction (which may audit it too)."""
    if session.get(Issue, issue_id) is None:
        raise IssueNotFound(f"issue {issue_id} does not exist (see `newsletter issue list`)")
    return mailqueue.enqueue_in(session, "test", emails, issue_id)


def deliver_tests(engine: Engine, settings: Settings, secret: str, ids: list[int]) -> list[tuple[str, str]]:
    """Send the queued test rows now; (address, outcome) for each."""
    transport = make_transport(settings)
    try:
        mailqueue.send_queued(engine, settings, transport, secret, ids=ids)
    finally:
        transport.close()
    with session_scope(engine) as session:
        rows = session.execute(select(TransactionalMail.to_email, TransactionalMail.state, TransactionalMail.last_error)
                               .where(TransactionalMail.id.in_(ids)).order_by(TransactionalMail.id)).all()
    return [(email, _outcome(state, error)) for email, state, error in rows]
