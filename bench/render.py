"""Per-recipient message assembly vs. a full render per recipient (the reference).

A message is built as a send builds it: its pieces (header lines, encoded chunks and values) are
not joined into one bytes object (the SMTP transport sends them as they are). Both run in the
same process on the same issue (the largest sample week), so
the ratio is meaningful on a shared, noisy machine; absolute rates are for
orientation only. Run: `python -m bench render` (or `make bench`); it prints, and the table in
BENCHMARKS.md collects its runs by hand.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.sample import SECRET, sample_issue_view
from newsletter.issues.links import IssueRecipient, issue_message
from newsletter.mail.compose import build_template
from newsletter.issues.render import compile_issue


def run(ours_n: int = 10_000, reference_n: int = 30) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        settings, view = sample_issue_view(Path(tmp))
        now = datetime.now(UTC)

        started = time.perf_counter()
        template = build_template(settings, compile_issue(view))
        compile_seconds = time.perf_counter() - started

        started, cpu = time.perf_counter(), time.process_time()
        size = 0
        for n in range(ours_n):
            message, _ = issue_message(settings, SECRET, template, IssueRecipient(f"r{n}@example.com", "Reader", n, f"b-{n}"), now)
            size += message.size  # what a send does: the SMTP transport sends the pieces, never joined
        ours = ours_n / (time.perf_counter() - started)
        ours_cpu = ours_n / (time.process_time() - cpu)

        started = time.perf_counter()
        for n in range(reference_n):  # what a naive sender does: compile per recipient
            per = build_template(settings, compile_issue(view))
            issue_message(settings, SECRET, per, IssueRecipient(f"r{n}@example.com", "Reader", n, f"b-{n}"), now)
        reference = reference_n / (time.perf_counter() - started)
    return {
        "compile_ms": round(compile_seconds * 1000, 1),
        "ours_per_s": round(ours),
        "ours_per_cpu_s": round(ours_cpu),
        "reference_per_s": round(reference, 1),
        "ratio": round(ours / reference, 1),
        "message_kb": round(size / ours_n / 1024, 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench render", description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000, help="messages assembled per recipient")
    parser.add_argument("--reference", type=int, default=30, help="messages rendered in full (the reference)")
    args = parser.parse_args(argv)
    result = run(args.messages, args.reference)
    print(f"render: compile once {result['compile_ms']} ms; per-recipient assembly {result['ours_per_s']} msg/s "
          f"({result['ours_per_cpu_s']} per CPU second); "
          f"full render per recipient {result['reference_per_s']} msg/s; ratio {result['ratio']}x; "
          f"message {result['message_kb']} KB")


if __name__ == "__main__":
    main()
