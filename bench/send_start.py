"""Send start: from `newsletter issue send` to the first message at an SMTP sink, with workers running.

An operator presses send and watches the first copies arrive; until this was measured the wait
was 5–7 s (CLI start, enqueue, idle workers asleep between polls, per-worker compile). Steps, in a
throw-away schema of the PostgreSQL database (default: the tests' one):
1. N active readers (generate_series) and the three sample weeks drafted (setup, not timed);
2. `newsletter worker --processes P` started and left idle (every heartbeat in, then a pause);
3. per round: a random pause (so the send meets the workers anywhere in their poll interval), then
   `newsletter issue send ID --yes --ignore-checks` as a subprocess; timed from its start until the sink (aiosmtpd,
   in this process) holds the first message, and until it holds all N;
4. the workers stopped, one issue queued, and a fresh `newsletter worker` started: timed from its
   start to its first message (a worker starts sending within 1 s of being started).
Also the CPU time (user + system, from the kernel's child accounting) of `newsletter --help` and of
`newsletter issue --help`, which touch no database.

Run: `python -m bench send_start [--baseline DIR]` (needs PostgreSQL; ~1 min per run); DIR: a source tree
of other code to compare with, e.g. `git archive main | tar -x -C DIR`.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, date
from pathlib import Path

from aiosmtpd.controller import Controller
from sqlalchemy import func, select, text

from bench.report import write_section
from bench.sample import PG, pg_schema, smtp_mail, write_config
from bench.smtp_send import _free_port, machine
from newsletter.content.importer import import_files, sample_files
from newsletter.db import make_engine, session_scope
from newsletter.delivery.models import WorkerHeartbeat
from newsletter.delivery.sender import start_send
from newsletter.issues.drafting import draft_issue
from newsletter.migrate import upgrade

START, END = "<!-- bench:send_start -->", "<!-- /bench:send_start -->"
SECRET = "bench-secret-" + "b" * 40
WEEKS = ("2026-W46", "2026-W47", "2026-W48")


@dataclass
class ClockedSink:
    """An aiosmtpd handler that notes when each message arrived (time.time(): comparable with the
    send's start as the database recorded it)."""

    arrivals: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server, session, envelope) -> str:
        with self.lock:
            self.arrivals.append(time.time())
        return "250 OK"

    def wait(self, count: int, since: int, timeout: float) -> float:
        """The arrival time of message number `since + count` (waits for it)."""
        deadline = time.monotonic() + timeout
        while len(self.arrivals) < since + count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {len(self.arrivals) - since} of {count} messages arrived in {timeout} s")
            time.sleep(0.002)
        return self.arrivals[since + count - 1]


def child_cpu(command: list[str], cwd: Path, env: dict) -> float:
    """CPU seconds (user + system) `command` took, from the kernel's accounting of waited-for children."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(command, cwd=cwd, env=env, check=True, capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _prepare(url: str, folder: Path, port: int, readers: int, processes: int) -> tuple[object, list[int]]:
    settings = write_config(folder, url, smtp_mail(port))
    engine = make_engine(settings.database.url)
    upgrade(engine)
    import_files(engine, sample_files())
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO subscriber (email, name, status, created_at) "
            "SELECT 'reader' || g || '@example.com', '', 'active', now() FROM generate_series(1, :n) g"
        ), {"n": readers})
    return engine, [draft_issue(engine, settings, week).issue.id for week in WEEKS]


def _started_at(engine, issue_id: int) -> float:
    """When the send was started, as `start_send` wrote it (just before its COMMIT)."""
    with engine.connect() as connection:
        started = connection.execute(text("SELECT started_at FROM issue WHERE id = :i"), {"i": issue_id}).scalar_one()
    return started.replace(tzinfo=started.tzinfo or UTC).timestamp()


def _workers_idle(engine, processes: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with session_scope(engine) as session:
            if session.execute(select(func.count()).select_from(WorkerHeartbeat)).scalar_one() >= processes:
                return
        if time.monotonic() > deadline:
            raise RuntimeError("the workers did not start")
        time.sleep(0.1)


def stop_process(process: subprocess.Popen) -> None:
    """SIGTERM, as an operator stops workers; SIGKILL to the group if they are not gone in 30 s."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _reset(engine, issue_id: int) -> None:
    """An issue sent in an earlier round back to draft with an empty outbox (a throw-away schema:
    this is the bench reusing its two weeks, never something the product does)."""
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM delivery WHERE issue_id = :i"), {"i": issue_id})
        connection.execute(text("UPDATE issue SET state = 'draft', started_at = NULL, finished_at = NULL "
                                "WHERE id = :i"), {"i": issue_id})


