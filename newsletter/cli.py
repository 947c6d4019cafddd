"""`newsletter`: the command line for operators and editors."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from newsletter.config import Settings, load_settings
from newsletter.db import get_engine, session_scope
from newsletter.errors import UserError

# soft_wrap: messages keep their lines (paths, URLs) instead of being cut at the terminal width.
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

app = typer.Typer(help="Weekly Verdicts: a self-hosted weekly newsletter pipeline.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)
content_app = typer.Typer(help="Comparisons: import from JSON or TOML files.", no_args_is_help=True)
issue_app = typer.Typer(help="Issues: draft, list, preview and send.", no_args_is_help=True)
subscribers_app = typer.Typer(help="Subscribers: import, export, forget, purge-unconfirmed.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(content_app, name="content")
app.add_typer(issue_app, name="issue")
app.add_typer(subscribers_app, name="subscribers")
bounces_app = typer.Typer(help="Bounce mailbox: bounce reports, attributed by VERP or Message-ID (docs/webhooks.md).",
                          no_args_is_help=True)
app.add_typer(bounces_app, name="bounces")


@dataclass
class State:
    config: Path | None = None
    _settings: Settings | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config)
        return self._settings

    def engine(self, migrated: bool = True) -> Engine:
        engine = get_engine(self.settings.database.url)
        if migrated:
            from newsletter.migrate import is_current

            if not is_current(engine):
                raise UserError(
                    f"the database ({engine.url.render_as_string(hide_password=True)}) is not at the "
                    "current schema: run `newsletter db upgrade`"
                )
        return engine


state = State()
IGNORE_CHECKS_HELP = "Go ahead even if pre-send checks fail (`issue check` lists them)."


@app.callback()
def _root(
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="Config file (default: NEWSLETTER_CONFIG, ./config.toml, or the embedded defaults).")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress to stderr.")] = False,
) -> None:
    state.config = config
    state._settings = None
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


# --- db -----------------------------------------------------------------------------------------

@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Create or migrate the database schema to the latest revision."""
    from newsletter.migrate import current_revision, upgrade

    engine = state.engine(migrated=False)
    upgrade(engine, revision)
    console.print(f"database at revision {current_revision(engine)}")


@db_app.command("current")
def db_current() -> None:
    """Show the schema revision of the database."""
    from newsletter.migrate import current_revision, head_revision

    engine = state.engine(migrated=False)
    console.print(f"current: {current_revision(engine) or '(empty)'}  latest: {head_revision(engine)}")


# --- content ------------------------------------------------------------------------------------

@content_app.command("import")
def content_import(files: Annotated[list[Path], typer.Argument(help="JSON or TOML files (docs/content-format.md).")]) -> None:
    """Import comparisons; a comparison with a known slug is updated, never duplicated."""
    from newsletter.content.importer import import_files

    for result in import_files(state.engine(), files):
        console.print(f"{result.path}: {result.created} new, {result.updated} updated")


# --- issues -------------------------------------------------------------------------------------

@issue_app.command("draft")
def issue_draft(week: Annotated[Optional[str], typer.Option(help="ISO week YYYY-Www (default: this week in the site's time zone).")] = None) -> None:
    """Draft the week's issue from the selection rule (or show the existing one)."""
    from newsletter.issues.drafting import draft_issue
    from newsletter.weeks import current_week, parse_week

    settings = state.settings
    week = week or current_week(settings.site.zone)
    parse_week(week)
    result = draft_issue(state.engine(), settings, week)
    verb = "drafted" if result.created else "exists:"
    console.print(f"{verb} issue {result.issue.id} for {result.issue.week} ({result.issue.state}): {result.issue.subject}")


