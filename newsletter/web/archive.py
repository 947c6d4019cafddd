"""The public archive on the web: /issues (the index, with its feeds linked), the RSS, Atom and
JSON feeds, /sitemap.xml and /robots.txt.

Read-only and the same for everyone, so each answer may be cached by a proxy for a few
minutes. Included before pages.router: "/issues/feed.rss" must not reach "/issues/{id}".
"""

from __future__ import annotations

from typing import Annotated
from xml.sax.saxutils import escape

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, PlainTextResponse, Response

from newsletter.db import session_scope
from newsletter.issues import archive, feeds
from newsletter.web.deps import Ctx
from newsletter.web.responses import page

router = APIRouter()
PAGE_SIZE = 20
PUBLIC_CACHE = {"Cache-Control": "public, max-age=300"}


@router.get("/issues", response_class=HTMLResponse)
def index(ctx: Ctx, before: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None) -> HTMLResponse:
    """Sent issues, newest first, PAGE_SIZE a page; "Older issues" continues below the last one."""
    with session_scope(ctx.engine) as session:
        entries = archive.sent_issues(session, ctx.settings, PAGE_SIZE + 1, before)
    older = entries[PAGE_SIZE - 1].id if len(entries) > PAGE_SIZE else None
    site = ctx.settings.site
    description = f"Every issue of {site.name}: AI tools compared side by side, with the panel's verdicts."
    return page(site, "archive.html", headers=PUBLIC_CACHE, title="All issues", entries=entries[:PAGE_SIZE],
                older=older, feeds=feeds.PATHS, description=description,
                canonical=f"{site.base_url}/issues" + (f"?before={before}" if before else ""))


def _feed_parts(ctx: Ctx):
    with session_scope(ctx.engine) as session:
        entries = archive.sent_issues(session, ctx.settings, feeds.FEED_SIZE)
        return entries, archive.entry_views(session, ctx.settings, entries)


@router.get("/issues/feed.rss")
def rss(ctx: Ctx) -> Response:
    body = feeds.rss(ctx.settings, *_feed_parts(ctx))
    return Response(body, media_type="application/rss+xml; charset=utf-8", headers=PUBLIC_CACHE)


@router.get("/issues/feed.atom")
def atom(ctx: Ctx) -> Response:
    body = feeds.atom(ctx.settings, *_feed_parts(ctx))
    return Response(body, media_type="application/atom+xml; charset=utf-8", headers=PUBLIC_CACHE)


@router.get("/issues/feed.json")
def json_feed(ctx: Ctx) -> Response:
    body = feeds.json_feed(ctx.settings, *_feed_parts(ctx))
    return Response(body, media_type="application/feed+json; charset=utf-8", headers=PUBLIC_CACHE)


@router.get("/sitemap.xml")
def sitemap(ctx: Ctx) -> Response:
    """The signup page, the archive, every public issue, comparison and tool page (sitemaps.org 0.9)."""
    base = ctx.settings.site.base_url
    with session_scope(ctx.engine) as session:
        issues = archive.sent_issues(session, ctx.settings, 50_000)
        comparisons = archive.published_comparisons(session)
        tools = archive.published_tools(session)
    urls = [(f"{base}/", None), (f"{base}/issues", issues[0].sent_at if issues else None)]
    urls += [(entry.url, entry.sent_at) for entry in issues]
    urls += [(f"{base}/compare/{slug}", published) for slug, published in comparisons]
    urls += [(f"{base}/tools/{slug}", updated) for slug, updated in tools]
    lines = ['<?xml version="1.0" encoding="UTF-8"?>',
             '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">']
    for loc, modified in urls[:50_000]:
        lastmod = f"<lastmod>{modified.date().isoformat()}</lastmod>" if modified else ""
        lines.append(f"<url><loc>{escape(loc)}</loc>{lastmod}</url>")
    lines.append("</urlset>")
    return Response("\n".join(lines) + "\n", media_type="application/xml", headers=PUBLIC_CACHE)


@router.get("/robots.txt", response_class=PlainTextResponse)
def robots(ctx: Ctx) -> PlainTextResponse:
    """Personal links (votes, preferences, unsubscribes) and the console are no place for a crawler."""
    lines = ["User-agent: *", "Disallow: /admin", "Disallow: /api/", "Disallow: /vote/", "Disallow: /confirm/",
             "Disallow: /unsubscribe/", "Disallow: /preferences/", "Disallow: /o/", "Disallow: /c/",
             f"Sitemap: {ctx.settings.site.base_url}/sitemap.xml"]
    return PlainTextResponse("\n".join(lines) + "\n", headers=PUBLIC_CACHE)
