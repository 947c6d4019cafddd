"""Imports and exports at database speed (issue 18.3): `newsletter subscribers import` of N rows
against PostgreSQL's own COPY of the same file into an unindexed table, in the same run.

`python -m bench imports [--rows N] [--sqlite] [--record]`: writes a CSV of N readers (email,
name with commas and quotes now and then, topics, created_at, status: 1% unsubscribed, 0.5%
bounced, 0.1% bad lines), then in a throw-away schema of the tests' PostgreSQL database
(migrated to head, the sample content imported for its categories):
1. the reference: COPY of the file into an unindexed table of text columns (wall clock);
2. `newsletter subscribers import FILE --skip-bad-rows` as a process (wall, CPU from wait4);
3. `newsletter subscribers export --format csv --output F` as a process: rows/s and peak RSS
   (ru_maxrss from wait4), and the same for `--format json`.
With `--sqlite`, steps 2 and 3 again on a SQLite file. The issue's bar: the import within 30× the
COPY on PostgreSQL, within 2 minutes on SQLite, for N = 1,000,000. `--record` writes the figures
to BENCHMARKS.md (date, machine, load average).
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from sqlalchemy import text

from bench.report import write_section
from bench.sample import PG, pg_schema, write_config
from bench.smtp_send import machine

START, END = "<!-- bench:imports -->", "<!-- /bench:imports -->"
TOPICS = ["Developer Tools", "Design & Media", "Developer Tools;Design & Media", ""]


def write_file(path: Path, rows: int) -> int:
    """The CSV; returns how many lines are bad on purpose."""
    rng, bad = random.Random(18), 0
    with path.open("w") as out:
        out.write("email,name,topics,status,created_at\n")
        for i in range(rows):
            roll = rng.random()
            email = f"reader{i:07d}@example{i % 997}.com"
            if roll < 0.001:
                email, bad = f"reader{i:07d}-at-nowhere", bad + 1
            status = "unsubscribed" if roll > 0.99 else "bounced" if roll > 0.985 else ""
            name = f'"Reader {i}, ""R{i % 10}"""' if i % 50 == 0 else f"Reader {i}"
            out.write(f"{email},{name},{TOPICS[i % 4]},{status},2024-{1 + i % 12:02d}-{1 + i % 28:02d}\n")
    return bad


def copy_reference(url: str, path: Path) -> float:
    """Wall seconds PostgreSQL takes to COPY the file into an unindexed table."""
    import psycopg
    from sqlalchemy.engine import make_url

    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo) as connection:
        connection.execute("CREATE TABLE copy_reference (email text, name text, topics text, status text, "
                           "created_at text)")
        started = time.perf_counter()
        with connection.cursor().copy("COPY copy_reference FROM STDIN (FORMAT csv, HEADER true)") as copy:
            with path.open("rb") as source:
                while block := source.read(1 << 20):
                    copy.write(block)
        connection.commit()
        return time.perf_counter() - started


