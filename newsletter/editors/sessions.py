"""Console sessions, kept in the database: revocable, expiring, a new id at every login.

The browser holds a random session id; the table holds its SHA-256, so a copy of the
database cannot be replayed as cookies. A session ends at `expires_at`, after `idle` without
a request, when revoked (logout, password change, editor removed), or when its editor is
disabled. The CSRF token of a session is an HMAC of its id: nothing more to store, and it
changes with the session.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlmodel import Session, select

from newsletter.db import utcnow
from newsletter.editors.models import Editor, EditorSession
from newsletter.subscribers.consent import clean_ip, clean_user_agent
from newsletter.tokens import keys_of

TOUCH_EVERY = timedelta(minutes=1)  # last_seen_at is written at most this often per session


def hash_secret(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True)
class Signed:
    """A console session as a request sees it."""

    session_id: int
    editor: Editor
    csrf_token: str


def csrf_for(secret: str, raw_session_id: str) -> str:
    key = keys_of(secret)[0].encode()
    return hmac.new(key, b"console-csrf:" + raw_session_id.encode(), hashlib.sha256).hexdigest()


def start(session: Session, editor: Editor, lifetime: timedelta, ip: str = "", user_agent: str = "",
          replaces: str | None = None) -> str:
    """A new session for `editor`; the one the browser came with (if any) ends: no fixation."""
    if replaces:
        end(session, replaces)
    raw = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(EditorSession(token_hash=hash_secret(raw), editor_id=editor.id, created_at=now,
                              expires_at=now + lifetime, last_seen_at=now, ip=clean_ip(ip),
                              user_agent=clean_user_agent(user_agent)))
    session.flush()
    return raw


def resume(session: Session, secret: str, raw: str, idle: timedelta, now: datetime | None = None) -> Signed | None:
    """The live session behind a cookie value, or None."""
    if not raw or len(raw) > 100:
        return None
    now = now or utcnow()
    row = session.exec(select(EditorSession).where(EditorSession.token_hash == hash_secret(raw))).first()
    if row is None or row.revoked_at is not None or row.expires_at <= now or row.last_seen_at + idle <= now:
        return None
    editor = session.get(Editor, row.editor_id)
    if editor is None or editor.disabled_at is not None:
        return None
    if now - row.last_seen_at >= TOUCH_EVERY:
        row.last_seen_at = now
        session.add(row)
    return Signed(row.id, editor, csrf_for(secret, raw))


def end(session: Session, raw: str) -> None:
    session.execute(update(EditorSession).where(EditorSession.token_hash == hash_secret(raw),
                                                EditorSession.revoked_at.is_(None)).values(revoked_at=utcnow()))

