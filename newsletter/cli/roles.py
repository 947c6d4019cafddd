"""The long-running roles (serve, worker, scheduler, run) and the stats report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from newsletter.cli.common import app, console, err, state
from newsletter.errors import UserError

@app.command("stats")
def stats_command(
    issue_id: Annotated[Optional[int], typer.Argument(help="One issue (default: the last issues, as a trend).")] = None,
    last: Annotated[int, typer.Option(help="How many recent issues the trend shows.")] = 12,
    html_file: Annotated[Optional[Path], typer.Option("--html", help="Also write an HTML report with charts.")] = None,
    votes: Annotated[bool, typer.Option("--votes", help="The vote digest per comparison instead (of ISSUE_ID's "
                                                         "comparisons, or the newest --last).")] = False,
) -> None:
    """Per issue: recipients, sent, delivered, bounced, complained, unsubscribed, votes."""
    from newsletter.reports.stats import COLUMNS, delivery_note, html_report, issue_stats

    if votes:
        _print_votes(issue_id, last)
        return

    rows = issue_stats(state.engine(), limit=last, issue_id=issue_id)
    if issue_id is not None and not rows:
        raise UserError(f"issue {issue_id} does not exist or has not been sent")
    tracking = state.settings.tracking
    columns = COLUMNS + (["opens"] if tracking.opens else []) + (["clicks"] if tracking.clicks else [])
    from rich import box
    from rich.table import Table

    short = {"recipients": "rcpt", "delivered": "deliv", "bounced": "bounce", "complained": "compl",
             "unsubscribed": "unsub"}
    # One space between columns (the box draws it): the figures fit 80 columns with their headers whole.
    table = Table(title="Issues, oldest first (bounce % and complaint % of sent)", box=box.SIMPLE_HEAD,
                  pad_edge=False, padding=0, show_edge=False)
    for name in ("issue", "week", *[short.get(c, c) for c in columns], "bounce%", "compl%"):
        table.add_column(name, no_wrap=True, justify="left" if name == "week" else "right")
    for row in rows:
        table.add_row(str(row.id), row.week, *[str(getattr(row, c)) for c in columns],
                      row.rate("bounced"), row.rate("complained"))
    console.print(table)
    note = delivery_note(state.settings.mail.transport)
    if note and rows:
        console.print(note, style="dim", highlight=False)
    if html_file is not None:
        from newsletter.files import write_atomic

        write_atomic(html_file, html_report(rows, state.settings.site.name))
        console.print(f"report: {html_file}")


def _print_votes(issue_id: int | None, last: int) -> None:
    """Votes per tool, Community %, Panel ship %, the gap and this week's change, as in the console."""
    from rich import box
    from rich.table import Table

    from newsletter.content.scores import format_percent
    from newsletter.reports.votes import vote_digest

    rows = vote_digest(state.engine(), limit=None if issue_id is not None else last, issue_id=issue_id)
    table = Table(title="Votes per tool (gap = community - panel; change = this week's move, in points)",
                  box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for name in ("comparison", "tool", "votes", "community", "panel", "gap", "week", "change"):
        table.add_column(name, justify="left" if name in ("comparison", "tool") else "right")
    for row in rows:
        for n, tool in enumerate(row.tools):
            table.add_row(row.slug if n == 0 else "", tool.slug, str(tool.votes), format_percent(tool.community),
                          format_percent(tool.panel), "—" if tool.gap is None else f"{tool.gap:+d}",
                          str(tool.votes_this_week), "—" if tool.change is None else f"{tool.change:+d}")
    console.print(table)


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
    from newsletter.web.app import link_warning

    if (warning := link_warning(state.settings, port)) is not None:
        err.print(warning, style="yellow", markup=False, highlight=False)
    run_processes(state.engine(), state.settings, web=True, scheduler=True, worker=True,
                  host=host, port=port, echo=console.print)


@app.command("worker")
def worker(
    until_idle: Annotated[bool, typer.Option(
        "--until-idle", help="Stop when no work is left: nothing queued, held by another worker or due for a retry.")] = False,
    processes: Annotated[int, typer.Option("--processes", "-p", min=1, max=64, help="Worker processes (PostgreSQL; SQLite always runs 1).")] = 1,
) -> None:
    """Deliver every issue that is sending; SIGTERM/SIGINT finish the batch, then exit (docs/operations.md)."""
    from newsletter.delivery.pool import run_workers

    state.engine()  # refuses to start on a database that is not migrated
    result = run_workers(state.settings, processes, until_idle=until_idle, echo=console.print)
    if not result.ok:
        raise typer.Exit(1)


@app.command("serve")
def serve(
    host: Annotated[Optional[str], typer.Option(help="Address to listen on (default: \\[web] host).")] = None,
    port: Annotated[Optional[int], typer.Option(help="Port (default: \\[web] port).")] = None,
    no_sender: Annotated[bool, typer.Option("--no-sender", help="Leave confirmation mails to `newsletter worker`.")] = False,
) -> None:
    """Run the web app: signup, confirmation, unsubscribe, preferences, issue web view."""
    import uvicorn

    from newsletter.web.app import create_app, link_warning, server_options, settle_heap

    settings = state.settings
    engine = state.engine()
    if (warning := link_warning(settings, port)) is not None:
        err.print(warning, style="yellow", markup=False, highlight=False)
    # PostgreSQL: confirmations leave from a child process at [delivery] nice, not a thread that
    # shares the GIL with the requests (issue 18); SQLite keeps its one writer in this process.
    app_ = create_app(settings, engine=engine, with_sender=not no_sender,
                      sender_process=engine.dialect.name == "postgresql")
    settle_heap()
    uvicorn.run(app_, **server_options(settings, host, port))
