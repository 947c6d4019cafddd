"""The bounce mailbox: delivery status notifications (RFC 3464) in a maildir or an mbox.

`newsletter bounces process PATH` reads every message; a `multipart/report;
report-type=delivery-status` yields one event per recipient block (Action failed: Status 5.x.x →
hard bounce, otherwise soft; delayed → deferred; delivered/relayed/expanded → delivered), which
newsletter/feedback.py applies by the same rules as provider webhooks. Anything else is counted
and skipped; nothing in the mailbox is changed, and reading it again changes nothing twice.

A DSN is plain mail that anyone can send, so it is trusted only when the returned message (the
`message/rfc822` or `text/rfc822-headers` part) carries a Message-ID that we made: our
Message-IDs are `<reference.HMAC@domain>` with the secret key (newsletter/issues/message.py).
The address acted on is the one we sent that message to (Final-Recipient can be a forwarding
target); the reference also comes from `X-Weekly-Verdicts-Delivery`, but only as far as the
Message-ID confirms it.
"""

from __future__ import annotations

import hashlib
import logging
import mailbox
from collections import Counter
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import Message
from email.parser import HeaderParser
from email.utils import parsedate_to_datetime
from pathlib import Path

from sqlalchemy import Engine

from subscribers.tokens import verify_digest
from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.errors import UserError
from newsletter.feedback import apply_event, recipient_of
from newsletter.issues.message import DELIVERY_HEADER
from newsletter.webhooks.events import (MESSAGE_ID_REFERENCE, EventKind, NormalizedEvent, clean_email,
                                        clean_reference)

log = logging.getLogger(__name__)
PROVIDER = "mailbox"


@dataclass
class Recipient:
    kind: EventKind
    final_recipient: str
    detail: str
    occurred_at: object = None


@dataclass
class Dsn:
    id: str  # the report's own Message-ID, else a hash of its bytes
    recipients: list[Recipient]
    returned_message_id: str | None
    returned_reference: str | None


@dataclass
class BounceReport:
    messages: int = 0
    reports: int = 0
    not_dsn: int = 0
    unreadable: int = 0
    not_ours: int = 0  # recipient entries whose returned message has no Message-ID of ours
    applied: int = 0
    duplicates: int = 0
    matched: int = 0  # entries matched to a delivery
    kinds: Counter = field(default_factory=Counter)
    consequences: Counter = field(default_factory=Counter)


def _date(value: object):
    try:
        return parsedate_to_datetime(str(value)) if value else None
    except (TypeError, ValueError):
        return None


def _kind(action: str, status: str) -> EventKind | None:
    if action == "failed":
        return EventKind.bounced_hard if status.startswith("5") else EventKind.bounced_soft
    if action == "delayed":
        return EventKind.deferred
    if action in ("delivered", "relayed", "expanded"):
        return EventKind.delivered
    return None


def parse_dsn(data: bytes) -> Dsn | None:
    """The DSN in a raw message, or None when it is not a delivery status report."""
    msg = message_from_bytes(data, policy=policy.compat32)
    if msg.get_content_type() != "multipart/report":
        return None
    if str(msg.get_param("report-type", "")).lower() != "delivery-status":
        return None
    status_part, returned = None, None
    for part in msg.get_payload():
        if not isinstance(part, Message):
            continue
        content_type = part.get_content_type()
        if content_type == "message/delivery-status" and status_part is None:
            status_part = part
        elif content_type == "message/rfc822" and returned is None:
            inner = part.get_payload()
            returned = inner[0] if isinstance(inner, list) and inner else None
        elif content_type == "text/rfc822-headers" and returned is None:
            text = part.get_payload(decode=True) or b""
            returned = HeaderParser().parsestr(text.decode("utf-8", "replace"))
    if status_part is None:
        return None
    blocks = [b for b in status_part.get_payload() if isinstance(b, Message)]
    if not blocks:
        return None
    per_message, recipients = blocks[0], []
    for block in blocks[1:]:
        final = str(block.get("Final-Recipient") or block.get("Original-Recipient") or "")
        address = clean_email(final.partition(";")[2] or final)
        action = str(block.get("Action") or "").strip().lower()
        status = str(block.get("Status") or "").strip()
        kind = _kind(action, status)
        if kind is None or not address:
            continue
        diagnostic = " ".join(str(block.get("Diagnostic-Code") or "").split())
        occurred = _date(block.get("Last-Attempt-Date")) or _date(per_message.get("Arrival-Date")) or _date(msg.get("Date"))
        recipients.append(Recipient(kind, address, f"{action} {status} {diagnostic}".strip()[:500], occurred))
    own_id = str(msg.get("Message-ID") or "").strip()
    return Dsn(
        id=own_id[:200] if own_id else hashlib.sha256(data).hexdigest()[:40],
        recipients=recipients,
        returned_message_id=str(returned.get("Message-ID") or "").strip() or None if returned is not None else None,
        returned_reference=clean_reference(str(returned.get(DELIVERY_HEADER) or "")) if returned is not None else None,
    )


