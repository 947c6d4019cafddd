"""The announcing half of waking idle workers (the listening half: newsletter/delivery/wakeup.py).

Whoever makes work for the workers (a send starts, a paused send resumes, editors' mail is
queued) calls `announce(session)` in the transaction that makes it.
PostgreSQL delivers a NOTIFY on COMMIT only, so a worker is never woken for rows it cannot see
yet, and a rolled-back change wakes nobody; several in one transaction arrive as one. A loose
module, so that any package may announce without importing delivery/ (the layering forbids that
for content/, subscribers/ and mail/).
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

CHANNEL = "newsletter_work"
# The channel is per schema: NOTIFY is database-wide, and two publications (or test runs) in
# separate schemas of one database must not wake each other's workers. Both halves compute the
# name with this same server-side expression (a channel name is at most 63 bytes).
CHANNEL_OF_SCHEMA = "left({channel} || ':' || current_schema(), 63)"


def announce(session: Session) -> None:
    """Wake the idle workers when this transaction commits (PostgreSQL; a no-op on SQLite, where
    workers poll)."""
    if session.get_bind().dialect.name == "postgresql":
        channel = CHANNEL_OF_SCHEMA.format(channel=":channel")
        session.execute(text(f"SELECT pg_notify({channel}, '')"), {"channel": CHANNEL})