@issue_app.command("list")
def issue_list() -> None:
    """All issues, newest first; scheduled times in the site's time zone."""
    from datetime import timedelta

    from newsletter.issues.listing import list_issues

    settings = state.settings
    zone = settings.site.zone
    from rich import box

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
    from newsletter.db import utcnow
    from newsletter.delivery.outbox import count_eligible
    from newsletter.delivery.sender import start_send

    from newsletter.issues.editing import EDITABLE
    from newsletter.issues.models import Issue

    engine = state.engine()
    with session_scope(engine) as session:
        issue = session.get(Issue, issue_id)
        recipients = count_eligible(session, issue_id, utcnow()) if issue and issue.state in EDITABLE else 0
    if issue is not None and issue.state in EDITABLE:
        _pre_send_checks(engine, issue_id, None, ignore_checks)
    limit = state.settings.schedule.confirm_over
    if recipients > limit and not yes:
        if not sys.stdin.isatty():
            raise UserError(f"issue {issue_id} would go to {recipients} subscribers (more than "
                            f"[schedule] confirm_over = {limit}); add --yes to send without asking")
        if not typer.confirm(f"Send issue {issue_id} to {recipients} subscribers now?"):
            raise typer.Exit(1)
    result = start_send(engine, issue_id)
    if result.started:
        console.print(f"issue {issue_id}: sending to {result.enqueued} subscribers")
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
    """Pause a sending issue: workers stop at their next batch; deliveries stay queued."""
    from newsletter.delivery.control import pause_issue

    pause_issue(state.engine(), issue_id)
    console.print(f"issue {issue_id}: paused (resume with `newsletter issue resume {issue_id}`)")


@issue_app.command("resume")
def issue_resume(issue_id: Annotated[int, typer.Argument(help="Issue id.")]) -> None:
    """Resume a paused issue: running workers pick its queue up again."""
    from newsletter.delivery.control import resume_issue

    resume_issue(state.engine(), issue_id)
    console.print(f"issue {issue_id}: sending again")


@issue_app.command("cancel")
def issue_cancel(issue_id: Annotated[int, typer.Argument(help="Issue id.")]) -> None:
    """Cancel an issue: nobody else gets it; its queued and retry deliveries become skipped."""
    from newsletter.delivery.control import cancel_issue

    result = cancel_issue(state.engine(), issue_id)
    console.print(f"issue {issue_id}: cancelled, {result.skipped} deliveries skipped")


@issue_app.command("status")
def issue_status(issue_id: Annotated[int, typer.Argument(help="Issue id.")]) -> None:
    """Deliveries of an issue by state."""
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
    from newsletter.issues.editing import describe

    info = describe(state.engine(), state.settings, issue_id)
    console.print(f"issue {info['id']} ({info['week']}): {info['state']}")
    console.print(f"subject:   {info['subject']}")
    console.print(f"preheader: {info['preheader']}")
    if info["scheduled"]:
        console.print(f"scheduled: {info['scheduled']}")
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
) -> None:
    """Change an issue's subject, preheader or editor's note (not once sending started)."""
    from newsletter.issues.editing import edit

    intro = None
    if intro_file is not None:
        from newsletter.files import MiB, read_text_limited

        intro = read_text_limited(intro_file, MiB, label="--intro-file")
    issue = edit(state.engine(), issue_id, subject, preheader, intro)
    console.print(f"issue {issue.id}: {issue.subject}")


@issue_app.command("add")
def issue_add(issue_id: Annotated[int, typer.Argument(help="Issue id.")],
              comparison: Annotated[str, typer.Argument(help="Comparison slug or id.")]) -> None:
    """Append a comparison to an issue."""
    from newsletter.issues.editing import add

    add(state.engine(), issue_id, comparison)
    console.print(f"added {comparison} to issue {issue_id}")


@issue_app.command("remove")
def issue_remove(issue_id: Annotated[int, typer.Argument(help="Issue id.")],
                 comparison: Annotated[str, typer.Argument(help="Comparison slug or id.")]) -> None:
    """Take a comparison out of an issue."""
    from newsletter.issues.editing import remove

    remove(state.engine(), issue_id, comparison)
    console.print(f"removed {comparison} from issue {issue_id}")


@issue_app.command("move")
def issue_move(issue_id: Annotated[int, typer.Argument(help="Issue id.")],
               comparison: Annotated[str, typer.Argument(help="Comparison slug or id.")],
               position: Annotated[int, typer.Argument(help="New position, 1 = first.")]) -> None:
    """Reorder: put a comparison at a position."""
    from newsletter.issues.editing import move

    move(state.engine(), issue_id, comparison, position)
    console.print(f"moved {comparison} to position {position} in issue {issue_id}")


