"""Webhook replay protection: single-use request tokens (webhook_nonce).

Mailgun signs only a timestamp and a token, not the event, so a captured signature could carry
a forged event within the replay window; each token is therefore accepted with one body only.
The route records the token in the same transaction as the request's events.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlmodel import Session

from newsletter.feedback.models import WebhookNonce
from newsletter.db import insert_for


def use_nonce(session: Session, provider: str, nonce: str, event_id: str, now: datetime,
              keep_seconds: float = 86400) -> bool:
    """Record a single-use request token (`nonce`: a digest of what was signed) with the digest
    of the body it came with (`event_id`). False when it was used before with another body (an
    attack: a captured signature with a forged event); True for a new token or a re-delivery of
    the very same body. Tokens older than `keep_seconds` are pruned (they fail the replay window
    anyway)."""
    session.execute(delete(WebhookNonce).where(WebhookNonce.seen_at < now - timedelta(seconds=keep_seconds)))
    inserted = session.execute(
        insert_for(session, WebhookNonce.__table__)
        .values(provider=provider, nonce=nonce, event_id=event_id[:250], seen_at=now)
        .on_conflict_do_nothing(index_elements=["provider", "nonce"])
        .returning(WebhookNonce.__table__.c.nonce)
    ).scalar()
    if inserted is not None:
        return True
    previous = session.execute(
        select(WebhookNonce.event_id).where(WebhookNonce.provider == provider, WebhookNonce.nonce == nonce)
    ).scalar()
    return bool(event_id) and previous == event_id
