"""What an editor (console) or an API token may do to a reader: unsubscribe, ask them to
resubscribe, forget them. Each runs in the caller's transaction and writes its audit entry
there, so the log and the change commit or roll back together.

Why resubscribing only mails a confirmation: consent is the reader's to give. An editor may
ask again (a fresh double opt-in mail); the reader becomes active only by clicking it, exactly
as after a signup, and never while the address is suppressed.

The audit entries name the reader by id and never by address: after a `forget` the log must
not keep what the erasure removed.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, select

from newsletter.config import WebSettings
from newsletter.editors import audit
from newsletter.errors import UserError
from newsletter.subscribers.consent import Source
from newsletter.subscribers.models import Subscriber, SubscriberStatus
from newsletter.subscribers.forgotten import Forgotten, forget_in
from newsletter.subscribers.service import is_suppressed, normalize_email, record_consent
from newsletter.subscribers.signup import NO_MAIL_STATUSES, may_send_confirmation, queue_mail, unsubscribe


class NoSuchReader(UserError):
    """No reader has this id (never had, or they were forgotten)."""


class Refused(UserError):
    """The action does not apply to this reader now; the message says why, for the editor."""


def state_of(reader: Subscriber) -> dict:
    """What an audit entry keeps of a reader: their state, not their address."""
    def when(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {"status": reader.status, "confirmed_at": when(reader.confirmed_at),
            "unsubscribed_at": when(reader.unsubscribed_at)}


def reader_in(session: Session, reader_id: int) -> Subscriber:
    reader = session.get(Subscriber, reader_id)
    if reader is None:
        raise NoSuchReader(f"reader {reader_id}: no such reader (or forgotten)")
    return reader


def unsubscribe_reader(session: Session, reader_id: int, actor: audit.Actor, now: datetime) -> bool:
    """What the reader's own one-click unsubscribe does (status, time, consent event; the sender
    skips them from its next batch; no goodbye mail), recorded as the editor's act. False when
    the reader was not active or pending (nothing changes, nothing is logged)."""
    reader = reader_in(session, reader_id)
    before = state_of(reader)
    if not unsubscribe(session, reader_id, Source.editor, now, goodbye=False, detail=f"by {actor.label}"):
        return False
    audit.record(session, actor, "reader.unsubscribe", f"reader:{reader_id}", before, state_of(reader))
    return True


def request_resubscription(session: Session, web: WebSettings, reader_id: int, actor: audit.Actor,
                           now: datetime) -> None:
    """Queue a fresh confirmation mail; the status stays as it is until the reader clicks."""
    reader = reader_in(session, reader_id)
    if reader.status == SubscriberStatus.active.value:
        raise Refused("status: the reader is already active")
    if reader.status in NO_MAIL_STATUSES or is_suppressed(session, reader.email):
        raise Refused("status: the address is suppressed (a bounce or a complaint); it gets no mail, "
                      "not even a confirmation")
    if not may_send_confirmation(session, reader.email, web, now):
        raise Refused("status: a confirmation went to this address a short while ago (the per-address "
                      "limit); try again later")
    record_consent(session, reader, "resubscribe_requested", Source.editor,
                   f"by {actor.label}; confirmation mailed, the reader must click it")
    queue_mail(session, reader, "confirm")
    audit.record(session, actor, "reader.resubscribe_requested", f"reader:{reader_id}", state_of(reader),
                 {**state_of(reader), "confirmation": "queued"})


def forget_address(session: Session, email: str, actor: audit.Actor) -> Forgotten:
    """`forget_reader` by address (`subscribers forget`): also an address that is no reader, only
    a suppression, mail or provider events; audited either way, the address itself never written."""
    reader_id = session.exec(select(Subscriber.id).where(Subscriber.email == normalize_email(email, smtputf8=True))
                             ).first()
    if reader_id is not None:
        return forget_reader(session, reader_id, actor)
    forgotten = forget_in(session, email)
    audit.record(session, actor, "reader.forget", "", None, {"forgotten": True, "erased": forgotten.counts})
    return forgotten


def forget_reader(session: Session, reader_id: int, actor: audit.Actor) -> Forgotten:
    """The right to erasure (forgotten.forget): the reader and everything hanging off them go;
    only the address's hash stays, on the suppression list."""
    reader = reader_in(session, reader_id)
    before = {**state_of(reader), "reader_id": reader_id}
    forgotten = forget_in(session, reader.email)
    audit.record(session, actor, "reader.forget", f"reader:{reader_id}", before,
                 {"forgotten": True, "erased": forgotten.counts})
    return forgotten
