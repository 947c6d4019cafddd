"""CLI start-up: the CPU and wall time of commands that touch no database (`--help` of the root,
of every group and of a few commands), each a fresh process as an operator runs it.

CPU time (user + system, the kernel's accounting of waited-for children) is the figure to read on a
shared machine: wall time stretches with the load, CPU time does not. Each command runs `--runs`
times after one warm-up (which also writes the bytecode caches, as an installed package has them:
with PYTHONDONTWRITEBYTECODE every run would compile the package from source); best and median.
tests/cli/test_startup.py checks, deterministically, that none of these imports a heavy module.

With `--db URL` (a migrated database, e.g. the schema `python -m bench stats --keep` leaves with a
million deliveries: postgresql+psycopg://...?options=-csearch_path%3DSCHEMA), commands that read
it are timed the same way: `newsletter stats` (issue 18 point 4: under 1 s at a million
deliveries), `newsletter issue list`.

    python -m bench cli_start [--runs 10] [--baseline DIR] [--db URL] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from bench.report import write_section
from bench.smtp_send import machine

START, END = "<!-- bench:cli_start -->", "<!-- /bench:cli_start -->"
COMMANDS = [["--help"], ["issue", "--help"], ["subscribers", "--help"], ["db", "--help"], ["editors", "--help"],
            ["issue", "send", "--help"], ["subscribers", "import", "--help"], ["stats", "--help"]]
DB_COMMANDS = [["stats"], ["issue", "list"]]
TARGET = 0.3


def timed(args: list[str], env: dict, runs: int, cwd: Path) -> dict:
    """`cwd`: where `python -m` looks first for the package (the baseline tree, or a folder without one)."""
    command = [sys.executable, "-m", "newsletter", *args]
    subprocess.run(command, env=env, capture_output=True, check=True, cwd=cwd)  # warm-up, bytecode written
    cpu, wall = [], []
    for _ in range(runs):
        before, started = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
        subprocess.run(command, env=env, capture_output=True, check=True, cwd=cwd)
        wall.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return {"command": " ".join(["newsletter", *args]), "cpu_best": min(cpu), "cpu_median": statistics.median(cpu),
            "wall_best": min(wall), "wall_median": statistics.median(wall)}


def run(runs: int, baseline: Path | None, db: str | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE" and not k.startswith("NEWSLETTER_")}
    env["COLUMNS"] = "100"
    commands = COMMANDS
    if db:
        env.update(NEWSLETTER_DATABASE__URL=db, NEWSLETTER_SECRET_KEY="bench-secret-" + "b" * 40)
        commands = COMMANDS + DB_COMMANDS
    result = {"load": os.getloadavg(), "runs": runs, "rows": [], "db": bool(db)}
    for args in commands:  # before and after of one command back to back: the same load for both
        for code, source in ([("before", baseline)] if baseline else []) + [("after", None)]:
            code_env = {**env, "PYTHONPATH": str(source)} if source else env
            row = timed(args, code_env, runs, source or Path(tempfile.gettempdir()))
            result["rows"].append({"code": code, "db": args in DB_COMMANDS, **row})
            print(result["rows"][-1], flush=True)
    result["load_end"] = os.getloadavg()
    result["machine"], result["date"] = machine(), date.today().isoformat()
    return result


def markdown(r: dict) -> str:
    lines = [
        START, "## CLI start-up: commands that touch no database" + (", and two that read a million deliveries"
                                                                   if r.get("db") else ""), "",
        f"{r['date']}, {r['machine']}, load average {r['load'][0]:.1f} at the start, {r['load_end'][0]:.1f} at the "
        f"end (a shared machine: read the CPU columns; wall time stretches with the load). `python -m bench "
        f"cli_start`: each command a fresh `python -m newsletter` process, {r['runs']} runs after a warm-up that "
        "writes the bytecode caches; CPU is user + system from the kernel's accounting. *before*: the code in "
        "`--baseline`; *after*: this tree. Target (issue 18): under 0.3 s for commands that touch no database"
        + ("; `newsletter stats` under 1 s at a million deliveries (*db* rows: `--db`, a schema kept by "
           "`python -m bench stats --keep`)." if r.get("db") else "."), "",
        "| code | command | CPU best | CPU median | wall best | wall median |", "|---|---|---:|---:|---:|---:|"]
    for x in r["rows"]:
        lines.append(f"| {x['code']}{' (db)' if x.get('db') else ''} | `{x['command']}` | {x['cpu_best']:.3f} s | {x['cpu_median']:.3f} s | "
                     f"{x['wall_best']:.3f} s | {x['wall_median']:.3f} s |")
    lines.append(END)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench cli_start", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--baseline", type=Path, default=None, help="a source tree of the code to compare with")
    parser.add_argument("--db", default=None, help="a migrated database's URL: also time commands that read it")
    parser.add_argument("--write", action=argparse.BooleanOptionalAction, default=True,
                        help="update BENCHMARKS.md (default: yes)")
    args = parser.parse_args(argv)
    result = run(args.runs, args.baseline, args.db)
    print(markdown(result))
    if args.write:
        print(f"written to {write_section(START, END, markdown(result))}")


if __name__ == "__main__":
    main()
