"""The import file format (docs/content-format.md), validated strictly at the edge."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from newsletter.content.models import Lens, Verdict
from newsletter.text import reject_control_chars

SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


def _line(value: str) -> str:
    """One line of text: it may reach a mail header (titles become subjects)."""
    value = value.strip()
    reject_control_chars(value, "text")
    if not value:
        raise ValueError("must not be empty")
    return value


def _paragraph(value: str) -> str:
    value = value.strip()
    reject_control_chars(value.replace("\n", " "), "text")
    if not value:
        raise ValueError("must not be empty")
    return value


def _slug(value: str) -> str:
    if not SLUG.match(value):
        raise ValueError("must be lowercase letters, digits and single hyphens, like 'tool-a-vs-tool-b'")
    return value


Line = Annotated[str, AfterValidator(_line)]
Paragraph = Annotated[str, AfterValidator(_paragraph)]
Slug = Annotated[str, Field(max_length=120), AfterValidator(_slug)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class ToolIn(Strict):
    slug: Slug
    name: Annotated[Line, Field(max_length=120)]
    category: Annotated[Line, Field(max_length=80)]
    tagline: Annotated[Line, Field(max_length=200)]
    description: Annotated[Paragraph, Field(max_length=2000)]
    entry_price: Annotated[Line, Field(max_length=60)]


class ReviewIn(Strict):
    tool: Slug
    lens: Lens
    reviewer: Annotated[Line, Field(max_length=120)]
    verdict: Verdict
    quote: Annotated[Paragraph, Field(max_length=1200)]


class ComparisonIn(Strict):
    slug: Annotated[Slug, Field(max_length=160)]
    title: Annotated[Line, Field(max_length=250)]
    dek: Annotated[Paragraph, Field(max_length=600)]
    published: datetime
    # When the facts were last checked (optional: by default, when they are imported or change).
    checked: datetime | None = None
    category: Annotated[Line, Field(max_length=80)] | None = None
    tools: list[ToolIn] = Field(min_length=2, max_length=4)
    reviews: list[ReviewIn] = Field(default_factory=list, max_length=64)

    @field_validator("published", "checked", mode="before")
    @classmethod
    def _date_or_datetime(cls, value):
        # TOML gives date or datetime objects; JSON gives strings.
        if isinstance(value, date) and not isinstance(value, datetime):
            return datetime.combine(value, time(), tzinfo=UTC)
        if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            return datetime.combine(date.fromisoformat(value), time(), tzinfo=UTC)
        return value

    @field_validator("published", "checked")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("needs a time zone offset, like 2026-11-24T09:00:00Z")
        return value.astimezone(UTC)

    @model_validator(mode="after")
    def _consistent(self) -> "ComparisonIn":
        slugs = [tool.slug for tool in self.tools]
        if len(set(slugs)) != len(slugs):
            raise ValueError("tools: the same tool slug appears twice")
        seen: set[tuple[str, str]] = set()
        for index, review in enumerate(self.reviews):
            if review.tool not in slugs:
                raise ValueError(f"reviews.{index}.tool: {review.tool!r} is not one of this comparison's tools")
            key = (review.tool, review.lens.value)
            if key in seen:
                raise ValueError(f"reviews.{index}: a second {review.lens.value} review of {review.tool!r}")
            seen.add(key)
        if self.category is None:
            self.category = self.tools[0].category
        return self


class ContentFile(Strict):
    comparison: list[ComparisonIn] = Field(min_length=1)
