"""Delivering outgoing webhooks: the `webhook_delivery` rows (newsletter/outgoing.py) claimed,
retried and given up on with the one queue idiom (queue.py), posted signed to owners' URLs.

The signature (docs/api.md, "Outgoing webhooks"): header `X-WV-Signature: t=<unix seconds>,v1=<hex>`,
where hex is HMAC-SHA256 with the endpoint's secret over the bytes `<t>.<body>`. Signing the
time with the body lets a receiver refuse old replays. A 2xx answer is delivered; any other
answer, a timeout or a refused connection is retried with exponential backoff and jitter until
`[outgoing_webhooks] max_attempts`, then the row is `failed`. Each attempt keeps the status,
an excerpt of the answer and its time on the row, for the console.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, update

from newsletter.config import Settings
from newsletter.db import session_scope, utcnow
from newsletter.delivery import queue
from newsletter.delivery.models import PENDING, DeliveryState
from newsletter.delivery.transports.base import Outcome, SendResult
from newsletter.outgoing import WebhookDelivery, WebhookEndpoint

log = logging.getLogger(__name__)
EXCERPT = 500  # characters of a receiver's answer kept on the row
USER_AGENT = "WeeklyVerdicts-Webhooks/1"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of `<timestamp>.<body>`: what `v1=` carries."""
    return hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"


def verify(secret: str, header: str, body: bytes, now: float | None = None, tolerance: float = 300) -> bool:
    """What a receiver does (docs/api.md has the same in a few lines): a fresh time and a matching v1."""
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(parts.get("t", ""))
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    return hmac.compare_digest(signature(secret, timestamp, body), parts.get("v1", ""))


@dataclass
class Attempt:
    """One POST's result as the row keeps it."""

    result: SendResult
    status: int | None = None
    excerpt: str | None = None


def post(url: str, secret: str, row: WebhookDelivery, timeout: float) -> Attempt:
    """One signed POST; never raises (a network failure is a retry like a 5xx). requests is
    imported here, on the first webhook: a worker that has none to send starts ~0.1 s sooner."""
    import requests

    body = row.body.encode()
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, "X-WV-Event": row.event,
               "X-WV-Event-Id": row.event_id, "X-WV-Delivery": str(row.id),
               "X-WV-Signature": signature_header(secret, int(time.time()), body)}
    try:
        answer = requests.post(url, data=body, headers=headers, timeout=timeout, allow_redirects=False)
    except requests.RequestException as exc:
        return Attempt(SendResult(Outcome.retry, error=f"{type(exc).__name__}: {exc}"[:2000]))
    excerpt = answer.text[:EXCERPT] if answer.content else ""
    if 200 <= answer.status_code < 300:
        return Attempt(SendResult(Outcome.sent), answer.status_code, excerpt)
    return Attempt(SendResult(Outcome.retry, error=f"HTTP {answer.status_code}"), answer.status_code, excerpt)


def retry_settings(settings: Settings):
    """The `[delivery]` idiom with the webhooks' own attempts and backoff."""
    cfg = settings.outgoing_webhooks
    return settings.delivery.model_copy(update={"max_attempts": cfg.max_attempts,
                                                "retry_base_seconds": cfg.retry_base_seconds,
                                                "retry_max_seconds": cfg.retry_max_seconds})


def _claim(engine: Engine, settings: Settings, now: datetime, limit: int, worker: str,
           ids: list[int] | None) -> list[int]:
    cfg = settings.delivery
    conditions = [WebhookDelivery.state.in_(PENDING)] + ([WebhookDelivery.id.in_(ids)] if ids is not None else [])
    with session_scope(engine) as session:
        return queue.claim(session, WebhookDelivery, conditions, now, limit, timedelta(seconds=cfg.lease_seconds),
                           worker, queue.stale_before(now, cfg))


def _attempt(engine: Engine, settings: Settings, row_id: int) -> tuple[int, Attempt]:
    with session_scope(engine) as session:
        row = session.get(WebhookDelivery, row_id)
        endpoint = session.get(WebhookEndpoint, row.endpoint_id)
        session.expunge_all()
    if endpoint.disabled_at is not None:
        return row.attempts, Attempt(SendResult(Outcome.failed, error="the endpoint was removed"))
    return row.attempts, post(endpoint.url, endpoint.secret, row, settings.outgoing_webhooks.timeout_seconds)


def _record(engine: Engine, settings: Settings, worker: str, row_id: int, attempts: int, attempt: Attempt,
            claimed_at: datetime) -> str:
    # The backoff counts from the attempt, never from before the claim's own clock: a claim made
    # with a given `now` (the scheduler's, or a test's) cannot get its row back as due at once.
    done = max(utcnow(), claimed_at)
    state, next_at = queue.settle(attempt.result, attempts, retry_settings(settings), done)
    values = {"state": state, "lease_until": None, "next_attempt_at": next_at, "last_attempt_at": done,
              "last_status": attempt.status, "last_response": attempt.excerpt,
              "last_error": None if state == DeliveryState.sent.value else (attempt.result.error or state)[:2000]}
    if state == DeliveryState.sent.value:
        values["sent_at"] = done
    with session_scope(engine) as session:
        session.execute(update(WebhookDelivery).where(WebhookDelivery.id == row_id,
                                                      WebhookDelivery.state == DeliveryState.sending.value,
                                                      WebhookDelivery.claimed_by == worker).values(**values))
    if state == DeliveryState.failed.value:
        log.warning("webhook delivery %s gave up after %d attempts: %s", row_id, attempts, values["last_error"])
    return state


def send_due(engine: Engine, settings: Settings, *, limit: int = 20, now: datetime | None = None,
             worker: str | None = None, ids: list[int] | None = None) -> queue.BatchReport:
    """One batch: claim due rows (only `ids`, when given), post each, record each result at once
    (a slow receiver delays only the rows after it in this batch)."""
    worker, now = worker or queue.worker_id(), now or utcnow()
    report = queue.BatchReport()
    for row_id in _claim(engine, settings, now, limit, worker, ids):
        attempts, attempt = _attempt(engine, settings, row_id)
        state = _record(engine, settings, worker, row_id, attempts, attempt, now)
        setattr(report, state, getattr(report, state) + 1)
    return report
