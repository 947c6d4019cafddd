"""The shapes of the issues API (/api/v1/issues/...): what its OpenAPI schema documents."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from newsletter.web.console.schemas import IssueOut


class IssueDetailOut(IssueOut):
    intro: str = Field(description="The editor's note, Markdown (emphasis and http(s)/mailto links)")
    comparisons: list[str] = Field(description="Slugs of the issue's comparisons, in order")
    editable: bool = Field(description="Content can change (draft or scheduled)")
    subject_follows_reader: bool = Field(False, description="The subject follows each reader's first comparison")


class DraftIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    week: str | None = Field(None, max_length=8, description="ISO week YYYY-Www; default: this week")


class IssuePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject: str | None = Field(None, max_length=1000)
    preheader: str | None = Field(None, max_length=1000)
    intro: str | None = Field(None, max_length=20000, description="The editor's note in Markdown")
    subject_follows_reader: bool | None = Field(
        None, description="Readers whose topics leave out the lead comparison get a subject and preheader "
                          "made from their own first comparison")


class ComparisonsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    comparisons: list[str] = Field(max_length=100, description="Comparison slugs in the order the issue shows them")


class TestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: list[str] = Field(min_length=1, max_length=20, description="Addresses for the [TEST] copies")


class TestOutcome(BaseModel):
    address: str
    outcome: str = Field(description="sent, or why not")


class TestOut(BaseModel):
    results: list[TestOutcome]


class ScheduleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at: str = Field(max_length=40, description='Local time "YYYY-MM-DD HH:MM" in the schedule\'s time zone')
    ignore_checks: bool = Field(False, description="Schedule even though a pre-send check fails")


class ScheduleOut(BaseModel):
    scheduled_at: datetime
    local: str = Field(description="The send time in the schedule's time zone")


class SendIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ignore_checks: bool = False


class SendOut(BaseModel):
    state: str
    recipients: int = Field(description="Deliveries queued: one per eligible reader")


class CheckOut(BaseModel):
    name: str
    level: str = Field(description="ok, warning or fail")
    message: str


class ControlOut(BaseModel):
    state: str
    skipped: int = Field(0, description="Deliveries skipped by a cancel")
