"""Scale: N subscribers on PostgreSQL, enqueued with one INSERT … SELECT, delivered by
`newsletter worker --processes P --until-idle` to Postfix's smtp-sink; peak RSS per worker.

Steps, in a throw-away schema of the PostgreSQL database (default: the tests' one):
1. N active subscribers with one INSERT … SELECT generate_series (not timed: setup);
2. `start_send`: the issue's outbox filled in one INSERT … SELECT (timed: the enqueue);
3. a reference: Postfix's smtp-source sending ready messages of the same size into the same sink
   (what this machine can move over SMTP today, with no database and no message building);
4. delivery of `--deliver` of them (default: all; the rest are made an earlier issue's sent rows
   first, so the workers find exactly that many, in a table of N rows) by real worker processes over SMTP into smtp-sink,
   sampling every worker's VmRSS (/proc/PID/status) every 0.5 s.

The issue's targets for N = 1,000,000 on this 2-core machine: enqueue < 60 s, all delivered in
< 15 min, every worker flat and < 250 MB. When only part is delivered the full time is
extrapolated from the measured rate (stated as such in BENCHMARKS.md).

Run: `python -m bench scale` (a million, all delivered: ~7–9 min on a 2-core machine), or with
`--deliver 200000` for a shorter, extrapolated run (needs PostgreSQL and postfix).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import resource
import textwrap
import time
from datetime import date
from pathlib import Path

from sqlalchemy import Engine, make_url, text

from bench.cpu import Group, Machine, Sampler, descendants, per_tenth, proc_cpu
from bench.report import write_section
from bench.sample import PG, pg_schema, queued_issue, smtp_mail, write_config
from bench.smtp_send import Sink, machine, time_reference
from newsletter.config import DeliverySettings, SmtpSettings
from newsletter.db import session_scope
from newsletter.delivery import outbox
from newsletter.issues.drafting import draft_issue

START, END = "<!-- bench:scale -->", "<!-- /bench:scale -->"
MILLION = 1_000_000


def markers(subscribers: int) -> tuple[str, str]:
    """The section's markers: the million (the issue's size) keeps the plain ones; another size
    gets its own, so a 20,000-reader run no longer replaces the million's table."""
    if subscribers == MILLION:
        return START, END
    return f"<!-- bench:scale:{subscribers} -->", f"<!-- /bench:scale:{subscribers} -->"
SECRET = "bench-secret-" + "b" * 40


def children(pid: int) -> list[int]:
    found = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            found += map(int, Path(f"/proc/{pid}/task/{task}/children").read_text().split())
    except OSError:
        pass
    return found