def _sink_and_env(source: Path | None) -> tuple:
    """A clocked SMTP sink on a free port, started, and the environment for our processes (that
    source tree's code when given)."""
    sink, port = ClockedSink(), _free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    # Without PYTHONDONTWRITEBYTECODE: the first start writes the bytecode caches, as an installed
    # package has them; with it every worker start compiled the package from source (~0.1 s of CPU).
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_") and k != "PYTHONDONTWRITEBYTECODE"}
    env["NEWSLETTER_SECRET_KEY"] = SECRET
    if source is not None:
        env["PYTHONPATH"] = str(source)
    return sink, port, controller, env


def run(readers: int, processes: int, poll: float, rounds: int, pg: str = PG, source: Path | None = None) -> dict:
    """One whole measurement; `source`: run the CLI and workers from that source tree instead."""
    result: dict = {"readers": readers, "processes": processes, "load": os.getloadavg()[0], "rounds": [],
                    "code": "before" if source else "after"}
    sink, port, controller, env = _sink_and_env(source)
    newsletter = [sys.executable, "-m", "newsletter"]
    try:
        with pg_schema(pg, "bench_start") as url, tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            engine, issues = _prepare(url, folder, port, readers, processes)
            result["help_cpu"] = min(child_cpu(newsletter + ["--help"], folder, env) for _ in range(3))
            result["issue_help_cpu"] = min(child_cpu(newsletter + ["issue", "--help"], folder, env) for _ in range(3))
            workers = subprocess.Popen(newsletter + ["worker", "--processes", str(processes)], cwd=folder, env=env,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            try:
                _workers_idle(engine, processes)
                time.sleep(poll + 1)  # every worker has found nothing to do and sleeps
                for number in range(rounds):
                    issue_id = issues[number % 2]
                    if number >= 2:
                        _reset(engine, issue_id)
                    time.sleep(random.uniform(0, poll))  # anywhere in the workers' poll interval
                    since = len(sink.arrivals)
                    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
                    started = time.time()
                    # --ignore-checks: the sample weeks are in the past; the checks still run (and are timed)
                    sent = subprocess.run(newsletter + ["issue", "send", str(issue_id), "--yes", "--ignore-checks"],
                                          cwd=folder, env=env, capture_output=True, text=True)
                    returned = time.time() - started
                    after = resource.getrusage(resource.RUSAGE_CHILDREN)
                    if sent.returncode:
                        raise RuntimeError(f"issue send failed: {sent.stdout}{sent.stderr}")
                    first = sink.wait(1, since, 60)
                    every = sink.wait(readers, since, 600) - started
                    result["rounds"].append({
                        "cli_s": returned, "first_s": first - started, "all_s": every,
                        "cli_cpu": after.ru_utime - cpu.ru_utime + after.ru_stime - cpu.ru_stime,
                        "committed_s": first - _started_at(engine, issue_id)})
            finally:
                stop_process(workers)
            start_send(engine, issues[-1])  # queued while no worker runs
            since = len(sink.arrivals)
            started = time.time()
            late = subprocess.Popen(newsletter + ["worker"], cwd=folder, env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, start_new_session=True)
            try:
                result["worker_first_s"] = sink.wait(1, since, 60) - started
            finally:
                stop_process(late)
            engine.dispose()
    finally:
        controller.stop()
    result["machine"], result["date"] = machine(), date.today().isoformat()
    return result


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) process `pid` has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def worker_start(rounds: int, readers: int = 200, pg: str = PG, source: Path | None = None,
                 profile: Path | None = None) -> list[dict]:
    """The "worker start" case alone, `rounds` times: an issue queued with no worker running, then
    `newsletter worker` started; per round the wall time from its start to the first message at the
    sink and the worker's CPU time at that moment (read from /proc while it runs). `profile`: run
    the worker under cProfile, writing the stats there (the last round's)."""
    sink, port, controller, env = _sink_and_env(source)
    command = [sys.executable, *(["-m", "cProfile", "-o", str(profile)] if profile else []), "-m", "newsletter",
               "worker"]
    results = []
    try:
        with pg_schema(pg, "bench_wstart") as url, tempfile.TemporaryDirectory() as tmp:
            engine, issues = _prepare(url, Path(tmp), port, readers, 1)
            for number in range(rounds):
                issue_id = issues[number % len(issues)]
                _reset(engine, issue_id)
                start_send(engine, issue_id)
                since, started = len(sink.arrivals), time.time()
                late = subprocess.Popen(command, cwd=tmp, env=env, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, start_new_session=True)
                try:
                    first = sink.wait(1, since, 60) - started
                    results.append({"first_s": first, "cpu_s": proc_cpu(late.pid), "load": os.getloadavg()[0]})
                finally:
                    stop_process(late)
            engine.dispose()
    finally:
        controller.stop()
    return results


