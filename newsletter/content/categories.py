"""The publication's categories: what a reader can choose as topics (signup, preferences, import)."""

from __future__ import annotations

import threading
import time

from sqlalchemy import Engine, event, select, union
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session

from newsletter.content.models import Comparison, Tool


def publication_categories(session: Session) -> list[str]:
    """Every category a comparison or a tool has, sorted; an issue is matched to readers by them.
    One statement: every signup checks its topics against these (issue 18)."""
    return sorted(session.execute(union(select(Comparison.category), select(Tool.category))).scalars())


class CachedCategories:
    """`publication_categories`, read at most every `seconds` per process (issue 18 point 4).

    Every signup checks its topics against the categories and every signup page lists them: one
    statement and one transaction more per request, for a list that changes when an editor
    publishes a comparison. A change made in this process (any ORM flush that touches a
    comparison or a tool, e.g. the console's editor) empties every cache at its commit; one made
    by another process (the CLI, another `serve`) shows within `seconds`. A reader who picks a
    category younger than that is treated as when the topic is unknown: it is left out."""

    def __init__(self, engine: Engine, seconds: float = 10.0) -> None:
        self.engine, self.seconds = engine, seconds
        self._value: list[str] | None = None
        self._read_at = 0.0
        self._generation = -1
        self._lock = threading.Lock()

    def _fresh(self) -> list[str] | None:
        if time.monotonic() - self._read_at < self.seconds and self._generation == _generation[0]:
            return self._value
        return None

    def __call__(self) -> list[str]:
        value = self._fresh()
        if value is not None:
            return value
        with self._lock:  # one thread reads; the others wait for its answer, not for the database
            value = self._fresh()
            if value is None:
                generation = _generation[0]
                with Session(self.engine) as session:
                    value = publication_categories(session)
                self._value, self._read_at, self._generation = value, time.monotonic(), generation
            return value


_generation = [0]  # bumped when a transaction that changed a comparison or a tool commits


@event.listens_for(OrmSession, "after_flush")
def _note_change(session: OrmSession, _context: object) -> None:
    if any(isinstance(row, (Comparison, Tool)) for rows in (session.new, session.dirty, session.deleted)
           for row in rows):
        session.info["categories_changed"] = True


@event.listens_for(OrmSession, "after_commit")
def _invalidate(session: OrmSession) -> None:
    if session.info.pop("categories_changed", False):
        _generation[0] += 1


@event.listens_for(OrmSession, "after_rollback")
def _forget_change(session: OrmSession) -> None:
    session.info.pop("categories_changed", None)
