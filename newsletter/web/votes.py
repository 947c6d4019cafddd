"""Reader votes from the email: per-recipient signed links to a page whose one button records.

GET shows the choice and a button; only the POST counts (mail scanners prefetch
links). One vote per subscriber and comparison, changeable: a second vote
replaces the first. Votes feed Community % on the next issue and the web pages.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from sqlalchemy import Engine
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, select

from newsletter.config import Settings
from newsletter.content.models import Comparison, ComparisonTool, Tool, Vote
from newsletter.db import session_scope, utcnow
from newsletter.templating import render
from newsletter.subscribers.models import SubscriberStatus
from newsletter.subscribers.service import link_holder
from newsletter.tokens import InvalidToken, Purpose, read_token

CHOICES = "abcd"
PUBLIC_VOTE_TOKEN = "web"  # what the public web view puts where a reader's own token would be


def resolve_choice(session: Session, slug: str, choice: str) -> tuple[Comparison, Tool | None] | None:
    """The comparison and the tool a choice code names (None for "pass"), or None if invalid."""
    comparison = session.exec(select(Comparison).where(Comparison.slug == slug)).first()
    if comparison is None:
        return None
    if choice == "pass":
        return comparison, None
    if len(choice) != 1 or choice not in CHOICES:
        return None
    tool = session.exec(
        select(Tool).join(ComparisonTool, ComparisonTool.tool_id == Tool.id)
        .where(ComparisonTool.comparison_id == comparison.id, ComparisonTool.position == CHOICES.index(choice))
    ).first()
    return (comparison, tool) if tool else None


def record_vote(session: Session, comparison_id: int, subscriber_id: int, tool_id: int | None) -> None:
    """Insert or change the subscriber's vote in one statement (safe against double clicks)."""
    dialect = session.get_bind().dialect.name
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(Vote.__table__)
    now = utcnow()
    statement = insert.values(comparison_id=comparison_id, subscriber_id=subscriber_id, tool_id=tool_id,
                              created_at=now, updated_at=now)
    session.execute(statement.on_conflict_do_update(
        index_elements=["comparison_id", "subscriber_id"],
        set_={"tool_id": statement.excluded.tool_id, "updated_at": statement.excluded.updated_at},
    ))


def make_router(settings: Settings, engine: Engine, secret: str) -> APIRouter:
    router = APIRouter()
    site = settings.site

    def page(status: int, heading: str, paragraphs: list[str], **extra) -> HTMLResponse:
        html = render("web/message.html", {"site": site, "title": heading, "heading": heading,
                                            "paragraphs": paragraphs, **extra})
        return HTMLResponse(html, status_code=status)

    def invalid() -> HTMLResponse:
        return page(400, "This vote link does not work",
                    ["It may be mistyped or too old. Vote links in our mails are personal and last 60 days."])

    def label(comparison: Comparison, tool: Tool | None) -> str:
        return f"Ship {tool.name}" if tool else f"Pass on both tools in {comparison.title}"

    def lookup(session: Session, token: str, slug: str, choice: str):
        try:
            subject = read_token(secret, Purpose.vote, token)
        except InvalidToken:
            return None
        subscriber = link_holder(session, subject)
        if subscriber is None or subscriber.status != SubscriberStatus.active.value:
            return None
        resolved = resolve_choice(session, slug, choice)
        return (subscriber, *resolved) if resolved else None

    @router.get("/vote/{token}/{slug}/{choice}", response_class=HTMLResponse)
    def vote_page(token: str, slug: str, choice: str) -> HTMLResponse:
        if token == PUBLIC_VOTE_TOKEN:
            return page(200, "Votes come from subscribers", ["Each issue carries personal vote buttons. "
                                                             "Subscribe and vote from your next issue."],
                        links=[("Subscribe", f"{site.base_url}/"),
                               ("See the full comparison", f"{site.base_url}/compare/{slug}")])
        with session_scope(engine) as session:
            found = lookup(session, token, slug, choice)
            if found is None:
                return invalid()
            _subscriber, comparison, tool = found
            return page(200, comparison.title, ["Press the button to record your vote. You can change it later "
                                                 "by voting again."],
                        action=f"{site.base_url}/vote/{token}/{slug}/{choice}",
                        button=f"Record my vote: {label(comparison, tool)}")

    @router.post("/vote/{token}/{slug}/{choice}", response_class=HTMLResponse)
    def vote_post(token: str, slug: str, choice: str) -> HTMLResponse:
        with session_scope(engine) as session:
            found = lookup(session, token, slug, choice)
            if found is None:
                return invalid()
            subscriber, comparison, tool = found
            record_vote(session, comparison.id, subscriber.id, tool.id if tool else None)
            title, chosen = comparison.title, label(comparison, tool)
        return page(200, "Thanks, your vote counts", [f"{title}: {chosen}.",
                                                      "The community figures in the next issue include it."],
                    links=[("See the full comparison", f"{site.base_url}/compare/{slug}")])

    return router
