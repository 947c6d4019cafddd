"""The comparisons REST API: list (the console list's filters, cursor pages), get one, unpublish
and republish, and the per-tool vote counts and Community % for the publication's site.

Reads need the `read` scope; writes the `comparisons` scope (or `all`). PUT (create or
update in the import schema) is in api.py and unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Path, Query
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from sqlmodel import Session

from newsletter.content import publishing
from newsletter.content.models import Comparison
from newsletter.db import session_scope
from newsletter.editors import audit
from newsletter.reports import comparisons as catalogue
from newsletter.web.console.api_base import Cursor, EditingComparisons, Limit_, Reading, api_router, error
from newsletter.web.console.comparisons_common import cursor_for, key_of, parse_filters, publish_audited
from newsletter.web.console.deps import Console, ConsoleContext
from newsletter.web.console.schemas import ErrorOut
from newsletter.web.console.schemas_comparisons import CommunityOut, ComparisonOut, ComparisonPage, \
    ComparisonSummaryOut, IssueRefOut, PublicationOut, ReviewOut, ToolFiguresOut, ToolOut

router = api_router()
SlugPath = Annotated[str, Path(max_length=160, description="The comparison's slug")]
Text = Annotated[str, Query(max_length=200)]
NOT_FOUND = {404: {"model": ErrorOut, "description": "No comparison has this slug"}}


def no_such(slug: str) -> JSONResponse:
    return error(404, "not_found", "There is no comparison with this slug.", {"slug": "no such comparison"})


@router.get("/comparisons", response_model=ComparisonPage)
def list_comparisons(
        ctx: Console, _actor: Reading,
        q: Annotated[str, Query(max_length=200, description="In the title, the slug or a tool's name or slug "
                                                           "(case-insensitive)")] = "",
        week: Annotated[str, Query(max_length=8, description="ISO week of publication, like 2026-W48")] = "",
        published_from: Annotated[str, Query(max_length=10, description="First day, YYYY-MM-DD")] = "",
        published_to: Annotated[str, Query(max_length=10, description="Last day (inclusive)")] = "",
        category: Text = "",
        issue: Annotated[str, Query(max_length=10, description="Only those carried by this issue id")] = "",
        min_votes: Annotated[str, Query(max_length=10, description="At least this many votes (1: has "
                                                                   "votes)")] = "",
        status: Annotated[str, Query(max_length=12, description="any (default), published or "
                                                                "unpublished")] = "",
        cursor: Cursor = "", limit: Limit_ = 50) -> Response | ComparisonPage:
    """Comparisons, newest publication first, with the console list's filters."""
    filters, errors = parse_filters({"q": q, "week": week, "published_from": published_from,
                                     "published_to": published_to, "category": category, "issue": issue,
                                     "min_votes": min_votes, "status": status})
    if errors:
        return error(422, "invalid_request", "The request is not valid; see fields.", errors)
    after = key_of(cursor) if cursor else None
    with session_scope(ctx.engine) as session:
        rows, next_key = catalogue.search(session, filters, ctx.settings.site.zone, after, limit)
    items = [ComparisonSummaryOut(slug=r.slug, title=r.title, category=r.category, published=r.published_at,
                                  is_published=r.unpublished_at is None, unpublished_at=r.unpublished_at,
                                  tools=r.tools, votes=r.votes, issues=[i for i, _ in r.issues]) for r in rows]
    return ComparisonPage(items=items, next_cursor=cursor_for(next_key))


def community_of(slug: str, figures: catalogue.Figures) -> CommunityOut:
    return CommunityOut(slug=slug, votes_total=figures.votes_total, votes_pass=figures.votes_pass,
                        tools=[ToolFiguresOut(**vars(tool)) for tool in figures.tools])


def read_one(ctx: ConsoleContext, slug: str, answer: Callable[[Session, Comparison], BaseModel]) -> Response | BaseModel:
    """`answer` for the comparison, or the 404 every read of an unknown slug gets."""
    with session_scope(ctx.engine) as session:
        comparison = publishing.find(session, slug)
        return no_such(slug) if comparison is None else answer(session, comparison)


def detail_of(session: Session, comparison: Comparison) -> ComparisonOut:
    data = publishing.as_import(session, comparison)
    figures = catalogue.figures(session, comparison)
    return ComparisonOut(
        slug=comparison.slug, title=data["title"], dek=data["dek"], published=comparison.published_at,
        category=data["category"], tools=[ToolOut(**tool) for tool in data["tools"]],
        reviews=[ReviewOut(**review) for review in data["reviews"]], is_published=comparison.is_published,
        unpublished_at=comparison.unpublished_at, updated_at=comparison.updated_at,
        checked_at=comparison.checked_at,
        community=community_of(comparison.slug, figures),
        issues=[IssueRefOut(id=i, week=week, state=state) for i, week, state in figures.issues])


@router.get("/comparisons/{slug}", response_model=ComparisonOut, responses=NOT_FOUND)
def get_comparison(ctx: Console, _actor: Reading, slug: SlugPath) -> Response | BaseModel:
    """One comparison in the import schema, with whether it is published, its votes and issues."""
    return read_one(ctx, slug, detail_of)


@router.get("/comparisons/{slug}/community", response_model=CommunityOut, responses=NOT_FOUND)
def get_community(ctx: Console, _actor: Reading, slug: SlugPath) -> Response | BaseModel:
    """Votes per tool and Community % (as the issue and the page show them), for the site."""
    return read_one(ctx, slug, lambda session, comparison: community_of(slug, catalogue.figures(session, comparison)))


def set_published(ctx: ConsoleContext, actor: audit.Actor, slug: str, published: bool) -> Response | PublicationOut:
    try:
        before, after = publish_audited(ctx.engine, actor, slug, published, "api")
    except publishing.NoSuchComparison:
        return no_such(slug)
    unpublished = after["unpublished_at"]
    return PublicationOut(slug=slug, is_published=unpublished is None, unpublished_at=unpublished,
                          changed=before != after)


@router.post("/comparisons/{slug}/unpublish", response_model=PublicationOut, responses=NOT_FOUND)
def unpublish(ctx: Console, actor: EditingComparisons, slug: SlugPath) -> Response | PublicationOut:
    """Off the public page and out of future selections; sent issues keep it. Idempotent."""
    return set_published(ctx, actor, slug, False)


@router.post("/comparisons/{slug}/publish", response_model=PublicationOut, responses=NOT_FOUND)
def publish(ctx: Console, actor: EditingComparisons, slug: SlugPath) -> Response | PublicationOut:
    """Back on the public page and selectable again. Idempotent."""
    return set_published(ctx, actor, slug, True)
