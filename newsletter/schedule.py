"""The weekly rhythm on APScheduler 3.x: draft on the draft day, dispatch what is due.

APScheduler only ticks; the database decides. Dispatch moves an issue from
`scheduled` to `sending` with one conditional UPDATE (newsletter.delivery.start.start_send),
so two schedulers, a restart or a clock jump can never send an issue twice.
Jobs live in memory: APScheduler's job stores are not safe to share between processes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine, select

from newsletter.config import DAYS, Settings
from newsletter.db import session_scope, utcnow
from newsletter.delivery.start import start_send
from newsletter.errors import UserError
from newsletter.issues.checks import failing_checks
from newsletter.issues.drafting import draft_issue
from newsletter.issues.editing import schedule as schedule_issue
from newsletter.issues.editing import split_overrides, unschedule
from newsletter.issues.models import Issue
from newsletter.issues.states import IssueState
from newsletter.delivery.notices import notify_held
from newsletter.weeks import parse_week, week_of

log = logging.getLogger(__name__)


def zone_of(settings: Settings) -> ZoneInfo:
    return ZoneInfo(settings.schedule.timezone or settings.site.timezone)


def _hm(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def send_time_for(settings: Settings, week: str) -> datetime:
    """The configured send day and time of an ISO week, in the schedule's zone, as UTC."""
    year, number = parse_week(week)
    day = date.fromisocalendar(year, number, DAYS.index(settings.schedule.send_day) + 1)
    return datetime.combine(day, _hm(settings.schedule.send_time), tzinfo=zone_of(settings)).astimezone(UTC)


def pull_feed(engine: Engine, settings: Settings) -> None:
    """Pull [content] feed_url (if set) so the draft has the site's latest comparisons. A failed
    pull is logged and the draft goes on with what the store has."""
    if not settings.content.feed_url:
        return
    from newsletter.content.pull import pull
    from newsletter.content.revisions import Origin

    try:
        result = pull(engine, settings.content.feed_url, Origin("pull", "scheduler"))
    except Exception as exc:  # a bad feed, the site down, a database hiccup: the draft still happens
        log.error("content pull before the weekly draft failed: %s", exc)
        return
    if result.not_modified:
        log.info("content pull: %s not modified", result.url)
    else:
        log.info("content pull: %s new, %s updated, %s unchanged", result.created, result.updated, result.unchanged)


def weekly_draft(engine: Engine, settings: Settings, now: datetime | None = None) -> Issue | None:
    """Pull the site's feed, then draft this week's issue; with auto_send, schedule it for the
    send time if that is ahead."""
    now = now or utcnow()
    week = week_of(now, zone_of(settings))
    pull_feed(engine, settings)
    try:
        result = draft_issue(engine, settings, week)
    except UserError as exc:
        log.warning("weekly draft for %s: %s", week, exc)
        return None
    issue = result.issue
    log.info("weekly draft: issue %s for %s (%s)", issue.id, week, "new" if result.created else "existing")
    if settings.schedule.auto_send and issue.state == IssueState.draft.value:
        when = send_time_for(settings, week)
        failing = failing_checks(engine, settings, issue.id, when) if when > now else []
        if failing:
            notify_held(engine, settings, issue.id, week, failing, "was drafted but not scheduled for auto-send")
        elif when > now:
            issue = schedule_issue(engine, issue.id, when, now)
            log.info("issue %s scheduled for %s", issue.id, when.astimezone(zone_of(settings)).isoformat())
        else:
            log.warning("issue %s: this week's send time %s has passed; an editor must schedule it", issue.id, when)
    return issue


def dispatch_due(engine: Engine, settings: Settings, now: datetime | None = None) -> list[int]:
    """Start every scheduled issue whose time has come (within the grace period)."""
    now = now or utcnow()
    grace = timedelta(minutes=settings.schedule.grace_minutes)
    with session_scope(engine) as session:
        due = session.execute(
            select(Issue.id, Issue.scheduled_at, Issue.scheduled_ignoring)
            .where(Issue.state == IssueState.scheduled.value, Issue.scheduled_at <= now)
            .order_by(Issue.scheduled_at)
        ).all()
    started = []
    for issue_id, scheduled_at, ignoring in due:
        if scheduled_at < now - grace:
            log.warning("issue %s was due at %s, more than the grace period ago: it waits for an editor",
                        issue_id, scheduled_at.isoformat())
            continue
        if not _passes_checks(engine, settings, issue_id, now, split_overrides(ignoring)):
            continue
        result = start_send(engine, issue_id, now, settings)
        if result.started:  # another scheduler may have won the conditional UPDATE
            log.info("issue %s: sending to %s subscribers", issue_id, result.enqueued)
            started.append(issue_id)
    return started


def _passes_checks(engine: Engine, settings: Settings, issue_id: int, now: datetime, ignoring: list[str]) -> bool:
    """A due issue that fails a pre-send check goes back to draft (one conditional UPDATE, so
    one scheduler wins and the editors get one notice), instead of being sent or retried each tick.
    `ignoring`: the failures the editor went ahead despite when scheduling; any other holds it."""
    failing = failing_checks(engine, settings, issue_id, now, ignoring)
    if not failing:
        return True
    try:
        issue = unschedule(engine, issue_id)
    except UserError:  # another scheduler held it first, or an editor changed it meanwhile
        return False
    notify_held(engine, settings, issue_id, issue.week, failing, "was due but is back to draft")
    return False


def build_scheduler(engine: Engine, settings: Settings, clock: Callable[[], datetime] = utcnow) -> BackgroundScheduler:
    cfg = settings.schedule
    zone = zone_of(settings)
    scheduler = BackgroundScheduler(timezone=zone)
    draft_at = _hm(cfg.draft_time)
    scheduler.add_job(
        lambda: weekly_draft(engine, settings, clock()), id="weekly-draft",
        trigger=CronTrigger(day_of_week=cfg.draft_day, hour=draft_at.hour, minute=draft_at.minute, timezone=zone),
        coalesce=True, max_instances=1, misfire_grace_time=int(cfg.grace_minutes * 60) or 1,
    )
    scheduler.add_job(
        lambda: _safe(dispatch_due, engine, settings, clock()), id="dispatch",
        trigger=IntervalTrigger(seconds=cfg.tick_seconds, timezone=zone),
        next_run_time=datetime.now(zone),  # on start: catch up on anything missed within grace
        coalesce=True, max_instances=1,
    )
    from newsletter.subscribers.purge import purge_unconfirmed

    scheduler.add_job(  # signups never confirmed lose their personal data once the link expired
        lambda: _safe(purge_unconfirmed, engine, settings, clock()), id="purge-unconfirmed",
        trigger=IntervalTrigger(hours=1, timezone=zone), next_run_time=datetime.now(zone),
        coalesce=True, max_instances=1,
    )
    return scheduler


def _safe(job, *args):
    try:
        return job(*args)
    except Exception:  # a database hiccup must not kill the scheduler thread
        log.exception("scheduler job %s failed; it runs again at the next tick", job.__name__)
        return None


def run_scheduler(engine: Engine, settings: Settings, stop: threading.Event) -> None:
    scheduler = build_scheduler(engine, settings)
    scheduler.start()
    log.info("scheduler started (%s)", zone_of(settings))
    try:
        stop.wait()
    finally:
        scheduler.shutdown(wait=True)
