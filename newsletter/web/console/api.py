"""The REST API under /api/v1: bearer tokens with scopes, JSON errors, cursor pagination.

Every route but POST /public/subscriptions needs a token: none or an unknown one answers 401,
one without the scope 403. Errors are always {"error": {"code", "message", "fields"}}; every
token use records last_used_at and every write goes to the audit log in its own transaction.
"""


import base64
import json
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from sqlalchemy import func, or_, select
from sqlmodel import Session

from newsletter.web.console.deps import Answer, Console, ConsoleContext, answer_route, client_ip, \
    console_context
from newsletter.web.console.schemas import ComparisonSaved, ErrorOut, IssueOut, IssuePage, ReaderOut, ReaderPage, \
    SubscriptionAccepted, SubscriptionIn
from newsletter.content.importer import upsert_comparison
from newsletter.text import has_control_chars
from newsletter.content.models import Comparison, ComparisonTool, Tool
from newsletter.content.schema import ComparisonIn
from newsletter.db import session_scope
from newsletter.editors import audit, tokens
from newsletter.editors.roles import Permission, scopes_allow
from newsletter.issues.models import Issue
from newsletter.subscribers.consent import Origin, Source
from newsletter.web.intake import SignupRefused, submit_signup
from newsletter.subscribers.models import Subscriber

bearer = HTTPBearer(auto_error=False, description="An API token from `newsletter tokens create`")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
ERRORS = {401: {"model": ErrorOut}, 403: {"model": ErrorOut}, 422: {"model": ErrorOut}}


def error(status: int, code: str, message: str, fields: dict[str, str] | None = None,
          headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, "fields": fields or {}}}, status,
                        headers=headers)


HTTP_CODES = {404: ("not_found", "There is no such API route."),
              405: ("method_not_allowed", "This route does not take that method."),
              500: ("server_error", "Something went wrong on our side; nothing was lost. Try again in a minute.")}


def http_error(status: int, headers: dict[str, str] | None = None) -> JSONResponse:
    """The app's errors outside the routes (unknown path, wrong method, a crash) in the API's shape."""
    code, message = HTTP_CODES.get(status, ("error", "The request could not be answered."))
    return error(status, code, message, headers=headers)


def validation_fields(exc: RequestValidationError) -> dict[str, str]:
    """Field paths as the import schema names them ("tools.0.slug"), without FastAPI's "body"."""
    fields: dict[str, str] = {}
    for item in exc.errors():
        loc = [str(part) for part in item.get("loc", ())]
        if loc and loc[0] in ("body", "query", "path", "header"):
            loc = loc[1:]
        fields.setdefault(".".join(loc) or "body", str(item.get("msg", "invalid")))
    return fields


def encode_cursor(value: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(value, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, key: str, kind: type) -> object:
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))[key]
        # A string cursor reaches a SQL comparison: PostgreSQL refuses NUL in text, so a forged
        # cursor with control characters is an invalid cursor, not a server error.
        if isinstance(value, kind) and not isinstance(value, bool) and not (
                isinstance(value, str) and has_control_chars(value)):
            return value
    except (ValueError, TypeError, KeyError, UnicodeDecodeError):
        pass
    raise Answer(error(422, "invalid_request", "The cursor is not one this API gave out.",
                       {"cursor": "not a cursor from a previous page"}))


Limit_ = Annotated[int, Query(ge=1, le=100)]


def require(permission: Permission):
    """A dependency: the acting token, or a 401 (no valid token) / 403 (scope missing) answer.
    `_credentials` only puts the bearer security scheme into the OpenAPI schema."""
    def dependency(request: Request, ctx: Console, _credentials: Credentials) -> audit.Actor:
        token = _token(ctx, request)
        if token is None:
            raise Answer(_unauthorized())
        if not scopes_allow(token.scopes, permission):
            raise Answer(error(403, "forbidden", f"This token's scopes ({token.scopes}) do not allow this.",
                               headers={"WWW-Authenticate": 'Bearer error="insufficient_scope"'}))
        return audit.Actor(f"token:{token.name}", token_id=token.id)
    return dependency


