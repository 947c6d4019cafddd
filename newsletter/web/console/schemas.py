"""The shapes the REST API answers with (and so what its OpenAPI schema documents)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class ErrorBody(BaseModel):
    code: str = Field(description="Stable, machine-readable: unauthorized, forbidden, invalid_request, "
                                  "rate_limited, slug_mismatch")
    message: str
    fields: dict[str, str] = Field(default_factory=dict, description="Field path -> what is wrong with it")


class ErrorOut(BaseModel):
    error: ErrorBody


class IssueOut(BaseModel):
    id: int
    week: str
    subject: str
    preheader: str
    state: str
    created_at: datetime
    scheduled_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None


class IssuePage(BaseModel):
    items: list[IssueOut]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null on the last page")


class ReaderOut(BaseModel):
    id: int
    email: str
    name: str
    status: str
    created_at: datetime
    confirmed_at: datetime | None
    unsubscribed_at: datetime | None


class ReaderPage(BaseModel):
    items: list[ReaderOut]
    next_cursor: str | None


class ComparisonSaved(BaseModel):
    slug: str
    created: bool


class SubscriptionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(max_length=1000)
    name: str = Field("", max_length=1000)
    topics: list[str] = Field(default_factory=list, max_length=50)


class SubscriptionAccepted(BaseModel):
    status: str = "pending_confirmation"
    message: str = ("If the address can receive our newsletter, a confirmation mail is on its way; "
                    "nothing arrives until the reader confirms.")
