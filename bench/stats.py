"""The statistics at scale: every figure the console and the API show, over a million deliveries.

A throw-away PostgreSQL schema filled with generate_series: N readers (each with a
"subscribed" consent event spread over 8 weeks), the sample week's issue sent to all of them
(98% sent, 1% failed, 1% skipped; its counters recounted from those rows, as after a bulk load), a "delivered" event for 95% of deliveries, 1% hard
bounces, 0.05% complaints, opens for 30%, 1% unsubscribes after the issue, and a vote by 5% of
readers on each of its comparisons. Then each report runs `--repeat` times, parallel query off;
printed: the best and the worst wall time (the worst is usually the first, cold-cache run) and
the least CPU time the PostgreSQL backend spent (/proc/PID/stat), which a busy machine does
not inflate as it does wall time.

    python -m bench stats [--readers 1000000] [--repeat 5] [--pg URL] [--keep] [--schema KEPT]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import event, text
from sqlalchemy.engine import make_url

from bench.sample import PG, pg_schema, write_config
from newsletter.content.importer import import_files, sample_files
from newsletter.db import make_engine, session_scope, utcnow
from newsletter.issues.drafting import draft_issue
from newsletter.migrate import upgrade
from newsletter.tallies import rebuild
from newsletter.reports.attention import failed_deliveries, missed_schedules
from newsletter.reports.audience import growth, readers_by_status
from newsletter.reports.stats import issue_stats
from newsletter.reports.votes import vote_digest
from newsletter.web.console.dashboard import dashboard

FILL = [
    "INSERT INTO subscriber (email, name, status, created_at, token_key) SELECT 'reader' || g || '@example.com', "
    "'', CASE WHEN g % 100 = 0 THEN 'unsubscribed' ELSE 'active' END, now(), '' FROM generate_series(1, :n) g",
    "INSERT INTO consent_event (subscriber_id, kind, source, detail, created_at) SELECT id, 'subscribed', 'import', "
    "'', now() - (id % 56) * interval '1 day' FROM subscriber",
    "INSERT INTO delivery (issue_id, subscriber_id, state, attempts, created_at) SELECT :issue, id, "
    "CASE WHEN id % 100 = 1 THEN 'failed' WHEN id % 100 = 2 THEN 'skipped' ELSE 'sent' END, 1, now() FROM subscriber",
    "INSERT INTO webhook_event (provider, provider_event_id, kind, email, delivery_id, issue_id, message_key, "
    "occurred_at, received_at, detail) SELECT 'bench', 'e' || d.id, CASE WHEN d.id % 100 = 3 THEN 'bounced_hard' "
    "WHEN d.id % 2000 = 5 THEN 'complained' ELSE 'delivered' END, 'x@example.com', d.id, d.issue_id, 'd' || d.id, "
    "now(), now(), "
    "'' FROM delivery d WHERE d.state = 'sent' AND (d.id % 20 <> 7 OR d.id % 100 = 3)",
    "INSERT INTO tracking_event (issue_id, subscriber_id, kind, link, created_at) SELECT :issue, subscriber_id, "
    "'open', -1, now() FROM delivery WHERE id % 10 < 3",
    "INSERT INTO consent_event (subscriber_id, kind, source, detail, created_at) SELECT id, 'unsubscribed', 'link', "
    "'', now() - interval '1 hour' FROM subscriber WHERE status = 'unsubscribed'",
    "INSERT INTO vote (comparison_id, subscriber_id, tool_id, created_at, updated_at) SELECT i.comparison_id, s.id, "
    "(SELECT tool_id FROM comparison_tool t WHERE t.comparison_id = i.comparison_id AND t.position = s.id % 2), "
    "now() - (s.id % 14) * interval '1 day', now() - (s.id % 14) * interval '1 day' "
    "FROM issue_item i CROSS JOIN subscriber s WHERE i.issue_id = :issue AND s.id % 20 = 0",
]


def fill(engine, settings, readers: int) -> int:
    """The schema filled; returns the issue's id."""
    upgrade(engine)
    import_files(engine, sample_files())
    issue_id = draft_issue(engine, settings, "2026-W48").issue.id
    with engine.begin() as connection:
        connection.execute(text("UPDATE issue SET state = 'sent', started_at = :at WHERE id = :id"),
                           {"at": utcnow() - timedelta(days=1), "id": issue_id})
        for statement in FILL:
            connection.execute(text(statement), {"n": readers, "issue": issue_id})
    with session_scope(engine) as session:  # rows written around the paths that count them: recount
        rebuild(session)
    with engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
    return issue_id


