"""The transactional sender that runs inside `newsletter serve` (confirmations, notices, and
outgoing webhooks).

A worker thread like any other (one id, a heartbeat), woken at once when a web request queued
mail, so one `newsletter serve` is a working deployment; `--no-sender` leaves the queue to
`newsletter worker`. It also purges expired unconfirmed signups, since `serve` alone has no scheduler.
"""

from __future__ import annotations

import logging
import time

from sqlalchemy import Engine

from newsletter.wakeable import WakeableThread
from newsletter.config import Settings
from newsletter.delivery.transports import make_transport

log = logging.getLogger(__name__)
PURGE_EVERY = 3600.0  # seconds between purges of expired unconfirmed signups


class BackgroundSender(WakeableThread):
    """Delivers queued transactional mail; wakes at once when a request queued some."""

    def __init__(self, engine: Engine, settings: Settings, secret: str, interval: float = 5.0) -> None:
        self.engine, self.settings, self.secret, self.interval = engine, settings, secret, interval
        super().__init__("transactional-sender", self._run)

    def _run(self) -> None:
        # A worker like any other: one id and a heartbeat, so a killed web process's mails are
        # taken over by the workers within seconds (newsletter/delivery/heartbeat.py).
        from newsletter.delivery.heartbeat import Heartbeat
        from newsletter.delivery.mailqueue import send_queued
        from newsletter.delivery.queue import worker_id
        from newsletter.delivery.webhooks_out import send_due

        worker = worker_id()
        transport = make_transport(self.settings)
        purged_at: float | None = None
        try:
            with Heartbeat(self.engine, worker, self.settings.delivery.heartbeat_seconds):
                while not self.stop.is_set():
                    self.wake.wait(self.interval)
                    self.wake.clear()
                    try:
                        while send_queued(self.engine, self.settings, transport, self.secret, limit=50,
                                          worker=worker).worked:
                            pass
                        while send_due(self.engine, self.settings, worker=worker).worked:
                            pass  # outgoing webhooks: the same idiom, owners' URLs
                        if purged_at is None or time.monotonic() - purged_at > PURGE_EVERY:
                            purged_at = time.monotonic()
                            self._purge()
                    except Exception:  # keep serving pages; the queue keeps the mail
                        log.exception("transactional sender failed; will retry")
        finally:
            transport.close()

    def _purge(self) -> None:
        """`serve` alone (no scheduler) is a whole deployment: it purges expired unconfirmed signups too."""
        from newsletter.subscribers.purge import purge_unconfirmed

        report = purge_unconfirmed(self.engine, self.settings)
        if report.purged:
            log.info("purged %d unconfirmed signups whose confirmation expired", report.purged)
