"""Waking idle workers when there is work, instead of leaving them asleep until their next poll.

PostgreSQL: whoever makes work for the workers calls `newsletter.wake.announce(session)` in the
transaction that makes it (a NOTIFY, delivered on COMMIT). Each worker LISTENs on a connection of its own (outside the engine's pool: a LISTEN lives as long
as its session) and waits on it with the poll interval as timeout. The poll stays as the fallback:
a notification sent while no worker listened (none running, the listening connection lost, a
retry coming due) is found at the next poll, exactly as before; a notification only ever makes a
worker look sooner. Waking every worker at once is safe: they claim with FOR UPDATE SKIP LOCKED,
so each row still goes to one of them.

SQLite has no notifications and allows one writer: there the worker polls (`[delivery]
poll_seconds`, docs/operations.md).
"""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy import Engine

from newsletter.engine import client_keepalives, session_defaults
from newsletter.wake import CHANNEL, CHANNEL_OF_SCHEMA
from newsletter.text import first_line

log = logging.getLogger(__name__)

SLICE = 0.25  # seconds: how often a waiting worker looks at its stop flag (a signal cannot interrupt the wait)


class Wakeup:
    """One worker's wait between passes: until a notification, its stop flag, or the timeout."""

    def __init__(self, engine: Engine, worker: str = "") -> None:
        self.engine, self.worker = engine, worker
        self.listens = engine.dialect.name == "postgresql"
        self.connection = None
        # Notifications may have been missed: the listening connection broke, or it was never
        # open. The first LISTEN happens at the first wait, after the worker's first pass looked
        # for work; a send committed between that look and the LISTEN was announced to nobody and
        # waited out the whole poll (issue 18: a send starts at once). So the first connect, like
        # a reconnect, counts as a wake-up: the worker looks once more, now listening.
        self.missed = True

    def _connect(self) -> bool:
        """Open the listening connection; False (and the fallback poll) when the database is away."""
        import psycopg
        from psycopg import sql

        cargs, cparams = self.engine.dialect.create_connect_args(self.engine.url)
        # A cut network must not leave a silent connection behind: keepalives notice it in ~2 min.
        # application_name: pg_stat_activity shows which worker listens.
        client_keepalives(cparams)
        for name, value in (("connect_timeout", 10), ("application_name", f"newsletter listen {self.worker}"[:63])):
            cparams.setdefault(name, value)
        try:
            self.connection = psycopg.connect(*cargs, **cparams, autocommit=True)
            session_defaults(self.connection)  # its backend too is closed when this host vanishes
            (channel,) = self.connection.execute(
                "SELECT " + CHANNEL_OF_SCHEMA.format(channel="%(channel)s"), {"channel": CHANNEL}).fetchone()
            self.connection.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        except psycopg.Error as exc:
            log.warning("cannot listen for work (%s); polling", first_line(exc))
            self.close()
            return False
        return True

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        """Wait up to `seconds`; True when woken early (a notification, or the listening connection
        just opened, the first time or again after a loss, when notifications may have been
        missed: look now)."""
        if not self.listens:
            stop.wait(seconds)
            return False
        if self.connection is None:
            if not self._connect():
                stop.wait(seconds)
                return False
            if self.missed:
                self.missed = False
                return True
        deadline = time.monotonic() + seconds
        while not stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                # Each generator run to its end: one left suspended keeps the connection's lock.
                if list(self.connection.notifies(timeout=min(left, SLICE), stop_after=1)):
                    list(self.connection.notifies(timeout=0))  # those already here: one pass serves all
                    return True
            except Exception as exc:  # the database went away: poll until it is back
                log.warning("lost the connection that listens for work (%s); polling", exc)
                self.close()
                self.missed = True
                stop.wait(max(deadline - time.monotonic(), 0))
                return False
        return False

    def close(self) -> None:
        if self.connection is not None:
            try:
                self.connection.close()
            except Exception:
                pass
            self.connection = None
