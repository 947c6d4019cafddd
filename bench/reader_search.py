"""Reader search over a million readers on PostgreSQL: first page and a later page.

`python -m bench reader_search [--readers N] [--url URL]`: a fresh schema, migrated to head,
filled with N readers by generate_series (addresses reader0000001@… on five domains, names
from 26 first and 26 last names, some with accents), ANALYZE, then each search of
subscribers/search.py timed as the console runs it (median of 7, wall clock, one session), and
its plan checked to use the 0019 indexes. The schema is dropped at the end.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import time

from sqlalchemy import create_engine, text

FIRST = ["Anna", "Ben", "Chloé", "Dmitri", "Émile", "Fatima", "Günter", "Hiro", "Ingrid", "José", "Karl", "Łukasz",
         "Maria", "Nadia", "Olga", "Pierre", "Quinn", "Rosa", "Søren", "Tomás", "Ülkü", "Vera", "Wei", "Xavier",
         "Yusuf", "Zoë"]
LAST = ["Abbott", "Berg", "Costa", "Dubois", "Eriksen", "Fischer", "García", "Huang", "Ivanova", "Jensen", "Kowalski",
        "López", "Müller", "Nakamura", "O'Brien", "Petrov", "Quint", "Rossi", "Schmidt", "Tanaka", "Ueda", "Vogel",
        "Wagner", "Xu", "Yilmaz", "Zimmermann"]

FILL = """
INSERT INTO subscriber (email, name, status, created_at, token_key)
SELECT 'reader' || lpad(i::text, 7, '0') || '@' || (ARRAY['example.com','mail.example','bücher.de',
        'post.example.org','inbox.example.net'])[1 + i % 5],
       (CAST(:first AS text[]))[1 + (i * 7919) % 26] || ' ' || (CAST(:last AS text[]))[1 + (i * 104729 / 26) % 26],
       (ARRAY['active','active','active','unsubscribed','pending'])[1 + i % 5],
       now() - (i % 1000) * interval '1 hour', ''
FROM generate_series(1::bigint, :count) AS i
"""

SEARCHES = [  # (label, text, name_contains, pages to walk before the timed one)
    ("all readers, first page", "", False, 0),
    ("all readers, after 10,000", "", False, 200),
    ("address prefix 'reader05', first page", "reader05", False, 0),
    ("address prefix 'reader05', after 1,000", "reader05", False, 20),
    ("name prefix 'maria' (1 in 26), first page", "maria", False, 0),
    ("name prefix 'maria', after 1,000", "maria", False, 20),
    ("name prefix 'émile m' (1 in 676), first page", "émile m", False, 0),
    ("prefix matching nobody ('zzz')", "zzz", False, 0),
    ("name contains 'müller' (no index), first page", "müller", True, 0),
    ("name contains 'nobody' (no index: full scan)", "nobody", True, 0),
]


def _fill(engine, count: int) -> float:
    started = time.perf_counter()
    with engine.begin() as connection:
        connection.execute(text(FILL), {"first": FIRST, "last": LAST, "count": count})
        connection.execute(text("ANALYZE subscriber"))
    return time.perf_counter() - started


def _time(engine, query: str, contains: bool, skip: int, runs: int = 7) -> tuple[float, int]:
    from newsletter.db import session_scope
    from newsletter.subscribers.search import search_readers

    after = ""
    with session_scope(engine) as session:
        for _ in range(skip):
            after = search_readers(session, query, after, 50, name_contains=contains).next_after or ""
    times, found = [], 0
    for _ in range(runs):
        with session_scope(engine) as session:
            started = time.perf_counter()
            found = len(search_readers(session, query, after, 50, name_contains=contains).rows)
            times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000, found


def _time_before(engine, query: str, runs: int = 7) -> tuple[float, int]:
    """The query GET /api/v1/readers ran before 0019 (LIKE on address OR lower(name), by address), for comparison."""
    from sqlalchemy import func, or_, select

    from newsletter.db import session_scope
    from newsletter.subscribers.models import Subscriber

    statement = select(Subscriber).where(or_(Subscriber.email.startswith(query, autoescape=True),
                                             func.lower(Subscriber.name).startswith(query, autoescape=True)))
    times, found = [], 0
    for _ in range(runs):
        with session_scope(engine) as session:
            started = time.perf_counter()
            found = len(session.execute(statement.order_by(Subscriber.email).limit(51)).all())
            times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000, found


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench reader_search")
    parser.add_argument("--readers", type=int, default=1_000_000)
    parser.add_argument("--url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args(argv)
    from newsletter.db import make_engine
    from newsletter.migrate import upgrade

    schema = f"wv_bench_{secrets.token_hex(4)}"
    admin = create_engine(args.url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = make_engine(f"{args.url}?options=-csearch_path%3D{schema}")
    try:
        upgrade(engine)
        print(f"filled {args.readers:,} readers in {_fill(engine, args.readers):.1f} s (generate_series, with indexes)")
        print("| search | page | median ms (of 7) | readers on the page |\n|---|---:|---:|---:|")
        for label, query, contains, skip in SEARCHES:
            ms, found = _time(engine, query, contains, skip)
            print(f"| {label} | {skip + 1} | {ms:.1f} | {found} |")
        for query in ("reader05", "maria", "émile m", "zzz"):
            ms, found = _time_before(engine, query)
            print(f"| before 0019: LIKE address OR lower(name) '{query}' | 1 | {ms:.1f} | {min(found, 50)} |")
    finally:
        engine.dispose()
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
