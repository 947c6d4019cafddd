"""HTTP provider batch path: Postmark /email/batch (500 per request) and Resend /emails/batch
(100 per request) against a fast local HTTP server, in messages per second.

The server is a minimal threaded http.server in its own process that reads each request, parses its
JSON with orjson (so the request really is a well-formed batch; the stdlib's json.loads took ~1 s for
a batch of 500 issues, which measured the server, not us) and answers the provider's documented
success body (one entry per message). Three figures per provider, one process:
- build: per-recipient message assembly alone (issue_message, as the worker does);
- transport: `send()` of ready messages (parsing each message into the provider's JSON fields,
  JSON encoding, the HTTP round trips, reading the per-message answers);
- end to end: both, batch by batch, as a worker does (the issue's target: >= 5,000 msg/s);
- reference: the same request bodies, serialised before the clock starts, POSTed with a bare
  requests.Session to the same server: what moving these bytes costs on this machine at this
  moment (memory bandwidth here swings by 10x from minute to minute), so transport / reference
  says how much our code adds on top of the transfer itself.

Run: `python -m bench http_batch` (or `python -m bench.http_batch --messages 5000 --no-write`).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import tempfile
import time
import uuid
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson
import requests

from bench.report import write_section
from bench.sample import SECRET, sample_issue_view
from bench.smtp_send import machine
from newsletter.config import PostmarkSettings, ResendSettings, SendgridSettings
from newsletter.delivery.transports.base import Outcome
from newsletter.delivery.transports.postmark import PostmarkTransport
from newsletter.delivery.transports.resend import ResendTransport
from newsletter.delivery.transports.sendgrid import SendgridTransport
from newsletter.issues.links import IssueRecipient, issue_message
from newsletter.mail.compose import build_template
from newsletter.issues.render import compile_issue

START, END = "<!-- bench:http_batch -->", "<!-- /bench:http_batch -->"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the providers' APIs

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        batch = orjson.loads(body)
        if self.path == "/email/batch":  # Postmark: one answer per message
            now = datetime.now(UTC).isoformat()
            answer = [{"ErrorCode": 0, "Message": "OK", "MessageID": str(uuid.uuid4()), "SubmittedAt": now,
                       "To": message["To"]} for message in batch]
        elif self.path == "/emails/batch":  # Resend: {"data": [{"id"}...]}
            answer = {"data": [{"id": str(uuid.uuid4())} for _ in batch]}
        elif self.path == "/v3/mail/send":  # SendGrid: 202, no body, X-Message-Id
            answer, batch = None, batch["personalizations"]
        else:
            self.send_error(404)
            return
        with self.server.messages.get_lock():  # type: ignore[attr-defined]
            self.server.messages.value += len(batch)  # type: ignore[attr-defined]
        payload = b"" if answer is None else json.dumps(answer).encode()
        self.send_response(200 if answer is not None else 202)
        if answer is None:
            self.send_header("X-Message-Id", str(uuid.uuid4()))
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args) -> None:
        pass


class Server:
    """The HTTP server in its own process (forked), so it does not share the client's GIL."""

    def __enter__(self) -> Server:
        context = multiprocessing.get_context("fork")
        self.messages = context.Value("q", 0)
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        httpd.messages = self.messages  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{httpd.server_address[1]}"
        self.process = context.Process(target=httpd.serve_forever, daemon=True)
        self.process.start()
        httpd.server_close()  # the child holds the listening socket now
        return self

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.join(5)


def transports(url: str) -> dict:
    return {
        "postmark": lambda: PostmarkTransport(PostmarkSettings(token="bench-token", base_url=url)),
        "resend": lambda: ResendTransport(ResendSettings(api_key="bench-key", base_url=url)),
        "sendgrid": lambda: SendgridTransport(SendgridSettings(api_key="bench-key", base_url=url)),
    }


