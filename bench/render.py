"""Per-recipient message assembly vs. a full render per recipient (the reference).

A message is built as a send builds it: its pieces (header lines, encoded chunks and values) are
not joined into one bytes object (the SMTP transport sends them as they are). Both run in the
same process on the same issue (the largest sample week), so
the ratio is meaningful on a shared, noisy machine; absolute rates are for
orientation only. Run: `python -m bench render` (or `make bench`); it prints, and the table in
BENCHMARKS.md collects its runs by hand.

Topic sets (`--topic-sets 8`, issue 17 point 4): readers with topics get a variant of the issue
(issues/variants.py), each compiled once per process. The same per-recipient assembly runs with one
template (everyone gets the whole issue) and with the recipients spread over 8 variants, in
alternating chunks of the same run, so their ratio says whether variants cost anything per message.
The variants' compiles are reported apart: once per send and process, not per message.
"""

from __future__ import annotations

import argparse
import tempfile
from itertools import combinations
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.sample import SECRET, sample_issue_view
from newsletter.issues.links import IssueRecipient, issue_message
from newsletter.mail.compose import build_template
from newsletter.issues import render
from newsletter.issues.render import compile_issue, issue_template
from newsletter.issues.variants import VariantKey, variant_view
from newsletter.issues.view import IssueView


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

        started, cpu = time.perf_counter(), time.process_time()
        for n in range(reference_n):  # what a naive sender does: compile per recipient
            per = build_template(settings, compile_issue(view))
            issue_message(settings, SECRET, per, IssueRecipient(f"r{n}@example.com", "Reader", n, f"b-{n}"), now)
        reference = reference_n / (time.perf_counter() - started)
        reference_cpu = reference_n / (time.process_time() - cpu)
    return {
        "compile_ms": round(compile_seconds * 1000, 1),
        "ours_per_s": round(ours),
        "ours_per_cpu_s": round(ours_cpu),
        "reference_per_s": round(reference, 1),
        "ratio": round(ours / reference, 1),
        "cpu_ratio": round(ours_cpu / reference_cpu, 1),
        "message_kb": round(size / ours_n / 1024, 1),
    }


def topic_sets(view: IssueView, count: int) -> list[tuple[int, ...]]:
    """`count` distinct comparison sets a reader's topics give (largest first: the whole issue
    is the first), from the categories of the issue."""
    categories = list(dict.fromkeys(comparison.category for comparison in view.comparisons))
    found: list[tuple[int, ...]] = []
    for size in range(len(categories), 0, -1):
        for chosen in combinations(categories, size):
            positions = tuple(i for i, c in enumerate(view.comparisons) if c.category in chosen)
            if positions not in found:
                found.append(positions)
    return found[:count]


def _assemble(settings, templates: list, start: int, count: int, now) -> tuple[float, float, int]:
    """Messages start..start+count, recipient n getting templates[n % len]: (wall s, CPU s, bytes)."""
    wall, cpu, size = time.perf_counter(), time.process_time(), 0
    for n in range(start, start + count):
        template = templates[n % len(templates)]
        message, _ = issue_message(settings, SECRET, template, IssueRecipient(f"r{n}@example.com", "Reader", n, f"b-{n}"), now)
        size += len(message.data)
    return time.perf_counter() - wall, time.process_time() - cpu, size


def run_topic_sets(messages: int = 10_000, sets: int = 8, rounds: int = 10) -> dict:
    """One template against `sets` variants, same run, alternating chunks of messages/rounds each."""
    with tempfile.TemporaryDirectory() as tmp:
        settings, view = sample_issue_view(Path(tmp))
        now = datetime.now(UTC)
        single = [issue_template(settings, view)]
        before, started = render.compiles, time.perf_counter()
        keys = topic_sets(view, sets)
        variants = [issue_template(settings, variant_view(view, VariantKey(key), None, True)) for key in keys]
        compile_seconds, compiled = time.perf_counter() - started, render.compiles - before
        totals = {"one": [0.0, 0.0, 0], "sets": [0.0, 0.0, 0]}
        chunk = max(1, messages // rounds)
        for index in range(rounds):
            for name, templates in (("one", single), ("sets", variants)) if index % 2 == 0 else \
                    (("sets", variants), ("one", single)):
                wall, cpu, size = _assemble(settings, templates, index * chunk, chunk, now)
                totals[name][0] += wall
                totals[name][1] += cpu
                totals[name][2] += size
    done = chunk * rounds
    one, many = done / totals["one"][0], done / totals["sets"][0]
    return {"variants": len(variants), "compiles": compiled, "compile_ms": round(compile_seconds * 1000, 1),
            "one_per_s": round(one), "sets_per_s": round(many), "ratio": round(many / one, 3),
            "one_per_cpu_s": round(done / totals["one"][1]), "sets_per_cpu_s": round(done / totals["sets"][1]),
            "cpu_ratio": round(totals["one"][1] / totals["sets"][1], 3),
            "one_kb": round(totals["one"][2] / done / 1024, 1), "sets_kb": round(totals["sets"][2] / done / 1024, 1)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench render", description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000, help="messages assembled per recipient")
    parser.add_argument("--reference", type=int, default=30, help="messages rendered in full (the reference)")
    parser.add_argument("--topic-sets", type=int, default=8,
                        help="also assemble with the recipients spread over this many topic variants (0: not)")
    args = parser.parse_args(argv)
    result = run(args.messages, args.reference)
    print(f"render: compile once {result['compile_ms']} ms; per-recipient assembly {result['ours_per_s']} msg/s "
          f"({result['ours_per_cpu_s']} per CPU second); "
          f"full render per recipient {result['reference_per_s']} msg/s; ratio {result['ratio']}x "
          f"(per CPU second: {result['cpu_ratio']}x); "
          f"message {result['message_kb']} KB")
    if args.topic_sets:
        sets = run_topic_sets(args.messages, args.topic_sets)
        print(f"topic sets: {sets['variants']} variants (one is the whole issue, already compiled), "
              f"{sets['compiles']} new compiles ({sets['compile_ms']} ms, once per send and process); assembly "
              f"with them {sets['sets_per_s']} msg/s ({sets['sets_per_cpu_s']} per CPU second, {sets['sets_kb']} KB "
              f"per message) vs one template {sets['one_per_s']} msg/s ({sets['one_per_cpu_s']} per CPU second, "
              f"{sets['one_kb']} KB), same run: ratio {sets['ratio']} (CPU: {sets['cpu_ratio']})")


if __name__ == "__main__":
    main()
