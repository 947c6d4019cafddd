"""Tool pages (/tools/{slug}): every published comparison a tool appears in, with the verdict
each sent issue carried and what the panel says now (newsletter/issues/tool_history.py).

Linked from the comparison pages and the issues' web views, listed in the sitemap; a tool that
no published comparison shows has no page (404), like an unpublished comparison.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from newsletter.db import session_scope
from newsletter.web.deps import Ctx
from newsletter.web.responses import page

router = APIRouter()


@router.get("/tools/{slug}", response_class=HTMLResponse)
def tool_page(slug: str, request: Request, ctx: Ctx) -> HTMLResponse:
    from newsletter.issues.tool_history import tool_page as history
    from newsletter.web.subscription import signup_form_values

    site = ctx.settings.site
    with session_scope(ctx.engine) as session:
        tool = history(session, ctx.settings, slug)
    if tool is None:
        return page(site, "message.html", 404, title="Not found", heading="No such tool",
                    paragraphs=["None of our published comparisons shows this tool."],
                    links=[("See all issues", f"{site.base_url}/issues")])
    form, cookie = signup_form_values(ctx, request)
    count = len(tool.comparisons)
    description = f"{tool.name}: {tool.tagline} Compared in {count} comparison{'s' if count != 1 else ''}, " \
                  "with every verdict our readers were sent."
    return page(site, "tool.html", headers={"Set-Cookie": cookie}, title=tool.name, tool=tool,
                canonical=f"{site.base_url}/tools/{slug}", description=description, og_type="article", **form)