def worker_pids(parent: int) -> list[int]:
    """The worker processes: the parent's children (forked from it, newsletter/delivery/pool.py),
    or, where they start from a forkserver (off Linux, or older code), that server's children."""
    found = []
    for child in children(parent):
        try:
            forkserver = b"forkserver" in Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        found += children(child) if forkserver else [child]
    return found


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def run_workers(folder: Path, processes: int, monitor: Engine, sink_pid: int,
                total: int) -> tuple[float, dict[int, list[tuple[float, float]]], Sampler]:
    """`newsletter worker --processes P --until-idle` with the config in `folder`, to the end;
    its wall time, every worker's RSS samples and the CPU of each process group (the workers'
    process tree, their PostgreSQL backends, the sink) with the messages delivered so far, every
    0.5 s. Killed if the benchmark is interrupted."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(NEWSLETTER_CONFIG=str(folder / "config.toml"), NEWSLETTER_SECRET_KEY=SECRET)
    samples: dict[int, list[tuple[float, float]]] = {}
    with open(folder / "worker.log", "w+") as log:  # a file, not a pipe: a full pipe would stall it
        base = _updates(monitor)
        started = time.perf_counter()
        worker = subprocess.Popen([sys.executable, "-m", "newsletter", "worker", "--processes", str(processes),
                                   "--until-idle"], cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=log)
        tree = lambda: [worker.pid, *descendants(worker.pid)]  # noqa: E731
        cpu = Sampler({"workers": Group(tree), "workers_kernel": Group(tree, kernel_only=True),
                       "postgres": Group(lambda: _backends(monitor)),
                       "sink": Group(lambda: [sink_pid], fresh=False),
                       "autovacuum": Group(lambda: _autovacuum(monitor)),
                       "machine": Machine(), "steal": Machine("steal")},
                      lambda: min(total, (_updates(monitor) - base) // 2))  # a claim and a record per message
        try:
            while worker.poll() is None:
                for pid in worker_pids(worker.pid):
                    value = rss_mb(pid)
                    if value is not None:
                        samples.setdefault(pid, []).append((time.perf_counter() - started, value))
                cpu.sample(time.perf_counter() - started)
                with contextlib.suppress(subprocess.TimeoutExpired):  # the window ends when they exit,
                    worker.wait(0.5)  # not at the next sample (up to 0.5 s more: 10% of a 20,000 send)
        finally:
            if worker.poll() is None:  # interrupted: SIGTERM (the parent stops its workers), then kill
                worker.terminate()
                try:
                    worker.wait(30)
                except subprocess.TimeoutExpired:
                    worker.kill()
                    worker.wait()
        elapsed = time.perf_counter() - started
        cpu.sample(elapsed)
        if worker.returncode != 0:
            log.seek(0)
            raise RuntimeError(f"worker exited {worker.returncode}: {log.read()[-2000:]}")
    return elapsed, samples, cpu


# The workers' application_name: how their PostgreSQL backends are found. Unique per run: two
# benchmarks on one server (other worktrees) must not count each other's backends.
APP = f"wv-bench-worker-{os.getpid()}"


def _backends(monitor: Engine) -> list[int]:
    with monitor.connect() as connection:
        return list(connection.execute(text("SELECT pid FROM pg_stat_activity WHERE application_name = :app"),
                                       {"app": APP}).scalars())


def _autovacuum(monitor: Engine) -> list[int]:
    """PostgreSQL's autovacuum workers (any database): the enqueue's million new rows set them off
    during the send, on the same two cores."""
    with monitor.connect() as connection:
        return list(connection.execute(text("SELECT pid FROM pg_stat_activity "
                                            "WHERE backend_type = 'autovacuum worker'")).scalars())


def _updates(monitor: Engine) -> int:
    """Rows updated in the outbox so far (PostgreSQL's statistics, flushed about every second)."""
    with monitor.connect() as connection:
        connection.execute(text("SELECT pg_stat_clear_snapshot()"))
        return connection.execute(text(
            "SELECT n_tup_upd FROM pg_stat_user_tables WHERE relname = 'delivery' AND schemaname = current_schema()"
        )).scalar_one()


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _deliver_only(queued, settings, deliver: int) -> None:
    """Keep the table at N rows but leave only the first `deliver` of them queued: the rest become
    an earlier issue's sent rows (as after past sends), not final rows of this issue above its
    queue: a real send ends at its last row, where the claims that walk the issue's ids
    (claim_batch) stop."""
    earlier = draft_issue(queued.engine, settings, "2026-W47").issue.id
    with queued.engine.begin() as connection:
        connection.execute(text("UPDATE issue SET state = 'sent' WHERE id = :earlier"), {"earlier": earlier})
        connection.execute(text(
            "UPDATE delivery SET issue_id = :earlier, state = 'sent', sent_at = now() "
            "WHERE issue_id = :issue AND id > (SELECT min(id) FROM delivery WHERE issue_id = :issue) "
            "+ :deliver - 1"), {"issue": queued.issue_id, "deliver": deliver, "earlier": earlier})


def _reference(result: dict, sink: Sink, deliver: int, sessions: int) -> None:
    """The machine's speed today: Postfix's smtp-source (C, ready messages, no database) into the
    same sink, same message size, as many sessions as the workers use together."""
    count = min(20_000, max(deliver, 1000))
    before, sink_before = children_cpu(), proc_cpu(sink.process.pid)
    result["reference_rate"] = count / time_reference(sink.port, count, 84_500, sessions)
    result["reference_us"] = 1e6 * (children_cpu() - before) / count
    result["reference_sink_us"] = 1e6 * (proc_cpu(sink.process.pid) - sink_before) / count


def _figures(result: dict, samples: dict, cpu) -> None:
    """Per worker memory, rate, and CPU per message: whole send, from the first message on (start-up
    is a cost per send, not per message) and per tenth of the send."""
    workers = []
    for pid, series in samples.items():
        if len(series) < 4:
            continue  # a short-lived helper, not a worker
        values = [v for _, v in series]
        workers.append({"pid": pid, "peak_mb": max(values), "at_10pct_mb": values[len(values) // 10],
                        "end_mb": values[-1]})
    result["workers"] = workers
    result["rate"] = result["counts"].get("sent", 0) / result["deliver_s"]
    sent = max(result["counts"].get("sent", 0), 1)
    result["cpu_us"] = {name: 1e6 * value / sent for name, value in cpu.totals().items()}
    running = [sample for sample in cpu.samples if sample[1] > 0]
    start = running[0] if running else cpu.samples[0]
    result["startup_s"] = start[2]
    result["steady_us"] = {name: 1e6 * (cpu.totals()[name] - start[2][name]) / max(sent - start[1], 1)
                           for name in start[2]}
    result["tenths"] = per_tenth([(at, n - start[1], {k: v - start[2][k] for k, v in used.items()})
                                  for at, n, used in cpu.samples if n >= start[1]], sent - start[1])


def run(subscribers: int, deliver: int | None, processes: int, batch_size: int, pool_size: int,
        pg: str = PG, keep: bool = False) -> dict:
    deliver = subscribers if deliver is None else min(deliver, subscribers)
    result: dict = {"subscribers": subscribers, "deliver": deliver, "processes": processes,
                    "batch_size": batch_size, "pool_size": pool_size, "load": os.getloadavg()[0]}
    with pg_schema(pg, "bench_scale", keep) as url, tempfile.TemporaryDirectory() as tmp, Sink() as sink:
        folder = Path(tmp)
        os.environ["NEWSLETTER_SECRET_KEY"] = SECRET
        settings = write_config(folder, url, smtp_mail(sink.port) + textwrap.dedent(f"""
            pool_size = {pool_size}
            [delivery]
            batch_size = {batch_size}
            """))
        with queued_issue(settings, subscribers) as queued:
            result["insert_s"], result["enqueue_s"] = queued.insert_s, queued.enqueue_s
            if deliver < subscribers:
                _deliver_only(queued, settings, deliver)
            with queued.engine.begin() as connection:
                connection.execute(text("ANALYZE delivery"))
            _reference(result, sink, deliver, processes * pool_size)
            # The workers connect with their own application_name: their backends are found by it.
            workers_url = make_url(url).update_query_dict({"application_name": APP})
            config = folder / "config.toml"
            config.write_text(config.read_text().replace(url, workers_url.render_as_string(hide_password=False)))
            result["deliver_s"], samples, cpu = run_workers(folder, processes, queued.engine, sink.process.pid,
                                                            deliver)
            with session_scope(queued.engine) as session:
                result["counts"] = outbox.counts(session, queued.issue_id)
    result["settings"] = {"max_messages_per_connection": settings.mail.smtp.max_messages_per_connection,
                          "lease_seconds": settings.delivery.lease_seconds}
    _figures(result, samples, cpu)
    result["full_s"] = subscribers / result["rate"]
    result["machine"] = machine()
    result["date"] = date.today().isoformat()
    return result


def markdown(r: dict) -> str:
    peaks = ", ".join(f"{w['peak_mb']:.0f}" for w in r["workers"])
    flat = ", ".join(f"{w['at_10pct_mb']:.0f} → {w['end_mb']:.0f}" for w in r["workers"])
    partial = r["deliver"] < r["subscribers"]
    start, end = markers(r["subscribers"])
    size = "" if r["subscribers"] == MILLION else f" ({r['subscribers']:,} readers)"
    lines = [
        start,
        f"## Scale: PostgreSQL outbox, worker processes, smtp-sink{size}",
        "",
        f"{r['date']}, {r['machine']}, PostgreSQL on the same machine, load average {r['load']:.1f} at the "
        f"start. `python -m bench scale --subscribers {r['subscribers']} --deliver {r['deliver']} "
        f"--processes {r['processes']}`: batches of {r['batch_size']}, `pool_size = {r['pool_size']}` SMTP "
        "sessions per worker, every other setting as shipped (a new SMTP session every "
        f"{r['settings']['max_messages_per_connection']} messages, {r['settings']['lease_seconds']} s leases), "
        "real issue messages (the sample week, ~83 KB) into Postfix's `smtp-sink`.",
        "",
        "| step | measured | target (1,000,000) |",
        "|---|---:|---:|",
        f"| insert {r['subscribers']:,} subscribers (setup, one INSERT … SELECT generate_series) "
        f"| {r['insert_s']:.1f} s | |",
        f"| enqueue {r['subscribers']:,} deliveries (`start_send`, one INSERT … SELECT) | {r['enqueue_s']:.1f} s "
        "| < 60 s |",
        f"| deliver {r['counts'].get('sent', 0):,} with {r['processes']} worker processes | "
        f"{r['deliver_s']:.0f} s = {r['rate']:.0f} msg/s | |",
        f"| all {r['subscribers']:,} at that rate{' (extrapolated)' if partial else ''} | "
        f"{r['full_s'] / 60:.1f} min | < 15 min |",
        f"| reference, same run: Postfix `smtp-source` into the same sink (same size, "
        f"{r['processes'] * r['pool_size']} sessions, no database, ready messages) | "
        f"{r['reference_rate']:.0f} msg/s = {r['subscribers'] / r['reference_rate'] / 60:.1f} min for "
        f"{r['subscribers']:,}; ours / reference {r['rate'] / r['reference_rate']:.2f} | |",
        f"| peak RSS per worker process | {peaks} MB | < 250 MB, flat |",
        f"| RSS per worker at 10% of the run → at the end | {flat} MB | |",
        *cpu_lines(r),
        end,
    ]
    return "\n".join(lines)


_LABELS = {"workers": "workers", "postgres": "postgres", "sink": "sink", "autovacuum": "autovacuum (any database)",
           "machine": "whole machine, busy", "steal": "stolen by the hypervisor"}


def cpu_lines(r: dict) -> list[str]:
    """CPU per delivered message of each process group, over the send and per tenth of it."""
    cpu, tenths = r["cpu_us"], r["tenths"]
    steady, startup = r["steady_us"], r["startup_s"]
    lines = ["", "CPU per delivered message (µs, /proc), whole send including start-up: "
             f"our worker processes {cpu['workers']:.0f}, their PostgreSQL backends {cpu['postgres']:.0f}, "
             f"smtp-sink {cpu['sink']:.0f}; from the first message on (start-up: workers "
             f"{startup['workers']:.1f} s, backends {startup['postgres']:.1f} s of CPU): workers "
             f"{steady['workers']:.0f} (of which in the kernel {steady['workers_kernel']:.0f}), backends "
             f"{steady['postgres']:.0f}, smtp-sink {steady['sink']:.0f}. "
             f"The reference: smtp-source {r['reference_us']:.0f}, smtp-sink {r['reference_sink_us']:.0f}.", ""]
    if "machine" in steady:
        lines[-2] += (f" Meanwhile, from the first message on: autovacuum {steady['autovacuum']:.0f}, the whole "
                      f"machine busy {steady['machine']:.0f} (every process), stolen by the hypervisor "
                      f"{steady['steal']:.0f} µs per message.")
    if tenths:
        lines += ["| tenth of the send | " + " | ".join(str(k + 1) for k in range(10)) + " | last / first |",
                  "|---|" + "---:|" * 11]
        for name in ("workers", "postgres", "sink", "autovacuum", "machine", "steal"):
            if name not in tenths[0]:  # results from before these were read
                continue
            values = [t[name] for t in tenths]
            ratio = values[-1] / values[0] if values[0] else float("nan")
            lines.append(f"| {_LABELS[name]} (µs/msg) | " + " | ".join(f"{v:.0f}" for v in values) + f" | {ratio:.2f} |")
        lines += ["", drift_line(tenths)]
    return lines


def drift_line(tenths: list[dict[str, float]]) -> str:
    """The flatness of workers and backends with the machine's drift taken out. The sink does the
    same work for every message (same size, same commands), so its CPU per message moves only with
    the host (contention on a shared machine, other guests): dividing a group's last/first ratio by
    the sink's tells a cost that grows with the rows sent from a host that got slower."""
    def ratio(name: str) -> float:
        return tenths[-1][name] / tenths[0][name] if tenths[0][name] else float("nan")
    sink = ratio("sink")
    return (f"The sink's own last / first tenth: {sink:.2f} (its work per message does not change, so this "
            f"is the machine's drift); relative to it, last / first tenth: workers "
            f"{ratio('workers') / sink:.2f}, backends {ratio('postgres') / sink:.2f}.")


def write(result: dict) -> Path:
    """Replace this benchmark's section of BENCHMARKS.md (other benchmarks keep theirs)."""
    return write_section(*markers(result["subscribers"]), markdown(result))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench scale", description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=MILLION)
    parser.add_argument("--deliver", type=int, default=None, help="how many to deliver (default: all)")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=DeliverySettings().batch_size,
                        help="deliveries per claim (default: the shipped default)")
    parser.add_argument("--pool-size", type=int, default=SmtpSettings().pool_size,
                        help="SMTP sessions per worker (default: the shipped default)")
    parser.add_argument("--pg", default=PG, help="PostgreSQL URL (a schema is created and dropped in it)")
    parser.add_argument("--keep", action="store_true", help="keep the schema afterwards")
    parser.add_argument("--write", action=argparse.BooleanOptionalAction, default=True,
                        help="update BENCHMARKS.md (default: yes)")
    args = parser.parse_args(argv)
    result = run(args.subscribers, args.deliver, args.processes, args.batch_size, args.pool_size, args.pg, args.keep)
    print(f"scale: {args.subscribers} subscribers: insert {result['insert_s']:.1f} s, enqueue "
          f"{result['enqueue_s']:.1f} s; delivered {result['counts']} in {result['deliver_s']:.0f} s "
          f"({result['rate']:.0f} msg/s, all at that rate {result['full_s'] / 60:.1f} min; smtp-source "
          f"{result['reference_rate']:.0f} msg/s); workers "
          + ", ".join(f"peak {w['peak_mb']:.0f} MB ({w['at_10pct_mb']:.0f} → {w['end_mb']:.0f})"
                      for w in result["workers"]))
    print("\n".join(cpu_lines(result)))
    if args.write:
        print(f"written to {write(result)}")


if __name__ == "__main__":
    main()
