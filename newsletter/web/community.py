"""GET /community/{slug}.json: the readers' verdict for the publication's own site, so its
comparison page can replace "Community —" with the votes our readers cast.

Public, read-only and without cookies, so any origin may read it (CORS `*`); proxies may
cache it for a minute. The shape is a fixed interface:
{"tools": {"<tool slug>": {"votes": N, "percent": P or null}}} (plus the totals).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse

from newsletter.content.scores import community_counts
from newsletter.db import session_scope
from newsletter.web.deps import Ctx

router = APIRouter()
HEADERS = {"Access-Control-Allow-Origin": "*", "Cache-Control": "public, max-age=60"}


@router.get("/community/{slug}.json")
def community_json(slug: Annotated[str, Path(max_length=160)],
                   ctx: Ctx) -> JSONResponse:
    with session_scope(ctx.engine) as session:
        counts = community_counts(session, slug, ctx.settings.content.community_min_votes)
    if counts is None:
        return JSONResponse({"error": {"code": "not_found", "message": f"There is no comparison {slug!r}."}},
                            404, headers=HEADERS)
    return JSONResponse(counts, headers=HEADERS)
