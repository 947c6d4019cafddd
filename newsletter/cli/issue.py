"""`newsletter issue …`: draft, edit, check, schedule, send and follow an issue. Edits, reordering,
unscheduling, pause, resume and cancel go through newsletter.workflow, as the console and the API
do, so they are in the audit log as `cli`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from newsletter.cli.common import console, err, issue_app, state
from newsletter.errors import UserError
from newsletter.text import counted

if TYPE_CHECKING:
    from sqlalchemy import Engine

IGNORE_CHECKS_HELP = "Go ahead even if pre-send checks fail (`issue check` lists them)."


@issue_app.command("draft")
def issue_draft(week: Annotated[Optional[str], typer.Option(help="ISO week YYYY-Www (default: this week in the site's time zone).")] = None) -> None:
    """Draft the week's issue from the selection rule (or show the existing one)."""
    from newsletter.db import session_scope
    from newsletter.editors.audit import Actor
    from newsletter.issues.models import Issue
    from newsletter.weeks import current_week, parse_week
    from newsletter.workflow.editing import create_draft

    settings = state.settings
    week = week or current_week(settings.site.zone)
    parse_week(week)
    issue_id, created = create_draft(state.engine(), settings, Actor.cli(), week)  # audited when made
    with session_scope(state.engine()) as session:
        issue = session.get(Issue, issue_id)
        verb = "drafted" if created else "exists:"
        console.print(f"{verb} issue {issue.id} for {issue.week} ({issue.state}): {issue.subject}")


@issue_app.command("list")
def issue_list() -> None:
    """All issues, newest first; scheduled times in the site's time zone."""
    from datetime import timedelta

    from rich import box
    from rich.table import Table

    from newsletter.reports.listing import list_issues

    settings = state.settings
    zone = settings.site.zone

    # Narrow columns never fold (a week cut to "2026-…" is useless); the subject takes what is left.
    table = Table(title=f"Issues, newest first (times in {settings.site.timezone})", box=box.SIMPLE_HEAD,
                  pad_edge=False, collapse_padding=True)
    for name in ("id", "week"):
        table.add_column(name, no_wrap=True, min_width=len(name))
    table.add_column("subject", ratio=1, overflow="fold", min_width=12)
    for name in ("state", "scheduled", "items", "sent", "pending", "failed"):
        table.add_column(name, overflow="fold", min_width=len(name))
    for row in list_issues(state.engine(), grace=timedelta(minutes=settings.schedule.grace_minutes)):
        scheduled = row.scheduled_at.astimezone(zone).strftime("%Y-%m-%d %H:%M") if row.scheduled_at else ""
        table.add_row(str(row.id), row.week, row.subject, row.state, scheduled, str(row.comparisons),
                      str(row.sent), str(row.pending), str(row.failed))
    console.print(table)


@issue_app.command("send")
def issue_send(
    issue_id: Annotated[int, typer.Argument(help="Issue id (see `issue list`).")],
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Also deliver in this process until done.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask, even above \\[schedule] confirm_over recipients.")] = False,
    ignore_checks: Annotated[bool, typer.Option("--ignore-checks", help=IGNORE_CHECKS_HELP)] = False,
) -> None:
    """Start sending: enqueue one delivery per eligible subscriber (never twice); refuses while a
    pre-send check fails (`issue check`)."""
    from newsletter.db import session_scope, utcnow
    from newsletter.delivery.outbox import count_eligible
    from newsletter.editors.audit import Actor
    from newsletter.issues.editing import EDITABLE
    from newsletter.issues.models import Issue
    from newsletter.workflow.sending import start_checked

    engine = state.engine()
    with session_scope(engine) as session:
        issue = session.get(Issue, issue_id)
        before = issue.state if issue is not None else ""
        editable = before in EDITABLE
        # Counted only to ask: with --yes nobody is asked, and the send starts a count sooner.
        recipients = count_eligible(session, issue_id, utcnow()) if editable and not yes else 0
    overridden = _pre_send_checks(engine, issue_id, None, ignore_checks) if editable else []
    limit = state.settings.schedule.confirm_over
    if recipients > limit and not yes:
        if not sys.stdin.isatty():
            raise UserError(f"issue {issue_id} would go to {recipients} subscribers (more than "
                            f"[schedule] confirm_over = {limit}); add --yes to send without asking")
        if not typer.confirm(f"Send issue {issue_id} to {recipients} subscribers now?"):
            raise typer.Exit(1)
    result = start_checked(engine, state.settings, Actor.cli(), issue_id, before, overridden)  # audited
    if result.started:
        console.print(f"issue {issue_id}: sending to {counted(result.enqueued, 'subscriber')}")
    else:
        console.print(f"issue {issue_id} is already {result.issue.state}: nobody gets it twice")
    if wait:
        _deliver_and_report(issue_id)
    elif result.issue.state != "sent":
        console.print("deliver with `newsletter worker --until-idle` (or pass --wait)")


