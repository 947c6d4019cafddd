"""Outbox: does a send keep its pace from the first batch to the last? (PostgreSQL)

`deliver` (the real loop: claim with its readers, message building, recording) runs
over N queued deliveries with a transport that accepts every message at once, so what is timed is
the database and the building, not a mail server. The rate over the last tenth of the send is
divided by the rate over the first tenth: 1.0 means a claim costs the same at the end of the queue
as at its start. The reference, in the same run on a fresh schema, is the same loop with every
claim a rescan (`claim_batch.ClaimCursor`: the lowest unfinished id found again, the scan from
there) instead of from the previous claim's lowest id.

Run: `python -m bench claims [--subscribers N]` (needs PostgreSQL; ~1 min at 200,000).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from pathlib import Path

from sqlalchemy import text

from bench.report import write_section
from bench.sample import PG, pg_schema, queued_issue, write_config
from bench.smtp_send import machine
from newsletter.config import Settings
from newsletter.delivery import claim_batch
from newsletter.delivery.sender import DeliverReport, deliver
from newsletter.delivery.transports.base import Outcome, SendResult
from newsletter.mail.message import OutgoingMessage

START, END = "<!-- bench:claims -->", "<!-- /bench:claims -->"
SECRET = "bench-secret-" + "c" * 40


class AcceptAll:
    """A transport that takes every message at once: the benchmark times the loop around it."""

    name = "accept-all"
    needs_bytes = False  # fields only, as for the JSON APIs: the building is not what is measured

    def send(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        return [SendResult(Outcome.sent, provider_id=None) for _ in messages]

    def close(self) -> None:
        pass


@contextmanager
def queued_send(subscribers: int, pg: str, prefix: str = "bench_claims") -> Iterator[tuple[Settings, object]]:
    """A fresh schema with `subscribers` queued deliveries of one issue, analysed, and the settings
    of a send in batches of 500 (bench/sample.queued_issue's handle as the second item)."""
    with pg_schema(pg, prefix) as url, tempfile.TemporaryDirectory() as tmp:
        settings = write_config(Path(tmp), url, """
            [mail]
            transport = "file"
            from_address = "Weekly Verdicts <verdicts@weeklyverdicts.example>"
            [delivery]
            batch_size = 500
            """)
        with queued_issue(settings, subscribers) as queued:
            with queued.engine.begin() as connection:
                connection.execute(text("ANALYZE delivery"))
            yield settings, queued


def one_send(subscribers: int, hinted: bool, pg: str) -> dict:
    """A fresh schema with `subscribers` queued deliveries, delivered in this process; the time of
    each batch's end, to compare the first tenth with the last."""
    with queued_send(subscribers, pg) as (settings, queued):
        marks: list[tuple[float, int]] = [(time.perf_counter(), 0)]

        def progress(report: DeliverReport) -> None:
            marks.append((time.perf_counter(), report.sent))

        saved = claim_batch.RESCAN_SECONDS
        claim_batch.RESCAN_SECONDS = saved if hinted else 0.0  # 0: every claim rescans from the floor
        try:
            report = deliver(queued.engine, settings, AcceptAll(), SECRET, queued.issue_id, progress=progress)
        finally:
            claim_batch.RESCAN_SECONDS = saved
    assert report.finished and report.sent == subscribers, report
    return {"total_s": marks[-1][0] - marks[0][0], "first": _rate(marks, 0.0, 0.1), "last": _rate(marks, 0.9, 1.0)}


def _rate(marks: list[tuple[float, int]], start: float, end: float) -> float:
    """Messages per second between the batches at `start` and `end` (fractions of the send)."""
    total = marks[-1][1]
    inside = [(t, n) for t, n in marks if start * total <= n <= end * total]
    (t0, n0), (t1, n1) = inside[0], inside[-1]
    return (n1 - n0) / (t1 - t0)


def run(subscribers: int, pg: str = PG) -> dict:
    os.environ.setdefault("NEWSLETTER_SECRET_KEY", SECRET)
    result = {"subscribers": subscribers, "load": os.getloadavg()[0]}
    result["reference"] = one_send(subscribers, hinted=False, pg=pg)
    result["ours"] = one_send(subscribers, hinted=True, pg=pg)
    result["machine"], result["date"] = machine(), date.today().isoformat()
    return result


def markdown(r: dict) -> str:
    rows = []
    for label, key in (("claims from the previous claim's lowest id, rescans from the floor every 10 s "
                        "(`claim_batch.ClaimCursor`, as workers run)", "ours"),
                       ("reference: every claim a rescan from the floor (the lowest unfinished id)", "reference")):
        m = r[key]
        rows.append(f"| {label} | {m['first']:.0f} | {m['last']:.0f} | {m['last'] / m['first']:.2f} | "
                    f"{m['total_s']:.1f} s |")
    return "\n".join([
        START,
        "## Outbox: pace from the first batch to the last (PostgreSQL)",
        "",
        f"{r['date']}, {r['machine']}, PostgreSQL on the same machine, load average {r['load']:.1f} at the "
        f"start. `python -m bench claims --subscribers {r['subscribers']}`: the real `deliver` loop (claim "
        "with its readers, message fields, recording; batches of 500) over "
        f"{r['subscribers']:,} queued deliveries, into a transport that accepts every message at once.",
        "",
        "| claims | first tenth (msg/s) | last tenth (msg/s) | last / first | whole send |",
        "|---|---:|---:|---:|---:|",
        *rows,
        END,
    ])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench claims", description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=200_000,
                        help="queued deliveries per send (at least 10,000: a tenth must span several batches)")
    parser.add_argument("--pg", default=PG, help="PostgreSQL URL (a schema is created and dropped in it)")
    parser.add_argument("--write", action=argparse.BooleanOptionalAction, default=True,
                        help="update BENCHMARKS.md (default: yes)")
    args = parser.parse_args(argv)
    if args.subscribers < 10_000:
        parser.error("--subscribers must be at least 10,000 (a tenth of the send must span several batches)")
    result = run(args.subscribers, args.pg)
    for key in ("ours", "reference"):
        m = result[key]
        print(f"claims ({key}): first tenth {m['first']:.0f} msg/s, last tenth {m['last']:.0f} msg/s, "
              f"last/first {m['last'] / m['first']:.2f}, whole send {m['total_s']:.1f} s")
    if args.write:
        print(f"written to {write_section(START, END, markdown(result))}")


if __name__ == "__main__":
    main()
