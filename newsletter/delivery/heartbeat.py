"""Worker heartbeats: a crashed worker's rows are taken over within seconds.

A worker's lease on its batch lasts `[delivery] lease_seconds` (5 minutes by default) because a
large batch may take that long to send. A worker killed by SIGKILL, OOM or a lost host would hold
its rows that long. So each worker also beats: a small thread writes `worker_heartbeat.beat_at`
every `heartbeat_seconds`, even while the main thread is inside a long send() call; a claim treats
rows `sending` under a worker with no beat for STALE_BEATS beats as due (queue.due).

Clocks: the beat is written with the worker's clock and read with the claimer's, like a lease:
hosts must keep their clocks in sync (NTP) to well under 3 beats.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from sqlalchemy import Engine, bindparam, case, delete, update
from sqlmodel import Session

from newsletter.db import session_scope, utcnow
from newsletter.delivery.models import WorkerHeartbeat
from newsletter.text import first_line

log = logging.getLogger(__name__)

# Beats of workers gone longer than this are deleted by the next worker that starts.
FORGET_AFTER = timedelta(days=1)


def beat(session: Session, worker: str, now: datetime) -> None:
    """Record that `worker` is alive now (the row is made on its first beat)."""
    if not refresh(session, worker, now):
        session.add(WorkerHeartbeat(worker_id=worker, beat_at=now, started_at=now))


_BEAT = WorkerHeartbeat.__table__.c
_NOW = bindparam("now", type_=_BEAT.beat_at.type)
# Built once: SQLAlchemy then reuses its cache key and compiled form. Built per claim (an ORM
# update() each batch), it cost ~0.4 ms of a worker's CPU per batch, ~1 us per message.
_REFRESH = (update(WorkerHeartbeat.__table__).where(_BEAT.worker_id == bindparam("worker"))
            .values(beat_at=case((_BEAT.beat_at < _NOW, _NOW), else_=_BEAT.beat_at)))


def refresh(session: Session, worker: str, now: datetime) -> bool:
    """Move `worker`'s beat to `now` if it has one (False if not). Never backwards: a beat that
    hung on a cut network and arrives late must not make a live worker look dead. queue.claim
    refreshes it in the transaction of each claim of every queue, so rows a worker claims right
    after its link returns are never under a stale beat (others would take them at once and send
    them twice)."""
    return bool(session.execute(_REFRESH, {"worker": worker, "now": now}).rowcount)


class Heartbeat:
    """Beats for one worker from a daemon thread while in a `with` block; the first beat is
    written before the block starts, so no claim of the worker exists without a beat."""

    def __init__(self, engine: Engine, worker: str, seconds: float) -> None:
        self.engine, self.worker, self.seconds = engine, worker, seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{worker}", daemon=True)

    def __enter__(self) -> Heartbeat:
        now = utcnow()
        try:
            with session_scope(self.engine) as session:
                session.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.beat_at < now - FORGET_AFTER))
                beat(session, self.worker, now)
        except Exception as exc:  # the database away at start: the worker loop waits for it, the thread beats
            log.warning("first heartbeat of %s not recorded: %s", self.worker, first_line(exc))
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join(timeout=self.seconds + 5)
        try:
            with session_scope(self.engine) as session:
                session.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.worker_id == self.worker))
        except Exception:  # the database may be the reason we stop; the row ages out anyway
            log.warning("could not remove the heartbeat of %s", self.worker, exc_info=True)

    def _run(self) -> None:
        while not self._stop.wait(self.seconds):
            try:
                with session_scope(self.engine) as session:
                    beat(session, self.worker, utcnow())
            except Exception as exc:  # the database away: the main loop waits for it too
                log.warning("heartbeat of %s not recorded: %s", self.worker, first_line(exc))
