"""The base of every settings section, and the sections of the pipeline itself: site, database,
issue, delivery and schedule. Mail (mail.py) and the web-facing sections (web.py) have their own
modules; settings.py puts them all together.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

from newsletter.text import reject_control_chars

ENV_PREFIX = "NEWSLETTER_"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SiteSettings(Section):
    name: str = "Weekly Verdicts"
    base_url: str = "http://127.0.0.1:8000"
    postal_address: str = ""
    timezone: str = "UTC"
    language: str = "en"
    templates_dir: Path = Path("")  # an operator's templates, each overriding the shipped one of its name
    template_cache: bool = True  # compiled templates kept on disk between processes (templating.py)

    @field_validator("name", "postal_address")
    @classmethod
    def _no_control(cls, value: str) -> str:
        return reject_control_chars(value, "value")

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        reject_control_chars(value, "base_url")
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name like Europe/Berlin)")
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def operator_templates(self) -> Path | None:
        """`templates_dir` when set (load_settings makes it absolute), for templating.use_operator_templates."""
        return None if str(self.templates_dir) in ("", ".") else self.templates_dir


class DatabaseSettings(Section):
    url: str = "sqlite:///var/newsletter.db"


class ContentSettings(Section):
    """[content]: how reader votes are shown. Below `community_min_votes` votes a comparison's
    Community % is not a percentage yet ("3 votes so far"): one vote is not "100%"."""
    community_min_votes: int = Field(5, ge=1, le=10000)
    # A verdict change is material (issues/material.py) when a tool's panel verdict flips, its
    # Panel ship % moves by at least this many points, or its entry price changes.
    material_ship_points: int = Field(20, ge=1, le=100)
    # The pre-send checks warn about a comparison whose facts were last checked longer ago.
    stale_after_days: int = Field(120, ge=1, le=3650)
    # A JSON feed of comparisons in the import schema, pulled before the draft day (empty: none).
    feed_url: str = ""

    @field_validator("feed_url")
    @classmethod
    def _feed(cls, value: str) -> str:
        reject_control_chars(value, "feed_url")
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value


class IssueSettings(Section):
    max_comparisons: int = Field(6, ge=1, le=50)
    # A reader who confirms gets the latest sent issue (as it went out, marked as such) right after
    # the welcome mail, once (delivery/onboarding.py): [issue], as it is about which issue goes out.
    latest_to_new_readers: bool = True


class DeliverySettings(Section):
    # 500: a 1M-row send ran 15% faster than with 100 (fewer claims and commits); a crash can
    # repeat at most the batch each worker had in flight (docs/operations.md). listmonk's default is 1,000.
    batch_size: int = Field(500, ge=1, le=10000)
    lease_seconds: int = Field(300, ge=10)
    max_attempts: int = Field(5, ge=1, le=50)
    retry_base_seconds: float = Field(60.0, ge=0)
    retry_max_seconds: float = Field(6 * 3600.0, ge=0)
    rate_per_second: int = Field(0, ge=0)  # per transport, all workers together; 0 = unlimited
    rate_per_hour: int = Field(0, ge=0)
    # A worker beats this often; its `sending` rows are taken over after 3 missed beats.
    heartbeat_seconds: float = Field(2.0, gt=0, le=60)
    # An idle worker looks for work this often. On PostgreSQL a new send, a resume or queued mail
    # wakes it at once (LISTEN/NOTIFY, delivery/wakeup.py) and this is only the fallback; on SQLite
    # it is how soon a send starts.
    poll_seconds: float = Field(5.0, gt=0, le=3600)
    # `newsletter worker` (and the confirmation sender of `newsletter serve`) run at this nice value,
    # so on a shared host the web's answers come before the send's throughput (newsletter/priority.py,
    # docs/operations.md "Priority"); 0 = the priority the process was started with.
    nice: int = Field(10, ge=0, le=19)


DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class ScheduleSettings(Section):
    draft_day: Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"] = "mon"
    draft_time: str = "09:00"
    send_day: Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"] = "thu"
    send_time: str = "08:00"
    timezone: str = ""  # empty: the site's time zone
    auto_send: bool = False
    grace_minutes: float = Field(60.0, ge=0)
    tick_seconds: float = Field(30.0, gt=0)
    confirm_over: int = Field(1000, ge=0)  # `issue send` asks above this many recipients
    notify: list[str] = []  # editors' addresses for finished/failed notices

    @field_validator("draft_time", "send_time")
    @classmethod
    def _clock(cls, value: str) -> str:
        import re

        if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
            raise ValueError("use HH:MM, 24-hour")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        if value:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {value!r}")
        return value

    @field_validator("notify")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for address in value:
            reject_control_chars(address, "notify")
            if "@" not in address:
                raise ValueError(f"{address!r} is not an email address")
        return value
