"""API tokens: random bearer secrets, shown once, stored as SHA-256, scoped and revocable.

Every use records `last_used_at` (in the request's own transaction).
"""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlmodel import Session, select

from newsletter.db import utcnow
from newsletter.editors import audit
from newsletter.editors.models import ApiToken
from newsletter.editors.roles import parse_scopes
from newsletter.editors.sessions import hash_secret

PREFIX = "wv_"  # lets secret scanners and people recognise a Weekly Verdicts token


class TokenError(ValueError):
    """A token request that cannot be done; the message says why."""


def create(session: Session, name: str, scopes: list[str], actor: audit.Actor) -> tuple[ApiToken, str]:
    """A new token and its secret (the only time the secret exists outside the client)."""
    name = " ".join(name.split())
    if not name or len(name) > 80:
        raise TokenError("name: 1 to 80 characters")
    try:
        scope_text = parse_scopes(scopes)
    except ValueError as exc:
        raise TokenError(f"scope: {exc}") from None
    if session.exec(select(ApiToken).where(ApiToken.name == name)).first():
        raise TokenError(f"name: a token named {name!r} exists; revoke it or choose another name")
    raw = PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(name=name, token_hash=hash_secret(raw), scopes=scope_text)
    session.add(token)
    session.flush()
    audit.record(session, actor, "token.create", f"token:{name}", None, {"scopes": scope_text})
    return token, raw


def authenticate(session: Session, raw: str, now: datetime | None = None) -> ApiToken | None:
    """The live token behind a bearer value, its use recorded; None when unknown or revoked."""
    if not raw.startswith(PREFIX) or len(raw) > 100:
        return None
    token = session.exec(select(ApiToken).where(ApiToken.token_hash == hash_secret(raw))).first()
    if token is None or token.revoked_at is not None:
        return None
    token.last_used_at = now or utcnow()
    session.add(token)
    return token


def list_tokens(session: Session) -> list[ApiToken]:
    return list(session.exec(select(ApiToken).order_by(ApiToken.revoked_at.is_not(None), ApiToken.name)))


def revoke(session: Session, name_or_id: str, actor: audit.Actor) -> ApiToken:
    query = select(ApiToken).where(ApiToken.name == name_or_id)
    token = session.exec(query).first()
    if token is None and name_or_id.isdigit():
        token = session.get(ApiToken, int(name_or_id))
    if token is None or token.revoked_at is not None:
        raise TokenError(f"no live token named {name_or_id!r}")
    token.revoked_at = utcnow()
    session.add(token)
    audit.record(session, actor, "token.revoke", f"token:{token.name}", {"scopes": token.scopes}, None)
    return token
