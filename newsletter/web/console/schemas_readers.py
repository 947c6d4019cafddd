"""The shapes of the readers API (GET /api/v1/readers/{id}, its status and forget, suppressions)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from newsletter.web.console.schemas import ReaderOut


class LedgerOut(BaseModel):
    issue_id: int
    week: str
    subject: str
    state: str = Field(description="queued, sending, sent, retry, failed, skipped...: delivery.models.DeliveryState")
    attempts: int
    queued_at: datetime
    sent_at: datetime | None
    provider_message_id: str | None = Field(description="The mail provider's id for this message, once sent")
    last_error: str | None


class ConsentOut(BaseModel):
    at: datetime
    kind: str = Field(description="signup_requested, confirmed, unsubscribed, resubscribe_requested, suppressed:…")
    source: str = Field(description="form, api, import, demo, link, webhook or editor")
    detail: str
    ip: str | None
    user_agent: str | None
    consent_version: str | None = Field(description="The version of the consent text the reader saw")


class VoteOut(BaseModel):
    comparison: str
    title: str
    tool: str = Field(description='The tool voted for; "" for "pass on both"')
    at: datetime


class ReaderRecordOut(ReaderOut):
    paused_until: datetime | None
    topics: list[str] = Field(description="Categories chosen; empty means every category")
    suppressed: str | None = Field(description="The suppression's reason if the address is on the list")
    consent: list[ConsentOut] = Field(description="Consent history, newest first")
    ledger: list[LedgerOut] = Field(description="Every issue sent to the reader, newest first")
    votes: list[VoteOut]


class StatusWanted(StrEnum):
    unsubscribed = "unsubscribed"
    active = "active"


class StatusIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: StatusWanted = Field(description='"unsubscribed" ends mail at once; "active" only mails a fresh '
                                             'confirmation: the reader becomes active when they click it')


class StatusOut(BaseModel):
    id: int
    status: str = Field(description="The reader's status now (still the old one after a resubscribe request)")
    changed: bool
    confirmation_queued: bool


class ForgetOut(BaseModel):
    forgotten: bool = True
    erased: dict[str, int] = Field(description="What went, by kind: subscriber, consent events, deliveries, …")


class SuppressionOut(BaseModel):
    email: str = Field(description='The address, or "sha256:<hex>" for a forgotten person')
    reason: str
    created_at: datetime


class SuppressionPage(BaseModel):
    items: list[SuppressionOut]
    next_cursor: str | None
