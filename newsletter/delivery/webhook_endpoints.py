"""Owners' webhook endpoints: register (the secret is shown once), list, remove, queue a test event.

Why https only: the body names readers and the signature proves only who sent it, not that
nobody read it on the way. Plain http is allowed to a loopback host when
`[outgoing_webhooks] allow_loopback_http` is on (a receiver on the same machine, the tests).
Every change is audit-logged in the caller's transaction.
"""

from __future__ import annotations

import ipaddress
import secrets
import uuid
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy import func
from sqlmodel import Session, select

from newsletter.config.web import OutgoingWebhookSettings
from newsletter.db import utcnow
from newsletter.editors import audit
from newsletter.outgoing import EVENTS, TEST_EVENT, WebhookDelivery, WebhookEndpoint, event_body
from newsletter.text import has_control_chars

SECRET_PREFIX = "whsec_"
MAX_ENDPOINTS = 20


class EndpointError(ValueError):
    """A registration that cannot be done; the message starts with the field it is about."""


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str, cfg: OutgoingWebhookSettings) -> str:
    """The URL as it will be called, or EndpointError naming the field and the reason."""
    url = url.strip()
    if not url or len(url) > 2000 or has_control_chars(url) or " " in url:
        raise EndpointError("url: give an https:// address of at most 2000 characters, without spaces")
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - a bad port raises here
    except ValueError:
        raise EndpointError("url: this is not a valid address") from None
    if not host or parts.username or parts.password:
        raise EndpointError("url: give a host name, without a user name or password in the address")
    if parts.scheme == "https" or (parts.scheme == "http" and cfg.allow_loopback_http and is_loopback(host)):
        return url
    raise EndpointError("url: must start with https:// (plain http is only for a loopback test receiver "
                        "with [outgoing_webhooks] allow_loopback_http)")


def check_events(events: list[str]) -> str:
    chosen = [event for event in EVENTS if event in set(events)]
    unknown = sorted(set(events) - set(EVENTS))
    if unknown:
        raise EndpointError(f"events: unknown event {unknown[0]!r}")
    if not chosen:
        raise EndpointError("events: choose at least one event")
    return " ".join(chosen)


def register(session: Session, url: str, events: list[str], description: str, cfg: OutgoingWebhookSettings,
             actor: audit.Actor) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its signing secret (shown to the owner this once)."""
    url, chosen = check_url(url, cfg), check_events(events)
    description = " ".join(description.split())
    if len(description) > 200 or has_control_chars(description):
        raise EndpointError("description: at most 200 characters on one line")
    live = session.exec(select(func.count()).select_from(WebhookEndpoint)
                        .where(WebhookEndpoint.disabled_at.is_(None))).one()
    if live >= MAX_ENDPOINTS:
        raise EndpointError(f"url: at most {MAX_ENDPOINTS} endpoints; remove one first")
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    endpoint = WebhookEndpoint(url=url, events=chosen, secret=secret, description=description)
    session.add(endpoint)
    session.flush()
    audit.record(session, actor, "webhook.create", f"webhook:{endpoint.id}", None,
                 {"url": url, "events": chosen, "description": description})
    return endpoint, secret


def live_endpoint(session: Session, endpoint_id: int) -> WebhookEndpoint:
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None or endpoint.disabled_at is not None:
        raise EndpointError(f"endpoint: there is no live endpoint {endpoint_id}")
    return endpoint


def remove(session: Session, endpoint_id: int, actor: audit.Actor, now: datetime | None = None) -> WebhookEndpoint:
    """No new deliveries; those still queued are skipped; past ones stay visible."""
    endpoint = live_endpoint(session, endpoint_id)
    endpoint.disabled_at = now or utcnow()
    session.add(endpoint)
    for row in session.exec(select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id,
                                                          WebhookDelivery.state.in_(("queued", "retry")))):
        row.state, row.last_error = "skipped", "the endpoint was removed"
        session.add(row)
    audit.record(session, actor, "webhook.remove", f"webhook:{endpoint.id}",
                 {"url": endpoint.url, "events": endpoint.events}, None)
    return endpoint


def queue_test(session: Session, endpoint_id: int, actor: audit.Actor, now: datetime | None = None) -> WebhookDelivery:
    """A `webhook.test` event to this endpoint only, signed and delivered like any other."""
    endpoint = live_endpoint(session, endpoint_id)
    now = now or utcnow()
    event_id = "evt_" + uuid.uuid4().hex
    body = event_body(TEST_EVENT, {"endpoint_id": endpoint.id, "message": "A test event from the console."},
                      now, event_id)
    row = WebhookDelivery(endpoint_id=endpoint.id, event=TEST_EVENT, event_id=event_id, body=body, created_at=now)
    session.add(row)
    session.flush()
    audit.record(session, actor, "webhook.test", f"webhook:{endpoint.id}", None, {"delivery": row.id})
    return row


def endpoints(session: Session) -> list[WebhookEndpoint]:
    return list(session.exec(select(WebhookEndpoint).order_by(WebhookEndpoint.disabled_at.is_not(None),
                                                              WebhookEndpoint.id)))


def recent_deliveries(session: Session, limit: int = 50) -> list[WebhookDelivery]:
    return list(session.exec(select(WebhookDelivery).order_by(WebhookDelivery.id.desc()).limit(limit)))
