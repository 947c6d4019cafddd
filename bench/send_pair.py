"""A worker's CPU per message (`bench send_cpu`: build + SmtpTransport into smtp-sink) of this
checkout and of another revision, measured side by side: two processes at the same time, each
with its own sink.

Why: on these shared virtual machines the CPU per message of one process running the same code
moves by ±30% from one run to the next (the neighbours, the sink, the kernel's share), more than
most single changes to the builder or the transport. Two processes that measure at the same
moment see the same machine: each round starts both, lets each warm up with one batch, then
starts their measured batches together; the ratio of their CPU per message is the round's
figure, and the median over the rounds the result. Sessions found this way that an epoll driver
for the SMTP sessions halved the context switches per message and left the CPU where it was.

The other revision runs from a temporary `git worktree` with this checkout's interpreter and this
checkout's bench code (so an older revision need not have `send_pair`); its `newsletter` package
must have the APIs `bench send_cpu` uses (any revision since the per-reader builder).

Run: `python -m bench send_pair --base HEAD~1 [--batches 20] [--rounds 6]` (needs postfix).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# One side of a round: run with cwd = its tree; argv: this checkout's bench copy's parent, batches.
_CHILD = """
import json, sys
sys.path[:0] = [sys.argv[1], "."]
from bench.send_cpu import run
def ready():
    print("ready", flush=True)
    sys.stdin.readline()
print(json.dumps(run(int(sys.argv[2]), before_measuring=ready)), flush=True)
"""


def summary(rounds: list[tuple[float, float]]) -> dict[str, float]:
    """(this checkout's, the base's) CPU µs per message per round -> the medians and the median
    of the per-round ratios (this / base: below 1 is cheaper)."""
    if not rounds:
        raise ValueError("no rounds to summarise")
    return {"ours_us": statistics.median(ours for ours, _ in rounds),
            "base_us": statistics.median(base for _, base in rounds),
            "ratio": statistics.median(ours / base for ours, base in rounds)}


def _round(trees: list[Path], bench_parent: Path, batches: int) -> list[float]:
    """Both trees at once; each one's CPU µs per message (build + send)."""
    processes = [subprocess.Popen([sys.executable, "-c", _CHILD, str(bench_parent), str(batches)], cwd=tree,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for tree in trees]
    try:
        for process in processes:  # both warmed up (set-up, one batch) ...
            if process.stdout.readline().strip() != "ready":
                raise RuntimeError(f"a send_cpu process in {process.args} stopped before measuring")
        for process in processes:  # ... then measured together
            process.stdin.write("go\n")
            process.stdin.flush()
        return [json.loads(process.stdout.readline())["both"] for process in processes]
    finally:
        for process in processes:
            process.wait(timeout=600)


def run(base: str, batches: int, rounds: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        bench_parent = Path(tmp) / "benchcode"
        shutil.copytree(ROOT / "bench", bench_parent / "bench", ignore=shutil.ignore_patterns("__pycache__"))
        worktree = Path(tmp) / "base"
        subprocess.run(["git", "worktree", "add", "--detach", "--quiet", str(worktree), base], cwd=ROOT, check=True)
        try:
            measured = []
            for number in range(rounds):
                trees = [ROOT, worktree] if number % 2 == 0 else [worktree, ROOT]  # who starts first alternates
                first, second = _round(trees, bench_parent, batches)
                ours, theirs = (first, second) if trees[0] == ROOT else (second, first)
                measured.append((ours, theirs))
                print(f"round {number + 1}: this checkout {ours:.1f} µs, {base} {theirs:.1f} µs, "
                      f"ratio {ours / theirs:.3f}", flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=ROOT, check=False)
    return {"base": base, "batches": batches, "load": round(os.getloadavg()[0], 2), "rounds": measured,
            **summary(measured)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench send_pair", description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="HEAD~1", help="the revision to compare with (default HEAD~1)")
    parser.add_argument("--batches", type=int, default=20, help="measured batches of 500 per side and round")
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args(argv)
    result = run(args.base, args.batches, args.rounds)
    print(f"send_pair: this checkout {result['ours_us']:.1f} µs, {args.base} {result['base_us']:.1f} µs a message "
          f"(medians); median ratio {result['ratio']:.3f} over {args.rounds} rounds (load {result['load']})")


if __name__ == "__main__":
    main()