@issue_app.command("schedule")
def issue_schedule(
    issue_id: Annotated[int, typer.Argument(help="Issue id.")],
    at: Annotated[str, typer.Option("--at", help='Local time "YYYY-MM-DD HH:MM".')],
    tz: Annotated[Optional[str], typer.Option("--tz", help="Time zone of --at (default: the schedule's).")] = None,
    ignore_checks: Annotated[bool, typer.Option("--ignore-checks", help=IGNORE_CHECKS_HELP)] = False,
) -> None:
    """Schedule an issue; `newsletter scheduler` (or `run`) sends it then, once. Refuses while a
    pre-send check fails at that time; the scheduler checks again before sending."""
    from newsletter.issues.editing import parse_local, schedule
    from newsletter.schedule import zone_of

    settings = state.settings
    zone = tz or str(zone_of(settings))
    when = parse_local(at, zone)
    _pre_send_checks(state.engine(), issue_id, when, ignore_checks)
    issue = schedule(state.engine(), issue_id, when)
    shown = issue.scheduled_at.astimezone(zone_of(settings)).strftime("%Y-%m-%d %H:%M %Z")
    console.print(f"issue {issue.id} scheduled for {shown} ({issue.scheduled_at:%Y-%m-%d %H:%M} UTC)")


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


def _pre_send_checks(engine: Engine, issue_id: int, when, ignore: bool) -> None:
    """Refuse (ChecksFailed lists why) unless --ignore-checks; overridden failures are still shown."""
    from newsletter.issues.checks import FAIL, enforce, run_checks

    if not ignore:
        enforce(engine, state.settings, issue_id, when)
        return
    failing = [result for result in run_checks(engine, state.settings, issue_id, when) if result.level == FAIL]
    if failing:
        err.print(f"--ignore-checks: going ahead although {len(failing)} check(s) fail:", markup=False)
        _print_checks(failing)


@issue_app.command("unschedule")
def issue_unschedule(issue_id: Annotated[int, typer.Argument(help="Issue id.")]) -> None:
    """Back to draft."""
    from newsletter.issues.editing import unschedule

    unschedule(state.engine(), issue_id)
    console.print(f"issue {issue_id} is a draft again")


@issue_app.command("test")
def issue_test(
    issue_id: Annotated[int, typer.Argument(help="Issue id.")],
    to: Annotated[list[str], typer.Option("--to", help="Address(es) to send the test to: repeat --to, or separate with commas.")],
) -> None:
    """Send the issue to these addresses only, subject marked [TEST]; not counted as a send."""
    from newsletter.delivery.testsend import send_test
    from newsletter.secret_key import load_secret_key

    settings = state.settings
    results = send_test(state.engine(), settings, load_secret_key(settings), issue_id, to)
    for address, outcome in results:
        console.print(f"{address}: {outcome}")
    if any(outcome != "sent" for _address, outcome in results):
        raise typer.Exit(1)


@app.command("stats")
def stats_command(
    issue_id: Annotated[Optional[int], typer.Argument(help="One issue (default: the last issues, as a trend).")] = None,
    last: Annotated[int, typer.Option(help="How many recent issues the trend shows.")] = 12,
    html_file: Annotated[Optional[Path], typer.Option("--html", help="Also write an HTML report with charts.")] = None,
) -> None:
    """Per issue: recipients, sent, delivered, bounced, complained, unsubscribed, votes."""
    from newsletter.stats import COLUMNS, html_report, issue_stats

    rows = issue_stats(state.engine(), limit=last, issue_id=issue_id)
    if issue_id is not None and not rows:
        raise UserError(f"issue {issue_id} does not exist or has not been sent")
    tracking = state.settings.tracking
    columns = COLUMNS + (["opens"] if tracking.opens else []) + (["clicks"] if tracking.clicks else [])
    from rich import box

    short = {"recipients": "rcpt", "delivered": "deliv", "bounced": "bounce", "complained": "compl",
             "unsubscribed": "unsub"}
    table = Table(title="Issues, oldest first (bounce % and complaint % of sent)", box=box.SIMPLE_HEAD,
                  pad_edge=False, collapse_padding=True)
    for name in ("issue", "week", *[short.get(c, c) for c in columns], "bounce%", "compl%"):
        table.add_column(name, no_wrap=True, justify="left" if name == "week" else "right")
    for row in rows:
        table.add_row(str(row.id), row.week, *[str(getattr(row, c)) for c in columns],
                      row.rate("bounced"), row.rate("complained"))
    console.print(table)
    if html_file is not None:
        from newsletter.files import write_atomic

        write_atomic(html_file, html_report(rows, state.settings.site.name))
        console.print(f"report: {html_file}")


