"""A worker's CPU per message outside the SQL: building (as `sender._send` does) and sending over
`SmtpTransport` into Postfix's smtp-sink, in this one process, with a worker's modules and
SQLAlchemy mappers loaded (the heap the cyclic garbage collector walks) and the send's collector
settings (`sender._long_lived_frozen`).

Why in-process: on a shared machine the whole-worker figure of `python -m bench scale` moves by
±50 µs between runs, more than most single changes here; this one has no database, no second
process and no start-up in its window, so before/after pairs of a builder or transport change are
readable. Prints CPU µs per message (this process, all threads, from os.times) for building,
sending and both, the first batch left out. Run: `python -m bench send_cpu [--batches 20]`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.orm import configure_mappers

import newsletter.delivery.worker  # noqa: F401  (a worker's modules: the heap the collector walks)
import newsletter.models  # noqa: F401
from bench.sample import SECRET, sample_issue_view
from bench.smtp_send import Sink
from newsletter.config import SmtpSettings
from newsletter.delivery import sender
from newsletter.delivery.transports.base import Outcome
from newsletter.delivery.transports.smtp import SmtpTransport
from newsletter.issues.links import IssueRecipient, issue_message
from newsletter.issues.render import compile_issue
from newsletter.mail.compose import build_template
from newsletter.tokens import stamp_now

BATCH = 500


def _cpu() -> float:
    times = os.times()
    return times.user + times.system


def run(batches: int = 20, pool_size: int | None = None,
        before_measuring: Callable[[], None] | None = None) -> dict[str, float]:
    """CPU µs per message: {"build", "send", "both"} over `batches` batches after a first one;
    `before_measuring` is called between that first batch and the measured ones (bench send_pair
    starts two processes' measured batches at the same moment with it)."""
    configure_mappers()
    with tempfile.TemporaryDirectory() as tmp:
        settings, view = sample_issue_view(Path(tmp))
    template = build_template(settings, compile_issue(view))
    spent = {"build": 0.0, "send": 0.0}
    frozen = getattr(sender, "_long_lived_frozen", contextlib.nullcontext)  # absent before it existed
    with Sink() as sink, frozen():
        defaults = SmtpSettings()
        transport = SmtpTransport(SmtpSettings(host="127.0.0.1", port=sink.port, timeout=30,
                                               pool_size=pool_size or defaults.pool_size))
        try:
            for number in range(batches + 1):
                started, now, stamp = _cpu(), datetime.now(UTC), stamp_now()
                messages = [issue_message(settings, SECRET, template,
                                          IssueRecipient(f"reader{n}@example.com", "A Reader", n, f"i1-d{n}", "k" * 16),
                                          now, signer=None, stamp=stamp)[0]
                            for n in range(number * BATCH, (number + 1) * BATCH)]
                built = _cpu()
                if any(result.outcome != Outcome.sent for result in transport.send(messages)):
                    raise RuntimeError("smtp-sink refused a message")
                if number:  # the first batch warms up (connections, caches)
                    spent["build"] += built - started
                    spent["send"] += _cpu() - built
                elif before_measuring is not None:
                    before_measuring()
        finally:
            transport.close()
    count = batches * BATCH
    result = {kind: seconds * 1e6 / count for kind, seconds in spent.items()}
    result["both"] = result["build"] + result["send"]
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench send_cpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=20, help="batches of 500 measured (default 20)")
    parser.add_argument("--pool-size", type=int, default=None, help="SMTP sessions (default: the shipped one)")
    args = parser.parse_args(argv)
    result = run(args.batches, args.pool_size)
    print(f"send_cpu: CPU µs per message (load {os.getloadavg()[0]:.1f}): build {result['build']:.0f}, "
          f"send {result['send']:.0f}, both {result['both']:.0f}")


if __name__ == "__main__":
    main()
