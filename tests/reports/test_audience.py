"""Readers per week: joins and leaves land in the week of the site's calendar they happened in,
boundaries included/excluded exactly."""

from datetime import timedelta

from newsletter.db import session_scope
from newsletter.reports.audience import growth, readers_by_status
from newsletter.subscribers.models import ConsentEvent, Subscriber
from newsletter.weeks import current_week, week_bounds


def test_joins_and_leaves_per_week(engine, settings):
    zone = settings.site.zone
    this_start, this_end = week_bounds(current_week(zone), zone)
    now = this_start + timedelta(hours=30)
    last_start = this_start - timedelta(days=7)
    with session_scope(engine) as session:
        readers = [Subscriber(email=f"r{n}@example.com", status=s) for n, s in
                   enumerate(["active", "active", "unsubscribed", "pending", "bounced"])]
        session.add_all(readers)
        session.flush()
        events = [
            (0, "confirmed", this_start),  # the first instant of this week
            (0, "unsubscribed", this_start + timedelta(hours=2)),
            (1, "subscribed", this_start + timedelta(hours=1)),  # imported
            (2, "confirmed", this_start - timedelta(microseconds=1)),  # the last instant of last week
            (2, "unsubscribed", this_start + timedelta(hours=3)),
            (3, "signup_requested", this_start),  # not a join
            (4, "confirmed", last_start - timedelta(days=7 * 7)),  # long before the eight weeks
        ]
        session.add_all([ConsentEvent(subscriber_id=readers[n].id, kind=kind, source="test", created_at=when)
                         for n, kind, when in events])
    weeks = growth(engine, zone, now)
    assert len(weeks) == 8 and weeks[-1].week == current_week(zone, now)
    assert [w.start for w in weeks] == sorted(w.start for w in weeks)
    assert (weeks[-1].joined, weeks[-1].left, weeks[-1].net) == (2, 2, 0)
    assert (weeks[-2].joined, weeks[-2].left) == (1, 0)
    assert sum(w.joined for w in weeks[:-2]) == 0
    assert readers_by_status(engine) == {"pending": 1, "active": 2, "unsubscribed": 1, "bounced": 1,
                                         "complained": 0}