@app.command("scheduler")
def scheduler_command() -> None:
    """Run the weekly scheduler (draft day, dispatch of due issues) until stopped."""
    from newsletter.processes import run_processes

    run_processes(state.engine(), state.settings, web=False, scheduler=True, worker=False, echo=console.print)


@app.command("run")
def run_all(
    host: Annotated[Optional[str], typer.Option(help="Web address (default: \\[web] host).")] = None,
    port: Annotated[Optional[int], typer.Option(help="Web port (default: \\[web] port).")] = None,
) -> None:
    """Web server, scheduler and one worker in one process, for small deployments."""
    from newsletter.processes import run_processes

    run_processes(state.engine(), state.settings, web=True, scheduler=True, worker=True,
                  host=host, port=port, echo=console.print)


@app.command("worker")
def worker(
    until_idle: Annotated[bool, typer.Option(
        "--until-idle", help="Stop when no work is left: nothing queued, held by another worker or due for a retry.")] = False,
    processes: Annotated[int, typer.Option("--processes", "-p", min=1, max=64, help="Worker processes (PostgreSQL; SQLite always runs 1).")] = 1,
) -> None:
    """Deliver every issue that is sending; SIGTERM/SIGINT finish the batch, then exit (docs/operations.md)."""
    from newsletter.delivery.worker import run_workers

    state.engine()  # refuses to start on a database that is not migrated
    result = run_workers(state.settings, processes, until_idle=until_idle, echo=console.print)
    if not result.ok:
        raise typer.Exit(1)


# --- subscribers --------------------------------------------------------------------------------

@subscribers_app.command("export")
def subscribers_export(
    fmt: Annotated[str, typer.Option("--format", help="csv or json.")] = "csv",
    output: Annotated[Optional[Path], typer.Option("--output", help="Write to this file (default: stdout).")] = None,
) -> None:
    """Write every subscriber (email, name, status, topics, created/confirmed/unsubscribed dates).

    CSV cells that a spreadsheet would run as a formula (= + - @ tab CR) start with a quote."""
    from newsletter.files import write_atomic
    from subscribers.service import export

    data = export(state.engine(), fmt)
    if output is None:
        sys.stdout.write(data)
    else:
        write_atomic(output, data)


@subscribers_app.command("import")
def subscribers_import(
    file: Annotated[Path, typer.Argument(help="CSV with an email column and optionally name, topics (split by ';' "
                                              "or '|'), status, created_at, confirmed_at, unsubscribed_at.")],
    status: Annotated[str, typer.Option(help="Status of rows without a status column (consent source 'import').")] = "active",
    skip_bad_rows: Annotated[bool, typer.Option("--skip-bad-rows", help="Import the good rows and list each bad line "
                                                "(default: one bad row imports nothing).")] = False,
) -> None:
    """Import subscribers who already agreed elsewhere; suppressed addresses stay suppressed and
    nobody who unsubscribed is re-subscribed. Topics must be categories of the publication."""
    from newsletter.content.categories import publication_categories
    from subscribers.importing import import_csv

    from newsletter.files import read_text_limited

    data = read_text_limited(file, encoding="utf-8-sig")
    engine = state.engine()
    with session_scope(engine) as session:
        categories = publication_categories(session)
    result = import_csv(engine, data, status, categories=categories, skip_bad_rows=skip_bad_rows)
    console.print(f"{result.created} new, {result.updated} updated, {len(result.skipped)} skipped, "
                  f"{len(result.bad_rows)} bad rows left out", markup=False)
    for line in result.skipped:
        console.print(f"  skipped {line}", markup=False)
    for line in result.bad_rows:
        console.print(f"  bad row, not imported: {line}", markup=False)


@subscribers_app.command("forget")
def subscribers_forget(email: Annotated[str, typer.Argument(help="The address to erase.")]) -> None:
    """Erase a person's data (subscriber, topics, consent events, deliveries, votes, mails); keep
    only a hashed suppression so the address is never mailed again."""
    from subscribers.service import forget

    result = forget(state.engine(), email)
    console.print(f"forgot {result.email}; erased:", markup=False)
    for line in result.lines():
        console.print(f"  {line}", markup=False)
    console.print("kept: a suppression with the address's SHA-256 only, so it is never mailed again", markup=False)


