"""Web under load: signup POST and RFC 8058 one-click unsubscribe POST at a fixed rate, with wrk.

`newsletter serve` on PostgreSQL on loopback; wrk (Debian's, no rate control of its own) paced by a
Lua script that schedules each thread's requests on a monotonic clock (LuaJIT FFI), so the offered
rate is fixed (200 requests/s by default) and the latencies are those of requests sent on time.
Every signup is a new address with a valid form token and visitor cookie (the per-IP and per-network
signup limits are raised for the run: one client sends them all); every unsubscribe is another
reader's own link. With `--baseline DIR` the same load also goes, in the same window, to a server
running the code in DIR (e.g. `git worktree add DIR main`; with DIR/.venv, the baseline runs in its
own virtualenv, so dependencies added since count as part of the change): before and after,
alternately. Each line also gives the serve process's CPU per answered request (user + system from
/proc, every thread, the in-process confirmation sender included): a figure that a busy machine
stretches far less than the latencies.

Run: `python -m bench web_load [--baseline DIR]` (needs PostgreSQL and `apt-get install wrk`).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from sqlalchemy import text

from bench.cpu import proc_cpu
from bench.report import write_section
from bench.sample import PG, pg_schema, write_config
from bench.smtp_send import _free_port, _wait_listening, machine
from newsletter.db import make_engine
from newsletter.migrate import upgrade
from newsletter.tokens import Purpose, make_token
from newsletter.web.abuse import VISITOR_COOKIE, issue_form_token

START, END = "<!-- bench:web_load -->", "<!-- /bench:web_load -->"
SECRET = "bench-secret-" + "b" * 40
VISITOR = "benchvisitor0123456789ab"

PACING = r"""
local ffi = require("ffi")
ffi.cdef[[ typedef struct { long tv_sec; long tv_nsec; } wl_timespec;
           int clock_gettime(int clock, wl_timespec *t); ]]
