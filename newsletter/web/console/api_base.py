"""What every REST API module under /api/v1 shares: bearer tokens with scopes, JSON errors,
cursor pagination, CORS for the public routes.

Every route but those under /public needs a token: none or an unknown one answers 401, one
without the scope 403. Errors are always {"error": {"code", "message", "fields"}}. Each API
module makes its router with `api_router()` and asks for an actor with one of the aliases
below (Reading, EditingComparisons, ManagingIssues, ManagingReaders).
"""


import base64
import json
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from newsletter.web.console.deps import Answer, Console, ConsoleContext, answer_route, console_context
from newsletter.web.console.schemas import ErrorOut
from newsletter.text import has_control_chars
from newsletter.db import session_scope
from newsletter.editors import audit, tokens
from newsletter.editors.roles import Permission, scopes_allow

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
        token = token_for(ctx, request)
        if token is None:
            raise Answer(unauthorized())
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
    if not public and token_for(ctx, request) is None:
        return unauthorized()
    answer = error(422, "invalid_request", "The request is not valid; see fields.",
                   validation_fields(exc))  # type: ignore[arg-type]
    return cors(ctx, request, answer) if public else answer

def api_router() -> APIRouter:
    """A router for one API module: /api/v1, JSON errors (also for invalid requests), tagged "api"."""
    return APIRouter(prefix="/api/v1", route_class=answer_route(on_invalid), responses=ERRORS, tags=["api"])


Reading = Annotated[audit.Actor, Depends(require(Permission.read))]
EditingComparisons = Annotated[audit.Actor, Depends(require(Permission.edit_comparisons))]
ManagingIssues = Annotated[audit.Actor, Depends(require(Permission.manage_issues))]
ManagingReaders = Annotated[audit.Actor, Depends(require(Permission.manage_readers))]
Cursor = Annotated[str, Query(max_length=600, description="next_cursor of the previous page")]


def keyset_page(ctx: ConsoleContext, query, limit: int, model: type[BaseModel], key: str) -> tuple[list, str | None]:
    """One page of `query` (already ordered by `key`) and the cursor of the next, if there is one."""
    with session_scope(ctx.engine) as session:
        rows = list(session.execute(query.limit(limit + 1)).scalars())
    items = [model.model_validate(row, from_attributes=True) for row in rows[:limit]]
    return items, (encode_cursor({key: getattr(items[-1], key)}) if len(rows) > limit else None)


def token_for(ctx: ConsoleContext, request: Request):
    header = request.headers.get("authorization", "")
    scheme, _, raw = header.partition(" ")
    if scheme.lower() != "bearer" or not raw.strip():
        return None
    with session_scope(ctx.engine) as session:
        return tokens.authenticate(session, raw.strip())


def unauthorized() -> JSONResponse:
    return error(401, "unauthorized", "A valid API token is required (Authorization: Bearer TOKEN).",
                 headers={"WWW-Authenticate": "Bearer"})


def cors(ctx: ConsoleContext, request: Request, response: Response) -> Response:
    origin = request.headers.get("origin", "")
    if origin and origin in ctx.settings.api.cors_origins:
        response.headers["Access-Control-Allow-Origin"] = origin
    response.headers["Vary"] = "Origin"
    return response
