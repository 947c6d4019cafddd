"""An issue and its ordered comparisons. State moves only by conditional UPDATEs, all made by
newsletter.issues.states.transition (the states and their allowed moves live there)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, Column, ForeignKey, Integer, String, Text, UniqueConstraint, false
from sqlmodel import Field, SQLModel

from newsletter.db import NEVER_REUSE_IDS, utcnow


class Issue(SQLModel, table=True):
    __table_args__ = (NEVER_REUSE_IDS,)

    id: int | None = Field(default=None, primary_key=True)
    week: str = Field(max_length=8, unique=True)  # ISO week, YYYY-Www, in the site's time zone
    subject: str = Field(max_length=200)
    preheader: str = Field(default="", max_length=200)
    intro: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    state: str = Field(default="draft", max_length=16, index=True)  # IssueState.draft (issues/states.py)
    created_at: datetime = Field(default_factory=utcnow)
    scheduled_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    # The subject and preheader follow each reader's first comparison when their issue leads with
    # another one than the editor's lead (issues/variants.py `variant_subject`).
    subject_follows_reader: bool = Field(default=False, sa_column=Column(Boolean, nullable=False,
                                                                          server_default=false()))
    # The failing pre-send checks an editor went ahead despite when scheduling (names, comma
    # separated): the scheduler, checking again at the send time, lets exactly these pass and
    # holds the issue for any other (newsletter/schedule.py). Cleared when it leaves the schedule.
    scheduled_ignoring: str = Field(default="", sa_column=Column(String(200), nullable=False, server_default=""))


class IssueItem(SQLModel, table=True):
    __tablename__ = "issue_item"
    __table_args__ = (UniqueConstraint("issue_id", "position"),)

    issue_id: int = Field(
        sa_column=Column(Integer, ForeignKey("issue.id", ondelete="CASCADE"), primary_key=True)
    )
    comparison_id: int = Field(
        sa_column=Column(Integer, ForeignKey("comparison.id"), primary_key=True, index=True)
    )
    position: int


class IssueRecord(SQLModel, table=True):
    """What an issue carried when it started sending: its whole view (each comparison's verdict,
    Panel ship %, Community % and its votes at that moment), frozen so that the web view, the
    archive, the feeds and every worker that joins the send later show exactly what readers got,
    whatever is edited afterwards (issues/frozen.py)."""

    __tablename__ = "issue_record"

    issue_id: int = Field(sa_column=Column(Integer, ForeignKey("issue.id", ondelete="CASCADE"), primary_key=True))
    frozen_at: datetime = Field(default_factory=utcnow)
    view: dict = Field(sa_column=Column(JSON, nullable=False))
    # The material verdict changes since earlier issues, frozen with the view: the weekly
    # "Verdicts that changed" block never moves once the issue went out (issues/changed.py).
    changed: dict | None = Field(default=None, sa_column=Column(JSON, nullable=True))
