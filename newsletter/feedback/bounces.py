"""The bounce mailbox: `newsletter bounces process PATH` reads every message of a maildir or an
mbox, finds what it reports (newsletter/feedback/bounce_parse.py: RFC 3464 blocks wherever they are,
else flufl.bounce's detectors) and applies each failure by the rules provider webhooks use
(newsletter/feedback/rules.py). Nothing in the mailbox is changed; reading it again changes nothing twice.

A bounce is plain mail that anyone can send, so it is attributed only by what we signed:

1. VERP: it was delivered to a signed per-message envelope sender (Delivered-To, X-Original-To,
   Envelope-To or To; newsletter/mail/verp.py); or
2. it returns a Message-ID we made (`<reference.HMAC@domain>`, newsletter/mail/compose.py),
   in any returned part or quoted inline.

Either names one message, and the address acted on is the one we sent it to (the bounce can name
a forwarding target). With `[mail] verp` on, every message of ours carries (1), so a bounce with
neither is not ours. With VERP off, a bounce that returns no Message-ID at all is attributed to
the failed address it names, but only to a reader we have sent an issue to (feedback.last_sent_to);
one that returns Message-IDs none of which is ours is about someone else's mail (or forged).
"""

from __future__ import annotations

import logging
import mailbox
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import Session

from newsletter.feedback.bounce_parse import Bounce, Failure, parse_bounce
from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.errors import UserError
from newsletter.feedback.rules import apply_event, last_sent_to, recipient_of
from newsletter.mail.compose import DELIVERY_HEADER
from newsletter.mail.verp import reference_in_address, verp_active
from newsletter.feedback.events import MESSAGE_ID_REFERENCE, NormalizedEvent
from newsletter.tokens import verify_digest

log = logging.getLogger(__name__)
PROVIDER = "mailbox"


@dataclass
class BounceReport:
    messages: int = 0
    reports: int = 0  # messages that report a failure, delay or delivery
    not_dsn: int = 0  # messages that report none (replies, out-of-office notes, spam)
    unreadable: int = 0
    not_ours: int = 0  # failures that name no message of ours (see `attribute`)
    applied: int = 0
    duplicates: int = 0
    matched: int = 0  # entries matched to a delivery
    kinds: Counter = field(default_factory=Counter)
    consequences: Counter = field(default_factory=Counter)


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
            except Exception as exc:  # a broken message is counted, never the end of the run
                log.warning("bounce mailbox %s: message %s unreadable: %s", path, key, exc)
                report.unreadable += 1
                continue
            process_message(engine, settings, secret, data, report)
    finally:
        box.close()
    return report


def process_message(engine: Engine, settings: Settings, secret: str, data: bytes,
                    report: BounceReport) -> list[NormalizedEvent]:
    """Read and apply one message; returns the events applied (none for a message that is not a
    bounce, not ours or unreadable). Never raises for the message's content."""
    try:
        bounce = parse_bounce(data)
    except Exception as exc:  # anything a remote server wrote must not stop the mailbox
        log.warning("bounce mailbox: a message could not be read: %r", exc)
        report.unreadable += 1
        return []
    if bounce is None:
        report.not_dsn += 1
        return []
    report.reports += 1
    try:
        with session_scope(engine) as session:  # one transaction per message: all its events or none
            events = attribute(session, settings, secret, bounce)
            counted = [(event, apply_event(session, settings, event)) for event in events]
    except Exception:  # e.g. the database refuses what a remote server wrote: the next message goes on
        log.exception("bounce %s could not be applied; it stays in the mailbox for the next run", bounce.id)
        report.unreadable += 1
        return []
    if not events:
        report.not_ours += len(bounce.failures)
    for event, applied in counted:
        report.kinds[event.kind.value] += 1
        if applied.duplicate:
            report.duplicates += 1
            continue
        report.applied += 1
        report.matched += applied.delivery_id is not None
        if applied.consequence:
            report.consequences[applied.consequence.split(" ")[0]] += 1
    return events


def signed_reference(secret: str, bounce: Bounce) -> tuple[str | None, str | None]:
    """The reference our signature names (VERP address first, then a returned Message-ID), and
    the Message-ID it came from."""
    for address in bounce.addressed_to:
        reference = reference_in_address(secret, address)
        if reference:
            return reference, None
    for message_id in bounce.message_ids:
        reference = verified_reference(secret, message_id)
        if reference:
            return reference, message_id
    return None, None


def _event(bounce: Bounce, failure: Failure, email: str, reference: str | None,
           message_id: str | None, how: str) -> NormalizedEvent:
    return NormalizedEvent(
        kind=failure.kind, email=email, provider=PROVIDER,
        provider_event_id=f"{bounce.id}:{failure.address}"[:250], reference=reference,
        occurred_at=failure.occurred_at, message_id=message_id,
        detail=f"{failure.detail} (failed: {failure.address}; by {how})".replace("\x00", "")[:2000],
    )


def attribute(session: Session, settings: Settings, secret: str, bounce: Bounce) -> list[NormalizedEvent]:
    """The events a bounce may be applied as: one for the message our signature names, else (VERP
    off, nothing of the original returned) one per failed address that is a reader we mailed."""
    reference, message_id = signed_reference(secret, bounce)
    if reference is not None:
        address = recipient_of(session, reference)
        if not address:
            log.info("bounce %s names %s, which is no message of ours; skipped", bounce.id, reference)
            return []
        failure = next((f for f in bounce.failures if f.address == address), bounce.failures[0])
        if bounce.references and reference not in bounce.references:
            log.info("bounce %s: %s says %s, the signature says %s; using the signature", bounce.id,
                     DELIVERY_HEADER, bounce.references, reference)
        return [_event(bounce, failure, address, reference, message_id, "VERP" if message_id is None else "Message-ID")]
    if verp_active(settings) or bounce.message_ids:
        log.info("bounce %s names no message of ours (%s); skipped", bounce.id,
                 "no VERP address" if verp_active(settings) else "its returned Message-IDs are not ours")
        return []
    return [_event(bounce, failure, failure.address, None, None, "address")
            for failure in bounce.failures if last_sent_to(session, failure.address, None) is not None]
