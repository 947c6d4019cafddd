"""`newsletter worker --processes N`: N worker processes, forked from a parent that did the
start-up work once for all of them.

Why: a worker process's start-up was a quarter of a 20,000-reader send (issue 18). The processes
came from a clean forkserver, which imported the whole worker (~1.1 CPU-s) a second time after
the parent had, and every process then parsed the issue templates and compiled the issue (Jinja →
MJML → HTML) on its own. Now the parent, which has the worker code imported to get here anyway,
also configures the ORM mappers, parses the issue templates and compiles the whole-issue template
of every sending issue (issues/render.py `issue_template`), closes every database connection and
forks. The children start from there: no import, no parse, no compile of what the parent
compiled; their own engine, SMTP pool, heartbeat and worker id (pid and nonce are per process).

What a reader gets cannot change through this: the compiled templates are keyed by the whole view
and settings (`issue_template`); a child whose view of an issue differs from the parent's (a
variant, a send started later, a changed figure) compiles its own, exactly as before.

fork is safe here only because at that point the parent holds no other thread and no open
connection (close_connections: the engines themselves stay, so a child's first connection skips
SQLAlchemy's first-connect checks and finds the statements the warm-up compiled); where that is
not so, or off Linux, the workers start from a clean forkserver as before.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from newsletter.config import Settings
from newsletter.db import close_connections, get_engine, session_scope
from newsletter.delivery.variants import SendVariants
from newsletter.delivery.worker import install_stop_handlers, run_worker, sending_issues
from newsletter.priority import lower_priority
from newsletter.issues import render
from newsletter.issues.models import Issue
from newsletter.issues.states import IssueState
from newsletter.templating import use_operator_templates

log = logging.getLogger(__name__)


def is_sqlite(settings: Settings) -> bool:
    return make_url(settings.database.url).get_backend_name() == "sqlite"


def _compile_whole_issue(engine: Engine, settings: Settings, issue_id: int) -> None:
    """The template most readers of a sending issue get (the whole issue, no "changed" entries):
    prepared and compiled the way a worker's send does (delivery/variants.py), so a child's
    identical view finds it."""
    with session_scope(engine) as session:
        issue = session.get(Issue, issue_id)
        if issue is None or issue.state != IssueState.sending.value:
            return
        variants = SendVariants.prepare(session, settings, issue)
        key = variants.keys(session, [(0, None)])[0]  # no reader has id 0: one with no earlier issue
    variants.template(key)


def warm_parent(settings: Settings) -> int:
    """Before forking the workers: what each of them would otherwise do alone. Returns how many
    issue templates were compiled. A failure is only logged: each worker then does it itself and
    meets the error where it always did (at the send)."""
    from sqlalchemy.orm import configure_mappers

    before = render.compiles
    try:
        configure_mappers()
        render.warm_up()
        engine = get_engine(settings.database.url)
        for issue_id in sending_issues(engine):
            _compile_whole_issue(engine, settings, issue_id)
    except Exception as exc:
        log.warning("could not prepare the sending issues ahead of the worker processes: %s", exc)
    finally:
        close_connections()  # no connection may be shared with a child
    return render.compiles - before


def _child(settings: Settings, until_idle: bool, poll_seconds: float | None, number: int) -> None:
    """Entry point of a worker process (forked from the warmed-up parent, or from the clean
    forkserver; its own engine either way)."""
    stop = threading.Event()
    install_stop_handlers(stop)
    # force: a forked child inherits the parent's handler; its lines say which worker wrote them.
    logging.basicConfig(level=logging.WARNING, format=f"%(levelname)s [worker {number}] %(name)s: %(message)s",
                        force=True)
    inherited = render.compiles

    def echo(line: str) -> None:
        print(f"[worker {number}] {line}", flush=True)

    # settings did not come through load_settings
    use_operator_templates(settings.site.operator_templates, settings.site.template_cache)
    engine = get_engine(settings.database.url)
    try:
        run_worker(engine, settings, until_idle=until_idle, poll_seconds=poll_seconds, echo=echo, stop=stop)
    except KeyboardInterrupt:
        sys.exit(130)
    finally:
        engine.dispose()
    echo(f"stopped; issue templates compiled in this process: {render.compiles - inherited}")


@dataclass
class PoolResult:
    processes: int
    exit_codes: list[int]

    @property
    def ok(self) -> bool:
        return all(code == 0 for code in self.exit_codes)


def _context(settings: Settings, echo: Callable[[str], None]) -> multiprocessing.context.BaseContext:
    """fork after the warm-up where that is safe (Linux, no other thread in this process), else a
    clean forkserver that imports the worker code once for all children."""
    if sys.platform == "linux" and threading.active_count() == 1:
        compiled = warm_parent(settings)
        if compiled:
            echo(f"compiled {compiled} sending issue(s) once for every worker process")
        close_connections()  # this process's connections (the CLI's schema check too) stay its own
        gc.freeze()  # the children's collections neither scan nor copy what they inherit
        return multiprocessing.get_context("fork")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["newsletter.cli", "newsletter.delivery.pool", "newsletter.models", "psycopg",
                                    f"newsletter.delivery.transports.{settings.mail.transport}"])
    return context


def run_workers(
    settings: Settings, processes: int, until_idle: bool = False, poll_seconds: float | None = None,
    echo: Callable[[str], None] = print,
) -> PoolResult:
    """Run `processes` worker processes and wait for them; forwards SIGTERM/SIGINT to them. First
    of all this process takes `[delivery] nice`: its threads and processes inherit it."""
    lower_priority(settings.delivery.nice)
    if processes > 1 and is_sqlite(settings):
        echo(f"SQLite allows one writer: running 1 worker process instead of {processes} "
             "(use PostgreSQL for more)")
        processes = 1
    if processes <= 1:
        stop = threading.Event()
        install_stop_handlers(stop)
        try:
            run_worker(get_engine(settings.database.url), settings, until_idle, poll_seconds, echo, stop)
        except KeyboardInterrupt:
            return PoolResult(1, [130])
        return PoolResult(1, [0])
    context = _context(settings, echo)
    children = [context.Process(target=_child, args=(settings, until_idle, poll_seconds, n + 1),
                                name=f"newsletter-worker-{n + 1}") for n in range(processes)]
    parent = os.getpid()

    def forward(signum, _frame):
        if os.getpid() != parent:  # a child forked a moment ago, before its own handlers: it stops
            raise SystemExit(128 + signum)
        for child in children:
            if child.pid is not None and child.is_alive():
                try:
                    os.kill(child.pid, signum)
                except ProcessLookupError:
                    pass

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for child in children:
            child.start()
        echo(f"{processes} worker processes started (pids {', '.join(str(c.pid) for c in children)})")
        while any(child.is_alive() for child in children):
            for child in children:
                child.join(timeout=0.2)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return PoolResult(processes, [child.exitcode if child.exitcode is not None else 1 for child in children])
