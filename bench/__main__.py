"""`python -m bench [NAME [ARGS…]]`: run one benchmark (with its own options) or all of them.

Each benchmark is a module of this package with a `main()` function (given the remaining
arguments when there are any); register it below.
"""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = {
    "smtp_send": "bench.smtp_send",  # SmtpTransport vs Postfix smtp-source, into smtp-sink
    "render": "bench.render",  # per-recipient assembly vs a full Jinja+MJML render per recipient
    "http_batch": "bench.http_batch",  # Postmark, Resend, SendGrid batch paths against a local HTTP server
    "claims": "bench.claims",  # deliver's pace at the end of a send vs its start (claims from a hint)
    "scale": "bench.scale",  # N subscribers on PostgreSQL: enqueue, worker processes into smtp-sink, RSS
    "reader_search": "bench.reader_search",  # reader search over a million readers on PostgreSQL (issue 16)
    "stats": "bench.stats",  # every statistics report over a million deliveries on PostgreSQL
    "send_start": "bench.send_start",  # `issue send` to the first message at a sink, workers running
    "cli_start": "bench.cli_start",  # CPU and wall time of --help of every group: commands without a database
    "web_load": "bench.web_load",  # signup and one-click unsubscribe POSTs at a fixed rate (wrk), PostgreSQL
    "imports": "bench.imports",  # subscribers import of N rows vs PostgreSQL's COPY; export rows/s and RSS
    "pg_profile": "bench.pg_profile",  # PostgreSQL backend CPU per statement kind of a send (from /proc)
    "send_cpu": "bench.send_cpu",  # a worker's CPU per message outside the SQL: build + SmtpTransport, in-process
    "send_pair": "bench.send_pair",  # send_cpu of this checkout and another revision at the same time: their ratio
    "send_running": "bench.send_running",  # workers running: start_send until the issue is sent, vs smtp-source
    "retry_floor": "bench.retry_floor",  # rows a rescan reads behind a retry due later (delivery_retry, 0033)
    "start_timeline": "bench.start_timeline",  # per process, wall and CPU: a worker's start, a send's start
}


def main(argv: list[str]) -> None:
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        print("benchmarks: " + ", ".join(BENCHMARKS))
        return
    if argv:
        name, rest = argv[0], argv[1:]
        if name not in BENCHMARKS:
            raise SystemExit(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}")
        module = importlib.import_module(BENCHMARKS[name])
        module.main(rest)  # never None: argparse would read `python -m bench NAME` itself
        return
    for module in BENCHMARKS.values():
        importlib.import_module(module).main([])


if __name__ == "__main__":
    main(sys.argv[1:])
