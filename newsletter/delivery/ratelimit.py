"""Send rate limits shared by every worker on every host: fixed-window counters in the database.

`[delivery] rate_per_second` and `rate_per_hour` (0 = unlimited) cap what one transport sends,
all workers together. Each limit is a row per (transport, window length, window start) in
`send_window`. A worker asks for permits *before* it claims a batch, so a claimed batch is sent at
once and never sits on its lease waiting for the limiter. One statement per window grants what is
left, atomically, on PostgreSQL and SQLite alike:

    INSERT INTO send_window (transport, window_seconds, window_start, used, granted)
    VALUES (:t, :w, :start, min(:n, :limit), min(:n, :limit))
    ON CONFLICT (transport, window_seconds, window_start) DO UPDATE
       SET granted = min(:n, :limit - send_window.used),   -- both read the row as it was
           used    = min(send_window.used + :n, :limit)
     WHERE send_window.used < :limit
    RETURNING granted

No row back means the window is full: wait for the next one. With both limits set, the hour is
asked for the second's grant and the surplus is given back. Permits a worker got but could not
use (fewer rows were due) are given back too, so `used` counts what was really claimed.

Windows start at multiples of their length in the database server's clock (PostgreSQL), so hosts
with skewed clocks still share one window. Fixed windows allow up to twice the rate across a window
boundary (the end of one and the start of the next); per second that is harmless, per hour set the
limit with that in mind.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from sqlalchemy import Engine, case, delete, literal, text, update

from newsletter.config import Settings
from newsletter.db import insert_for, session_scope
from newsletter.delivery.models import SendWindow

HOUSEKEEPING_SECONDS = 60.0
KEEP_SECONDS = 2 * 3600  # windows older than this are deleted


def _least(a, b):
    return case((a < b, a), else_=b)


@dataclass
class Grant:
    count: int
    windows: list[tuple[int, int]] = field(default_factory=list)  # (window_seconds, window_start)
    wait_seconds: float = 0.0  # when count is 0: until the full window ends


class SendRateLimiter:
    """Permits for one transport. With no limit set, every request is granted without a query."""

    def __init__(self, engine: Engine, transport: str, per_second: int = 0, per_hour: int = 0) -> None:
        self.engine = engine
        self.transport = transport[:40]
        self.limits = [(seconds, limit) for seconds, limit in ((1, per_second), (3600, per_hour)) if limit > 0]
        self._last_housekeeping = 0.0

    @classmethod
    def from_settings(cls, engine: Engine, settings: Settings, transport: str) -> SendRateLimiter:
        cfg = settings.delivery
        return cls(engine, transport, cfg.rate_per_second, cfg.rate_per_hour)

    @property
    def enabled(self) -> bool:
        return bool(self.limits)

    def _now(self, session) -> float:
        if session.get_bind().dialect.name == "postgresql":
            return float(session.execute(text("SELECT extract(epoch FROM clock_timestamp())")).scalar_one())
        return time.time()

    def _take(self, session, seconds: int, start: int, limit: int, n: int) -> int:
        first = min(n, limit)
        statement = (
            insert_for(session, SendWindow)
            .values(transport=self.transport, window_seconds=seconds, window_start=start, used=first,
                    granted=first)
            .on_conflict_do_update(
                index_elements=["transport", "window_seconds", "window_start"],
                set_={
                    "granted": _least(literal(n), literal(limit) - SendWindow.used),
                    "used": _least(SendWindow.used + n, literal(limit)),
                },
                where=SendWindow.used < limit,
            )
            .returning(SendWindow.granted)
        )
        return session.execute(statement).scalar_one_or_none() or 0

    def _give_back(self, session, seconds: int, start: int, n: int) -> None:
        if n <= 0:
            return
        session.execute(
            update(SendWindow)
            .where(SendWindow.transport == self.transport, SendWindow.window_seconds == seconds,
                   SendWindow.window_start == start)
            .values(used=case((SendWindow.used > n, SendWindow.used - n), else_=0))
            .execution_options(synchronize_session=False)
        )

    def acquire(self, n: int, now: float | None = None) -> Grant:
        """Up to n permits (possibly fewer, possibly 0 with the time to wait)."""
        if not self.limits or n <= 0:
            return Grant(max(n, 0))
        with session_scope(self.engine) as session:
            now = self._now(session) if now is None else now
            self._housekeeping(session, now)
            wanted, taken = n, []
            for seconds, limit in sorted(self.limits, key=lambda item: item[0], reverse=True):
                start = int(now // seconds) * seconds
                got = self._take(session, seconds, start, limit, wanted)
                taken.append((seconds, start, got))
                if got == 0:
                    # Give back what the longer windows granted and wait for this one to end.
                    for s, st, g in taken[:-1]:
                        self._give_back(session, s, st, g)
                    return Grant(0, wait_seconds=max(start + seconds - now, 0.01))
                wanted = got
            for s, st, g in taken:  # a shorter window granted less than a longer one: return the rest
                self._give_back(session, s, st, g - wanted)
            return Grant(wanted, [(s, st) for s, st, _ in taken])

    def refund(self, grant: Grant, unused: int) -> None:
        """Permits of a grant that were not used (fewer deliveries were due than granted)."""
        if unused <= 0 or not grant.windows:
            return
        with session_scope(self.engine) as session:
            for seconds, start in grant.windows:
                self._give_back(session, seconds, start, unused)

    def _housekeeping(self, session, now: float) -> None:
        if time.monotonic() - self._last_housekeeping < HOUSEKEEPING_SECONDS:
            return
        self._last_housekeeping = time.monotonic()
        session.execute(
            delete(SendWindow)
            .where(SendWindow.transport == self.transport, SendWindow.window_start < int(now) - KEEP_SECONDS)
            .execution_options(synchronize_session=False)
        )
