"""Where a worker's start and a send's start go: a timeline per process (wall and CPU).

Two cases, each process of `newsletter worker --processes P` probed (bench/timeline_probe.py: a
line at each step, wall seconds since the case began and the process's own CPU seconds):
- `worker`: N readers queued, no worker running; the workers started; until the first message
  reaches the sink (aiosmtpd in this process, which notes the arrival time). Issue 18: "a
  worker starts sending within 1 s of being started".
- `running`: the workers started and idle; then `start_send` (what `issue send` does) in this
  process; until the issue is `sent` (smtp-sink). Issue 18: a 20,000-reader send with the
  workers running, at >= 0.8 of smtp-source's rate.
The workers' bytecode caches are written on their first start, as an installed package has them
(PYTHONDONTWRITEBYTECODE is dropped: with it every start compiles the package from source).

Run: `python -m bench start_timeline [--readers 200] [--running 20000] [--baseline DIR]`
(PostgreSQL; DIR: a source tree of other code, e.g. `git archive main | tar -x -C DIR`).
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

from aiosmtpd.controller import Controller
from sqlalchemy import Engine, text

from bench.report import write_section
from bench.sample import PG, SECRET, pg_schema, queued_issue, smtp_mail, write_config
from bench.send_start import ClockedSink, stop_process
from bench.smtp_send import Sink, _free_port, machine

START, END = "<!-- bench:start_timeline -->", "<!-- /bench:start_timeline -->"
PROBE = Path(__file__).resolve().parent / "timeline_probe.py"
# the steps each case's table shows (the probe writes more)
WORKER_STEPS = ("interpreter ready", "imported newsletter.cli", "imported newsletter.config.loading",
                "imported newsletter.delivery.pool", "engine end", "warm_parent end", "_child start",
                "make_transport end", "__enter__ end", "_prepare end", "_claim end", "_send start")
RUNNING_STEPS = ("wait end", "_prepare start", "_prepare end", "_claim end", "_send end", "_finish end")


def _workers(folder: Path, processes: int, out: Path, t0: float, each: int, source: Path | None) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_") and k != "PYTHONDONTWRITEBYTECODE"}
    env.update(NEWSLETTER_SECRET_KEY=SECRET, WV_TIMELINE_OUT=str(out), WV_TIMELINE_T0=repr(t0),
               WV_TIMELINE_EACH=str(each))
    if source is not None:
        env["PYTHONPATH"] = str(source)
    return subprocess.Popen([sys.executable, str(PROBE), "worker", "--processes", str(processes)], cwd=folder,
                            env=env, stdout=subprocess.DEVNULL, stderr=open(folder / "worker.log", "a"),
                            start_new_session=True)


def _lines(out: Path) -> list[tuple[int, float, float, str]]:
    rows = []
    for line in out.read_text().splitlines():
        pid, wall, cpu, label = line.split("\t")
        rows.append((int(pid), float(wall), float(cpu), label))
    return rows


def _names(rows: list) -> dict[int, str]:
    """parent, worker 1, worker 2 … in the order they first wrote."""
    names: dict[int, str] = {}
    for pid, *_ in rows:
        if pid not in names:
            names[pid] = "parent" if not names else f"worker {len(names)}"
    return names


def _requeue(engine: Engine, issue_id: int) -> None:
    """The bench's issue back to sending with every row queued (a throw-away schema)."""
    with engine.begin() as connection:
        connection.execute(text("UPDATE delivery SET state = 'queued', lease_until = NULL, claimed_by = NULL, "
                                "attempts = 0 WHERE issue_id = :i"), {"i": issue_id})
        connection.execute(text("UPDATE issue SET state = 'sending', finished_at = NULL WHERE id = :i"),
                           {"i": issue_id})


def worker_case(readers: int, processes: int, rounds: int, pg: str, source: Path | None) -> list[dict]:
    """Per round: the steps until the first message, per process (wall since the start, CPU)."""
    sink, port = ClockedSink(), _free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    results = []
    try:
        with pg_schema(pg, "bench_timeline") as url, tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            settings = write_config(folder, url, smtp_mail(port))
            with queued_issue(settings, readers) as queued:
                for number in range(rounds + 1):  # round 0 writes the bytecode caches: not counted
                    _requeue(queued.engine, queued.issue_id)
                    out, since = folder / f"worker{number}.tsv", len(sink.arrivals)
                    started = time.time()
                    workers = _workers(folder, processes, out, started, 1, source)
                    try:
                        first = sink.wait(1, since, 120) - started
                    finally:
                        stop_process(workers)
                    if number:
                        results.append({"first_s": first, "rows": _lines(out), "load": os.getloadavg()[0]})
    finally:
        controller.stop()
    return results


