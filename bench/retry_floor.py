"""A rescan behind a retry, and the progress page's rate: do they grow with the issue's rows? (PostgreSQL)

An issue of N deliveries whose first row waits for a retry due in an hour and whose rows are sent
up to the last 1,000 (the front). A worker's claim at a rescan (`claim_batch.ClaimCursor`, every
RESCAN_SECONDS by every worker: the floor found again, the kept retries that are due, the walk
from the floor taking a batch of 500) is run R times, each in a transaction rolled back (the same
rows every time), and measured by PostgreSQL: the `delivery` rows it read
(pg_stat_xact_user_tables) and the CPU of the backend that ran it (/proc). The reference, on the
same rows in the same run, is the retry without its `delivery_retry` entry: the floor held at its
id, as every retry did before migration 0033.

The progress page's rate (sent in the last 5 minutes, once a second while the page is open) is
measured the same way on the same rows: the count over the issue's rows it ran before, against
the sends per 10 s it reads now (newsletter/send_rate.py, migration 0034); both must agree.

Run: `python -m bench retry_floor [--sizes 20000,200000] [--rescans 5]` (needs PostgreSQL).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import bindparam, text
from sqlmodel import Session

from bench.cpu import proc_cpu
from bench.report import write_section
from bench.sample import PG, pg_schema, queued_issue, write_config
from bench.smtp_send import machine
from newsletter import send_rate
from newsletter.db import utcnow
from newsletter.delivery import claim_batch, outbox
from newsletter.delivery.claim_batch import ClaimCursor
from newsletter.delivery.models import Delivery
from newsletter.workflow.sending import RATE_WINDOW

START, END = "<!-- bench:retry_floor -->", "<!-- /bench:retry_floor -->"
BATCH, FRONT = 500, 1000
LEASE = timedelta(minutes=5)
# The `delivery` rows this transaction has read so far (PostgreSQL's own count, current at once).
_READ = text("SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) FROM pg_stat_xact_user_tables "
             "WHERE relid = 'delivery'::regclass")
KEYS = ("reference", "ours", "rate reference", "rate ours")


def _behind_a_retry(engine, issue_id: int) -> tuple[int, int]:
    """The first row a retry due in an hour, every row up to the last FRONT sent; (retry id, front id)."""
    now = utcnow()
    with Session(engine) as session:
        rows, _ = ClaimCursor(issue_id, "bench").claim(session, now, BATCH, LEASE, None)
        ids = [row[0] for row in rows]
        outbox.record(session, now, [(i, f"<{i}@x>", None) for i in ids[1:]],
                      [(ids[0], now + timedelta(hours=1), "451 later")], [])
        session.commit()
    with engine.begin() as connection:
        front = connection.execute(text("SELECT id FROM delivery WHERE issue_id = :i ORDER BY id DESC "
                                        "OFFSET :n LIMIT 1"), {"i": issue_id, "n": FRONT - 1}).scalar_one()
        connection.execute(text("UPDATE delivery SET state = 'sent', sent_at = now() - interval '1 hour' "
                                "WHERE issue_id = :i AND state = 'queued' AND id < :front"),
                           {"i": issue_id, "front": front})
        connection.execute(text("ANALYZE delivery"))
    with Session(engine) as session:  # written around the send: its sends per 10 s follow the rows
        send_rate.rebuild(session, [issue_id])
        session.commit()
    return ids[0], front


def _one_rescan(engine, issue_id: int, floor: int | None) -> tuple[int, float, int | None]:
    """A claim at a rescan from the floor `floor` (the one this worker found RESCAN_SECONDS ago),
    rolled back: (rows read, backend CPU seconds, the floor it found)."""
    cursor = ClaimCursor(issue_id, "bench", floor=floor, rescan_at=0.0)
    claim_batch._FLOORS.clear()  # only this cursor's own floor
    with Session(engine) as session:
        pid = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
        before, cpu = session.execute(_READ).scalar_one(), proc_cpu(pid)
        rows, _ = cursor.claim(session, utcnow(), BATCH, LEASE, None)
        cpu, after = proc_cpu(pid) - cpu, session.execute(_READ).scalar_one()
        session.rollback()
    assert len(rows) == BATCH, len(rows)
    return after - before, cpu, cursor.floor


_OLD_RATE = text("SELECT count(*) FROM delivery WHERE issue_id = :i AND state = 'sent' AND sent_at >= :since")


def _one_progress(engine, issue_id: int, old: bool) -> tuple[int, float, float]:
    """What the progress page reads for its rate (sent in the last 5 minutes), once: the count
    over the issue's rows it ran before (`old`) or the sends per 10 s; (rows read, backend CPU
    seconds, messages sent in the window)."""
    now = utcnow()
    since = now - RATE_WINDOW
    with Session(engine) as session:
        pid = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
        before, cpu = session.execute(_READ).scalar_one(), proc_cpu(pid)
        if old:
            sent = session.execute(_OLD_RATE.bindparams(bindparam("since", type_=Delivery.__table__.c.sent_at.type)),
                                   {"i": issue_id, "since": since}).scalar_one()
        else:
            sent = send_rate.sent_since(session, issue_id, since, now)
        cpu, after = proc_cpu(pid) - cpu, session.execute(_READ).scalar_one()
        session.rollback()
    return after - before, cpu, sent


def measure(subscribers: int, rescans: int, pg: str) -> dict:
    """Rows read and backend CPU per rescan, ours and the reference, alternating, at `subscribers`."""
    with pg_schema(pg, "wv_retryfloor_bench") as url, tempfile.TemporaryDirectory() as tmp:
        settings = write_config(Path(tmp), url, '[mail]\ntransport = "file"\n'
                                'from_address = "Weekly Verdicts <verdicts@weeklyverdicts.example>"\n')
        with queued_issue(settings, subscribers) as queued:
            engine, issue_id = queued.engine, queued.issue_id
            retry, front = _behind_a_retry(engine, issue_id)
            with engine.begin() as connection:
                kept = connection.execute(text("SELECT delivery_id, issue_id, due_at FROM delivery_retry")).all()
            found: dict[str, list[tuple[int, float]]] = {key: [] for key in KEYS}
            figures: dict[str, set[int]] = {}
            for _ in range(rescans):
                for key in ("reference", "ours"):
                    with engine.begin() as connection:  # the reference: the retry not kept beside the walk
                        connection.execute(text("DELETE FROM delivery_retry"))
                        if key == "ours":
                            connection.execute(text("INSERT INTO delivery_retry VALUES (:d, :i, :t)"),
                                               [dict(zip("dit", row)) for row in kept])
                    # The floor this worker found at its previous rescan: the retry's id for the
                    # reference (it holds it there), the front for ours (it moved on).
                    read, cpu, floor = _one_rescan(engine, issue_id, retry if key == "reference" else front)
                    assert floor == (retry if key == "reference" else front), (key, floor)
                    found[key].append((read, cpu))
            for _ in range(rescans):
                for key in ("reference", "ours"):
                    read, cpu, sent = _one_progress(engine, issue_id, old=key == "reference")
                    found["rate " + key].append((read, cpu))
                    figures.setdefault(key, set()).add(round(sent))
    assert figures["reference"] == figures["ours"], figures  # the same figure
    return {key: {"rows": statistics.median(r for r, _ in runs), "cpu_ms": 1000 * statistics.fmean(c for _, c in runs)}
            for key, runs in found.items()} | {"behind": subscribers - FRONT}


def run(sizes: list[int], rescans: int, pg: str = PG) -> dict:
    result = {"load": os.getloadavg()[0], "rescans": rescans, "sizes": sizes}
    result["runs"] = [measure(size, rescans, pg) for size in sizes]
    result["load_end"] = os.getloadavg()[0]
    result["machine"], result["date"] = machine(), date.today().isoformat()
    return result


def markdown(r: dict) -> str:
    rows = [f"| {m['behind']:,} | {what} | {m[ref]['rows']:,.0f} | {m[ref]['cpu_ms']:.1f} ms | "
            f"**{m[ours]['rows']:,.0f}** | **{m[ours]['cpu_ms']:.1f} ms** |" for m in r["runs"]
            for what, ref, ours in (("a claim at a rescan", "reference", "ours"),
                                    ("the progress page's rate", "rate reference", "rate ours"))]
    sizes = ",".join(str(s) for s in r["sizes"])
    return "\n".join([
        START,
        "## A rescan behind a retry, and the progress page's rate: rows read (PostgreSQL, migrations 0033, 0034)",
        "",
        f"{r['date']}, {r['machine']}, PostgreSQL on the same machine, load average {r['load']:.1f} at the "
        f"start, {r['load_end']:.1f} at the end. `python -m bench retry_floor --sizes {sizes} --rescans "
        f"{r['rescans']}`: one issue whose first delivery waits for a retry due in an hour, sent up to "
        f"its last {FRONT:,} rows; a worker's claim at a rescan (floor, kept retries, a batch of {BATCH} "
        "from the floor), rolled back and run again: the median of the `delivery` rows it read "
        "(pg_stat_xact_user_tables), the mean of its backend's CPU (/proc, 10 ms ticks). *Before*: the "
        "retry without its `delivery_retry` entry, holding the floor at its id, as before 0033; same rows, "
        "same run. "
        "The progress page's rate (sent in the last 5 minutes), measured the same way: *before* the "
        "count over the issue's rows it ran, *after* the sends per 10 s (issue_send_rate, 0034); "
        "both gave the same figure.",
        "",
        "| rows sent behind the retry | what | before: rows read | before: backend CPU | after: rows read | "
        "after: backend CPU |",
        "|---:|---|---:|---:|---:|---:|",
        *rows,
        END,
    ])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench retry_floor", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="20000,200000", help="deliveries of the issue, comma-separated")
    parser.add_argument("--rescans", type=int, default=5, help="rescans measured per size and variant")
    parser.add_argument("--pg", default=PG, help="PostgreSQL URL (a schema is created and dropped in it)")
    parser.add_argument("--write", action=argparse.BooleanOptionalAction, default=True,
                        help="update BENCHMARKS.md (default: yes)")
    args = parser.parse_args(argv)
    os.environ.setdefault("NEWSLETTER_SECRET_KEY", "bench-secret-" + "r" * 40)
    result = run([int(size) for size in args.sizes.split(",")], args.rescans, args.pg)
    for m in result["runs"]:
        for what, ref, ours in (("rescan", "reference", "ours"), ("rate", "rate reference", "rate ours")):
            print(f"{m['behind']:,} rows behind the retry, {what}: before {m[ref]['rows']:,.0f} rows read, "
                  f"{m[ref]['cpu_ms']:.1f} ms backend CPU; after {m[ours]['rows']:,.0f} rows, "
                  f"{m[ours]['cpu_ms']:.1f} ms")
    print(f"load {result['load']:.1f} -> {result['load_end']:.1f}")
    if args.write:
        print(f"written to {write_section(START, END, markdown(result))}")


if __name__ == "__main__":
    main()
