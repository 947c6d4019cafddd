"""The transactional sender that runs inside `newsletter serve` (confirmations, notices, and
outgoing webhooks).

A worker thread like any other (one id, a heartbeat), woken at once when a web request queued
mail, so one `newsletter serve` is a working deployment; `--no-sender` leaves the queue to
`newsletter worker`. It also purges expired unconfirmed signups, since `serve` alone has no scheduler.
On PostgreSQL `serve` runs it in a child process of lower priority (SenderProcess).
"""

from __future__ import annotations

import logging
import os
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


class SenderProcess:
    """The same sender in a child process of `newsletter serve` (PostgreSQL), at `[delivery] nice`.

    Why not the thread: building, sending and recording a confirmation took a third of the serve
    process's Python time at 200 signups a second, holding the GIL that the request threads wait
    for and its own pooled connections (issue 18). In a process of its own it competes for
    neither, and its lower priority lets the kernel answer web requests first. Nothing changes for
    the mail: the request still commits the `transactional_mail` row before it answers, and `wake`
    (a byte down a pipe, PipeWake) ends the child's sleep at once, as the thread's did. The child has a
    heartbeat like any worker: if it dies, `newsletter worker` takes its rows over. It stops when
    `shutdown` asks, on SIGTERM, or when its parent is gone (a killed serve leaves no orphan)."""

    def __init__(self, settings: Settings, secret: str, interval: float = 5.0) -> None:
        import multiprocessing

        # spawn: a fresh interpreter; no engine, thread or connection of the web process is inherited.
        context = multiprocessing.get_context("spawn")
        self.wake, self.stop = PipeWake(context), context.Event()
        self.process = context.Process(target=_sender_main, name="newsletter-sender", daemon=True,
                                       args=(settings, secret, interval, self.wake, self.stop, os.getpid()))

    def start(self) -> None:
        self.process.start()
        self.wake.set()

    def shutdown(self) -> None:
        self.stop.set()
        self.wake.set()
        self.process.join(timeout=30)
        if self.process.is_alive():  # a batch stuck on a mail server: its rows' lease hands them on
            self.process.terminate()
            self.process.join(timeout=5)


class PipeWake:
    """`set` / `wait` / `clear` like an Event, across processes, and `set` never blocks: a byte
    written to a pipe. (multiprocessing.Event's `set` waits until the sleeping process has woken,
    so every signup would wait for the lower-priority child to get a core.)"""

    def __init__(self, context) -> None:
        self.reader, self.writer = context.Pipe(duplex=False)
        os.set_blocking(self.writer.fileno(), False)

    def set(self) -> None:
        try:
            os.write(self.writer.fileno(), b"!")
        except BlockingIOError:  # the pipe is full of wake-ups already: the child will wake
            pass

    def wait(self, timeout: float) -> bool:
        return self.reader.poll(timeout)

    def clear(self) -> None:
        fd = self.reader.fileno()
        os.set_blocking(fd, False)
        try:
            while os.read(fd, 65536):
                pass
        except BlockingIOError:
            pass


def _sender_main(settings: Settings, secret: str, interval: float, wake, stop, parent: int) -> None:
    """Entry point of the sender process: lower priority, own engine, then the thread's loop."""
    import signal
    import threading

    from newsletter.db import get_engine
    from newsletter.priority import lower_priority
    from newsletter.templating import use_operator_templates

    lower_priority(settings.delivery.nice)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: serve stops us
    signal.signal(signal.SIGTERM, lambda _signum, _frame: (stop.set(), wake.set()))
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s [sender] %(name)s: %(message)s")
    # settings came pickled, not through load_settings
    use_operator_templates(settings.site.operator_templates, settings.site.template_cache)

    def orphaned() -> None:
        while not stop.wait(1.0):
            if os.getppid() != parent:
                stop.set()
                wake.set()

    threading.Thread(target=orphaned, name="parent-watch", daemon=True).start()
    engine = get_engine(settings.database.url)
    sender = BackgroundSender(engine, settings, secret, interval)
    sender.wake, sender.stop = wake, stop
    try:
        sender._run()
    finally:
        engine.dispose()