@subscribers_app.command("purge-unconfirmed")
def subscribers_purge_unconfirmed() -> None:
    """Erase signups never confirmed whose confirmation has expired (the scheduler and serve also do this
    hourly); only the address's hash and recent confirmation times stay, for the abuse limits."""
    from subscribers.purge import purge_unconfirmed

    report = purge_unconfirmed(state.engine(), state.settings)
    console.print(f"purged {report.purged} unconfirmed signups; kept {report.traces_kept} hashed "
                  f"confirmation times, dropped {report.traces_dropped} older ones", markup=False)


# --- web ----------------------------------------------------------------------------------------

@app.command("serve")
def serve(
    host: Annotated[Optional[str], typer.Option(help="Address to listen on (default: \\[web] host).")] = None,
    port: Annotated[Optional[int], typer.Option(help="Port (default: \\[web] port).")] = None,
    no_sender: Annotated[bool, typer.Option("--no-sender", help="Leave confirmation mails to `newsletter worker`.")] = False,
) -> None:
    """Run the web app: signup, confirmation, unsubscribe, preferences, issue web view."""
    import uvicorn

    from newsletter.web import create_app

    settings = state.settings
    app_ = create_app(settings, engine=state.engine(), with_sender=not no_sender)
    uvicorn.run(app_, host=host or settings.web.host, port=port or settings.web.port,
                log_level="info", server_header=False,
                proxy_headers=False)  # the app applies [web] trusted_proxy_hops itself


# --- bounces ------------------------------------------------------------------------------------

@bounces_app.command("process")
def bounces_process(path: Annotated[Path, typer.Argument(help="A maildir (folder with cur/ and new/) or an mbox file.")]) -> None:
    """Apply the bounces in a mailbox (RFC 3464 reports and the formats flufl.bounce reads); the mailbox is not changed."""
    from newsletter.bounces import process_mailbox
    from newsletter.secret_key import load_secret_key

    settings = state.settings
    r = process_mailbox(state.engine(), settings, load_secret_key(settings), path)
    console.print(f"{path}: {r.messages} messages, {r.reports} bounce reports, {r.not_dsn} skipped (not a bounce), "
                  f"{r.unreadable} unreadable")
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(r.kinds.items())) or "none"
    console.print(f"recipients: {kinds}; {r.applied} applied ({r.matched} matched to a delivery), "
                  f"{r.duplicates} processed before, {r.not_ours} not ours")
    if r.consequences:
        console.print("consequences: " + ", ".join(f"{k} {n}" for k, n in sorted(r.consequences.items())))


# --- editors and API tokens (the console, docs/console.md and docs/api.md) --------------------------

