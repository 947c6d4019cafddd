"""Imports and exports at database speed (issue 18.3): `newsletter subscribers import` of N rows
against PostgreSQL's own COPY of the same file into an unindexed table, in the same run.

`python -m bench imports [--rows N] [--sqlite] [--import-only] [--again] [--record]`: writes a CSV of N readers (email,
name with commas and quotes now and then, topics, created_at, status: 1% unsubscribed, 0.5%
bounced, 0.1% bad lines), then in a throw-away schema of the tests' PostgreSQL database
(migrated to head, the sample content imported for its categories):
1. the reference: COPY of the file into an unindexed table of text columns (wall clock);
2. `newsletter subscribers import FILE --skip-bad-rows` as a process (wall, CPU from wait4); with
   `--again`, the same command a second time, when every address is a known reader;
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

APPLICATION = "wv_bench_imports"  # the import's and export's PostgreSQL connections, for their backends' CPU
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


def copy_reference(url: str, path: Path) -> tuple[float, float]:
    """Wall seconds PostgreSQL takes to COPY the file into an unindexed table, and its backend's CPU seconds."""
    import psycopg
    from sqlalchemy.engine import make_url

    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo) as connection:
        connection.execute("CREATE TABLE copy_reference (email text, name text, topics text, status text, "
                           "created_at text)")
        backend = connection.execute("SELECT pg_backend_pid()").fetchone()[0]
        started, cpu = time.perf_counter(), _cpu(backend)
        with connection.cursor().copy("COPY copy_reference FROM STDIN (FORMAT csv, HEADER true)") as copy:
            with path.open("rb") as source:
                while block := source.read(1 << 20):
                    copy.write(block)
        connection.commit()
        return time.perf_counter() - started, _cpu(backend) - cpu


