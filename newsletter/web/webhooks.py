"""POST /webhooks/{provider}: verify, normalise, apply (newsletter/feedback/rules.py), answer.

Answers: 200 with counts for an authentic request (also for event types we do not act on,
which are logged, and for replays, which change nothing); 401 for a bad, missing or stale
signature (403 for an SNS topic that is not ours, 400 for an unreadable body), with nothing
stored; 404 for an unknown provider; 503 while the provider's secret is not configured, so the
provider keeps the events and retries. Verification runs before anything touches the database.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography import x509
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from newsletter.config import Settings
from newsletter.db import session_scope, utcnow
from newsletter.feedback.rules import apply_event, use_nonce
from newsletter.feedback.webhooks import mailgun, postmark, resend, sendgrid, ses
from newsletter.feedback.events import CertFetcher, Confirmer, NotConfigured, Rejected, Verified, WebhookRequest
from newsletter.feedback.webhooks.snscert import certifi_roots

log = logging.getLogger(__name__)
PROVIDERS = {"postmark": postmark, "sendgrid": sendgrid, "mailgun": mailgun, "resend": resend, "ses": ses}
# SendGrid posts a batch at 768 KB at the latest, the other providers one event: 1 MiB is above any real body.
MAX_BODY = 1024 * 1024


@dataclass
class WebhookContext:
    settings: Settings
    engine: Engine
    # SES: how the SNS signing certificate is fetched and a subscription confirmed. Tests put
    # functions here that serve a self-made certificate; the URL host check runs before either.
    fetch_cert: CertFetcher = field(default=ses.fetch_certificate)
    sns_roots: Callable[[], tuple[x509.Certificate, ...]] = field(default=certifi_roots)  # trust roots for SNS
    confirm_subscription: Confirmer = field(default=ses.confirm_subscription)


def _error(status: int, reason: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": reason}, status_code=status, headers=headers)


def store(context: WebhookContext, provider: str, verified: Verified) -> dict[str, int]:
    """One transaction for the request: the nonce (if any) and every event, or nothing."""
    counts = {"received": len(verified.events), "applied": 0, "duplicates": 0, "ignored": len(verified.ignored)}
    now = utcnow()
    with session_scope(context.engine) as session:
        if verified.nonce is not None:
            keep = max(86400.0, 2.0 * context.settings.webhooks.mailgun.max_age_seconds)
            if not use_nonce(session, provider, verified.nonce, verified.nonce_event, now, keep):
                raise Rejected("token already used")
        for event in verified.events:
            if not event.email:
                log.info("%s %s event %s names no recipient; ignored", provider, event.kind.value,
                         event.provider_event_id)
                counts["ignored"] += 1
                continue
            applied = apply_event(session, context.settings, event, now)
            counts["duplicates" if applied.duplicate else "applied"] += 1
    return counts


def _handle(module, context: WebhookContext, request: WebhookRequest) -> Verified:
    """The provider's verify-and-parse; a body shaped in a way the parser did not expect (a
    number where an object belongs, an unhashable tag name) is a 400, never a 500."""
    try:
        return module.handle(context.settings, request, context)
    except (RecursionError, ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
        log.warning("webhook body unreadable: %s: %s", type(exc).__name__, str(exc)[:200])
        raise Rejected("the body is not in the provider's format", 400) from None


router = APIRouter()


@router.post("/webhooks/{provider}", include_in_schema=False)
async def receive(provider: str, request: Request) -> JSONResponse:
    context: WebhookContext = request.app.state.webhooks  # set by create_app; tests swap its fetchers
    module = PROVIDERS.get(provider)
    if module is None:
        return _error(404, "unknown provider")
    if not module.configured(context.settings):
        log.warning("webhook for %s called, but its secret is not configured ([webhooks.%s]); answered 503",
                    provider, provider)
        return _error(503, f"the {provider} webhook is not configured")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        return _error(413, "body too large")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            return _error(413, "body too large")
    webhook_request = WebhookRequest(headers=request.headers, body=bytes(body), now=utcnow())
    try:
        verified = await run_in_threadpool(_handle, module, context, webhook_request)
        counts = await run_in_threadpool(store, context, provider, verified)
    except Rejected as exc:
        log.warning("webhook %s rejected (%s): %s", provider, exc.status, exc.reason)
        return _error(exc.status, exc.reason, exc.headers)
    except NotConfigured as exc:
        log.error("webhook %s: %s", provider, exc)
        return _error(503, f"the {provider} webhook is not configured correctly")
    for name in verified.ignored:
        log.info("webhook %s: event type %r acknowledged and ignored", provider, name)
    if verified.note:
        log.info("webhook %s: %s", provider, verified.note)
    return JSONResponse({**counts, **({"note": verified.note} if verified.note else {})})