editors_app = typer.Typer(help="Editors of the console at /admin: add, list, remove, two-factor.", no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens for /api/v1: create (shown once), list, revoke.", no_args_is_help=True)
app.add_typer(editors_app, name="editors")
app.add_typer(tokens_app, name="tokens")


def _editors_call(action):
    """Run `action(session)` in one transaction; the domain's refusals become clear CLI errors."""
    from newsletter.editors.accounts import AccountError
    from newsletter.editors.passwords import WeakPassword
    from newsletter.editors.tokens import TokenError

    try:
        with session_scope(state.engine()) as session:
            return action(session)
    except (AccountError, WeakPassword, TokenError, ValueError) as exc:
        raise UserError(str(exc)) from None


@editors_app.command("add")
def editors_add(
    email: Annotated[str, typer.Argument(help="The editor's email address (their login).")],
    role: Annotated[str, typer.Option("--role", help="owner, editor, reviewer or viewer (docs/console.md).")],
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from standard input instead of printing a set-password link.")] = False,
) -> None:
    """Add an editor; prints a one-time link to set their password (or reads it from stdin)."""
    from newsletter.editors import accounts, audit
    from newsletter.secret_key import load_secret_key

    password = sys.stdin.read().rstrip("\r\n") if password_stdin else None
    editor = _editors_call(lambda session: accounts.add_editor(session, email, role, audit.Actor.cli(), password))
    console.print(f"editor {editor.email} added as {editor.role}")
    if password is None:
        token = accounts.set_password_token(load_secret_key(state.settings), editor)
        hours = state.settings.admin.set_password_hours
        console.print(f"send them this link to set a password (works once, for {hours:g} hours):")
        console.print(f"{state.settings.site.base_url}/admin/set-password/{token}", highlight=False)


@editors_app.command("list")
def editors_list() -> None:
    """Every editor with role and state (invited: no password set yet)."""
    from newsletter.editors import accounts

    table = Table("email", "role", "state", "two-factor", "added")
    for editor in _editors_call(accounts.list_editors):
        status = "removed" if editor.disabled_at else ("invited" if not editor.password_hash else "active")
        table.add_row(editor.email, editor.role, status, "yes" if editor.totp_secret else "no",
                      f"{editor.created_at:%Y-%m-%d}")
    console.print(table)


@editors_app.command("remove")
def editors_remove(email: Annotated[str, typer.Argument(help="The editor's email address.")]) -> None:
    """Remove an editor: they cannot sign in and their sessions end (the audit log keeps their name)."""
    from newsletter.editors import accounts, audit

    editor = _editors_call(lambda session: accounts.remove_editor(session, email, audit.Actor.cli()))
    console.print(f"editor {editor.email} removed; their sessions are ended")


@editors_app.command("totp")
def editors_totp(
    email: Annotated[str, typer.Argument(help="The editor's email address.")],
    off: Annotated[bool, typer.Option("--off", help="Turn the second factor off instead.")] = False,
) -> None:
    """Turn on a TOTP second factor (prints the otpauth:// URI for an authenticator app), or --off."""
    from newsletter.editors import accounts, audit, totp

    def change(session):
        editor = accounts.find(session, email)
        if editor is None or editor.disabled_at is not None:
            raise accounts.AccountError(f"{email} is not an editor")
        if off:
            totp.disable(session, editor, audit.Actor.cli())
            return None
        return totp.enable(session, editor, state.settings.site.name, audit.Actor.cli())

    uri = _editors_call(change)
    console.print("two-factor sign-in is off" if off else "add this to an authenticator app (it is shown once):")
    if uri:
        console.print(uri, highlight=False)


@tokens_app.command("create")
def tokens_create(
    name: Annotated[str, typer.Option("--name", help="What the token is for (unique), e.g. \"cms\".")],
    scope: Annotated[list[str], typer.Option("--scope", help="read (every GET), comparisons (PUT comparisons) or all; repeat or separate with commas.")],
) -> None:
    """Create an API token; the token is printed once, alone on the last line."""
    from newsletter.editors import audit, tokens

    token, raw = _editors_call(lambda session: tokens.create(session, name, scope, audit.Actor.cli()))
    console.print(f"token {token.name!r} with scopes {token.scopes}; store it now, it is not shown again:")
    console.print(raw, highlight=False)


@tokens_app.command("list")
def tokens_list() -> None:
    """Every API token: name, scopes, created, last used (the tokens themselves are not stored)."""
    from newsletter.editors import tokens

    table = Table("name", "scopes", "created", "last used", "state")
    for token in _editors_call(tokens.list_tokens):
        last = f"{token.last_used_at:%Y-%m-%d %H:%M}" if token.last_used_at else "never"
        table.add_row(token.name, token.scopes, f"{token.created_at:%Y-%m-%d}", last,
                      "revoked" if token.revoked_at else "live")
    console.print(table)


@tokens_app.command("revoke")
def tokens_revoke(name: Annotated[str, typer.Argument(help="The token's name (or id).")]) -> None:
    """Revoke an API token: requests with it get 401 from now on."""
    from newsletter.editors import audit, tokens

    token = _editors_call(lambda session: tokens.revoke(session, name, audit.Actor.cli()))
    console.print(f"token {token.name!r} revoked")


# --- demo ---------------------------------------------------------------------------------------

@app.command("demo")
def demo() -> None:
    """Run the weekly pipeline once on the configured store and transport (safe to repeat)."""
    from newsletter.demo import run_demo

    run_demo(state.settings, echo=lambda line: console.print(line, markup=False, highlight=False))


def main() -> None:
    try:
        app()
    except UserError as exc:
        err.print(f"error: {exc}", style="red", markup=False, highlight=False)
        sys.exit(1)
    except OperationalError as exc:
        err.print(f"error: database: {exc.orig}", style="red", markup=False, highlight=False)
        sys.exit(1)
