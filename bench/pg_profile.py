"""PostgreSQL CPU per statement kind of a send: which statements the backends' time goes to.

pg_stat_statements needs a server restart to load, and the shared server must not be touched, so
the profile is taken from the client: the real `deliver` loop (claim, build, record; batches of
500) runs in this process over N queued deliveries into a transport that accepts every message at
once, and around every statement (and every COMMIT) the CPU time of the backend serving the
connection is read from /proc/PID/schedstat (nanoseconds on CPU; the server runs on this machine).
The difference is that statement's CPU in PostgreSQL, whatever the machine's load, since a
backend runs only for its client. Each statement is put in a kind by its text (`KINDS`), and the
kinds are reported in µs per delivered message, over the whole send and over its first and last
tenth (a kind whose cost grows over the send shows there).

Run: `python -m bench pg_profile [--subscribers N]` (needs PostgreSQL on this machine; prints, writes
nothing). To profile another checkout's code, run it with that checkout first on PYTHONPATH.
"""

from __future__ import annotations

import argparse
import os
import re
import time
from collections import defaultdict
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text

from bench.claims import SECRET, AcceptAll, queued_send
from bench.sample import PG
from newsletter.delivery.sender import DeliverReport, deliver

# (kind, pattern matched at the start of the statement's text, whitespace collapsed), first match wins.
KINDS = [
    ("claim (one statement: claim_batch)", r"WITH claimed"),
    ("claim (queue.claim)", r"UPDATE delivery SET .* RETURNING delivery\.id$"),
    ("skip readers who left", r"UPDATE delivery SET .*suppression"),
    ("read claimed rows + readers", r"SELECT delivery\.id, delivery\.attempts, subscriber\.id"),
    ("read variant masks", r"SELECT delivery\.id, delivery\.variant_mask"),
    ("floor (lowest pending id)", r"SELECT delivery\.id FROM delivery WHERE"),
    ("record results", r"UPDATE delivery AS d SET"),
    ("skip if cancelled", r"UPDATE delivery SET state=\S+, next_attempt_at="),
    ("heartbeat", r"UPDATE worker_heartbeat"),
    ("issue counters (tallies)", r"(INSERT INTO|UPDATE) issue_tally"),
    ("rate limiter", r"(INSERT INTO|UPDATE) send_window"),
    ("COMMIT", r"COMMIT"),
]


def kind_of(statement: str) -> str:
    flat = " ".join(statement.split())
    for kind, pattern in KINDS:
        if re.match(pattern, flat):
            return kind
    return "other: " + flat[:50]


def backend_ns(pid: int) -> int:
    """Nanoseconds the backend process `pid` has run on a CPU so far."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])


class Profile:
    """Backend CPU per statement kind, with the messages delivered so far at each statement."""

    def __init__(self) -> None:
        self.events: list[tuple[int, str, int]] = []  # (delivered so far, kind, backend ns)
        self.delivered = 0
        self._started: dict[int, tuple[int, int, str]] = {}
        self.updates = (0, 0, 0)  # delivery_updates after the send

    def attach(self, engine: Engine) -> None:
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)
        event.listen(engine, "commit", self._commit, retval=False)

    def _pid(self, connection) -> int:
        return connection.connection.dbapi_connection.info.backend_pid

    def _before(self, connection, _cursor, statement, _parameters, _context, _many) -> None:
        pid = self._pid(connection)
        self._started[id(connection)] = (pid, backend_ns(pid), kind_of(statement))

    def _after(self, connection, _cursor, _statement, _parameters, _context, _many) -> None:
        pid, before, kind = self._started.pop(id(connection))
        self.events.append((self.delivered, kind, backend_ns(pid) - before))

    def _commit(self, connection) -> None:
        """SQLAlchemy's commit event fires before the COMMIT: commit it here, timed, so the COMMIT
        the engine sends next finds nothing to do (a COMMIT outside a transaction is a no-op)."""
        dbapi = connection.connection.dbapi_connection
        pid = dbapi.info.backend_pid
        before = backend_ns(pid)
        dbapi.commit()
        self.events.append((self.delivered, "COMMIT", backend_ns(pid) - before))

    def per_message(self, low: float = 0.0, high: float = 1.0) -> dict[str, float]:
        """µs of backend CPU per delivered message of each kind, for the events while the
        delivered count was within [low, high) of the total."""
        total = max(self.delivered, 1)
        used: dict[str, int] = defaultdict(int)
        for delivered, kind, ns in self.events:
            if low * total <= delivered < high * total or (high >= 1.0 and delivered >= total):
                used[kind] += ns
        return {kind: ns / 1e3 / (total * (high - low)) for kind, ns in used.items()}


def run(subscribers: int, pg: str = PG) -> tuple[Profile, float]:
    """One send of `subscribers` readers, profiled; the profile and the send's wall time."""
    os.environ.setdefault("NEWSLETTER_SECRET_KEY", SECRET)
    profile = Profile()
    with queued_send(subscribers, pg, "bench_pg_profile") as (settings, queued):
        profile.attach(queued.engine)

        def progress(report: DeliverReport) -> None:
            profile.delivered = report.sent

        started = time.perf_counter()
        report = deliver(queued.engine, settings, AcceptAll(), SECRET, queued.issue_id, progress=progress)
        elapsed = time.perf_counter() - started
        profile.updates = delivery_updates(queued.engine, 2 * subscribers)
    assert report.finished and report.sent == subscribers, report
    return profile, elapsed


def delivery_updates(engine: Engine, expected: int) -> tuple[int, int, int]:
    """The `delivery` table's updates, how many of them were HOT (in place: no index entry), and its
    size in bytes, once the send's backends have reported (they do on exit: the pool is closed)."""
    engine.dispose()
    engine = create_engine(engine.url)  # not the profiled engine: these reads are not the send's
    deadline = time.monotonic() + 10
    while True:
        with engine.connect() as connection:
            updated, hot = connection.execute(text(
                "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables "
                "WHERE relid = 'delivery'::regclass")).one()
            size = connection.execute(text("SELECT pg_relation_size('delivery')")).scalar_one()
        if updated >= expected or time.monotonic() > deadline:
            return updated, hot, size
        time.sleep(0.2)


def table(profile: Profile) -> list[str]:
    whole, first, last = profile.per_message(), profile.per_message(0.0, 0.1), profile.per_message(0.9, 1.0)
    lines = ["| statement kind | µs per message | first tenth | last tenth |", "|---|---:|---:|---:|"]
    for kind in sorted(whole, key=whole.get, reverse=True):
        lines.append(f"| {kind} | {whole[kind]:.1f} | {first.get(kind, 0):.1f} | {last.get(kind, 0):.1f} |")
    lines.append(f"| **all** | {sum(whole.values()):.1f} | {sum(first.values()):.1f} | {sum(last.values()):.1f} |")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench pg_profile", description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=50_000, help="queued deliveries (default 50,000)")
    parser.add_argument("--pg", default=PG, help="PostgreSQL URL on this machine (a schema is created and dropped)")
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    profile, elapsed = run(args.subscribers, args.pg)
    print(f"pg_profile: {args.subscribers:,} deliveries in {elapsed:.1f} s, load average {load:.1f} at the start; "
          "PostgreSQL backend CPU per delivered message:")
    print("\n".join(table(profile)))
    updated, hot, size = profile.updates
    print(f"delivery: {updated:,} row updates, {hot:,} of them HOT ({hot / max(updated, 1):.0%}); "
          f"table {size / 2**20:.1f} MB")


if __name__ == "__main__":
    main()