def on_invalid(request: Request, exc: Exception) -> Response:
    """A request that fails validation: 401 to anyone without a token (a bad body from them still
    learns nothing else), else 422 with the fields in the API's error shape."""
    ctx = console_context(request)
    public = request.url.path.startswith("/api/v1/public/")
    if not public and _token(ctx, request) is None:
        return _unauthorized()
    answer = error(422, "invalid_request", "The request is not valid; see fields.",
                   validation_fields(exc))  # type: ignore[arg-type]
    return _cors(ctx, request, answer) if public else answer


router = APIRouter(prefix="/api/v1", route_class=answer_route(on_invalid), responses=ERRORS, tags=["api"])
Reading = Annotated[audit.Actor, Depends(require(Permission.read))]
EditingComparisons = Annotated[audit.Actor, Depends(require(Permission.edit_comparisons))]


@router.get("/issues", response_model=IssuePage)
def list_issues(ctx: Console, _actor: Reading, cursor: Annotated[str, Query(max_length=200)] = "",
                limit: Limit_ = 50) -> IssuePage:
    """Issues, newest first."""
    query = select(Issue).order_by(Issue.id.desc())
    if cursor:
        query = query.where(Issue.id < decode_cursor(cursor, "id", int))
    items, next_cursor = _keyset_page(ctx, query, limit, IssueOut, "id")
    return IssuePage(items=items, next_cursor=next_cursor)


@router.get("/readers", response_model=ReaderPage)
def search_readers(ctx: Console, _actor: Reading,
                   q: Annotated[str, Query(max_length=254, pattern=r"^[^\x00-\x1f\x7f]*$",
                                          description="Address or name prefix")] = "",
                   cursor: Annotated[str, Query(max_length=600)] = "", limit: Limit_ = 50) -> ReaderPage:
    """Readers whose address or name starts with `q`, by address (keyset pagination)."""
    query = select(Subscriber).order_by(Subscriber.email)
    prefix = q.strip().lower()
    if prefix:
        query = query.where(or_(Subscriber.email.startswith(prefix, autoescape=True),
                                func.lower(Subscriber.name).startswith(prefix, autoescape=True)))
    if cursor:
        query = query.where(Subscriber.email > decode_cursor(cursor, "email", str))
    items, next_cursor = _keyset_page(ctx, query, limit, ReaderOut, "email")
    return ReaderPage(items=items, next_cursor=next_cursor)


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
        created = upsert_comparison(session, body)
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
        return _cors(ctx, request, error(exc.status, code, message, exc.errors, exc.headers))
    return _cors(ctx, request, JSONResponse(SubscriptionAccepted().model_dump(), 202))


@router.options("/public/subscriptions", include_in_schema=False)
def preflight(request: Request, ctx: Console) -> Response:
    response = _cors(ctx, request, Response(status_code=204))
    if "Access-Control-Allow-Origin" in response.headers:
        response.headers.update({"Access-Control-Allow-Methods": "POST",
                                 "Access-Control-Allow-Headers": "Content-Type",
                                 "Access-Control-Max-Age": "600"})
    return response


def _keyset_page(ctx: ConsoleContext, query, limit: int, model: type[BaseModel], key: str) -> tuple[list, str | None]:
    """One page of `query` (already ordered by `key`) and the cursor of the next, if there is one."""
    with session_scope(ctx.engine) as session:
        rows = list(session.execute(query.limit(limit + 1)).scalars())
    items = [model.model_validate(row, from_attributes=True) for row in rows[:limit]]
    return items, (encode_cursor({key: getattr(items[-1], key)}) if len(rows) > limit else None)


def _token(ctx: ConsoleContext, request: Request):
    header = request.headers.get("authorization", "")
    scheme, _, raw = header.partition(" ")
    if scheme.lower() != "bearer" or not raw.strip():
        return None
    with session_scope(ctx.engine) as session:
        return tokens.authenticate(session, raw.strip())


def _unauthorized() -> JSONResponse:
    return error(401, "unauthorized", "A valid API token is required (Authorization: Bearer TOKEN).",
                 headers={"WWW-Authenticate": "Bearer"})


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


def _cors(ctx: ConsoleContext, request: Request, response: Response) -> Response:
    origin = request.headers.get("origin", "")
    if origin and origin in ctx.settings.api.cors_origins:
        response.headers["Access-Control-Allow-Origin"] = origin
    response.headers["Vary"] = "Origin"
    return response
