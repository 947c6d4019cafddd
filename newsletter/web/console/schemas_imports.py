"""The shapes of the readers import API (/api/v1/readers/imports), for its OpenAPI schema."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class ImportCounts(BaseModel):
    new: int = Field(description="Readers added (a dry run: would be added)")
    updated: int
    unchanged: int
    suppressed: int = Field(description="Bounced or complained in the source: now on the suppression list")
    refused: int = Field(description="Rows left out; the first 200 are listed in `errors` with their line")


class ImportJobOut(BaseModel):
    id: int
    state: str = Field(description="queued, running, done or failed (draft: uploaded in the console, "
                                   "mapping not confirmed)")
    dry_run: bool
    skip_bad_rows: bool
    platform: str = Field(description="mailchimp, substack, buttondown, ghost, listmonk, newsletter or csv")
    mapping: dict[str, str] = Field(description="Column of the file -> what it is read as")
    encoding: str
    total_rows: int = Field(description="Data rows in the file (0 until the runner has counted them)")
    processed: int = Field(description="Rows handled so far, good or refused")
    counts: ImportCounts
    errors: list[str] = Field(description='"line N: field: reason", at most 200')
    message: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