# start_send as `issue send` runs it, in a process of the code measured (the baseline's for
# "before"), connected before the clock starts; prints when it began and committed, and the
# CPU its PostgreSQL backend spent on it (from /proc: the server runs on this machine).
ENQUEUE = """
import os, sys, time
from pathlib import Path
from sqlalchemy import text
from newsletter.db import make_engine, session_scope, utcnow
from newsletter.delivery.sender import start_in
def cpu(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
engine = make_engine(sys.argv[1])
with session_scope(engine) as session:
    backend = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
    before, began = cpu(backend), time.time()
    start_in(session, int(sys.argv[2]), utcnow())
print(began, time.time(), cpu(backend) - before)
"""


def _start_send(url: str, issue_id: int, folder: Path, source: Path | None) -> tuple[float, float, float]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    if source is not None:
        env["PYTHONPATH"] = str(source)
    # cwd: `python -c` puts it first on sys.path, ahead of PYTHONPATH (this tree's code otherwise)
    done = subprocess.run([sys.executable, "-c", ENQUEUE, url, str(issue_id)], env=env, check=True,
                          capture_output=True, text=True, cwd=folder)
    began, committed, cpu = (float(value) for value in done.stdout.split())
    return began, committed, cpu


def running_case(readers: int, processes: int, pg: str, source: Path | None) -> dict:
    """The workers idle, then start_send; the steps of each process until the issue is sent."""
    with pg_schema(pg, "bench_timeline_run") as url, tempfile.TemporaryDirectory() as tmp, Sink() as sink:
        folder = Path(tmp)
        settings = write_config(folder, url, smtp_mail(sink.port))
        with queued_issue(settings, readers, start=False) as drafted:
            out, began = folder / "running.tsv", time.time()
            workers = _workers(folder, processes, out, began, 1_000_000, source)
            try:
                time.sleep(8)  # started, idle, listening
                t0, committed, enqueue_cpu = _start_send(url, drafted.issue_id, folder, source)
                t0, committed = t0 - began, committed - began
                while True:
                    with drafted.engine.connect() as connection:
                        if connection.execute(text("SELECT state FROM issue WHERE id = :i"),
                                              {"i": drafted.issue_id}).scalar_one() == "sent":
                            break
                    time.sleep(0.02)
                sent = time.time() - began
            finally:
                stop_process(workers)
            everything = _lines(out)
    return {"t0": t0, "commit_s": committed - t0, "enqueue_cpu": enqueue_cpu, "sent_s": sent - t0, "load": os.getloadavg()[0],
            "readers": readers, "all_rows": everything, "rows": [row for row in everything if row[1] >= t0 - 0.001]}


LABELS = {
    "interpreter ready": "interpreter up (python started)", "imported newsletter.cli": "CLI imported (typer, rich)",
    "imported newsletter.config.loading": "engine and settings code imported (SQLAlchemy core, pydantic)",
    "imported newsletter.delivery.pool": "worker code imported (SQLAlchemy, SQLModel, models, rendering)",
    "engine end": "settings read, schema checked (first connection)",
    "warm_parent end": "warm-up: mappers, templates, the sending issue compiled", "_child start": "forked",
    "make_transport end": "SMTP pool made", "__enter__ end": "first heartbeat written",
    "_prepare end": "issue prepared (frozen view read, template found)", "_claim end": "first claim (20 rows)",
    "_send start": "first batch built and handed to SMTP",
}