def verified_reference(secret: str, message_id: str | None) -> str | None:
    """The reference in a Message-ID that we made (its HMAC checks out with our secret key)."""
    match = MESSAGE_ID_REFERENCE.match((message_id or "").strip())
    if not match:
        return None
    reference = match.group(1)
    digest = (message_id or "").strip().lstrip("<").split("@", 1)[0][len(reference) + 1:]
    return reference if verify_digest(secret, reference, digest, 24) else None


def open_mailbox(path: Path) -> mailbox.Mailbox:
    if path.is_dir():
        if (path / "cur").is_dir() or (path / "new").is_dir():
            return mailbox.Maildir(path, factory=None, create=False)
        raise UserError(f"{path}: a folder, but not a maildir (no cur/ or new/ inside)")
    if path.is_file():
        return mailbox.mbox(path, factory=None, create=False)
    raise UserError(f"{path}: no such maildir or mbox")


def process_mailbox(engine: Engine, settings: Settings, secret: str, path: Path) -> BounceReport:
    report = BounceReport()
    box = open_mailbox(path)
    try:
        for key in box.keys():
            report.messages += 1
            try:
                data = box.get_bytes(key)
                dsn = parse_dsn(data)
            except Exception as exc:  # a broken message is counted, never the end of the run
                log.warning("bounce mailbox %s: message %s unreadable: %s", path, key, exc)
                report.unreadable += 1
                continue
            if dsn is None:
                report.not_dsn += 1
                continue
            report.reports += 1
            _apply_dsn(engine, settings, secret, dsn, report)
    finally:
        box.close()
    return report


def _apply_dsn(engine: Engine, settings: Settings, secret: str, dsn: Dsn, report: BounceReport) -> None:
    reference = verified_reference(secret, dsn.returned_message_id)
    if reference is None or not dsn.recipients:
        report.not_ours += len(dsn.recipients)
        if dsn.recipients:
            log.info("DSN %s: the returned message is not one of ours (no Message-ID we made); skipped", dsn.id)
        return
    if dsn.returned_reference and dsn.returned_reference != reference:
        log.info("DSN %s: %s says %s, the Message-ID says %s; using the Message-ID", dsn.id, DELIVERY_HEADER,
                 dsn.returned_reference, reference)
    with session_scope(engine) as session:
        address = recipient_of(session, reference)
        if address is None:  # signed, but names no delivery of ours (any more): never guess from Final-Recipient
            report.not_ours += len(dsn.recipients)
            log.info("DSN %s: %s names no delivery or mail of ours; skipped", dsn.id, reference)
            return
        for recipient in dsn.recipients:
            event = NormalizedEvent(
                kind=recipient.kind,
                email=address,
                provider=PROVIDER,
                provider_event_id=f"{dsn.id}:{recipient.final_recipient}"[:250],
                reference=reference,
                occurred_at=recipient.occurred_at,
                detail=f"{recipient.detail} (Final-Recipient {recipient.final_recipient})",
                message_id=dsn.returned_message_id,
            )
            applied = apply_event(session, settings, event)
            report.kinds[recipient.kind.value] += 1
            if applied.duplicate:
                report.duplicates += 1
                continue
            report.applied += 1
            report.matched += applied.delivery_id is not None
            if applied.consequence:
                report.consequences[applied.consequence.split(" ")[0]] += 1
