"""POST /webhooks/{provider}: verify, normalise, apply (newsletter/feedback/rules.py), answer.

Answers: 200 with counts for an authentic request (also for event types we do not act on,
which are logged, and for replays, which change nothing); 401 for a bad, missing or stale
signature (403 for an SNS topic that is not ours, 400 for an unreadable body), with nothing
stored; 404 for an unknown provider; 503 while the provider's secret is not configured, so the
provider keeps the events and retries. Verification runs before anything touches the database.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from newsletter.config import Settings
from newsletter.db import session_scope, utcnow
from newsletter.feedback.rules import apply_event
from newsletter.feedback.webhooks import providers
from newsletter.feedback.webhooks.base import NotConfigured, Rejected, Verified, WebhookProvider, WebhookRequest
from newsletter.feedback.webhooks.nonces import use_nonce

log = logging.getLogger(__name__)
# SendGrid posts a batch at 768 KB at the latest, the other providers one event: 1 MiB is above any real body.
MAX_BODY = 1024 * 1024


@dataclass
class WebhookContext:
    settings: Settings
    engine: Engine
    # By path name, built from [webhooks.*]; tests replace it with providers(settings, ses=SesWebhook(...)).
    providers: dict[str, WebhookProvider] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.providers = self.providers or providers(self.settings)


def _error(status: int, reason: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": reason}, status_code=status, headers=headers)


def store(context: WebhookContext, provider: str, verified: Verified) -> dict[str, int]:
    """One transaction for the request: the nonce (if any) and every event, or nothing."""
    counts = {"received": len(verified.events), "applied": 0, "duplicates": 0, "ignored": len(verified.ignored)}
    now = utcnow()
    with session_scope(context.engine) as session:
        if verified.nonce is not None:
            if not use_nonce(session, provider, verified.nonce, verified.nonce_event, now,
                             verified.nonce_keep_seconds):
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


def _handle(provider: WebhookProvider, request: WebhookRequest) -> Verified:
    """The provider's verify-and-parse; a body shaped in a way the parser did not expect (a
    number where an object belongs, an unhashable tag name) is a 400, never a 500."""
    try:
        return provider.verify_and_parse(request)
    except (RecursionError, ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
        log.warning("webhook body unreadable: %s: %s", type(exc).__name__, str(exc)[:200])
        raise Rejected("the body is not in the provider's format", 400) from None


router = APIRouter()


@router.post("/webhooks/{provider}", include_in_schema=False)
async def receive(provider: str, request: Request) -> JSONResponse:
    context: WebhookContext = request.app.state.webhooks  # set by create_app; tests swap its fetchers
    hook = context.providers.get(provider)
    if hook is None:
        return _error(404, "unknown provider")
    if not hook.configured():
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
        verified = await run_in_threadpool(_handle, hook, webhook_request)
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