def _deliver_and_report(issue_id: int) -> None:
    from newsletter.delivery.worker import deliver_in_foreground

    report = deliver_in_foreground(state.engine(), state.settings, issue_id, console)
    console.print(f"issue {issue_id}: {report.sent} sent, {report.retry} to retry, {report.failed} failed, "
                  f"{report.skipped} skipped{' - finished' if report.finished else ''}")
    if report.stopped:
        console.print("stopped: the rest stays queued for `newsletter worker`")
    elif not report.finished and report.counts.get("retry"):
        console.print(f"{report.counts['retry']} to retry later: `newsletter worker` sends them when due")


@issue_app.command("pause")
def issue_pause(issue_id: Annotated[int, typer.Argument(help="Issue id.")]) -> None:
    """Pause a sending issue: workers stop within about a second, mid-batch; deliveries stay queued."""
    from newsletter.editors.audit import Actor
    from newsletter.workflow.sending import control_send

    control_send(state.engine(), Actor.cli(), issue_id, "pause")
    console.print(f"issue {issue_id}: paused (resume with `newsletter issue resume {issue_id}`)")


@issue_app.command("resume")
def issue_resume(issue_id: Annotated[int, typer.Argument(help="Issue id.")]) -> None:
    """Resume a paused issue: running workers pick its queue up again."""
    from newsletter.editors.audit import Actor
    from newsletter.workflow.sending import control_send

    control_send(state.engine(), Actor.cli(), issue_id, "resume")
    console.print(f"issue {issue_id}: sending again")


@issue_app.command("cancel")
def issue_cancel(issue_id: Annotated[int, typer.Argument(help="Issue id.")]) -> None:
    """Cancel an issue: nobody else gets it; its queued and retry deliveries become skipped."""
    from newsletter.editors.audit import Actor
    from newsletter.workflow.sending import control_send

    result = control_send(state.engine(), Actor.cli(), issue_id, "cancel")
    console.print(f"issue {issue_id}: cancelled, {counted(result.skipped, 'delivery', 'deliveries')} skipped")


@issue_app.command("status")
def issue_status(issue_id: Annotated[int, typer.Argument(help="Issue id.")]) -> None:
    """Deliveries of an issue by state."""
    from rich.table import Table

    from newsletter.db import session_scope
    from newsletter.delivery import outbox
    from newsletter.issues.models import Issue

    with session_scope(state.engine()) as session:
        issue = session.get(Issue, issue_id)
        if issue is None:
            raise UserError(f"issue {issue_id} does not exist (see `newsletter issue list`)")
        counts = outbox.counts(session, issue_id)
    table = Table("state", "deliveries", title=f"issue {issue_id} ({issue.week}): {issue.state}")
    for name in ("queued", "sending", "retry", "sent", "failed", "skipped"):
        table.add_row(name, str(counts.get(name, 0)))
    console.print(table)


@issue_app.command("preview")
def issue_preview(
    issue_id: Annotated[int, typer.Argument(help="Issue id.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for issue-ID.html, .txt and .eml.")] = Path("var/preview"),
    screenshots: Annotated[bool, typer.Option("--screenshots", help="Also PNGs at 375 and 640 px, light and dark (needs Debian's chromium).")] = False,
) -> None:
    """Write the issue as HTML, plain text and a full .eml, with sample personal links."""
    from newsletter.issues.preview import write_preview

    paths = write_preview(state.engine(), state.settings, issue_id, out, screenshots=screenshots)
    for path in paths:
        console.print(str(path))


