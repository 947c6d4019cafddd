"""The issue's date, as its masthead says it: "Thursday, 3 December 2026".

Which date: a sent issue is dated the day its send started (what its readers saw arrive); a
draft the day it is scheduled for, or, unscheduled, the configured send day of its week
([schedule] send_day), or today when that day has passed (it can only go out from now on: a
late week's preview and test copy showed last Thursday, its readers today's date, outside
trial), so a preview shows the date readers will most likely see. Every date is a day on the
site's calendar ([site] timezone).

In words in the site's language ([site] language, e.g. "en", "en-GB", "de") through Babel, which
carries the Unicode CLDR's date formats for every language: "en" reads "Thursday, December 3,
2026", "en-GB" "Thursday, 3 December 2026", "de" "Donnerstag, 3. Dezember 2026". A language CLDR
does not know falls back to English rather than failing a send.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from functools import lru_cache
from zoneinfo import ZoneInfo

from newsletter.config import DAYS, Settings
from newsletter.issues.models import Issue
from newsletter.weeks import parse_week


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)  # SQLite gives naive UTC


def issue_date(settings: Settings, issue: Issue) -> date:
    """The day the masthead shows (see the module's docstring for which)."""
    site_zone = settings.site.zone
    moment = issue.started_at or issue.scheduled_at
    if moment is not None:
        return _aware(moment).astimezone(site_zone).date()
    year, number = parse_week(issue.week)
    day = date.fromisocalendar(year, number, DAYS.index(settings.schedule.send_day) + 1)
    hours, minutes = (int(part) for part in settings.schedule.send_time.split(":"))
    zone = ZoneInfo(settings.schedule.timezone or settings.site.timezone)
    planned = datetime.combine(day, time(hours, minutes), tzinfo=zone).astimezone(site_zone).date()
    return max(planned, datetime.now(site_zone).date())


@lru_cache(maxsize=32)
def _locale(language: str):
    from babel import Locale, UnknownLocaleError  # imported here: only rendering an issue needs it

    try:
        return Locale.parse(language.replace("-", "_") or "en")
    except (UnknownLocaleError, ValueError, TypeError):
        return Locale.parse("en")


def date_in_words(iso_day: str, language: str) -> str:
    """"Thursday, December 3, 2026" for "2026-12-03" in "en"; "" for no date (an old record)."""
    if not iso_day:
        return ""
    from babel.dates import format_date

    return format_date(date.fromisoformat(iso_day), format="full", locale=_locale(language))
