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

from sqlmodel import Session, select

from subscribers.models import Suppression
from subscribers.service import HASH_PREFIX, hashed_email

# Generous on purpose: anything that could be an address is checked against the suppressions.
_ADDRESS = re.compile(r"[^\s<>()\[\],;:\"'=]+@[^\s<>()\[\],;:\"'=]+")


def is_forgotten(session: Session, email: str) -> bool:
    """True when `email` was erased with `subscribers forget` (only its hash is kept)."""
    if not email or email.startswith(HASH_PREFIX):
        return False
    digest = hashed_email(email)
    return session.exec(select(Suppression.id).where(Suppression.email == digest)).first() is not None


def recorded_address(session: Session, email: str) -> str:
    """The form in which `email` may be stored: the address, or its hash once forgotten."""
    return hashed_email(email) if is_forgotten(session, email) else email


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
    by_hash = {hashed_email(candidate): candidate for candidate in _candidates(text)}
    forgotten = session.exec(select(Suppression.email).where(Suppression.email.in_(list(by_hash)))).all()
    for digest in sorted(forgotten, key=lambda d: -len(by_hash[d])):
        text = re.sub(re.escape(by_hash[digest]), digest, text, flags=re.IGNORECASE)
    return text
