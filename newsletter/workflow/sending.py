"""Previewing, checking, testing, scheduling, sending and following an issue, each action audited.

Schedules are given as a local date and time in the schedule's time zone ([schedule] timezone,
else [site] timezone), the way an editor thinks of "Tuesday 07:00". Sending and scheduling run
the pre-send checks first and refuse while one fails, unless the caller overrides them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine

from newsletter import send_rate, tallies
from newsletter.config import Settings
from newsletter.db import session_scope, utcnow
from newsletter.delivery import control, outbox, testsend
from newsletter.delivery.start import StartResult, start_in
from newsletter.editors import audit
from newsletter.errors import UserError
from newsletter.issues import checks, editing
from newsletter.issues.errors import InvalidTransition, IssueError
from newsletter.issues.preview import render_preview
from newsletter.issues.states import IssueState
from newsletter.schedule import zone_of

DARK_QUERY = re.compile(r"@media\s*\(\s*prefers-color-scheme\s*:\s*dark\s*\)")
RATE_WINDOW = timedelta(minutes=5)


def preview(engine: Engine, settings: Settings, issue_id: int, scheme: str = "") -> tuple[str, str]:
    """The HTML and text a sample reader gets. `scheme` "dark" or "light" forces the mail's own
    dark-mode rules on or off (they are a prefers-color-scheme media query), so the console can
    show both side by side whatever the editor's system setting."""
    try:
        html, text, _data = render_preview(engine, settings, issue_id)
    except IssueError:
        raise
    except UserError as exc:  # e.g. no comparisons yet
        raise IssueError(str(exc), "comparisons")
    if scheme == "dark":
        html = DARK_QUERY.sub("@media all", html)
    elif scheme == "light":
        html = DARK_QUERY.sub("@media not all", html)
    return html, text


def pre_send_checks(engine: Engine, settings: Settings, issue_id: int,
                    when: datetime | None = None) -> list[checks.CheckResult]:
    """Every check; an issue that does not render yet fails a "render" check instead of raising."""
    with session_scope(engine) as session:
        editing.get_issue(session, issue_id)
    try:
        return checks.run_checks(engine, settings, issue_id, when)
    except UserError as exc:
        return [checks.CheckResult("render", checks.FAIL, str(exc))]


def _enforce(engine: Engine, settings: Settings, issue_id: int, when: datetime | None, ignore: bool,
             override: str) -> list[str]:
    """Refuse (ChecksFailed) while a check fails, unless `ignore`; the names of overridden failures."""
    failing = checks.blocking(pre_send_checks(engine, settings, issue_id, when))
    if failing and not ignore:
        raise checks.ChecksFailed(issue_id, failing, override)
    return [result.name for result in failing]


def test_send(engine: Engine, settings: Settings, secret: str, actor: audit.Actor, issue_id: int,
              addresses: list[str], field: str = "to") -> list[tuple[str, str]]:
    """The issue to these addresses only, marked [TEST]; (address, outcome) each. `field`: what
    errors call the addresses (the CLI's "--to")."""
    emails = testsend.clean_addresses(addresses, field)
    with session_scope(engine) as session:
        ids = testsend.queue_tests(session, issue_id, emails)
        audit.record(session, actor, "issue.test", f"issue:{issue_id}", after={"to": emails})
    return testsend.deliver_tests(engine, settings, secret, ids)


def local_time(settings: Settings, when: datetime) -> str:
    return when.astimezone(zone_of(settings)).strftime("%Y-%m-%d %H:%M %Z")


def schedule(engine: Engine, settings: Settings, actor: audit.Actor, issue_id: int, local: str,
             ignore_checks: bool = False) -> datetime:
    """Schedule at "YYYY-MM-DD HH:MM" (or the HTML form's "YYYY-MM-DDTHH:MM") in the schedule's zone."""
    try:
        when = editing.parse_local(local.replace("T", " ", 1), str(zone_of(settings)))
        editing.check_future(when)
    except IssueError as exc:  # the CLI's messages name its option (--at); here the field is "at"
        raise IssueError("at: " + str(exc).removeprefix("--at: "), exc.field)
    editing.still_to_send(engine, issue_id, "scheduled")
    overridden = _enforce(engine, settings, issue_id, when, ignore_checks, "ignore_checks")
    return schedule_checked(engine, settings, actor, issue_id, when, overridden)


