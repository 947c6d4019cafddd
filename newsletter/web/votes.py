"""Reader votes from the email: per-recipient signed links to a page whose one button records.

GET shows the choice and a button; only the POST counts (mail scanners prefetch
links). One vote per subscriber and comparison, changeable: a second vote
replaces the first (newsletter/content/votes.py). Votes feed Community % on the next
issue and the web pages.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from sqlmodel import Session

from newsletter.config import SiteSettings
from newsletter.content.models import Comparison, Tool
from newsletter.content.votes import PUBLIC_VOTE_TOKEN, record_vote, resolve_choice
from newsletter.db import session_scope
from newsletter.delivery.received import was_sent
from newsletter.subscribers.models import Subscriber, SubscriberStatus
from newsletter.subscribers.service import link_holder
from newsletter.tokens import InvalidToken, Purpose, read_token
from newsletter.web.deps import Ctx
from newsletter.web.responses import FromTestCopy, message

router = APIRouter()


def invalid(site: SiteSettings) -> HTMLResponse:
    return message(site, "This vote link does not work",
                   ["It may be mistyped or too old, or name a comparison that was not in your issue. Vote "
                    "links in our mails are personal and last 60 days."], status=400)


def label(comparison: Comparison, tool: Tool | None) -> str:
    return f"Ship {tool.name}" if tool else f"Pass on both tools in {comparison.title}"


def lookup(session: Session, secret: str, token: str, slug: str,
           choice: str) -> tuple[Subscriber, Comparison, Tool | None] | None:
    """The active reader a vote link names and what they chose, or None for any bad part; a test
    copy's link of a real comparison and choice raises FromTestCopy (app.py answers it)."""
    try:
        subject = read_token(secret, Purpose.vote, token)
    except InvalidToken:
        return None
    resolved = resolve_choice(session, slug, choice)
    if resolved is None:
        return None
    if subject.in_test_copy:
        raise FromTestCopy(Purpose.vote)
    subscriber = link_holder(session, subject)
    if subscriber is None or subscriber.status != SubscriberStatus.active.value:
        return None
    if not was_sent(session, subscriber.id, resolved[0].id):
        return None  # a vote counts only from a reader whose issue carried the comparison
    return (subscriber, *resolved)


@router.get("/vote/{token}/{slug}/{choice}", response_class=HTMLResponse)
def vote_page(token: str, slug: str, choice: str, ctx: Ctx) -> HTMLResponse:
    site = ctx.settings.site
    if token == PUBLIC_VOTE_TOKEN:
        return message(site, "Votes come from subscribers", ["Each issue carries personal vote buttons. "
                                                             "Subscribe and vote from your next issue."],
                       links=[("Subscribe", f"{site.base_url}/"),
                              ("See the full comparison", f"{site.base_url}/compare/{slug}")])
    with session_scope(ctx.engine) as session:
        found = lookup(session, ctx.secret, token, slug, choice)
        if found is None:
            return invalid(site)
        _subscriber, comparison, tool = found
        return message(site, comparison.title, ["Press the button to record your vote. You can change it later "
                                                "by voting again."],
                       action=f"{site.base_url}/vote/{token}/{slug}/{choice}",
                       button=f"Record my vote: {label(comparison, tool)}")


@router.post("/vote/{token}/{slug}/{choice}", response_class=HTMLResponse)
def vote_post(token: str, slug: str, choice: str, ctx: Ctx) -> HTMLResponse:
    site = ctx.settings.site
    with session_scope(ctx.engine) as session:
        found = lookup(session, ctx.secret, token, slug, choice)
        if found is None:
            return invalid(site)
        subscriber, comparison, tool = found
        record_vote(session, comparison.id, subscriber.id, tool.id if tool else None)
        title, chosen = comparison.title, label(comparison, tool)
    return message(site, "Thanks, your vote counts", [f"{title}: {chosen}.",
                                                     "The community figures in the next issue include it."],
                   links=[("See the full comparison", f"{site.base_url}/compare/{slug}")])
