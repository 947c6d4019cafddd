"""`newsletter serve` on PostgreSQL sends confirmations from a child process of lower priority
(issue 18 point 4): the request threads no longer share the GIL and the connection pool with
building and sending mail, and the kernel answers web requests before it sends."""

from __future__ import annotations

import multiprocessing
import os
import time

from newsletter.delivery.background import SenderProcess
from newsletter.priority import lower_priority


def wait_for(check, seconds: float = 60.0):
    deadline = time.time() + seconds
    while not (value := check()) and time.time() < deadline:
        time.sleep(0.1)
    return value


def test_confirmations_leave_from_a_niced_child_process(pg_url, live_factory):
    # pg_url first: its schema is dropped after the server (and its child) stopped.
    live = live_factory(pg_url, with_sender=True, sender_process=True, DELIVERY__NICE=7)
    child = next(p for p in multiprocessing.active_children() if p.name == "newsletter-sender")
    assert child.pid != os.getpid()
    started = time.time()
    assert live.subscribe("child@example.com").status_code == 200
    assert time.time() - started < 2  # the request did not wait for the mail
    mails = wait_for(live.mails)
    assert mails and mails[0]["To"] == "child@example.com"
    assert os.getpriority(os.PRIO_PROCESS, child.pid) == max(7, os.getpriority(os.PRIO_PROCESS, 0))


def test_the_sender_process_stops_on_shutdown(tmp_path, pg_url):
    from newsletter.config import load_settings
    from newsletter.db import make_engine
    from tests.conftest import TEST_SECRET, write_config
    from tests.db_templates import migrate_fresh

    # nice 0: on a busy test machine a niced child may take longer to start than shutdown waits.
    settings = load_settings(write_config(tmp_path, pg_url, extra="[delivery]\nnice = 0\n"))
    engine = make_engine(pg_url)
    migrate_fresh(engine)  # the child's heartbeat needs its table
    engine.dispose()
    sender = SenderProcess(settings, TEST_SECRET, interval=0.2)
    sender.start()
    assert wait_for(sender.process.is_alive, 10)
    sender.shutdown()
    assert not sender.process.is_alive() and sender.process.exitcode == 0


def test_lower_priority_only_ever_raises_the_nice_value():
    before = os.getpriority(os.PRIO_PROCESS, 0)
    assert lower_priority(0) == before  # 0: leave it alone
    assert lower_priority(before) == before
    assert os.getpriority(os.PRIO_PROCESS, 0) == before


def test_newsletter_worker_takes_delivery_nice_for_itself_and_its_processes(tmp_path):
    """The send yields the CPU to the web: `run_workers` lowers its priority before anything starts."""
    import subprocess
    import sys

    from tests.conftest import TEST_SECRET, write_config

    config = write_config(tmp_path)
    code = ("import os; from newsletter.config import load_settings; from newsletter.db import make_engine; "
            "from newsletter.migrate import upgrade; from newsletter.delivery.pool import run_workers; "
            f"s = load_settings({str(config)!r}); upgrade(make_engine(s.database.url)); "
            "r = run_workers(s, 1, until_idle=True, echo=lambda _l: None); "
            "print(r.ok, os.getpriority(os.PRIO_PROCESS, 0))")
    env = {**os.environ, "NEWSLETTER_SECRET_KEY": TEST_SECRET, "NEWSLETTER_DELIVERY__NICE": "6"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["True", str(max(6, os.getpriority(os.PRIO_PROCESS, 0)))], out.stderr


def test_the_access_log_is_off_unless_asked_for(tmp_path):
    """uvicorn's access log would write every reader's personal links (and cost CPU per request)."""
    from newsletter.config import load_settings
    from newsletter.web.app import server_options
    from tests.conftest import write_config

    assert server_options(load_settings(write_config(tmp_path)))["access_log"] is False
    on = load_settings(write_config(tmp_path, extra="[web]\naccess_log = true\n"))
    assert server_options(on)["access_log"] is True


def test_a_constant_answer_is_rendered_once_and_served_alike(tmp_path):
    """The signup's and the one-click unsubscribe's pages do not change per request (issue 18)."""
    from newsletter.web.deps import WebContext
    from newsletter.web.responses import message
    from newsletter.config import load_settings
    from tests.conftest import write_config

    site = load_settings(write_config(tmp_path)).site
    ctx = WebContext(settings=None, engine=None, secret="", categories=list)
    built = []

    def build():
        built.append(1)
        return message(site, "Check your inbox", ["Open it."], status=200)

    first, second = ctx.same_answer("signup", build), ctx.same_answer("signup", build)
    assert built == [1] and first.body == second.body and b"Check your inbox" in first.body
    assert first is not second and second.status_code == 200


def test_serve_exempts_the_built_app_from_the_collector(tmp_path):
    """A full collection over the app's ~170,000 objects held the GIL for 60 ms (issue 18):
    `newsletter serve` freezes them once the app is built (in a child here: freezing is for the
    life of a process)."""
    import subprocess
    import sys

    from tests.conftest import write_config

    config = write_config(tmp_path)
    script = ("import gc, sys\n"
              "from newsletter.config import load_settings\n"
              "from newsletter.web.app import create_app, settle_heap\n"
              f"app = create_app(load_settings({str(config)!r}), secret='s' * 40, with_sender=False)\n"
              "before = gc.get_freeze_count()\n"
              "settle_heap()\n"
              "print(before, gc.get_freeze_count(), len(gc.get_objects()))\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=tmp_path)
    before, frozen, left = map(int, out.stdout.split())
    assert before == 0 and frozen > 100_000 and left < frozen // 10