@issue_app.command("show")
def issue_show(issue_id: Annotated[int, typer.Argument(help="Issue id.")]) -> None:
    """An issue's subject, preheader, intro, state, schedule and comparisons in order."""
    from rich.table import Table

    from newsletter.issues.editing import describe

    info = describe(state.engine(), state.settings, issue_id)
    console.print(f"issue {info['id']} ({info['week']}): {info['state']}")
    console.print(f"subject:   {info['subject']}")
    console.print(f"preheader: {info['preheader']}")
    if info.get("subject_follows_reader"):
        console.print("subject: follows each reader's first comparison when their topics leave out the lead")
    if info["scheduled"]:
        console.print(f"scheduled: {info['scheduled']}" + (f" (goes ahead although these checks failed: "
                                                          f"{info['ignoring']})" if info["ignoring"] else ""))
    if info["intro"]:
        console.print(f"intro:     {info['intro']}")
    table = Table("#", "comparison", "category", "published")
    for position, (slug, category, published) in enumerate(info["comparisons"], start=1):
        table.add_row(str(position), slug, category, published)
    console.print(table)


@issue_app.command("edit")
def issue_edit(
    issue_id: Annotated[int, typer.Argument(help="Issue id.")],
    subject: Annotated[Optional[str], typer.Option(help="New subject line.")] = None,
    preheader: Annotated[Optional[str], typer.Option(help="New preheader (the preview text of inboxes).")] = None,
    intro_file: Annotated[Optional[Path], typer.Option("--intro-file", help="Editor's note: a text file, paragraphs split by blank lines.")] = None,
    follow_reader: Annotated[Optional[bool], typer.Option(
        "--subject-follows-reader/--subject-fixed",
        help="Readers whose topics leave out the lead comparison get a subject and preheader from their own "
             "first comparison (docs/content-format.md), or everyone gets this subject.")] = None,
) -> None:
    """Change an issue's subject, preheader, editor's note or subject rule (not once sending started)."""
    from newsletter.editors.audit import Actor
    from newsletter.workflow.editing import detail, update

    intro = None
    if intro_file is not None:
        from newsletter.files import MiB, read_text_limited

        intro = read_text_limited(intro_file, MiB, label="--intro-file")
    update(state.engine(), Actor.cli(), issue_id, subject, preheader, intro, follow_reader)
    console.print(f"issue {issue_id}: {detail(state.engine(), issue_id).subject}")


@issue_app.command("add")
def issue_add(issue_id: Annotated[int, typer.Argument(help="Issue id.")],
              comparison: Annotated[str, typer.Argument(help="Comparison slug or id.")]) -> None:
    """Append a comparison to an issue."""
    from newsletter.editors.audit import Actor
    from newsletter.workflow.editing import add_comparison

    add_comparison(state.engine(), Actor.cli(), issue_id, comparison)
    console.print(f"added {comparison} to issue {issue_id}")


@issue_app.command("remove")
def issue_remove(issue_id: Annotated[int, typer.Argument(help="Issue id.")],
                 comparison: Annotated[str, typer.Argument(help="Comparison slug or id.")]) -> None:
    """Take a comparison out of an issue."""
    from newsletter.editors.audit import Actor
    from newsletter.workflow.editing import remove_comparison

    remove_comparison(state.engine(), Actor.cli(), issue_id, comparison)
    console.print(f"removed {comparison} from issue {issue_id}")


@issue_app.command("move")
def issue_move(issue_id: Annotated[int, typer.Argument(help="Issue id.")],
               comparison: Annotated[str, typer.Argument(help="Comparison slug or id.")],
               position: Annotated[int, typer.Argument(help="New position, 1 = first.")]) -> None:
    """Reorder: put a comparison at a position."""
    from newsletter.editors.audit import Actor
    from newsletter.workflow.editing import move_to

    move_to(state.engine(), Actor.cli(), issue_id, comparison, position)
    console.print(f"moved {comparison} to position {position} in issue {issue_id}")