def backend_cpu(pids: list[int]) -> float:
    """CPU seconds (user + system) the PostgreSQL backends `pids` have used: on a machine shared
    with other work, wall time counts the waits for a core, CPU time only the work done."""
    tick, total = os.sysconf("SC_CLK_TCK"), 0.0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def timed(name: str, call, repeat: int, pids: list[int]) -> dict:
    times, cpu = [], []
    for _ in range(repeat):
        started, before = time.perf_counter(), backend_cpu(pids)
        call()
        times.append(time.perf_counter() - started)
        cpu.append(backend_cpu(pids) - before)
    return {"report": name, "best_ms": round(min(times) * 1000, 1), "worst_ms": round(max(times) * 1000, 1),
            "cpu_ms": round(min(cpu) * 1000, 1)}


def measure(engine, settings, issue_id: int, repeat: int) -> list[dict]:
    """Each report `repeat` times, with parallel query off so that the one backend's CPU time is
    the whole query's (the backends' pids are noted as the pool connects them)."""
    pids: list[int] = []

    @event.listens_for(engine, "connect")
    def _serial(dbapi_connection, _record) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SET max_parallel_workers_per_gather = 0")
            cursor.execute("SELECT pg_backend_pid()")
            pids.append(cursor.fetchone()[0])

    engine.dispose()
    checks = [
        ("issue_stats (last 12 issues)", lambda: issue_stats(engine, 12)),
        ("issue_stats (one issue)", lambda: issue_stats(engine, issue_id=issue_id)),
        ("vote_digest (all comparisons)", lambda: vote_digest(engine)),
        ("vote_digest (the issue's)", lambda: vote_digest(engine, issue_id=issue_id)),
        ("growth (8 weeks)", lambda: growth(engine, settings.site.zone)),
        ("readers_by_status", lambda: readers_by_status(engine)),
        ("attention (missed, failed)", lambda: (missed_schedules(engine, settings, utcnow()),
                                                failed_deliveries(engine))),
        ("dashboard (every figure)", lambda: dashboard(settings, engine)),
    ]
    return [timed(name, call, repeat, pids) for name, call in checks] + [cli_stats(settings, repeat)]


def cli_stats(settings, repeat: int) -> dict:
    """`newsletter stats` as an operator runs it: a new process, start-up included; its CPU time
    (user + system, the kernel's accounting of waited-for children) and wall time."""
    import resource
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env["NEWSLETTER_DATABASE__URL"] = settings.database.url
    env["NEWSLETTER_SECRET_KEY"] = "bench-secret-" + "b" * 40
    times, cpu = [], []
    for _ in range(repeat):
        before, started = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
        subprocess.run([sys.executable, "-m", "newsletter", "stats"], env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return {"report": "`newsletter stats` (process)", "best_ms": round(min(times) * 1000, 1),
            "worst_ms": round(max(times) * 1000, 1), "cpu_ms": round(min(cpu) * 1000, 1)}


def run(pg: str, readers: int, repeat: int, keep: bool, schema: str = "") -> list[dict]:
    """In a new schema (filled here), or in `schema` kept by an earlier --keep run (migrated to
    the current revision first, which also times the migrations on a million rows)."""
    with pg_schema(pg, "bench_stats", keep) as fresh, tempfile.TemporaryDirectory() as tmp:
        url = fresh if not schema else str(make_url(pg).update_query_dict({"options": f"-csearch_path={schema}"}))
        settings = write_config(Path(tmp), url)
        engine = make_engine(settings.database.url)
        try:
            started = time.perf_counter()
            if schema:
                upgrade(engine)
                with engine.connect() as connection:
                    connection.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
                    issue_id = connection.execute(text("SELECT max(id) FROM issue")).scalar_one()
                print(f"upgraded the kept schema in {time.perf_counter() - started:.1f} s")
            else:
                issue_id = fill(engine, settings, readers)
                print(f"filled {readers} readers / deliveries in {time.perf_counter() - started:.1f} s")
            return measure(engine, settings, issue_id, repeat)
        finally:
            engine.dispose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench stats", description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--pg", default=PG, help="PostgreSQL URL (a schema is created and dropped in it)")
    parser.add_argument("--keep", action="store_true", help="keep the schema afterwards")
    parser.add_argument("--schema", default="", help="measure in this schema kept by an earlier --keep run")
    args = parser.parse_args(argv)
    for row in run(args.pg, args.readers, args.repeat, args.keep, args.schema):
        print(f"{row['report']:<32} wall best {row['best_ms']:>8} ms, worst {row['worst_ms']:>8} ms; "
              f"{'its CPU' if row['report'].startswith('`') else 'PostgreSQL CPU'} {row['cpu_ms']:>7} ms")
