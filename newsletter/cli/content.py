"""`newsletter content history | checked | pull`: a comparison's revisions, marking its facts
checked, and pulling comparisons from [content] feed_url (`content import` is in data.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Optional

import typer

from newsletter.cli.common import console, content_app, state
from newsletter.errors import UserError


def _comparison_id(session, slug: str) -> int:
    from newsletter.content import publishing

    comparison = publishing.find(session, slug)
    if comparison is None:
        raise UserError(f"there is no comparison {slug!r} (its slug, as in the import file)")
    assert comparison.id is not None
    return comparison.id


def _say(line: str) -> None:
    console.print(line, markup=False, highlight=False)


@content_app.command("history")
def content_history(
        slug: Annotated[str, typer.Argument(help="The comparison's slug.")],
        limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=10000, help="Newest N revisions.")] = 50,
) -> None:
    """A comparison's revisions, newest first: when, from where (import, console, api, pull,
    cli), by whom, and what changed ("Review Ada/thesis on GroqCloud: verdict pass → ship")."""
    from newsletter.content import revisions
    from newsletter.db import session_scope

    zone = state.settings.site.zone
    with session_scope(state.engine()) as session:
        found = revisions.entries(session, _comparison_id(session, slug), limit=limit)
    if not found:
        _say(f"{slug}: no revisions yet")
    for entry in found:
        when = entry.created_at.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")
        _say(f"#{entry.number}  {when}  {entry.source}  by {entry.actor}")
        for line in entry.changes:
            _say(f"    {line}")


@content_app.command("checked")
def content_checked(
        slug: Annotated[str, typer.Argument(help="The comparison's slug.")],
        at: Annotated[Optional[datetime], typer.Option("--at", formats=["%Y-%m-%d"],
                                                       help="The day they were checked (default: now).")] = None,
) -> None:
    """Mark a comparison's facts checked (what the stale-verdict pre-send check reads)."""
    from newsletter.content import publishing
    from newsletter.content.revisions import Origin
    from newsletter.db import session_scope

    when = at.replace(tzinfo=state.settings.site.zone) if at else None
    if when is not None and when > datetime.now(state.settings.site.zone):  # it would pass the check for years
        raise UserError(f"--at: {at:%Y-%m-%d} is in the future; give the day the facts were checked")
    with session_scope(state.engine()) as session:
        comparison = publishing.mark_checked(session, slug, Origin.command_line(), when)
        checked = comparison.checked_at
    _say(f"{slug}: checked {checked.astimezone(state.settings.site.zone):%Y-%m-%d %H:%M %Z}")


@content_app.command("pull")
def content_pull(
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would change; write nothing.")] = False,
        url: Annotated[str, typer.Option("--url", help="Another feed than \\[content] feed_url.")] = "",
) -> None:
    """Fetch the JSON feed at \\[content] feed_url (conditional GET), validate it whole and upsert
    its comparisons by slug, each change a revision with source "pull" (docs/content-format.md)."""
    from newsletter.content.pull import pull
    from newsletter.content.revisions import Origin

    result = pull(state.engine(), url or state.settings.content.feed_url, Origin.command_line("pull"), dry_run)
    if result.not_modified:
        _say(f"{result.url}: not modified since the last pull; nothing to do")
        return
    for slug, lines in result.changes.items():
        _say(slug)
        for line in lines:
            _say(f"    {line}")
    verb = "would be" if dry_run else "were"
    _say(f"{result.url}: {result.created} new, {result.updated} updated, {result.unchanged} unchanged"
         + (f" (dry run: nothing written; {result.created + result.updated} {verb} changed)" if dry_run else ""))