def schedule_checked(engine: Engine, settings: Settings, actor: audit.Actor, issue_id: int, when: datetime,
                     overridden: list[str]) -> datetime:
    """Schedule once the checks were run (by the console's `schedule` or by the CLI, which prints
    them), with its audit entry in the same transaction: the CLI's schedules and sends were not in
    the audit log that says it holds the command line's changes (outside trial)."""
    with session_scope(engine) as session:
        before = editing.get_issue(session, issue_id).scheduled_at
        issue = editing.schedule_in(session, issue_id, when, ignoring=overridden)
        audit.record(session, actor, "issue.schedule", f"issue:{issue_id}",
                     {"scheduled_at": before.isoformat() if before else None},
                     {"scheduled_at": when.isoformat(), "local": local_time(settings, when),
                      "ignored_checks": overridden})
        return issue.scheduled_at


def unschedule(engine: Engine, actor: audit.Actor, issue_id: int) -> None:
    with session_scope(engine) as session:
        before = editing.get_issue(session, issue_id).scheduled_at
        editing.unschedule_in(session, issue_id)
        audit.record(session, actor, "issue.unschedule", f"issue:{issue_id}",
                     {"scheduled_at": before.isoformat() if before else None}, {"scheduled_at": None})


def recipient_count(engine: Engine, issue_id: int) -> int:
    """How many readers a send now would reach (what the confirmation states)."""
    with session_scope(engine) as session:
        editing.get_issue(session, issue_id)
        return outbox.count_eligible(session, issue_id, utcnow())


def send_now(engine: Engine, settings: Settings, actor: audit.Actor, issue_id: int,
             ignore_checks: bool = False) -> StartResult:
    """Start the send: one queued delivery per eligible reader; workers deliver them."""
    state = editing.still_to_send(engine, issue_id, "sent")
    overridden = _enforce(engine, settings, issue_id, None, ignore_checks, "ignore_checks")
    result = start_checked(engine, settings, actor, issue_id, state, overridden)
    if not result.started:
        raise InvalidTransition(f"issue {issue_id} is {result.issue.state}: nobody gets it twice")
    return result


def start_checked(engine: Engine, settings: Settings, actor: audit.Actor, issue_id: int, state: str,
                  overridden: list[str]) -> StartResult:
    """Start the send once the checks were run (`send_now`, or the CLI, which prints them); the
    audit entry in the same transaction when it started (`state`: the issue's before)."""
    with session_scope(engine) as session:
        result = start_in(session, issue_id, utcnow(), settings)
        if result.started:
            audit.record(session, actor, "issue.send", f"issue:{issue_id}", {"state": state},
                         {"state": result.issue.state, "recipients": result.enqueued, "ignored_checks": overridden})
    return result


CONTROLS = {"pause": control.PAUSE, "resume": control.RESUME, "cancel": control.CANCEL}


def control_send(engine: Engine, actor: audit.Actor, issue_id: int, action: str) -> control.ControlResult:
    """pause, resume or cancel; the move and its audit entry in one transaction."""
    target, verb, only = CONTROLS[action]
    values = {"finished_at": utcnow()} if action == "cancel" else {}
    with session_scope(engine) as session:
        before = editing.get_issue(session, issue_id).state
        result = control.move_in(session, issue_id, target, verb, only, **values)
        audit.record(session, actor, f"issue.{action}", f"issue:{issue_id}", {"state": before},
                     {"state": result.state, "skipped": result.skipped})
    return result


@dataclass
class SendStatus:
    state: str
    sent: int
    failed: int
    pending: int
    skipped: int
    total: int
    rate_per_minute: float  # deliveries sent per minute over the last few minutes
    eta_seconds: int | None  # at that rate, until the queue is empty; None when not sending or no rate yet

    @property
    def done(self) -> bool:
        return self.state in (IssueState.sent.value, IssueState.cancelled.value)


def status(engine: Engine, issue_id: int, now: datetime | None = None) -> SendStatus:
    now = now or utcnow()
    with session_scope(engine) as session:
        issue = editing.get_issue(session, issue_id)
        # The issue's counters, not a count by state of its rows (every second, while the console
        # follows a send): no index holds the state (migration 0032), and a count of a million
        # rows per second would cost the send more than the send's own statements.
        figures = tallies.read(session, [issue_id]).get(issue_id, {})
        window = RATE_WINDOW
        if issue.started_at is not None:
            window = max(min(RATE_WINDOW, now - issue.started_at), timedelta(seconds=1))
        # Sent in the window: from the issue's sends per 10 s (newsletter/send_rate.py), a few rows,
        # not a count over the issue's rows (every row of the issue read, every second).
        recent = send_rate.sent_since(session, issue_id, now - window, now, issue.started_at)
        state = issue.state
    counts = tallies.Deliveries.of(figures)
    rate = recent / (window.total_seconds() / 60)
    eta = round(counts.pending / rate * 60) if rate > 0 and counts.pending and state == IssueState.sending.value \
        else None
    return SendStatus(state, counts.sent, counts.failed, counts.pending, counts.skipped, counts.recipients,
                      round(rate, 1), eta)
