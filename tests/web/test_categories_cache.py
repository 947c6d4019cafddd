"""The categories every signup checks its topics against are cached per process (issue 18 point 4):
an editor's change made in this process shows at once; one made elsewhere (another process, a
raw statement) shows once the cache's interval has passed, never later."""

from __future__ import annotations

from sqlalchemy import text
from sqlmodel import select

from newsletter.content.categories import CachedCategories
from newsletter.content.models import Comparison
from newsletter.db import session_scope


def test_a_change_here_shows_at_once_one_elsewhere_after_the_interval(sample_engine):
    cache = CachedCategories(sample_engine, seconds=3600)
    assert cache() and "Brand New" not in cache()
    with session_scope(sample_engine) as session:  # the console's editor: an ORM change in this process
        session.exec(select(Comparison)).first().category = "Brand New"
    assert "Brand New" in cache()
    with sample_engine.begin() as connection:  # another process (no ORM event here)
        connection.execute(text("UPDATE comparison SET category = 'Elsewhere'"))
    assert "Elsewhere" not in cache()  # within the interval: the cached list
    cache.seconds = 0
    assert "Elsewhere" in cache()


def test_a_rolled_back_change_keeps_the_cache(sample_engine):
    cache = CachedCategories(sample_engine, seconds=3600)
    first = cache()
    with session_scope(sample_engine) as session:
        session.exec(select(Comparison)).first().category = "Never Committed"
        session.flush()
        session.rollback()
    assert cache() is first
