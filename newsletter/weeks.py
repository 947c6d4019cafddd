"""ISO weeks in the site's time zone: an issue belongs to the week of its readers' calendar."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from newsletter.errors import UserError

WEEK = re.compile(r"^(\d{4})-W(\d{2})$")


def parse_week(value: str) -> tuple[int, int]:
    match = WEEK.match(value.strip())
    if not match:
        raise UserError(f"week {value!r}: use the ISO form YYYY-Www, like 2026-W48")
    year, week = int(match.group(1)), int(match.group(2))
    try:
        date.fromisocalendar(year, week, 1)
    except ValueError:
        raise UserError(f"week {value!r}: {year} has no week {week}")
    return year, week


def format_week(year: int, week: int) -> str:
    return f"{year}-W{week:02d}"


def week_of(moment: datetime, zone: ZoneInfo) -> str:
    """The ISO week that `moment` (aware) falls in, on the site's calendar."""
    year, week, _ = moment.astimezone(zone).isocalendar()
    return format_week(year, week)


def week_bounds(value: str, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """[start, end) of the week in UTC: Monday 00:00 local to the next Monday 00:00 local."""
    year, week = parse_week(value)
    monday = date.fromisocalendar(year, week, 1)
    start = datetime.combine(monday, time(), tzinfo=zone)
    end = datetime.combine(monday + timedelta(days=7), time(), tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


def current_week(zone: ZoneInfo, now: datetime | None = None) -> str:
    return week_of(now or datetime.now(UTC), zone)