local ts = ffi.new("wl_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end
local counter, interval, due = 0, 0, nil
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("number", threads)
end
function init(args)
  interval = 1000 * tonumber(args[2]) / tonumber(args[1])  -- args: rate, threads, offset
  wrk_offset = args[3] or "0"
  load_items()
end
function delay()  -- this thread's requests on a fixed schedule, whatever the latency
  local now = now_ms()
  due = (due or now) + interval
  local wait = due - interval - now
  if wait < 0 then return 0 end
  return wait
end
"""

SIGNUP = PACING + r"""
function load_items() end
function request()
  counter = counter + 1
  local body = "email=load" .. number .. "-" .. counter .. "-" .. os.time() .. "%40example.com&name=&form_token=" ..
               FORM_TOKEN .. "&website="
  return wrk.format("POST", "/subscribe", {["Content-Type"] = "application/x-www-form-urlencoded",
                    ["Cookie"] = "COOKIE", ["Origin"] = "ORIGIN"}, body)
end
"""

UNSUBSCRIBE = PACING + r"""
local tokens = {}
function load_items()
  local file = io.open("TOKENS")
  local all = {}
  for line in file:lines() do all[#all + 1] = line end
  file:close()
  for i = tonumber(wrk_offset) + number, #all, THREADS do tokens[#tokens + 1] = all[i] end
end
function request()  -- every request another reader (each run starts at its own offset)
  counter = counter + 1
  local token = tokens[(counter - 1) % #tokens + 1]
  return wrk.format("POST", "/unsubscribe/" .. token, {["Content-Type"] = "application/x-www-form-urlencoded"},
                    "List-Unsubscribe=One-Click")
end
"""


FILE_MAIL = """
        [mail]
        transport = "file"
        from_address = "Weekly Verdicts <verdicts@weeklyverdicts.example>"
        [mail.file]
        dir = "outbox"
        """


def _setup(url: str, folder: Path, port: int, readers: int, mail: str = FILE_MAIL) -> list[str]:
    """Config, schema and readers; the readers' unsubscribe tokens."""
    write_config(folder, url, mail + """
        [web]
        form_min_seconds = 0
        signups_per_ip_per_hour = 1000000000
        signups_per_network_per_hour = 1000000000
        """)
    config = folder / "config.toml"  # the site is where the server listens (Host and Origin checks)
    config.write_text(config.read_text().replace('"https://verdicts.example"', f'"http://127.0.0.1:{port}"', 1))
    engine = make_engine(url)
    upgrade(engine)
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO subscriber (email, name, status, created_at, token_key) "
            "SELECT 'reader' || g || '@example.com', '', 'active', now(), substr(md5(g::text), 1, 16) "
            "FROM generate_series(1, :n) g"), {"n": readers})
        rows = connection.execute(text("SELECT id, token_key FROM subscriber ORDER BY id")).all()
    engine.dispose()
    return [make_token(SECRET, Purpose.unsubscribe, row.id, row.token_key) for row in rows]


def _serve(folder: Path, port: int, source: Path | None) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env["NEWSLETTER_SECRET_KEY"] = SECRET
    python = sys.executable
    if source is not None:
        env["PYTHONPATH"] = str(source)
        if (source / ".venv" / "bin" / "python").exists():
            python = str(source / ".venv" / "bin" / "python")
    process = subprocess.Popen([python, "-m", "newsletter", "serve", "--port", str(port)], cwd=folder,
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    _wait_listening(port, timeout=60)
    return process


def _schema_for(url: str, source: Path | None) -> None:
    """The database at the revision the code in `source` (None: this tree) expects: a baseline
    refuses to start on a schema newer than its migrations know, so the schema steps down to the
    baseline's head (this tree's migrations know the way down) and back up for this tree."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from newsletter.migrate import downgrade

    engine = make_engine(url)
    try:
        if source is None:
            upgrade(engine)
        else:
            config = Config()
            config.set_main_option("script_location", str(source / "newsletter" / "migrations"))
            downgrade(engine, ScriptDirectory.from_config(config).get_current_head())
    finally:
        engine.dispose()


def _stop(server: subprocess.Popen) -> None:
    """SIGTERM; the server's mail thread may still be writing the confirmations of the run."""
    server.terminate()
    try:
        server.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def _wrk(script: Path, port: int, rate: int, seconds: int, offset: int, threads: int = 2,
         connections: int = 32) -> dict:
    out = subprocess.run(["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--latency",
                          "-s", str(script), f"http://127.0.0.1:{port}", "--", str(rate), str(threads), str(offset)],
                         capture_output=True, text=True, check=True).stdout
    result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), "errors": 0,
              "requests": int(re.search(r"(\d+) requests in", out).group(1))}
    for percent in ("50", "90", "99"):
        value, unit = re.search(rf"^\s+{percent}(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        result[f"p{percent}"] = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    answers = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    result["timeouts"] = int(sockets.group(4)) if sockets else 0
    result["errors"] = (int(answers.group(1)) if answers else 0) + (sum(map(int, sockets.groups())) if sockets else 0)
    return result


def _scripts(folder: Path, port: int, tokens: list[str], threads: int) -> dict[str, Path]:
    (folder / "tokens.txt").write_text("\n".join(tokens) + "\n")
    form_token = issue_form_token(SECRET, VISITOR)
    signup = (SIGNUP.replace("FORM_TOKEN", repr(form_token)).replace("COOKIE", f"{VISITOR_COOKIE}={VISITOR}")
              .replace("ORIGIN", f"http://127.0.0.1:{port}"))
    unsubscribe = UNSUBSCRIBE.replace("TOKENS", str(folder / "tokens.txt")).replace("THREADS", str(threads))
    paths = {"signup": folder / "signup.lua", "unsubscribe": folder / "unsubscribe.lua"}
    paths["signup"].write_text(signup)
    paths["unsubscribe"].write_text(unsubscribe)
    return paths


class Send:
    """A send running beside the load (`--send`): `newsletter worker --processes 2` delivering the
    sample issue to every reader into Postfix's smtp-sink; restarted (the bench's own reset) when it
    runs out, so every measured line has one in progress; `nice`: the workers' [delivery] nice. `sent()`: messages delivered so far."""

    def __init__(self, url: str, folder: Path, nice: int | None = None) -> None:
        from newsletter.config import load_settings
        from newsletter.content.importer import import_files, sample_files
        from newsletter.issues.drafting import draft_issue

        self.engine = make_engine(url)
        import_files(self.engine, sample_files())
        self.issue = draft_issue(self.engine, load_settings(folder / "config.toml"), "2026-W48").issue.id
        env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
        env["NEWSLETTER_SECRET_KEY"] = SECRET
        if nice is not None:  # [delivery] nice of the workers only (a baseline's serve may not know it)
            env["NEWSLETTER_DELIVERY__NICE"] = str(nice)
        self.workers = subprocess.Popen([sys.executable, "-m", "newsletter", "worker", "--processes", "2"], cwd=folder,
                                        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        start_new_session=True)
        self.delivered = 0

    def sent(self) -> int:
        with self.engine.connect() as connection:
            return self.delivered + connection.execute(text(
                "SELECT count(*) FROM delivery WHERE issue_id = :i AND state <> 'queued'"), {"i": self.issue}).scalar_one()

    def ensure(self) -> None:
        """A send in progress with most of its queue ahead (started again from scratch otherwise)."""
        from newsletter.delivery.sender import start_send

        with self.engine.begin() as connection:
            left = connection.execute(text("SELECT count(*) FROM delivery WHERE issue_id = :i AND state = 'queued'"),
                                      {"i": self.issue}).scalar_one()
            if left > 5000:
                return
            self.delivered += connection.execute(text("DELETE FROM delivery WHERE issue_id = :i"),
                                                 {"i": self.issue}).rowcount
            connection.execute(text("DELETE FROM issue_record WHERE issue_id = :i"), {"i": self.issue})
            connection.execute(text("UPDATE issue SET state = 'draft', started_at = NULL, finished_at = NULL "
                                    "WHERE id = :i"), {"i": self.issue})
        start_send(self.engine, self.issue)

    def started(self, timeout: float = 120.0) -> None:
        """Wait for the first messages to leave: the workers check the schema's revision as they
        start, and a baseline's run steps it down (`_schema_for`) only after that."""
        self.ensure()
        deadline = time.monotonic() + timeout
        while self.sent() == self.delivered and time.monotonic() < deadline:
            time.sleep(0.5)
        if self.sent() == self.delivered:
            raise RuntimeError("the send did not start: `newsletter worker` delivered nothing")

    def close(self) -> None:
        self.workers.send_signal(signal.SIGTERM)
        try:
            self.workers.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.workers.pid, signal.SIGKILL)
        self.engine.dispose()