def _cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process so far, from /proc; 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Backends:
    """CPU of the PostgreSQL backends serving connections named `application`: sampled from /proc
    every 0.2 s while a step runs (a backend's figure is gone once its client disconnects)."""

    def __init__(self, admin_url: str, application: str) -> None:
        import threading

        from sqlalchemy import create_engine

        self.engine, self.application, self.seen = create_engine(admin_url), application, {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self.stop.is_set():
            with self.engine.connect() as connection:
                pids = connection.execute(text("SELECT pid FROM pg_stat_activity WHERE application_name = :a"),
                                          {"a": self.application}).scalars().all()
            for pid in pids:
                self.seen[pid] = max(self.seen.get(pid, 0.0), _cpu(pid))
            self.stop.wait(0.2)

    def __enter__(self) -> Backends:
        self.thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self.stop.set()
        self.thread.join()
        self.engine.dispose()

    @property
    def cpu(self) -> float:
        return sum(self.seen.values())


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


def measure(config: Path, folder: Path, csv_path: Path, rows: int, pg: str | None = None,
            import_only: bool = False, again: bool = False) -> dict:
    """Import (with `again`, the same file a second time: every row a known reader), then export
    as CSV and JSON, each a process; the figures. `pg`: the admin URL to read the backends' CPU
    through (the config's connections are named APPLICATION)."""
    figures = {}
    importing = ["subscribers", "import", str(csv_path), "--skip-bad-rows"]
    steps = [("import", importing)] + ([("import again (all known)", importing)] if again else [])
    if not import_only:
        steps += [("export csv", ["subscribers", "export", "--format", "csv", "--output", str(folder / "o.csv")]),
                  ("export json", ["subscribers", "export", "--format", "json", "--output", str(folder / "o.json")])]
    for label, args in steps:
        backends = Backends(pg, APPLICATION) if pg else None
        if backends:
            with backends:
                wall, cpu, rss, said = run(config, folder, args)
        else:
            wall, cpu, rss, said = run(config, folder, args)
        db_cpu = backends.cpu if backends else None
        figures[label] = {"wall": wall, "cpu": cpu, "db_cpu": db_cpu, "rss_mb": rss, "rows_s": rows / wall,
                          "said": said}
        print(f"{label}: {wall:.1f} s wall, {cpu:.1f} s CPU (+ {db_cpu or 0:.1f} s PostgreSQL backends), "
              f"{rows / wall:,.0f} rows/s, peak RSS {rss:.0f} MB; {said}", flush=True)
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
    parser.add_argument("--import-only", action="store_true", help="leave out the exports")
    parser.add_argument("--again", action="store_true", help="import the same file a second time (all known)")
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
            reference, reference_cpu = copy_reference(url, csv_path)
            print(f"PostgreSQL COPY into an unindexed table: {reference:.2f} s ({reference_cpu:.2f} s backend CPU)",
                  flush=True)
            named = f"{url}&application_name={APPLICATION}"
            write_config(folder, named, '[mail]\ntransport = "file"\nfrom_address = "W <w@example.com>"\n'
                         '[mail.file]\ndir = "outbox"\n')
            results["postgresql"] = measure(folder / "config.toml", folder, csv_path, args.rows, args.pg,
                                            args.import_only, args.again)
        if args.sqlite:
            url = f"sqlite:///{folder / 'bench.db'}"
            _prepare(url)
            write_config(folder, url, '[mail]\ntransport = "file"\nfrom_address = "W <w@example.com>"\n'
                         '[mail.file]\ndir = "outbox"\n')
            results["sqlite"] = measure(folder / "config.toml", folder, csv_path, args.rows,
                                        import_only=args.import_only, again=args.again)
    imported = results["postgresql"]["import"]
    ratio, cpu_ratio = imported["wall"] / reference, (imported["cpu"] + imported["db_cpu"]) / reference
    print(f"import / COPY on PostgreSQL: {ratio:.1f}x wall (bar: 30x); import CPU (client + backends) / COPY wall: "
          f"{cpu_ratio:.1f}x; COPY backend CPU {reference_cpu:.2f} s")
    if args.record:
        _record(args.rows, bad, (reference, reference_cpu), (ratio, cpu_ratio), results, (load, os.getloadavg()))


def _record(rows: int, bad: int, reference: tuple[float, float], ratios: tuple[float, float], results: dict,
            loads: tuple) -> None:
    (copy_wall, copy_cpu), (ratio, cpu_ratio), (before, after) = reference, ratios, loads
    lines = [f"<!-- bench:imports:{rows} -->",
             f"## Imports and exports, {rows:,} rows (`python -m bench {' '.join(sys.argv[1:])}`)", "",
             f"{date.today().isoformat()}; {machine()}; load average {before[0]:.2f} {before[1]:.2f} {before[2]:.2f} "
             f"at the start, {after[0]:.2f} {after[1]:.2f} {after[2]:.2f} at the end (the machine is shared with "
             "other work: wall times are stretched by it, CPU seconds are not).", "",
             f"{rows:,} rows ({bad} bad lines, 1% unsubscribed, 0.5% bounced, three in four with topics). "
             f"PostgreSQL's COPY of the same file into an unindexed table: **{copy_wall:.2f} s** wall "
             f"({copy_cpu:.2f} s backend CPU). `subscribers import` on PostgreSQL: **{ratio:.1f}×** that in wall "
             f"time (the bar: 30×); its CPU (the process and its PostgreSQL backends) is {cpu_ratio:.1f}× the "
             "COPY's wall time.", "",
             "| database | step | wall s | CPU s (process) | CPU s (PostgreSQL backends) | rows/s (wall) | "
             "peak RSS MB |", "|---|---|---:|---:|---:|---:|---:|"]
    for database, figures in results.items():
        for step, f in figures.items():
            db_cpu = f"{f['db_cpu']:.1f}" if f.get("db_cpu") is not None else "—"
            lines.append(f"| {database} | {step} | {f['wall']:.1f} | {f['cpu']:.1f} | {db_cpu} | {f['rows_s']:,.0f} | "
                         f"{f['rss_mb']:.0f} |")
    lines += ["", "Each step is one `newsletter` process; its CPU and peak RSS are its own (wait4); the "
              "backends' CPU is read from /proc every 0.2 s for the connections the step opened. The import "
              "holds the file and two chunks of 50,000 judged rows (the next is judged while the database "
              "merges the one in hand); the export one page of 5,000 readers.",
              f"<!-- /bench:imports:{rows} -->"]
    print(f"recorded in {write_section(lines[0], lines[-1], chr(10).join(lines))}")
