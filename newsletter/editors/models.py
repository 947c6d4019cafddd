"""Tables of the editors' console: who may sign in, their sessions, API tokens, and what they did.

Secrets are never stored: passwords as Argon2 hashes, session ids and API tokens as SHA-256
hashes (they are long random values, so a fast hash is enough and lookups stay indexed).
Editors are disabled, not deleted, so the audit log keeps naming who did what.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column, ForeignKey, Integer, Text
from sqlmodel import Field, SQLModel

from newsletter.db import NEVER_REUSE_IDS, utcnow


class Editor(SQLModel, table=True):
    __tablename__ = "editor"
    __table_args__ = NEVER_REUSE_IDS

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=254, unique=True)
    role: str = Field(max_length=16)  # newsletter.editors.roles.Role
    password_hash: str = Field(default="", max_length=255)  # "" until the set-password link is used
    totp_secret: str | None = Field(default=None, max_length=64)  # base32; None: no second factor
    totp_last_step: int = 0  # the last 30-second step accepted: a code works once
    created_at: datetime = Field(default_factory=utcnow)
    disabled_at: datetime | None = None


class EditorSession(SQLModel, table=True):
    __tablename__ = "editor_session"
    __table_args__ = NEVER_REUSE_IDS

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True)
    editor_id: int = Field(sa_column=Column(Integer, ForeignKey("editor.id", ondelete="CASCADE"),
                                            nullable=False, index=True))
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    last_seen_at: datetime = Field(default_factory=utcnow)
    ip: str = Field(default="", max_length=45)
    user_agent: str = Field(default="", max_length=300)
    revoked_at: datetime | None = None


class ApiToken(SQLModel, table=True):
    __tablename__ = "api_token"
    __table_args__ = NEVER_REUSE_IDS

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=80, unique=True)
    token_hash: str = Field(max_length=64, unique=True)
    scopes: str = Field(max_length=200)  # space-separated newsletter.editors.roles.Scope values
    created_at: datetime = Field(default_factory=utcnow)
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


class AuditEntry(SQLModel, table=True):
    __tablename__ = "audit_log"
    __table_args__ = NEVER_REUSE_IDS

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    editor_id: int | None = Field(default=None, sa_column=Column(
        Integer, ForeignKey("editor.id", ondelete="SET NULL"), nullable=True, index=True))
    token_id: int | None = Field(default=None, sa_column=Column(
        Integer, ForeignKey("api_token.id", ondelete="SET NULL"), nullable=True, index=True))
    actor: str = Field(max_length=300)  # "editor:EMAIL", "token:NAME" or "cli": readable after renames
    action: str = Field(max_length=64)
    target: str = Field(default="", max_length=300)
    before: dict | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    after: dict | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    detail: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
