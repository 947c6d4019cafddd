"""The web's two busiest writes, a signup and a link's unsubscribe, as one statement each on PostgreSQL.

Why: at 200 requests/s while a send runs (issue 18) every round trip to the database is a wake-up
of its backend and of the request's thread on cores the send keeps busy, and it holds a pooled
connection meanwhile. Through the ORM a signup was BEGIN, six statements and COMMIT, a one-click
unsubscribe BEGIN, four and COMMIT. Here each is one data-modifying CTE between BEGIN and COMMIT,
with the same rules as the ORM functions it stands for (signup.request_signup, signup.unsubscribe):
the same rows, the same throttle, the same throwaway writes for an address that may not change
(rolled back with the transaction), the same consent records and outgoing webhooks. SQLite has no
data-modifying CTEs and is not what a busy site runs: there the ORM functions do the work, and the
tests hold both paths to the same expectations.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from functools import lru_cache

from sqlalchemy import ARRAY, and_, Boolean, Connection, DateTime, Engine, Select, String, all_, bindparam, case, delete, exists, \
    func, insert, literal, select, true, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlmodel import Session

from newsletter import outgoing
from newsletter.config import WebSettings
from newsletter.db import session_scope, utcnow
from newsletter.outgoing import WebhookEndpoint
from newsletter.subscribers.consent import CONSENT_VERSION, Origin, Source, clean_ip, clean_user_agent, known_source
from newsletter.subscribers.models import ConsentEvent, Subscriber, SubscriberStatus, SubscriberTopic, Suppression, \
    TransactionalMail, new_token_key
from newsletter.subscribers.service import link_holder, reader_data
from newsletter.subscribers.signup import NO_MAIL_STATUSES, _throttle, _throttle_params, one_of, request_signup, \
    unsubscribe
from newsletter.tokens import LinkSubject

SUBSCRIBER, TOPIC = Subscriber.__table__, SubscriberTopic.__table__
CONSENT, MAIL = ConsentEvent.__table__, TransactionalMail.__table__
LEFT_ALONE = (*NO_MAIL_STATUSES, SubscriberStatus.active.value)  # request_signup's `keep` is False for these
UNSUBSCRIBABLE = (SubscriberStatus.active.value, SubscriberStatus.pending.value)
WHEN = DateTime(timezone=True)


def _none_of(column, values: tuple[str, ...]):
    """NOT IN, the values written into the statement (signup.one_of)."""
    return and_(*(column != value for value in values))


def _one_statement(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def _consent(target, kind: str) -> object:
    """INSERT of one consent event per row of `target` (record_consent's columns)."""
    return insert(CONSENT).from_select(
        ["subscriber_id", "kind", "source", "detail", "created_at", "ip", "user_agent", "consent_version"],
        select(target.c.id, literal(kind), bindparam("consent_source", type_=String), bindparam("consent_detail", type_=String),
               bindparam("written_at", type_=WHEN), bindparam("client_ip", type_=String),
               bindparam("client_agent", type_=String), bindparam("consent_text", type_=String)),
        include_defaults=False)


def _mail(target, kind: str, when) -> object:
    """INSERT of one queued transactional mail per row of `target` where `when` holds (queue_mail)."""
    return insert(MAIL).from_select(
        ["subscriber_id", "kind", "to_email", "state", "attempts", "created_at"],
        select(target.c.id, literal(kind), target.c.email, literal("queued"), literal(0),
               bindparam("written_at", type_=WHEN)).where(when),
        include_defaults=False)


@lru_cache(maxsize=None)
def _signup_statement(day_limit: int) -> Select:
    """request_signup as one statement; its one row says whether the writes may stay (`keep`)."""
    mails, allowed = _throttle(day_limit)
    email, topics = bindparam("address", type_=String), bindparam("chosen_topics", type_=ARRAY(String))
    suppressed = select(Suppression.id).where(Suppression.email.in_([email, bindparam("digest")])).exists()
    state = (select(SUBSCRIBER.c.id.label("reader"),
                    (~suppressed & (SUBSCRIBER.c.status.is_(None) | _none_of(SUBSCRIBER.c.status, LEFT_ALONE)))
                    .label("keep"), allowed.label("allowed"))
             .select_from(mails).outerjoin(SUBSCRIBER, SUBSCRIBER.c.email == email).cte("state"))
    added = insert(SUBSCRIBER).from_select(
        ["email", "name", "status", "created_at", "token_key"],
        select(case((state.c.keep, email), else_=bindparam("decoy", type_=String)), bindparam("new_name", type_=String),
               literal(SubscriberStatus.pending.value), bindparam("written_at", type_=WHEN),
               bindparam("new_key", type_=String)).where(~state.c.keep | state.c.reader.is_(None)),
        include_defaults=False).returning(SUBSCRIBER.c.id, SUBSCRIBER.c.email).cte("added")
    renamed = (update(SUBSCRIBER).where(SUBSCRIBER.c.id == state.c.reader, state.c.keep)
               .values(name=func.coalesce(func.nullif(bindparam("new_name", type_=String), ""), SUBSCRIBER.c.name))
               .returning(SUBSCRIBER.c.id, SUBSCRIBER.c.email).cte("renamed"))
    target = select(added.c.id, added.c.email).union_all(select(renamed.c.id, renamed.c.email)).cte("target")
    # set_topics: the returning reader's other topics go, the chosen ones are there afterwards.
    dropped = delete(TOPIC).where(TOPIC.c.subscriber_id.in_(select(renamed.c.id)), TOPIC.c.category != all_(topics))
    chosen = pg_insert(TOPIC).from_select(["subscriber_id", "category"], select(target.c.id, func.unnest(topics)),
                                          include_defaults=False).on_conflict_do_nothing()
    mailed = _mail(select(target.c.id, target.c.email).select_from(target.join(state, true()))
                   .where(state.c.allowed).subquery(), "confirm", true())
    # The signup's commit does not wait for the WAL flush (synchronous_commit off for this
    # transaction only): the flush made a new address's answer slower than a known one's, whose
    # writes roll back (docs/web.md, "Timing"), and it is a wait on a disk the send keeps busy.
    # What a crash in the flush's fraction of a second can lose is a request nobody confirmed yet:
    # the person signs up again. An unsubscribe keeps the wait: once answered, it must hold.
    no_flush = func.set_config("synchronous_commit", "off", true())
    return select(state.c.keep, no_flush).add_cte(dropped.cte("dropped"), chosen.cte("chosen"),
                                         _consent(target, "signup_requested").cte("consented"), mailed.cte("mailed"))


def signup(engine: Engine, web: WebSettings, email: str, name: str, topics: list[str], now: datetime,
           origin: Origin, source: Source) -> None:
    """request_signup in a transaction of its own (the web's signup): on PostgreSQL one statement,
    committed where the address may change and rolled back where it may not (the same work either
    way: docs/web.md, "Timing")."""
    if not _one_statement(engine):
        with session_scope(engine) as session:
            request_signup(session, web, email, name, topics, now, origin, source, alone=True)
        return
    if not known_source(source):
        raise ValueError(f"consent source {source!r} is not known")
    params = {**_throttle_params(email, web, now), **_origin(origin.with_version(CONSENT_VERSION)),
              "new_name": name, "chosen_topics": topics, "decoy": f"decoy-{secrets.token_hex(8)}@invalid",
              "new_key": new_token_key(), "consent_source": str(source), "consent_detail": "", "written_at": utcnow()}
    with engine.connect() as connection:
        keep = connection.execute(_signup_statement(web.confirmations_per_address_per_day), params).first()[0]
        connection.commit() if keep else connection.rollback()


def _origin(origin: Origin) -> dict:
    return {"client_ip": clean_ip(origin.ip) or None, "client_agent": clean_user_agent(origin.user_agent) or None,
            "consent_text": origin.consent_version}


@lru_cache(maxsize=1)
def _unsubscribe_statement() -> Select:
    """signup.unsubscribe for the reader a link names, as one statement: whether the link names a
    reader (`linked`), whether this unsubscribed them (`changed`), and whether an outgoing webhook
    endpoint may listen (`listening`: then `emit` runs in the same transaction)."""
    names = (SUBSCRIBER.c.id == bindparam("reader_id")) & (SUBSCRIBER.c.token_key == bindparam("link_key", type_=String))
    changed = (update(SUBSCRIBER).where(names, one_of(SUBSCRIBER.c.status, UNSUBSCRIBABLE))
               .values(status=SubscriberStatus.unsubscribed.value, unsubscribed_at=bindparam("now", type_=WHEN))
               .returning(SUBSCRIBER.c.id, SUBSCRIBER.c.email).cte("changed"))
    listening = exists().where(WebhookEndpoint.disabled_at.is_(None),
                               WebhookEndpoint.events.contains("reader.unsubscribed"))
    return select(exists().where(names).label("linked"),
                  select(func.count()).select_from(changed).scalar_subquery().label("changed"),
                  listening.label("listening")).add_cte(
        _consent(changed, "unsubscribed").cte("consented"),
        _mail(changed, "goodbye", bindparam("goodbye", type_=Boolean)).cte("mailed"))


def unsubscribe_link(engine: Engine, subject: LinkSubject, now: datetime, goodbye: bool, detail: str,
                     origin: Origin) -> bool:
    """Unsubscribe the reader a verified link names (idempotent, one transaction); False when the
    link names nobody (that reader is gone, or it was made for another)."""
    if not _one_statement(engine):
        with session_scope(engine) as session:
            reader = link_holder(session, subject)
            if reader is not None:
                unsubscribe(session, reader.id, Source.link, now, goodbye, detail, origin)
            return reader is not None
    params = {**_origin(origin), "reader_id": subject.subscriber_id, "link_key": subject.key, "now": now,
              "goodbye": goodbye, "consent_source": str(Source.link), "consent_detail": detail, "written_at": utcnow()}
    with engine.connect() as connection:
        row = connection.execute(_unsubscribe_statement(), params).one()
        if row.changed and row.listening:
            _emit_unsubscribed(connection, subject.subscriber_id, now)
        connection.commit()
    return bool(row.linked)


def _emit_unsubscribed(connection: Connection, subscriber_id: int, now: datetime) -> None:
    """The outgoing webhook, in the statement's transaction (a committed change is never lost)."""
    with Session(bind=connection) as session:
        reader = session.get(Subscriber, subscriber_id)
        outgoing.emit(session, "reader.unsubscribed", reader_data(reader, source=str(Source.link)), now)
        session.flush()
