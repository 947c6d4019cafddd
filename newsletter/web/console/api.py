"""The first REST API routes: issues list, reader search, comparison PUT and the public signup.

The shared mechanism (tokens, scopes, errors, cursors) is in api_base.py.
"""

from typing import Annotated

from fastapi import Path, Query, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select
from sqlmodel import Session

from newsletter.content.importer import upsert_comparison
from newsletter.content.models import Comparison, ComparisonTool, Tool
from newsletter.content.schema import ComparisonIn
from newsletter.db import session_scope
from newsletter.editors import audit
from newsletter.issues.models import Issue
from newsletter.subscribers.consent import Origin, Source
from newsletter.subscribers import search
from newsletter.web.console.api_base import EditingComparisons, Limit_, Reading, api_router, cors, \
    decode_cursor, encode_cursor, error, keyset_page
from newsletter.web.console.comparisons_common import origin_of
from newsletter.web.console.deps import Console, client_ip
from newsletter.web.console.schemas import ComparisonSaved, ErrorOut, IssueOut, IssuePage, ReaderOut, ReaderPage, \
    SubscriptionAccepted, SubscriptionIn
from newsletter.web.intake import SignupRefused, submit_signup

router = api_router()


@router.get("/issues", response_model=IssuePage)
def list_issues(ctx: Console, _actor: Reading, cursor: Annotated[str, Query(max_length=200)] = "",
                limit: Limit_ = 50) -> IssuePage:
    """Issues, newest first."""
    query = select(Issue).order_by(Issue.id.desc())
    if cursor:
        query = query.where(Issue.id < decode_cursor(cursor, "id", int))
    items, next_cursor = keyset_page(ctx, query, limit, IssueOut, "id")
    return IssuePage(items=items, next_cursor=next_cursor)


@router.get("/readers", response_model=ReaderPage)
def search_readers(ctx: Console, _actor: Reading,
                   q: Annotated[str, Query(max_length=254, pattern=r"^[^\x00-\x1f\x7f]*$",
                                          description="Address or name prefix")] = "",
                   cursor: Annotated[str, Query(max_length=600)] = "", limit: Limit_ = 50) -> ReaderPage:
    """Readers whose address or name starts with `q`, by address (keyset pagination; the
    search itself, with its indexes, is newsletter/subscribers/search.py)."""
    after = str(decode_cursor(cursor, "email", str)) if cursor else ""
    with session_scope(ctx.engine) as session:
        found = search.search_readers(session, q, after, limit)
        items = [ReaderOut.model_validate(row, from_attributes=True) for row in found.rows]
    return ReaderPage(items=items, next_cursor=encode_cursor({"email": found.next_after}) if found.next_after else None)


@router.put("/comparisons/{slug}", response_model=ComparisonSaved,
            responses={201: {"model": ComparisonSaved, "description": "Created"}})
def put_comparison(ctx: Console, slug: Annotated[str, Path(max_length=160)], body: ComparisonIn,
                   actor: EditingComparisons) -> Response:
    """Create or update one comparison from the JSON import schema (docs/content-format.md)."""
    if body.slug != slug:
        return error(422, "slug_mismatch", "The body's slug differs from the one in the URL.",
                     {"slug": f"must be {slug!r}, as in the URL"})
    with session_scope(ctx.engine) as session:
        before = _snapshot(session, slug)
        created = upsert_comparison(session, body, origin_of(actor, "api")).created
        audit.record(session, actor, "comparison.put", f"comparison:{slug}", before, body.model_dump(mode="json"))
    saved = ComparisonSaved(slug=slug, created=created)
    return JSONResponse(saved.model_dump(), 201 if created else 200)


@router.post("/public/subscriptions", status_code=202, response_model=SubscriptionAccepted,
             responses={429: {"model": ErrorOut}}, summary="Sign a reader up (double opt-in)")
def subscribe(request: Request, ctx: Console, body: SubscriptionIn) -> Response:
    """The signup form's path with source "api": same checks, limits and double opt-in; the
    answer is the same whether or not the address is known."""
    origin = Origin(ip=client_ip(ctx, request), user_agent=request.headers.get("user-agent", ""))
    try:
        submit_signup(ctx.web, body.email, body.name, body.topics, origin, Source.api)
    except SignupRefused as exc:
        code = "rate_limited" if exc.status == 429 else "invalid_request"
        message = exc.errors.pop("form", "The request is not valid; see fields.")
        return cors(ctx, request, error(exc.status, code, message, exc.errors, exc.headers))
    return cors(ctx, request, JSONResponse(SubscriptionAccepted().model_dump(), 202))


@router.options("/public/subscriptions", include_in_schema=False)
def preflight(request: Request, ctx: Console) -> Response:
    response = cors(ctx, request, Response(status_code=204))
    if "Access-Control-Allow-Origin" in response.headers:
        response.headers.update({"Access-Control-Allow-Methods": "POST",
                                 "Access-Control-Allow-Headers": "Content-Type",
                                 "Access-Control-Max-Age": "600"})
    return response


def _snapshot(session: Session, slug: str) -> dict | None:
    """The comparison as it was, for the audit log's "before"."""
    comparison = session.execute(select(Comparison).where(Comparison.slug == slug)).scalar_one_or_none()
    if comparison is None:
        return None
    tools = session.execute(select(Tool.slug).join(ComparisonTool, ComparisonTool.tool_id == Tool.id)
                            .where(ComparisonTool.comparison_id == comparison.id)
                            .order_by(ComparisonTool.position)).scalars().all()
    return {"slug": slug, "title": comparison.title, "dek": comparison.dek, "category": comparison.category,
            "published": comparison.published_at.isoformat() if comparison.published_at else None,
            "tools": list(tools)}