def markdown(results: list[dict]) -> str:
    r = results[0]
    loads = ", ".join(f"{x['load']:.1f}" for x in results)
    lines = [
        START,
        "## Send start: `issue send` to the first message, workers already running",
        "",
        f"{r['date']}, {r['machine']}, PostgreSQL on the same machine, load average "
        f"{loads} at the start of each run (a shared machine, busy with "
        "other sessions' work: the wall times below stretch with it; compare before and after, measured one after "
        f"the other). `python -m bench send_start --readers {r['readers']} --processes {r['processes']}`: "
        f"`newsletter worker --processes {r['processes']}` idle, then `newsletter issue send ID --yes "
        "--ignore-checks` (the sample weeks are old; the checks still run) as a subprocess at a random point of "
        "the workers' 5 s poll interval; the sink is aiosmtpd in the bench process. *before*: the code before this "
        "change (`--baseline`), *after*: with it (NOTIFY wake-up, no Alembic import for the schema check, the "
        "issue compiled once per process).",
        "",
        "| code | round | `issue send` returned (its CPU) | first message: after `issue send` | after the "
        "send's commit | all messages |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for x in results:
        for number, y in enumerate(x["rounds"], 1):
            lines.append(f"| {x['code']} | {number} | {y['cli_s']:.2f} s ({y['cli_cpu']:.2f} s) | {y['first_s']:.2f} s "
                         f"| {y['committed_s']:.2f} s | {y['all_s']:.2f} s |")
    lines += ["", "| code | first message after `issue send`: median (worst) | after the commit: median (worst) | "
              "CPU of `issue send`: median | a worker started with a send waiting: first message after | "
              "CPU of `newsletter --help` | of `newsletter issue --help` |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for x in results:
        firsts = [y["first_s"] for y in x["rounds"]]
        commits = [y["committed_s"] for y in x["rounds"]]
        lines.append(f"| {x['code']} | {statistics.median(firsts):.2f} s ({max(firsts):.2f} s) | "
                     f"{statistics.median(commits):.2f} s ({max(commits):.2f} s) | "
                     f"{statistics.median(y['cli_cpu'] for y in x['rounds']):.2f} s | "
                     f"{x['worker_first_s']:.2f} s | {x['help_cpu']:.2f} s | {x['issue_help_cpu']:.2f} s |")
    lines += ["", "Targets (issue 18): first message within 1 s of `issue send`, a worker sending within 1 s of "
              "its start, commands without a database under 0.3 s CPU (best of 3, user + system).", END]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench send_start", description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=6, help="sends timed with the workers running")
    parser.add_argument("--poll", type=float, default=5.0, help="the workers' poll interval (as configured)")
    parser.add_argument("--pg", default=PG, help="PostgreSQL URL (a schema is created and dropped in it)")
    parser.add_argument("--write", action=argparse.BooleanOptionalAction, default=True,
                        help="update BENCHMARKS.md (default: yes)")
    parser.add_argument("--baseline", type=Path, default=None, help="a source tree of the code to compare with")
    parser.add_argument("--worker-start", type=int, default=0, metavar="ROUNDS",
                        help="only the worker-start case, ROUNDS times (with --baseline: that code too); prints")
    parser.add_argument("--profile", type=Path, default=None, help="with --worker-start: cProfile the worker")
    args = parser.parse_args(argv)
    if args.worker_start:
        codes = [("before", args.baseline)] if args.baseline else []
        for code, source in [*codes, ("after", None)]:
            for row in worker_start(args.worker_start, pg=args.pg, source=source, profile=args.profile):
                print(f"{code}: worker start to first message {row['first_s']:.2f} s, worker CPU by then "
                      f"{row['cpu_s']:.2f} s, load {row['load']:.1f}")
        return
    results = [run(args.readers, args.processes, args.poll, args.rounds, args.pg, args.baseline)] if args.baseline \
        else []
    results.append(run(args.readers, args.processes, args.poll, args.rounds, args.pg))
    print(markdown(results))
    if args.write:
        print(f"written to {write_section(START, END, markdown(results))}")


if __name__ == "__main__":
    main()
