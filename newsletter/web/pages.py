"""Public read-only pages: the web view of a sent issue, comparison pages, the health check."""

from __future__ import annotations

import html
from dataclasses import replace
from types import SimpleNamespace
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, PlainTextResponse
from sqlalchemy import select

from newsletter import tallies
from newsletter.content.votes import PUBLIC_VOTE_TOKEN
from newsletter.db import session_scope
from newsletter.issues.models import Issue
from newsletter.issues.states import IssueState
from newsletter.web.deps import Ctx
from newsletter.web.responses import page

router = APIRouter()


@router.get("/issues/{issue_id}", response_class=HTMLResponse)
def web_view(issue_id: Annotated[int, Path(ge=1, le=2**31 - 1)], ctx: Ctx) -> HTMLResponse:
    """The issue as subscribers got it, without anyone's personal links."""
    from newsletter.issues.frozen import changed_since, issue_view
    from newsletter.issues.render import compile_issue

    site = ctx.settings.site
    with session_scope(ctx.engine) as session:
        issue = session.get(Issue, issue_id)
        if issue is None or not _reached_readers(session, issue):
            return page(site, "message.html", 404, title="Not found", heading="No such issue",
                        paragraphs=["This issue does not exist or has not been published yet."])
        view = replace(issue_view(session, ctx.settings, issue), track_opens=False, track_clicks=False)
        changed = changed_since(session, ctx.settings, issue)
        compiled = compile_issue(view, public=True)  # the subscribe call to action, no personal footer
    values = {"email": "a subscriber", "unsubscribe_url": f"{site.base_url}/",
              "preferences_url": f"{site.base_url}/", "vote_token": PUBLIC_VOTE_TOKEN, "track_token": ""}
    body = compiled.html.fill(values, lambda v: html.escape(v, quote=True))
    body = body.replace("</head>", _share_meta(ctx, view) + "</head>", 1)
    return HTMLResponse(_with_changes_note(ctx, body, changed))


def _reached_readers(session, issue: Issue) -> bool:
    """Sending or sent, or cancelled after some readers got it: their "read it on the web" link
    answered 404 (outside trial). A cancelled issue stays out of the archive and the feed."""
    if issue.state in (IssueState.sending.value, IssueState.sent.value):
        return True
    return (issue.state == IssueState.cancelled.value
            and tallies.read(session, [issue.id]).get(issue.id, {}).get("sent", 0) > 0)


def _with_changes_note(ctx, body: str, changed) -> str:
    """This issue shows the verdicts readers got; where one has changed since, a note at the
    top says so and links the comparison's current page."""
    if not changed:
        return body
    from newsletter.templating import render

    note = render("web/changed_note.html", {"changed": changed})
    head, tag, rest = body.partition("<body")
    opening, close, after = rest.partition(">")
    return head + tag + opening + close + note + after if close else note + body


def _share_meta(ctx, view) -> str:
    """Canonical address and share cards for an issue's web view (the mail's own <head> has none)."""
    from newsletter.templating import render

    titles = " · ".join(comparison.title for comparison in view.comparisons)
    return render("web/_meta.html", {"site": ctx.settings.site, "title": view.subject, "og_type": "article",
                                     "canonical": view.web_url, "description": view.preheader or titles})


@router.get("/compare/{slug}", response_class=HTMLResponse)
def comparison_page(slug: str, request: Request, ctx: Ctx) -> HTMLResponse:
    """The publication's comparison page: the tools side by side, the scorecard by lens and tool,
    the vote buttons, and the signup form under "Get the next comparison in your inbox"."""
    from newsletter.content.page import comparison_page_values
    from newsletter.issues.view import tool_verdict, verdict_line
    from newsletter.web.subscription import signup_form_values

    with session_scope(ctx.engine) as session:
        values = comparison_page_values(session, slug, ctx.settings.content.community_min_votes)
    if values is None:
        return page(ctx.settings.site, "message.html", 404, title="Not found", heading="No such comparison",
                    paragraphs=["We have not compared these tools (yet)."])
    site = ctx.settings.site
    for tool in values["tools"]:
        tool["verdict"] = tool_verdict(tool["ship"])
    figures = [SimpleNamespace(name=tool["name"], panel_ship=tool["ship"]) for tool in values["tools"]]
    form, cookie = signup_form_values(ctx, request)
    description = f"{values['title']}: {values['dek']}" if values.get("dek") else values["title"]
    return page(site, "comparison.html", headers={"Set-Cookie": cookie}, canonical=f"{site.base_url}/compare/{slug}",
                description=description, og_type="article", verdict_line=verdict_line(figures),
                vote_token=PUBLIC_VOTE_TOKEN, **values, **form)


@router.get("/healthz", response_class=PlainTextResponse)
def health(ctx: Ctx) -> str:
    with session_scope(ctx.engine) as session:
        session.execute(select(1))
    return "ok"
