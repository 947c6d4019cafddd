"""Forget is forever: `subscribers forget` erases a person (`forget`), and from then on their
address is only ever written as its hash.

`forget` keeps a suppression row "sha256:<hex>" of the normalised address so the person stays
off every list. Everything that may later write an address (provider webhooks, the bounce
mailbox, imports, signups) asks here first: `recorded_address` gives the form to store, and
`scrub` replaces any forgotten address inside free text (a bounce's diagnostic, a provider's
event id) by its hash, with one query per text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import idna
from sqlalchemy import Engine, text
from sqlmodel import Session, select

from newsletter.db import session_scope
from newsletter.subscribers.models import Subscriber, Suppression, TransactionalMail
from newsletter.subscribers.service import HASH_PREFIX, InvalidInput, hashed_email, normalize_email
from newsletter.text import counted

# Generous on purpose: anything that could be an address is checked against the suppressions.
_ADDRESS = re.compile(r"[^\s<>()\[\],;:\"'=]+@[^\s<>()\[\],;:\"'=]+")


def _variants(email: str) -> set[str]:
    """The address with its domain as Unicode and as IDNA ("bücher.de", "xn--bcher-kva.de"):
    a provider may report either form of the address that was forgotten."""
    local, _, domain = email.rpartition("@")
    forms = {email}
    for convert in (lambda d: idna.encode(d, uts46=True).decode(), idna.decode):
        try:
            forms.add(f"{local}@{convert(domain)}")
        except (idna.IDNAError, UnicodeError, ValueError):
            pass
    return forms


def _forgotten_digests(session: Session, emails: set[str]) -> dict[str, str]:
    """{address: the digest kept for it} for those of `emails` that were forgotten (any form)."""
    digests: dict[str, set[str]] = {}
    for email in emails:
        if not email.startswith(HASH_PREFIX):
            for form in _variants(email):
                digests.setdefault(hashed_email(form), set()).add(email)
    if not digests:
        return {}
    kept = session.exec(select(Suppression.email).where(Suppression.email.in_(list(digests)))).all()
    return {email: digest for digest in kept for email in digests[digest]}


def is_forgotten(session: Session, email: str) -> bool:
    """True when `email` was erased with `subscribers forget` (only its hash is kept)."""
    return bool(email) and bool(_forgotten_digests(session, {email}))


def recorded_address(session: Session, email: str) -> str:
    """The form in which `email` may be stored: the address, or its hash once forgotten."""
    return _forgotten_digests(session, {email}).get(email, email) if email else email


def _candidates(text: str) -> set[str]:
    """Every address `text` may contain: each address-like token and each of its tails that
    starts after punctuation ("evt-jane@x" may hide "jane@x")."""
    found = set()
    for match in _ADDRESS.finditer(text):
        local, _, domain = match.group(0).rstrip(".").rpartition("@")
        starts = [0] + [i + 1 for i, char in enumerate(local) if char in "-._+/|!#$%&*?^`{}~"]
        found.update(f"{local[start:]}@{domain}" for start in starts if local[start:])
    return found


def scrub(session: Session, text: str | None) -> str | None:
    """`text` with every forgotten address in it replaced by its hash (case-insensitive)."""
    if not text or "@" not in text:
        return text
    found = _forgotten_digests(session, _candidates(text))
    for candidate in sorted(found, key=len, reverse=True):
        text = re.sub(re.escape(candidate), found[candidate], text, flags=re.IGNORECASE)
    return text


@dataclass
class Forgotten:
    email: str
    counts: dict[str, int] = field(default_factory=dict)

    def lines(self) -> list[str]:
        """"1 subscriber", "2 deliveries": each count with its noun (the keys are the plurals)."""
        return [counted(count, _SINGULAR.get(what, what), what) for what, count in self.counts.items()]


# Rows that name a subscriber and go with them (ON DELETE CASCADE), counted for the report:
# (table, one, several). Counted by the tables' names in SQL, not through their models: a
# command imports only the models it uses, and the deliveries, votes and tracking events were
# erased but left out of `subscribers forget`'s list (outside trial).
_CASCADE = [("subscriber_topic", "topic", "topics"), ("consent_event", "consent event", "consent events"),
            ("delivery", "delivery", "deliveries"), ("followup_delivery", "follow-up delivery", "follow-up deliveries"),
            ("vote", "vote", "votes"), ("tracking_event", "tracking event", "tracking events"),
            ("transactional_mail", "transactional mail", "transactional mails")]
_SINGULAR = {several: one for _table, one, several in _CASCADE}


def forget(engine: Engine, email: str) -> Forgotten:
    """Erase a person (GDPR art. 17) but keep them off every list with a hashed suppression.

    The subscriber row goes, and with it by ON DELETE CASCADE everything that hangs off it:
    topics, consent events, deliveries, votes, tracking events, transactional mail. Mail queued
    to the address for someone else (an address change) goes too; a plain suppression row is
    replaced by the hash; provider events keep the hash instead of the address, in their event
    id and diagnostic too (`scrub`), and lose the provider's record, which names it. An address
    we know nothing of raises InvalidInput.
    """
    with session_scope(engine) as session:
        return forget_in(session, email)


# Provider events by the table's name, as _CASCADE: a command that never imported the feedback
# models left the address in every event (SQLModel's metadata knew no webhook_event). The
# provider's record goes; its event id and diagnostic keep their words, the address hashed.
_EVENTS = text("SELECT id, provider_event_id, detail FROM webhook_event WHERE email = :email")
_HIDE_EVENT = text("UPDATE webhook_event SET email = :digest, payload = NULL, provider_event_id = :event, "
                   "detail = :detail WHERE id = :id")


def forget_in(session: Session, email: str) -> Forgotten:
    """`forget` inside the caller's transaction: the console writes its audit entry in the same one."""
    from sqlalchemy import delete as sql_delete

    from newsletter.tallies import untally_subscribers

    email = normalize_email(email, smtputf8=True)  # any address a reader can have, whatever the transport
    digest = hashed_email(email)
    counts: dict[str, int] = {}
    subscriber_id = session.exec(select(Subscriber.id).where(Subscriber.email == email)).first()
    if subscriber_id is not None:
        counts["subscriber"] = 1
        for table, _one, several in _CASCADE:  # fixed names, never input
            counts[several] = session.execute(text(f"SELECT count(*) FROM {table} WHERE subscriber_id = :id"),
                                              {"id": subscriber_id}).scalar_one()
        untally_subscribers(session, [subscriber_id])  # the issues' counters lose what goes (newsletter/tallies.py)
        session.execute(sql_delete(Subscriber).where(Subscriber.id == subscriber_id))
    other_mail = session.execute(sql_delete(TransactionalMail).where(TransactionalMail.to_email == email)).rowcount
    if other_mail:
        counts["transactional mails"] = counts.get("transactional mails", 0) + other_mail
    plain = session.execute(sql_delete(Suppression).where(Suppression.email == email)).rowcount
    if plain:
        counts["suppression rows with the address"] = plain
    known = session.exec(select(Suppression.id).where(Suppression.email == digest)).first() is not None
    events = session.execute(_EVENTS, {"email": email}).all()
    if not counts and not events:
        if known:
            raise InvalidInput(f"{email}: already forgotten (only its hash is on the suppression list)")
        raise InvalidInput(f"{email}: no subscriber, suppression or mail with this address")
    if not known:
        session.add(Suppression(email=digest, reason="forgotten"))
        session.flush()  # scrub finds the address forgotten, in every form and case
    for event_id, provider_event_id, detail in events:
        session.execute(_HIDE_EVENT, {"id": event_id, "digest": digest, "event": scrub(session, provider_event_id),
                                      "detail": scrub(session, detail)})
    if events:
        counts["provider events (address replaced by its hash)"] = len(events)
    return Forgotten(email=email, counts=counts)
