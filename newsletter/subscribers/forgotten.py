"""Forget is forever: once `subscribers forget` erased a person, their address is only ever
written as its hash.

`forget` keeps a suppression row "sha256:<hex>" of the normalised address so the person stays
off every list. Everything that may later write an address (provider webhooks, the bounce
mailbox, imports, signups) asks here first: `recorded_address` gives the form to store, and
`scrub` replaces any forgotten address inside free text (a bounce's diagnostic, a provider's
event id) by its hash, with one query per text.
"""

from __future__ import annotations

import re

import idna
from sqlmodel import Session, select

from newsletter.subscribers.models import Suppression
from newsletter.subscribers.service import HASH_PREFIX, hashed_email

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
