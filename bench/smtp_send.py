"""Our SMTP transport vs Postfix's smtp-source, both sending to Postfix's smtp-sink.

The same number of messages of the same size go to one local smtp-sink, once through
`SmtpTransport` (batches of `[delivery] batch_size`, `pool_size` sessions, as a worker sends) and
once through `smtp-source -d` (the C reference: one reused session per parallel stream, no
pipelining, like smtplib). Our messages are real issue messages (the sample week, per-recipient
links); smtp-source sends a payload of the same length. The figure that matters is the ratio
ours/reference at each session count: it is stable on a noisy machine, the absolute rates are not.
A second run against a slow server (smtp-sink answering each DATA after 1 s) shows what the pool
is for: with N sessions both sides should take messages / N seconds.

Run: `python -m bench smtp_send` (or `python -m bench.smtp_send --messages 2000 --write`).
Needs the Debian package `postfix` (/usr/sbin/smtp-sink, /usr/sbin/smtp-source).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

from bench.report import write_section
from bench.sample import SECRET, sample_issue_view
from newsletter.config import SmtpSettings
from newsletter.delivery.transports.base import Outcome
from newsletter.mail.message import OutgoingMessage
from newsletter.delivery.transports.smtp import SmtpTransport
from newsletter.issues.links import IssueRecipient, issue_message
from newsletter.mail.compose import build_template
from newsletter.issues.render import compile_issue

SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
SOURCE = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
START, END = "<!-- bench:smtp_send -->", "<!-- /bench:smtp_send -->"
SLOW_COUNT = 32


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_listening(port: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"smtp-sink did not listen on port {port}")


class Sink:
    """smtp-sink on a free loopback port, discarding everything; `data_delay` seconds before it
    answers each DATA (a slow or distant server); `nice`: its scheduling priority (None: ours)."""

    def __init__(self, data_delay: int = 0, nice: int | None = None) -> None:
        self.data_delay, self.nice = data_delay, nice

    def __enter__(self) -> Sink:
        self.port = _free_port()
        command = [SINK] if self.nice is None else ["nice", "-n", str(self.nice), SINK]
        if os.geteuid() == 0:
            command += ["-u", "nobody"]  # smtp-sink refuses to run as root without it
        if self.data_delay:
            command += ["-w", str(self.data_delay)]
        command += [f"127.0.0.1:{self.port}", "512"]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _wait_listening(self.port)
        return self

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.wait(timeout=5)


def issue_messages(count: int) -> list[OutgoingMessage]:
    """`count` real, distinct issue messages (one per recipient) from the sample content."""
    with tempfile.TemporaryDirectory() as tmp:
        settings, view = sample_issue_view(Path(tmp))
    template = build_template(settings, compile_issue(view))
    now = datetime.now(UTC)
    return [issue_message(settings, SECRET, template,
                          IssueRecipient(f"reader{n}@example.com", "", n, f"bench-{n}"), now, signer=None)[0]
            for n in range(count)]


def cpu_seconds(pid: int | None = None) -> float:
    """CPU time (user + system) of a process so far: this one (all its threads) or `pid`."""
    if pid is None:
        times = os.times()
        return times.user + times.system
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured(timed: Callable[[], float], sink_pid: int) -> tuple[float, float, float]:
    """(wall seconds, this process's CPU seconds, the sink's CPU seconds) of one timed run."""
    ours, sink = cpu_seconds(), cpu_seconds(sink_pid)
    wall = timed()
    return wall, cpu_seconds() - ours, cpu_seconds(sink_pid) - sink


def time_ours(port: int, messages: list[OutgoingMessage], sessions: int, batch_size: int) -> float:
    transport = SmtpTransport(SmtpSettings(host="127.0.0.1", port=port, timeout=30, pool_size=sessions,
                                           max_messages_per_connection=100))
    started = time.perf_counter()
    try:
        for offset in range(0, len(messages), batch_size):
            results = transport.send(messages[offset:offset + batch_size])
            if any(result.outcome != Outcome.sent for result in results):
                raise RuntimeError(f"smtp-sink refused a message: {results}")
    finally:
        transport.close()
    return time.perf_counter() - started


def time_reference(port: int, count: int, size: int, sessions: int) -> float:
    command = [SOURCE, "-d", "-s", str(sessions), "-m", str(count), "-l", str(size),
               "-f", "verdicts@weeklyverdicts.example", "-t", "reader@example.com", f"127.0.0.1:{port}"]
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, timeout=600)
    return time.perf_counter() - started


def machine() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    postfix = subprocess.run(["postconf", "-d", "mail_version"], capture_output=True, text=True).stdout.strip()
    return (f"{os.cpu_count()} cores (nproc), {model}, Linux {platform.release()}, "
            f"Python {platform.python_version()}, Postfix {postfix.partition('=')[2].strip() or '?'}")


def slow_server(count: int = 32, session_counts: tuple[int, ...] = (4, 8), size: int = 85_000) -> list[dict]:
    """Where the pool matters: a server that takes 1 s to accept each message. Time is then
    count / sessions seconds for both sides, if the sessions really run in parallel."""
    messages = issue_messages(count)
    rows = []
    with Sink(data_delay=1) as sink:
        for sessions in session_counts:
            ours = time_ours(sink.port, messages, sessions, 100)
            reference = time_reference(sink.port, count, size, sessions)
            rows.append({"sessions": sessions, "ours_s": ours, "reference_s": reference, "ideal_s": count / sessions})
    return rows


def run(count: int = 2000, session_counts: tuple[int, ...] = (1, 4), repeats: int = 3,
        batch_size: int = 100) -> dict:
    for tool in (SINK, SOURCE):
        if not Path(tool).exists():
            raise SystemExit(f"{tool} is missing: apt-get install postfix")
    load = os.getloadavg()[0]
    messages = issue_messages(count)
    size = round(statistics.mean(len(m.data) for m in messages))
    rows = []
    with Sink() as sink:
        time_ours(sink.port, messages[:50], 1, batch_size)  # warm up both sides
        time_reference(sink.port, 50, size, 1)
        for sessions in session_counts:
            ours_runs = [measured(lambda: time_ours(sink.port, messages, sessions, batch_size), sink.process.pid)
                         for _ in range(repeats)]
            reference_runs = [measured(lambda: time_reference(sink.port, count, size, sessions), sink.process.pid)
                              for _ in range(repeats)]
            ours = statistics.median(sample[0] for sample in ours_runs)
            reference = statistics.median(sample[0] for sample in reference_runs)
            rows.append({"sessions": sessions, "ours_per_s": count / ours, "reference_per_s": count / reference,
                         "ratio": reference / ours,
                         "client_us": 1e6 * statistics.median(sample[1] for sample in ours_runs) / count,
                         "sink_us": 1e6 * statistics.median(sample[2] for sample in ours_runs) / count,
                         "sink_reference_us": 1e6 * statistics.median(sample[2] for sample in reference_runs)
                         / count})
    return {"count": count, "size": size, "repeats": repeats, "batch_size": batch_size, "rows": rows,
            "slow": slow_server(SLOW_COUNT, size=size), "slow_count": SLOW_COUNT,
            "machine": machine(), "date": date.today().isoformat(), "load": load}


def markdown(result: dict) -> str:
    lines = [
        START,
        "## SMTP sending: `SmtpTransport` vs Postfix `smtp-source` (into `smtp-sink`)",
        "",
        f"{result['date']}, {result['machine']}, load average {result['load']:.1f} at the start (a shared "
        f"machine: compare the ratios, not the rates). `python -m bench smtp_send`: {result['count']} real issue "
        f"messages of {result['size'] / 1024:.1f} KB on average over loopback, in batches of "
        f"{result['batch_size']}, median of {result['repeats']} runs; the reference is "
        f"`smtp-source -d -s SESSIONS -m {result['count']} -l {result['size']}`.",
        "",
        "| sessions | ours (msg/s) | smtp-source (msg/s) | ours / smtp-source | our CPU per message (us) "
        "| smtp-sink CPU per message: ours / smtp-source's (us) |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result["rows"]:
        lines.append(f"| {row['sessions']} | {row['ours_per_s']:.0f} | {row['reference_per_s']:.0f} "
                     f"| {row['ratio']:.2f} | {row['client_us']:.0f} | {row['sink_us']:.0f} / "
                     f"{row['sink_reference_us']:.0f} |")
    lines += ["", "Sessions are the transport's `pool_size` (threads in one worker process) and smtp-source's "
              "`-s`. Over loopback both sides are CPU-bound on this machine (client and smtp-sink share the "
              "cores), so more sessions add little. Message building (per-recipient assembly) is not timed "
              "here; see the render benchmark. CPU per message is read from the kernel's accounting "
              "(os.times, /proc/PID/stat) over the same runs: what our transport costs the client, and "
              "whether our traffic costs the receiving server more than smtp-source's does.",
              "",
              "A slow server (`smtp-sink -w 1`: each DATA answered after 1 s), where the pool is what counts:",
              "",
              "| sessions | messages | ours (s) | smtp-source (s) | ideal (s) |",
              "|---:|---:|---:|---:|---:|"]
    for row in result["slow"]:
        lines.append(f"| {row['sessions']} | {result['slow_count']} | {row['ours_s']:.1f} "
                     f"| {row['reference_s']:.1f} | {row['ideal_s']:.1f} |")
    lines.append(END)
    return "\n".join(lines)


def write(result: dict) -> Path:
    """Replace this benchmark's section of BENCHMARKS.md (other benchmarks keep theirs)."""
    return write_section(START, END, markdown(result))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench smtp_send", description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--write", action=argparse.BooleanOptionalAction, default=True,
                        help="update BENCHMARKS.md (default: yes)")
    args = parser.parse_args(argv)
    result = run(args.messages, tuple(args.sessions), args.repeats)
    for row in result["rows"]:
        print(f"smtp_send: {row['sessions']} session(s): ours {row['ours_per_s']:.0f} msg/s, smtp-source "
              f"{row['reference_per_s']:.0f} msg/s, ratio {row['ratio']:.2f}; our CPU {row['client_us']:.0f} "
              f"us/msg; smtp-sink CPU {row['sink_us']:.0f} us/msg (smtp-source's: "
              f"{row['sink_reference_us']:.0f})")
    for row in result["slow"]:
        print(f"smtp_send, slow server: {row['sessions']} sessions: ours {row['ours_s']:.1f} s, smtp-source "
              f"{row['reference_s']:.1f} s, ideal {row['ideal_s']:.1f} s")
    if args.write:
        print(f"written to {write(result)}")


if __name__ == "__main__":
    main()