@issue_app.command("schedule")
def issue_schedule(
    issue_id: Annotated[int, typer.Argument(help="Issue id.")],
    at: Annotated[str, typer.Option("--at", help='Local time "YYYY-MM-DD HH:MM".')],
    tz: Annotated[Optional[str], typer.Option("--tz", help="Time zone of --at (default: the schedule's).")] = None,
    ignore_checks: Annotated[bool, typer.Option("--ignore-checks", help=IGNORE_CHECKS_HELP)] = False,
) -> None:
    """Schedule an issue; `newsletter scheduler` (or `run`) sends it then, once. Refuses while a
    pre-send check fails at that time; the scheduler checks again before sending (letting pass the
    failures --ignore-checks went ahead despite)."""
    from newsletter.editors.audit import Actor
    from newsletter.issues.editing import check_future, parse_local, still_to_send
    from newsletter.schedule import zone_of
    from newsletter.workflow.sending import schedule_checked

    settings = state.settings
    zone = tz or str(zone_of(settings))
    when = parse_local(at, zone)
    check_future(when)
    still_to_send(state.engine(), issue_id, "scheduled")
    overridden = _pre_send_checks(state.engine(), issue_id, when, ignore_checks)
    scheduled_at = schedule_checked(state.engine(), settings, Actor.cli(), issue_id, when, overridden)  # audited
    shown = scheduled_at.astimezone(zone_of(settings)).strftime("%Y-%m-%d %H:%M %Z")
    console.print(f"issue {issue_id} scheduled for {shown} ({scheduled_at:%Y-%m-%d %H:%M} UTC)")
    if overridden:
        err.print(f"note: the scheduler runs the checks again at that time and lets these pass: "
                  f"{', '.join(overridden)}; any other check that fails then holds the issue (it tells "
                  "[schedule] notify)", markup=False)


@issue_app.command("check")
def issue_check(issue_id: Annotated[int, typer.Argument(help="Issue id.")]) -> None:
    """Pre-send checks (size, https, postal address, week, links, DKIM); exit status 1 when one fails."""
    from newsletter.issues.checks import FAIL, run_checks

    results = run_checks(state.engine(), state.settings, issue_id)
    _print_checks(results)
    if any(result.level == FAIL for result in results):
        raise typer.Exit(1)


def _print_checks(results: list) -> None:
    style = {"ok": "green", "warning": "yellow", "fail": "red"}
    for result in results:
        console.print(f"[{style[result.level]}]{result.level:7}[/] {result.name:14} ", end="")
        console.print(result.message, markup=False, highlight=False)


def _pre_send_checks(engine: Engine, issue_id: int, when, ignore: bool) -> list[str]:
    """Refuse (ChecksFailed lists why) unless --ignore-checks; overridden failures are still shown,
    and their names returned (for the audit entry)."""
    from newsletter.issues.checks import FAIL, enforce, run_checks

    if not ignore:
        enforce(engine, state.settings, issue_id, when)
        return []
    failing = [result for result in run_checks(engine, state.settings, issue_id, when) if result.level == FAIL]
    if failing:
        err.print(f"--ignore-checks: going ahead although {len(failing)} check(s) fail:", markup=False)
        _print_checks(failing)
    return [result.name for result in failing]


@issue_app.command("unschedule")
def issue_unschedule(issue_id: Annotated[int, typer.Argument(help="Issue id.")]) -> None:
    """Back to draft."""
    from newsletter.editors.audit import Actor
    from newsletter.workflow.sending import unschedule

    unschedule(state.engine(), Actor.cli(), issue_id)
    console.print(f"issue {issue_id} is a draft again")


@issue_app.command("test")
def issue_test(
    issue_id: Annotated[int, typer.Argument(help="Issue id.")],
    to: Annotated[list[str], typer.Option("--to", help="Address(es) to send the test to: repeat --to, or separate with commas.")],
) -> None:
    """Send the issue to these addresses only, subject marked [TEST]; not counted as a send."""
    from newsletter.editors.audit import Actor
    from newsletter.secret_key import load_secret_key
    from newsletter.workflow.sending import test_send

    settings = state.settings
    results = test_send(state.engine(), settings, load_secret_key(settings), Actor.cli(), issue_id, to, "--to")
    for address, outcome in results:
        console.print(f"{address}: {outcome}")
    if any(outcome != "sent" for _address, outcome in results):
        raise typer.Exit(1)