def run(count: int = 5000, batch_size: int = 500, repeats: int = 3) -> dict:
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        settings, view = sample_issue_view(Path(tmp))
    template = build_template(settings, compile_issue(view))
    now = datetime.now(UTC)

    def build(offset: int, n: int, mime: bool = True) -> list:
        """As the worker builds them: with MIME bytes only for a transport that reads them."""
        return [issue_message(settings, SECRET, template, IssueRecipient(f"reader{i}@example.com", "", i, f"bench-{i}"),
                              now, signer=None, mime=mime)[0] for i in range(offset, offset + n)]

    def timed(function) -> float:
        started = time.perf_counter()
        function()
        return time.perf_counter() - started

    build(0, 50)  # warm up
    build_s = statistics.median(timed(lambda: build(0, count)) for _ in range(repeats))
    ready = build(0, count)
    rows = []
    with Server() as server:
        for name, make in transports(server.url).items():
            transport = make()

            def send_ready() -> None:
                for offset in range(0, count, batch_size):
                    results = transport.send(ready[offset:offset + batch_size])
                    if any(r.outcome != Outcome.sent for r in results):
                        raise RuntimeError(f"{name}: not sent: {results[:3]}")

            def end_to_end() -> None:
                for offset in range(0, count, batch_size):
                    results = transport.send(build(offset, min(batch_size, count - offset), transport.needs_bytes))
                    if any(r.outcome != Outcome.sent for r in results):
                        raise RuntimeError(f"{name}: not sent: {results[:3]}")

            captured: list[tuple[str, bytes, dict]] = []  # the requests of one send_ready(), for the reference
            post = transport.session.post

            def recording(url, data=None, headers=None, **kwargs):
                captured.append((url, data, headers))
                return post(url, data=data, headers=headers, **kwargs)

            transport.session.post = recording
            send_ready()  # warm up the connection, and capture the requests
            transport.session.post = post
            bare = requests.Session()

            def reference() -> None:
                for url, data, headers in captured:
                    bare.post(url, data=data, headers=headers, timeout=60).raise_for_status()

            def end_to_end_processes(processes: int = 2) -> None:
                """As `newsletter worker --processes 2`: each forked process builds and sends its
                share with its own transport."""
                def part(first: int, last: int) -> None:
                    own = make()
                    for offset in range(first, last, batch_size):
                        results = own.send(build(offset, min(batch_size, last - offset), own.needs_bytes))
                        if any(r.outcome != Outcome.sent for r in results):
                            os._exit(1)
                    own.close()

                share = -(-count // processes)
                context = multiprocessing.get_context("fork")
                children = [context.Process(target=part, args=(n * share, min(count, (n + 1) * share)))
                            for n in range(processes)]
                for child in children:
                    child.start()
                for child in children:
                    child.join()
                if any(child.exitcode != 0 for child in children):
                    raise RuntimeError(f"{name}: a sending process failed")

            reference()
            transport_s = statistics.median(timed(send_ready) for _ in range(repeats))
            reference_s = statistics.median(timed(reference) for _ in range(repeats))
            total_s = statistics.median(timed(end_to_end) for _ in range(repeats))
            two_s = statistics.median(timed(end_to_end_processes) for _ in range(repeats))
            transport.close()
            bare.close()
            rows.append({"provider": name, "transport_per_s": count / transport_s, "end_to_end_per_s": count / total_s,
                         "reference_per_s": count / reference_s, "two_processes_per_s": count / two_s})
        assert server.messages.value == count * (2 + 4 * repeats) * len(rows)
    size = round(statistics.mean(len(m.data) for m in ready))
    return {"count": count, "batch_size": batch_size, "repeats": repeats, "build_per_s": count / build_s,
            "rows": rows, "size": size, "machine": machine(), "date": date.today().isoformat(), "load": load}


def markdown(r: dict) -> str:
    lines = [
        START,
        "## HTTP providers: batch endpoints against a local HTTP server",
        "",
        f"{r['date']}, {r['machine']}, load average {r['load']:.1f} at the start. `python -m bench http_batch`: "
        f"{r['count']} real issue messages ({r['size'] / 1024:.1f} KB), `send()` in batches of {r['batch_size']} "
        "(Postmark: one request of 500; Resend: five requests of 100; SendGrid: one request of 500 "
        "personalizations with the body once and substitution tags), one process, median of "
        f"{r['repeats']} runs. The server (threaded `http.server`, same machine) parses every request's JSON and "
        "answers the documented success body. Message building alone: "
        f"{r['build_per_s']:.0f} msg/s.",
        "",
        "| provider | transport only (msg/s) | build + transport (msg/s) | build + transport, 2 processes "
        "(msg/s) | reference: bare POSTs of the same bodies (msg/s) | transport / reference | target |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in r["rows"]:
        lines.append(f"| {row['provider']} | {row['transport_per_s']:.0f} | {row['end_to_end_per_s']:.0f} "
                     f"| {row['two_processes_per_s']:.0f} | {row['reference_per_s']:.0f} "
                     f"| {row['transport_per_s'] / row['reference_per_s']:.2f} | >= 5,000 |")
    lines.append(END)
    return "\n".join(lines)


def write(result: dict) -> Path:
    """Replace this benchmark's section of BENCHMARKS.md (other benchmarks keep theirs)."""
    return write_section(START, END, markdown(result))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench http_batch", description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--write", action=argparse.BooleanOptionalAction, default=True,
                        help="update BENCHMARKS.md (default: yes)")
    args = parser.parse_args(argv)
    result = run(args.messages, repeats=args.repeats)
    print(f"http_batch: build {result['build_per_s']:.0f} msg/s; " + "; ".join(
        f"{row['provider']}: transport {row['transport_per_s']:.0f} msg/s, end to end "
        f"{row['end_to_end_per_s']:.0f} msg/s, 2 processes {row['two_processes_per_s']:.0f} msg/s, reference "
        f"{row['reference_per_s']:.0f} msg/s"
        for row in result["rows"]))
    if args.write:
        print(f"written to {write(result)}")


if __name__ == "__main__":
    main()
