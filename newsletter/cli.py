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
subscribers_app = typer.Typer(help="Subscribers: import and export.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(content_app, name="content")
app.add_typer(issue_app, name="issue")
app.add_typer(subscribers_app, name="subscribers")
bounces_app = typer.Typer(help="Bounce mailbox: delivery status notifications (docs/webhooks.md).", no_args_is_help=True)
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
    """All issues, newest first."""
    from newsletter.issues.listing import list_issues

    table = Table("id", "week", "subject", "state", "comparisons", "sent", "pending", "failed")
    for row in list_issues(state.engine()):
        table.add_row(str(row.id), row.week, row.subject, row.state, str(row.comparisons),
                      str(row.sent), str(row.pending), str(row.failed))
    console.print(table)


@issue_app.command("send")
def issue_send(
    issue_id: Annotated[int, typer.Argument(help="Issue id (see `issue list`).")],
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Also deliver in this process until done.")] = False,
) -> None:
    """Start sending: enqueue one delivery per eligible subscriber (never twice)."""
    from newsletter.delivery.sender import start_send

    result = start_send(state.engine(), issue_id)
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
) -> None:
    """Write the issue as HTML, plain text and a full .eml, with sample personal links."""
    from newsletter.issues.preview import write_preview

    paths = write_preview(state.engine(), state.settings, issue_id, out)
    for path in paths:
        console.print(str(path))


@app.command("worker")
def worker(
    until_idle: Annotated[bool, typer.Option("--until-idle", help="Stop when nothing is due.")] = False,
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
def subscribers_export(fmt: Annotated[str, typer.Option("--format", help="csv or json.")] = "csv") -> None:
    """Write every subscriber (email, name, status, topics, dates) to stdout."""
    from subscribers.service import export

    sys.stdout.write(export(state.engine(), fmt))


@subscribers_app.command("import")
def subscribers_import(
    file: Annotated[Path, typer.Argument(help="CSV with columns email, name, topics (topics split by ';').")],
    status: Annotated[str, typer.Option(help="Status to give imported addresses (consent source 'import').")] = "active",
) -> None:
    """Import subscribers who already agreed elsewhere; suppressed addresses stay suppressed."""
    from subscribers.service import import_csv

    try:
        data = file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{file}: cannot read ({exc})")
    result = import_csv(state.engine(), data, status)
    console.print(f"{result.created} new, {result.updated} updated, {len(result.skipped)} skipped")
    for line in result.skipped:
        console.print(f"  skipped {line}")


# --- bounces ------------------------------------------------------------------------------------

@bounces_app.command("process")
def bounces_process(path: Annotated[Path, typer.Argument(help="A maildir (folder with cur/ and new/) or an mbox file.")]) -> None:
    """Apply the delivery status notifications (RFC 3464) in a mailbox; the mailbox is not changed."""
    from newsletter.bounces import process_mailbox
    from newsletter.secret_key import load_secret_key

    settings = state.settings
    r = process_mailbox(state.engine(), settings, load_secret_key(settings), path)
    console.print(f"{path}: {r.messages} messages, {r.reports} delivery reports, {r.not_dsn} skipped (not a DSN), "
                  f"{r.unreadable} unreadable")
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(r.kinds.items())) or "none"
    console.print(f"recipients: {kinds}; {r.applied} applied ({r.matched} matched to a delivery), "
                  f"{r.duplicates} processed before, {r.not_ours} not ours")
    if r.consequences:
        console.print("consequences: " + ", ".join(f"{k} {n}" for k, n in sorted(r.consequences.items())))


# --- demo ---------------------------------------------------------------------------------------

@app.command("demo")
def demo() -> None:
    """Run the weekly pipeline once on the configured store and transport (safe to repeat)."""
    from newsletter.demo import run_demo

    run_demo(state.settings, echo=console.print)


def main() -> None:
    try:
        app()
    except UserError as exc:
        err.print(f"error: {exc}", style="red", markup=False, highlight=False)
        sys.exit(1)
    except OperationalError as exc:
        err.print(f"error: database: {exc.orig}", style="red", markup=False, highlight=False)
        sys.exit(1)
