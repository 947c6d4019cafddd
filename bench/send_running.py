"""A send with the workers already running, end to end: from the moment the send starts
(`start_send`, what `issue send` does) until the issue is `sent`, against Postfix's smtp-source
into the same sink in the same run.

`bench scale` times `newsletter worker --until-idle` started after the enqueue, so its rate
includes a process start (imports, the warm-up, the fork): at 20,000 readers that is a fifth of
the send. A publication runs its workers as a service (docs/operations.md), and issue 18 asks
both: a worker that starts sending within a second of being started, and a send that starts at
once with workers running. This bench measures the second case whole: wake-up, each worker's
compile of the new issue, every message, and the finish (the issue's state, polled every 20 ms).

Run: `python -m bench send_running --subscribers 20000` (needs PostgreSQL and postfix).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from sqlalchemy import Engine, make_url, text

from bench.cpu import Group, descendants
from bench.report import write_section
from bench.sample import PG, SECRET, pg_schema, queued_issue, smtp_mail, write_config
from bench.smtp_send import Sink, machine, time_reference
from newsletter.config import SmtpSettings
from newsletter.delivery.sender import start_send

START, END = "<!-- bench:send_running -->", "<!-- /bench:send_running -->"
APP = f"wv-bench-running-{os.getpid()}"  # the workers' backends, found by their application_name


def _backends(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.execute(text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :app"),
                                  {"app": APP}).scalar_one()


def _state(engine: Engine, issue_id: int) -> str:
    with engine.connect() as connection:
        return connection.execute(text("SELECT state FROM issue WHERE id = :id"), {"id": issue_id}).scalar_one()


def _start_workers(folder: Path, url: str, processes: int, engine: Engine) -> subprocess.Popen:
    """`newsletter worker --processes P` as a service, returned once every process is connected
    and idle (its backends seen, then a second of quiet)."""
    named = make_url(url).update_query_dict({"application_name": APP}).render_as_string(hide_password=False)
    config = folder / "config.toml"
    config.write_text(config.read_text().replace(url, named))
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(NEWSLETTER_CONFIG=str(config), NEWSLETTER_SECRET_KEY=SECRET)
    worker = subprocess.Popen([sys.executable, "-m", "newsletter", "worker", "--processes", str(processes)],
                              cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=open(folder / "worker.log", "w"))
    deadline = time.monotonic() + 60
    while _backends(engine) < processes:
        if worker.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"workers did not start: {(folder / 'worker.log').read_text()[-2000:]}")
        time.sleep(0.2)
    time.sleep(1.0)
    return worker


def run(subscribers: int, processes: int, pg: str = PG) -> dict:
    result: dict = {"subscribers": subscribers, "processes": processes, "load": os.getloadavg()[0],
                    "machine": machine(), "date": date.today().isoformat()}
    sessions = processes * SmtpSettings().pool_size
    with pg_schema(pg, "bench_running") as url, tempfile.TemporaryDirectory() as tmp, Sink() as sink:
        folder = Path(tmp)
        os.environ["NEWSLETTER_SECRET_KEY"] = SECRET
        settings = write_config(folder, url, smtp_mail(sink.port))
        with queued_issue(settings, subscribers, start=False) as drafted:
            count = min(20_000, subscribers)
            result["reference_rate"] = count / time_reference(sink.port, count, 84_500, sessions)
            worker = _start_workers(folder, url, processes, drafted.engine)
            try:
                tree = Group(lambda: [worker.pid, *descendants(worker.pid)], fresh=False)
                tree.read()
                started = time.perf_counter()
                start_send(drafted.engine, drafted.issue_id)
                committed = time.perf_counter()
                while _state(drafted.engine, drafted.issue_id) != "sent":
                    if time.perf_counter() - started > 3600 or worker.poll() is not None:
                        raise RuntimeError(f"the send did not finish: {(folder / 'worker.log').read_text()[-2000:]}")
                    time.sleep(0.02)
                finished = time.perf_counter()
                result["workers_us"] = 1e6 * tree.read() / subscribers
            finally:
                worker.terminate()
                worker.wait(60)
    result.update(enqueue_s=committed - started, send_s=finished - started, after_commit_s=finished - committed)
    result["rate"] = subscribers / result["send_s"]
    result["ratio"] = result["rate"] / result["reference_rate"]
    result["ratio_after_commit"] = subscribers / result["after_commit_s"] / result["reference_rate"]
    return result


def markdown(r: dict) -> str:
    return "\n".join([
        START, "## A send with the workers running: `start_send` to the issue `sent` (issue 18 point 1)", "",
        f"{r['date']}, {r['machine']}, load average {r['load']:.1f} at the start. `python -m bench send_running "
        f"--subscribers {r['subscribers']} --processes {r['processes']}`: `newsletter worker --processes "
        f"{r['processes']}` running and idle, then the send started (the enqueue of every delivery) and timed "
        "until the issue is `sent`; the sample week (~83 KB) into Postfix's smtp-sink; the reference is "
        "smtp-source into the same sink in the same run.", "",
        "| readers | enqueue | start_send → sent | ours | smtp-source | ours / smtp-source | "
        "after the enqueue's commit | workers' CPU per message |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {r['subscribers']:,} | {r['enqueue_s']:.2f} s | {r['send_s']:.2f} s | {r['rate']:.0f} msg/s | "
        f"{r['reference_rate']:.0f} msg/s | **{r['ratio']:.2f}** | {r['ratio_after_commit']:.2f} | "
        f"{r['workers_us']:.0f} µs |",
        END])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench send_running", description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=20_000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--pg", default=PG, help="PostgreSQL URL (a schema is created and dropped in it)")
    parser.add_argument("--write", action=argparse.BooleanOptionalAction, default=True,
                        help="update BENCHMARKS.md (default: yes)")
    args = parser.parse_args(argv)
    result = run(args.subscribers, args.processes, args.pg)
    print({k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()})
    if args.write:
        print(f"written to {write_section(START, END, markdown(result))}")


if __name__ == "__main__":
    main()