def _measure(scripts: dict[str, Path], port: int, rate: int, seconds: int, offset: int, send: Send | None,
             row: dict, runs: list[dict], server: int) -> int:
    for route, script in scripts.items():
        if send:
            send.ensure()
        _wrk(script, port, rate, 3, offset)  # warm-up: connections, caches
        offset += rate * 4
        before, load, cpu = send.sent() if send else 0, os.getloadavg()[0], proc_cpu(server) or 0.0
        measured = _wrk(script, port, rate, seconds, offset)
        cpu = (proc_cpu(server) or cpu) - cpu
        offset += rate * (seconds + 1)
        extra = {"send_msgs": (send.sent() - before) / seconds, "load_now": load} if send else {"load_now": load}
        extra["cpu_ms"] = 1000 * cpu / max(measured["requests"], 1)
        runs.append({**row, "route": route, **measured, **extra})
        print(runs[-1], flush=True)
    return offset


def run(rate: int, seconds: int, readers: int, baseline: Path | None, rounds: int, pg: str = PG,
        with_send: bool = False, nice: int | None = None, sink_nice: int | None = None) -> dict:
    from bench.sample import smtp_mail
    from bench.smtp_send import Sink

    result: dict = {"rate": rate, "seconds": seconds, "load": os.getloadavg(), "runs": [], "send": with_send,
                    "nice": nice, "sink_nice": sink_nice}
    variants = ([("before", baseline)] if baseline else []) + [("after", None)]
    with pg_schema(pg, "bench_web") as url, tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp, \
            Sink(nice=sink_nice) as sink:
        folder, port = Path(tmp), _free_port()
        tokens = _setup(url, folder, port, readers, smtp_mail(sink.port) if with_send else FILE_MAIL)
        scripts = _scripts(folder, port, tokens, 2)
        send = Send(url, folder, nice) if with_send else None
        if send:
            send.started()
        offset = 0  # the next unused reader: every unsubscribe is a first one
        try:
            for number in range(rounds):
                for name, source in variants:
                    if baseline:
                        _schema_for(url, source)
                    server = _serve(folder, port, source)
                    try:
                        offset = _measure(scripts, port, rate, seconds, offset, send,
                                          {"round": number + 1, "code": name}, result["runs"], server.pid)
                    finally:
                        _stop(server)
                    time.sleep(1)
        finally:
            if send:
                send.close()
    result["load_end"] = os.getloadavg()
    result["machine"], result["date"] = machine(), date.today().isoformat()
    return result


