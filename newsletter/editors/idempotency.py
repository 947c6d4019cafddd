"""Idempotency keys of API writes: the first answer to (token, key) is kept for 24 hours and
replayed for a retry with the same body, so a client that lost the answer can simply ask again.

Why the table holds a row before the write runs (status NULL): a retry that arrives while
the first request is still working must not run the write a second time; it is told to wait.
A row left in progress by a crash stops blocking after `ABANDONED`. The request is
identified by a SHA-256 of method, path, query and body; the token by its stored hash.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Column, Engine, Index, Text, UniqueConstraint, delete, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, SQLModel, select

from newsletter.db import NEVER_REUSE_IDS, session_scope, utcnow

KEEP = timedelta(hours=24)
ABANDONED = timedelta(minutes=5)  # a first request still "in progress" after this crashed
MAX_KEY = 255


class IdempotencyKey(SQLModel, table=True):
    __tablename__ = "idempotency_key"
    __table_args__ = (UniqueConstraint("token_hash", "key"), Index("ix_idempotency_key_created_at", "created_at"),
                      NEVER_REUSE_IDS)

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64)  # sha256 of the bearer value (= api_token.token_hash)
    key: str = Field(max_length=MAX_KEY)
    request_hash: str = Field(max_length=64)
    status: int | None = None  # None: the first request is still running
    body: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    content_type: str = Field(default="", max_length=100)
    created_at: datetime = Field(default_factory=utcnow)


def request_hash(method: str, path: str, query: str, body: bytes) -> str:
    digest = hashlib.sha256(f"{method.upper()} {path}?{query}\n".encode())
    digest.update(body)
    return digest.hexdigest()


@dataclass(frozen=True)
class Seen:
    """What the table knows about a key: the first request's hash and, once done, its answer."""

    request_hash: str
    status: int | None
    body: str | None
    content_type: str


def lookup(engine: Engine, token_hash: str, key: str, now: datetime | None = None) -> Seen | None:
    """The live entry for (token, key), if any; expired and abandoned ones are deleted first."""
    now = now or utcnow()
    with session_scope(engine) as session:
        session.execute(delete(IdempotencyKey).where(
            IdempotencyKey.token_hash == token_hash, IdempotencyKey.key == key,
            (IdempotencyKey.created_at < now - KEEP)
            | (IdempotencyKey.status.is_(None) & (IdempotencyKey.created_at < now - ABANDONED))))
        row = session.exec(select(IdempotencyKey).where(IdempotencyKey.token_hash == token_hash,
                                                        IdempotencyKey.key == key)).first()
        return Seen(row.request_hash, row.status, row.body, row.content_type) if row else None


def begin(engine: Engine, token_hash: str, key: str, digest: str, now: datetime | None = None) -> int | None:
    """Hold (token, key) for a first request: the row's id, or None when another request holds it."""
    now = now or utcnow()
    try:
        with session_scope(engine) as session:
            session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < now - KEEP))
            row = IdempotencyKey(token_hash=token_hash, key=key, request_hash=digest, created_at=now)
            session.add(row)
            session.flush()
            return row.id
    except IntegrityError:
        return None


def finish(engine: Engine, row_id: int, status: int, body: str, content_type: str) -> None:
    with session_scope(engine) as session:
        session.execute(update(IdempotencyKey).where(IdempotencyKey.id == row_id)
                        .values(status=status, body=body, content_type=content_type[:100]))


def release(engine: Engine, row_id: int) -> None:
    """Forget a held key whose request did not run the write (no token, refused, crashed)."""
    with session_scope(engine) as session:
        session.execute(delete(IdempotencyKey).where(IdempotencyKey.id == row_id))