def run(config: Path, folder: Path, args: list[str]) -> tuple[float, float, float, str]:
    """A `newsletter` process: (wall s, CPU s, its own peak RSS in MB from wait4, stdout's first line)."""
    out_path, err_path = folder / "stdout", folder / "stderr"
    started = time.perf_counter()
    with out_path.open("w") as out, err_path.open("w") as err:
        process = subprocess.Popen([sys.executable, "-m", "newsletter", "--config", str(config), *args],
                                   stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise SystemExit(f"newsletter {' '.join(args)} failed:\n{err_path.read_text()[-2000:]}")
    said = (out_path.read_text().strip().splitlines() or [""])[0][:100]
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, said


def measure(config: Path, folder: Path, csv_path: Path, rows: int) -> dict:
    """Import, then export as CSV and JSON, each a process; the figures."""
    figures = {}
    for label, args in (("import", ["subscribers", "import", str(csv_path), "--skip-bad-rows"]),
                        ("export csv", ["subscribers", "export", "--format", "csv", "--output", str(folder / "o.csv")]),
                        ("export json", ["subscribers", "export", "--format", "json", "--output",
                                         str(folder / "o.json")])):
        wall, cpu, rss, said = run(config, folder, args)
        figures[label] = {"wall": wall, "cpu": cpu, "rss_mb": rss, "rows_s": rows / wall, "said": said}
        print(f"{label}: {wall:.1f} s wall, {cpu:.1f} s CPU, {rows / wall:,.0f} rows/s, peak RSS {rss:.0f} MB; "
              f"{said}", flush=True)
    return figures


def _prepare(url: str) -> None:
    from newsletter.content.importer import import_files, sample_files
    from newsletter.db import make_engine
    from newsletter.migrate import upgrade

    engine = make_engine(url)
    upgrade(engine)
    import_files(engine, sample_files())
    engine.dispose()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench imports")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--sqlite", action="store_true", help="also import and export on a SQLite file")
    parser.add_argument("--pg", default=PG)
    parser.add_argument("--record", action="store_true", help="write the figures to BENCHMARKS.md")
    args = parser.parse_args(argv)
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-imports-") as folder_name:
        folder = Path(folder_name)
        csv_path = folder / "readers.csv"
        bad = write_file(csv_path, args.rows)
        print(f"{args.rows:,} rows ({bad} bad), {csv_path.stat().st_size / 1e6:.0f} MB", flush=True)
        results = {}
        with pg_schema(args.pg, "wv_bench_import") as url:
            _prepare(url)
            reference = copy_reference(url, csv_path)
            print(f"PostgreSQL COPY into an unindexed table: {reference:.2f} s", flush=True)
            write_config(folder, url, '[mail]\ntransport = "file"\nfrom_address = "W <w@example.com>"\n'
                         '[mail.file]\ndir = "outbox"\n')
            results["postgresql"] = measure(folder / "config.toml", folder, csv_path, args.rows)
        if args.sqlite:
            url = f"sqlite:///{folder / 'bench.db'}"
            _prepare(url)
            write_config(folder, url, '[mail]\ntransport = "file"\nfrom_address = "W <w@example.com>"\n'
                         '[mail.file]\ndir = "outbox"\n')
            results["sqlite"] = measure(folder / "config.toml", folder, csv_path, args.rows)
    ratio = results["postgresql"]["import"]["wall"] / reference
    print(f"import / COPY on PostgreSQL: {ratio:.1f}x (bar: 30x)")
    if args.record:
        _record(args.rows, bad, reference, ratio, results, load)


def _record(rows: int, bad: int, reference: float, ratio: float, results: dict, load: tuple) -> None:
    lines = [START, f"## Imports and exports (`python -m bench imports --rows {rows} --sqlite --record`)", "",
             f"{date.today().isoformat()}; {machine()}; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
             "at the start (the machine is shared with other work).", "",
             f"{rows:,} rows ({bad} bad lines, 1% unsubscribed, 0.5% bounced, a quarter with two topics). "
             f"PostgreSQL's COPY of the same file into an unindexed table: **{reference:.2f} s**. "
             f"`subscribers import` on PostgreSQL: **{ratio:.1f}×** that (the bar: 30×).", "",
             "| database | step | wall s | CPU s (process) | rows/s | peak RSS MB |", "|---|---|---:|---:|---:|---:|"]
    for database, figures in results.items():
        for step, f in figures.items():
            lines.append(f"| {database} | {step} | {f['wall']:.1f} | {f['cpu']:.1f} | {f['rows_s']:,.0f} | "
                         f"{f['rss_mb']:.0f} |")
    lines += ["", "Each step is one `newsletter` process; CPU and peak RSS are that process's own (wait4). "
              "The import holds the file and one chunk of 20,000 judged rows; the export one page of "
              "5,000 readers.", END]
    print(f"recorded in {write_section(START, END, chr(10).join(lines))}")
