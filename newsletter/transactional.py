"""Sending queued transactional mail: confirmation, welcome, goodbye.

Each kind is compiled once per process (Jinja → MJML → HTML with slots), like
an issue. A confirmation's token is created here, at send time, and only its
hash is written back, so no raw token ever rests in the database.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from email.utils import format_datetime

from sqlalchemy import Engine, and_, or_, select, update

from newsletter.config import Settings
from newsletter.db import session_scope, utcnow
from newsletter.delivery.transports.base import OutgoingMessage, Outcome, Transport
from newsletter.issues.message import DELIVERY_HEADER, assemble, build_template, message_id, recipient_links
from newsletter.issues.render import CompiledEmail, compile_email
from newsletter.issues.view import site_view
from newsletter.mail.dkim import signer_for
from newsletter.mail.addresses import recipient_address
from newsletter.mail.headers import domain_of
from newsletter.mail.mime import MessageTemplate
from newsletter.mail.verp import envelope_sender
from newsletter.slots import SlotMarker
from subscribers.models import Subscriber, TransactionalMail
from subscribers.signup import CONFIRM_KINDS, new_confirmation_token

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 5


def _texts(kind: str, name: str, slot: SlotMarker) -> dict:
    """Wording of each kind. Short and plain: the confirmation carries no marketing content."""
    if kind == "confirm":
        return dict(
            subject=f"Confirm your subscription to {name}",
            preheader="One click to confirm. If you did not ask for this, ignore this mail.",
            kicker="Please confirm",
            heading=f"Confirm your subscription to {name}",
            paragraphs=[f"Someone, hopefully you, asked to get {name} at {slot('email')}.",
                        "Open the link and press the confirm button to start receiving it."],
            button_label="Confirm my subscription", button_url=slot("action_url"),
            after_button="If you did not ask for this, ignore this mail: without confirmation you get nothing "
                         "more from us. The link expires in two days.")
    if kind == "confirm_change":
        return dict(
            subject=f"Confirm your new address for {name}",
            preheader="Confirm the new address for your subscription.",
            kicker="Please confirm",
            heading="Confirm your new address",
            paragraphs=[f"Someone asked to move a {name} subscription to {slot('email')}.",
                        "Open the link and press the confirm button to switch."],
            button_label="Confirm my new address", button_url=slot("action_url"),
            after_button="If you did not ask for this, ignore this mail and nothing changes.")
    if kind == "welcome":
        return dict(
            subject=f"Welcome to {name}",
            preheader="Your subscription is confirmed.",
            kicker="Welcome",
            heading="You are subscribed",
            paragraphs=[f"Thanks for confirming. {name} arrives once a week with that week's "
                        "side-by-side comparisons and the panel's verdicts.",
                        "You can choose topics or pause the newsletter at any time."],
            button_label="Choose topics", button_url=slot("preferences_url"), after_button="")
    if kind == "goodbye":
        return dict(
            subject=f"You have left {name}",
            preheader="You will get no more issues.",
            kicker="Unsubscribed",
            heading="You are unsubscribed",
            paragraphs=[f"{slot('email')} will get no more issues of {name}. This is the last mail about it.",
                        "Changed your mind? You can subscribe again on our site at any time."],
            button_label="", button_url="", after_button="")
    raise ValueError(f"unknown transactional mail kind {kind!r}")


_compiled: dict[tuple, CompiledEmail] = {}


def compiled_kind(settings: Settings, kind: str) -> CompiledEmail:
    """Compiled once per process and settings (site name, URL and sender)."""
    key = (kind, settings.site.name, settings.site.base_url, settings.site.postal_address)
    if key not in _compiled:
        _compiled[key] = _compile_kind(settings, kind)
    return _compiled[key]


def _compile_kind(settings: Settings, kind: str) -> CompiledEmail:
    site = site_view(settings)

    def context(slot: SlotMarker) -> dict:
        texts = _texts(kind, site.name, slot)
        reason = (f"You get this mail because {slot('email')} was entered at {site.base_url}."
                  if kind in CONFIRM_KINDS else f"You get this mail about your {site.name} subscription.")
        return {**texts, "site": site, "footer_reason": reason, "footer_links": []}

    subject = _texts(kind, site.name, SlotMarker())["subject"]
    return compile_email("transactional", subject, context)


def template_for(settings: Settings, kind: str) -> MessageTemplate:
    return build_template(settings, compiled_kind(settings, kind), list_headers=False)


def build_message(settings: Settings, secret: str, row: TransactionalMail, name: str, values: dict,
                  now: datetime) -> OutgoingMessage:
    reference = f"t{row.id}"
    personal = [
        ("To", recipient_address(name, row.to_email)),  # the name is data: never parsed as an address
        ("Date", format_datetime(now)),
        ("Message-ID", message_id(secret, reference, domain_of(settings.mail.from_address))),
        (DELIVERY_HEADER, reference),
    ]
    return assemble(settings, template_for(settings, row.kind), name, row.to_email, personal, values, reference,
                    signer_for(settings), envelope_from=envelope_sender(settings, secret, reference))


LEASE = timedelta(minutes=5)


def _claim(engine: Engine, limit: int, now: datetime) -> list[int]:
    """Due rows move queued -> sending with a lease, by a conditional UPDATE each, so two senders
    (the web process and a worker, or two hosts) never mail the same row; a sender that died
    leaves a lease that expires and is taken over."""
    with session_scope(engine) as session:
        due = session.execute(
            select(TransactionalMail.id)
            .where(or_(
                and_(TransactionalMail.state == "queued",
                     or_(TransactionalMail.next_attempt_at.is_(None), TransactionalMail.next_attempt_at <= now)),
                and_(TransactionalMail.state == "sending", TransactionalMail.next_attempt_at <= now),
            ))
            .order_by(TransactionalMail.id).limit(limit)
        ).scalars().all()
        claimed = []
        for row_id in due:
            moved = session.execute(
                update(TransactionalMail)
                .where(TransactionalMail.id == row_id, TransactionalMail.state.in_(("queued", "sending")),
                       or_(TransactionalMail.next_attempt_at.is_(None), TransactionalMail.next_attempt_at <= now))
                .values(state="sending", next_attempt_at=now + LEASE)
            ).rowcount
            if moved:
                claimed.append(row_id)
    return claimed


def send_pending(engine: Engine, settings: Settings, transport: Transport, secret: str,
                 limit: int = 50, now: datetime | None = None) -> int:
    """Send due queued mails; returns how many were sent. Safe to run in several processes."""
    now = now or utcnow()
    sent = 0
    for row_id in _claim(engine, limit, now):
        with session_scope(engine) as session:
            row = session.get(TransactionalMail, row_id)
            name, key = session.execute(select(Subscriber.name, Subscriber.token_key)
                                        .where(Subscriber.id == row.subscriber_id)).one()
            values = {"email": row.to_email, "action_url": "", "preferences_url": "", "unsubscribe_url": ""}
            values.update(recipient_links(settings, secret, row.subscriber_id, key))
            if row.kind in CONFIRM_KINDS:
                token, digest = new_confirmation_token(secret)
                row.token_hash = digest
                row.expires_at = now + timedelta(hours=settings.web.confirm_ttl_hours)
                values["action_url"] = f"{settings.site.base_url}/confirm/{token}"
            message = build_message(settings, secret, row, name, values, now)
            result = transport.send([message])[0]
            row.attempts += 1
            if result.outcome == Outcome.sent:
                row.state, row.sent_at, row.last_error, row.next_attempt_at = "sent", now, None, None
                sent += 1
            elif result.outcome == Outcome.retry and row.attempts < MAX_ATTEMPTS:
                row.state, row.last_error = "queued", result.error
                row.next_attempt_at = now + timedelta(seconds=60 * 2 ** row.attempts)
            else:
                row.state, row.last_error = "failed", result.error
                log.warning("transactional mail %s to %s failed: %s", row.id, row.to_email, result.error)
            session.add(row)
    return sent
