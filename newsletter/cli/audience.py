"""`newsletter subscribers …` and `newsletter bounces …`: the audience and what bounces say about it."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer

from newsletter.cli.common import bounces_app, console, err, state, subscribers_app
from newsletter.text import counted

@subscribers_app.command("export")
def subscribers_export(
    fmt: Annotated[str, typer.Option("--format", help="csv or json.")] = "csv",
    output: Annotated[Optional[Path], typer.Option("--output", help="Write to this file (default: stdout).")] = None,
) -> None:
    """Write every subscriber (email, name, status, topics, created/confirmed/unsubscribed dates).

    CSV cells that a spreadsheet would run as a formula (= + - @ tab CR) start with a quote."""
    from newsletter.files import write_atomic
    from newsletter.subscribers.exporting import export_chunks

    chunks = export_chunks(state.engine(), fmt)  # streamed: a page of readers at a time, flat memory
    if output is None:
        for chunk in chunks:
            sys.stdout.write(chunk)
    else:
        write_atomic(output, chunks)


IMPORT_LIMIT = 128 * 1024 * 1024  # the operator's own file: about two million rows


@contextmanager
def import_progress(total: int) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr (rich) while an import runs; nothing when stderr is not a terminal."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("importing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=err, disable=not err.is_terminal) as bar:
        task = bar.add_task("import", total=max(total, 0))
        yield lambda done: bar.update(task, completed=done)


@subscribers_app.command("import")
def subscribers_import(
    file: Annotated[Path, typer.Argument(help="CSV with an email column and optionally name, topics (split by ';' "
                                              "or '|'), status, created_at, confirmed_at, unsubscribed_at.")],
    status: Annotated[str, typer.Option(help="Status of rows without a status column (consent source 'import').")] = "active",
    skip_bad_rows: Annotated[bool, typer.Option("--skip-bad-rows", help="Import the good rows and list each bad line "
                                                "(default: one bad row imports nothing).")] = False,
    source: Annotated[Optional[str], typer.Option("--from", help="Another platform's export: auto, mailchimp, "
                                                  "substack, buttondown, ghost, listmonk, newsletter or csv "
                                                  "(columns mapped, join dates and opt-in evidence kept).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would change, write nothing.")]
    = False,
) -> None:
    """Import subscribers who already agreed elsewhere; suppressed addresses stay suppressed and
    nobody who unsubscribed is re-subscribed. Topics must be categories of the publication."""
    from newsletter.content.categories import publication_categories
    from newsletter.db import session_scope
    from newsletter.files import read_limited, read_text_limited
    from newsletter.subscribers.importing import import_csv

    engine = state.engine()
    with session_scope(engine) as session:
        categories = publication_categories(session)
    if source is not None or dry_run:
        counts = _import_from(engine, read_limited(file, limit=64 * 1024 * 1024), categories, source or "auto",
                              dry_run, skip_bad_rows)
        if not dry_run:
            _audit_import(engine, file, counts)
        return
    data = read_text_limited(file, limit=IMPORT_LIMIT, encoding="utf-8-sig")
    with import_progress(data.count("\n") - 1) as progress:
        result = import_csv(engine, data, status, categories=categories, skip_bad_rows=skip_bad_rows,
                            progress=progress)
    _audit_import(engine, file, {"new": result.created, "updated": result.updated, "unchanged": result.unchanged,
                                 "skipped": len(result.skipped), "bad_rows": len(result.bad_rows)})
    console.print(f"{result.created} new, {result.updated} updated, {result.unchanged} unchanged, "
                  f"{len(result.skipped)} skipped, "
                  f"{counted(len(result.bad_rows), 'bad row')} left out", markup=False)
    # One print, unhighlighted: a million-row file's thousands of skipped and bad lines, a call
    # and a highlighting pass each, took a second of CPU.
    listed = [f"  skipped {line}" for line in result.skipped] + \
        [f"  bad row, not imported: {line}" for line in result.bad_rows]
    if listed:
        console.print("\n".join(listed), markup=False, highlight=False)


def _audit_import(engine, file: Path, figures: dict[str, int]) -> None:
    """The import's audit entry (the console's imports have theirs): after its one transaction
    committed, so it names what the import did."""
    from newsletter.db import session_scope
    from newsletter.editors import audit

    with session_scope(engine) as session:
        audit.record(session, audit.Actor.cli(), "readers.import", f"file:{file.name}", after=figures)


def _import_from(engine, data: bytes, categories: list[str], source: str, dry_run: bool, skip_bad_rows: bool
                 ) -> dict[str, int]:
    """`subscribers import --from`: the console's mapped import (newsletter/subscribers/mapping.py), in this process."""
    from newsletter.subscribers.import_runner import import_now

    with import_progress(data.count(b"\n") - 1) as progress:
        tally = import_now(engine, data, categories, platform=source, dry_run=dry_run, skip_bad_rows=skip_bad_rows,
                           progress=lambda done, _lines: progress(done))
    verb = "would be " if dry_run else ""
    console.print(", ".join(f"{count} {verb}{name}" for name, count in tally.counts.items()), markup=False)
    for note in tally.notes:
        console.print(f"  refused {note}", markup=False)
    return dict(tally.counts)


@subscribers_app.command("forget")
def subscribers_forget(email: Annotated[str, typer.Argument(help="The address to erase.")]) -> None:
    """Erase a person's data (subscriber, topics, consent events, deliveries, votes, mails); keep
    only a hashed suppression so the address is never mailed again."""
    from newsletter.db import session_scope
    from newsletter.editors.audit import Actor
    from newsletter.editors.reader_actions import forget_address

    with session_scope(state.engine()) as session:
        result = forget_address(session, email, Actor.cli())  # with its audit entry
    console.print(f"forgot {result.email}; erased:", markup=False)
    for line in result.lines():
        console.print(f"  {line}", markup=False)
    console.print("kept: a suppression with the address's SHA-256 only, so it is never mailed again", markup=False)


@subscribers_app.command("purge-unconfirmed")
def subscribers_purge_unconfirmed() -> None:
    """Erase signups never confirmed whose confirmation has expired (the scheduler and serve also do this
    hourly); only the address's hash and recent confirmation times stay, for the abuse limits."""
    from newsletter.subscribers.purge import purge_unconfirmed

    report = purge_unconfirmed(state.engine(), state.settings)
    console.print(f"purged {report.purged} unconfirmed signups; kept {report.traces_kept} hashed "
                  f"confirmation times, dropped {report.traces_dropped} older ones", markup=False)


@bounces_app.command("process")
def bounces_process(path: Annotated[Path, typer.Argument(help="A maildir (folder with cur/ and new/) or an mbox file.")]) -> None:
    """Apply the bounces in a mailbox (RFC 3464 reports and the formats flufl.bounce reads); the mailbox is not changed."""
    from newsletter.feedback.bounces import process_mailbox
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
