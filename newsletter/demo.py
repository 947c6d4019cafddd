"""`newsletter demo`: the whole weekly pipeline once, on whatever the config points at.

Safe to repeat, and on a database in use: migrations are idempotent, only sample comparisons and
readers not there yet are added (an edited comparison is never reverted, a reader who left is
never subscribed again), the week's issue is found instead of drafted again, and the outbox's
unique key means nobody is mailed twice.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import func, select

from newsletter.config import Settings
from newsletter.content.importer import import_files, sample_files
from newsletter.content.revisions import Origin
from newsletter.content.models import Comparison
from newsletter.db import get_engine, session_scope
from newsletter.delivery.sender import deliver, start_send
from newsletter.delivery.transports import make_transport
from newsletter.issues.checks import WARNING, enforce
from newsletter.issues.drafting import draft_issue
from newsletter.issues.editing import EDITABLE
from newsletter.issues.preview import write_preview
from newsletter.migrate import upgrade
from newsletter.secret_key import load_secret_key
from newsletter.weeks import week_of
from newsletter.subscribers.models import Subscriber
from newsletter.subscribers.service import UpsertResult, upsert_active
from newsletter.text import counted

# Fictional readers on the reserved example.com domain (RFC 2606): no real inbox is mailed.
SAMPLE_SUBSCRIBERS = [
    ("ada@example.com", "Ada Quill", []),
    ("bram@example.com", "Bram Oduya", ["Developer Tools"]),
    ("chen@example.com", "Chen Mireault", ["Design & Media", "Writing & Research"]),
    ("dana@example.com", "Dana Kowalczyk", []),
    ("eli@example.com", "Eli Navarro", ["Data & Analytics", "Developer Tools"]),
    ("farah@example.com", "Farah Lindgren", []),
]


def run_demo(settings: Settings, echo: Callable[[str], None] = print) -> dict:
    secret = load_secret_key(settings, create=True)
    engine = get_engine(settings.database.url)
    upgrade(engine)
    imported = import_files(engine, sample_files(), Origin("import", "demo"), only_new=True)
    with session_scope(engine) as session:
        result = UpsertResult()
        known = set(session.execute(select(Subscriber.email).where(
            Subscriber.email.in_([email for email, _name, _topics in SAMPLE_SUBSCRIBERS]))).scalars())
        for email, name, topics in SAMPLE_SUBSCRIBERS:
            if email not in known:  # one who is there already (maybe unsubscribed) is left as they are
                upsert_active(session, email, name, topics, "demo", result)
        latest = session.execute(select(func.max(Comparison.published_at))).scalar_one()
    week = week_of(latest, settings.site.zone)
    draft = draft_issue(engine, settings, week)
    issue = draft.issue
    # The sample content is dated (2026-W46..W48), so the week check is deliberately not enforced
    # here; every other pre-send check is, as for `issue send`.
    checks = []
    if issue.state in EDITABLE:
        checks = enforce(engine, settings, issue.id, ignore={"week"},
                         override=f"`newsletter issue send {issue.id} --ignore-checks`")
    start = start_send(engine, issue.id, settings=settings)
    transport = make_transport(settings)
    try:
        report = deliver(engine, settings, transport, secret, issue.id)
    finally:
        transport.close()
    preview = write_preview(engine, settings, issue.id, settings.mail.file.dir.parent / "preview")
    summary = {
        "issue": issue.id,
        "week": week,
        "comparisons": sum(r.created + r.updated for r in imported),
        "subscribers_new": result.created,
        "enqueued": start.enqueued,
        "sent": report.sent,
        "already_sent": not start.started,
        "counts": report.counts,
        "preview": str(preview[0]),
    }
    echo(f"Imported {counted(summary['comparisons'], 'comparison')} from {counted(len(imported), 'sample file')}.")
    echo(f"Issue {issue.id} for {week}: {issue.subject}")
    for result in checks:
        if result.level == WARNING:
            echo(f"Pre-send check warning ({result.name}): {result.message}")
        elif result.name == "week" and result.level != "ok":
            echo(f"Pre-send check {result.name} not enforced for the dated sample content: {result.message}")
    if start.started:
        echo(f"Sent {report.sent} messages ({report.failed} failed, {report.retry} to retry).")
    else:
        echo(f"Issue {issue.id} was already sent earlier: nobody was mailed twice "
             f"({report.counts.get('sent', 0)} deliveries on record).")
    if settings.mail.transport == "file":
        echo(f"Messages (.eml): {settings.mail.file.dir}")
    echo(f"HTML preview: {preview[0]}")
    return summary
