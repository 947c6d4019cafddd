"""Long-running roles in one process: web server, scheduler, worker (`newsletter run`).

Each role runs in its own thread and watches one stop event; SIGTERM or SIGINT
sets it. The worker then finishes and records the batch in hand and releases
anything it still holds, the scheduler stops ticking, uvicorn drains requests.
Nothing in flight is lost: the database keeps the state, and the next start
picks up where this one stopped.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable

from sqlalchemy import Engine

from newsletter.config import Settings

log = logging.getLogger(__name__)


def run_processes(engine: Engine, settings: Settings, *, web: bool, scheduler: bool, worker: bool,
                  host: str | None = None, port: int | None = None,
                  echo: Callable[[str], None] = print) -> None:
    stop = threading.Event()
    threads: list[threading.Thread] = []
    server = None

    # Installed first, so a SIGTERM during start-up already means "stop cleanly".
    def handler(signum, _frame):
        echo(f"signal {signum}: finishing the work in hand, then stopping")
        stop.set()
        if server is not None:
            server.should_exit = True

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)

    if scheduler:
        from newsletter.schedule import run_scheduler, zone_of

        threads.append(threading.Thread(target=run_scheduler, args=(engine, settings, stop), name="scheduler"))
        echo(f"scheduler: drafts on {settings.schedule.draft_day} {settings.schedule.draft_time}, "
             f"checks due issues every {settings.schedule.tick_seconds:g} s ({zone_of(settings)})")
    if worker:
        from newsletter.delivery.worker import run_worker

        threads.append(threading.Thread(target=run_worker, kwargs=dict(engine=engine, settings=settings,
                                                                       stop=stop, echo=echo), name="worker"))
    if web:
        import uvicorn

        from newsletter.web.app import create_app, server_options

        app = create_app(settings, engine=engine, with_sender=True)
        server = uvicorn.Server(uvicorn.Config(app, **server_options(settings, host, port)))
        # uvicorn's own signal handling would only stop the web part: we stop everything together.
        server.install_signal_handlers = lambda: None

    for thread in threads:
        thread.start()
    try:
        if server is not None and not stop.is_set():
            server.run()
            stop.set()
        else:
            while not stop.wait(0.5):
                pass
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        echo("stopped")