def markdown(r: dict) -> str:
    send = r.get("send")
    lines = [
        START,
        "## Web under load: signup and one-click unsubscribe at a fixed rate (wrk)",
        "",
        f"{r['date']}, {r['machine']}. Load average {r['load'][0]:.1f} / {r['load'][1]:.1f} / {r['load'][2]:.1f} "
        f"at the start, {r['load_end'][0]:.1f} at the end: a shared machine, busy with other sessions' work; "
        "compare before and after within a round (same minute), not the absolute figures. "
        f"`python -m bench web_load{' --send' if send else ''}"
        f"{'' if r.get('nice') is None else ' --nice ' + str(r['nice'])}"
        f"{'' if r.get('sink_nice') is None else ' --sink-nice ' + str(r['sink_nice'])}`: one `newsletter serve` on PostgreSQL (loopback), "
        f"wrk with 2 threads and 32 connections paced by Lua to {r['rate']} requests/s for {r['seconds']} s per line "
        "(after 3 s of warm-up)"
        + (", while `newsletter worker --processes 2` sends the sample issue to every reader into Postfix's "
           "smtp-sink (restarted when its queue runs low; *send* is the messages per second it delivered during "
           "the line)" if send else "") + ". *before*: the code in `--baseline`; *after*: this tree.",
        "",
        "| round | route | code | requests/s | p50 | p90 | p99 | errors (timeouts) | serve CPU per request | load |"
        + (" send (msg/s) |" if send else ""),
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if send else ""),
    ]
    for x in r["runs"]:
        late = [f"{x[p]:.1f} ms" if x[p] else "—" for p in ("p50", "p90", "p99")]  # wrk: none in time
        timeouts = f" ({x['timeouts']})" if "timeouts" in x else ""  # older results did not count them apart
        lines.append(f"| {x['round']} | {x['route']} | {x['code']} | {x['rps']:.0f} | {' | '.join(late)} | "
                     f"{x['errors']}{timeouts} | {x['cpu_ms']:.2f} ms | {x.get('load_now', 0):.1f} |"
                     + (f" {x.get('send_msgs', 0):.0f} |" if send else ""))
    lines += ["", "errors: non-2xx answers and wrk's socket errors, in brackets those that were timeouts (wrk gives "
              "up on a request after 2 s); —: wrk recorded no latency; load: the 1-minute load average as the "
              "line started.", END]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench web_load", description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=200, help="requests per second offered")
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--readers", type=int, default=40_000, help="enough for every unsubscribe to be new")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--baseline", type=Path, default=None, help="a source tree of the code to compare with")
    parser.add_argument("--pg", default=PG, help="PostgreSQL URL (a schema is created and dropped in it)")
    parser.add_argument("--send", action="store_true",
                        help="with a send running: 2 worker processes delivering to every reader into smtp-sink")
    parser.add_argument("--nice", type=int, default=None,
                        help="[delivery] nice of the send's workers (default: the config's default)")
    parser.add_argument("--sink-nice", type=int, default=None,
                        help="run smtp-sink at this nice: it stands in for a remote MTA, whose CPU a real "
                             "deployment does not share with the web (default: the bench's own priority)")
    parser.add_argument("--write", action=argparse.BooleanOptionalAction, default=True,
                        help="update BENCHMARKS.md (default: yes)")
    args = parser.parse_args(argv)
    result = run(args.rate, args.seconds, args.readers, args.baseline, args.rounds, args.pg, args.send, args.nice,
                 args.sink_nice)
    print(markdown(result))
    if args.write:
        print(f"written to {write_section(START, END, markdown(result))}")


if __name__ == "__main__":
    main()