def worker_table(results: list[dict]) -> list[tuple[str, str, float, float]]:
    """(process, step, wall since the start, CPU of the process in the step): medians over rounds,
    for the parent and the worker process that sent first."""
    steps: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for result in results:
        parent = result["rows"][0][0]
        sender = next(pid for pid, _w, _c, label in result["rows"] if label == "_send start")
        seen, cpu_before = set(), {parent: 0.0, sender: 0.0}
        for pid, wall, cpu, label in result["rows"]:
            if pid not in cpu_before or label not in WORKER_STEPS or (pid, label) in seen:
                continue
            seen.add((pid, label))
            name = "parent" if pid == parent else "worker (the first to send)"
            steps.setdefault((name, label), []).append((wall, cpu - cpu_before[pid]))
            cpu_before[pid] = cpu
    rows = [(process, label, _median([w for w, _ in got]), _median([c for _, c in got]))
            for (process, label), got in steps.items() if len(got) == len(results)]
    return sorted(rows, key=lambda row: row[2])


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2] if len(ordered) % 2 else (ordered[len(ordered) // 2 - 1] + ordered[len(ordered) // 2]) / 2


def running_table(result: dict, all_rows: list) -> list[tuple[str, str, float, float]]:
    """Per worker: woken, prepared, first claim and batch, last batch, finish (wall since
    start_send, CPU of the process since then)."""
    names, base = _names(all_rows), {}
    for pid, wall, cpu, _label in all_rows:
        if wall < result["t0"] - 0.001:
            base[pid] = cpu
    firsts: dict[tuple[int, str], tuple[float, float]] = {}
    lasts: dict[int, tuple[float, float]] = {}
    for pid, wall, cpu, label in result["rows"]:
        point = (wall - result["t0"], cpu - base.get(pid, 0.0))
        if label in RUNNING_STEPS and (pid, label) not in firsts:
            firsts[(pid, label)] = point
        if label == "_send end":
            lasts[pid] = point
    rows = [(names[pid], label, *point) for (pid, label), point in firsts.items()]
    rows += [(names[pid], "last batch handed over", *point) for pid, point in lasts.items()]
    return sorted(rows, key=lambda row: row[2])


RUN_LABELS = {"wait end": "woken (NOTIFY)", "_prepare start": "prepare: frozen view, compile",
              "_prepare end": "prepared", "_claim end": "first claim", "_send end": "first batch handed over",
              "_finish end": "finished (the issue `sent` by one of them)"}


def markdown(runs: list[tuple[str, list[dict], dict | None]]) -> str:
    first = runs[0][1][0] if runs[0][1] else {"load": 0}
    lines = [START, "## Start-up timelines: a worker's start and a send's start (issue 18 point 2)", "",
             f"{date.today().isoformat()}, {machine()}, load average {first['load']:.1f}. "
             "`python -m bench start_timeline`: each process of `newsletter worker --processes 2` probed "
             "(bench/timeline_probe.py); wall seconds since the case began, CPU seconds of that process in the step "
             "(medians over the rounds). The workers run at `[delivery] nice` 10: on a busy machine their wall "
             "times stretch far more than their CPU."]
    for code, worker, running in runs:
        if worker:
            firsts = ", ".join(f"{r['first_s']:.2f}" for r in worker)
            loads = ", ".join(f"{r['load']:.1f}" for r in worker)
            lines += ["", f"**{code}: a worker started with {worker[0].get('readers', 200)} readers queued** (first "
                      f"message at the sink after {firsts} s; load {loads})", "",
                      "| process | step | wall at its end | CPU in the step |", "|---|---|---:|---:|"]
            for process, label, wall, cpu in worker_table(worker):
                lines.append(f"| {process} | {LABELS.get(label, label)} | {wall:.3f} s | {cpu:.3f} s |")
        if running:
            lines += ["", f"**{code}: a {running['readers']:,}-reader send with the workers running** (enqueue "
                      f"committed after {running['commit_s']:.2f} s, its PostgreSQL backend's CPU {running['enqueue_cpu']:.2f} s; issue sent after {running['sent_s']:.2f} s; "
                      f"load {running['load']:.1f})", "",
                      "| process | step | wall since start_send | CPU since start_send |", "|---|---|---:|---:|"]
            for process, label, wall, cpu in running["table"]:
                lines.append(f"| {process} | {RUN_LABELS.get(label, label)} | {wall:.3f} s | {cpu:.3f} s |")
    return "\n".join([*lines, END])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench start_timeline", description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=200, help="queued for the worker-start case")
    parser.add_argument("--rounds", type=int, default=3, help="worker starts timed (after one uncounted)")
    parser.add_argument("--running", type=int, default=20_000, help="readers of the running case (0: skip it)")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--pg", default=PG, help="PostgreSQL URL (a schema is created and dropped in it)")
    parser.add_argument("--baseline", type=Path, default=None, help="a source tree of the code to compare with")
    parser.add_argument("--write", action=argparse.BooleanOptionalAction, default=True,
                        help="update BENCHMARKS.md (default: yes)")
    args = parser.parse_args(argv)
    os.environ["NEWSLETTER_SECRET_KEY"] = SECRET
    runs = []
    for code, source in [*([("before", args.baseline)] if args.baseline else []), ("after", None)]:
        worker = worker_case(args.readers, args.processes, args.rounds, args.pg, source) if args.rounds else []
        for result in worker:
            result["readers"] = args.readers
        running = None
        if args.running:
            running = running_case(args.running, args.processes, args.pg, source)
            running["table"] = running_table(running, running.pop("all_rows"))
        runs.append((code, worker, running))
    print(markdown(runs))
    if args.write:
        print(f"written to {write_section(START, END, markdown(runs))}")


if __name__ == "__main__":
    main()
