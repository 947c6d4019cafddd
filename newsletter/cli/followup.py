"""`newsletter followup …`: tell the readers of a verdict that it changed materially.

Fixed interfaces (other tools parse them): `followup create SLUG` prints the new follow-up's id
alone on its last line; `followup send ID --yes` sends without asking. Everything goes through
newsletter.workflow.followups, as the console does, so it is in the audit log as `cli`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from newsletter.cli.common import app, console, group, state
from newsletter.errors import UserError
from newsletter.text import counted

followup_app = group(help="Follow-ups: mail the readers of a verdict that changed materially.")
app.add_typer(followup_app, name="followup")


@followup_app.command("create")
def followup_create(
    slug: Annotated[str, typer.Argument(help="Comparison slug.")],
    subject: Annotated[Optional[str], typer.Option(help="Subject line (default: \"Verdict update: TITLE\").")] = None,
    note: Annotated[str, typer.Option(help="Editor's note (Markdown: emphasis, http(s)/mailto links).")] = "",
    note_file: Annotated[Optional[Path], typer.Option("--note-file", help="Editor's note from a file (Markdown).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Draft it even though nothing changed materially.")] = False,
) -> None:
    """Draft a follow-up for comparison SLUG: what changed since the readers were sent it. Refuses
    when nothing changed materially, unless --force. Prints the new id alone on the last line."""
    from newsletter.editors.audit import Actor
    from newsletter.workflow.followups import create

    if note_file is not None:
        from newsletter.files import MiB, read_text_limited

        note = read_text_limited(note_file, MiB, label="--note-file")
    info = create(state.engine(), state.settings, Actor.cli(), slug, subject, note, force)
    console.print(f"drafted follow-up {info.id} for {info.slug} (sent in issue {info.week}): {info.subject}",
                  markup=False, highlight=False)
    for change in info.changes:
        console.print(f"  {change['tool']}: {'; '.join(change['reasons'])}", markup=False, highlight=False)
    if info.forced:
        console.print("  nothing changed materially (--force)")
    console.print(f"{info.recipients} readers would get it now; preview with `newsletter followup preview "
                  f"{info.id}`, send with `newsletter followup send {info.id}`", markup=False, highlight=False)
    console.print(str(info.id), markup=False, highlight=False)  # alone on the last line: a fixed interface


@followup_app.command("preview")
def followup_preview(
    followup_id: Annotated[int, typer.Argument(help="Follow-up id (see `followup list`).")],
    html: Annotated[bool, typer.Option("--html", help="Print the HTML part instead of the text part.")] = False,
    out: Annotated[Optional[Path], typer.Option("--out", help="Write followup-ID.html, .txt and .eml into this folder instead.")] = None,
) -> None:
    """Print what a reader gets (the text part, or the HTML with --html), or write the files."""
    from newsletter.workflow.followups import preview

    html_part, text, data = preview(state.engine(), state.settings, followup_id)
    if out is None:
        sys.stdout.write(html_part if html else text)
        return
    from newsletter.files import ensure_folder, write_atomic

    ensure_folder(out)
    stem = out / f"followup-{followup_id}"
    for path in (write_atomic(stem.with_suffix(".html"), html_part), write_atomic(stem.with_suffix(".txt"), text),
                 write_atomic(stem.with_suffix(".eml"), data)):
        console.print(str(path), markup=False, highlight=False)


@followup_app.command("list")
def followup_list() -> None:
    """Every follow-up, newest first, with its deliveries."""
    from rich import box
    from rich.table import Table

    from newsletter.workflow.followups import list_followups

    # The slug never folds (a cut slug is useless); the subject takes what is left, as `issue list`.
    table = Table(title="Follow-ups, newest first", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    table.add_column("id", no_wrap=True)
    table.add_column("comparison", no_wrap=True)
    for name in ("state", "readers", "sent", "pending", "failed"):
        table.add_column(name, overflow="fold", min_width=len(name))
    table.add_column("subject", ratio=1, overflow="fold", min_width=12)
    for info in list_followups(state.engine()):
        table.add_row(str(info.id), info.slug, info.state, str(info.recipients), str(info.counts.get("sent", 0)),
                      str(info.pending), str(info.counts.get("failed", 0)), info.subject)
    console.print(table)


@followup_app.command("status")
def followup_status(followup_id: Annotated[int, typer.Argument(help="Follow-up id.")]) -> None:
    """A follow-up's deliveries by state."""
    from newsletter.workflow.followups import detail

    info = detail(state.engine(), followup_id)
    console.print(f"follow-up {info.id} ({info.slug}): {info.state}", markup=False, highlight=False)
    for name in ("queued", "sending", "retry", "sent", "failed", "skipped"):
        console.print(f"  {name:8} {info.counts.get(name, 0)}")


@followup_app.command("send")
def followup_send(
    followup_id: Annotated[int, typer.Argument(help="Follow-up id (see `followup list`).")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Send without asking.")] = False,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Also deliver in this process until done.")] = False,
) -> None:
    """Send to the readers the ledger says were sent the comparison and who are still active, once
    each. Without --yes it asks, stating the count (and refuses when no one can answer)."""
    from newsletter.editors.audit import Actor
    from newsletter.workflow.followups import detail, send

    engine = state.engine()
    info = detail(engine, followup_id)
    if not info.draft:
        raise UserError(f"follow-up {followup_id} is {info.state}: only a draft can be sent, and nobody gets a "
                        "follow-up twice")
    if not yes:
        if not sys.stdin.isatty():
            raise UserError(f"follow-up {followup_id} would go to {info.recipients} readers; add --yes to send "
                            "without asking")
        if not typer.confirm(f"Send follow-up {followup_id} to {info.recipients} readers now?"):
            raise typer.Exit(1)
    enqueued = send(engine, Actor.cli(), followup_id)
    console.print(f"follow-up {followup_id}: sending to {enqueued} readers")
    if not wait:
        console.print("deliver with `newsletter worker --until-idle` (or pass --wait)")
        return
    from newsletter.delivery.followup_sender import deliver_all
    from newsletter.delivery.transports import make_transport
    from newsletter.secret_key import load_secret_key

    transport = make_transport(state.settings)
    try:
        report = deliver_all(engine, state.settings, transport, load_secret_key(state.settings))
    finally:
        transport.close()
    console.print(f"follow-up {followup_id}: {report.sent} sent, {report.retry} to retry, {report.failed} failed, "
                  f"{report.skipped} skipped")


@followup_app.command("cancel")
def followup_cancel(followup_id: Annotated[int, typer.Argument(help="Follow-up id.")]) -> None:
    """Nobody else gets it: its queued deliveries become skipped."""
    from newsletter.editors.audit import Actor
    from newsletter.workflow.followups import cancel

    skipped = cancel(state.engine(), Actor.cli(), followup_id)
    console.print(f"follow-up {followup_id}: cancelled, {counted(skipped, 'delivery', 'deliveries')} skipped")
